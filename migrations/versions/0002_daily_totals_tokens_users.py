"""daily totals, tokens, users

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-28
"""
from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta

import sqlalchemy as sa
from alembic import op

UNDATED = date(1, 1, 1)

revision: str = '0002'
down_revision: str | None = '0001'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('api_token',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=128), nullable=False),
    sa.Column('scope', sa.String(length=16), nullable=False),
    sa.Column('token_hash', sa.String(length=64), nullable=False),
    sa.Column('prefix', sa.String(length=16), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('last_used_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('revoked_at', sa.DateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('token_hash')
    )
    op.create_table('daily_totals',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('first_day', sa.Date(), nullable=False),
    sa.Column('last_day', sa.Date(), nullable=False),
    sa.Column('policy_domain', sa.String(length=255), nullable=False),
    sa.Column('disposition', sa.String(length=16), nullable=False),
    sa.Column('dmarc', sa.String(length=4), nullable=False),
    sa.Column('messages', sa.BigInteger(), nullable=False),
    sa.Column('records', sa.BigInteger(), nullable=False),
    sa.Column('spf_aligned_pass', sa.BigInteger(), nullable=False),
    sa.Column('dkim_aligned_pass', sa.BigInteger(), nullable=False),
    sa.Column('org_name_key', sa.String(), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('first_day', 'last_day', 'policy_domain', 'org_name_key', 'disposition', 'dmarc', name='uq_daily_totals_key')
    )
    with op.batch_alter_table('daily_totals', schema=None) as batch_op:
        batch_op.create_index('ix_daily_totals_last_day', ['last_day'], unique=False)

    op.create_table('dashboard_user',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('username', sa.String(length=128), nullable=False),
    sa.Column('password_hash', sa.String(length=255), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('password_changed_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('disabled', sa.Boolean(), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('username')
    )
    op.create_table('source_address',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('ip', sa.String(length=64), nullable=False),
    sa.Column('packed', sa.LargeBinary(), nullable=True),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('ip')
    )
    with op.batch_alter_table('source_address', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_source_address_packed'), ['packed'], unique=False)

    op.create_table('daily_source_totals',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('first_day', sa.Date(), nullable=False),
    sa.Column('last_day', sa.Date(), nullable=False),
    sa.Column('policy_domain', sa.String(length=255), nullable=False),
    sa.Column('disposition', sa.String(length=16), nullable=False),
    sa.Column('dmarc', sa.String(length=4), nullable=False),
    sa.Column('messages', sa.BigInteger(), nullable=False),
    sa.Column('records', sa.BigInteger(), nullable=False),
    sa.Column('spf_aligned_pass', sa.BigInteger(), nullable=False),
    sa.Column('dkim_aligned_pass', sa.BigInteger(), nullable=False),
    sa.Column('source_id', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['source_id'], ['source_address.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('first_day', 'last_day', 'policy_domain', 'source_id', 'disposition', 'dmarc', name='uq_daily_source_totals_key')
    )
    with op.batch_alter_table('daily_source_totals', schema=None) as batch_op:
        batch_op.create_index('ix_daily_source_totals_source', ['source_id', 'last_day'], unique=False)
        batch_op.create_index('ix_daily_source_totals_window', ['last_day', 'first_day', 'policy_domain', 'source_id', 'messages'], unique=False)

    _fill_daily_totals()


def downgrade() -> None:
    with op.batch_alter_table('daily_source_totals', schema=None) as batch_op:
        batch_op.drop_index('ix_daily_source_totals_window')
        batch_op.drop_index('ix_daily_source_totals_source')

    op.drop_table('daily_source_totals')
    with op.batch_alter_table('source_address', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_source_address_packed'))

    op.drop_table('source_address')
    op.drop_table('dashboard_user')
    with op.batch_alter_table('daily_totals', schema=None) as batch_op:
        batch_op.drop_index('ix_daily_totals_last_day')

    op.drop_table('daily_totals')
    op.drop_table('api_token')


def _days(begin: datetime | None, end: datetime | None) -> tuple[date, date]:
    # as ingest.daily_totals.report_days at this revision; a migration never imports live code
    if begin is None or end is None:
        return UNDATED, UNDATED
    if begin.tzinfo is None:
        begin, end = begin.replace(tzinfo=UTC), end.replace(tzinfo=UTC)
    return begin.astimezone(UTC).date(), (end.astimezone(UTC) - timedelta(microseconds=1)).date()


_SUMS = """SUM(COALESCE("count", 0)), COUNT(*),
        SUM(CASE WHEN spf = 'pass' THEN COALESCE("count", 0) ELSE 0 END),
        SUM(CASE WHEN dkim = 'pass' THEN COALESCE("count", 0) ELSE 0 END)"""
_DMARC = "CASE WHEN dkim = 'pass' OR spf = 'pass' THEN 'pass' ELSE 'fail' END"
_ADD = """messages = {table}.messages + excluded.messages, records = {table}.records + excluded.records,
        spf_aligned_pass = {table}.spf_aligned_pass + excluded.spf_aligned_pass,
        dkim_aligned_pass = {table}.dkim_aligned_pass + excluded.dkim_aligned_pass"""


def _fill_daily_totals() -> None:
    """Sum the records stored before this revision, report by report, as ingest now does."""
    conn = op.get_bind()
    conn.execute(sa.text(
        "INSERT INTO source_address (ip, packed) SELECT COALESCE(source_ip, ''), source_ip_packed "
        "FROM aggregate_record GROUP BY COALESCE(source_ip, ''), source_ip_packed ORDER BY 1"))
    reports = conn.execute(sa.text(
        "SELECT id, date_begin, date_end, policy_domain, org_name_key FROM aggregate_report "
        "WHERE conflict_of_id IS NULL")).all()
    for report_id, begin, end, domain, org in reports:
        if isinstance(begin, str):  # SQLite hands back text here
            begin, end = datetime.fromisoformat(begin), end and datetime.fromisoformat(end)
        first, last = _days(begin, end)
        values = {"id": report_id, "first": first, "last": last, "domain": domain or "", "org": org or ""}
        conn.execute(sa.text(
            "INSERT INTO daily_totals (first_day, last_day, policy_domain, org_name_key, disposition, dmarc, "
            "messages, records, spf_aligned_pass, dkim_aligned_pass) "
            f"SELECT :first, :last, :domain, :org, COALESCE(disposition, ''), {_DMARC}, {_SUMS} "
            f"FROM aggregate_record WHERE report_id = :id GROUP BY COALESCE(disposition, ''), {_DMARC} "
            "ON CONFLICT (first_day, last_day, policy_domain, org_name_key, disposition, dmarc) DO UPDATE SET "
            + _ADD.format(table="daily_totals")), values)
        conn.execute(sa.text(
            "INSERT INTO daily_source_totals (first_day, last_day, policy_domain, source_id, disposition, dmarc, "
            "messages, records, spf_aligned_pass, dkim_aligned_pass) "
            f"SELECT :first, :last, :domain, s.id, COALESCE(disposition, ''), {_DMARC}, {_SUMS} "
            "FROM aggregate_record JOIN source_address s ON s.ip = COALESCE(source_ip, '') "
            f"WHERE report_id = :id GROUP BY s.id, COALESCE(disposition, ''), {_DMARC} "
            "ON CONFLICT (first_day, last_day, policy_domain, source_id, disposition, dmarc) DO UPDATE SET "
            + _ADD.format(table="daily_source_totals")), values)
