"""Every FHIR API interaction with personal data leaves an AuditEvent: who, what, which insured,
when, the outcome; identifiers searched are masked; the guide and directories are not logged."""

from __future__ import annotations

import re

import httpx
from fhir.resources.R4B.auditevent import AuditEvent

from tests.conftest import Platform
from tests.reimbursement.demo import FATIMA, load_demo


async def test_reads_searches_and_refusals_of_personal_data_are_audited(
    platform: Platform, client: httpx.AsyncClient
) -> None:
    refs = await load_demo(client)
    audit = platform.app.state.api_audit
    audit.drain()  # what loading the demo data logged
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
        await client.get("/fhir/AuditEvent", params={"subtype": "instance,type", "_count": 50})
    ).json()
    events = [e["resource"] for e in log["entry"]]
    audit.drain()  # this search was logged too
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
                "identifier=https://fse.cnss.ma/fhir/sid/cin|******56",
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
    pattern = r"Le \d\d/\d\d/\d{4} à \d\d:\d\d, (test-suite|fse-\w+|c-\w+) a (consulté|traité)"
    assert all(re.search(pattern, s) for s in sentences), sentences
