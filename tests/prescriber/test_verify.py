"""`fse sheet verify`: anyone with the published key can check a sheet, and tampering shows."""

from __future__ import annotations

import subprocess
import sys
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import httpx
from sqlalchemy import text

from fse import fhir_json
from fse.accounts import create_account
from fse.crypto.provenance import provenance
from fse.security.users import Role, unlock_signing_key
from pharmacy.dispense import REMAINING
from prescriber.cancel import cancel_sheet
from prescriber.history import load_sheet
from prescriber.lifecycle import changes
from prescriber.sheets import SignedSheet
from prescriber.verify import verify_sheet
from tests.conftest import Platform
from tests.fse.web.test_login import PASSWORD
from tests.pharmacy.helpers import counter, line, order
from tests.prescriber.test_sheets import FULL_VISIT, sign_as_benali, visit_of
from tests.reimbursement.demo import DR_BENALI, DR_ELIDRISSI, FATIMA, load_demo


def fse_verify(platform: Platform, number: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "fse.cli",
            "sheet",
            "verify",
            number,
            "--database-url",
            platform.settings.database_url,
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )


async def test_a_signed_sheet_verifies_even_after_cancellation_and_tampering_shows(
    platform: Platform, client: httpx.AsyncClient
) -> None:
    refs = await load_demo(client)
    sheet = await sign_as_benali(platform, refs, FATIMA, visit_of(FULL_VISIT))
    fhir = platform.app.state.fhir
    verdict = await verify_sheet(fhir, sheet.number)
    assert verdict.valid and "Karim Benali" in verdict.message, verdict.message
    view = await load_sheet(fhir, sheet.number)
    assert view is not None
    await cancel_sheet(fhir, view, refs[DR_BENALI], datetime.now(UTC))
    cancelled = await verify_sheet(fhir, sheet.number)
    assert cancelled.valid, cancelled.message  # the doctor's cancellation is the sheet's life
    claim_ref = next(r for r in sheet.resources if r.startswith("Claim/"))
    assert f"{claim_ref} annulée (status cancelled)" in cancelled.message
    assert f"{sheet.resources[0]} annulée (status cancelled)" in cancelled.message
    assert "MODIFIÉE" not in cancelled.message
    done = fse_verify(platform, sheet.number)
    assert done.returncode == 0 and "signature valide" in done.stdout, done.stderr
    assert "annulée" in done.stdout
    claim_id = next(r for r in sheet.resources if r.startswith("Claim/")).split("/")[1]
    async with platform.engine.begin() as conn:  # someone edits the signed Claim in the database
        rows = await conn.execute(
            text("SELECT pk, content FROM resource_versions WHERE id = :id AND version = 1"),
            {"id": claim_id},
        )
        pk, content = rows.one()
        changed = (content if isinstance(content, str) else str(content)).replace("150.0", "1500.0")
        if platform.backend == "postgresql":
            await conn.execute(
                text("UPDATE resource_versions SET content = CAST(:c AS jsonb) WHERE pk = :pk"),
                {"c": changed, "pk": pk},
            )
        else:
            await conn.execute(
                text("UPDATE resource_versions SET content = :c WHERE pk = :pk"),
                {"c": changed, "pk": pk},
            )
    assert not (await verify_sheet(fhir, sheet.number)).valid
    broken = fse_verify(platform, sheet.number)
    assert broken.returncode == 1 and "SIGNATURE INVALIDE" in broken.stdout
    unknown = fse_verify(platform, "FSE-2026-000000000-00")
    assert unknown.returncode == 1 and "aucune feuille" in unknown.stdout


async def rewrite(
    platform: Platform, reference: str, change: Callable[[dict[str, Any]], None]
) -> None:
    """Someone with access to the store rewrites a signed resource: a new current version, as
    an update through the API would write (those are about to be refused for these types)."""
    store = platform.app.state.fhir.store
    rtype, rid = reference.split("/")
    async with store.transaction() as conn:
        current = await store.read(conn, rtype, rid)
        body = fhir_json.loads(current.content or "{}")
        change(body)
        await store.update(conn, rtype, rid, body)


def claim_of(sheet: SignedSheet) -> str:
    return next(r for r in sheet.resources if r.startswith("Claim/"))


async def test_a_dispensed_sheet_still_verifies_and_says_what_the_dispense_changed(
    platform: Platform, client: httpx.AsyncClient
) -> None:
    refs = await load_demo(client)
    sheet = await sign_as_benali(platform, refs, FATIMA, visit_of(FULL_VISIT))
    desk = await counter(platform, refs)
    found = await desk.lines(sheet.number)
    whole, half = line(found, "ZOVIRAX"), line(found, "CICLOVIRAL")  # 1 box of 1, 1 of 2
    await desk.dispense(whole.patient_id, order(whole, 1), order(half, 1))
    verdict = await verify_sheet(platform.app.state.fhir, sheet.number)
    assert verdict.valid, verdict.message
    assert verdict.message.startswith(f"signature valide : feuille {sheet.number}")
    assert (
        f"MedicationRequest/{whole.request_id} délivrée (remaining-quantity 0, status completed)"
        in verdict.message
    )
    assert f"MedicationRequest/{half.request_id} délivrée (remaining-quantity 1)" in verdict.message
    done = fse_verify(platform, sheet.number)
    assert done.returncode == 0 and "délivrée" in done.stdout, done.stdout + done.stderr


