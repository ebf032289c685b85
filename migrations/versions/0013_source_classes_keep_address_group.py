"""report_source_classes keeps its address's group and identity

The forwarding page ranks a month of per-address class rows by sender: looking each row's
address up cost PostgreSQL more than the ranking itself (a hash of every address ever seen,
built per request, then a sort on the group name computed per row). Each row now carries the
group and identity its address had when it was judged (ingest.address_group). Existing rows
have none (NULL) and are grouped through their addresses as before until `rua serve`'s cycle
fills them (ingest.address_group.fill_address_groups); the partial index holds the rows
without a group, so the pages and the filling find them without reading the others.

Revision ID: 0013
Revises: 0012
Create Date: 2026-11-29
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0013'
down_revision: str | None = '0012'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

COLUMNS = (('group_key', 255), ('keyed_by', 8), ('sender', 255), ('service', 128), ('service_type', 24))
UNGROUPED = 'group_key IS NULL'


def upgrade() -> None:
    for name, length in COLUMNS:  # nullable columns: added in place on both databases
        op.add_column('report_source_classes', sa.Column(name, sa.String(length=length), nullable=True))
    op.create_index('ix_report_source_classes_ungrouped', 'report_source_classes', ['report_id', 'source_id'],
                    sqlite_where=sa.text(UNGROUPED), postgresql_where=sa.text(UNGROUPED))


def downgrade() -> None:
    op.drop_index('ix_report_source_classes_ungrouped', table_name='report_source_classes')
    for name, _ in reversed(COLUMNS):
        # in place (SQLite 3.35+): a batch rebuild would lose the table's WITHOUT ROWID
        op.execute(f'ALTER TABLE report_source_classes DROP COLUMN {name}')
