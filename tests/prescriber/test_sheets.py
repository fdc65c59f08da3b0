"""Signing a visit: resources in one transaction, a verifiable signature, acts settled at once."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import httpx
import pytest

from fse.accounts import create_account
from fse.crypto.provenance import jws_of, verify
from fse.security.users import Role, unlock_signing_key
from prescriber.sheets import SignedSheet, sign_sheet
from prescriber.visit import Visit, find_medicine, read_visit
from reimbursement.reference_data import default_books
from tests.conftest import Platform
from tests.fse.web.test_login import PASSWORD
from tests.reimbursement.demo import DR_BENALI, FASSI, FATIMA, TAZI, load_demo

NOW = datetime(2026, 11, 22, 10, 30, tzinfo=UTC)
ZOVIRAX, CICLOVIRAL = "6118001141531", "6118000070313"


def form(**fields: str) -> dict[str, str]:
    return {k.replace("_", "-"): v for k, v in fields.items()}


def visit_of(fields: dict[str, str], exonerated: bool = False):  # type: ignore[no-untyped-def]
    books = default_books()
    return read_visit(
        fields,
        books.tariffs.key_letters("cnss", NOW.date()),
        dict(books.medicines.in_force(NOW.date())),
        exonerated,
        books.biology.in_force(NOW.date()),
    )


FULL_VISIT = form(
    acte_1_code="C",
    acte_1_honoraires="150",
    med_1_produit=ZOVIRAX,
    med_1_posologie="1 comprimé 5 fois par jour",
    med_1_duree="5",
    med_1_quantite="1",
    med_2_produit=CICLOVIRAL,
    med_2_posologie="1 comprimé matin et soir",
    med_2_duree="10",
    med_2_quantite="2",
    med_2_ns="on",
    bio_1_libelle="Glycémie à jeun",
    bio_1_coef="30",
    bio_1_note="Contrôle annuel",
)


def test_the_form_keeps_each_error_next_to_its_field() -> None:
    visit = visit_of(
        form(
            acte_1_code="Q",
            acte_2_code="K",
            acte_2_coef="900",
            acte_3_code="C",
            acte_3_honoraires="cent",
            med_1_produit="6118000000000",
            med_2_produit=ZOVIRAX,
            med_2_duree="0",
            bio_1_coef="30",
            acte_4_code="C",
            acte_4_honoraires="80",
            acte_4_ald="on",
        )
    )
    assert set(visit.errors) == {
        "acte-1-code",
        "acte-2-coef",
        "acte-3-honoraires",
        "med-1-produit",
        "med-2-posologie",
        "med-2-duree",
        "med-2-quantite",
        "bio-1-libelle",
        "acte-4-ald",
    }
    assert "Coefficient entre 1 et 400 pour K" in visit.errors["acte-2-coef"]
    assert not visit.ok
    # A fixed coefficient says so, not "entre 1 et 1".
    fixed = visit_of(form(acte_1_code="C", acte_1_coef="2", acte_1_honoraires="150"))
    assert fixed.errors["acte-1-coef"] == "Coefficient fixé à 1 pour C : laissez le champ vide."
    assert "feuille" in visit_of({}).errors


@pytest.fixture
async def refs(client: httpx.AsyncClient) -> dict[str, str]:
    return await load_demo(client)


async def doctor_key(platform: Platform, refs: dict[str, str]):  # type: ignore[no-untyped-def]
    name = f"dr.{uuid.uuid4().hex[:8]}"
    user = await create_account(
        platform.app.state.fhir, name, PASSWORD, Role.PRESCRIBER, "Dr Benali", refs[DR_BENALI]
    )
    key = await unlock_signing_key(platform.engine, name, PASSWORD)
    assert key is not None and user.signing_jwk is not None
    return key, user.signing_jwk


async def sign_as_benali(
    platform: Platform,
    refs: dict[str, str],
    patient: str,
    visit: Visit,
    duplicate_confirmed: bool = False,
) -> SignedSheet:
    """Dr Benali (a fresh account with a published key) signs ``visit`` for ``patient``
    (``duplicate_confirmed``: a second sheet with the same lines that day is meant)."""
    key, _ = await doctor_key(platform, refs)
    app = platform.app.state
    return await sign_sheet(
        app.fhir,
        app.settlement,
        default_books(),
        refs[DR_BENALI],
        key,
        refs[patient].split("/")[1],
        visit,
        NOW,
        duplicate_confirmed=duplicate_confirmed,
    )


async def test_a_signed_visit_is_stored_signed_and_settled(
    platform: Platform, client: httpx.AsyncClient, refs: dict[str, str]
) -> None:
    key, jwk = await doctor_key(platform, refs)
    visit = visit_of(FULL_VISIT)
    assert visit.ok, visit.errors
    app = platform.app.state
    sheet = await sign_sheet(
        app.fhir,
        app.settlement,
        default_books(),
        refs[DR_BENALI],
        key,
        refs[FATIMA].split("/")[1],
        visit,
        NOW,
    )
    assert sheet.number.startswith("FSE-2026-")
    kinds = [r.split("/")[0] for r in sheet.resources]
    assert kinds == [
        "Encounter",
        "ChargeItem",
        "MedicationRequest",
        "MedicationRequest",
        "ServiceRequest",
        "Claim",
    ]
    assert sheet.response is not None and sheet.response["outcome"] == "complete"
    assert sheet.response["total"][2]["amount"]["value"] == 56.0  # 70 % x TNR C 80
    second = (await client.get(f"/fhir/{sheet.resources[3]}")).json()
    assert second["substitution"]["allowedBoolean"] is False
    assert second["dispenseRequest"]["validityPeriod"]["end"] == "2027-02-20"
    assert second["groupIdentifier"]["value"] == sheet.number
    provenance = (await client.get(f"/fhir/Provenance/{sheet.provenance_id}")).json()
    stored = [(await client.get(f"/fhir/{ref}")).json() for ref in sheet.resources]
    assert verify(jwk, jws_of(provenance), stored)
    stored[-1]["total"]["value"] = 1500.0  # a Claim changed after signing no longer verifies
    assert not verify(jwk, jws_of(provenance), stored)
    assert provenance["target"][0]["reference"] == f"{sheet.resources[0]}/_history/1"
    # The write is in her access log, in the same transaction as the sheet.
    log = (await client.get("/fhir/AuditEvent", params={"patient": refs[FATIMA]})).json()
    (written,) = [e["resource"] for e in log["entry"] if e["resource"]["action"] == "C"]
    assert written["agent"][0]["who"]["reference"] == refs[DR_BENALI]
    assert f"feuille {sheet.number} rédigée et signée" in written["outcomeDesc"]


async def test_closed_rights_still_give_a_sheet_that_the_patient_pays(
    platform: Platform, refs: dict[str, str]
) -> None:
    sheet = await sign_as_benali(
        platform, refs, TAZI, visit_of(form(acte_1_code="C", acte_1_honoraires="150"))
    )
    assert sheet.response is not None and sheet.response["outcome"] == "error"
    assert sheet.response["error"][0]["code"]["coding"][0]["code"] == "R01"


async def test_an_ald_line_is_paid_at_the_exoneration_rate(
    platform: Platform, refs: dict[str, str]
) -> None:
    sheet = await sign_as_benali(
        platform,
        refs,
        FASSI,
        visit_of(form(acte_1_code="C", acte_1_honoraires="80", acte_1_ald="on"), True),
    )
    assert sheet.response is not None
    assert sheet.response["total"][2]["amount"]["value"] == 76.0  # 95 % (ALD E11) x 80


def test_an_act_is_typed_as_the_doctor_writes_it() -> None:
    visit = visit_of(
        form(
            acte_1_code="K30",
            acte_1_honoraires="700",
            acte_2_code="cs",
            acte_2_honoraires="250",
            acte_3_code="Z 15",
            acte_3_honoraires="200",
            acte_4_code="B120",
            acte_4_coef="40",
            acte_4_honoraires="50",
        )
    )
    assert visit.ok, visit.errors
    assert [(a.code, a.coefficient) for a in visit.acts] == [
        ("K", 30),
        ("Cs", 1),
        ("Z", 15),
        ("B", 40),  # a coefficient typed in its own field wins
    ]
    assert "K30" in visit_of(form(acte_1_code="XYZ", acte_1_honoraires="1")).errors["acte-1-code"]


def test_a_medicine_is_found_by_name_dci_or_ean() -> None:
    medicines = dict(default_books().medicines.in_force(NOW.date()))
    assert find_medicine("zovirax 200", medicines)[0].ean == ZOVIRAX  # type: ignore[union-attr]
    assert find_medicine("cétamyl 500 mg 20", medicines)[0].ean == "6118000190219"  # type: ignore[union-attr]
    assert find_medicine(CICLOVIRAL, medicines)[0].name.startswith("CICLOVIRAL")  # type: ignore[union-attr]
    none, why = find_medicine("aciclovir 200 mg", medicines)
    assert none is None and "ZOVIRAX" in why and "CICLOVIRAL" in why  # four products: choose
    assert find_medicine("vitamine z", medicines) == (
        None,
        "Aucun médicament remboursable ne correspond.",
    )


def test_a_lab_order_is_found_in_the_biology_nomenclature() -> None:
    visit = visit_of(form(bio_1_libelle="hba1c", bio_2_libelle="Dosage rare", bio_2_coef="250"))
    assert visit.ok, visit.errors
    assert [(b.label, b.coefficient) for b in visit.labs] == [
        ("Hémoglobine glyquée (HbA1c)", 120),
        ("Dosage rare", 250),  # outside the list: the doctor gives the B coefficient
    ]
    unknown = visit_of(form(bio_1_libelle="Dosage rare"))
    assert "cotation en B" in unknown.errors["bio-1-coef"]
    several = visit_of(form(bio_1_libelle="sanguin"))
    assert "Plusieurs analyses" in several.errors["bio-1-libelle"]
