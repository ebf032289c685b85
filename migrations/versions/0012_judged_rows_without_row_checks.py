"""The judge's rows without per-row foreign-key checks

record_verdict and report_source_classes are written only by the judge, a million rows per
recomputation of a million records, and are rebuilt whole by `rua align --recompute`. Their
foreign keys made the database check every row written against the record, report and
address it names: on PostgreSQL that was more than half the cost of writing a verdict (26
µs per record with them, 12 without). The judge now checks the reports of each batch once,
in the transaction that writes it (ingest.recompute), and Rua never deletes a report or an
address. report_class_totals, a few rows per report, keeps its key.

SQLite cannot drop a constraint: its two tables are rebuilt (report_source_classes again
WITHOUT ROWID, in key order) and their rows copied across.

Revision ID: 0012
Revises: 0011
Create Date: 2026-11-29
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = '0012'
down_revision: str | None = '0011'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql')
VERDICT_FK = ('record_verdict_report_id_record_no_fkey', 'record_verdict', ['report_id', 'record_no'],
              'aggregate_record', ['report_id', 'record_no'], 'CASCADE')
SOURCE_FKS = (('report_source_classes_report_id_fkey', 'report_source_classes', ['report_id'],
               'aggregate_report', ['id'], 'CASCADE'),
              ('report_source_classes_source_id_fkey', 'report_source_classes', ['source_id'],
               'source_address', ['id'], None))


def _verdict_table(name: str, keyed: bool) -> None:
    op.create_table(
        name,
        sa.Column('report_id', sa.Integer(), nullable=False),
        sa.Column('record_no', sa.Integer(), nullable=False),
        sa.Column('record_class', sa.String(length=24), nullable=False),
        sa.Column('dmarc', sa.String(length=16), nullable=False),
        sa.Column('spf_aligned', sa.Boolean(), nullable=False),
        sa.Column('dkim_aligned', sa.Boolean(), nullable=False),
        sa.Column('spf_result', sa.String(length=16), nullable=True),
        sa.Column('own_spf_result', sa.String(length=16), nullable=True),
        sa.Column('dkim', JSON, nullable=False),
        sa.Column('reasons', JSON, nullable=False),
        sa.Column('org_domain', sa.String(length=255), nullable=True),
        sa.Column('discovery_method', sa.String(length=16), nullable=False),
        sa.Column('dns_as_of', sa.DateTime(timezone=True), nullable=False),
        sa.Column('computed_at', sa.DateTime(timezone=True), nullable=False),
        *([sa.ForeignKeyConstraint(['report_id', 'record_no'],
                                   ['aggregate_record.report_id', 'aggregate_record.record_no'],
                                   ondelete='CASCADE')] if keyed else []),
        sa.PrimaryKeyConstraint('report_id', 'record_no'),
    )


def _source_table(name: str, keyed: bool) -> None:
    op.create_table(
        name,
        sa.Column('report_id', sa.Integer(), nullable=False),
        sa.Column('source_id', sa.Integer(), nullable=False),
        sa.Column('record_class', sa.String(length=24), nullable=False),
        sa.Column('broken_domain', sa.String(length=255), nullable=False),
        sa.Column('messages', sa.BigInteger(), nullable=False),
        sa.Column('records', sa.Integer(), nullable=False),
        sa.Column('dmarc_pass', sa.BigInteger(), nullable=False),
        *([sa.ForeignKeyConstraint(['report_id'], ['aggregate_report.id'], ondelete='CASCADE'),
           sa.ForeignKeyConstraint(['source_id'], ['source_address.id'])] if keyed else []),
        sa.PrimaryKeyConstraint('report_id', 'source_id', 'record_class', 'broken_domain'),
        sqlite_with_rowid=False,
    )


def _rebuild_on_sqlite(keyed: bool) -> None:
    for table, create in (('record_verdict', _verdict_table), ('report_source_classes', _source_table)):
        create(f'{table}_rebuilt', keyed)
        op.execute(f'INSERT INTO {table}_rebuilt SELECT * FROM {table} ORDER BY 1, 2')
        op.drop_table(table)
        op.rename_table(f'{table}_rebuilt', table)


def upgrade() -> None:
    if op.get_bind().dialect.name == 'sqlite':
        _rebuild_on_sqlite(keyed=False)
        return
    for name, table, *_ in (VERDICT_FK, *SOURCE_FKS):
        op.drop_constraint(name, table, type_='foreignkey')


def downgrade() -> None:
    if op.get_bind().dialect.name == 'sqlite':
        _rebuild_on_sqlite(keyed=True)
        return
    for name, table, columns, referred, referred_columns, ondelete in (VERDICT_FK, *SOURCE_FKS):
        op.create_foreign_key(name, table, referred, columns, referred_columns, ondelete=ondelete)
