"""The Redis-backed runtime services, each with its in-process twin to fall back on.

While Redis is down (``fse.runtime.redis_link``), each service behaves as it does without
``FSE_REDIS_URL``, with what that means: rate-limit counters and the cache are per process (a
limit applies per worker; a revoked client's cached state is forgotten there first) and
wake-up events reach this process's readers only. Each outage starts the in-process state
afresh, so nothing stale from an earlier outage is served.

One exception: ``EventStream.publish`` (the outbox relay, which marks what it published) never
falls back. Its events must reach the shared stream, so it raises ``StreamUnavailable`` and the
events wait in the database until Redis is back.
"""

from __future__ import annotations

import asyncio
from typing import Any

import orjson

from fse.runtime.cache import MemoryCache, RedisCache
from fse.runtime.events import Event, MemoryEventStream, RedisEventStream, StreamUnavailable
from fse.runtime.ratelimit import MemoryRateLimiter, RateDecision, RedisRateLimiter
from fse.runtime.redis_link import REDIS_FAILURES, RedisLink


class DegradingCache:
    def __init__(self, redis: RedisCache, link: RedisLink) -> None:
        self._redis, self._link = redis, link
        self._memory, self._outage = MemoryCache(), 0

    def _fallback(self) -> MemoryCache:
        if self._outage != self._link.outages:
            self._memory, self._outage = MemoryCache(), self._link.outages
        return self._memory

    async def get(self, key: str) -> bytes | None:
        return await self._link.run(
            "cache", lambda: self._redis.get(key), lambda: self._fallback().get(key)
        )

    async def set(self, key: str, value: bytes, ttl_seconds: float) -> None:
        await self._link.run(
            "cache",
            lambda: self._redis.set(key, value, ttl_seconds),
            lambda: self._fallback().set(key, value, ttl_seconds),
        )

    async def delete(self, key: str) -> None:
        await self._memory.delete(key)  # never left behind for a later outage
        await self._link.run(
            "cache", lambda: self._redis.delete(key), lambda: self._fallback().delete(key)
        )

    async def close(self) -> None:
        await self._memory.close()


class DegradingRateLimiter:
    def __init__(self, redis: RedisRateLimiter, link: RedisLink) -> None:
        self._redis, self._link = redis, link
        self._memory, self._outage = MemoryRateLimiter(), 0

    def _fallback(self) -> MemoryRateLimiter:
        if self._outage != self._link.outages:
            self._memory, self._outage = MemoryRateLimiter(), self._link.outages
        return self._memory

    async def hit(
        self, key: str, limit: int, window_seconds: int, now: float | None = None
    ) -> RateDecision:
        return await self._link.run(
            "limiter",
            lambda: self._redis.hit(key, limit, window_seconds, now),
            lambda: self._fallback().hit(key, limit, window_seconds, now),
        )

    async def peek(
        self, key: str, limit: int, window_seconds: int, now: float | None = None
    ) -> RateDecision:
        return await self._link.run(
            "limiter",
            lambda: self._redis.peek(key, limit, window_seconds, now),
            lambda: self._fallback().peek(key, limit, window_seconds, now),
        )

    async def undo(self, key: str, window_seconds: int, now: float) -> None:
        await self._link.run(
            "limiter",
            lambda: self._redis.undo(key, window_seconds, now),
            lambda: self._fallback().undo(key, window_seconds, now),
        )

    async def close(self) -> None:
        await self._memory.close()


class DegradingEventStream:
    def __init__(self, redis: RedisEventStream, link: RedisLink) -> None:
        self._redis, self._link = redis, link
        self._memory = MemoryEventStream(max_len=10_000)
        redis.on_failure = self._publish_failed

    def _publish_failed(self, error: BaseException, batch: list[bytes]) -> None:
        """Queued wake-ups Redis refused still wake this process's readers."""
        self._link.failed(error)
        self._link.fallbacks["events"] += len(batch)
        for data in batch:
            self._memory.publish_soon(orjson.loads(data))

    async def publish(self, event: dict[str, Any]) -> str:
        return (await self.publish_many([event]))[0]

    async def publish_many(self, events: list[dict[str, Any]]) -> list[str]:
        if not self._link.usable():
            raise StreamUnavailable("Redis is unavailable: the event waits in the outbox")
        try:
            async with asyncio.timeout(self._link.deadline):
                return await self._redis.publish_many(events)
        except REDIS_FAILURES as error:
            self._link.failed(error)
            raise StreamUnavailable(f"Redis is unavailable: {error}") from error

    def publish_soon(self, event: dict[str, Any]) -> None:
        if self._link.usable():
            self._redis.publish_soon(event)
        else:
            self._link.fallbacks["events"] += 1
            self._memory.publish_soon(event)

    async def flush(self) -> None:
        await self._redis.flush()
        await self._memory.flush()

    async def read(self, after: str | None, count: int = 100, block_ms: int = 0) -> list[Event]:
        return await self._link.run(
            "events",
            lambda: self._redis.read(after, count, block_ms),
            lambda: self._memory.read(after, count, block_ms),
            deadline=block_ms / 1000 + self._link.deadline,
        )

    async def last_id(self) -> str | None:
        return await self._link.run("events", self._redis.last_id, self._memory.last_id)

    async def close(self) -> None:
        await self._redis.flush()
        await self._memory.close()
