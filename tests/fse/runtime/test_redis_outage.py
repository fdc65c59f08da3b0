"""Redis going away (stopped, never there, frozen) and coming back, against our own redis-server:
cache, rate limits and wake-up events fall back to the in-process runtime, say so once, and use
Redis again by themselves once it answers."""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from redis.asyncio import Redis
from redis.exceptions import TimeoutError as RedisTimeoutError

from fse.runtime import Runtime, build_runtime
from fse.runtime.events import StreamUnavailable
from tests.services import OwnRedis, free_port

WINDOW = 60


@pytest.fixture
async def runtime(own_redis: OwnRedis) -> AsyncIterator[Runtime]:
    built = build_runtime(own_redis.url, f"fse-test-{uuid.uuid4().hex[:8]}")
    yield built
    await built.close()


async def counted_in_redis(own_redis: OwnRedis, key: str) -> int:
    """Hits of ``key`` in the current window as Redis holds them (0: not counted there)."""
    async with Redis.from_url(own_redis.url) as raw:
        found = [k async for k in raw.scan_iter(match=f"*:rate:{key}:*")]
        return sum([int(await raw.get(k) or 0) for k in found])


async def until(predicate: object, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if await predicate():  # type: ignore[operator]
            return True
        await asyncio.sleep(0.1)
    return False


def warnings_of(caplog: pytest.LogCaptureFixture, words: str) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.levelno >= logging.WARNING and r.name.startswith("fse.") and words in r.getMessage()
    ]


async def test_redis_stopped_falls_back_once_then_is_used_again(
    own_redis: OwnRedis, runtime: Runtime, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="fse.runtime")
    assert (await runtime.limiter.hit("client:a", 2, WINDOW)).allowed
    assert await counted_in_redis(own_redis, "client:a") == 1
    own_redis.stop()

    decisions = [await runtime.limiter.hit("client:a", 2, WINDOW) for _ in range(3)]
    assert [d.allowed for d in decisions] == [True, True, False]  # counted in-process
    await runtime.cache.set("k", b"v", 5)
    assert await runtime.cache.get("k") == b"v"
    runtime.events.publish_soon({"n": 1})  # a wake-up for this process's worker
    assert [e for _, e in await runtime.events.read(None, block_ms=500)] == [{"n": 1}]
    for _ in range(20):
        await runtime.limiter.peek("client:a", 2, WINDOW)

    health = runtime.health()
    assert health["redis"]["status"] == "down"
    assert health["redis"]["outages"] == 1
    assert health["redis"]["fallbacks"] >= 26
    assert len(warnings_of(caplog, "Redis unavailable")) == 1  # per outage, not per request

    own_redis.start()
    assert await until(lambda: _hit_counted(runtime, own_redis, "client:b"), 4), (
        "the limiter did not go back to Redis"
    )
    assert runtime.health()["redis"]["status"] == "up"
    assert runtime.health()["redis"]["outages"] == 1
    assert len(warnings_of(caplog, "Redis unavailable")) == 1
    assert len(warnings_of(caplog, "Redis answers again")) == 1


async def _hit_counted(runtime: Runtime, own_redis: OwnRedis, key: str) -> bool:
    before = await counted_in_redis(own_redis, key)
    await runtime.limiter.hit(key, 100, WINDOW)
    return await counted_in_redis(own_redis, key) == before + 1


async def test_redis_absent_at_start_then_started(tmp_path: Path) -> None:
    own = OwnRedis(tmp_path, free_port())  # not started yet
    runtime = build_runtime(own.url, f"fse-test-{uuid.uuid4().hex[:8]}")
    try:
        assert (await runtime.limiter.hit("client:a", 1, WINDOW)).allowed
        assert not (await runtime.limiter.hit("client:a", 1, WINDOW)).allowed
        assert await runtime.cache.get("k") is None
        assert runtime.health()["redis"]["status"] == "down"
        own.start()
        assert await until(lambda: _hit_counted(runtime, own, "client:c"), 4)
        assert runtime.health()["redis"]["status"] == "up"
    finally:
        await runtime.close()
        own.stop()


