"""The transactional outbox: an event exists exactly when its change committed; the relay
publishes each once, in order, and keeps them while the stream is down."""

from __future__ import annotations

import asyncio
import contextlib
from datetime import timedelta

import httpx
import orjson
import pytest
from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError
from sqlalchemy import select, update

from fse import app as app_module
from fse.app import relay_periodically
from fse.outbox import outbox_events, prune, relay
from fse.runtime.events import MemoryEventStream, RedisEventStream
from pharmacy.reversal import reverse_dispense
from tests.conftest import Platform
from tests.pharmacy.helpers import AT, counter, fatima_sheet, line, order
from tests.reimbursement.demo import FATIMA, act, claim, load_demo
from tests.reimbursement.test_review_and_payments import held_claim, payments, review
from tests.statements import statements

SUBMIT = "/fhir/Claim/$submit"


async def kinds(platform: Platform) -> list[str]:
    async with platform.engine.connect() as conn:
        return list(
            (await conn.execute(select(outbox_events.c.kind).order_by(outbox_events.c.pk)))
            .scalars()
            .all()
        )


async def foci(platform: Platform) -> list[tuple[str, str, dict[str, str]]]:
    """(kind, subject type, focus): what a Subscription's criteria are matched against."""
    async with platform.engine.connect() as conn:
        rows = await conn.execute(
            select(outbox_events.c.kind, outbox_events.c.subject, outbox_events.c.data).order_by(
                outbox_events.c.pk
            )
        )
        return [
            (k, subject.split("/")[0], orjson.loads(data)["focus"]) for k, subject, data in rows
        ]


async def test_each_change_writes_its_event_in_its_own_transaction(
    platform: Platform, client: httpx.AsyncClient
) -> None:
    refs, sheet = await fatima_sheet(platform, client)  # the doctor's acts are adjudicated
    assert await kinds(platform) == ["claim.adjudicated"]
    refused = await client.post(SUBMIT, json={**claim(refs, FATIMA, []), "item": []})
    assert refused.status_code == 422
    assert await kinds(platform) == ["claim.adjudicated"]  # nothing stored, nothing announced
    held = await held_claim(client, refs)
    await client.post(f"/fhir/ClaimResponse/{held['id']}/$review", json=review("release"))
    desk = await counter(platform, refs)
    ciclo = line(await desk.lines(sheet.number), "CICLOVIRAL")
    done = await desk.dispense(ciclo.patient_id, order(ciclo, 1, price="209.00"))
    zone = platform.app.state.settlement.schedule.zone
    await reverse_dispense(platform.app.state.fhir, desk.pharmacist, done.number, AT, zone)
    await payments(platform).run()
    assert await kinds(platform) == [
        "claim.adjudicated",
        "claim.adjudicated",  # the costly medicine...
        "claim.held",  # ... held for review
        "claim.reviewed",
        "claim.adjudicated",  # the pharmacy's claim, in the dispense's transaction
        "medication.dispensed",
        "medication.dispense-reversed",
        "payment.batch-paid",
    ]
    active, complete = {"status": "active"}, {"status": "active", "outcome": "complete"}
    assert await foci(platform) == [
        ("claim.adjudicated", "ClaimResponse", complete),
        ("claim.adjudicated", "ClaimResponse", {"status": "active", "outcome": "queued"}),
        ("claim.held", "ClaimResponse", {"status": "active", "outcome": "queued"}),
        ("claim.reviewed", "ClaimResponse", complete),
        ("claim.adjudicated", "ClaimResponse", complete),
        ("medication.dispensed", "Claim", active),
        ("medication.dispense-reversed", "Claim", {"status": "cancelled"}),
        ("payment.batch-paid", "PaymentReconciliation", active),
    ]


async def test_the_relay_publishes_each_event_once_in_order(
    platform: Platform, client: httpx.AsyncClient
) -> None:
    refs = await load_demo(client)
    for day in ("2026-11-18", "2026-11-19", "2026-11-20"):
        await client.post(SUBMIT, json=claim(refs, FATIMA, [act("C", "80.00", day)]))
    stream = MemoryEventStream()
    assert await relay(platform.engine, stream, batch=2) == 3
    assert await relay(platform.engine, stream) == 0  # published events are not sent again
    events = [e for _, e in await stream.read(None)]
    assert [e["kind"] for e in events] == ["claim.adjudicated"] * 3
    assert len({e["eventId"] for e in events}) == 3
    first = events[0]
    assert first["subject"].startswith("ClaimResponse/") and first["patient"] == refs[FATIMA]
    assert (first["outcome"], first["status"], first["benefit"]) == (
        "complete",
        "approved",
        "56.00",
    )
    # References, statuses and amounts only: a receiver reads the rest with its own scopes.
    assert set(first) == {
        "eventId",
        "kind",
        "subject",
        "patient",
        "occurredAt",
        "claim",
        "outcome",
        "status",
        "benefit",
        "focus",
    }
    assert first["focus"] == {"status": "active", "outcome": "complete"}  # what Subscriptions match


