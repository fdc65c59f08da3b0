"""Outbox events → one delivery per matching active subscription, in the transaction that marks
the events dispatched: each event is fanned out exactly once, whether or not Redis is up."""

from __future__ import annotations

from datetime import UTC, datetime

import orjson
from sqlalchemy import insert, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from fse.outbox import message, outbox_events, waiting
from fse.subscriptions.criteria import Criteria
from fse.subscriptions.tables import subscription_deliveries, subscriptions


async def fan_out(engine: AsyncEngine, batch: int = 500) -> int:
    """Dispatch the waiting events; returns how many deliveries were created."""
    created = 0
    while True:
        async with engine.connect() as conn:
            await conn.execution_options(fse_write=True)
            async with conn.begin():
                events = await waiting(conn, outbox_events.c.dispatched_at, batch)
                if not events:
                    return created
                active = [
                    (sub.pk, sub.created_at, Criteria(sub.resource_type, orjson.loads(sub.filters)))
                    for sub in await conn.execute(
                        select(subscriptions).where(subscriptions.c.status == "active")
                    )
                ]
                wanted: dict[int, list[str]] = {}
                for event in events:
                    body = message(event)
                    for pk, since, criteria in active:
                        if since <= event.created_at and criteria.matches(body):
                            wanted.setdefault(pk, []).append(event.event_id)
                now = datetime.now(UTC)
                for sub_pk, event_ids in wanted.items():
                    # Numbers are taken under the subscription's row lock: no two workers
                    # hand out the same eventNumber.
                    last = await conn.scalar(
                        update(subscriptions)
                        .where(subscriptions.c.pk == sub_pk)
                        .values(events_count=subscriptions.c.events_count + len(event_ids))
                        .returning(subscriptions.c.events_count)
                    )
                    assert last is not None
                    first = last - len(event_ids) + 1
                    await conn.execute(
                        insert(subscription_deliveries),
                        [
                            {
                                "subscription_pk": sub_pk,
                                "event_id": event_id,
                                "event_number": first + offset,
                                "status": "pending",
                                "attempts": 0,
                                "next_attempt_at": now,
                                "created_at": now,
                            }
                            for offset, event_id in enumerate(event_ids)
                        ],
                    )
                    created += len(event_ids)
                await conn.execute(
                    update(outbox_events)
                    .where(outbox_events.c.pk.in_([e.pk for e in events]))
                    .values(dispatched_at=now)
                )
        if len(events) < batch:
            return created
