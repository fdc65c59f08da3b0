"""settlement holds (each anomaly rule that held a sheet, and the professional answerable)

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-03 08:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "settlement_holds",
        sa.Column(
            "pk",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column(
            "settlement_pk", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column("rule", sa.String(length=64), nullable=False),
        sa.Column("professional_ref", sa.String(length=140), nullable=False),
        sa.ForeignKeyConstraint(
            ["settlement_pk"],
            ["settlements.pk"],
            name=op.f("fk_settlement_holds_settlement_pk_settlements"),
        ),
        sa.PrimaryKeyConstraint("pk", name=op.f("pk_settlement_holds")),
        sa.UniqueConstraint("settlement_pk", "rule", name="uq_settlement_holds_rule"),
    )
    with op.batch_alter_table("settlement_holds", schema=None) as batch_op:
        batch_op.create_index(
            "ix_settlement_holds_professional", ["professional_ref", "rule"], unique=False
        )
    # Sheets held before this table existed: their rules, on the sheet's provider (who the
    # prescription came from was not recorded then).
    bind = op.get_bind()
    held = bind.execute(
        sa.text("SELECT pk, provider_ref, hold_rules FROM settlements WHERE hold_rules IS NOT NULL")
    ).all()
    rows = [
        {"settlement_pk": pk, "rule": rule, "professional_ref": provider}
        for pk, provider, rules in held
        for rule in dict.fromkeys(str(rules).split(","))
        if rule
    ]
    if rows:
        holds = sa.table(
            "settlement_holds",
            sa.column("settlement_pk"),
            sa.column("rule"),
            sa.column("professional_ref"),
        )
        op.bulk_insert(holds, rows)


def downgrade() -> None:
    with op.batch_alter_table("settlement_holds", schema=None) as batch_op:
        batch_op.drop_index("ix_settlement_holds_professional")
    op.drop_table("settlement_holds")
