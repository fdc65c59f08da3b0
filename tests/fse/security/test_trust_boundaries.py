"""The trust boundaries found leaking (issue 13), each reproduced as it was found: a
professional's session opened the whole FHIR API, scopes leaked through includes. Each test
failed on the code before the access model and passes now, on SQLite and PostgreSQL."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from sqlalchemy import func, select

from fhir_profiles.identifiers import care_sheet_number
from fse.accounts import create_account
from fse.crypto.provenance import jws_of, provenance, verify
from fse.crypto.signing import SIGNING_KEY_EXTENSION
from fse.errors import ErrorCode
from fse.security.access import LOOKUP_VALIDITY
from fse.security.lookups import record_lookups
from fse.security.tables import insured_lookups, users
from fse.security.users import Role, unlock_signing_key
from pharmacy.lookup import open_lines
from reimbursement.tables import settlements
from tests.builders import FHIR_JSON
from tests.conftest import Platform
from tests.fse.fhir_api.test_errors import assert_outcome
from tests.fse.web.test_login import PASSWORD, csrf_of, login
from tests.prescriber.test_sheets import FULL_VISIT, sign_as_benali, visit_of
from tests.reimbursement.demo import (
    CNSS,
    COVERAGE,
    DR_BENALI,
    DR_ELIDRISSI,
    FASSI_ALD,
    FATIMA,
    LAB,
    PHARMACIST,
    PHARMACIST_2,
    PHARMACY,
    PHARMACY_2,
    load_demo,
)

EXAMPLE = Path(__file__).parents[3] / "docs" / "examples" / "claim-consultation.json"
LAB_PRACTITIONER = "0013"


@dataclass
class Someone:
    username: str
    practitioner: str
    http: httpx.AsyncClient
    headers: dict[str, str]


@dataclass
class Scene:
    platform: Platform
    system: httpx.AsyncClient
    refs: dict[str, str]
    people: dict[str, Someone]
    sheet: Any
    """Dr Benali's signed sheet for Fatima (an act, two medicines, a lab order)."""

    def ids(self, kind: str) -> list[str]:
        return [r.split("/")[1] for r in self.sheet.resources if r.startswith(kind + "/")]


@pytest.fixture
async def scene(platform: Platform, client: httpx.AsyncClient) -> AsyncIterator[Scene]:
    refs = await load_demo(client)
    sheet = await sign_as_benali(platform, refs, FATIMA, visit_of(FULL_VISIT))
    transport = httpx.ASGITransport(app=platform.app)
    people = {}
    for name, role, practitioner in (
        ("dr.elidrissi", Role.PRESCRIBER, DR_ELIDRISSI),
        ("pharmacie.alamal", Role.PHARMACIST, PHARMACIST),
        ("pharmacie.ibnsina", Role.PHARMACIST, PHARMACIST_2),
        ("labo.kenitra", Role.LAB, LAB_PRACTITIONER),
    ):
        username = f"{name}.{uuid.uuid4().hex[:6]}"
        await create_account(
            platform.app.state.fhir, username, PASSWORD, role, name, refs[practitioner]
        )
        http = httpx.AsyncClient(transport=transport, base_url="http://test")
        assert (await login(http, username)).status_code == 303
        headers = {**FHIR_JSON, "X-CSRF-Token": csrf_of(await http.get("/espace"))}
        people[name] = Someone(username, refs[practitioner], http, headers)
    yield Scene(platform, client, refs, people, sheet)
    for someone in people.values():
        await someone.http.aclose()


def example_claim(number: str | None = None) -> dict[str, Any]:
    claim = json.loads(EXAMPLE.read_text())
    claim["identifier"][0]["value"] = number or care_sheet_number(2026, 880_001)
    return claim


async def payable(platform: Platform) -> list[tuple[str, str]]:
    async with platform.engine.connect() as conn:
        rows = await conn.execute(
            select(settlements.c.claim_id, settlements.c.status).where(
                settlements.c.approval_seq.is_not(None)
            )
        )
        return [(r.claim_id, r.status) for r in rows]


# -- 1. a professional's session opened the whole API ----------------------------------------


