"""Real PostgreSQL and Redis for the tests (started by `make test`; a missing one fails the run)."""

from __future__ import annotations

import asyncio
import os
import uuid

import asyncpg

PG_ADMIN_URL = os.environ.get(
    "FSE_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)
REDIS_URL = os.environ.get("FSE_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


async def create_pg_database() -> str:
    """A fresh, empty database; returns its SQLAlchemy URL."""
    name = f"fse_test_{uuid.uuid4().hex[:12]}"
    conn = await asyncpg.connect(PG_ADMIN_URL)
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    base = PG_ADMIN_URL.rsplit("/", 1)[0]
    return f"{base}/{name}".replace("postgresql://", "postgresql+asyncpg://", 1)


async def drop_pg_database(url: str) -> None:
    name = url.rsplit("/", 1)[1]
    conn = await asyncpg.connect(PG_ADMIN_URL)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


def migrate(url: str) -> None:
    from fse.migrate import upgrade

    upgrade(url)


async def migrate_async(url: str) -> None:
    await asyncio.to_thread(migrate, url)
