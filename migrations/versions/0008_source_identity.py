"""source addresses carry who they are: reverse DNS, network and catalogue service

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-28
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0008'
down_revision: str | None = '0007'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

COLUMNS = (
    ('sender', sa.String(length=255)),
    ('service', sa.String(length=128)),
    ('service_type', sa.String(length=24)),
    ('matched_by', sa.String(length=24)),
    ('ptr', sa.String(length=255)),
    ('reverse_dns', sa.String(length=16)),
    ('base_domain', sa.String(length=255)),
    ('asn', sa.Integer()),
    ('as_name', sa.String(length=255)),
    ('country', sa.String(length=2)),
    ('identified_at', sa.DateTime(timezone=True)),
)


def upgrade() -> None:
    # plain ALTER TABLE (SQLite 3.35+): a batch copy would drop a table others refer to
    for name, type_ in COLUMNS:
        op.add_column('source_address', sa.Column(name, type_, nullable=True))
    op.create_index('ix_source_address_identified_at', 'source_address', ['identified_at'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_source_address_identified_at', table_name='source_address')
    for name, _ in reversed(COLUMNS):
        op.drop_column('source_address', name)
