"""Locking out guessers: failed authentications (web login, ``/auth/token``) are counted per
subject (an account, a client id) and per client address, each against its own limit, so that
neither spreading guesses over many addresses nor over many accounts gets around it.

Only failures count. An attempt is counted before the credentials are checked, atomically, so
concurrent guesses cannot all slip under the limit; a success (or an error that decided
nothing) gives its count back. An attempt over a limit is refused without checking the
credentials at all (no oracle, no argon2 work) and is not counted either, so the lock ends when
the window has passed. The counters are the runtime's rate limiter: Redis when configured
(shared by every worker), in-process otherwise, and in-process while Redis does not answer (a
count taken in Redis and given back during an outage is not given back there: it errs on the
side of counting).
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Awaitable, Sequence
from dataclasses import dataclass, field
from typing import TypeVar

from fse.runtime.ratelimit import RateLimiter

T = TypeVar("T")


def subject_key(kind: str, value: str) -> str:
    """A counter key for a name someone typed: hashed, so a huge or odd value stays a short key
    and no user name is written to Redis."""
    return f"{kind}:{hashlib.sha256(value.encode()).hexdigest()[:32]}"


@dataclass
class Attempt:
    """One authentication attempt, tentatively counted against each of its limits."""

    allowed: bool
    retry_after: int
    """Seconds until an attempt will be accepted again (0 when this one is)."""
    _limiter: RateLimiter
    _window: int
    _keys: list[str] = field(default_factory=list)
    _at: float = 0.0

    async def check(self, verify: Awaitable[T | None]) -> T | None:
        """Await the credential check: a ``None`` (wrong credentials) stays counted; a success,
        or an exception that decided nothing, is given back."""
        try:
            result = await verify
        except BaseException:
            await self._give_back()
            raise
        if result is not None:
            await self._give_back()
        return result

    async def _give_back(self) -> None:
        for key in self._keys:
            await self._limiter.undo(key, self._window, self._at)
        self._keys = []


async def start_attempt(
    limiter: RateLimiter, window_seconds: int, limits: Sequence[tuple[str, int]]
) -> Attempt:
    """Count an attempt against ``limits`` (key, most failures per window; 0 disables one);
    refused, and counted nowhere, if any is reached."""
    now = time.time()
    counted = [(key, limit) for key, limit in limits if limit > 0]
    decisions = [await limiter.hit(key, limit, window_seconds, now) for key, limit in counted]
    keys = [key for key, _limit in counted]
    if all(decision.allowed for decision in decisions):
        return Attempt(True, 0, limiter, window_seconds, keys, now)
    for key in keys:
        await limiter.undo(key, window_seconds, now)
    waits = [(await limiter.peek(key, limit, window_seconds)).retry_after for key, limit in counted]
    return Attempt(False, max(1, *waits), limiter, window_seconds)
