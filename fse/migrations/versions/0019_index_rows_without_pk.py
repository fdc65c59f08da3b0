"""index rows without a key of their own (idx_token, _string, _date, _reference, _quantity)

Index rows are found by resource (to clear them on update and delete) and by the lookup
indexes, never one by one: their ``pk`` column and its primary key index were 8 bytes and a
B-tree entry per row that nothing read. SQLite keeps its rowid; PostgreSQL drops the column, its
index and its sequence (the column's bytes in rows already written are reused as rows are
rewritten; ``VACUUM FULL`` on the five tables gives them back at once).

Revision ID: 0019
Revises: 0018
Create Date: 2026-12-04 08:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0019"
down_revision = "0018"
branch_labels = None
depends_on = None

_TABLES = ("idx_token", "idx_string", "idx_date", "idx_reference", "idx_quantity")


def upgrade() -> None:
    for table in _TABLES:
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.drop_column("pk")


def downgrade() -> None:
    """The key back as 0001 made it, numbered in the rows' physical order."""
    if op.get_bind().dialect.name == "postgresql":
        for table in _TABLES:  # BIGSERIAL: the sequence 0001 made, owned by the column
            op.execute(f"ALTER TABLE {table} ADD COLUMN pk BIGSERIAL NOT NULL")
            op.create_primary_key(f"pk_{table}", table, ["pk"])
        return
    for table in _TABLES:  # an INTEGER PRIMARY KEY is the rowid: the copy numbers the rows
        with op.batch_alter_table(table, schema=None, recreate="always") as batch_op:
            batch_op.add_column(
                sa.Column("pk", sa.Integer(), autoincrement=True, nullable=False),
                insert_before="resource_pk",
            )
            batch_op.create_primary_key(f"pk_{table}", ["pk"])
