"""Every FHIR API interaction with personal data leaves an AuditEvent: who, what, which insured,
when, the outcome; identifiers searched are masked; the guide and directories are not logged."""

from __future__ import annotations

import html
import re
from datetime import datetime

import httpx
from fhir.resources.R4B.auditevent import AuditEvent

from fse.api_audit import ApiAudit, interaction_of, masked
from fse.security.users import Role
from tests.conftest import Platform
from tests.prescriber.test_lookup import signed_in
from tests.reimbursement.demo import FATIMA, FSE, PHARMACIST, PHARMACY, act, claim, load_demo


async def test_reads_searches_and_refusals_of_personal_data_are_audited(
    platform: Platform, client: httpx.AsyncClient
) -> None:
    refs = await load_demo(client)
    audit = platform.app.state.api_audit
    await audit.drain()  # what loading the demo data logged
    fatima = refs[FATIMA]
    cin = "https://fse.cnss.ma/fhir/sid/cin|BE123456"
    await client.get(f"/fhir/{fatima}")
    await client.get("/fhir/Claim", params={"patient": fatima})
    await client.get("/fhir/Patient", params={"identifier": cin})
    await client.get("/fhir/Patient/does-not-exist")
    await client.get("/fhir/CodeSystem")  # the guide: not personal data
    await client.get("/fhir/Organization")
    reader = await platform.token_with("system/Organization.rs")
    denied = await client.get(f"/fhir/{fatima}", headers={"Authorization": f"Bearer {reader}"})
    assert denied.status_code == 403
    assert await audit.flush() == 5

    log = (
        await client.get("/fhir/AuditEvent", params={"subtype": "read,search-type", "_count": 50})
    ).json()
    events = [e["resource"] for e in log["entry"]]
    await audit.drain()  # this search was logged too
    for event in events:
        AuditEvent.model_validate(event)
    described = sorted(
        (
            e["action"],
            e["outcome"],
            e["entity"][-1]["what"]["display"],
            e["entity"][-1].get("description", ""),
        )
        for e in events
    )
    assert described == sorted(
        [
            ("R", "0", fatima, ""),
            ("E", "0", "Claim", f"patient={fatima}"),
            (
                "E",
                "0",
                "Patient",
                "identifier=https://fse.cnss.ma/fhir/sid/cin|BE****56",
            ),
            ("R", "4", "Patient/does-not-exist", ""),
            ("R", "4", fatima, ""),  # refused: the attempt is on the record
        ]
    )
    assert "BE123456" not in str(events)
    # The insured's own log shows who read their file, in French.
    theirs = (await client.get("/fhir/AuditEvent", params={"patient": fatima})).json()
    sentences = [e["resource"]["text"]["div"] for e in theirs["entry"]]
    assert len(sentences) == 3  # the read, the claims search, the refused read
    pattern = r"Le \d\d/\d\d/\d{4} à \d\d:\d\d, le système (test-suite|c-\w+) a (consulté|traité)"
    assert all(re.search(pattern, s) for s in sentences), sentences


async def test_a_signed_in_pharmacist_is_logged_with_their_role_and_pharmacy(
    platform: Platform, client: httpx.AsyncClient, browser: httpx.AsyncClient
) -> None:
    refs = await load_demo(client)
    audit = platform.app.state.api_audit
    await signed_in(platform, browser, Role.PHARMACIST, refs[PHARMACIST])
    await audit.drain()
    assert (await browser.get(f"/fhir/{refs[FATIMA]}")).status_code == 200
    assert await audit.flush() == 1
    log = (await client.get("/fhir/AuditEvent", params={"patient": refs[FATIMA]})).json()
    (event,) = [e["resource"] for e in log["entry"]]
    await audit.drain()
    caller, pharmacy = event["agent"]
    assert caller["who"] == {"reference": refs[PHARMACIST]}
    assert (caller["name"], caller["role"][0]["text"]) == ("Dr Test", "Pharmacien")
    assert pharmacy["who"] == {"reference": refs[PHARMACY]} and not pharmacy["requestor"]
    sentence = html.unescape(event["text"]["div"])
    assert "Dr Test (Pharmacie Al Amal) a consulté des données par l'API FHIR" in sentence


def test_each_bulk_export_file_downloaded_is_audited(platform: Platform) -> None:
    audit = platform.app.state.api_audit
    now = datetime.now().astimezone()
    event = audit.draft("c-1", "GET", "/fhir/$export-file/job1/Patient-1.ndjson", "", 200, now)
    assert audit.draft("c-1", "GET", "/fhir/$export-status/job1", "", 200, now) is None  # no data
    assert audit.draft("c-1", "GET", "/fhir/Practitioner/12", "", 200, now) is None  # not personal
    assert event is not None
    assert event["entity"][-1]["what"] == {"display": "$export-file/job1/Patient-1.ndjson"}
    assert (event["action"], event["subtype"][0]["code"]) == ("R", "operation")


