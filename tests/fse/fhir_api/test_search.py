"""Search: the parameters the care-sheet workflow uses, paging, sorting, includes, strictness."""

from __future__ import annotations

import httpx
import pytest

from fse.errors import ErrorCode
from fse.store.indexing import extract
from tests.builders import (
    CIN,
    FHIR_JSON,
    FSE,
    IMMAT,
    NGAP,
    charge_item,
    claim,
    create,
    medication_request,
    patient,
)
from tests.conftest import Platform
from tests.fse.fhir_api.test_errors import assert_outcome


def ids(bundle: dict) -> list[str]:
    return [e["resource"]["id"] for e in bundle.get("entry", []) if e["search"]["mode"] == "match"]


async def search(client: httpx.AsyncClient, path: str, **params: str) -> dict:
    response = await client.get(f"/fhir/{path}", params=params)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["resourceType"] == "Bundle" and body["type"] == "searchset"
    return body


async def two_patients(client: httpx.AsyncClient) -> tuple[dict, dict]:
    first = await create(
        client,
        patient(
            immat="123456789", cin="BE123456", family="Alaoui", given="Élodie", birth="1978-04-12"
        ),
    )
    second = await create(
        client,
        patient(
            immat="987654321", cin="A654321", family="Tazi", given="Youssef", birth="1985-09-30"
        ),
    )
    return first, second


async def test_identifier_with_and_without_system(client: httpx.AsyncClient) -> None:
    first, _ = await two_patients(client)
    assert ids(await search(client, "Patient", identifier=f"{CIN}|BE123456")) == [first["id"]]
    assert ids(await search(client, "Patient", identifier="BE123456")) == [first["id"]]
    assert ids(await search(client, "Patient", identifier=f"{IMMAT}|BE123456")) == []
    assert len(ids(await search(client, "Patient", identifier=f"{CIN}|"))) == 2


async def test_comma_is_or_and_repetition_is_and(client: httpx.AsyncClient) -> None:
    first, second = await two_patients(client)
    both = await search(client, "Patient", identifier="BE123456,A654321")
    assert sorted(ids(both)) == sorted([first["id"], second["id"]])
    response = await client.get(
        "/fhir/Patient", params=[("identifier", "BE123456"), ("identifier", "A654321")]
    )
    assert ids(response.json()) == []


async def test_string_search_ignores_case_and_accents_and_matches_prefixes(
    client: httpx.AsyncClient,
) -> None:
    first, second = await two_patients(client)
    assert ids(await search(client, "Patient", name="elod")) == [first["id"]]
    assert ids(await search(client, "Patient", family="TAZ")) == [second["id"]]
    assert ids(await search(client, "Patient", **{"given:exact": "Élodie"})) == [first["id"]]
    assert ids(await search(client, "Patient", **{"given:exact": "elodie"})) == []
    assert ids(await search(client, "Patient", **{"name:contains": "ouss"})) == [second["id"]]


async def test_dates_with_prefixes(client: httpx.AsyncClient) -> None:
    first, second = await two_patients(client)
    assert ids(await search(client, "Patient", birthdate="1978-04-12")) == [first["id"]]
    assert ids(await search(client, "Patient", birthdate="1978")) == [first["id"]]
    assert ids(await search(client, "Patient", birthdate="ge1980-01-01")) == [second["id"]]
    assert ids(await search(client, "Patient", birthdate="lt1980")) == [first["id"]]
    assert ids(await search(client, "Patient", birthdate="gt1985-09-30")) == []
    assert ids(await search(client, "Patient", birthdate="le1985-09-30")) == [
        first["id"],
        second["id"],
    ]
    response = await client.get(
        "/fhir/Patient", params=[("birthdate", "ge1978-01-01"), ("birthdate", "lt1979")]
    )
    assert ids(response.json()) == [first["id"]]


async def test_datetime_with_timezone(client: httpx.AsyncClient) -> None:
    owner = await create(client, patient())
    mr = await create(
        client, medication_request(f"Patient/{owner['id']}", authored="2026-11-20T00:30:00+01:00")
    )
    # 00:30 in Morocco (+01:00) is still the 19th in UTC.
    assert ids(await search(client, "MedicationRequest", authoredon="ge2026-11-19T23:00:00Z")) == [
        mr["id"]
    ]
    assert ids(await search(client, "MedicationRequest", authoredon="gt2026-11-20T00:00:00Z")) == []


