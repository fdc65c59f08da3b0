"""Rate limiting with a sliding window, shared across workers when backed by Redis.

The count is the current fixed window's plus the previous one's weighted by how much of it the
sliding window still covers; unlike a plain fixed window, a burst cannot double the limit by
straddling a window boundary.

``hit`` counts and decides. Counting only some outcomes (failed logins) uses ``hit`` as a
tentative count, atomic so that concurrent attempts cannot all slip under the limit, then
``undo`` for those that turn out not to count, and ``peek`` to tell when one more will fit.
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
    async def peek(
        self, key: str, limit: int, window_seconds: int, now: float | None = None
    ) -> RateDecision:
        """Whether one more hit would be allowed now, without counting it; if not, when."""
        ...

    async def undo(self, key: str, window_seconds: int, now: float) -> None:
        """Take back one hit made at ``now`` (a tentative count that turned out not to count)."""
        ...

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


def _room(previous: int, current: int, limit: int, window: int, now: float) -> RateDecision:
    """Whether one more hit fits now and, if not, exactly how long until it does (if nothing
    else is counted meanwhile): later in this window as the previous one's share decays, or
    once the current window's hits have become the previous window's share."""
    index = int(now // window)
    elapsed = now - index * window
    estimated = previous * (1 - elapsed / window) + current
    if estimated + 1 <= limit:
        return RateDecision(True, max(0, math.floor(limit - estimated - 1)), 0)
    if limit < 1:
        return RateDecision(False, 0, window)
    if current + 1 <= limit:  # then previous > 0: its share must decay to limit - current - 1
        wait = window * (1 - (limit - current - 1) / previous) - elapsed
    else:  # current >= limit >= 1: next window, current's share must decay to limit - 1
        wait = window - elapsed + window * (1 - (limit - 1) / current)
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

    async def peek(
        self, key: str, limit: int, window_seconds: int, now: float | None = None
    ) -> RateDecision:
        now = time.time() if now is None else now
        index = int(now // window_seconds)
        previous = self._counts.get((key, index - 1), 0)
        return _room(previous, self._counts.get((key, index), 0), limit, window_seconds, now)

    async def undo(self, key: str, window_seconds: int, now: float) -> None:
        slot = (key, int(now // window_seconds))
        left = self._counts.get(slot, 0) - 1
        if left > 0:
            self._counts[slot] = left
        else:
            self._counts.pop(slot, None)

    async def close(self) -> None:
        self._counts.clear()


# Decrement, but never below zero (nor create a key that has expired meanwhile).
_UNDO = """
local n = tonumber(redis.call('GET', KEYS[1]) or '0')
if n > 0 then return redis.call('DECR', KEYS[1]) end
return 0
"""


class RedisRateLimiter:
    def __init__(self, client: Redis, namespace: str) -> None:
        self._redis = client
        self._prefix = f"{namespace}:rate:"
        self._undo = client.register_script(_UNDO)

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

    async def peek(
        self, key: str, limit: int, window_seconds: int, now: float | None = None
    ) -> RateDecision:
        now = time.time() if now is None else now
        index = int(now // window_seconds)
        current, previous = await self._redis.mget(
            f"{self._prefix}{key}:{index}", f"{self._prefix}{key}:{index - 1}"
        )
        return _room(int(previous or 0), int(current or 0), limit, window_seconds, now)

    async def undo(self, key: str, window_seconds: int, now: float) -> None:
        await self._undo(keys=[f"{self._prefix}{key}:{int(now // window_seconds)}"])

    async def close(self) -> None:
        await self._redis.aclose()
