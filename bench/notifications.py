"""Notification delivery (the last phase; ``--only-subscriptions`` alone): how fast outbox
events reach a rest-hook receiver.

N events are written to the outbox of a fresh PostgreSQL database with one matching
subscription; the worker then fans them out and posts them to a receiver on this machine that
answers 200 at once. Printed: fan-out rate, delivery rate and the time from an event's commit to
its recorded delivery (p50/p95/p99)."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from bench.harness import HEADER, Result, drop_database, migrated_database
from fse.config import Settings
from fse.db import create_engine
from fse.outbox import emit, outbox_events
from fse.runtime.events import MemoryEventStream
from fse.security.clients import create_client
from fse.subscriptions import registry
from fse.subscriptions.criteria import Topics
from fse.subscriptions.delivery import deliver_due, http_client
from fse.subscriptions.fanout import fan_out
from fse.subscriptions.tables import subscription_deliveries
from fse.subscriptions.worker import Worker

DATABASE = "fse_bench_subscriptions"


async def _receiver() -> tuple[asyncio.Server, list[int]]:
    """A keep-alive HTTP/1.1 endpoint answering 200 to every POST; counts what it got."""
    got = [0]

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n"):
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":")[1])
                await reader.readexactly(length)
                got[0] += 1
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            writer.close()

    return await asyncio.start_server(serve, "127.0.0.1", 0), got


async def _run(database_url: str, events: int) -> list[str]:
    settings = Settings(database_url=database_url, payment_schedule=False)
    engine = create_engine(settings.database_url)
    server, got = await _receiver()
    port = server.sockets[0].getsockname()[1]
    topics = Topics()
    topics.offer("ClaimResponse", ("status", "outcome"))
    try:
        owner, _secret = await create_client(engine, "bench-subscriber", "system/Subscription.c")
        async with engine.begin() as conn:
            subscription = {
                "resourceType": "Subscription",
                "status": "requested",
                "reason": "bench",
                "criteria": "ClaimResponse?outcome=complete",
                "channel": {"type": "rest-hook", "endpoint": f"http://127.0.0.1:{port}/hook"},
            }
            await registry.create(conn, owner.client_id, subscription, topics)
        print(f"  writing {events:,} outbox events ...", flush=True)
        for start in range(0, events, 1000):
            async with engine.begin() as conn:
                for n in range(start, min(events, start + 1000)):
                    focus = {"status": "active", "outcome": "complete"}
                    await emit(conn, "claim.adjudicated", f"ClaimResponse/{n}", focus=focus)
        worker = Worker(engine, MemoryEventStream(), settings, relays=False)
        began = time.perf_counter()
        fanned = await fan_out(engine)
        fan_seconds = time.perf_counter() - began
        began = time.perf_counter()
        async with http_client(worker.policy) as http:
            done = await deliver_due(
                engine, worker.store, http, "http://bench/fhir", worker.policy, limit=100
            )
        seconds = time.perf_counter() - began
        steady = await _steady(engine, worker, rate=50, seconds=10)
        return [
            f"backlog fan-out: {fanned:,} deliveries from {events:,} events in {fan_seconds:.2f} s "
            f"({fanned / fan_seconds:,.0f}/s)",
            f"backlog delivery: {done.delivered:,} posted and recorded in {seconds:.2f} s "
            f"({done.delivered / seconds:,.0f}/s), receiver got {got[0]:,}",
            HEADER,
            steady.row(),
            "  (steady: 50 changes/s for 10 s, each announced after its commit as the server "
            "does; latency = event committed -> delivery recorded)",
            f"date: {datetime.now(UTC):%Y-%m-%d %H:%M} UTC",
        ]
    finally:
        server.close()
        await engine.dispose()


async def _steady(engine: AsyncEngine, worker: Worker, rate: int, seconds: float) -> Result:
    """Events written at ``rate`` a second while the worker loop runs, each change announced
    on the event stream after its commit, as the server does."""
    async with engine.connect() as conn:
        known = set((await conn.execute(select(outbox_events.c.event_id))).scalars())
    stop = asyncio.Event()
    loop = asyncio.create_task(worker.run(stop))
    began = time.perf_counter()
    for n in range(int(rate * seconds)):
        async with engine.begin() as conn:
            focus = {"status": "active", "outcome": "complete"}
            await emit(conn, "claim.adjudicated", f"ClaimResponse/s{n}", focus=focus)
        worker.events.publish_soon({"resourceType": "ClaimResponse", "id": f"s{n}"})
        await asyncio.sleep(max(0.0, began + (n + 1) / rate - time.perf_counter()))
    d, o = subscription_deliveries, outbox_events
    query = select(o.c.event_id, o.c.created_at, d.c.delivered_at).join(
        d, d.c.event_id == o.c.event_id
    )
    while True:
        async with engine.connect() as conn:
            rows = [r for r in await conn.execute(query) if r.event_id not in known]
        if len(rows) == int(rate * seconds) and all(r.delivered_at for r in rows):
            break
        await asyncio.sleep(0.2)
    stop.set()
    await loop
    lags = [(r.delivered_at - r.created_at).total_seconds() for r in rows]
    result = Result("notification (steady)", lags, 0, seconds)
    result.per_client = [len(lags)]
    return result


def run(events: int = 20_000) -> int:
    print("subscriptions:", flush=True)
    database_url = migrated_database(DATABASE)
    for line in asyncio.run(_run(database_url, events)):
        print(line, flush=True)
    asyncio.run(drop_database(DATABASE))
    return 0
