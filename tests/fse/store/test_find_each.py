"""Several searches in one statement (``ResourceStore.find_each``, how a signed sheet is read
back by its number) find what each search finds on its own: the live matches of a token (a CIN
by its blind index), a reference or an id, in the same order, nothing deleted, nothing of
another type or parameter."""

from __future__ import annotations

import httpx
import pytest

from fse.store.repository import Lookup
from tests.builders import CIN, IMMAT, charge_item, create, patient
from tests.conftest import Platform
from tests.fse.store.test_read_with_referrers import searched
from tests.statements import statements


async def test_each_lookup_finds_what_its_search_finds_in_one_statement(
    platform: Platform, client: httpx.AsyncClient
) -> None:
    main = await create(client, patient())
    other = await create(client, patient("987654321", "AB987654", family="Bennani"))
    me = f"Patient/{main['id']}"
    mine = [await create(client, charge_item(main["id"], quantity={"value": 1})) for _ in range(3)]
    await create(client, charge_item(other["id"], quantity={"value": 1}))
    store = platform.app.state.fhir.store
    async with store.transaction() as conn:
        assert await store.delete(conn, "ChargeItem", mine[1]["id"]) is not None
    lookups = [
        Lookup("Patient", "identifier", f"{IMMAT}|123456789"),
        Lookup("Patient", "identifier", f"{CIN}|AB987654"),  # sealed: found by its blind index
        Lookup("ChargeItem", "subject", me),
        Lookup("ChargeItem", "patient", me),
        Lookup("ChargeItem", "_id", mine[1]["id"]),  # deleted
        Lookup("Coverage", "beneficiary", me),
        Lookup("Patient", "_id", other["id"]),
        Lookup("Patient", "identifier", f"{IMMAT}|000000000"),
    ]
    async with store.snapshot() as conn:
        with statements(platform.engine) as sent:
            found = await store.find_each(conn, lookups)
    assert len(sent) == 1
    ids = [[m.id for m in page] for page in found]
    assert ids == [
        [main["id"]],
        [other["id"]],
        [mine[0]["id"], mine[2]["id"]],
        [mine[0]["id"], mine[2]["id"]],
        [],
        [],
        [other["id"]],
        [],
    ]
    for lookup, page in zip(lookups, ids, strict=True):
        assert page == await searched(client, lookup.rtype, lookup.param, lookup.value), lookup
    assert all(m.type == "ChargeItem" and '"ChargeItem"' in m.content for m in found[2])
    assert "AB987654" in found[1][0].content  # served opened, as a read serves it


@pytest.mark.parametrize(
    "lookup",
    [
        Lookup("Patient", "birthdate", "1978-04-12"),  # a date: not a token or reference
        Lookup("Patient", "identifier", "123456789"),  # a token without its system
        Lookup("ChargeItem", "subject", "Patient/"),
    ],
)
async def test_what_it_cannot_find_exactly_is_refused(
    platform: Platform, client: httpx.AsyncClient, lookup: Lookup
) -> None:
    store = platform.app.state.fhir.store
    async with store.snapshot() as conn:
        with pytest.raises(ValueError):
            await store.find_each(conn, [lookup])
