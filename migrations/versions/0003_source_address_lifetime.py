"""source addresses keep their lifetime message count and days seen

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-28
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0003'
down_revision: str | None = '0002'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column('source_address', sa.Column('messages', sa.BigInteger(), nullable=False,
                                              server_default='0'))
    op.add_column('source_address', sa.Column('first_day', sa.Date(), nullable=False,
                                              server_default='0001-01-01'))
    op.add_column('source_address', sa.Column('last_day', sa.Date(), nullable=False,
                                              server_default='0001-01-01'))
    # the sums of what the daily source totals already hold (conflicting copies are not in them)
    op.execute(
        "UPDATE source_address SET "
        "messages = COALESCE((SELECT SUM(t.messages) FROM daily_source_totals t "
        "WHERE t.source_id = source_address.id), 0), "
        "first_day = COALESCE((SELECT MIN(t.first_day) FROM daily_source_totals t "
        "WHERE t.source_id = source_address.id), first_day), "
        "last_day = COALESCE((SELECT MAX(t.last_day) FROM daily_source_totals t "
        "WHERE t.source_id = source_address.id), last_day)")
    op.create_index('ix_source_address_messages', 'source_address', ['messages', 'id'], unique=False)
    op.create_index('ix_source_address_days', 'source_address', ['last_day', 'first_day'], unique=False)


def downgrade() -> None:
    # plain ALTER TABLE (SQLite 3.35+): a batch copy would drop a table others refer to
    op.drop_index('ix_source_address_days', table_name='source_address')
    op.drop_index('ix_source_address_messages', table_name='source_address')
    for column in ('last_day', 'first_day', 'messages'):
        op.drop_column('source_address', column)
