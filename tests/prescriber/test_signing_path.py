"""Signing reads once and goes down once: the insured's rights and exonerations are read once
in the signing transaction and handed to the engine, the Claim just written is not searched
for, and the resources the platform builds itself are proven valid here instead of being
validated again on every signature (issue 17, issue 18)."""

from __future__ import annotations

import httpx
import pytest

from fse.crypto.tokens import SigningKey
from fse.resources import validation_issues
from prescriber.history import load_sheet
from prescriber.presettlement import presettle
from prescriber.sheets import SignedSheet, sign_sheet
from reimbursement.reference_data import default_books
from tests.conftest import Platform
from tests.prescriber.test_sheets import FULL_VISIT, NOW, doctor_key, visit_of
from tests.reimbursement.demo import DR_BENALI, FATIMA, load_demo
from tests.statements import Sent, statements, validations

STATEMENTS = {"postgresql": 7, "sqlite": 70}
"""Statements of one full sheet (act, two medicines, a lab order) signed and settled. A change that
adds one must say why here. PostgreSQL: -4 when a settlement's own rows (settlement, lines,
holds, benefit journal, events, with its approval number) came to be written as one statement.
PostgreSQL: -1 when the engine's ClaimResponse and ExplanationOfBenefit (with the Claim, for
$submit) came to be created in one statement. Both: -1 when the insured's acts of the day came
to be read with the history's counts. Both: -3 (-2 for a dispense's pharmacy provider) when the
insured came to be read with their Coverages and Conditions, and a practitioner with their
roles, in one statement each. PostgreSQL: -7 when the sheet's resources, its Provenance and its
AuditEvent came to be created in one statement. SQLite: +1 when a settlement came to add its acts
to the provider's day (``provider_days``), an upsert of its own there (PostgreSQL's is in the
settlement's chain); it had been hidden by a day's peer mean left cached by an earlier test.
Both: -1 when the settlement stopped looking for an earlier settlement of the number just drawn
(the settlements' unique care-sheet key refuses one). PostgreSQL: -3 when the doctor and
insured's lock and the settlement's lock on the insured came to be taken by the statement
that writes the form's key row, and the sheet's resources to be created in the settlement's
statement, with its ClaimResponse and ExplanationOfBenefit. (The day's peer mean, read here
because each test starts with an empty cache, is a cache hit most of the time in service.)
Both: -1 when the doctor with their roles came to be read in the insured's statement."""


@pytest.fixture
async def refs(client: httpx.AsyncClient) -> dict[str, str]:
    return await load_demo(client)


async def _sign(
    platform: Platform, refs: dict[str, str], key: SigningKey
) -> tuple[SignedSheet, list[Sent]]:
    books, visit = default_books(), visit_of(FULL_VISIT)
    app = platform.app.state
    with statements(platform.engine) as sent:
        sheet = await sign_sheet(
            app.fhir, app.settlement, books, refs[DR_BENALI], key, refs[FATIMA][8:], visit, NOW
        )
    assert sheet.response is not None and sheet.response["outcome"] == "complete"
    return sheet, sent


async def test_signing_reads_the_insured_once_and_never_searches_what_it_wrote(
    platform: Platform, refs: dict[str, str]
) -> None:
    key, _ = await doctor_key(platform, refs)
    _, sent = await _sign(platform, refs, key)
    reads = {t: sum(s.reads(t) for s in sent) for t in ("Patient", "Coverage", "Condition")}
    assert reads == {"Patient": 1, "Coverage": 1, "Condition": 1}
    assert not [s for s in sent if s.reads("Claim") or s.reads("Encounter")]
    assert len(sent) <= STATEMENTS[platform.backend], "\n".join(s.sql[:120] for s in sent)


async def test_what_signing_builds_is_valid_without_validating_it_each_time(
    platform: Platform, client: httpx.AsyncClient, refs: dict[str, str], monkeypatch
) -> None:
    key, _ = await doctor_key(platform, refs)
    validated = validations(monkeypatch)
    sheet, _ = await _sign(platform, refs, key)
    assert validated == []
    written = [*sheet.resources, f"Provenance/{sheet.provenance_id}"]
    response = sheet.response or {}
    written += [f"ClaimResponse/{response['id']}"]
    log = (await client.get("/fhir/AuditEvent", params={"patient": refs[FATIMA]})).json()
    written += [f"AuditEvent/{e['resource']['id']}" for e in log["entry"]]
    eob = (await client.get("/fhir/ExplanationOfBenefit", params={"patient": refs[FATIMA]})).json()
    written += [f"ExplanationOfBenefit/{e['resource']['id']}" for e in eob["entry"]]
    assert len(written) == 10
    for reference in written:
        resource = (await client.get(f"/fhir/{reference}")).json()
        assert validation_issues(resource) == [], reference


async def test_the_review_reads_the_insured_once_too(
    platform: Platform, refs: dict[str, str]
) -> None:
    app = platform.app.state
    with statements(platform.engine) as sent:
        shown = await presettle(
            app.fhir, app.settlement, refs[DR_BENALI], refs[FATIMA][8:], visit_of(FULL_VISIT), NOW
        )
    assert shown is not None and shown.error == ""
    reads = {t: sum(s.reads(t) for s in sent) for t in ("Patient", "Coverage", "Condition")}
    assert reads == {"Patient": 1, "Coverage": 1, "Condition": 1}


async def test_a_signed_sheet_is_read_back_in_three_statements(
    platform: Platform, refs: dict[str, str]
) -> None:
    """Its own resources by its number, then its insured, their Coverages, its doctor and
    the claim's answer, then the claim's facts: not one search each (eleven before)."""
    key, _ = await doctor_key(platform, refs)
    sheet, _ = await _sign(platform, refs, key)
    with statements(platform.engine) as sent:
        view = await load_sheet(platform.app.state.fhir, sheet.number)
    assert view is not None and view.immatriculation and view.doctor_inpe
    assert view.claim and view.response and len(view.medicines) == 2 and len(view.labs) == 1
    assert view.status.label and view.lines
    assert len([s for s in sent if not s.sql.startswith("BEGIN")]) == 3
