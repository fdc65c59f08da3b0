"""A search with a status beside a selective criterion (the pharmacy's lookup,
``MedicationRequest?subject=…&status=active``) starts from the selective one, whatever plan the
database keeps for the statement. PostgreSQL plans a prepared statement generically after a
few runs, and a generic plan cannot tell ``active`` from an insured's id: it may list every
active prescription of the country to keep the insured's two."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import asyncpg
import httpx
from sqlalchemy.dialects import postgresql

from fse.store.query import SearchQuery
from fse.store.search import compile_search
from tests.builders import create, medication_request, patient
from tests.conftest import Platform

OTHERS = 300
"""Active prescriptions of another insured: what a plan starting from ``status`` would read."""


def _visited(plan: dict[str, Any]) -> list[int]:
    """Rows each node of an EXPLAIN ANALYZE plan produced, all its loops together."""
    rows = [int(plan.get("Actual Rows", 0) * plan.get("Actual Loops", 1))]
    for inner in plan.get("Plans", []):
        rows += _visited(inner)
    return rows


def _literal(value: object) -> str:
    return str(value) if isinstance(value, int) else "'" + str(value).replace("'", "''") + "'"


async def _most_rows_of_a_generic_plan(database_url: str, query: SearchQuery) -> int:
    """The most rows any node reads when PostgreSQL runs the search's page statement with the
    generic plan of a prepared statement (as the driver's cached statements end up doing)."""
    statements, values = compile_search(query)
    compiled = statements.page.compile(dialect=postgresql.asyncpg.dialect())
    bound = {**compiled.params, **values}
    arguments = ", ".join(_literal(bound[name]) for name in compiled.positiontup or ())
    conn = await asyncpg.connect(database_url.replace("postgresql+asyncpg://", "postgresql://"))
    try:
        await conn.execute("SET plan_cache_mode = force_generic_plan")
        await conn.execute(f"PREPARE page AS {compiled}")
        found = await conn.fetchval(f"EXPLAIN (ANALYZE, FORMAT JSON) EXECUTE page({arguments})")
    finally:
        await conn.close()
    return max(_visited(json.loads(found)[0]["Plan"]))


async def test_an_insureds_active_lines_are_found_from_the_insured_not_from_every_active_line(
    platform: Platform, client: httpx.AsyncClient
) -> None:
    me = (await create(client, patient()))["id"]
    other = (await create(client, patient("987654321", "AB987654", family="Bennani")))["id"]
    fhir = platform.app.state.fhir
    async with fhir.store.transaction() as conn:
        for n in range(OTHERS):
            line = medication_request(f"Patient/{other}", line=f"RX-9-{n}")
            await fhir.create(conn, "MedicationRequest", line)
        mine = [
            (await fhir.create(conn, "MedicationRequest", line)).stored.id
            for line in (medication_request(f"Patient/{me}", line=f"RX-1-{n}") for n in (1, 2))
        ]
        stopped = medication_request(f"Patient/{me}", line="RX-1-3")
        await fhir.create(conn, "MedicationRequest", {**stopped, "status": "stopped"})
    params = [("subject", f"Patient/{me}"), ("status", "active")]
    query = fhir.parse_search("MedicationRequest", params, strict=True)
    async with fhir.store.snapshot() as conn:
        page = await fhir.store.search(conn, query)
    assert sorted(match.id for match in page.matches) == sorted(mine)
    if platform.backend == "postgresql":  # SQLite plans each statement with its values
        assert await _most_rows_of_a_generic_plan(platform.settings.database_url, query) <= 3
    # Beside criteria that find no rows of their own (:missing, :not), the status still does.
    params = [("status", "active"), ("identifier:missing", "false"), ("intent:not", "plan")]
    query = fhir.parse_search("MedicationRequest", params, strict=True)
    query = dataclasses.replace(query, count=OTHERS + 10)
    async with fhir.store.snapshot() as conn:
        page = await fhir.store.search(conn, query)
    assert len(page.matches) == OTHERS + len(mine)
