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


INSERT = "INSERT INTO api_access_log (draft) VALUES ($1)"


class Spool:
    """The access log's writer on PostgreSQL: two small asyncpg pools per worker. A change's
    record waits for the disk, as the change did; a read's commits without waiting for the WAL's
    fsync (``synchronous_commit=off``): visible at once and safe when the worker dies, lost only
    if PostgreSQL itself crashes within ~0.6 s (3 x ``wal_writer_delay``). The fsync made each
    read wait 1.6 ms on the benchmark machine."""

    def __init__(self, url: str, size: int = 8) -> None:
        self.dsn = make_url(url).set(drivername="postgresql").render_as_string(False)
        self.size = size
        self._pools: dict[bool, Any] = {}
        self._lock = asyncio.Lock()

    async def append(self, drafts: list[str], wait_for_disk: bool) -> None:
        pool = self._pools.get(wait_for_disk) or await self._pool(wait_for_disk)
        async with pool.acquire() as conn:
            if len(drafts) == 1:
                await conn.execute(INSERT, drafts[0])
            else:
                await conn.executemany(INSERT, [(draft,) for draft in drafts])

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
