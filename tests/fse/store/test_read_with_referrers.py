"""A resource read with what points at it, in one statement, finds what the searches
``<param>=<type>/<id>`` find: the live referrers of that parameter, in the same order, nothing
of another parameter, type or target, nothing deleted; a missing or deleted resource is the
read's 404 or 410."""

from __future__ import annotations

import httpx
import pytest

from fse.errors import Gone, NotFound
from tests.builders import charge_item, create, patient
from tests.conftest import Platform


async def searched(client: httpx.AsyncClient, rtype: str, param: str, target: str) -> list[str]:
    found = await client.get(f"/fhir/{rtype}", params={param: target, "_count": "100"})
    assert found.status_code == 200, found.text
    return [e["resource"]["id"] for e in found.json().get("entry", [])]


async def test_what_points_at_a_resource_is_what_the_searches_find(
    platform: Platform, client: httpx.AsyncClient
) -> None:
    main = await create(client, patient())
    other = await create(client, patient("987654321", "AB987654", family="Bennani"))
    me, them = f"Patient/{main['id']}", f"Patient/{other['id']}"
    mine = [await create(client, charge_item(main["id"], quantity={"value": 1})) for _ in range(3)]
    await create(client, charge_item(other["id"], quantity={"value": 1}))
    store = platform.app.state.fhir.store
    async with store.transaction() as conn:
        assert await store.delete(conn, "ChargeItem", mine[1]["id"]) is not None
    async with store.snapshot() as conn:
        stored, (acts, subjects, coverages) = await store.read_with_referrers(
            conn,
            "Patient",
            main["id"],
            [("ChargeItem", "patient"), ("ChargeItem", "subject"), ("Coverage", "beneficiary")],
        )
    assert stored.id == main["id"] and stored.version == 1 and "Alaoui" in (stored.content or "")
    assert [m.id for m in acts] == await searched(client, "ChargeItem", "patient", me)
    assert [m.id for m in acts] == [mine[0]["id"], mine[2]["id"]]
    assert [m.id for m in subjects] == await searched(client, "ChargeItem", "subject", me)
    assert all(m.type == "ChargeItem" and '"ChargeItem"' in m.content for m in acts)
    assert coverages == [] == await searched(client, "Coverage", "beneficiary", me)
    assert await searched(client, "ChargeItem", "patient", them) != []


async def test_a_missing_or_deleted_resource_is_not_found_or_gone(
    platform: Platform, client: httpx.AsyncClient
) -> None:
    store = platform.app.state.fhir.store
    gone = await create(client, patient())
    assert (await client.delete(f"/fhir/Patient/{gone['id']}")).status_code == 204
    async with store.snapshot() as conn:
        with pytest.raises(NotFound):
            await store.read_with_referrers(
                conn, "Patient", "nobody", [("Coverage", "beneficiary")]
            )
        with pytest.raises(Gone):
            await store.read_with_referrers(conn, "Patient", gone["id"], [])
