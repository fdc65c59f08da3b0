"""Never a 500, never a lie: input the databases cannot hold is refused at every door with a
4xx OperationOutcome naming the element, nothing stored, and SQLite and PostgreSQL answer alike
(fse/limits.py; docs/errors.md, "Input limits")."""

from __future__ import annotations

import base64
import json
from typing import Any

import httpx
import pytest

from fse.errors import ErrorCode
from fse.limits import MAX_AMOUNT, MAX_STRING_CHARS
from reimbursement.claims import FLAT_RATES
from tests.builders import create, patient
from tests.conftest import Platform
from tests.fse.fhir_api.test_errors import assert_outcome
from tests.fse.fhir_api.test_transaction import bundle, post
from tests.reimbursement.demo import FATIMA, act, claim, load_demo

SUBMIT = "/fhir/Claim/$submit"
PAST_THE_END = "9999-12-31T23:59:59-05:00"  # 10000-01-01T04:59:59Z
BEFORE_THE_START = "0001-01-01T00:00:00+05:00"  # 0000-12-31T19:00:00Z


def encounter(start: str = "2026-11-20T09:00:00+01:00", end: str | None = None) -> dict[str, Any]:
    period = {"start": start, **({"end": end} if end else {})}
    return {
        "resourceType": "Encounter",
        "status": "finished",
        "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "AMB"},
        "subject": {"reference": "Patient/p1"},
        "participant": [{"individual": {"reference": "Practitioner/d1"}}],
        "period": period,
    }


def nested_extensions(levels: int) -> list[dict[str, Any]]:
    extension: dict[str, Any] = {"url": "https://example.org/e", "valueString": "fond"}
    for _ in range(levels):
        extension = {"url": "https://example.org/e", "extension": [extension]}
    return [extension]


def cursor(pk: int) -> str:
    return base64.urlsafe_b64encode(json.dumps([None, pk]).encode()).decode().rstrip("=")


# -- dates at the calendar's edge --------------------------------------------------------------

EDGE_READS = [
    ("/fhir/Patient", {"birthdate": "9999-12-31"}),
    ("/fhir/Patient", {"_lastUpdated": "lt9999-12-31T23:59:59Z"}),
    ("/fhir/Patient", {"_lastUpdated": "ge0001-01-01T00:00:00Z"}),
    ("/fhir/Claim", {"created": "9999-12-31"}),
    ("/fhir/Claim", {"created": "le9999-12-31T23:59Z"}),
    ("/fhir/Patient/_history", {"_since": "9999-12-31T23:59:59Z"}),
]


@pytest.mark.parametrize(("url", "params"), EDGE_READS, ids=[str(p) for _, p in EDGE_READS])
async def test_the_last_instant_of_the_calendar_is_searchable(
    client: httpx.AsyncClient, url: str, params: dict[str, str]
) -> None:
    """9999-12-31T23:59:59Z is a FHIR instant like any: its second ends within the calendar."""
    answer = await client.get(url, params=params)
    assert answer.status_code == 200, answer.text
    assert answer.json()["resourceType"] == "Bundle"


async def test_an_export_since_the_last_instant_is_accepted(client: httpx.AsyncClient) -> None:
    answer = await client.get(
        "/fhir/$export",
        params={"_since": "9999-12-31T23:59:59Z"},
        headers={"Prefer": "respond-async"},
    )
    assert answer.status_code == 202, answer.text


async def test_a_birth_date_on_the_last_day_is_stored_and_found(
    client: httpx.AsyncClient,
) -> None:
    """A date (not a dateTime) has no offset: 9999-12-31 fits the index and is found."""
    stored = await create(client, patient(birth="9999-12-31"))
    found = (await client.get("/fhir/Patient", params={"birthdate": "9999-12-31"})).json()
    assert [e["resource"]["id"] for e in found["entry"]] == [stored["id"]]


PAST_THE_CALENDAR_SEARCHES = [
    ("/fhir/Patient", "birthdate", PAST_THE_END),
    ("/fhir/Claim", "created", f"le{BEFORE_THE_START}"),
    ("/fhir/Patient", "_lastUpdated", f"lt{PAST_THE_END}"),
    ("/fhir/Patient/_history", "_since", PAST_THE_END),
    ("/fhir/$export", "_since", BEFORE_THE_START),
]


@pytest.mark.parametrize(
    ("url", "name", "value"),
    PAST_THE_CALENDAR_SEARCHES,
    ids=[f"{u} {n}" for u, n, _ in PAST_THE_CALENDAR_SEARCHES],
)
async def test_a_search_date_outside_the_calendar_in_utc_is_400(
    client: httpx.AsyncClient, platform: Platform, url: str, name: str, value: str
) -> None:
    before = await platform.row_counts()
    answer = await client.get(url, params={name: value}, headers={"Prefer": "respond-async"})
    assert_outcome(answer, 400, ErrorCode.INVALID_SEARCH_PARAMETER, name)
    assert await platform.row_counts() == before


