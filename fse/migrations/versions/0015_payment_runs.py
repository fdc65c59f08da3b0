"""payment runs (one `fse pay` per cut-off, cluster-wide) and a batch booked once

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-03 05:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "payment_runs",
        sa.Column("cutoff", sa.DateTime(), nullable=False),
        sa.Column("worker", sa.String(length=140), nullable=False),
        sa.Column("started_at", sa.DateTime(), nullable=False),
        sa.Column("finished_at", sa.DateTime(), nullable=True),
        sa.Column("exit_code", sa.Integer(), nullable=True),
        sa.PrimaryKeyConstraint("cutoff", name=op.f("pk_payment_runs")),
    )
    with op.batch_alter_table("ledger_entries", schema=None) as batch_op:
        batch_op.create_index(
            "ux_ledger_entries_batch_once", ["batch_pk", "account", "kind"], unique=True
        )


def downgrade() -> None:
    with op.batch_alter_table("ledger_entries", schema=None) as batch_op:
        batch_op.drop_index("ux_ledger_entries_batch_once")
    op.drop_table("payment_runs")
