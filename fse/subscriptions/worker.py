"""The delivery loop, run by ``fse worker`` (and inside the server unless disabled).

The database drives it: each round relays the outbox (when asked), fans out new events and posts
what is due. The event stream only wakes it early: a blocking read returns as soon as a change
is announced (after its commit), and a stream that is down just means rounds come every
``poll_seconds``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

import httpx
from sqlalchemy.ext.asyncio import AsyncEngine

from fse.config import Settings
from fse.crypto.cin import vault_for
from fse.outbox import relay
from fse.runtime.events import EventStream, StreamUnavailable
from fse.store.repository import ResourceStore
from fse.subscriptions.delivery import Policy, Round, deliver_due, http_client
from fse.subscriptions.fanout import fan_out

log = logging.getLogger(__name__)
MIN_GAP_SECONDS = 0.2
"""Under a burst of events, at most five rounds a second."""


def policy_of(settings: Settings) -> Policy:
    return Policy(
        lease_seconds=settings.subscription_lease_seconds,
        retry_base_seconds=settings.subscription_retry_base_seconds,
        retry_max_seconds=settings.subscription_retry_max_seconds,
        max_attempts=settings.subscription_max_attempts,
        timeout_seconds=settings.subscription_timeout_seconds,
    )


def public_base(settings: Settings) -> str:
    return settings.base_url.rstrip("/") or f"http://{settings.host}:{settings.port}/fhir"


class Worker:
    def __init__(
        self,
        engine: AsyncEngine,
        events: EventStream,
        settings: Settings,
        relays: bool,
        report: Callable[[Round], None] | None = None,
    ) -> None:
        self.engine = engine
        self.store = ResourceStore(engine, vault_for(settings))
        self.events = events
        self.settings = settings
        self.policy = policy_of(settings)
        self.relays = relays
        self.report = report
        self._seen: str | None = None

    async def round(self, http: httpx.AsyncClient) -> Round:
        if self.relays:
            try:
                await relay(self.engine, self.events)
            except StreamUnavailable:  # Redis down (logged once by the runtime): they wait
                pass
            except Exception:  # the stream is down: events wait in the outbox
                log.warning("worker: the event stream is unavailable; relaying later")
        await fan_out(self.engine)
        done = await deliver_due(
            self.engine, self.store, http, public_base(self.settings), self.policy
        )
        if done and self.report is not None:
            self.report(done)
        return done

    async def wait(self, seconds: float) -> None:
        """Until the stream shows anything new, or ``seconds`` pass. Changes are announced
        after their commit, so the outbox event of a claim or a dispense is there to fan out
        when its announcement wakes the worker; a burst wakes it at most every MIN_GAP."""
        try:
            found = await self.events.read(
                self._seen, count=1000, block_ms=max(int(seconds * 1000), 1)
            )
        except Exception:  # stream down: poll the database instead
            await asyncio.sleep(seconds)
            return
        if found:
            self._seen = found[-1][0]

    async def start_at_the_end(self) -> None:
        """Wake only for what is announced from now on. The stream is a wake-up, not the work
        (the first round finds in the database everything committed before it), and it is
        shared by every process on the namespace and keeps up to 100,000 events: read from its
        start, every worker of a starting server parsed all of them, 1,000 and a useless round
        at a time (about 3 CPU seconds per start of two workers, taken from the requests)."""
        try:
            self._seen = await self.events.last_id()
        except Exception:  # stream down: the first wait polls, as it would anyway
            self._seen = None

    async def run(self, stop: asyncio.Event | None = None) -> None:
        stop = stop or asyncio.Event()
        await self.start_at_the_end()
        async with http_client(self.policy) as http:
            while not stop.is_set():
                started = time.monotonic()
                try:
                    await self.round(http)
                except Exception:  # a database hiccup: the next round retries
                    log.exception("subscription worker round failed")
                await self.wait(self.settings.subscription_poll_seconds)
                await asyncio.sleep(max(0.0, MIN_GAP_SECONDS - (time.monotonic() - started)))
