"""report_source_classes: classes per source address and report, for the dashboard's groups

Filled here from the stored verdicts; the d= of signatures broken in transit is not in SQL's
reach, so reports holding forwarding failures are made due and judged again by `rua serve`
(or `rua align`), which writes it.

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-28
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0010'
down_revision: str | None = '0009'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        'report_source_classes',
        sa.Column('report_id', sa.Integer(), nullable=False),
        sa.Column('source_ip', sa.String(length=64), nullable=False),
        sa.Column('record_class', sa.String(length=24), nullable=False),
        sa.Column('broken_domain', sa.String(length=255), nullable=False),
        sa.Column('messages', sa.BigInteger(), nullable=False),
        sa.Column('records', sa.Integer(), nullable=False),
        sa.Column('dmarc_pass', sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(['report_id'], ['aggregate_report.id'], ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('report_id', 'source_ip', 'record_class', 'broken_domain'),
    )
    op.create_index('ix_report_source_classes_ip', 'report_source_classes', ['source_ip', 'report_id'],
                    unique=False)
    op.execute("""
        INSERT INTO report_source_classes
            (report_id, source_ip, record_class, broken_domain, messages, records, dmarc_pass)
        SELECT v.report_id, COALESCE(r.source_ip, ''), v.record_class, '', SUM(COALESCE(r.count, 0)),
               COUNT(*), SUM(CASE WHEN r.dkim = 'pass' OR r.spf = 'pass' THEN COALESCE(r.count, 0) ELSE 0 END)
        FROM record_verdict v
        JOIN aggregate_record r ON r.report_id = v.report_id AND r.record_no = v.record_no
        GROUP BY v.report_id, COALESCE(r.source_ip, ''), v.record_class
    """)
    op.execute("""
        UPDATE aggregate_report SET verdicts_at = NULL
        WHERE id IN (SELECT report_id FROM report_class_totals WHERE record_class = 'forwarding_failure')
    """)


def downgrade() -> None:
    op.drop_index('ix_report_source_classes_ip', table_name='report_source_classes')
    op.drop_table('report_source_classes')