async def test_a_signed_resource_changed_in_the_store_fails_and_names_what_changed(
    platform: Platform, client: httpx.AsyncClient
) -> None:
    """The reproduction: the signed Claim is altered (a new current version); verify used to
    check the signed versions only and still said "signature valide"."""
    refs = await load_demo(client)
    sheet = await sign_as_benali(platform, refs, FATIMA, visit_of(FULL_VISIT))
    claim = claim_of(sheet)

    def inflate(body: dict[str, Any]) -> None:
        body["item"][0]["net"]["value"] = 1500.0
        body["total"]["value"] = 1500.0

    await rewrite(platform, claim, inflate)
    verdict = await verify_sheet(platform.app.state.fhir, sheet.number)
    assert not verdict.valid
    assert f"MODIFIÉE après signature : {claim} (item, total)" in verdict.message
    assert "signature valide" not in verdict.message
    done = fse_verify(platform, sheet.number)
    assert done.returncode == 1, done.stdout + done.stderr
    assert f"MODIFIÉE après signature : {claim} (item, total)" in done.stdout


async def test_only_the_platforms_own_changes_pass_and_a_deleted_resource_fails(
    platform: Platform, client: httpx.AsyncClient
) -> None:
    refs = await load_demo(client)
    sheet = await sign_as_benali(platform, refs, FATIMA, visit_of(FULL_VISIT))
    fhir = platform.app.state.fhir
    request = next(r for r in sheet.resources if r.startswith("MedicationRequest/"))

    def dispensed_and_more(body: dict[str, Any]) -> None:
        body["status"] = "completed"  # as a dispense does...
        body["dispenseRequest"]["quantity"]["value"] = 9  # ...but no dispense does this

    await rewrite(platform, request, dispensed_and_more)
    verdict = await verify_sheet(fhir, sheet.number)
    assert not verdict.valid
    assert f"MODIFIÉE après signature : {request} (dispenseRequest)" in verdict.message
    assert f"{request} délivrée (status completed)" in verdict.message

    other = await sign_as_benali(platform, refs, FATIMA, visit_of(FULL_VISIT), True)

    def reopened(body: dict[str, Any]) -> None:
        body["status"] = "in-progress"  # a status no flow of the platform sets

    await rewrite(platform, other.resources[0], reopened)
    act = next(r for r in other.resources if r.startswith("ChargeItem/"))
    async with fhir.store.transaction() as conn:
        await fhir.store.delete(conn, *act.split("/"))
    verdict = await verify_sheet(fhir, other.number)
    assert not verdict.valid
    assert f"MODIFIÉE après signature : {other.resources[0]} (status)" in verdict.message
    assert f"SUPPRIMÉE après signature : {act}" in verdict.message
    assert fse_verify(platform, other.number).returncode == 1


def test_an_extension_other_than_the_boxes_left_is_tampering() -> None:
    signed = {"resourceType": "MedicationRequest", "id": "x", "status": "active"}
    current = {
        **signed,
        "meta": {"versionId": "3"},
        "extension": [
            {"url": REMAINING, "valueQuantity": {"value": Decimal("2.0")}},
            {"url": "https://example.org/other", "valueString": "?"},
        ],
    }
    found = changes(signed, current)
    assert found.tampered == ["extension"]
    assert [(rule.label, shown) for rule, shown in found.lifecycle] == [
        ("délivrée", "remaining-quantity 2")
    ]


async def test_a_sheet_signed_by_someone_other_than_its_doctor_fails(
    platform: Platform, client: httpx.AsyncClient
) -> None:
    """Another professional's valid signature over the same resources does not make it the
    doctor's sheet: the signer must be the Encounter's participant."""
    refs = await load_demo(client)
    sheet = await sign_as_benali(platform, refs, FATIMA, visit_of(FULL_VISIT))
    fhir = platform.app.state.fhir
    name = f"dr.other.{uuid.uuid4().hex[:6]}"
    await create_account(fhir, name, PASSWORD, Role.PRESCRIBER, name, refs[DR_ELIDRISSI])
    key = await unlock_signing_key(platform.engine, name, PASSWORD)
    assert key is not None
    async with fhir.store.transaction() as conn:
        signed = []
        for reference in sheet.resources:
            rtype, _, rid = reference.partition("/")
            stored = await fhir.store.read(conn, rtype, rid)
            signed.append({k: v for k, v in fhir_json.loads(stored.content or "{}").items()})
        forged = provenance(key, refs[DR_ELIDRISSI], signed, datetime.now(UTC))
        await fhir.store.delete(conn, "Provenance", sheet.provenance_id)
        await fhir.store.create(conn, "Provenance", forged)
    verdict = await verify_sheet(fhir, sheet.number)
    assert not verdict.valid
    assert f"signée par {refs[DR_ELIDRISSI]}, pas par son médecin" in verdict.message
    assert refs[DR_BENALI] in verdict.message
