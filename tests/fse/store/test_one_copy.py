"""A version's JSON is stored once: the current one in ``resources``, each superseded one in its
``resource_versions`` row. Reads, vreads and history serve every version as before."""

from __future__ import annotations

import httpx
from sqlalchemy import select

from fse.store.tables import resource_versions
from tests.builders import FHIR_JSON, create, patient
from tests.conftest import Platform


async def _history_rows(platform: Platform, rid: str) -> list[tuple[int, str, bool]]:
    """(version, method, whether the row holds JSON) of each history row, oldest first."""
    v = resource_versions.c
    async with platform.engine.connect() as conn:
        rows = await conn.execute(
            select(v.version, v.method, v.content.is_not(None)).where(v.id == rid).order_by(v.pk)
        )
        return [(version, method, bool(held)) for version, method, held in rows]


async def test_only_superseded_versions_keep_their_json_in_history(
    platform: Platform, client: httpx.AsyncClient
) -> None:
    first = await create(client, patient())
    rid = first["id"]
    assert await _history_rows(platform, rid) == [(1, "POST", False)]

    second = {**first, "gender": "male"}
    put = await client.put(f"/fhir/Patient/{rid}", json=second, headers=FHIR_JSON)
    assert put.status_code == 200, put.text
    assert (await client.delete(f"/fhir/Patient/{rid}")).status_code == 204
    fourth = {**first, "gender": "other"}
    put = await client.put(f"/fhir/Patient/{rid}", json=fourth, headers=FHIR_JSON)
    assert put.status_code == 200, put.text

    assert await _history_rows(platform, rid) == [
        (1, "POST", True),
        (2, "PUT", True),
        (3, "DELETE", False),
        (4, "PUT", False),
    ]
    genders = {}
    for version in (1, 2, 4):
        answer = await client.get(f"/fhir/Patient/{rid}/_history/{version}")
        assert answer.status_code == 200, answer.text
        assert answer.json()["meta"]["versionId"] == str(version)
        genders[version] = answer.json()["gender"]
    assert genders == {1: first["gender"], 2: "male", 4: "other"}
    assert (await client.get(f"/fhir/Patient/{rid}/_history/3")).status_code == 410
    assert (await client.get(f"/fhir/Patient/{rid}")).json()["gender"] == "other"

    entries = (await client.get(f"/fhir/Patient/{rid}/_history")).json()["entry"]
    seen = [(e["request"]["method"], e.get("resource", {}).get("gender")) for e in entries]
    assert seen == [("PUT", "other"), ("DELETE", None), ("PUT", "male"), ("POST", first["gender"])]
    typed = (await client.get("/fhir/Patient/_history")).json()["entry"]
    assert [e.get("resource", {}).get("gender") for e in typed] == [g for _, g in seen]
