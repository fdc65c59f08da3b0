"""Subscriptions and their delivery log. A delivery row exists once per (subscription, event):
the UNIQUE makes fan-out idempotent, the lease lets several workers share the work and lets a
killed worker's delivery be taken over once its lease expires."""

from __future__ import annotations

from sqlalchemy import (
    Column,
    ForeignKey,
    Index,
    Integer,
    String,
    Table,
    Text,
    UniqueConstraint,
)

from fse.store.tables import PrimaryKey, UtcDateTime, metadata

subscriptions = Table(
    "subscriptions",
    metadata,
    Column("pk", PrimaryKey, primary_key=True, autoincrement=True),
    Column("id", String(64), nullable=False, unique=True),
    # The system client that created it; its scopes decide what the payload may carry.
    Column("owner", String(140), nullable=False),
    Column("version", Integer, nullable=False),
    Column("status", String(16), nullable=False),
    Column("resource_type", String(64), nullable=False),
    Column("filters", Text, nullable=False),  # JSON {search parameter: [accepted values]}
    Column("resource", Text, nullable=False),  # the Subscription as the client sees it
    Column("events_count", Integer, nullable=False, default=0),
    Column("created_at", UtcDateTime, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
    Index("ix_subscriptions_owner", "owner"),
)

subscription_deliveries = Table(
    "subscription_deliveries",
    metadata,
    Column("pk", PrimaryKey, primary_key=True, autoincrement=True),
    Column("subscription_pk", ForeignKey("subscriptions.pk"), nullable=False),
    Column("event_id", String(36), nullable=False),
    # Events sent to this subscription so far, this one included (SubscriptionStatus).
    Column("event_number", Integer, nullable=False),
    # pending, delivered, or failed (gave up after the last attempt)
    Column("status", String(16), nullable=False),
    Column("attempts", Integer, nullable=False, default=0),
    Column("next_attempt_at", UtcDateTime, nullable=False),
    Column("leased_until", UtcDateTime, nullable=True),
    Column("last_http_status", Integer, nullable=True),
    Column("last_error", Text, nullable=True),
    Column("created_at", UtcDateTime, nullable=False),
    Column("delivered_at", UtcDateTime, nullable=True),
    UniqueConstraint("subscription_pk", "event_id", name="uq_delivery_once_per_event"),
    Index("ix_subscription_deliveries_due", "status", "next_attempt_at"),
)