async def test_a_write_through_the_api_is_audited_with_its_insured(
    platform: Platform, client: httpx.AsyncClient
) -> None:
    refs = await load_demo(client)
    audit = platform.app.state.api_audit
    fatima = (await client.get(f"/fhir/{refs[FATIMA]}")).json()
    await audit.drain()
    fatima["telecom"] = [{"system": "phone", "value": "+212600000000"}]
    assert (await client.put(f"/fhir/{refs[FATIMA]}", json=fatima)).status_code == 200
    assert await audit.flush() == 1
    log = (await client.get("/fhir/AuditEvent", params={"action": "U"})).json()
    (event,) = [e["resource"] for e in log["entry"]]
    await audit.drain()
    assert (event["outcome"], event["subtype"][0]["code"]) == ("0", "update")
    assert event["entity"][0]["what"] == {"reference": refs[FATIMA]}
    assert "a modifié des données par l'API FHIR" in html.unescape(event["text"]["div"])


async def test_an_answered_read_is_on_record_even_if_its_worker_dies_right_after(
    platform: Platform, client: httpx.AsyncClient
) -> None:
    """The record is durable before the answer leaves: a worker that dies once it has answered
    (nothing of its memory survives) loses nothing; another worker stores the event."""
    refs = await load_demo(client)
    await platform.app.state.api_audit.drain()
    assert (await client.get(f"/fhir/{refs[FATIMA]}")).status_code == 200
    another_worker = ApiAudit(platform.app.state.fhir, platform.settings.payment_timezone)
    assert await another_worker.flush() == 1
    log = (await client.get("/fhir/AuditEvent", params={"patient": refs[FATIMA]})).json()
    await platform.app.state.api_audit.drain()
    assert [e["resource"]["entity"][-1]["what"] for e in log["entry"]] == [
        {"display": refs[FATIMA]}
    ]


async def test_a_submit_is_audited_with_its_claim_and_insured(
    platform: Platform, client: httpx.AsyncClient
) -> None:
    refs = await load_demo(client)
    audit = platform.app.state.api_audit
    sheet = claim(refs, FATIMA, [act("C", "80.00")])
    number = sheet["identifier"][0]["value"]
    await audit.drain()
    answer = await client.post("/fhir/Claim/$submit", json=sheet)
    assert answer.status_code == 200, answer.text
    replay = await client.post("/fhir/Claim/$submit", json=sheet)
    assert replay.headers.get("X-FSE-Replayed") == "true"
    claim_ref = answer.json()["request"]["reference"]
    assert await audit.flush() == 2
    log = (await client.get("/fhir/AuditEvent", params={"patient": refs[FATIMA]})).json()
    await audit.drain()
    events = [e["resource"] for e in log["entry"]]
    assert len(events) == 2  # the submit and its replay, both in the insured's log
    for event in events:
        assert event["subtype"][0]["code"] == "operation"
        whats = [entity["what"] for entity in event["entity"]]
        assert whats == [
            {"reference": refs[FATIMA]},
            {"reference": claim_ref, "identifier": {"system": FSE, "value": number}},
            {"display": "Claim"},
        ]


RESTFUL_INTERACTION = {  # http://hl7.org/fhir/restful-interaction (R4)
    "read", "vread", "update", "patch", "delete", "history", "history-instance", "history-type",
    "history-system", "create", "search", "search-type", "search-system", "capabilities",
    "transaction", "batch", "operation",
}  # fmt: skip


def test_each_interaction_is_named_with_its_fhir_code_and_audit_action() -> None:
    cases = {
        ("GET", "/fhir/Patient/1"): ("read", "R"),
        ("GET", "/fhir/Patient/1/_history/2"): ("vread", "R"),
        ("GET", "/fhir/Patient/1/_history"): ("history-instance", "R"),
        ("GET", "/fhir/Claim/_history"): ("history-type", "E"),
        ("GET", "/fhir/Claim"): ("search-type", "E"),
        ("POST", "/fhir/Claim/_search"): ("search-type", "E"),
        ("POST", "/fhir/Claim"): ("create", "C"),
        ("PUT", "/fhir/Claim/1"): ("update", "U"),
        ("DELETE", "/fhir/Claim/1"): ("delete", "D"),
        ("POST", "/fhir/Claim/$submit"): ("operation", "E"),
        ("POST", "/fhir"): ("transaction", "E"),
    }
    for (method, path), expected in cases.items():
        target = interaction_of(method, path)
        assert target is not None and target[2:] == expected, (method, path, target)
        assert target[2] in RESTFUL_INTERACTION
    assert interaction_of("GET", "/fhir/Practitioner/1") is None  # not personal data


def test_a_cin_searched_through_a_chain_is_masked_in_the_log() -> None:
    """The record is in the database before the answer leaves: a CIN must never be in it."""
    cin = "https://fse.cnss.ma/fhir/sid/cin|BE123456"
    for param in ("identifier", "patient.identifier", "beneficiary:Patient.identifier"):
        assert masked(param, cin) == "https://fse.cnss.ma/fhir/sid/cin|BE****56", param
    assert masked("patient.identifier", "BE123456") == "BE****56"
    assert masked("identifier", "https://fse.cnss.ma/fhir/sid/fse|FSE-1") == (
        "https://fse.cnss.ma/fhir/sid/fse|FSE-1"
    )