async def test_a_doctor_cannot_submit_a_claim_naming_another_doctor(scene: Scene) -> None:
    """Was: Dr El Idrissi's session submitted a claim naming Dr Benali (INPE 100000019),
    settled and payable, 161.00 MAD, with no signature."""
    elidrissi = scene.people["dr.elidrissi"]
    before = await scene.platform.row_counts()
    answer = await elidrissi.http.post(
        "/fhir/Claim/$submit", json=example_claim(), headers=elidrissi.headers
    )
    assert_outcome(answer, 403, ErrorCode.NOT_OWN_DATA, "Claim.provider")
    assert await scene.platform.row_counts() == before


async def test_a_doctor_submits_their_own_claim_only_with_their_signature(scene: Scene) -> None:
    elidrissi = scene.people["dr.elidrissi"]
    refs = scene.refs
    claim = example_claim(care_sheet_number(2026, 880_002))
    claim |= {
        "id": uuid.uuid4().hex,
        "patient": {"reference": refs[FATIMA]},
        "provider": {"reference": elidrissi.practitioner},
        "insurer": {"reference": refs[CNSS]},
    }
    claim["insurance"][0]["coverage"] = {"reference": refs[COVERAGE[FATIMA]]}
    benali_key = await _someone_elses_key(scene)
    before = await scene.platform.row_counts()
    unsigned = await elidrissi.http.post(
        "/fhir/Claim/$submit", json=claim, headers=elidrissi.headers
    )
    assert_outcome(unsigned, 403, ErrorCode.SIGNATURE_REQUIRED, "Provenance")
    key = await unlock_signing_key(scene.platform.engine, elidrissi.username, PASSWORD)
    assert key is not None
    signed = provenance(key, elidrissi.practitioner, [claim], datetime.now(UTC))
    bundle = {
        "resourceType": "Bundle",
        "type": "collection",
        "entry": [{"resource": claim}, {"resource": signed}],
    }
    tampered = json.loads(json.dumps(bundle))
    tampered["entry"][0]["resource"]["item"][0]["net"]["value"] = 1500
    refused = await elidrissi.http.post(
        "/fhir/Claim/$submit", json=tampered, headers=elidrissi.headers
    )
    assert_outcome(refused, 403, ErrorCode.SIGNATURE_REQUIRED, "Provenance.signature.data")
    forged = provenance(benali_key, elidrissi.practitioner, [claim], datetime.now(UTC))
    refused = await elidrissi.http.post(
        "/fhir/Claim/$submit",
        json={**bundle, "entry": [{"resource": claim}, {"resource": forged}]},
        headers=elidrissi.headers,
    )
    assert_outcome(refused, 403, ErrorCode.SIGNATURE_REQUIRED)
    assert await scene.platform.row_counts() == before
    answer = await elidrissi.http.post(
        "/fhir/Claim/$submit", json=bundle, headers=elidrissi.headers
    )
    assert answer.status_code == 200, answer.text
    assert answer.json()["outcome"] == "complete"
    stored = (await scene.system.get(f"/fhir/Claim/{claim['id']}")).json()
    found = await scene.system.get("/fhir/Provenance", params={"target": f"Claim/{claim['id']}"})
    kept = found.json()["entry"][0]["resource"]
    author = (await scene.system.get(f"/fhir/{elidrissi.practitioner}")).json()
    jwk = next(
        orjson.loads(e["valueString"])
        for e in author["extension"]
        if e["url"] == SIGNING_KEY_EXTENSION
    )
    stored.pop("meta")
    assert verify(jwk, jws_of(kept), [stored])  # what is stored is what was signed
    again = await elidrissi.http.post("/fhir/Claim/$submit", json=bundle, headers=elidrissi.headers)
    assert again.headers.get("x-fse-replayed") == "true"


async def _someone_elses_key(scene: Scene) -> Any:
    name = f"dr.other.{uuid.uuid4().hex[:6]}"
    await create_account(
        scene.platform.app.state.fhir, name, PASSWORD, Role.PRESCRIBER, name, scene.refs[DR_BENALI]
    )
    return await unlock_signing_key(scene.platform.engine, name, PASSWORD)


