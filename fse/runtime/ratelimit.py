"""Fixed-window rate limiting, shared across workers when backed by Redis."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Protocol

from redis.asyncio import Redis


@dataclass(frozen=True)
class RateDecision:
    allowed: bool
    remaining: int
    retry_after: int
    """Seconds until the window resets (0 when allowed)."""


class RateLimiter(Protocol):
    async def hit(self, key: str, limit: int, window_seconds: int) -> RateDecision: ...
    async def close(self) -> None: ...


def _window(window_seconds: int, now: float) -> tuple[int, int]:
    index = int(now // window_seconds)
    reset_in = math.ceil((index + 1) * window_seconds - now)
    return index, max(1, reset_in)


def _decide(count: int, limit: int, reset_in: int) -> RateDecision:
    allowed = count <= limit
    return RateDecision(allowed, max(0, limit - count), 0 if allowed else reset_in)


class MemoryRateLimiter:
    def __init__(self) -> None:
        self._counts: dict[tuple[str, int], int] = {}

    async def hit(self, key: str, limit: int, window_seconds: int) -> RateDecision:
        index, reset_in = _window(window_seconds, time.time())
        slot = (key, index)
        if len(self._counts) > 100_000:
            self._counts = {k: v for k, v in self._counts.items() if k[1] >= index}
        self._counts[slot] = self._counts.get(slot, 0) + 1
        return _decide(self._counts[slot], limit, reset_in)

    async def close(self) -> None:
        self._counts.clear()


class RedisRateLimiter:
    def __init__(self, client: Redis, namespace: str) -> None:
        self._redis = client
        self._prefix = f"{namespace}:rate:"

    async def hit(self, key: str, limit: int, window_seconds: int) -> RateDecision:
        index, reset_in = _window(window_seconds, time.time())
        redis_key = f"{self._prefix}{key}:{index}"
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.incr(redis_key)
            pipe.expire(redis_key, window_seconds + 1)
            count, _ = await pipe.execute()
        return _decide(int(count), limit, reset_in)

    async def close(self) -> None:
        await self._redis.aclose()
