"""report_source_classes keyed by the source address's id, stored in key order on SQLite

The dashboard's sender and forwarding pages read every row of a month's reports and join each
to its address: by integer id, read in primary-key order, that costs a fraction of a string
looked up through an index. Rows are copied across; an address text with no source_address
row (none should exist: ingest writes one for every record) would be left out.

Revision ID: 0011
Revises: 0010
Create Date: 2026-11-29
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0011'
down_revision: str | None = '0010'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

COLUMNS = "report_id, {address}, record_class, broken_domain, messages, records, dmarc_pass"


def _create(name: str, address: sa.Column[object], foreign_key: sa.ForeignKeyConstraint | None) -> None:
    op.create_table(
        name,
        sa.Column('report_id', sa.Integer(), nullable=False),
        address,
        sa.Column('record_class', sa.String(length=24), nullable=False),
        sa.Column('broken_domain', sa.String(length=255), nullable=False),
        sa.Column('messages', sa.BigInteger(), nullable=False),
        sa.Column('records', sa.Integer(), nullable=False),
        sa.Column('dmarc_pass', sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(['report_id'], ['aggregate_report.id'], ondelete='CASCADE'),
        *([foreign_key] if foreign_key is not None else []),
        sa.PrimaryKeyConstraint('report_id', address.name, 'record_class', 'broken_domain'),
        sqlite_with_rowid=address.name != 'source_id',
    )


def upgrade() -> None:
    _create('report_source_classes_new', sa.Column('source_id', sa.Integer(), nullable=False),
            sa.ForeignKeyConstraint(['source_id'], ['source_address.id']))
    op.execute(f"""
        INSERT INTO report_source_classes_new ({COLUMNS.format(address='source_id')})
        SELECT s.report_id, a.id, s.record_class, s.broken_domain, s.messages, s.records, s.dmarc_pass
        FROM report_source_classes s JOIN source_address a ON a.ip = s.source_ip
    """)
    op.drop_index('ix_report_source_classes_ip', table_name='report_source_classes')
    op.drop_table('report_source_classes')
    op.rename_table('report_source_classes_new', 'report_source_classes')
    _rename_constraints('report_source_classes_new', ('report_id', 'source_id'))


def downgrade() -> None:
    _create('report_source_classes_old', sa.Column('source_ip', sa.String(length=64), nullable=False), None)
    op.execute(f"""
        INSERT INTO report_source_classes_old ({COLUMNS.format(address='source_ip')})
        SELECT s.report_id, a.ip, s.record_class, s.broken_domain, s.messages, s.records, s.dmarc_pass
        FROM report_source_classes s JOIN source_address a ON a.id = s.source_id
    """)
    op.drop_table('report_source_classes')
    op.rename_table('report_source_classes_old', 'report_source_classes')
    _rename_constraints('report_source_classes_old', ('report_id',))
    op.create_index('ix_report_source_classes_ip', 'report_source_classes', ['source_ip', 'report_id'],
                    unique=False)


def _rename_constraints(made_as: str, foreign_keys: Sequence[str]) -> None:
    """PostgreSQL names constraints after the table they were created in; give them the names
    a table created as report_source_classes has."""
    if op.get_bind().dialect.name != 'postgresql':
        return
    op.execute(f"ALTER INDEX {made_as}_pkey RENAME TO report_source_classes_pkey")
    for column in foreign_keys:
        op.execute(f"ALTER TABLE report_source_classes RENAME CONSTRAINT {made_as}_{column}_fkey "
                   f"TO report_source_classes_{column}_fkey")
