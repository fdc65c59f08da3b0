"""Rate limiting with a sliding window, shared across workers when backed by Redis.

The count is the current fixed window's plus the previous one's weighted by how much of it the
sliding window still covers; unlike a plain fixed window, a burst cannot double the limit by
straddling a window boundary.
"""

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
    """Seconds to wait before trying again (0 when allowed)."""


class RateLimiter(Protocol):
    async def hit(
        self, key: str, limit: int, window_seconds: int, now: float | None = None
    ) -> RateDecision: ...
    async def close(self) -> None: ...


def _decide(previous: int, current: int, limit: int, window: int, now: float) -> RateDecision:
    index = int(now // window)
    elapsed = now - index * window
    weight = 1 - elapsed / window
    estimated = previous * weight + current
    if estimated <= limit:
        return RateDecision(True, max(0, math.floor(limit - estimated)), 0)
    # wait until the previous window's weighted share has decayed enough (or the window ends)
    excess = estimated - limit
    wait = window - elapsed if previous == 0 else min(window - elapsed, excess * window / previous)
    return RateDecision(False, 0, max(1, math.ceil(wait)))


class MemoryRateLimiter:
    def __init__(self) -> None:
        self._counts: dict[tuple[str, int], int] = {}

    async def hit(
        self, key: str, limit: int, window_seconds: int, now: float | None = None
    ) -> RateDecision:
        now = time.time() if now is None else now
        index = int(now // window_seconds)
        if len(self._counts) > 100_000:
            self._counts = {k: v for k, v in self._counts.items() if k[1] >= index - 1}
        self._counts[(key, index)] = self._counts.get((key, index), 0) + 1
        previous = self._counts.get((key, index - 1), 0)
        return _decide(previous, self._counts[(key, index)], limit, window_seconds, now)

    async def close(self) -> None:
        self._counts.clear()


class RedisRateLimiter:
    def __init__(self, client: Redis, namespace: str) -> None:
        self._redis = client
        self._prefix = f"{namespace}:rate:"

    async def hit(
        self, key: str, limit: int, window_seconds: int, now: float | None = None
    ) -> RateDecision:
        now = time.time() if now is None else now
        index = int(now // window_seconds)
        current_key = f"{self._prefix}{key}:{index}"
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.incr(current_key)
            pipe.expire(current_key, 2 * window_seconds + 1)
            pipe.get(f"{self._prefix}{key}:{index - 1}")
            current, _, previous = await pipe.execute()
        return _decide(int(previous or 0), int(current), limit, window_seconds, now)

    async def close(self) -> None:
        await self._redis.aclose()
