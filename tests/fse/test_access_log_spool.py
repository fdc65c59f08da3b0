"""The access log's group commit on real PostgreSQL: the rows of concurrent requests share one
INSERT, each request returns only once its row is stored, and a failed INSERT reaches every
request whose row it carried."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import asyncpg
import pytest

from fse.access_log import Spool
from tests.services import create_pg_database, drop_pg_database, free_port, migrate_async


@pytest.fixture
async def database() -> AsyncIterator[str]:
    url = await create_pg_database()
    await migrate_async(url)
    yield url
    await drop_pg_database(url)


async def stored(url: str) -> list[str]:
    dsn = url.replace("postgresql+asyncpg", "postgresql")
    conn = await asyncpg.connect(dsn)
    try:
        return [row["draft"] for row in await conn.fetch("SELECT draft FROM api_access_log")]
    finally:
        await conn.close()


async def test_concurrent_rows_share_inserts_and_each_waits_for_its_own(database: str) -> None:
    spool = Spool(database, writers=2)
    drafts = [f'{{"n": {n}}}' for n in range(200)]
    try:
        for kind in (False, True):  # a read's row and a change's row: both pools
            spool.inserts = 0
            await asyncio.gather(*(spool.append([d], wait_for_disk=kind) for d in drafts))
            assert spool.inserts < len(drafts) / 4  # grouped, not one statement per request
    finally:
        await spool.close()
    assert sorted(await stored(database)) == sorted(drafts * 2)


async def test_one_request_alone_is_written_at_once(database: str) -> None:
    spool = Spool(database)
    try:
        await spool.append(['{"alone": true}', '{"second": true}'], wait_for_disk=True)
        assert sorted(await stored(database)) == ['{"alone": true}', '{"second": true}']
    finally:
        await spool.close()


async def test_a_failed_insert_reaches_every_request_it_carried() -> None:
    spool = Spool(f"postgresql+asyncpg://postgres@127.0.0.1:{free_port()}/nowhere")
    results = await asyncio.gather(
        *(spool.append([f"{n}"], wait_for_disk=False) for n in range(20)),
        return_exceptions=True,
    )
    await spool.close()
    assert all(isinstance(result, OSError) for result in results), results
