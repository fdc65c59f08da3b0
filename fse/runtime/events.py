"""An append-only event stream with ordered ids: in-process ring buffer or a Redis stream.

Readers resume after the last id they saw; a blocking read waits for new events.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from typing import Any, Protocol

import orjson
from redis.asyncio import Redis

Event = tuple[str, dict[str, Any]]


class EventStream(Protocol):
    async def publish(self, event: dict[str, Any]) -> str: ...
    async def read(self, after: str | None, count: int = 100, block_ms: int = 0) -> list[Event]: ...
    async def close(self) -> None: ...


def _id_key(event_id: str) -> tuple[int, int]:
    ms, _, seq = event_id.partition("-")
    return int(ms), int(seq or 0)


class MemoryEventStream:
    def __init__(self, max_len: int = 100_000) -> None:
        self._events: deque[Event] = deque(maxlen=max_len)
        self._last = (0, 0)
        self._changed = asyncio.Condition()

    async def publish(self, event: dict[str, Any]) -> str:
        ms = int(time.time() * 1000)
        last_ms, last_seq = self._last
        self._last = (ms, 0) if ms > last_ms else (last_ms, last_seq + 1)
        event_id = f"{self._last[0]}-{self._last[1]}"
        self._events.append((event_id, dict(event)))
        async with self._changed:
            self._changed.notify_all()
        return event_id

    def _after(self, after: str | None, count: int) -> list[Event]:
        floor = _id_key(after) if after else (-1, -1)
        return [e for e in self._events if _id_key(e[0]) > floor][:count]

    async def read(self, after: str | None, count: int = 100, block_ms: int = 0) -> list[Event]:
        found = self._after(after, count)
        if found or block_ms <= 0:
            return found
        async with self._changed:
            try:
                await asyncio.wait_for(self._changed.wait(), block_ms / 1000)
            except TimeoutError:
                return []
        return self._after(after, count)

    async def close(self) -> None:
        self._events.clear()


class RedisEventStream:
    def __init__(self, client: Redis, namespace: str, max_len: int = 100_000) -> None:
        self._redis = client
        self._key = f"{namespace}:events"
        self._max_len = max_len

    async def publish(self, event: dict[str, Any]) -> str:
        event_id = await self._redis.xadd(
            self._key, {"data": orjson.dumps(event)}, maxlen=self._max_len, approximate=True
        )
        return event_id.decode() if isinstance(event_id, bytes) else str(event_id)

    async def read(self, after: str | None, count: int = 100, block_ms: int = 0) -> list[Event]:
        start = after or "0-0"
        if block_ms > 0:
            reply = await self._redis.xread({self._key: start}, count=count, block=block_ms)
            entries = reply[0][1] if reply else []
        else:
            entries = await self._redis.xrange(self._key, min=f"({start}", count=count)
        return [(eid.decode(), orjson.loads(fields[b"data"])) for eid, fields in entries]

    async def close(self) -> None:
        await self._redis.aclose()
