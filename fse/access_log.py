"""The API access log: one narrow row per audited /fhir request, written before the answer's
first byte leaves, so a worker that dies loses no answered request's record.

A row holds the AuditEvent's draft (JSON text); ``ApiAudit.flush`` turns rows into AuditEvents
a second later, in batches: naming the caller and indexing the event cost more than a read, so
they are not paid while the client waits. A row is one INSERT, in autocommit on PostgreSQL.
"""

from __future__ import annotations

from sqlalchemy import Column, Table, Text, delete, insert, select
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
