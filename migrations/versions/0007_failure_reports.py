"""failure reports

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-28
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = '0007'
down_revision: str | None = '0006'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _json() -> sa.types.TypeEngine[object]:
    return sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql')


def upgrade() -> None:
    op.create_table('failure_report',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('content_digest', sa.String(length=64), nullable=False),
    sa.Column('format', sa.String(length=8), nullable=False),
    sa.Column('feedback_type', sa.String(length=64), nullable=True),
    sa.Column('version', sa.String(length=32), nullable=True),
    sa.Column('user_agent', sa.String(), nullable=True),
    sa.Column('auth_failure', _json(), nullable=False),
    sa.Column('identity_alignment', _json(), nullable=True),
    sa.Column('source_ip', sa.String(length=64), nullable=True),
    sa.Column('source_ip_packed', sa.LargeBinary(), nullable=True),
    sa.Column('source_port', sa.Integer(), nullable=True),
    sa.Column('reported_domain', sa.String(length=255), nullable=True),
    sa.Column('reported_uri', _json(), nullable=False),
    sa.Column('original_mail_from', sa.String(), nullable=True),
    sa.Column('original_rcpt_to', _json(), nullable=False),
    sa.Column('original_envelope_id', sa.String(), nullable=True),
    sa.Column('arrival_date', sa.DateTime(timezone=True), nullable=True),
    sa.Column('arrival_date_source', sa.String(length=16), nullable=True),
    sa.Column('arrival_day', sa.Date(), nullable=True),
    sa.Column('reporting_mta', sa.String(), nullable=True),
    sa.Column('incidents', sa.Integer(), nullable=True),
    sa.Column('delivery_result', sa.String(length=32), nullable=True),
    sa.Column('dkim_domain', sa.String(length=255), nullable=True),
    sa.Column('dkim_selector', sa.String(), nullable=True),
    sa.Column('dkim_identity', sa.String(), nullable=True),
    sa.Column('dkim_canonicalized_header', sa.Boolean(), nullable=False),
    sa.Column('dkim_canonicalized_body', sa.Boolean(), nullable=False),
    sa.Column('dkim_adsp_dns', _json(), nullable=False),
    sa.Column('spf_dns', _json(), nullable=False),
    sa.Column('authentication_results', _json(), nullable=False),
    sa.Column('other_fields', _json(), nullable=False),
    sa.Column('report_from', sa.String(), nullable=True),
    sa.Column('report_subject', sa.String(), nullable=True),
    sa.Column('report_date', sa.DateTime(timezone=True), nullable=True),
    sa.Column('report_message_id', sa.String(), nullable=True),
    sa.Column('original_headers', _json(), nullable=False),
    sa.Column('original_headers_source', sa.String(length=32), nullable=True),
    sa.Column('original_from', sa.String(), nullable=True),
    sa.Column('original_to', sa.String(), nullable=True),
    sa.Column('original_subject', sa.String(), nullable=True),
    sa.Column('original_message_id', sa.String(), nullable=True),
    sa.Column('original_date', sa.DateTime(timezone=True), nullable=True),
    sa.Column('header_from', sa.String(length=255), nullable=True),
    sa.Column('text', sa.String(), nullable=True),
    sa.Column('redacted', sa.Boolean(), nullable=False),
    sa.Column('notes', _json(), nullable=False),
    sa.Column('original_sha256', sa.String(length=64), nullable=False),
    sa.Column('location', sa.String(length=1024), nullable=False),
    sa.Column('stored_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['original_sha256'], ['original.sha256'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('content_digest')
    )
    op.create_index('ix_failure_report_day', 'failure_report', ['arrival_day', 'arrival_date'], unique=False)
    op.create_index('ix_failure_report_domain_day', 'failure_report', ['reported_domain', 'arrival_day'],
                    unique=False)
    op.create_index('ix_failure_report_source_ip', 'failure_report', ['source_ip_packed'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_failure_report_source_ip', table_name='failure_report')
    op.drop_index('ix_failure_report_domain_day', table_name='failure_report')
    op.drop_index('ix_failure_report_day', table_name='failure_report')
    op.drop_table('failure_report')
