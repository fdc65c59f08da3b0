"""subscriptions

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-30 01:05:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

PK = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "subscriptions",
        sa.Column("pk", PK, autoincrement=True, nullable=False),
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("owner", sa.String(length=140), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("resource_type", sa.String(length=64), nullable=False),
        sa.Column("filters", sa.Text(), nullable=False),
        sa.Column("resource", sa.Text(), nullable=False),
        sa.Column("events_count", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("pk", name=op.f("pk_subscriptions")),
        sa.UniqueConstraint("id", name=op.f("uq_subscriptions_id")),
    )
    with op.batch_alter_table("subscriptions", schema=None) as batch_op:
        batch_op.create_index("ix_subscriptions_owner", ["owner"], unique=False)
    op.create_table(
        "subscription_deliveries",
        sa.Column("pk", PK, autoincrement=True, nullable=False),
        sa.Column("subscription_pk", PK, nullable=False),
        sa.Column("event_id", sa.String(length=36), nullable=False),
        sa.Column("event_number", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(), nullable=False),
        sa.Column("leased_until", sa.DateTime(), nullable=True),
        sa.Column("last_http_status", sa.Integer(), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("delivered_at", sa.DateTime(), nullable=True),
        sa.ForeignKeyConstraint(
            ["subscription_pk"],
            ["subscriptions.pk"],
            name=op.f("fk_subscription_deliveries_subscription_pk_subscriptions"),
        ),
        sa.PrimaryKeyConstraint("pk", name=op.f("pk_subscription_deliveries")),
        sa.UniqueConstraint("subscription_pk", "event_id", name="uq_delivery_once_per_event"),
    )
    with op.batch_alter_table("subscription_deliveries", schema=None) as batch_op:
        batch_op.create_index(
            "ix_subscription_deliveries_due", ["status", "next_attempt_at"], unique=False
        )
    with op.batch_alter_table("outbox_events", schema=None) as batch_op:
        batch_op.add_column(sa.Column("dispatched_at", sa.DateTime(), nullable=True))
        batch_op.create_index(
            "ix_outbox_events_undispatched", ["dispatched_at", "pk"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("outbox_events", schema=None) as batch_op:
        batch_op.drop_index("ix_outbox_events_undispatched")
        batch_op.drop_column("dispatched_at")
    op.drop_table("subscription_deliveries")
    op.drop_table("subscriptions")
