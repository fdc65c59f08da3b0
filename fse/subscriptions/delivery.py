"""Posting due notifications, with a lease, retries and backoff.

Deliveries are leased (``leased_until``) and their attempt counted in one short transaction,
posted concurrently outside any transaction, and their outcomes recorded in another. A worker
killed in between leaves the lease to expire and another worker posts again: receivers drop the
repeat by the event id
(``Bundle.identifier``, header ``X-FSE-Event-Id``). A failure pushes the subscription's other
pending deliveries back with it, so a receiver that is down is not hammered.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import orjson
from sqlalchemy import and_, bindparam, or_, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from fse import fhir_json
from fse.errors import FhirError
from fse.outbox import message, outbox_events
from fse.security.clients import find_client
from fse.security.scopes import Grant, allows
from fse.store.repository import ResourceStore
from fse.subscriptions.notification import notification
from fse.subscriptions.tables import subscription_deliveries, subscriptions

FHIR_JSON = "application/fhir+json"


@dataclass(frozen=True)
class Policy:
    lease_seconds: float = 60.0
    retry_base_seconds: float = 5.0
    retry_max_seconds: float = 3600.0
    max_attempts: int = 12
    timeout_seconds: float = 10.0

    def backoff(self, attempts: int) -> timedelta:
        """5 s, 10 s, 20 s… doubling per failed attempt, capped."""
        return timedelta(
            seconds=min(self.retry_base_seconds * 2 ** max(attempts - 1, 0), self.retry_max_seconds)
        )


def http_client(policy: Policy, concurrency: int = 100) -> httpx.AsyncClient:
    """The client posting notifications: connections kept open to each receiver (a new TLS
    connection per post would cost more than the post)."""
    return httpx.AsyncClient(
        timeout=policy.timeout_seconds,
        limits=httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency),
    )


@dataclass(frozen=True)
class Due:
    pk: int
    subscription_pk: int
    subscription_id: str
    owner: str
    attempts: int
    event_number: int
    content: dict[str, Any]
    event: dict[str, Any]


@dataclass(frozen=True)
class Outcome:
    delivered: bool
    http_status: int | None = None
    error: str | None = None
    final: bool = False
    """Not worth retrying (the subscription's client was revoked): failed at once."""


@dataclass
class Round:
    delivered: int = 0
    retrying: int = 0
    failed: int = 0

    def __bool__(self) -> bool:
        return bool(self.delivered or self.retrying or self.failed)


async def claim(engine: AsyncEngine, policy: Policy, now: datetime, limit: int) -> list[Due]:
    """Lease the due deliveries of active subscriptions and count the attempt."""
    d, s = subscription_deliveries, subscriptions
    async with engine.connect() as conn:
        await conn.execution_options(fse_write=True)
        async with conn.begin():
            query = (
                select(d.c.pk, d.c.subscription_pk, d.c.attempts, d.c.event_number, d.c.event_id)
                .join(s, s.c.pk == d.c.subscription_pk)
                .where(
                    d.c.status == "pending",
                    d.c.next_attempt_at <= now,
                    or_(d.c.leased_until.is_(None), d.c.leased_until < now),
                    s.c.status == "active",
                )
                .order_by(d.c.next_attempt_at, d.c.pk)
                .limit(limit)
            )
            if conn.dialect.name == "postgresql":
                query = query.with_for_update(of=d, skip_locked=True)
            rows = (await conn.execute(query)).all()
            if not rows:
                return []
            await conn.execute(
                update(d)
                .where(d.c.pk.in_([r.pk for r in rows]))
                .values(
                    leased_until=now + timedelta(seconds=policy.lease_seconds),
                    attempts=d.c.attempts + 1,
                )
            )
            subs = {
                row.pk: row
                for row in await conn.execute(
                    select(s.c.pk, s.c.id, s.c.owner, s.c.resource).where(
                        s.c.pk.in_({r.subscription_pk for r in rows})
                    )
                )
            }
            events = {
                row.event_id: message(row)
                for row in await conn.execute(
                    select(outbox_events).where(
                        outbox_events.c.event_id.in_([r.event_id for r in rows])
                    )
                )
            }
    return [
        Due(
            r.pk,
            r.subscription_pk,
            subs[r.subscription_pk].id,
            subs[r.subscription_pk].owner,
            r.attempts + 1,
            r.event_number,
            orjson.loads(subs[r.subscription_pk].resource),
            events[r.event_id],
        )
        for r in rows
    ]


async def payload_for(
    store: ResourceStore, due: Due, grants: tuple[Grant, ...]
) -> dict[str, Any] | None:
    """The focus resource, if the subscription asked for it and its client may read it now."""
    if (due.content.get("channel") or {}).get("payload") is None:
        return None
    rtype, _, rid = due.event["subject"].partition("/")
    if not allows(grants, rtype, "r"):
        return None
    async with store.snapshot() as conn:
        try:
            stored = await store.read(conn, rtype, rid)
        except FhirError:
            return None
    return fhir_json.loads(stored.content) if stored.content else None


async def attempt(
    store: ResourceStore,
    http: httpx.AsyncClient,
    base: str,
    due: Due,
    grants: tuple[Grant, ...] | None,
) -> Outcome:
    """Post one notification, unless its client was revoked meanwhile (``grants`` None: then
    nothing is sent)."""
    if grants is None:
        return Outcome(False, None, "the subscription's client is revoked: nothing sent", True)
    return await post(http, base, due, await payload_for(store, due, grants))


async def grants_of(engine: AsyncEngine, owners: set[str]) -> dict[str, tuple[Grant, ...] | None]:
    """Each subscription owner's scopes now, None if revoked (one look-up per owner a batch)."""
    grants: dict[str, tuple[Grant, ...] | None] = {}
    for owner in owners:
        found = await find_client(engine, owner)
        grants[owner] = None if found is None or found[0].revoked else found[0].grants
    return grants


async def post(
    http: httpx.AsyncClient, base: str, due: Due, resource: dict[str, Any] | None
) -> Outcome:
    channel = due.content["channel"]
    headers = {"Content-Type": FHIR_JSON, "X-FSE-Event-Id": due.event["eventId"]}
    for header in channel.get("header", []):
        name, _, value = header.partition(":")
        headers[name.strip()] = value.strip()
    body = notification(base, due.subscription_id, due.event, due.event_number, resource)
    try:
        response = await http.post(
            channel["endpoint"], content=fhir_json.dumps(body), headers=headers
        )
    except httpx.HTTPError as error:
        return Outcome(False, None, f"{type(error).__name__}: {error or 'no answer'}")
    if response.is_success:
        return Outcome(True, response.status_code)
    return Outcome(False, response.status_code, f"the receiver answered {response.status_code}")


async def record(
    engine: AsyncEngine, policy: Policy, attempts: list[tuple[Due, Outcome]], now: datetime
) -> list[str]:
    """Store a batch of attempts' outcomes in one transaction; returns for each delivered,
    retrying or failed."""
    d = subscription_deliveries
    results = []
    async with engine.connect() as conn:
        await conn.execution_options(fse_write=True)
        async with conn.begin():
            delivered = [(due, outcome) for due, outcome in attempts if outcome.delivered]
            if delivered:
                await conn.execute(
                    update(d)
                    .where(d.c.pk == bindparam("due_pk"))
                    .values(
                        status="delivered",
                        delivered_at=now,
                        leased_until=None,
                        last_http_status=bindparam("http_status"),
                        last_error=None,
                    ),
                    [{"due_pk": due.pk, "http_status": o.http_status} for due, o in delivered],
                )
            for due, outcome in attempts:
                if outcome.delivered:
                    results.append("delivered")
                    continue
                if outcome.final or due.attempts >= policy.max_attempts:
                    values: dict[str, Any] = {"status": "failed"}
                    results.append("failed")
                else:
                    later = now + policy.backoff(due.attempts)
                    values = {"next_attempt_at": later}
                    results.append("retrying")
                    await conn.execute(
                        update(d)
                        .where(
                            and_(
                                d.c.subscription_pk == due.subscription_pk,
                                d.c.status == "pending",
                                d.c.next_attempt_at < later,
                                d.c.pk != due.pk,
                                or_(d.c.leased_until.is_(None), d.c.leased_until < now),
                            )
                        )
                        .values(next_attempt_at=later)
                    )
                await conn.execute(
                    update(d)
                    .where(d.c.pk == due.pk)
                    .values(
                        leased_until=None,
                        last_http_status=outcome.http_status,
                        last_error=outcome.error,
                        **values,
                    )
                )
    return results


async def deliver_due(
    engine: AsyncEngine,
    store: ResourceStore,
    http: httpx.AsyncClient,
    base: str,
    policy: Policy,
    limit: int = 50,
) -> Round:
    """Lease what is due, ``limit`` at a time, post each batch concurrently and record each
    outcome, until nothing is due (a failed post is due later, not in this round)."""
    done = Round()

    while claimed := await claim(engine, policy, datetime.now(UTC), limit):
        grants = await grants_of(engine, {due.owner for due in claimed})
        outcomes = await asyncio.gather(
            *(attempt(store, http, base, due, grants[due.owner]) for due in claimed)
        )
        recorded = await record(
            engine, policy, list(zip(claimed, outcomes, strict=True)), datetime.now(UTC)
        )
        for result in recorded:
            setattr(done, result, getattr(done, result) + 1)
        if len(claimed) < limit:
            break
    return done
