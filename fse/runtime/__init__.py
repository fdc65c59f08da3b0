"""Runtime services (cache, rate limiter, event stream) with an in-process and a Redis backend.

Without ``FSE_REDIS_URL`` everything runs in-process with the same behaviour; with it, state is
shared by every server worker, and while Redis is unreachable each service falls back to its
in-process version (``fse.runtime.redis_link``). The database stays the source of truth:
nothing here is durable.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from fse.config import Settings
from fse.runtime.cache import Cache, MemoryCache, RedisCache
from fse.runtime.degraded import DegradingCache, DegradingEventStream, DegradingRateLimiter
from fse.runtime.events import EventStream, MemoryEventStream, RedisEventStream
from fse.runtime.ratelimit import MemoryRateLimiter, RateLimiter, RedisRateLimiter
from fse.runtime.redis_link import RedisLink, redis_client


@dataclass
class Runtime:
    cache: Cache
    limiter: RateLimiter
    events: EventStream
    backend: str
    link: RedisLink | None = None
    """Redis and its state; None for the in-process runtime."""
    local: MemoryCache = field(default_factory=MemoryCache)
    """What this process remembers for itself in front of the shared cache (a recorded read's
    window): never shared, never a source of truth, so it may only save a trip to Redis."""

    def health(self) -> dict[str, Any]:
        """What ``GET /ready`` and the CNSS dashboard show of the runtime."""
        if self.link is None:
            return {"backend": self.backend, "redis": {"status": "not-configured"}}
        return {"backend": self.backend, "redis": self.link.state()}

    async def check(self) -> dict[str, Any]:
        """As ``health``, after asking Redis now."""
        if self.link is not None:
            await self.link.check()
        return self.health()

    async def close(self) -> None:
        """Events first: queued ones are flushed while the (shared) Redis client is open."""
        await self.events.close()
        await self.limiter.close()
        await self.cache.close()
        await self.local.close()
        if self.link is not None:
            await self.link.close()


def build_runtime(
    redis_url: str | None,
    namespace: str = "fse",
    timeout_seconds: float = 0.5,
    probe_seconds: float = 1.0,
) -> Runtime:
    """``timeout_seconds``: the longest a Redis operation may take before it counts as an
    outage; ``probe_seconds``: how often a Redis known down is asked again."""
    if not redis_url:
        return Runtime(MemoryCache(), MemoryRateLimiter(), MemoryEventStream(), "in-process")
    client = redis_client(redis_url, timeout_seconds)
    blocking = redis_client(redis_url, timeout_seconds, blocking=True)
    link = RedisLink(client, blocking, timeout_seconds, probe_seconds)
    return Runtime(
        DegradingCache(RedisCache(client, namespace), link),
        DegradingRateLimiter(RedisRateLimiter(client, namespace), link),
        DegradingEventStream(RedisEventStream(client, namespace, blocking_client=blocking), link),
        "redis",
        link,
    )


def runtime_for(settings: Settings) -> Runtime:
    return build_runtime(
        settings.redis_url,
        settings.redis_namespace,
        settings.redis_timeout_seconds,
        settings.redis_retry_seconds,
    )
