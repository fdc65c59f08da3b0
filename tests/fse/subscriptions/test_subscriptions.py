"""Rest-hook Subscriptions: CNSS systems are pushed each matching outbox event once, with the
reference only unless their scopes allow the resource, through receivers that fail or are down."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from fhir.resources.R4B.bundle import Bundle
from sqlalchemy import func, select, update

from fse.security.clients import create_client, revoke_client
from fse.subscriptions.delivery import deliver_due
from fse.subscriptions.fanout import fan_out
from fse.subscriptions.tables import subscription_deliveries, subscriptions
from fse.subscriptions.worker import Worker
from tests.conftest import Platform
from tests.fse.subscriptions.receiver import Receiver
from tests.reimbursement.demo import FATIMA, act, claim, load_demo
from tests.reimbursement.test_review_and_payments import held_claim

SUBMIT = "/fhir/Claim/$submit"


def subscription(
    endpoint: str, criteria: str, payload: str | None = None, **extra: Any
) -> dict[str, Any]:
    channel: dict[str, Any] = {
        "type": "rest-hook",
        "endpoint": endpoint,
        "header": ["Authorization: Bearer receiver-secret"],
    }
    if payload:
        channel["payload"] = payload
    return {
        "resourceType": "Subscription",
        "status": "requested",
        "reason": "contrôle des feuilles retenues",
        "criteria": criteria,
        "channel": channel,
        **extra,
    }


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    started = Receiver().start()
    yield started
    started.stop()


def worker(platform: Platform, relays: bool = False, **settings: Any) -> Worker:
    tuned = platform.settings.model_copy(update=settings)
    return Worker(platform.engine, platform.app.state.runtime.events, tuned, relays=relays)


async def one_round(work: Worker) -> Any:
    async with httpx.AsyncClient(timeout=5) as http:
        return await work.round(http)


async def as_client(
    platform: Platform, client: httpx.AsyncClient, scopes: str
) -> httpx.AsyncClient:
    token = await platform.token_with(scopes)
    return httpx.AsyncClient(
        transport=client._transport,
        base_url="http://test",
        headers={"Authorization": f"Bearer {token}"},
    )


@pytest.fixture
async def integrator(
    platform: Platform, client: httpx.AsyncClient
) -> AsyncIterator[httpx.AsyncClient]:
    """A CNSS system that may subscribe and read ClaimResponses, nothing else."""
    async with await as_client(
        platform, client, "system/Subscription.cruds system/ClaimResponse.rs"
    ) as http:
        yield http


async def deliveries(platform: Platform) -> list[Any]:
    async with platform.engine.connect() as conn:
        return (
            await conn.execute(
                select(subscription_deliveries).order_by(subscription_deliveries.c.pk)
            )
        ).all()


async def test_a_held_claim_is_pushed_once_with_its_reference_only(
    platform: Platform, client: httpx.AsyncClient, integrator: httpx.AsyncClient, receiver: Receiver
) -> None:
    created = await integrator.post(
        "/fhir/Subscription", json=subscription(receiver.url, "ClaimResponse?outcome=queued")
    )
    assert created.status_code == 201, created.text
    sub = created.json()
    assert sub["status"] == "active" and sub["meta"]["versionId"] == "1"
    located = await integrator.get(created.headers["location"].removeprefix("http://test"))
    assert located.status_code == 200 and located.json() == sub
    other = await integrator.post(
        "/fhir/Subscription", json=subscription(receiver.url, "PaymentReconciliation")
    )
    assert other.status_code == 201
    refs = await load_demo(client)
    await client.post(SUBMIT, json=claim(refs, FATIMA, [act("C", "80.00", "2026-11-20")]))
    held = await held_claim(client, refs)  # complete vs queued: only the held one matches

    done = await one_round(worker(platform))
    assert (done.delivered, done.retrying, done.failed) == (2, 0, 0)
    topics = []
    for note in receiver.received:
        Bundle.model_validate(note.body)
        assert note.body["type"] == "history"
        assert note.headers["authorization"] == "Bearer receiver-secret"
        assert note.body["identifier"]["value"] == f"urn:uuid:{note.event_id}"
        (status,) = [e["resource"] for e in note.body["entry"]]  # no resource: reference only
        (event,) = status["notificationEvent"]
        assert event["focus"] == {"reference": f"ClaimResponse/{held['id']}"}
        assert status["subscription"]["reference"].endswith(f"/Subscription/{sub['id']}")
        topics.append((event["eventNumber"], status["topic"].rsplit("/", 1)[1]))
    assert sorted(topics) == [("1", "claim.adjudicated"), ("2", "claim.held")]

    again = await one_round(worker(platform))
    assert not again and len(receiver.received) == 2  # delivered once, never again
    state = (await integrator.get(f"/fhir/Subscription/{sub['id']}/$status")).json()
    assert state["eventsSinceSubscriptionStart"] == "2"
    assert {e["url"].rsplit("-", 1)[1]: e["valueUnsignedInt"] for e in state["extension"]} == {
        "delivered": 2,
        "pending": 0,
        "failed": 0,
    }


async def test_the_resource_travels_only_when_asked_for_and_allowed(
    platform: Platform, client: httpx.AsyncClient, integrator: httpx.AsyncClient, receiver: Receiver
) -> None:
    criteria = "ClaimResponse?outcome=complete"
    full = subscription(receiver.url, criteria, payload="application/fhir+json")
    assert (await integrator.post("/fhir/Subscription", json=full)).status_code == 201
    async with await as_client(platform, client, "system/Subscription.cruds") as blind:
        assert (await blind.post("/fhir/Subscription", json=full)).status_code == 201
    refs = await load_demo(client)
    submitted = await client.post(
        SUBMIT, json=claim(refs, FATIMA, [act("C", "80.00", "2026-11-20")])
    )
    response_id = submitted.json()["id"]
    await one_round(worker(platform))
    assert len(receiver.received) == 2
    shapes = sorted(len(note.body["entry"]) for note in receiver.received)
    assert shapes == [1, 2]  # the client without ClaimResponse.r gets the reference only
    (rich,) = [n for n in receiver.received if len(n.body["entry"]) == 2]
    resource = rich.body["entry"][1]["resource"]
    assert (resource["resourceType"], resource["id"]) == ("ClaimResponse", response_id)
    assert resource["outcome"] == "complete"


async def test_bad_subscriptions_are_refused_with_the_path_and_nothing_stored(
    platform: Platform, client: httpx.AsyncClient, integrator: httpx.AsyncClient
) -> None:
    cases = [
        ("Patient?name=Alaoui", "Subscription.criteria"),
        ("ClaimResponse?disposition=x", "Subscription.criteria"),
        ("ClaimResponse?outcome=", "Subscription.criteria"),
    ]
    for criteria, path in cases:
        refused = await integrator.post(
            "/fhir/Subscription", json=subscription("https://cnss.example/hook", criteria)
        )
        assert refused.status_code == 422, criteria
        (issue,) = refused.json()["issue"]
        assert issue["details"]["coding"][0]["code"] == "FSE-0028"
        assert issue["expression"] == [path]
    plain_http = subscription("http://cnss.example/hook", "ClaimResponse")
    websocket = subscription("https://cnss.example/hook", "ClaimResponse")
    websocket["channel"]["type"] = "websocket"
    for body, path in (
        (plain_http, "Subscription.channel.endpoint"),
        (websocket, "Subscription.channel.type"),
    ):
        refused = await integrator.post("/fhir/Subscription", json=body)
        assert refused.status_code == 422 and refused.json()["issue"][0]["expression"] == [path]
    async with await as_client(platform, client, "system/ClaimResponse.rs") as reader:
        denied = await reader.post(
            "/fhir/Subscription", json=subscription("https://cnss.example/hook", "ClaimResponse")
        )
        assert denied.status_code == 403
    async with platform.engine.connect() as conn:
        assert await conn.scalar(select(func.count()).select_from(subscriptions)) == 0


async def test_each_client_sees_only_its_own_and_a_deleted_one_stops(
    platform: Platform, client: httpx.AsyncClient, integrator: httpx.AsyncClient, receiver: Receiver
) -> None:
    sub = (
        await integrator.post(
            "/fhir/Subscription", json=subscription(receiver.url, "ClaimResponse")
        )
    ).json()
    async with await as_client(platform, client, "system/Subscription.cruds") as stranger:
        assert (await stranger.get(f"/fhir/Subscription/{sub['id']}")).status_code == 404
        assert (await stranger.delete(f"/fhir/Subscription/{sub['id']}")).status_code == 404
        assert (await stranger.get("/fhir/Subscription")).json()["total"] == 0
    listed = (await integrator.get("/fhir/Subscription")).json()
    assert [e["resource"]["id"] for e in listed["entry"]] == [sub["id"]]
    paused = {**sub, "status": "off"}
    stale = await integrator.put(
        f"/fhir/Subscription/{sub['id']}", json=paused, headers={"If-Match": 'W/"9"'}
    )
    assert stale.status_code == 412
    updated = await integrator.put(
        f"/fhir/Subscription/{sub['id']}", json=paused, headers={"If-Match": 'W/"1"'}
    )
    assert updated.status_code == 200 and updated.json()["meta"]["versionId"] == "2"
    refs = await load_demo(client)
    await client.post(SUBMIT, json=claim(refs, FATIMA, [act("C", "80.00", "2026-11-20")]))
    await one_round(worker(platform))
    assert receiver.received == []  # paused: nothing sent
    assert (await integrator.delete(f"/fhir/Subscription/{sub['id']}")).status_code == 204
    assert (await integrator.get(f"/fhir/Subscription/{sub['id']}")).status_code == 410


async def test_a_receiver_that_is_down_gets_every_event_once_when_it_returns(
    platform: Platform, client: httpx.AsyncClient, integrator: httpx.AsyncClient, receiver: Receiver
) -> None:
    await integrator.post("/fhir/Subscription", json=subscription(receiver.url, "ClaimResponse"))
    receiver.stop()  # down: connection refused
    refs = await load_demo(client)
    for day in ("2026-11-18", "2026-11-19"):
        await client.post(SUBMIT, json=claim(refs, FATIMA, [act("C", "80.00", day)]))
    work = worker(platform, subscription_retry_base_seconds=30)
    before = datetime.now(UTC)
    done = await one_round(work)
    assert (done.delivered, done.retrying) == (0, 2)
    rows = await deliveries(platform)
    assert [(r.status, r.attempts) for r in rows] == [("pending", 1), ("pending", 1)]
    assert all(r.next_attempt_at >= before + timedelta(seconds=29) for r in rows)  # backoff
    assert "ConnectError" in rows[0].last_error
    assert not await one_round(work)  # not due yet: the receiver is left alone

    receiver.start()  # back on the same port
    async with platform.engine.begin() as conn:  # time passes
        await conn.execute(
            update(subscription_deliveries).values(next_attempt_at=datetime.now(UTC))
        )
    done = await one_round(work)
    assert done.delivered == 2
    assert len(receiver.received) == 2 and len(receiver.processed()) == 2
    rows = await deliveries(platform)
    assert [(r.status, r.attempts, r.last_http_status) for r in rows] == [
        ("delivered", 2, 200),
        ("delivered", 2, 200),
    ]


async def test_a_receiver_failing_every_time_ends_in_the_failed_log(
    platform: Platform, client: httpx.AsyncClient, integrator: httpx.AsyncClient, receiver: Receiver
) -> None:
    await integrator.post("/fhir/Subscription", json=subscription(receiver.url, "ClaimResponse"))
    receiver.mode = "fail"
    refs = await load_demo(client)
    await client.post(SUBMIT, json=claim(refs, FATIMA, [act("C", "80.00", "2026-11-20")]))
    work = worker(platform, subscription_retry_base_seconds=0, subscription_max_attempts=3)
    results = [await one_round(work) for _ in range(4)]
    assert [(r.retrying, r.failed) for r in results] == [(1, 0), (1, 0), (0, 1), (0, 0)]
    (row,) = await deliveries(platform)
    assert (row.status, row.attempts, row.last_http_status) == ("failed", 3, 500)
    assert len(receiver.received) == 3


async def test_delivery_does_not_wait_for_redis_and_the_stream_catches_up(
    platform: Platform,
    client: httpx.AsyncClient,
    integrator: httpx.AsyncClient,
    receiver: Receiver,
    own_redis: Any,
) -> None:
    """Redis (our own server on its own port) is stopped between two claims, then restarted."""
    await integrator.post("/fhir/Subscription", json=subscription(receiver.url, "ClaimResponse"))
    refs = await load_demo(client)
    stream = own_redis.stream()
    work = Worker(platform.engine, stream, platform.settings, relays=True)
    try:
        await client.post(SUBMIT, json=claim(refs, FATIMA, [act("C", "80.00", "2026-11-18")]))
        await one_round(work)
        own_redis.stop()
        await client.post(SUBMIT, json=claim(refs, FATIMA, [act("C", "80.00", "2026-11-19")]))
        done = await one_round(work)  # the relay fails, the delivery does not
        assert done.delivered == 1 and len(receiver.processed()) == 2
        await asyncio.wait_for(work.wait(0.3), 5)  # a stream that is down only slows the wake-up
        own_redis.start()
        await client.post(SUBMIT, json=claim(refs, FATIMA, [act("C", "80.00", "2026-11-20")]))
        await one_round(work)
        published = [event["eventId"] for _, event in await stream.read(None)]
        assert len(published) == len(set(published)) == 3  # the stream caught up, once each
        assert receiver.processed() == published and len(receiver.received) == 3
    finally:
        await stream.close()


async def test_a_backlog_larger_than_a_batch_goes_out_in_one_round(
    platform: Platform, client: httpx.AsyncClient, integrator: httpx.AsyncClient, receiver: Receiver
) -> None:
    await integrator.post("/fhir/Subscription", json=subscription(receiver.url, "ClaimResponse"))
    refs = await load_demo(client)
    for day in ("2026-11-16", "2026-11-17", "2026-11-18", "2026-11-19", "2026-11-20"):
        await client.post(SUBMIT, json=claim(refs, FATIMA, [act("C", "80.00", day)]))
    work = worker(platform)
    await fan_out(platform.engine)
    async with httpx.AsyncClient(timeout=5) as http:
        done = await deliver_due(
            platform.engine, work.store, http, "http://test/fhir", work.policy, limit=2
        )
    assert done.delivered == 5 and len(receiver.processed()) == 5
    numbers = sorted(
        int(n.body["entry"][0]["resource"]["eventsSinceSubscriptionStart"])
        for n in receiver.received
    )
    assert numbers == [1, 2, 3, 4, 5]


async def test_a_revoked_client_is_told_nothing_more(
    platform: Platform, client: httpx.AsyncClient, receiver: Receiver
) -> None:
    name = f"revoked-{receiver.port}"
    system, _secret = await create_client(platform.engine, name, "system/Subscription.cruds")
    token = platform.token_for(system.client_id, "system/Subscription.cruds")
    created = await client.post(
        "/fhir/Subscription",
        json=subscription(receiver.url, "ClaimResponse"),
        headers={"Authorization": f"Bearer {token}"},
    )
    assert created.status_code == 201
    refs = await load_demo(client)
    await client.post(SUBMIT, json=claim(refs, FATIMA, [act("C", "80.00", "2026-11-20")]))
    await revoke_client(platform.engine, name)
    done = await one_round(worker(platform))
    assert (done.delivered, done.retrying, done.failed) == (0, 0, 1)
    assert receiver.received == []
    (row,) = await deliveries(platform)
    assert row.status == "failed" and "revoked" in row.last_error


async def test_the_worker_wakes_when_a_change_is_announced_not_at_its_next_poll(
    platform: Platform, client: httpx.AsyncClient, integrator: httpx.AsyncClient, receiver: Receiver
) -> None:
    await integrator.post("/fhir/Subscription", json=subscription(receiver.url, "ClaimResponse"))
    refs = await load_demo(client)
    work = worker(platform, subscription_poll_seconds=60)
    stop = asyncio.Event()
    loop = asyncio.create_task(work.run(stop))
    try:
        await asyncio.sleep(0.5)  # the first round is done; the worker now waits up to 60 s
        began = time.monotonic()
        await client.post(SUBMIT, json=claim(refs, FATIMA, [act("C", "80.00", "2026-11-20")]))
        await asyncio.to_thread(receiver.wait_for, 1, 10)
        assert time.monotonic() - began < 10  # woken by the announcement, not the 60 s poll
    finally:
        stop.set()
        work.events.publish_soon({"wake": "to stop"})
        await asyncio.wait_for(loop, 10)