INDEXED_PAST_THE_CALENDAR = [
    (encounter(end=PAST_THE_END), "Encounter.period.end"),
    (encounter(start=BEFORE_THE_START), "Encounter.period.start"),
    (
        {
            "resourceType": "ChargeItem",
            "status": "billable",
            "code": {
                "coding": [{"system": "https://fse.cnss.ma/fhir/CodeSystem/ngap", "code": "C"}]
            },
            "subject": {"reference": "Patient/p1"},
            "occurrenceDateTime": "2026-11-20",
            "enteredDate": PAST_THE_END,
            "quantity": {"value": 1},
            "performer": [{"actor": {"reference": "Practitioner/d1"}}],
        },
        "ChargeItem.enteredDate",
    ),
]


@pytest.mark.parametrize(
    ("resource", "path"), INDEXED_PAST_THE_CALENDAR, ids=[p for _, p in INDEXED_PAST_THE_CALENDAR]
)
async def test_an_indexed_date_outside_the_calendar_in_utc_is_422(
    client: httpx.AsyncClient, platform: Platform, resource: dict[str, Any], path: str
) -> None:
    before = await platform.row_counts()
    answer = await client.post(f"/fhir/{resource['resourceType']}", json=resource)
    assert_outcome(answer, 422, ErrorCode.VALUE_OUT_OF_RANGE, path)
    in_bundle = await client.post("/fhir", json=bundle("transaction", post(resource)))
    entry_path = path.replace(resource["resourceType"], "Bundle.entry[0].resource", 1)
    assert_outcome(in_bundle, 422, ErrorCode.VALUE_OUT_OF_RANGE, entry_path)
    assert await platform.row_counts() == before


async def test_an_indexed_number_over_the_index_is_422(
    client: httpx.AsyncClient, platform: Platform
) -> None:
    """NUMERIC(24, 6) on PostgreSQL: 1e20 overflowed there and was stored on SQLite."""
    item = INDEXED_PAST_THE_CALENDAR[2][0] | {
        "enteredDate": "2026-11-20",
        "quantity": {"value": 1e20},
    }
    before = await platform.row_counts()
    answer = await client.post("/fhir/ChargeItem", json=item)
    assert_outcome(answer, 422, ErrorCode.VALUE_OUT_OF_RANGE, "ChargeItem.quantity.value")
    assert await platform.row_counts() == before


def with_identifier(system: str, value: str) -> dict[str, Any]:
    body = patient()
    body["identifier"].append({"system": system, "value": value})
    return body


TOO_LONG_FOR_THE_INDEX = [
    (with_identifier("https://example.org/" + "s" * 255, "1"), "Patient.identifier[2].system"),
    (with_identifier("https://example.org/id", "v" * 256), "Patient.identifier[2].value"),
    (
        patient(generalPractitioner=[{"reference": "Practitioner/" + "a" * 65}]),
        "Patient.generalPractitioner[0].reference",
    ),
    (
        encounter() | {"class": {"system": "https://example.org/" + "c" * 255, "code": "AMB"}},
        "Encounter.class.system",
    ),
]


@pytest.mark.parametrize(
    ("resource", "path"), TOO_LONG_FOR_THE_INDEX, ids=[p for _, p in TOO_LONG_FOR_THE_INDEX]
)
async def test_a_token_or_reference_too_long_for_the_index_is_422(
    client: httpx.AsyncClient, platform: Platform, resource: dict[str, Any], path: str
) -> None:
    """VARCHAR(255) and (64) on PostgreSQL: it answered 500 there and SQLite stored them."""
    before = await platform.row_counts()
    answer = await client.post(f"/fhir/{resource['resourceType']}", json=resource)
    assert_outcome(answer, 422, ErrorCode.VALUE_OUT_OF_RANGE, path)
    assert await platform.row_counts() == before


async def test_an_identifier_of_255_characters_is_kept(client: httpx.AsyncClient) -> None:
    await create(client, with_identifier("https://example.org/id", "v" * 255))


@pytest.mark.parametrize(
    ("created", "code"),
    [
        ("9999-12-31T23:59:59Z", ErrorCode.DATE_IN_FUTURE),
        (BEFORE_THE_START, ErrorCode.VALUE_OUT_OF_RANGE),
    ],
)
async def test_submit_refuses_a_creation_date_at_the_calendar_edge(
    client: httpx.AsyncClient, platform: Platform, created: str, code: ErrorCode
) -> None:
    refs = await load_demo(client)
    sheet = claim(refs, FATIMA, [act("C", "150.00")], created=created)
    before = await platform.row_counts()
    assert_outcome(await client.post(SUBMIT, json=sheet), 422, code, "Claim.created")
    assert await platform.row_counts() == before


