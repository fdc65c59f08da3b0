"""The runtime's Redis connection and whether it can be used right now: degrade, don't fail.

Redis only shares state the platform can live without for a while (rate-limit counters, a
cache, wake-up events); the database is the truth. So when Redis stops answering, the runtime
services fall back to their in-process versions (as without ``FSE_REDIS_URL``) instead of
failing the request. The outage is logged once (and once again when it ends), counted, and
shown by ``GET /ready``. While Redis is down no request waits for it: one background PING at
most every ``probe_seconds`` finds out when it is back, and the shared services are used again.

The client is built so that a dead or blackholed Redis cannot stall a request: short connect and
socket timeouts, one immediate retry on a broken connection (a pooled connection from before a
Redis restart fails once, then a fresh one is opened) and a PING before reusing a connection
that sat idle.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any, TypeVar

from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError

T = TypeVar("T")
log = logging.getLogger("fse.runtime")

REDIS_FAILURES: tuple[type[BaseException], ...] = (RedisError, OSError, TimeoutError)
"""What "Redis did not answer" looks like (refused, reset, timed out, loading, read-only...)."""

CONFIRM_FACTOR = 3
"""A timed-out operation starts an outage only if a PING given this many times longer fails."""

IDLE_CHECK_SECONDS = 1
"""A pooled connection idle for longer is PINGed before use (a restart closed it meanwhile)."""


def redis_client(url: str, timeout_seconds: float, *, blocking: bool = False) -> Redis:
    """A client whose every operation gives up within about ``timeout_seconds``. ``blocking``:
    for blocking stream reads, which wait longer than that by design (bounded by the caller)."""
    return Redis.from_url(
        url,
        socket_connect_timeout=timeout_seconds,
        socket_timeout=None if blocking else timeout_seconds,
        health_check_interval=IDLE_CHECK_SECONDS,
        retry=Retry(
            ExponentialBackoff(cap=0.05, base=0.005),
            retries=1,
            supported_errors=(RedisConnectionError,),
        ),
        retry_on_error=[RedisConnectionError],
    )


class RedisLink:
    """Shared by the cache, the rate limiter and the event stream of one process: Redis is up
    or down for all three at once, and one outage is one outage."""

    def __init__(
        self,
        client: Redis,
        blocking_client: Redis,
        timeout_seconds: float = 0.5,
        probe_seconds: float = 1.0,
    ) -> None:
        self.client = client
        self.blocking_client = blocking_client
        self.timeout_seconds = timeout_seconds
        self.probe_seconds = probe_seconds
        self.up = True
        """Optimistic at start: the first operation finds out (and falls back if it fails)."""
        self.outages = 0
        self.fallbacks: dict[str, int] = {"cache": 0, "limiter": 0, "events": 0}
        self.down_since: datetime | None = None
        self.last_error: str | None = None
        self._down_at = 0.0
        self._fallbacks_before = 0
        self._next_probe = 0.0
        self._probe: asyncio.Task[None] | None = None
        self._confirm: asyncio.Task[None] | None = None

    @property
    def deadline(self) -> float:
        """The longest an operation may take: a connect, or a read, plus slack."""
        return 2 * self.timeout_seconds + 0.05

    def usable(self) -> bool:
        """Whether to try Redis now; while it is down, starts a background probe when due."""
        if self.up:
            return True
        now = time.monotonic()
        if now >= self._next_probe and (self._probe is None or self._probe.done()):
            self._next_probe = now + self.probe_seconds
            self._probe = asyncio.get_running_loop().create_task(self.probe())
        return False

    async def run(
        self,
        service: str,
        operation: Callable[[], Awaitable[T]],
        fallback: Callable[[], Awaitable[T]],
        deadline: float | None = None,
    ) -> T:
        """``operation`` on Redis if it is usable and answers in time, else ``fallback``."""
        if self.usable():
            try:
                async with asyncio.timeout(deadline or self.deadline):
                    return await operation()
            except REDIS_FAILURES as error:
                self.failed(error)
        self.fallbacks[service] += 1
        return await fallback()

    def failed(self, error: BaseException) -> None:
        """An operation found Redis unavailable. Refused or reset: the outage starts now. Timed
        out: maybe Redis, maybe this process's event loop was busy (a slow request holding
        it), so a PING confirms it first; meanwhile only that operation fell back."""
        self.last_error = _describe(error)
        if not self.up:
            return
        if isinstance(error, TimeoutError | RedisTimeoutError):
            if self._confirm is None or self._confirm.done():
                self._confirm = asyncio.get_running_loop().create_task(self._confirm_outage())
            return
        self._down()

    async def _confirm_outage(self) -> None:
        try:
            async with asyncio.timeout(CONFIRM_FACTOR * self.deadline):
                await self.client.ping()
        except REDIS_FAILURES as error:
            self.last_error = _describe(error)
            self._down()

    def _down(self) -> None:
        if not self.up:
            return
        self.up = False
        self.outages += 1
        self.down_since = datetime.now(UTC)
        self._down_at = time.monotonic()
        self._fallbacks_before = sum(self.fallbacks.values())
        self._next_probe = self._down_at + self.probe_seconds
        log.warning(
            "Redis unavailable (%s): rate limits, cache and events use this process's "
            "in-process runtime until it answers again (checked every %.1f s)",
            self.last_error,
            self.probe_seconds,
        )

    def recovered(self) -> None:
        if self.up:
            return
        self.up = True
        log.warning(
            "Redis answers again after %.1f s down: rate limits, cache and events are shared "
            "again (%d operations were served in-process during the outage)",
            time.monotonic() - self._down_at,
            sum(self.fallbacks.values()) - self._fallbacks_before,
        )
        self.down_since = None

    async def probe(self) -> None:
        """One PING: Redis is up again if it answers in time."""
        try:
            async with asyncio.timeout(self.deadline):
                await self.client.ping()
        except REDIS_FAILURES as error:
            self.last_error = _describe(error)
            log.debug("Redis still unavailable: %s", self.last_error)
            return
        self.recovered()

    async def check(self) -> dict[str, Any]:
        """Ask Redis now (``GET /ready``), whatever the backoff; the state after it."""
        if self.up:
            try:
                async with asyncio.timeout(self.deadline):
                    await self.client.ping()
            except REDIS_FAILURES as error:  # asked on purpose: no need to confirm
                self.last_error = _describe(error)
                self._down()
        else:
            await self.probe()
        return self.state()

    def state(self) -> dict[str, Any]:
        return {
            "status": "up" if self.up else "down",
            "mode": "shared" if self.up else "in-process (degraded)",
            "downSince": self.down_since.isoformat(timespec="seconds") if self.down_since else None,
            "outages": self.outages,
            "fallbacks": sum(self.fallbacks.values()),
            "fallbacksByService": dict(self.fallbacks),
            "lastError": self.last_error,
        }

    async def close(self) -> None:
        for task in (self._probe, self._confirm):
            if task is not None and not task.done():
                task.cancel()
        await self.client.aclose()
        await self.blocking_client.aclose()


def _describe(error: BaseException) -> str:
    text = str(error) or type(error).__name__
    return text if len(text) <= 200 else text[:197] + "..."