async def test_the_relay_marks_a_batch_with_its_stream_ids_in_one_round_trip(
    platform: Platform, client: httpx.AsyncClient
) -> None:
    """Each row keeps the id the stream gave its event; the batch is published in one call and
    marked by one statement (executemany), not a publish and an UPDATE per event."""
    refs = await load_demo(client)
    for day in ("2026-11-18", "2026-11-19", "2026-11-20"):
        await client.post(SUBMIT, json=claim(refs, FATIMA, [act("C", "80.00", day)]))
    stream = MemoryEventStream()
    with statements(platform.engine) as sent:
        assert await relay(platform.engine, stream) == 3
    updates = [s for s in sent if s.sql.startswith("UPDATE outbox_events")]
    assert len(updates) == 1 and len(updates[0].parameters) == 3
    published = await stream.read(None)
    async with platform.engine.connect() as conn:
        rows = (
            await conn.execute(
                select(outbox_events.c.event_id, outbox_events.c.stream_id).order_by(
                    outbox_events.c.pk
                )
            )
        ).all()
    assert [(r.event_id, r.stream_id) for r in rows] == [
        (event["eventId"], stream_id) for stream_id, event in published
    ]


async def test_events_wait_while_redis_is_down_then_go_out_once(
    platform: Platform, client: httpx.AsyncClient
) -> None:
    refs = await load_demo(client)
    await client.post(SUBMIT, json=claim(refs, FATIMA, [act("C", "80.00", "2026-11-20")]))
    down = Redis.from_url("redis://127.0.0.1:1/0")  # nothing listens there: Redis is "down"
    with pytest.raises(RedisConnectionError):
        await relay(platform.engine, RedisEventStream(down, "fse-down"))
    await down.aclose()
    async with platform.engine.connect() as conn:
        waiting = await conn.scalar(
            select(outbox_events.c.event_id).where(outbox_events.c.published_at.is_(None))
        )
    assert waiting is not None
    up = Redis.from_url("redis://127.0.0.1:6379/0")
    stream = RedisEventStream(up, f"fse-test-outbox-{waiting[:8]}")
    try:
        assert await relay(platform.engine, stream) == 1
        events = [e for _, e in await stream.read(None)]
        assert [e["eventId"] for e in events] == [waiting]
    finally:
        await up.delete(f"fse-test-outbox-{waiting[:8]}:events")
        await up.aclose()


async def test_events_every_receiver_had_are_pruned_after_their_keep(
    platform: Platform, client: httpx.AsyncClient
) -> None:
    refs = await load_demo(client)
    for day in ("2026-11-18", "2026-11-19", "2026-11-20"):
        await client.post(SUBMIT, json=claim(refs, FATIMA, [act("C", "80.00", day)]))
    events = outbox_events.c
    assert await relay(platform.engine, MemoryEventStream()) == 3
    async with platform.engine.begin() as conn:  # two of three dispatched to Subscriptions
        first_two = select(events.pk).order_by(events.pk).limit(2).scalar_subquery()
        await conn.execute(
            update(outbox_events).where(events.pk.in_(first_two)).values(dispatched_at=AT)
        )
    assert await prune(platform.engine, timedelta(days=7)) == 0  # not old enough yet
    assert await prune(platform.engine, timedelta(0), batch=1) == 2  # a batch per transaction
    async with platform.engine.connect() as conn:
        left = (await conn.execute(select(events.dispatched_at))).all()
    assert left == [(None,)]  # the one not dispatched waits, whatever its age


async def test_the_relay_loop_prunes_once_an_hour_and_never_when_told_to_keep_all(
    platform: Platform, client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    refs = await load_demo(client)
    for day in ("2026-11-18", "2026-11-19"):
        await client.post(SUBMIT, json=claim(refs, FATIMA, [act("C", "80.00", day)]))
    runtime = platform.app.state.runtime
    assert await relay(platform.engine, runtime.events) == 2
    async with platform.engine.begin() as conn:  # every receiver had them, ten days ago
        await conn.execute(update(outbox_events).values(created_at=AT, dispatched_at=AT))

    async def loop_for_a_while(keep_days: float) -> int:
        relayer = asyncio.create_task(relay_periodically(platform.engine, runtime, 0.01, keep_days))
        await asyncio.sleep(0.3)
        relayer.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await relayer
        return len(await kinds(platform))

    assert await loop_for_a_while(keep_days=7) == 2  # not an hour since the loop started
    monkeypatch.setattr(app_module, "PRUNE_EVERY_SECONDS", 0.05)
    assert await loop_for_a_while(keep_days=0) == 2  # 0: keep them all
    assert await loop_for_a_while(keep_days=30) == 2  # younger than the keep
    assert await loop_for_a_while(keep_days=7) == 0
