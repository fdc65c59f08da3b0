"""A starting worker wakes only for what is announced after it starts: the stream (shared by
every process of the namespace, up to 100,000 events) is not read from its beginning."""

from __future__ import annotations

import asyncio
from typing import Any

from fse.runtime.events import Event, EventStream
from fse.subscriptions.worker import Worker
from tests.conftest import Platform


class Counted:
    """The platform's stream, counting the events its readers are handed."""

    def __init__(self, stream: EventStream) -> None:
        self.stream, self.handed = stream, 0

    async def read(self, after: str | None, count: int = 100, block_ms: int = 0) -> list[Event]:
        found = await self.stream.read(after, count, block_ms)
        self.handed += len(found)
        return found

    async def last_id(self) -> str | None:
        return await self.stream.last_id()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.stream, name)


async def test_a_starting_worker_reads_none_of_the_older_events(platform: Platform) -> None:
    stream = platform.app.state.runtime.events
    for n in range(50):
        await stream.publish({"before the worker": n})
    counted = Counted(stream)
    work = Worker(platform.engine, counted, platform.settings, relays=False)  # type: ignore[arg-type]
    stop = asyncio.Event()
    running = asyncio.create_task(work.run(stop))
    try:
        await asyncio.sleep(0.5)  # two rounds, and waits
        assert counted.handed == 0
        await stream.publish({"after": 1})  # the next wait wakes for it, at once
        async with asyncio.timeout(2):
            while counted.handed == 0:
                await asyncio.sleep(0.02)
        assert counted.handed == 1
    finally:
        stop.set()
        await asyncio.wait_for(running, 5)
