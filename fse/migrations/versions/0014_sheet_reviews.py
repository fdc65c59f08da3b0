"""sheet reviews (the doctor's review page is a GET of a stored form)

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-03 04:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "sheet_reviews",
        sa.Column("idempotency_key", sa.String(length=128), nullable=False),
        sa.Column("practitioner", sa.String(length=140), nullable=False),
        sa.Column("patient_id", sa.String(length=64), nullable=False),
        sa.Column("form", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("idempotency_key", name=op.f("pk_sheet_reviews")),
    )
    with op.batch_alter_table("sheet_reviews", schema=None) as batch_op:
        batch_op.create_index("ix_sheet_reviews_created_at", ["created_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("sheet_reviews", schema=None) as batch_op:
        batch_op.drop_index("ix_sheet_reviews_created_at")
    op.drop_table("sheet_reviews")
