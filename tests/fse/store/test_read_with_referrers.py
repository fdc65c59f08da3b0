"""Resources read with what points at them, in one statement, find what the searches
``<param>=<type>/<id>`` find: the live referrers of that parameter, in the same order, nothing
of another parameter, type or target, nothing deleted; a missing or deleted resource is the
read's 404 or 410, and does not hide the others read with it."""

from __future__ import annotations

import httpx

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
        (found, theirs) = await store.read_each_with_referrers(
            conn,
            [
                (
                    "Patient",
                    main["id"],
                    [
                        ("ChargeItem", "patient"),
                        ("ChargeItem", "subject"),
                        ("Coverage", "beneficiary"),
                    ],
                ),
                ("Patient", other["id"], [("ChargeItem", "patient")]),
            ],
        )
    assert not isinstance(found, Exception) and not isinstance(theirs, Exception)
    stored, (acts, subjects, coverages) = found
    assert stored.id == main["id"] and stored.version == 1 and "Alaoui" in (stored.content or "")
    assert [m.id for m in acts] == await searched(client, "ChargeItem", "patient", me)
    assert [m.id for m in acts] == [mine[0]["id"], mine[2]["id"]]
    assert [m.id for m in subjects] == await searched(client, "ChargeItem", "subject", me)
    assert all(m.type == "ChargeItem" and '"ChargeItem"' in m.content for m in acts)
    assert coverages == [] == await searched(client, "Coverage", "beneficiary", me)
    assert [m.id for m in theirs[1][0]] == await searched(client, "ChargeItem", "patient", them)
    assert theirs[0].id == other["id"] and theirs[1][0]


async def test_a_missing_or_deleted_resource_is_not_found_or_gone(
    platform: Platform, client: httpx.AsyncClient
) -> None:
    store = platform.app.state.fhir.store
    gone = await create(client, patient())
    kept = await create(client, patient("987654321", "AB987654", family="Bennani"))
    assert (await client.delete(f"/fhir/Patient/{gone['id']}")).status_code == 204
    async with store.snapshot() as conn:
        nobody, deleted, alive = await store.read_each_with_referrers(
            conn,
            [
                ("Patient", "nobody", [("Coverage", "beneficiary")]),
                ("Patient", gone["id"], []),
                ("Patient", kept["id"], []),
            ],
        )
    assert isinstance(nobody, NotFound) and isinstance(deleted, Gone)
    assert not isinstance(alive, Exception) and alive[0].id == kept["id"]