async def test_a_signed_sheet_is_neither_altered_nor_deleted_through_rest(scene: Scene) -> None:
    """Was: Dr El Idrissi PUT Dr Benali's signed Claim and DELETEd his MedicationRequest (the
    pharmacy then could not find the sheet); a pharmacist DELETEd a settled Claim whose
    settlement stayed payable. Not even a system client with every scope may now."""
    elidrissi = scene.people["dr.elidrissi"]
    pharmacist = scene.people["pharmacie.alamal"]
    claim_id = scene.ids("Claim")[0]
    request_id = scene.ids("MedicationRequest")[0]
    claim = (await scene.system.get(f"/fhir/Claim/{claim_id}")).json()
    claim["item"][0]["net"]["value"] = 1500
    payable_before = await payable(scene.platform)
    before = await scene.platform.row_counts()
    for http, headers in (
        (elidrissi.http, elidrissi.headers),
        (pharmacist.http, pharmacist.headers),
        (scene.system, FHIR_JSON),
    ):
        for answer in (
            await http.put(f"/fhir/Claim/{claim_id}", json=claim, headers=headers),
            await http.delete(f"/fhir/Claim/{claim_id}", headers=headers),
            await http.delete(f"/fhir/MedicationRequest/{request_id}", headers=headers),
        ):
            assert_outcome(answer, 405, ErrorCode.METHOD_NOT_ALLOWED)
    assert await scene.platform.row_counts() == before
    assert await payable(scene.platform) == payable_before
    lines = await open_lines(
        scene.platform.app.state.fhir,
        "BE123456",
        datetime.now(UTC).date(),
        pharmacist.practitioner,
        scene.refs[PHARMACY],
    )
    assert {line.request_id for line in lines} >= {request_id}


async def test_a_pharmacist_cannot_sign_for_a_doctor(scene: Scene) -> None:
    """Was: a pharmacist created a Provenance targeting a doctor's Encounter."""
    pharmacist = scene.people["pharmacie.alamal"]
    encounter = scene.ids("Encounter")[0]
    forged = {
        "resourceType": "Provenance",
        "target": [{"reference": f"Encounter/{encounter}"}],
        "recorded": "2026-11-22T10:00:00+01:00",
        "agent": [{"who": {"reference": pharmacist.practitioner}}],
    }
    before = await scene.platform.row_counts()
    answer = await pharmacist.http.post("/fhir/Provenance", json=forged, headers=pharmacist.headers)
    assert_outcome(answer, 403, ErrorCode.FORBIDDEN, "system/Provenance.c")
    assert await scene.platform.row_counts() == before


async def test_pharmacists_and_labs_read_no_diagnosis_and_no_one_elses_claims(
    scene: Scene,
) -> None:
    """Was: pharmacists and labs read every Claim and Condition (diagnoses)."""
    claim_id = scene.ids("Claim")[0]
    condition = scene.refs[FASSI_ALD]
    for name in ("pharmacie.alamal", "labo.kenitra"):
        http = scene.people[name].http
        assert_outcome(await http.get("/fhir/Condition"), 403, ErrorCode.FORBIDDEN)
        assert_outcome(await http.get(f"/fhir/{condition}"), 403, ErrorCode.FORBIDDEN)
        searched = (await http.get("/fhir/Claim", params={"_count": "200"})).json()
        assert claim_id not in {e["resource"]["id"] for e in searched.get("entry", [])}
        assert_outcome(await http.get(f"/fhir/Claim/{claim_id}"), 403, ErrorCode.NOT_OWN_DATA)
    doctor = scene.people["dr.elidrissi"].http
    assert_outcome(await doctor.get(f"/fhir/Claim/{claim_id}"), 403, ErrorCode.NOT_OWN_DATA)


async def test_a_persons_session_exports_nothing(scene: Scene) -> None:
    """Was: $export kicked off by any of them returned every Patient, Claim and Condition."""
    for someone in scene.people.values():
        for url in (
            "/fhir/$export",
            "/fhir/Patient/$export",
            f"/fhir/{scene.refs[FATIMA]}/$export",
        ):
            answer = await someone.http.get(url, headers={"Prefer": "respond-async"})
            assert_outcome(answer, 403, ErrorCode.FORBIDDEN, "$export")