async def test_reference_by_id_type_and_chain(client: httpx.AsyncClient) -> None:
    first, second = await two_patients(client)
    mine = await create(client, claim(f"Patient/{first['id']}", sequence=1))
    await create(client, claim(f"Patient/{second['id']}", sequence=2))
    assert ids(await search(client, "Claim", patient=f"Patient/{first['id']}")) == [mine["id"]]
    assert ids(await search(client, "Claim", patient=first["id"])) == [mine["id"]]
    assert ids(await search(client, "Claim", **{"patient.identifier": f"{IMMAT}|123456789"})) == [
        mine["id"]
    ]
    assert ids(await search(client, "Claim", **{"patient:Patient.identifier": "BE123456"})) == [
        mine["id"]
    ]
    assert ids(await search(client, "Claim", **{"patient.name": "alaoui"})) == [mine["id"]]
    assert ids(await search(client, "Claim", **{"patient.identifier": f"{IMMAT}|000000000"})) == []


async def test_chain_ignores_deleted_targets(client: httpx.AsyncClient) -> None:
    first, _ = await two_patients(client)
    await create(client, claim(f"Patient/{first['id']}"))
    await client.delete(f"/fhir/Patient/{first['id']}")
    assert ids(await search(client, "Claim", **{"patient.identifier": "BE123456"})) == []


async def test_status_code_and_not_modifier(client: httpx.AsyncClient) -> None:
    first, _ = await two_patients(client)
    active = await create(client, claim(f"Patient/{first['id']}", sequence=1, act="C"))
    draft = await create(
        client, claim(f"Patient/{first['id']}", sequence=2, act="Cs", status="draft")
    )
    assert ids(await search(client, "Claim", status="active")) == [active["id"]]
    assert ids(await search(client, "Claim", **{"status:not": "active"})) == [draft["id"]]
    mr = await create(client, medication_request(f"Patient/{first['id']}"))
    assert ids(await search(client, "MedicationRequest", code="urn:oid:1.3.160|6118000190219")) == [
        mr["id"]
    ]
    assert ids(await search(client, "MedicationRequest", code=f"{NGAP}|6118000190219")) == []


async def test_missing_modifier(client: httpx.AsyncClient) -> None:
    phone = [{"system": "phone", "value": "+212600000000"}]
    with_phone = await create(client, patient(immat="111111111", cin="A1", telecom=phone))
    without = await create(client, patient(immat="222222222", cin="A2"))
    assert ids(await search(client, "Patient", **{"telecom:missing": "true"})) == [without["id"]]
    assert ids(await search(client, "Patient", **{"telecom:missing": "false"})) == [
        with_phone["id"]
    ]


async def test_id_and_last_updated(client: httpx.AsyncClient) -> None:
    _first, second = await two_patients(client)
    assert ids(await search(client, "Patient", _id=second["id"])) == [second["id"]]
    stamp = second["meta"]["lastUpdated"]
    assert second["id"] in ids(await search(client, "Patient", _lastUpdated=f"ge{stamp}"))
    assert ids(await search(client, "Patient", _lastUpdated="lt2000-01-01")) == []


async def test_include_and_revinclude(client: httpx.AsyncClient) -> None:
    first, _ = await two_patients(client)
    mine = await create(client, claim(f"Patient/{first['id']}"))
    bundle = await search(client, "Claim", _include="Claim:patient")
    modes = {(e["resource"]["resourceType"], e["search"]["mode"]) for e in bundle["entry"]}
    assert modes == {("Claim", "match"), ("Patient", "include")}
    assert [e["resource"]["id"] for e in bundle["entry"] if e["search"]["mode"] == "include"] == [
        first["id"]
    ]
    rev = await search(client, "Patient", _id=first["id"], _revinclude="Claim:patient")
    included = [e["resource"]["id"] for e in rev["entry"] if e["search"]["mode"] == "include"]
    assert included == [mine["id"]]


async def test_keyset_paging_is_stable_under_inserts(client: httpx.AsyncClient) -> None:
    for n in range(5):
        await create(client, patient(immat=f"10000000{n}", cin=f"A{n}"))
    first_page = await search(client, "Patient", _count="2")
    next_url = next(link["url"] for link in first_page["link"] if link["relation"] == "next")
    await create(client, patient(immat="100000009", cin="A9"))  # arrives while paging
    seen = [e["resource"]["identifier"][0]["value"] for e in first_page["entry"]]
    url: str | None = next_url
    while url:
        page = (await client.get(url)).json()
        seen += [e["resource"]["identifier"][0]["value"] for e in page["entry"]]
        url = next((link["url"] for link in page["link"] if link["relation"] == "next"), None)
    assert seen[:5] == [f"10000000{n}" for n in range(5)]
    assert len(seen) == len(set(seen)) == 6


