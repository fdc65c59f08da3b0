"""Runtime services (cache, rate limiter, event stream) with an in-process and a Redis backend.

Without ``FSE_REDIS_URL`` everything runs in-process with the same behaviour; with it, state is
shared by every server worker. The database stays the source of truth: nothing here is durable.
"""

from __future__ import annotations

from dataclasses import dataclass

from fse.runtime.cache import Cache, MemoryCache, RedisCache
from fse.runtime.events import EventStream, MemoryEventStream, RedisEventStream
from fse.runtime.ratelimit import MemoryRateLimiter, RateLimiter, RedisRateLimiter


@dataclass
class Runtime:
    cache: Cache
    limiter: RateLimiter
    events: EventStream
    backend: str

    async def close(self) -> None:
        """Events first: queued ones are flushed while the (shared) Redis client is open."""
        await self.events.close()
        await self.limiter.close()
        await self.cache.close()


def build_runtime(redis_url: str | None, namespace: str = "fse") -> Runtime:
    if not redis_url:
        return Runtime(MemoryCache(), MemoryRateLimiter(), MemoryEventStream(), "in-process")
    from redis.asyncio import Redis

    client = Redis.from_url(redis_url)
    return Runtime(
        RedisCache(client, namespace),
        RedisRateLimiter(client, namespace),
        RedisEventStream(client, namespace),
        "redis",
    )
