"""signed sheets (a reviewed form signs one care sheet; same-day duplicates)

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-03 01:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "signed_sheets",
        sa.Column(
            "pk",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("number", sa.String(length=32), nullable=False),
        sa.Column("practitioner", sa.String(length=140), nullable=False),
        sa.Column("idempotency_key", sa.String(length=128), nullable=False),
        sa.Column("content_hash", sa.String(length=64), nullable=False),
        sa.Column("patient_id", sa.String(length=64), nullable=False),
        sa.Column("care_date", sa.Date(), nullable=False),
        sa.Column("lines_hash", sa.String(length=64), nullable=False),
        sa.Column("signed_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("pk", name=op.f("pk_signed_sheets")),
        sa.UniqueConstraint("number", name=op.f("uq_signed_sheets_number")),
        sa.UniqueConstraint("practitioner", "idempotency_key", name="uq_signed_sheets_idempotency"),
    )
    with op.batch_alter_table("signed_sheets", schema=None) as batch_op:
        batch_op.create_index(
            "ix_signed_sheets_same_day", ["practitioner", "patient_id", "care_date"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("signed_sheets", schema=None) as batch_op:
        batch_op.drop_index("ix_signed_sheets_same_day")
    op.drop_table("signed_sheets")