async def test_a_pharmacist_sees_the_prescriptions_of_the_insured_in_front_of_them(
    scene: Scene,
) -> None:
    """Only the insured they looked up (on their screen, or by identifier through the API),
    and each pharmacy its own dispenses."""
    alamal, ibnsina = scene.people["pharmacie.alamal"], scene.people["pharmacie.ibnsina"]
    fatima = scene.refs[FATIMA]
    everything = await scene.system.get("/fhir/MedicationRequest", params={"patient": fatima})
    prescribed = {e["resource"]["id"] for e in everything.json()["entry"]}
    assert prescribed > set(scene.ids("MedicationRequest"))  # the sheet's and the demo's

    async def seen(someone: Someone) -> set[str]:
        found = await someone.http.get("/fhir/MedicationRequest", params={"patient": fatima})
        return {e["resource"]["id"] for e in found.json().get("entry", [])}

    assert await seen(alamal) == set() and await seen(ibnsina) == set()
    request_id = scene.ids("MedicationRequest")[0]
    assert_outcome(
        await alamal.http.get(f"/fhir/MedicationRequest/{request_id}"),
        403,
        ErrorCode.NOT_OWN_DATA,
        "MedicationRequest.subject",
    )
    user_pk = await _user_pk(scene, alamal.username)
    await open_lines(
        scene.platform.app.state.fhir,
        "BE123456",
        datetime.now(UTC).date(),
        alamal.practitioner,
        scene.refs[PHARMACY],
        looked_up_by=user_pk,
    )
    assert await seen(alamal) == prescribed and await seen(ibnsina) == set()
    found = await ibnsina.http.get(
        "/fhir/Patient", params={"identifier": "https://fse.cnss.ma/fhir/sid/cin|BE123456"}
    )
    assert [e["resource"]["id"] for e in found.json()["entry"]] == [fatima.split("/")[1]]
    assert await seen(ibnsina) == prescribed
    assert scene.refs[PHARMACY_2] not in (await _selves(scene, alamal))


async def _user_pk(scene: Scene, username: str) -> int:
    async with scene.platform.engine.connect() as conn:
        return await conn.scalar(select(users.c.pk).where(users.c.username == username))


async def _selves(scene: Scene, someone: Someone) -> list[str]:
    roles = await someone.http.get(
        "/fhir/PractitionerRole", params={"practitioner": someone.practitioner}
    )
    return [e["resource"]["organization"]["reference"] for e in roles.json()["entry"]]


# -- 2. scopes leaked through includes ---------------------------------------------------------


async def test_a_claims_only_client_gets_no_patient_practitioner_or_answer_through_links(
    scene: Scene,
) -> None:
    """Was: with only system/Claim.rs, _include=Claim:patient returned Patients (CIN in clear,
    RIB), Claim:provider Practitioners; a batch or transaction GET entry with includes and
    revincludes returned Patients, ClaimResponses and EOBs; patient.name= probed patients."""
    token = await scene.platform.token_with("system/Claim.rs")
    http = scene.system
    claims_only = {"Authorization": f"Bearer {token}"}
    claim_id = scene.ids("Claim")[0]
    for params in (
        {"_id": claim_id, "_include": "Claim:patient"},
        {"_id": claim_id, "_include": "Claim:provider"},
        {"_id": claim_id, "_revinclude": "ClaimResponse:request"},
        {"_id": claim_id, "_revinclude": "ExplanationOfBenefit:claim"},
        {"patient.name": "Alaoui"},
        {"patient.identifier": "BE123456"},
    ):
        answer = await http.get("/fhir/Claim", params=params, headers=claims_only)
        assert_outcome(answer, 403, ErrorCode.FORBIDDEN)
        assert b"BE123456" not in answer.content
    url = (
        f"Claim?_id={claim_id}&_include=Claim:patient&_revinclude=ClaimResponse:request"
        "&_revinclude=ExplanationOfBenefit:claim"
    )
    for kind in ("batch", "transaction"):
        bundle = {
            "resourceType": "Bundle",
            "type": kind,
            "entry": [{"request": {"method": "GET", "url": url}}],
        }
        answer = await http.post("/fhir", json=bundle, headers=claims_only)
        assert b"BE123456" not in answer.content and b"ClaimResponse/" not in answer.content
        if kind == "batch":
            entry = answer.json()["entry"][0]
            assert entry["response"]["status"] == "403 Forbidden" and "resource" not in entry
        else:
            assert_outcome(
                answer, 403, ErrorCode.FORBIDDEN, "Bundle.entry[0].request.system/Patient.r"
            )
    plain = await http.get("/fhir/Claim", params={"_id": claim_id}, headers=claims_only)
    assert [e["resource"]["id"] for e in plain.json()["entry"]] == [claim_id]
    token = await scene.platform.token_with("system/Claim.rs system/Patient.rs")
    both = {"Authorization": f"Bearer {token}"}
    included = await http.get(
        "/fhir/Claim", params={"_id": claim_id, "_include": "Claim:patient"}, headers=both
    )
    modes = [(e["resource"]["resourceType"], e["search"]["mode"]) for e in included.json()["entry"]]
    assert modes == [("Claim", "match"), ("Patient", "include")]