# -- numbers the columns cannot hold -----------------------------------------------------------


async def test_a_version_past_the_column_is_404(client: httpx.AsyncClient) -> None:
    stored = await create(client, patient())
    for version in ("99999999999999999999", "2147483648", "\u00b2"):
        answer = await client.get(f"/fhir/Patient/{stored['id']}/_history/{version}")
        assert_outcome(answer, 404, ErrorCode.NOT_FOUND)


async def test_a_cursor_past_the_row_keys_is_400(client: httpx.AsyncClient) -> None:
    answer = await client.get("/fhir/Patient", params={"_cursor": cursor(2**63)})
    assert_outcome(answer, 400, ErrorCode.INVALID_SEARCH_PARAMETER, "_cursor")


@pytest.mark.parametrize("net", [1e13, 999999999999.99, 1e20, float(MAX_AMOUNT) + 0.01])
async def test_submit_refuses_an_amount_over_the_bound(
    client: httpx.AsyncClient, platform: Platform, net: float
) -> None:
    refs = await load_demo(client)
    sheet = claim(refs, FATIMA, [act("C", str(net))])
    before = await platform.row_counts()
    answer = await client.post(SUBMIT, json=sheet)
    assert_outcome(answer, 422, ErrorCode.VALUE_OUT_OF_RANGE, "Claim.item[0].net.value")
    assert await platform.row_counts() == before


async def test_submit_settles_an_amount_at_the_bound(client: httpx.AsyncClient) -> None:
    """A line without a fee ceiling (key letters have one, FSE-0048): a hospital flat rate."""
    refs = await load_demo(client)
    line = act("hospitalisation-medicale", str(MAX_AMOUNT))
    line["productOrService"]["coding"][0]["system"] = FLAT_RATES
    answer = await client.post(SUBMIT, json=claim(refs, FATIMA, [line]))
    assert answer.status_code == 200, answer.text


async def test_submit_refuses_lines_whose_sum_is_over_the_bound(
    client: httpx.AsyncClient, platform: Platform
) -> None:
    refs = await load_demo(client)
    sheet = claim(refs, FATIMA, [act("C", str(MAX_AMOUNT)), act("C", "1.00")])
    before = await platform.row_counts()
    assert_outcome(
        await client.post(SUBMIT, json=sheet), 422, ErrorCode.VALUE_OUT_OF_RANGE, "Claim.item"
    )
    assert await platform.row_counts() == before


@pytest.mark.parametrize(
    ("quantity", "path"),
    [({"value": 1e9}, "Claim.item[0].quantity"), ({"value": 1.005}, "Claim.item[0].quantity")],
)
async def test_submit_refuses_a_quantity_the_column_cannot_hold(
    client: httpx.AsyncClient, platform: Platform, quantity: dict[str, Any], path: str
) -> None:
    refs = await load_demo(client)
    line = act("C", "150.00") | {"quantity": quantity}
    before = await platform.row_counts()
    answer = await client.post(SUBMIT, json=claim(refs, FATIMA, [line]))
    assert_outcome(answer, 422, ErrorCode.VALUE_OUT_OF_RANGE, path)
    assert await platform.row_counts() == before


async def test_submit_refuses_two_lines_with_one_sequence(
    client: httpx.AsyncClient, platform: Platform
) -> None:
    refs = await load_demo(client)
    sheet = claim(refs, FATIMA, [act("C", "150.00"), act("C", "150.00")])
    sheet["item"][1]["sequence"] = 1
    before = await platform.row_counts()
    answer = await client.post(SUBMIT, json=sheet)
    assert_outcome(answer, 422, ErrorCode.CLAIM_NOT_ADJUDICABLE, "Claim.item[1].sequence")
    assert await platform.row_counts() == before


# -- JSON nesting ------------------------------------------------------------------------------


async def test_deep_nesting_is_refused_at_every_door(
    client: httpx.AsyncClient, platform: Platform
) -> None:
    deep = patient(extension=nested_extensions(150))
    before = await platform.row_counts()
    for url, body in (
        ("/fhir/Patient", deep),
        ("/fhir/Patient/$validate", deep),
        ("/fhir", bundle("transaction", post(deep))),
        ("/fhir", bundle("batch", post(deep))),
    ):
        answer = await client.post(url, json=body)
        assert_outcome(answer, 400, ErrorCode.NESTING_TOO_DEEP)
    assert await platform.row_counts() == before
    refs = await load_demo(client)
    sheet = claim(refs, FATIMA, [act("C", "150.00")], extension=nested_extensions(150))
    loaded = await platform.row_counts()
    assert_outcome(await client.post(SUBMIT, json=sheet), 400, ErrorCode.NESTING_TOO_DEEP)
    assert await platform.row_counts() == loaded


