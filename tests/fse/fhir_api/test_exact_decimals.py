"""A decimal is served as the client wrote it: ``150.00`` stays ``150.00`` byte for byte in
read, vread, search Bundles and history, CINs opened or not; what is not a JSON number is a 400.

PostgreSQL stores the text as JSONB, which keeps a number's digits (``numeric``) but serves it
with a space after ``:`` and ``,`` and its keys in its own order: ``compact`` undoes the spaces.
"""

from __future__ import annotations

import re
from decimal import Decimal

import httpx
import pytest
from sqlalchemy import select

from fse import fhir_json
from fse.store.tables import resources
from tests.builders import CIN, FHIR_JSON, claim, create, patient
from tests.conftest import Platform

NET = b'"net":{"value":150.00,"currency":"MAD"}'


def compact(text: bytes) -> bytes:
    return re.sub(rb'([:,]) (?=["{\[0-9-])', rb"\1", text)


async def test_a_claim_written_with_150_00_is_served_with_150_00_everywhere(
    client: httpx.AsyncClient,
) -> None:
    insured = await create(client, patient())
    body = claim(f"Patient/{insured['id']}", sequence=4242)
    body["item"][0]["net"]["value"] = Decimal("150.00")
    body["item"].append({**body["item"][0], "sequence": 2, "net": {"value": Decimal("0.10")}})
    written = await client.post("/fhir/Claim", content=fhir_json.dumps(body), headers=FHIR_JSON)
    assert written.status_code == 201, written.text
    rid = written.json()["id"]
    identifier = f"{body['identifier'][0]['system']}|{body['identifier'][0]['value']}"
    served = [
        written,
        await client.get(f"/fhir/Claim/{rid}"),
        await client.get(f"/fhir/Claim/{rid}/_history/1"),
        await client.get("/fhir/Claim", params={"identifier": identifier}),
        await client.get("/fhir/Claim", params={"_id": rid, "_format": "json"}),
        await client.get(f"/fhir/Claim/{rid}/_history"),
        await client.get("/fhir/Claim/_history"),
    ]
    for response in served:
        assert response.status_code in (200, 201), response.text
        assert NET in compact(response.content), response.request.url
        assert b'"net":{"value":0.10}' in compact(response.content), response.request.url


async def test_a_decimal_beside_a_sealed_cin_is_served_as_written(
    client: httpx.AsyncClient, platform: Platform
) -> None:
    """A resource holding a CIN is stored sealed and re-serialised on the way out: its
    decimals are not turned into floats there either."""
    store = platform.app.state.fhir.store
    resource = patient(cin="BK654321")
    resource["extension"] = [
        {"url": "https://example.org/weight", "valueDecimal": Decimal("70.50")}
    ]
    async with store.transaction() as conn:
        stored = await store.create(conn, "Patient", resource)
        at_rest = await conn.scalar(select(resources.c.content).where(resources.c.id == stored.id))
    assert "BK654321" not in at_rest  # sealed at rest
    assert b'"valueDecimal":70.50' in compact(at_rest.encode())
    read = await client.get(f"/fhir/Patient/{stored.id}")
    search = await client.get("/fhir/Patient", params={"identifier": f"{CIN}|BK654321"})
    for response in (read, search):
        assert b'"valueDecimal":70.50' in compact(response.content)
        assert b'"value":"BK654321"' in compact(response.content)


@pytest.mark.parametrize("number", [b"NaN", b"Infinity", b"-Infinity", b"1e999", b"-1e999"])
async def test_a_number_json_cannot_hold_is_a_400_naming_the_body(
    client: httpx.AsyncClient, number: bytes
) -> None:
    insured = await create(client, patient())
    body = fhir_json.dumps(claim(f"Patient/{insured['id']}", amount=150))
    body = body.replace(b'"net":{"value":150,', b'"net":{"value":' + number + b",")
    assert number in body
    response = await client.post("/fhir/Claim", content=body, headers=FHIR_JSON)
    assert response.status_code == 400, response.text
    outcome = response.json()
    assert outcome["resourceType"] == "OperationOutcome"
    assert outcome["issue"][0]["details"]["coding"][0]["code"] == "FSE-0001"
