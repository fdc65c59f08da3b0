"""An update rewrites only the index tables whose rows change: a prescription whose remaining
quantity moves keeps its six index tables, and every search still finds what it holds."""

from __future__ import annotations

from typing import Any

import httpx
import orjson
from sqlalchemy import select

from fse.store.tables import INDEX_TABLES, resources, unique_identifiers
from tests.builders import create, medication_request, patient
from tests.conftest import Platform
from tests.statements import statements


async def _index_rows(platform: Platform, pk: int) -> dict[str, list[tuple[object, ...]]]:
    """Every index row of the resource ``pk``, per table."""
    found = {}
    async with platform.engine.connect() as conn:
        for table in (*INDEX_TABLES.values(), unique_identifiers):
            rows = await conn.execute(select(table).where(table.c.resource_pk == pk))
            found[table.name] = sorted(tuple(map(str, row)) for row in rows)
    return found


async def _put(platform: Platform, resource: dict[str, Any]) -> dict[str, Any]:
    """Update as the pharmacy does (MedicationRequest has no REST update)."""
    fhir = platform.app.state.fhir
    async with fhir.store.transaction() as conn:
        rid = resource["id"]
        written = await fhir.update(conn, "MedicationRequest", rid, resource, None)
    assert written.stored.content is not None
    return dict(orjson.loads(written.stored.content))


async def test_an_update_touches_only_the_index_tables_that_change(
    platform: Platform, client: httpx.AsyncClient
) -> None:
    insured = await create(client, patient())
    request = await create(client, medication_request(f"Patient/{insured['id']}"))
    async with platform.engine.connect() as conn:
        pk = await conn.scalar(select(resources.c.pk).where(resources.c.id == request["id"]))
    before = await _index_rows(platform, pk)
    request["dosageInstruction"] = [{"text": "2 comprimés par jour"}]  # not indexed
    with statements(platform.engine) as sent:
        request = await _put(platform, request)
    touched = [
        s.sql for s in sent if s.sql.startswith(("DELETE", "INSERT INTO idx", "INSERT INTO unique"))
    ]
    assert touched == []
    assert await _index_rows(platform, pk) == before
    # A new status changes one token row: only the token table is rewritten.
    request["status"] = "completed"
    with statements(platform.engine) as sent:
        request = await _put(platform, request)
    touched = [
        s.sql.split(" WHERE")[0]
        for s in sent
        if s.sql.startswith(("DELETE", "INSERT INTO idx", "INSERT INTO unique"))
    ]
    assert [t.split(" (")[0] for t in touched] == ["DELETE FROM idx_token", "INSERT INTO idx_token"]
    after = await _index_rows(platform, pk)
    assert {k for k in after if after[k] != before[k]} == {"idx_token"}
    found = await client.get("/fhir/MedicationRequest", params={"status": "completed"})
    assert [e["resource"]["id"] for e in found.json()["entry"]] == [request["id"]]
    still = await client.get("/fhir/MedicationRequest", params={"status": "active"})
    assert still.json().get("entry", []) == []