async def test_ordinary_nesting_is_accepted(client: httpx.AsyncClient) -> None:
    await create(client, patient(extension=nested_extensions(20)))


# -- strings -----------------------------------------------------------------------------------


@pytest.mark.parametrize("character", ["\u0000", "\u0001", "\u001b", "\u000b"])
async def test_a_control_character_in_a_body_is_refused_with_its_path(
    client: httpx.AsyncClient, platform: Platform, character: str
) -> None:
    before = await platform.row_counts()
    body = patient(family=f"A{character}B")
    answer = await client.post("/fhir/Patient", json=body)
    assert_outcome(answer, 422, ErrorCode.INVALID_STRING, "Patient.name[0].family")
    answer = await client.post("/fhir", json=bundle("transaction", post(body)))
    assert_outcome(answer, 422, ErrorCode.INVALID_STRING, "Bundle.entry[0].resource.name[0].family")
    answer = await client.post("/fhir/Patient/$validate", json=body)
    assert_outcome(answer, 422, ErrorCode.INVALID_STRING, "Patient.name[0].family")
    assert await platform.row_counts() == before


async def test_a_control_character_in_an_update_or_a_submit_is_refused(
    client: httpx.AsyncClient, platform: Platform
) -> None:
    stored = await create(client, patient(immat="222222222", cin="A2"))
    refs = await load_demo(client)
    before = await platform.row_counts()
    stored["name"][0]["given"] = ["Fati\u0000ma"]
    answer = await client.put(f"/fhir/Patient/{stored['id']}", json=stored)
    assert_outcome(answer, 422, ErrorCode.INVALID_STRING, "Patient.name[0].given[0]")
    sheet = claim(refs, FATIMA, [act("C", "150.00")])
    sheet["item"][0]["productOrService"]["text"] = "consultation\u0000"
    answer = await client.post(SUBMIT, json=sheet)
    assert_outcome(answer, 422, ErrorCode.INVALID_STRING, "Claim.item[0].productOrService.text")
    assert await platform.row_counts() == before


async def test_tab_line_feed_and_other_whitespace_are_kept(client: httpx.AsyncClient) -> None:
    """FHIR allows tab, carriage return and line feed; a no-break space is no control."""
    stored = await create(client, patient(family="Ben\u00a0Ali", given="Fatima\tZahra\r\n"))
    assert stored["name"][0]["family"] == "Ben\u00a0Ali"
    # A backslash followed by "u0000" is text, not a NUL (its JSON is "back\\\\u0000slash").
    answer = await client.post("/fhir/Patient", json=patient("222222222", "A2", "back\\u0000slash"))
    assert answer.status_code == 201, answer.text
    assert answer.json()["name"][0]["family"] == "back\\u0000slash"


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("name", "a\u0000b"),
        ("identifier", "a\u0000b"),
        ("family:exact", "\u0001"),
        ("_id", "\u0000"),
    ],
)
async def test_a_control_character_in_a_search_is_400(
    client: httpx.AsyncClient, name: str, value: str
) -> None:
    answer = await client.get("/fhir/Patient", params={name: value})
    assert_outcome(answer, 400, ErrorCode.INVALID_SEARCH_PARAMETER, name)
    batch = bundle("batch", {"request": {"method": "GET", "url": f"Patient?{name}=%00"}})
    entry = (await client.post("/fhir", json=batch)).json()["entry"][0]["response"]
    assert entry["status"].startswith("400")


async def test_a_string_over_one_megabyte_is_refused(
    client: httpx.AsyncClient, platform: Platform
) -> None:
    before = await platform.row_counts()
    body = patient(family="x" * (4 * 1024 * 1024))
    answer = await client.post("/fhir/Patient", json=body)
    assert_outcome(answer, 422, ErrorCode.INVALID_STRING, "Patient.name[0].family")
    body = patient(family="x" * (MAX_STRING_CHARS + 1))
    answer = await client.post("/fhir", json=bundle("batch", post(body)))
    path = "Bundle.entry[0].resource.name[0].family"
    assert_outcome(answer, 422, ErrorCode.INVALID_STRING, path)  # the body is refused whole
    assert await platform.row_counts() == before


async def test_a_string_of_one_megabyte_is_kept(client: httpx.AsyncClient) -> None:
    stored = await create(client, patient(family="x" * MAX_STRING_CHARS))
    assert len(stored["name"][0]["family"]) == MAX_STRING_CHARS
