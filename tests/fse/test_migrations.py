"""The Alembic migrations build exactly the schema the code declares, on both databases."""

from __future__ import annotations

from typing import Any

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from fse.store.tables import metadata
from tests.conftest import Platform


async def test_migrated_schema_matches_the_tables(platform: Platform) -> None:
    def diff(sync_conn: Any) -> list[Any]:
        context = MigrationContext.configure(sync_conn, opts={"compare_type": False})
        return compare_metadata(context, metadata)

    async with platform.engine.connect() as conn:
        assert await conn.run_sync(diff) == []
