"""tls reports

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-28
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = '0006'
down_revision: str | None = '0005'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _json() -> sa.types.TypeEngine[object]:
    return sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql')


def upgrade() -> None:
    op.create_table('tls_report',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('identity_hash', sa.String(length=64), nullable=False),
    sa.Column('content_digest', sa.String(length=64), nullable=False),
    sa.Column('organization_name', sa.String(), nullable=False),
    sa.Column('organization_key', sa.String(length=255), nullable=False),
    sa.Column('report_id', sa.String(), nullable=False),
    sa.Column('contact_info', sa.String(), nullable=True),
    sa.Column('date_begin', sa.DateTime(timezone=True), nullable=False),
    sa.Column('date_end', sa.DateTime(timezone=True), nullable=False),
    sa.Column('policy_domains', _json(), nullable=False),
    sa.Column('policy_count', sa.Integer(), nullable=False),
    sa.Column('successful', sa.BigInteger(), nullable=False),
    sa.Column('failed', sa.BigInteger(), nullable=False),
    sa.Column('notes', _json(), nullable=False),
    sa.Column('conflict_of_id', sa.Integer(), nullable=True),
    sa.Column('original_sha256', sa.String(length=64), nullable=False),
    sa.Column('location', sa.String(), nullable=False),
    sa.Column('ingested_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['conflict_of_id'], ['tls_report.id'], ),
    sa.ForeignKeyConstraint(['original_sha256'], ['original.sha256'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('identity_hash', 'content_digest', name='uq_tls_report_identity_content')
    )
    op.create_index('ix_tls_report_begin_end', 'tls_report', ['date_begin', 'date_end'], unique=False)
    op.create_index('ix_tls_report_identity_hash', 'tls_report', ['identity_hash'], unique=False)
    op.create_index('ix_tls_report_organization', 'tls_report', ['organization_key'], unique=False)

    op.create_table('tls_report_origin',
    sa.Column('report_id', sa.Integer(), nullable=False),
    sa.Column('original_sha256', sa.String(length=64), nullable=False),
    sa.Column('location', sa.String(length=1024), nullable=False),
    sa.Column('received_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['original_sha256'], ['original.sha256'], ),
    sa.ForeignKeyConstraint(['report_id'], ['tls_report.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('report_id', 'original_sha256', 'location')
    )

    op.create_table('tls_policy',
    sa.Column('report_id', sa.Integer(), nullable=False),
    sa.Column('seq', sa.Integer(), nullable=False),
    sa.Column('policy_type', sa.String(), nullable=False),
    sa.Column('policy_domain', sa.String(length=255), nullable=True),
    sa.Column('policy_strings', _json(), nullable=False),
    sa.Column('mx_hosts', _json(), nullable=False),
    sa.Column('successful', sa.BigInteger(), nullable=False),
    sa.Column('failed', sa.BigInteger(), nullable=False),
    sa.ForeignKeyConstraint(['report_id'], ['tls_report.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('report_id', 'seq')
    )
    op.create_index('ix_tls_policy_domain', 'tls_policy', ['policy_domain', 'report_id'], unique=False)

    op.create_table('tls_failure',
    sa.Column('report_id', sa.Integer(), nullable=False),
    sa.Column('policy_seq', sa.Integer(), nullable=False),
    sa.Column('seq', sa.Integer(), nullable=False),
    sa.Column('result_type', sa.String(), nullable=False),
    sa.Column('sending_mta_ip', sa.String(), nullable=True),
    sa.Column('receiving_mx_hostname', sa.String(), nullable=True),
    sa.Column('receiving_mx_helo', sa.String(), nullable=True),
    sa.Column('receiving_ip', sa.String(), nullable=True),
    sa.Column('failed_session_count', sa.BigInteger(), nullable=False),
    sa.Column('additional_information', sa.String(), nullable=True),
    sa.Column('failure_reason_code', sa.String(), nullable=True),
    sa.ForeignKeyConstraint(['report_id', 'policy_seq'], ['tls_policy.report_id', 'tls_policy.seq'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('report_id', 'policy_seq', 'seq')
    )


def downgrade() -> None:
    op.drop_table('tls_failure')
    op.drop_index('ix_tls_policy_domain', table_name='tls_policy')
    op.drop_table('tls_policy')
    op.drop_table('tls_report_origin')
    op.drop_index('ix_tls_report_organization', table_name='tls_report')
    op.drop_index('ix_tls_report_identity_hash', table_name='tls_report')
    op.drop_index('ix_tls_report_begin_end', table_name='tls_report')
    op.drop_table('tls_report')