async def test_count_is_capped(client: httpx.AsyncClient, platform: Platform) -> None:
    cap = platform.settings.max_page_size
    entries = [
        {
            "resource": patient(immat=f"{n:09d}", cin=f"C{n}"),
            "request": {"method": "POST", "url": "Patient"},
        }
        for n in range(cap + 1)
    ]
    bundle = {"resourceType": "Bundle", "type": "transaction", "entry": entries}
    assert (await client.post("/fhir", json=bundle, headers=FHIR_JSON)).status_code == 200
    page = await search(client, "Patient", _count="100000")
    assert page["link"][0]["url"].endswith(f"_count={cap}")
    assert len(page["entry"]) == cap
    assert [link["relation"] for link in page["link"]] == ["self", "next"]
    assert len((await search(client, "Patient", _count="2"))["entry"]) == 2
    assert (await search(client, "Patient", _count="0")).get("entry", []) == []


async def test_sort_on_dates_both_ways_across_pages(client: httpx.AsyncClient) -> None:
    owner = await create(client, patient())
    dates = ["2026-11-03", "2026-11-01", "2026-11-05", "2026-11-02", "2026-11-04"]
    for n, created in enumerate(dates):
        await create(client, claim(f"Patient/{owner['id']}", sequence=100 + n, created=created))

    async def walk(sort: str) -> list[str]:
        out: list[str] = []
        url: str | None = f"/fhir/Claim?_sort={sort}&_count=2"
        while url:
            page = (await client.get(url)).json()
            out += [e["resource"]["created"] for e in page.get("entry", [])]
            url = next((link["url"] for link in page["link"] if link["relation"] == "next"), None)
        return out

    assert await walk("created") == sorted(dates)
    assert await walk("-created") == sorted(dates, reverse=True)
    by_update = await walk("-_lastUpdated")
    assert by_update == list(reversed(dates))


async def test_total_only_when_asked(client: httpx.AsyncClient) -> None:
    await two_patients(client)
    assert "total" not in await search(client, "Patient", _count="1")
    assert (await search(client, "Patient", _count="1", _total="accurate"))["total"] == 2


async def test_unknown_parameters_are_ignored_unless_strict(client: httpx.AsyncClient) -> None:
    first, _second = await two_patients(client)
    lenient = await search(client, "Patient", colour="blue", identifier="BE123456")
    assert ids(lenient) == [first["id"]]
    assert "colour" not in lenient["link"][0]["url"]
    strict = await client.get(
        "/fhir/Patient", params={"colour": "blue"}, headers={"Prefer": "handling=strict"}
    )
    assert_outcome(strict, 400, ErrorCode.UNKNOWN_SEARCH_PARAMETER, "colour")


async def test_bad_values_are_400_with_the_parameter(client: httpx.AsyncClient) -> None:
    for params, name in (
        ({"birthdate": "yesterday"}, "birthdate"),
        ({"_count": "many"}, "_count"),
        ({"_sort": "family"}, "_sort"),
        ({"_cursor": "garbage"}, "_cursor"),
        ({"_include": "Claim"}, "_include"),
        ({"gender:exact": "female"}, "gender"),
    ):
        response = await client.get("/fhir/Patient", params=params)
        assert_outcome(response, 400, ErrorCode.INVALID_SEARCH_PARAMETER, name)


async def test_post_search_with_form_body(client: httpx.AsyncClient) -> None:
    first, _ = await two_patients(client)
    response = await client.post(
        "/fhir/Patient/_search",
        content=f"identifier={FSE}|x,BE123456",
        headers={"content-type": "application/x-www-form-urlencoded"},
    )
    assert ids(response.json()) == [first["id"]]


async def test_quantity_and_number(client: httpx.AsyncClient) -> None:
    owner = await create(client, patient())
    one = await create(client, charge_item(owner["id"], quantity={"value": 1}, factorOverride=1.5))
    two = await create(client, charge_item(owner["id"], quantity={"value": 30}))
    assert ids(await search(client, "ChargeItem", quantity="30")) == [two["id"]]
    assert ids(await search(client, "ChargeItem", quantity="gt5")) == [two["id"]]
    assert ids(await search(client, "ChargeItem", **{"factor-override": "1.5"})) == [one["id"]]


