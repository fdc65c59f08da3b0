"""Several creates of one transaction (a settlement's Claim, ClaimResponse and EOB) go down as
one statement on PostgreSQL and behave as the creates one by one: each resource stored, read
and found by its index rows; a taken identifier is the 409 of the resource that holds it, and
nothing of the others is left."""

from __future__ import annotations

import httpx
import pytest

from fse.errors import Conflict
from tests.builders import create, patient
from tests.conftest import Platform
from tests.statements import statements


async def test_creates_in_one_go_are_each_stored_read_and_found(
    platform: Platform, client: httpx.AsyncClient
) -> None:
    store = platform.app.state.fhir.store
    items = [
        ("Patient", patient("111111111", "AB111111", family="Idrissi"), None),
        ("Patient", patient("222222222", "AB222222", family="Tazi"), "chosen-id"),
    ]
    with statements(platform.engine) as sent:
        async with store.transaction() as conn:
            stored = await store.create_many(conn, items)
    inserts = [s for s in sent if s.sql.lstrip().startswith(("WITH", "INSERT"))]
    one_statement = platform.backend == "postgresql"  # SQLite: one INSERT per table and row
    assert (len(inserts) == 1) is one_statement
    assert [s.id for s in stored][1] == "chosen-id" and all(s.pk for s in stored)
    for one, family in zip(stored, ("Idrissi", "Tazi"), strict=True):
        read = (await client.get(f"/fhir/Patient/{one.id}")).json()
        assert read["name"][0]["family"] == family and read["meta"]["versionId"] == "1"
        found = await client.get("/fhir/Patient", params={"family": family})
        assert [e["resource"]["id"] for e in found.json()["entry"]] == [one.id]


async def test_a_taken_identifier_is_the_conflict_of_its_resource_and_nothing_is_left(
    platform: Platform, client: httpx.AsyncClient
) -> None:
    await create(client, patient("333333333", "AB333333"))
    store = platform.app.state.fhir.store
    before = await platform.row_counts()
    items = [
        ("Patient", patient("444444444", "AB444444", family="Nouvelle"), None),
        ("Patient", patient("333333333", "AB999999", family="Doublon"), None),
    ]
    with pytest.raises(Conflict) as taken:
        async with store.transaction() as conn:
            await store.create_many(conn, items)
    assert taken.value.expression == ("Patient.identifier[0]",)
    assert "333333333" in taken.value.diagnostics
    assert await platform.row_counts() == before
