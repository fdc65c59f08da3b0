"""Cache, rate limiter and event stream behave the same in-process and on real Redis."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import pytest

from fse.runtime import Runtime, build_runtime
from tests.services import REDIS_URL


@pytest.fixture(params=["in-process", "redis"])
async def runtime(request: pytest.FixtureRequest) -> AsyncIterator[Runtime]:
    built = build_runtime(
        REDIS_URL if request.param == "redis" else None, f"fse-test-{uuid.uuid4().hex[:8]}"
    )
    assert built.backend == request.param
    yield built
    await built.close()


async def test_cache_round_trip_expiry_and_delete(runtime: Runtime) -> None:
    assert await runtime.cache.get("k") is None
    await runtime.cache.set("k", b"v", ttl_seconds=5)
    assert await runtime.cache.get("k") == b"v"
    await runtime.cache.delete("k")
    assert await runtime.cache.get("k") is None
    await runtime.cache.set("short", b"v", ttl_seconds=0.05)
    await asyncio.sleep(0.15)
    assert await runtime.cache.get("short") is None


async def test_rate_limiter_allows_the_limit_then_refuses(runtime: Runtime) -> None:
    decisions = [
        await runtime.limiter.hit("client:a", limit=3, window_seconds=60) for _ in range(4)
    ]
    assert [d.allowed for d in decisions] == [True, True, True, False]
    assert [d.remaining for d in decisions] == [2, 1, 0, 0]
    assert 1 <= decisions[-1].retry_after <= 60
    assert (await runtime.limiter.hit("client:b", limit=3, window_seconds=60)).allowed


async def test_a_burst_across_a_window_boundary_is_still_limited(runtime: Runtime) -> None:
    window, start = 60, 1_800_000_000.0  # a window boundary
    before = [await runtime.limiter.hit("client:edge", 3, window, now=start - 1) for _ in range(3)]
    assert all(d.allowed for d in before)
    after = await runtime.limiter.hit("client:edge", 3, window, now=start + 1)
    assert not after.allowed  # a fixed window would have reset here
    assert 1 <= after.retry_after <= window
    later = await runtime.limiter.hit("client:edge", 3, window, now=start + window - 1)
    assert later.allowed  # the previous window has slid almost out


async def test_peek_counts_nothing_and_undo_takes_a_hit_back(runtime: Runtime) -> None:
    limiter, window, now = runtime.limiter, 60, 1_800_000_010.0  # 10 s into a window
    assert (await limiter.peek("login:a", 2, window, now)).remaining == 1
    for _ in range(2):
        assert (await limiter.hit("login:a", 2, window, now)).allowed
    for _ in range(3):  # looking does not count
        assert not (await limiter.peek("login:a", 2, window, now)).allowed
    await limiter.undo("login:a", window, now)
    assert (await limiter.peek("login:a", 2, window, now)).allowed
    for _ in range(3):  # never below zero
        await limiter.undo("login:a", window, now)
    assert [(await limiter.hit("login:a", 2, window, now)).allowed for _ in range(3)] == [
        True,
        True,
        False,
    ]


async def test_peek_says_exactly_when_one_more_fits(runtime: Runtime) -> None:
    limiter, window, now = runtime.limiter, 60, 1_800_000_010.0
    for _ in range(2):
        await limiter.hit("login:b", 2, window, now)
    refused = await limiter.peek("login:b", 2, window, now)
    # this window's 2 hits become the next one's share: half of it must have slid out
    assert refused.retry_after == 50 + 30
    later = now + refused.retry_after
    assert not (await limiter.peek("login:b", 2, window, later - 1)).allowed
    assert (await limiter.peek("login:b", 2, window, later)).allowed


async def test_event_stream_is_ordered_and_resumable(runtime: Runtime) -> None:
    first = await runtime.events.publish({"n": 1})
    second = await runtime.events.publish({"n": 2})
    events = await runtime.events.read(None)
    assert [e for _, e in events] == [{"n": 1}, {"n": 2}]
    assert [i for i, _ in events] == [first, second]
    assert [e for _, e in await runtime.events.read(first)] == [{"n": 2}]
    assert await runtime.events.read(second) == []


async def test_last_id_is_the_newest_event_none_when_empty(runtime: Runtime) -> None:
    assert await runtime.events.last_id() is None
    await runtime.events.publish({"n": 1})
    newest = await runtime.events.publish({"n": 2})
    assert await runtime.events.last_id() == newest
    assert await runtime.events.read(newest) == []


async def test_queued_events_are_published_in_order(runtime: Runtime) -> None:
    last = await runtime.events.publish({"n": 0})
    for n in range(1, 51):
        runtime.events.publish_soon({"n": n})
    await runtime.events.flush()
    assert [e["n"] for _, e in await runtime.events.read(last, count=100)] == list(range(1, 51))


async def test_blocking_read_wakes_on_queued_publish(runtime: Runtime) -> None:
    last = await runtime.events.publish({"n": 0})
    reader = asyncio.create_task(runtime.events.read(last, block_ms=2000))
    await asyncio.sleep(0.05)
    runtime.events.publish_soon({"n": 1})
    assert [e for _, e in await reader] == [{"n": 1}]


async def test_blocking_read_wakes_on_publish(runtime: Runtime) -> None:
    last = await runtime.events.publish({"n": 0})

    async def later() -> None:
        await asyncio.sleep(0.05)
        await runtime.events.publish({"n": 1})

    task = asyncio.create_task(later())
    events = await runtime.events.read(last, block_ms=2000)
    await task
    assert [e for _, e in events] == [{"n": 1}]
    assert await runtime.events.read(events[0][0], block_ms=50) == []


async def test_redis_backend_is_shared_between_workers() -> None:
    namespace = f"fse-test-{uuid.uuid4().hex[:8]}"
    one, two = build_runtime(REDIS_URL, namespace), build_runtime(REDIS_URL, namespace)
    try:
        await one.cache.set("shared", b"1", ttl_seconds=5)
        assert await two.cache.get("shared") == b"1"
        await one.limiter.hit("client:x", limit=1, window_seconds=60)
        assert not (await two.limiter.hit("client:x", limit=1, window_seconds=60)).allowed
        await one.events.publish({"from": "one"})
        assert [e for _, e in await two.events.read(None)] == [{"from": "one"}]
    finally:
        await one.close()
        await two.close()


async def test_closing_flushes_queued_events_first() -> None:
    namespace = f"fse-test-{uuid.uuid4().hex[:8]}"
    writer, reader = build_runtime(REDIS_URL, namespace), build_runtime(REDIS_URL, namespace)
    try:
        for n in range(5):
            writer.events.publish_soon({"n": n})
        await writer.close()
        assert [e["n"] for _, e in await reader.events.read(None)] == list(range(5))
    finally:
        await reader.close()
