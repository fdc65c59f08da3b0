"""The API access log: one narrow row per audited /fhir request, written before the answer's
first byte leaves, so a worker that dies loses no answered request's record.

A row holds the AuditEvent's draft (JSON text); ``ApiAudit.flush`` turns rows into AuditEvents
a second later, in batches: naming the caller and indexing the event cost more than a read, so
they are not paid while the client waits. On PostgreSQL a row is one INSERT in autocommit over
asyncpg directly (``Spool``): 25 µs of CPU, where SQLAlchemy's execute costs 300 (a third of a
read).
"""

from __future__ import annotations

import asyncio
from typing import Any

from sqlalchemy import Column, Table, Text, delete, insert, select
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from fse.store.tables import PrimaryKey, metadata

api_access_log = Table(
    "api_access_log",
    metadata,
    Column("id", PrimaryKey, primary_key=True, autoincrement=True),
    Column("draft", Text, nullable=False),
)


async def append(engine: AsyncEngine, drafts: list[str]) -> None:
    """Make the drafts durable: committed when this returns."""
    rows = [{"draft": draft} for draft in drafts]
    async with engine.connect() as conn:
        if conn.dialect.name == "postgresql":
            await conn.execution_options(isolation_level="AUTOCOMMIT")
            await conn.execute(insert(api_access_log), rows)
            return
        await conn.execution_options(fse_write=True)  # SQLite: BEGIN IMMEDIATE
        async with conn.begin():
            await conn.execute(insert(api_access_log), rows)


INSERT = "INSERT INTO api_access_log (draft) SELECT unnest($1::text[])"


class Spool:
    """The access log's writer on PostgreSQL: two small asyncpg pools per worker. A change's
    record waits for the disk, as the change did; a read's commits without waiting for the WAL's
    fsync (``synchronous_commit=off``): visible at once and safe when the worker dies, lost only
    if PostgreSQL itself crashes within ~0.6 s (3 x ``wal_writer_delay``). The fsync made each
    read wait 1.6 ms on the benchmark machine.

    Group commit: the rows of concurrent requests go in one INSERT (one round trip, one commit
    for PostgreSQL). While ``writers`` inserts are in flight, new rows queue; the next writer
    takes the whole queue. Each request still returns only once its own row is committed."""

    def __init__(self, url: str, size: int = 8, writers: int = 2) -> None:
        self.dsn = make_url(url).set(drivername="postgresql").render_as_string(False)
        self.size = size
        self.writers = writers
        self._pools: dict[bool, Any] = {}
        self._lock = asyncio.Lock()
        self._queues: dict[bool, list[tuple[list[str], asyncio.Future[None]]]] = {
            True: [],
            False: [],
        }
        self._active: dict[bool, int] = {True: 0, False: 0}
        self._tasks: set[asyncio.Task[None]] = set()
        self.inserts = 0  # statements sent: the benchmark reports rows per INSERT

    async def append(self, drafts: list[str], wait_for_disk: bool) -> None:
        """Return once the drafts are committed (raise what the INSERT raised)."""
        loop = asyncio.get_running_loop()
        done: asyncio.Future[None] = loop.create_future()
        self._queues[wait_for_disk].append((drafts, done))
        if self._active[wait_for_disk] < self.writers:
            self._active[wait_for_disk] += 1
            task = loop.create_task(self._write(wait_for_disk))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        await done

    async def _write(self, wait_for_disk: bool) -> None:
        queue = self._queues[wait_for_disk]
        try:
            while queue:
                batch = queue[:]
                queue.clear()
                drafts = [draft for group, _ in batch for draft in group]
                try:
                    pool = self._pools.get(wait_for_disk) or await self._pool(wait_for_disk)
                    async with pool.acquire() as conn:
                        await conn.execute(INSERT, drafts)
                    self.inserts += 1
                except Exception as error:  # every waiter learns its row is not stored
                    for _, done in batch:
                        if not done.done():
                            done.set_exception(error)
                    continue
                except BaseException:
                    for _, done in batch:
                        done.cancel()
                    raise
                for _, done in batch:
                    if not done.done():
                        done.set_result(None)
        finally:
            self._active[wait_for_disk] -= 1

    async def _pool(self, wait_for_disk: bool) -> Any:
        import asyncpg

        async with self._lock:
            if wait_for_disk not in self._pools:
                settings = {} if wait_for_disk else {"synchronous_commit": "off"}
                self._pools[wait_for_disk] = await asyncpg.create_pool(
                    self.dsn,
                    min_size=0,
                    max_size=self.size,
                    server_settings=settings,
                    reset=_kept,
                )
        return self._pools[wait_for_disk]

    async def close(self) -> None:
        for task in list(self._tasks):
            await task
        for pool in self._pools.values():
            await pool.close()
        self._pools.clear()


async def _kept(_conn: Any) -> None:
    """No RESET ALL round trip when a connection goes back to the pool: an INSERT in autocommit
    leaves no session state behind."""


async def take(conn: AsyncConnection, limit: int) -> list[str]:
    """The oldest drafts, removed in the caller's transaction (which stores their events):
    rows another worker is converting are skipped, never converted twice."""
    query = select(api_access_log.c.id, api_access_log.c.draft).order_by(api_access_log.c.id)
    if conn.dialect.name == "postgresql":
        query = query.with_for_update(skip_locked=True)
    rows = (await conn.execute(query.limit(limit))).all()
    if rows:
        ids = [row.id for row in rows]
        await conn.execute(delete(api_access_log).where(api_access_log.c.id.in_(ids)))
    return [row.draft for row in rows]
