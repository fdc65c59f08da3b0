"""Storage as the issue states it: JSONB on PostgreSQL, JSON text on SQLite, index-only search."""

from __future__ import annotations

import httpx
from sqlalchemy import text

from fse.store.query import parse_search
from fse.store.search import compile_search
from fse.store.search_params import SEARCH_PARAMS
from tests.builders import create, patient
from tests.conftest import Platform

SAMPLE = {
    "token": "s|x",
    "string": "x",
    "date": "ge2026",
    "reference": "Patient/x",
    "quantity": "gt1",
    "number": "1",
}


async def test_content_is_jsonb_on_postgresql_and_text_on_sqlite(
    client: httpx.AsyncClient, platform: Platform
) -> None:
    created = await create(client, patient())
    async with platform.engine.connect() as conn:
        if platform.backend == "postgresql":
            kinds = (
                await conn.execute(
                    text(
                        "SELECT table_name, data_type FROM information_schema.columns "
                        "WHERE column_name = 'content' ORDER BY table_name"
                    )
                )
            ).all()
            assert [tuple(k) for k in kinds] == [
                ("resource_versions", "jsonb"),
                ("resources", "jsonb"),
            ]
            family = await conn.scalar(
                text("SELECT content->'name'->0->>'family' FROM resources WHERE id = :id"),
                {"id": created["id"]},
            )
        else:
            family = await conn.scalar(
                text(
                    "SELECT json_extract(content, '$.name[0].family') FROM resources WHERE id = :id"
                ),
                {"id": created["id"]},
            )
    assert family == "Alaoui"


def test_no_search_reads_the_json_content_to_filter() -> None:
    """Every declared parameter filters on index tables; content is only selected, never tested."""
    for rtype, params in SEARCH_PARAMS.items():
        for param in params:
            query = parse_search(
                rtype, [(param.name, SAMPLE[param.type])], default_count=20, max_count=200
            )
            statements, _ = compile_search(query)
            where = str(statements.page.whereclause)
            assert "content" not in where, (rtype, param.name, where)
            assert "resources.content" in str(statements.page.selected_columns)
