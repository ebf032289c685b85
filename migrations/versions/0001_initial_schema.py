"""initial schema: originals, aggregate reports and records

Revision ID: 0001
Revises:
Create Date: 2026-11-28
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = '0001'
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('original',
    sa.Column('sha256', sa.String(length=64), nullable=False),
    sa.Column('size', sa.BigInteger(), nullable=False),
    sa.Column('container', sa.String(length=16), nullable=False),
    sa.Column('storage_path', sa.String(length=255), nullable=False),
    sa.Column('source', sa.String(length=1024), nullable=False),
    sa.Column('first_seen_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('last_seen_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('receipts', sa.Integer(), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('error', sa.String(), nullable=True),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('reports_new', sa.Integer(), nullable=False),
    sa.Column('reports_duplicate', sa.Integer(), nullable=False),
    sa.Column('reports_failed', sa.Integer(), nullable=False),
    sa.Column('reports_deferred', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('sha256')
    )
    with op.batch_alter_table('original', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_original_status'), ['status'], unique=False)

    op.create_table('aggregate_report',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('identity_hash', sa.String(length=64), nullable=False),
    sa.Column('content_digest', sa.String(length=64), nullable=True),
    sa.Column('org_name', sa.String(), nullable=True),
    sa.Column('org_name_key', sa.String(), nullable=True),
    sa.Column('email', sa.String(), nullable=True),
    sa.Column('extra_contact_info', sa.String(), nullable=True),
    sa.Column('report_id', sa.String(), nullable=True),
    sa.Column('policy_domain', sa.String(length=255), nullable=True),
    sa.Column('date_begin', sa.DateTime(timezone=True), nullable=True),
    sa.Column('date_end', sa.DateTime(timezone=True), nullable=True),
    sa.Column('errors', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('generator', sa.String(), nullable=True),
    sa.Column('version', sa.String(), nullable=True),
    sa.Column('xml_namespace', sa.String(), nullable=True),
    sa.Column('adkim', sa.String(length=8), nullable=True),
    sa.Column('aspf', sa.String(length=8), nullable=True),
    sa.Column('p', sa.String(length=16), nullable=True),
    sa.Column('sp', sa.String(length=16), nullable=True),
    sa.Column('np', sa.String(length=16), nullable=True),
    sa.Column('pct', sa.Integer(), nullable=True),
    sa.Column('fo', sa.String(), nullable=True),
    sa.Column('testing', sa.String(length=8), nullable=True),
    sa.Column('discovery_method', sa.String(length=16), nullable=True),
    sa.Column('record_count', sa.Integer(), nullable=False),
    sa.Column('message_count', sa.BigInteger(), nullable=False),
    sa.Column('repair_notes', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('conflict_of_id', sa.Integer(), nullable=True),
    sa.Column('original_sha256', sa.String(length=64), nullable=False),
    sa.Column('location', sa.String(), nullable=False),
    sa.Column('ingested_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['conflict_of_id'], ['aggregate_report.id'], ),
    sa.ForeignKeyConstraint(['original_sha256'], ['original.sha256'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('identity_hash', 'content_digest', name='uq_report_identity_content')
    )
    with op.batch_alter_table('aggregate_report', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_aggregate_report_identity_hash'), ['identity_hash'], unique=False)
        batch_op.create_index('ix_report_begin_end', ['date_begin', 'date_end'], unique=False)
        batch_op.create_index('ix_report_domain_begin', ['policy_domain', 'date_begin'], unique=False)
        batch_op.create_index('ix_report_org', ['org_name_key'], unique=False)

    op.create_table('aggregate_record',
    sa.Column('report_id', sa.Integer(), nullable=False),
    sa.Column('record_no', sa.Integer(), nullable=False),
    sa.Column('source_ip', sa.String(length=64), nullable=True),
    sa.Column('source_ip_packed', sa.LargeBinary(), nullable=True),
    sa.Column('count', sa.BigInteger(), nullable=True),
    sa.Column('disposition', sa.String(length=16), nullable=True),
    sa.Column('dkim', sa.String(length=8), nullable=True),
    sa.Column('spf', sa.String(length=8), nullable=True),
    sa.Column('header_from', sa.String(length=255), nullable=True),
    sa.Column('envelope_from', sa.String(length=255), nullable=True),
    sa.Column('envelope_to', sa.String(length=255), nullable=True),
    sa.Column('raw_values', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=True),
    sa.ForeignKeyConstraint(['report_id'], ['aggregate_report.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('report_id', 'record_no')
    )
    with op.batch_alter_table('aggregate_record', schema=None) as batch_op:
        batch_op.create_index('ix_record_header_from', ['header_from'], unique=False)
        batch_op.create_index('ix_record_source_ip', ['source_ip_packed'], unique=False)

    op.create_table('report_origin',
    sa.Column('report_id', sa.Integer(), nullable=False),
    sa.Column('original_sha256', sa.String(length=64), nullable=False),
    sa.Column('location', sa.String(length=1024), nullable=False),
    sa.Column('received_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['original_sha256'], ['original.sha256'], ),
    sa.ForeignKeyConstraint(['report_id'], ['aggregate_report.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('report_id', 'original_sha256', 'location')
    )
    op.create_table('record_dkim_result',
    sa.Column('report_id', sa.Integer(), nullable=False),
    sa.Column('record_no', sa.Integer(), nullable=False),
    sa.Column('seq', sa.Integer(), nullable=False),
    sa.Column('domain', sa.String(length=255), nullable=True),
    sa.Column('selector', sa.String(), nullable=True),
    sa.Column('result', sa.String(length=16), nullable=True),
    sa.Column('human_result', sa.String(), nullable=True),
    sa.Column('result_raw', sa.String(), nullable=True),
    sa.ForeignKeyConstraint(['report_id', 'record_no'], ['aggregate_record.report_id', 'aggregate_record.record_no'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('report_id', 'record_no', 'seq')
    )
    op.create_table('record_reason',
    sa.Column('report_id', sa.Integer(), nullable=False),
    sa.Column('record_no', sa.Integer(), nullable=False),
    sa.Column('seq', sa.Integer(), nullable=False),
    sa.Column('type', sa.String(length=32), nullable=True),
    sa.Column('comment', sa.String(), nullable=True),
    sa.Column('type_raw', sa.String(), nullable=True),
    sa.ForeignKeyConstraint(['report_id', 'record_no'], ['aggregate_record.report_id', 'aggregate_record.record_no'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('report_id', 'record_no', 'seq')
    )
    op.create_table('record_spf_result',
    sa.Column('report_id', sa.Integer(), nullable=False),
    sa.Column('record_no', sa.Integer(), nullable=False),
    sa.Column('seq', sa.Integer(), nullable=False),
    sa.Column('domain', sa.String(length=255), nullable=True),
    sa.Column('scope', sa.String(length=8), nullable=True),
    sa.Column('result', sa.String(length=16), nullable=True),
    sa.Column('human_result', sa.String(), nullable=True),
    sa.Column('result_raw', sa.String(), nullable=True),
    sa.ForeignKeyConstraint(['report_id', 'record_no'], ['aggregate_record.report_id', 'aggregate_record.record_no'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('report_id', 'record_no', 'seq')
    )


def downgrade() -> None:
    op.drop_table('record_spf_result')
    op.drop_table('record_reason')
    op.drop_table('record_dkim_result')
    op.drop_table('report_origin')
    with op.batch_alter_table('aggregate_record', schema=None) as batch_op:
        batch_op.drop_index('ix_record_source_ip')
        batch_op.drop_index('ix_record_header_from')

    op.drop_table('aggregate_record')
    with op.batch_alter_table('aggregate_report', schema=None) as batch_op:
        batch_op.drop_index('ix_report_org')
        batch_op.drop_index('ix_report_domain_begin')
        batch_op.drop_index('ix_report_begin_end')
        batch_op.drop_index(batch_op.f('ix_aggregate_report_identity_hash'))

    op.drop_table('aggregate_report')
    with op.batch_alter_table('original', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_original_status'))

    op.drop_table('original')
