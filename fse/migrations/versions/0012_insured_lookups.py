"""insured lookups (the access model's "insured looked up" rule)

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-03 00:10:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "insured_lookups",
        sa.Column(
            "pk",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("user_pk", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("patient_id", sa.String(length=64), nullable=False),
        sa.Column("looked_up_at", sa.DateTime(), nullable=False),
        sa.Column("expires_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["user_pk"],
            ["users.pk"],
            name=op.f("fk_insured_lookups_user_pk_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("pk", name=op.f("pk_insured_lookups")),
    )
    with op.batch_alter_table("insured_lookups", schema=None) as batch_op:
        batch_op.create_index(
            "ix_insured_lookups_user_expires", ["user_pk", "expires_at"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("insured_lookups", schema=None) as batch_op:
        batch_op.drop_index("ix_insured_lookups_user_expires")
    op.drop_table("insured_lookups")
