"""Conditional create (If-None-Exist) is race-free: enforced by the database, not by hope."""

from __future__ import annotations

import asyncio

import httpx

from fse.errors import ErrorCode
from tests.builders import CIN, FHIR_JSON, IMMAT, create, patient
from tests.conftest import Platform
from tests.fse.fhir_api.test_errors import assert_outcome


async def test_match_returns_the_existing_resource_with_200(
    client: httpx.AsyncClient, platform: Platform
) -> None:
    first = await create(client, patient())
    before = await platform.row_counts()
    response = await client.post(
        "/fhir/Patient",
        json=patient(),
        headers={**FHIR_JSON, "If-None-Exist": f"identifier={IMMAT}|123456789"},
    )
    assert response.status_code == 200
    assert response.json()["id"] == first["id"]
    assert await platform.row_counts() == before


async def test_no_match_creates(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/fhir/Patient",
        json=patient(),
        headers={**FHIR_JSON, "If-None-Exist": f"identifier={CIN}|BE123456"},
    )
    assert response.status_code == 201


async def test_several_matches_is_412(client: httpx.AsyncClient, platform: Platform) -> None:
    await create(client, patient(immat="111111111", cin="A1", family="Idrissi"))
    await create(client, patient(immat="222222222", cin="A2", family="Idrissi"))
    before = await platform.row_counts()
    response = await client.post(
        "/fhir/Patient",
        json=patient(immat="333333333", cin="A3"),
        headers={**FHIR_JSON, "If-None-Exist": "family=idrissi"},
    )
    assert_outcome(response, 412, ErrorCode.MULTIPLE_MATCHES)
    assert await platform.row_counts() == before


async def test_unknown_criteria_are_refused_not_ignored(
    client: httpx.AsyncClient, platform: Platform
) -> None:
    before = await platform.row_counts()
    response = await client.post(
        "/fhir/Patient",
        json=patient(),
        headers={**FHIR_JSON, "If-None-Exist": "favourite-colour=blue"},
    )
    assert_outcome(response, 400, ErrorCode.UNKNOWN_SEARCH_PARAMETER, "favourite-colour")
    assert await platform.row_counts() == before


async def test_sixteen_concurrent_identical_creates_store_exactly_one(
    client: httpx.AsyncClient, platform: Platform
) -> None:
    headers = {**FHIR_JSON, "If-None-Exist": f"identifier={IMMAT}|123456789"}

    async def attempt() -> httpx.Response:
        return await client.post("/fhir/Patient", json=patient(), headers=headers)

    responses = await asyncio.gather(*(attempt() for _ in range(16)))
    statuses = sorted(r.status_code for r in responses)
    assert statuses == [200] * 15 + [201]
    assert len({r.json()["id"] for r in responses}) == 1
    counts = await platform.row_counts()
    assert counts["resources"] == 1
    assert counts["resource_versions"] == 1


async def test_sixteen_concurrent_creates_on_criteria_without_unique_identifier(
    client: httpx.AsyncClient, platform: Platform
) -> None:
    """Not backed by unique_identifiers: the criteria lock alone must serialise them."""
    headers = {**FHIR_JSON, "If-None-Exist": "family=unique-family&birthdate=1978-04-12"}

    async def attempt(n: int) -> httpx.Response:
        body = patient(immat=f"{n:09d}", cin=f"Z{n}", family="Unique-Family")
        return await client.post("/fhir/Patient", json=body, headers=headers)

    responses = await asyncio.gather(*(attempt(n) for n in range(16)))
    assert sorted(r.status_code for r in responses) == [200] * 15 + [201]
    assert (await platform.row_counts())["resources"] == 1


async def test_sixteen_concurrent_plain_creates_of_one_identifier_store_one(
    client: httpx.AsyncClient, platform: Platform
) -> None:
    async def attempt() -> httpx.Response:
        return await client.post("/fhir/Patient", json=patient(), headers=FHIR_JSON)

    responses = await asyncio.gather(*(attempt() for _ in range(16)))
    assert sorted(r.status_code for r in responses) == [201] + [409] * 15
    assert (await platform.row_counts())["resources"] == 1
