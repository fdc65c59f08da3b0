"""An append-only event stream with ordered ids: in-process ring buffer or a Redis stream.

Readers resume after the last id they saw; a blocking read waits for new events.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable
from typing import Any, Protocol

import orjson
from redis.asyncio import Redis

Event = tuple[str, dict[str, Any]]
log = logging.getLogger(__name__)
LINGER_SECONDS = 0.002


class StreamUnavailable(Exception):
    """The shared stream cannot take an event now (Redis down): the outbox keeps it."""


class EventStream(Protocol):
    async def publish(self, event: dict[str, Any]) -> str: ...
    async def publish_many(self, events: list[dict[str, Any]]) -> list[str]:
        """Publish in order, in one round trip; their ids, in the same order."""
        ...

    def publish_soon(self, event: dict[str, Any]) -> None:
        """Queue for publication off the request path (batched); ``flush`` awaits it."""
        ...

    async def flush(self) -> None: ...
    async def read(self, after: str | None, count: int = 100, block_ms: int = 0) -> list[Event]: ...
    async def last_id(self) -> str | None:
        """The newest event's id (None: empty): where a reader that wants only what comes
        next starts, instead of reading the whole stream first."""
        ...

    async def close(self) -> None: ...


def _id_key(event_id: str) -> tuple[int, int]:
    ms, _, seq = event_id.partition("-")
    return int(ms), int(seq or 0)


class MemoryEventStream:
    def __init__(self, max_len: int = 100_000) -> None:
        self._events: deque[Event] = deque(maxlen=max_len)
        self._last = (0, 0)
        self._changed = asyncio.Condition()
        self._tasks: set[asyncio.Task[None]] = set()
        self._blocked_readers = 0

    def _append(self, event: dict[str, Any]) -> str:
        """Store the event under the next id (milliseconds-sequence, as Redis streams do)."""
        ms = int(time.time() * 1000)
        last_ms, last_seq = self._last
        self._last = (ms, 0) if ms > last_ms else (last_ms, last_seq + 1)
        event_id = f"{self._last[0]}-{self._last[1]}"
        self._events.append((event_id, dict(event)))
        return event_id

    async def publish(self, event: dict[str, Any]) -> str:
        return (await self.publish_many([event]))[0]

    async def publish_many(self, events: list[dict[str, Any]]) -> list[str]:
        ids = [self._append(event) for event in events]
        async with self._changed:
            self._changed.notify_all()
        return ids

    def publish_soon(self, event: dict[str, Any]) -> None:
        self._append(event)
        self._wake()

    def _wake(self) -> None:
        async def notify() -> None:
            async with self._changed:
                self._changed.notify_all()

        if self._blocked_readers:
            task = asyncio.get_running_loop().create_task(notify())
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def flush(self) -> None:
        if self._tasks:
            await asyncio.gather(*self._tasks)

    def _after(self, after: str | None, count: int) -> list[Event]:
        floor = _id_key(after) if after else (-1, -1)
        return [e for e in self._events if _id_key(e[0]) > floor][:count]

    async def read(self, after: str | None, count: int = 100, block_ms: int = 0) -> list[Event]:
        found = self._after(after, count)
        if found or block_ms <= 0:
            return found
        async with self._changed:
            self._blocked_readers += 1
            try:
                await asyncio.wait_for(self._changed.wait(), block_ms / 1000)
            except TimeoutError:
                return []
            finally:
                self._blocked_readers -= 1
        return self._after(after, count)

    async def last_id(self) -> str | None:
        return self._events[-1][0] if self._events else None

    async def close(self) -> None:
        self._events.clear()


class RedisEventStream:
    def __init__(
        self,
        client: Redis,
        namespace: str,
        max_len: int = 100_000,
        blocking_client: Redis | None = None,
    ) -> None:
        self._redis = client
        self._blocking = blocking_client or client
        """Blocking reads wait longer than the short socket timeout of ``client``."""
        self._key = f"{namespace}:events"
        self._max_len = max_len
        self._pending: list[bytes] = []
        self._flusher: asyncio.Task[None] | None = None
        self.on_failure: Callable[[BaseException, list[bytes]], None] | None = None
        """Told of a queued batch Redis refused (instead of logging it)."""

    async def publish(self, event: dict[str, Any]) -> str:
        return (await self.publish_many([event]))[0]

    async def publish_many(self, events: list[dict[str, Any]]) -> list[str]:
        async with self._redis.pipeline(transaction=False) as pipe:
            for event in events:
                pipe.xadd(
                    self._key, {"data": orjson.dumps(event)}, maxlen=self._max_len, approximate=True
                )
            ids = await pipe.execute()
        return [i.decode() if isinstance(i, bytes) else str(i) for i in ids]

    def publish_soon(self, event: dict[str, Any]) -> None:
        self._pending.append(orjson.dumps(event))
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.get_running_loop().create_task(self._drain())

    async def _drain(self) -> None:
        """Publish everything queued, in pipelined batches, until the queue is empty.

        Waits LINGER_SECONDS first so that, under load, one pipeline carries many events.
        """
        while self._pending:
            await asyncio.sleep(LINGER_SECONDS)
            batch, self._pending = self._pending, []
            try:
                async with self._redis.pipeline(transaction=False) as pipe:
                    for data in batch:
                        pipe.xadd(self._key, {"data": data}, maxlen=self._max_len, approximate=True)
                    await pipe.execute()
            except Exception as error:  # the database is the truth; the outbox makes it durable
                if self.on_failure is None:
                    log.exception("could not publish %d events to Redis", len(batch))
                else:
                    self.on_failure(error, batch)

    async def flush(self) -> None:
        if self._flusher is not None:
            await self._flusher

    async def read(self, after: str | None, count: int = 100, block_ms: int = 0) -> list[Event]:
        start = after or "0-0"
        if block_ms > 0:
            reply = await self._blocking.xread({self._key: start}, count=count, block=block_ms)
            entries = reply[0][1] if reply else []
        else:
            entries = await self._redis.xrange(self._key, min=f"({start}", count=count)
        return [(eid.decode(), orjson.loads(fields[b"data"])) for eid, fields in entries]

    async def last_id(self) -> str | None:
        newest = await self._redis.xrevrange(self._key, count=1)
        return newest[0][0].decode() if newest else None

    async def close(self) -> None:
        await self.flush()
        await self._redis.aclose()
        if self._blocking is not self._redis:
            await self._blocking.aclose()