@pytest.mark.parametrize("huge", ["1e60", "99999999999999999999"])
async def test_numbers_beyond_what_the_index_holds_still_compare(
    client: httpx.AsyncClient, huge: str
) -> None:
    """Found by the fuzzer: PostgreSQL's index column cannot hold such a bound (500 there)."""
    owner = await create(client, patient())
    stored = await create(client, charge_item(owner["id"], quantity={"value": 30}))
    assert ids(await search(client, "ChargeItem", quantity=f"lt{huge}")) == [stored["id"]]
    assert ids(await search(client, "ChargeItem", quantity=f"gt-{huge}")) == [stored["id"]]
    assert ids(await search(client, "ChargeItem", quantity=f"ge{huge}")) == []
    assert ids(await search(client, "ChargeItem", quantity=huge)) == []
    assert ids(await search(client, "ChargeItem", quantity=f"ne{huge}")) == [stored["id"]]


async def test_subject_and_patient_search_the_same_reference(client: httpx.AsyncClient) -> None:
    first, second = await two_patients(client)
    mine = await create(client, medication_request(f"Patient/{first['id']}", line="RX-A"))
    await create(client, medication_request(f"Patient/{second['id']}", line="RX-B"))
    by_subject = await search(client, "MedicationRequest", subject=f"Patient/{first['id']}")
    by_patient = await search(client, "MedicationRequest", patient=first["id"])
    assert ids(by_subject) == ids(by_patient) == [mine["id"]]
    chained = await search(client, "MedicationRequest", **{"subject.identifier": "A654321"})
    assert len(ids(chained)) == 1 and ids(chained) != [mine["id"]]


async def test_a_change_feed_pulls_every_change_once_while_changes_keep_coming(
    client: httpx.AsyncClient,
) -> None:
    """What a CNSS system runs for incremental pulls: `_lastUpdated=ge<high-water mark>` sorted
    by `_lastUpdated`, following `next` (keyset paging: stable while new writes arrive), then
    again from the newest `meta.lastUpdated` seen, skipping the versions already seen."""
    owner = await create(client, patient())
    seen: set[tuple[str, str]] = set()
    pulled: list[str] = []

    async def pull(mark: str) -> str:
        url: str | None = f"/fhir/Claim?_lastUpdated=ge{mark}&_sort=_lastUpdated&_count=2"
        while url:
            page = (await client.get(url)).json()
            for entry in page.get("entry", []):
                resource = entry["resource"]
                version = (resource["id"], resource["meta"]["versionId"])
                if version not in seen:
                    seen.add(version)
                    pulled.append(resource["id"])
                mark = max(mark, resource["meta"]["lastUpdated"])
            # a change written while paging: the cursor goes on past it, the next pull has it
            if len(pulled) == 2:
                await create(client, claim(f"Patient/{owner['id']}", sequence=99))
            url = next((link["url"] for link in page["link"] if link["relation"] == "next"), None)
        return mark

    first = [await create(client, claim(f"Patient/{owner['id']}", sequence=n)) for n in range(5)]
    mark = await pull("2000-01-01")
    second = [
        await create(client, claim(f"Patient/{owner['id']}", sequence=10 + n)) for n in range(3)
    ]
    await pull(mark)
    everything = ids(await search(client, "Claim", _count="100"))
    assert sorted(pulled) == sorted(everything) and len(pulled) == len(set(pulled)) == 9
    assert {c["id"] for c in first + second} <= set(pulled)


async def test_patient_of_a_provenance_or_audit_event_finds_only_what_names_that_patient(
    client: httpx.AsyncClient,
) -> None:
    """``patient`` is ``target.where(resolve() is Patient)`` (Provenance) and
    ``entity.what.where(resolve() is Patient)`` (AuditEvent): the other resources these name
    are found by ``target`` and ``entity``, not by ``patient``, and are not indexed as one."""
    first, _ = await two_patients(client)
    prescribed = await create(client, medication_request(f"Patient/{first['id']}", line="RX-P"))
    request_ref, patient_ref = f"MedicationRequest/{prescribed['id']}", f"Patient/{first['id']}"
    signed = await create(
        client,
        {
            "resourceType": "Provenance",
            "target": [{"reference": patient_ref}, {"reference": request_ref}],
            "recorded": "2026-11-20T10:00:00+01:00",
            "agent": [{"who": {"reference": patient_ref}}],
        },
    )
    assert ids(await search(client, "Provenance", patient=patient_ref)) == [signed["id"]]
    assert ids(await search(client, "Provenance", target=request_ref)) == [signed["id"]]
    assert ids(await search(client, "Provenance", patient=request_ref)) == []
    event = {
        "resourceType": "AuditEvent",
        "entity": [{"what": {"reference": patient_ref}}, {"what": {"reference": request_ref}}],
    }
    rows = extract("AuditEvent", event).reference
    assert {(r["param"], r["target_type"]) for r in rows} == {
        ("entity", "Patient"),
        ("entity", "MedicationRequest"),
        ("patient", "Patient"),
    }
