"""Dispensing reads the insured once and goes down once, like signing: the Claim it builds
names the Coverage of that reading, the engine settles against the same reading and does not
search for the Claim it was just handed; what it builds is proven valid here, not validated
again on every dispense."""

from __future__ import annotations

import httpx

from fse.resources import validation_issues
from tests.conftest import Platform
from tests.pharmacy.helpers import CICLOVIRAL, ZOVIRAX, counter, fatima_sheet, line, order
from tests.pharmacy.test_pages import form_of, request_id_of, signed_in
from tests.reimbursement.demo import PHARMACIST
from tests.statements import statements, validations

STATEMENTS = {"postgresql": 25, "sqlite": 70}
"""Statements of one dispense of two lines (one a generic) settled and signed. A change that adds
one must say why here. SQLite: +2 when a version's JSON came to be stored once (each of the two
MedicationRequest updates moves the superseded JSON into its history row, a statement of its own
where PostgreSQL folds it into the history INSERT). PostgreSQL: -4 when a settlement's own rows
(settlement, lines, holds, benefit journal, events, with its approval number) came to be written
as one statement. PostgreSQL: -1 when the engine's ClaimResponse and ExplanationOfBenefit (with
the Claim, for $submit) came to be created in one statement. Both: -1 when the insured's acts of
the day came to be read with the history's counts. Both: -3 (-2 for a dispense's pharmacy
provider) when the insured came to be read with their Coverages and Conditions, and a
practitioner with their roles, in one statement each. PostgreSQL: -3 when the dispenses, the Claim
and the Provenance came to be created in one statement. Both: -1 when a settlement inside the
caller's transaction stopped looking for an earlier settlement of a number just drawn (the
settlements' unique care-sheet key refuses one). Both: -1 when the claim's provider (the
pharmacy) came to be read in the insured's statement. Both: -4 when each line's boxes came to be
taken from its balance row by one upsert that locks it (was: insert-if-absent, lock, update)."""


async def test_a_dispense_reads_once_and_builds_valid_resources(
    platform: Platform, client: httpx.AsyncClient, monkeypatch
) -> None:
    refs, sheet = await fatima_sheet(platform, client)
    desk = await counter(platform, refs)
    found = await desk.lines(sheet.number)
    zovirax, ciclo = line(found, "ZOVIRAX"), line(found, "CICLOVIRAL")
    validated = validations(monkeypatch)
    with statements(platform.engine) as sent:
        done = await desk.dispense(
            zovirax.patient_id,
            order(zovirax, 1, "6118000070313", "209.00"),  # the generic CICLOVIRAL
            order(ciclo, 1, price="209.00"),
        )
    assert not done.replayed
    reads = {t: sum(s.reads(t) for s in sent) for t in ("Patient", "Coverage", "Condition")}
    assert reads == {"Patient": 1, "Coverage": 1, "Condition": 1}
    assert not [s for s in sent if s.reads("Claim")]
    # Each prescription read once under its balance lock, then once more by its update.
    assert sum(s.reads("MedicationRequest") for s in sent) == 4
    assert len(sent) <= STATEMENTS[platform.backend], "\n".join(s.sql[:120] for s in sent)
    # Only the prescriptions' new remaining quantities are validated (an update).
    assert validated == ["MedicationRequest", "MedicationRequest"]
    monkeypatch.undo()
    patient = zovirax.patient_id
    written = []
    for rtype in ("MedicationDispense", "Claim", "ClaimResponse", "ExplanationOfBenefit"):
        bundle = (await client.get(f"/fhir/{rtype}", params={"patient": patient})).json()
        written += [e["resource"] for e in bundle.get("entry", [])]
    for rtype, param, value in (
        ("Provenance", "agent", desk.pharmacist.practitioner),
        ("AuditEvent", "patient", f"Patient/{patient}"),
    ):
        bundle = (await client.get(f"/fhir/{rtype}", params={param: value})).json()
        written += [e["resource"] for e in bundle.get("entry", [])]
    kinds = sorted({r["resourceType"] for r in written})
    assert kinds == [
        "AuditEvent",
        "Claim",
        "ClaimResponse",
        "ExplanationOfBenefit",
        "MedicationDispense",
        "Provenance",
    ]
    for resource in written:
        assert validation_issues(resource) == [], resource["resourceType"]


PAGE = {"postgresql": 3, "sqlite": 5}
"""What the "Délivrer" POST adds around the dispense: the session, the pharmacist with their
roles (one statement) and their pharmacy: the access check every pharmacy page makes; on SQLite,
the BEGIN of the two reads' transactions too."""


async def test_delivering_at_the_counter_settles_once_without_a_separate_preview(
    platform: Platform, client: httpx.AsyncClient
) -> None:
    """ "Délivrer" on an order the pharmacist did not preview: the dispense itself tells whether
    the engine would hold it (under its locks, then rolled back), so an order it pays is
    dispensed without the preview reading the prescriptions, the insured and the history first."""
    refs, sheet = await fatima_sheet(platform, client)
    async with signed_in(platform, refs[PHARMACIST]) as http:
        page = await http.get("/pharmacie/recherche", params={"q": sheet.number})
        fields = form_of(page.text)
        zovirax = request_id_of(fields, ZOVIRAX, page.text)
        ciclo = request_id_of(fields, CICLOVIRAL, page.text)
        fields.update({f"qte-{zovirax}": "1", f"produit-{zovirax}": CICLOVIRAL})
        fields.update({f"qte-{ciclo}": "1", "action": "delivrer"})
        with statements(platform.engine) as sent:
            done = await http.post("/pharmacie/delivrer", data=fields)
    assert done.status_code == 303, done.text
    assert sum(s.reads("MedicationRequest") for s in sent) == 4  # as the service alone
    assert sum(s.reads("Patient") for s in sent) == 1
    limit = STATEMENTS[platform.backend] + PAGE[platform.backend]
    assert len(sent) <= limit, "\n".join(s.sql[:120] for s in sent)
