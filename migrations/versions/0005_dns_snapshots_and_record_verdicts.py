"""dns snapshots and record verdicts

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-28
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = '0005'
down_revision: str | None = '0004'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('dns_snapshot',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=255), nullable=False),
    sa.Column('rdtype', sa.String(length=8), nullable=False),
    sa.Column('outcome', sa.String(length=16), nullable=False),
    sa.Column('records', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('ttl', sa.Integer(), nullable=True),
    sa.Column('first_seen', sa.DateTime(timezone=True), nullable=False),
    sa.Column('last_seen', sa.DateTime(timezone=True), nullable=False),
    sa.Column('checks', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index('ix_dns_snapshot_name', 'dns_snapshot', ['name', 'rdtype', 'first_seen'], unique=False)

    op.create_table('record_verdict',
    sa.Column('report_id', sa.Integer(), nullable=False),
    sa.Column('record_no', sa.Integer(), nullable=False),
    sa.Column('record_class', sa.String(length=24), nullable=False),
    sa.Column('dmarc', sa.String(length=16), nullable=False),
    sa.Column('spf_aligned', sa.Boolean(), nullable=False),
    sa.Column('dkim_aligned', sa.Boolean(), nullable=False),
    sa.Column('spf_result', sa.String(length=16), nullable=True),
    sa.Column('own_spf_result', sa.String(length=16), nullable=True),
    sa.Column('dkim', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('reasons', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('org_domain', sa.String(length=255), nullable=True),
    sa.Column('discovery_method', sa.String(length=16), nullable=False),
    sa.Column('dns_as_of', sa.DateTime(timezone=True), nullable=False),
    sa.Column('computed_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['report_id', 'record_no'], ['aggregate_record.report_id', 'aggregate_record.record_no'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('report_id', 'record_no')
    )
    op.create_table('report_class_totals',
    sa.Column('report_id', sa.Integer(), nullable=False),
    sa.Column('record_class', sa.String(length=24), nullable=False),
    sa.Column('messages', sa.BigInteger(), nullable=False),
    sa.Column('records', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['report_id'], ['aggregate_report.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('report_id', 'record_class')
    )
    # plain ALTER TABLE: a batch copy of aggregate_report would cascade-delete what refers to it
    op.add_column('aggregate_report', sa.Column('verdicts_at', sa.DateTime(timezone=True), nullable=True))
    op.create_index('ix_aggregate_report_verdicts_at', 'aggregate_report', ['verdicts_at'], unique=False)

def downgrade() -> None:
    # plain ALTER TABLE (SQLite 3.35+), for the same reason
    op.drop_index('ix_aggregate_report_verdicts_at', table_name='aggregate_report')
    op.drop_column('aggregate_report', 'verdicts_at')

    op.drop_table('report_class_totals')
    op.drop_table('record_verdict')
    op.drop_index('ix_dns_snapshot_name', table_name='dns_snapshot')
    op.drop_table('dns_snapshot')
