"""The transactional outbox: what happened (a claim adjudicated or held, a dispense, a payment
batch, a review) is written as an event row in the same transaction as the change itself, so an
event exists exactly when its change committed. A relay publishes the rows to the event stream
(Redis, or in-process) in order and marks them; if the stream is down the rows wait, and the
next relay publishes them. A crash between publishing and marking publishes an event twice:
receivers drop duplicates by ``eventId``.

Events carry references and statuses, no health data: a receiver allowed to see more reads the
resource through the API with its own scopes.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
from sqlalchemy import (
    Column,
    Index,
    Row,
    String,
    Table,
    Text,
    bindparam,
    delete,
    insert,
    select,
    update,
)
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from fse.runtime.events import EventStream
from fse.store.tables import PrimaryKey, UtcDateTime, metadata

outbox_events = Table(
    "outbox_events",
    metadata,
    Column("pk", PrimaryKey, primary_key=True, autoincrement=True),
    Column("event_id", String(36), nullable=False, unique=True),
    Column("kind", String(48), nullable=False),
    Column("subject", String(140), nullable=False),
    Column("patient", String(140), nullable=True),
    Column("data", Text, nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    Column("published_at", UtcDateTime, nullable=True),
    Column("stream_id", String(64), nullable=True),
    Column("dispatched_at", UtcDateTime, nullable=True),
    Index("ix_outbox_events_unpublished", "published_at", "pk"),
    Index("ix_outbox_events_undispatched", "dispatched_at", "pk"),
)
"""``published_at``: sent to the event stream by the relay. ``dispatched_at``: turned into
deliveries for the matching Subscriptions (``fse.subscriptions.fanout``), independently of
the stream, so that notifications do not wait for Redis."""


async def emit(
    conn: AsyncConnection,
    kind: str,
    subject: str,
    patient: str | None = None,
    *,
    focus: dict[str, str],
    **data: Any,
) -> str:
    """Record an event inside the caller's transaction; returns its id.

    ``focus`` holds the subject's FHIR search values that Subscriptions filter on (e.g.
    ``{"status": "active", "outcome": "queued"}`` for a held ClaimResponse)."""
    row = event_row(kind, subject, patient, focus=focus, **data)
    await conn.execute(insert(outbox_events).values(**row))
    return str(row["event_id"])


def event_row(
    kind: str, subject: str, patient: str | None = None, *, focus: dict[str, str], **data: Any
) -> dict[str, Any]:
    """An event's ``outbox_events`` row, for a caller that writes it with its own rows (in
    the same transaction, as :func:`emit` does)."""
    return {
        "event_id": str(uuid.uuid4()),
        "kind": kind,
        "subject": subject,
        "patient": patient,
        "data": orjson.dumps({"focus": focus, **data}, default=str).decode(),
        "created_at": datetime.now(UTC),
    }


def message(row: Any) -> dict[str, Any]:
    return {
        "eventId": row.event_id,
        "kind": row.kind,
        "subject": row.subject,
        "patient": row.patient,
        "occurredAt": row.created_at.isoformat(timespec="seconds"),
        **orjson.loads(row.data),
    }


async def waiting(conn: AsyncConnection, mark: Column[Any], batch: int) -> Sequence[Row[Any]]:
    """The oldest events ``mark`` (published_at, dispatched_at) is not set on yet, locked for
    the caller's transaction; on PostgreSQL other workers skip them and take the next ones."""
    query = select(outbox_events).where(mark.is_(None)).order_by(outbox_events.c.pk).limit(batch)
    if conn.dialect.name == "postgresql":
        query = query.with_for_update(skip_locked=True)
    return (await conn.execute(query)).all()


_PUBLISHED = (
    update(outbox_events)
    .where(outbox_events.c.pk == bindparam("row_pk"))
    .values(published_at=bindparam("now"), stream_id=bindparam("sid"))
)


async def relay(engine: AsyncEngine, stream: EventStream, batch: int = 500) -> int:
    """Publish the waiting events in order; returns how many. The stream failing rolls the
    batch back (nothing marked): the events are published by a later run."""
    published = 0
    while True:
        async with engine.connect() as conn:
            await conn.execution_options(fse_write=True)
            async with conn.begin():
                rows = await waiting(conn, outbox_events.c.published_at, batch)
                if rows:
                    ids = await stream.publish_many([message(row) for row in rows])
                    now = datetime.now(UTC)
                    await conn.execute(  # one round trip: the driver pipelines executemany
                        _PUBLISHED,
                        [
                            {"row_pk": row.pk, "now": now, "sid": stream_id}
                            for row, stream_id in zip(rows, ids, strict=True)
                        ],
                    )
        published += len(rows)
        if len(rows) < batch:
            return published


async def prune(engine: AsyncEngine, keep: timedelta, batch: int = 5_000) -> int:
    """Delete the events both published and dispatched more than ``keep`` ago, oldest first, a
    batch per transaction; returns how many. They are dead weight once every receiver had
    them (the stream keeps its own copy, deliveries their own rows); those still waiting stay
    whatever their age."""
    cutoff = datetime.now(UTC) - keep
    events = outbox_events.c
    done = select(events.pk).where(
        events.published_at.is_not(None),
        events.dispatched_at.is_not(None),
        events.created_at < cutoff,
    )
    pruned = 0
    while True:
        async with engine.begin() as conn:
            chosen = done.order_by(events.pk).limit(batch).scalar_subquery()
            deleted = await conn.execute(delete(outbox_events).where(events.pk.in_(chosen)))
            count = deleted.rowcount or 0
        pruned += count
        if count < batch:
            return pruned