async def test_a_frozen_redis_does_not_hang_requests(own_redis: OwnRedis, runtime: Runtime) -> None:
    """Connections accepted, nothing answered (a blackhole): an operation gives up within the
    short timeout, and while Redis is known down none waits for it at all."""
    assert (await runtime.limiter.hit("client:a", 5, WINDOW)).allowed
    own_redis.freeze()
    try:
        started = time.monotonic()
        assert (await runtime.limiter.hit("client:a", 5, WINDOW)).allowed
        assert time.monotonic() - started < 1.5
        assert await until(lambda: _is_down(runtime), 3)  # a PING confirmed it
        started = time.monotonic()
        for _ in range(50):
            await runtime.limiter.hit("client:z", 1000, WINDOW)
            await runtime.cache.get("k")
        assert time.monotonic() - started < 0.5
        assert runtime.health()["redis"]["status"] == "down"
    finally:
        own_redis.thaw()
    assert await until(lambda: _hit_counted(runtime, own_redis, "client:d"), 4)


async def _is_down(runtime: Runtime) -> bool:
    return bool(runtime.health()["redis"]["status"] == "down")


async def test_a_timeout_alone_is_not_an_outage(own_redis: OwnRedis, runtime: Runtime) -> None:
    """Under load an operation can time out because this process held its event loop (a slow
    request), not because of Redis (seen with `fse serve` on a busy machine): only a PING that
    fails too starts an outage."""
    assert runtime.link is not None
    runtime.link.failed(RedisTimeoutError("Timeout reading from 127.0.0.1"))
    await asyncio.sleep(0.3)  # the confirming PING answers
    assert runtime.health()["redis"]["status"] == "up"
    assert runtime.health()["redis"]["outages"] == 0
    assert await _hit_counted(runtime, own_redis, "client:e")
    own_redis.freeze()
    try:
        runtime.link.failed(RedisTimeoutError("Timeout reading from 127.0.0.1"))
        assert await until(lambda: _is_down(runtime), 4)
    finally:
        own_redis.thaw()


async def test_pooled_connections_from_before_a_restart_give_no_error(
    own_redis: OwnRedis, runtime: Runtime
) -> None:
    """Redis restarted between two requests: the pooled connections are dead; the next
    operation reconnects and is counted in Redis, nothing falls back."""
    await asyncio.gather(*(runtime.limiter.hit("client:a", 100, WINDOW) for _ in range(5)))
    own_redis.stop()
    own_redis.start()
    await asyncio.gather(*(runtime.limiter.hit("client:a", 100, WINDOW) for _ in range(5)))
    assert await counted_in_redis(own_redis, "client:a") == 10
    assert runtime.health()["redis"] == {**runtime.health()["redis"], "outages": 0}


async def test_the_relay_never_publishes_to_the_fallback(
    own_redis: OwnRedis, runtime: Runtime
) -> None:
    """The outbox relay marks what it published: while Redis is down its events must wait in
    the database, not go to a process's memory where no other worker would see them."""
    await runtime.events.publish({"n": 0})
    own_redis.stop()
    with pytest.raises(StreamUnavailable):
        await runtime.events.publish({"n": 1})
    started = time.monotonic()
    with pytest.raises(StreamUnavailable):  # known down: refused at once
        await runtime.events.publish({"n": 2})
    assert time.monotonic() - started < 0.1


async def test_ready_check_answers_quickly_with_a_frozen_redis(
    own_redis: OwnRedis, runtime: Runtime
) -> None:
    """`GET /ready` asks Redis now: a blackholed Redis is reported down within the deadline,
    and answering again is noticed at the next check."""
    assert (await runtime.check())["redis"]["status"] == "up"
    own_redis.freeze()
    try:
        started = time.monotonic()
        assert (await runtime.check())["redis"]["status"] == "down"
        assert time.monotonic() - started < 1.5
    finally:
        own_redis.thaw()
    assert (await runtime.check())["redis"]["status"] == "up"