async def test_a_doctors_include_brings_only_what_is_theirs(scene: Scene) -> None:
    """A person's include of a type they may read is filtered resource by resource; what is
    left out is named in an OperationOutcome entry (the request was legitimate)."""
    elidrissi = scene.people["dr.elidrissi"]
    fatima = scene.refs[FATIMA]
    answer = await elidrissi.http.get(
        "/fhir/Patient",
        params={"_id": fatima.split("/")[1], "_revinclude": "MedicationRequest:patient"},
    )
    assert answer.status_code == 200, answer.text
    entries = answer.json()["entry"]
    assert [e["search"]["mode"] for e in entries] == ["match", "outcome"]
    issue = entries[1]["resource"]["issue"][0]
    assert issue["severity"] == "warning" and issue["code"] == "suppressed"
    assert issue["details"]["coding"][0]["code"] == ErrorCode.NOT_OWN_DATA
    assert "3 MedicationRequest left out" in issue["diagnostics"]  # Dr Benali's
    assert orjson.loads(answer.content)["entry"][0]["resource"]["id"] == fatima.split("/")[1]
    _ = LAB  # the lab is in the scene for the reads above


async def test_a_lookup_opens_the_insured_for_a_working_day_only(scene: Scene) -> None:
    """Looking an insured up opens their prescriptions for LOOKUP_VALIDITY; an older lookup
    opens nothing (and the next lookup sweeps it away)."""
    alamal = scene.people["pharmacie.alamal"]
    fatima = scene.refs[FATIMA]
    user_pk = await _user_pk(scene, alamal.username)
    now = datetime.now(UTC)

    async def seen() -> int:
        found = await alamal.http.get("/fhir/MedicationRequest", params={"patient": fatima})
        return len(found.json().get("entry", []))

    await record_lookups(
        scene.platform.engine, user_pk, [fatima.split("/")[1]], now - LOOKUP_VALIDITY
    )
    assert await seen() == 0  # expired as it was written
    await record_lookups(scene.platform.engine, user_pk, [fatima.split("/")[1]], now)
    assert await seen() > 0
    async with scene.platform.engine.connect() as conn:
        rows = await conn.scalar(
            select(func.count())
            .select_from(insured_lookups)
            .where(insured_lookups.c.user_pk == user_pk)
        )
    assert rows == 1  # the expired one was swept by the second lookup


async def test_a_signed_claim_does_not_settle_another_claim_of_its_number(scene: Scene) -> None:
    """A claim stored unsigned under a care-sheet number is not what a later signed claim of
    that number signed: the signed one is refused (409) rather than paid against the other."""
    elidrissi = scene.people["dr.elidrissi"]
    refs = scene.refs
    claim = example_claim(care_sheet_number(2026, 880_003))
    claim |= {
        "patient": {"reference": refs[FATIMA]},
        "provider": {"reference": elidrissi.practitioner},
        "insurer": {"reference": refs[CNSS]},
    }
    claim["insurance"][0]["coverage"] = {"reference": refs[COVERAGE[FATIMA]]}
    unsigned = json.loads(json.dumps(claim))
    unsigned["item"][0]["net"]["value"] = 1500
    stored = await elidrissi.http.post("/fhir/Claim", json=unsigned, headers=elidrissi.headers)
    assert stored.status_code == 201, stored.text
    key = await unlock_signing_key(scene.platform.engine, elidrissi.username, PASSWORD)
    assert key is not None
    claim["id"] = uuid.uuid4().hex
    signed = provenance(key, elidrissi.practitioner, [claim], datetime.now(UTC))
    before = await scene.platform.row_counts()
    answer = await elidrissi.http.post(
        "/fhir/Claim/$submit",
        json={
            "resourceType": "Bundle",
            "type": "collection",
            "entry": [{"resource": claim}, {"resource": signed}],
        },
        headers=elidrissi.headers,
    )
    assert_outcome(answer, 409, ErrorCode.DUPLICATE_IDENTIFIER, "Claim.identifier")
    assert await scene.platform.row_counts() == before
