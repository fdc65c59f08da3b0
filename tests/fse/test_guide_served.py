"""The AMO guide's definitions are published through the FHIR API, once, and searchable."""

from __future__ import annotations

import httpx

from fhir_profiles.guide import definitions
from fse.seed import guide_bundle
from tests.builders import FHIR_JSON


async def publish(client: httpx.AsyncClient) -> list[str]:
    response = await client.post("/fhir", json=guide_bundle(), headers=FHIR_JSON)
    assert response.status_code == 200, response.text
    return [e["response"]["status"] for e in response.json()["entry"]]


async def test_guide_is_published_once(client: httpx.AsyncClient) -> None:
    assert set(await publish(client)) == {"201 Created"}
    assert set(await publish(client)) == {"200 OK"}
    bundle = (await client.get("/fhir/NamingSystem", params={"_total": "accurate"})).json()
    assert bundle["total"] == len(definitions("NamingSystem"))


async def test_naming_system_found_by_its_uri(client: httpx.AsyncClient) -> None:
    await publish(client)
    found = (
        await client.get(
            "/fhir/NamingSystem", params={"value:exact": "https://fse.cnss.ma/fhir/sid/cin"}
        )
    ).json()
    assert [e["resource"]["name"] for e in found["entry"]] == ["CarteNationaleIdentite"]
    by_kind = (await client.get("/fhir/NamingSystem", params={"kind": "codesystem"})).json()
    assert [e["resource"]["name"] for e in by_kind["entry"]] == ["GTIN"]
