"""Finding the insured: identity, beneficiary, regime, rights today, ALD/ALC; audited; doctors
only."""

from __future__ import annotations

import html
import uuid
from datetime import date

import httpx
import pytest

from fse.security.users import Role, create_user
from prescriber.lookup import NotAnIdentifier, find_insured
from reimbursement.core.reasons import Reason
from reimbursement.reference_data import default_books
from tests.conftest import Platform
from tests.fse.web.test_login import PASSWORD, csrf_of, login
from tests.reimbursement.demo import DR_BENALI, load_demo

TODAY = date(2026, 11, 22)


@pytest.fixture
async def refs(client: httpx.AsyncClient) -> dict[str, str]:
    return await load_demo(client)


async def lookup(platform: Platform, text: str) -> list:
    return await find_insured(
        platform.app.state.fhir, default_books(), text, TODAY, "Practitioner/x"
    )


async def test_an_immatriculation_lists_the_main_insured_and_the_beneficiaries(
    platform: Platform, refs: dict[str, str]
) -> None:
    found = await lookup(platform, "123456789")
    assert found[0].name == "Fatima Alaoui"
    assert found[0].relationship == "Assuré principal" and found[0].arabic_name == "فاطمة العلوي"
    assert len(found) == 5  # Fatima, her husband and three children
    by_cin = {p.cin: p for p in found}
    sara = by_cin["BE990011"]  # 22, not a student: over the age limit
    assert sara.relationship == "Enfant" and sara.main_insured == "Fatima Alaoui"
    assert not sara.rights.open and sara.rights.reason == Reason.DEPENDANT_AGE
    assert sara.immatriculation == "123456789"
    assert by_cin["BE223344"].rights.open  # Omar, 27, disabled: no age limit
    assert found[0].regime == "AMO salariés"


async def test_closed_rights_and_waiting_periods_say_why_and_when(
    platform: Platform, refs: dict[str, str]
) -> None:
    (tazi,) = await lookup(platform, "A654321")
    assert tazi.rights.reason == Reason.RIGHTS_CLOSED and "cotisations" in tazi.rights.message
    (bennani,) = await lookup(platform, "456789123")
    assert bennani.rights.reason == Reason.WAITING_PERIOD
    assert bennani.rights.opens_on == date(2027, 1, 1)


async def test_an_ald_is_shown(platform: Platform, refs: dict[str, str]) -> None:
    (fassi,) = await lookup(platform, "bk112233")
    assert [(e.kind, e.code) for e in fassi.exonerations] == [("ALD", "E11")]


async def test_text_that_is_no_identifier_is_refused(platform: Platform) -> None:
    with pytest.raises(NotAnIdentifier):
        await lookup(platform, "Alaoui")


async def signed_in(
    platform: Platform, browser: httpx.AsyncClient, role: Role, who: str | None
) -> None:
    name = f"u.{uuid.uuid4().hex[:8]}"
    await create_user(platform.engine, name, PASSWORD, role, "Dr Test", practitioner=who)
    assert (await login(browser, name)).status_code == 303


async def test_the_page_shows_rights_and_each_lookup_is_audited(
    platform: Platform, client: httpx.AsyncClient, refs: dict[str, str], browser: httpx.AsyncClient
) -> None:
    await signed_in(platform, browser, Role.PRESCRIBER, refs[DR_BENALI])
    page = await browser.get("/medecin/assure", params={"q": "A654321"})
    assert page.status_code == 200
    text = html.unescape(page.text)
    # One label, no stray space: "Droits fermés : cotisations impayées." (it once read
    # "Droits non ouverts : droits fermés : cotisations impayées .")
    assert (
        "Youssef Tazi" in text and "<strong>Droits fermés : cotisations impayées</strong>." in text
    )
    assert "Droits non ouverts : droits fermés" not in text
    assert "les soins restent à la charge du patient" in text
    assert "(ouverture le 01/01/2027)" in html.unescape(
        (await browser.get("/medecin/assure", params={"q": "456789123"})).text
    )  # a waiting period says when, in JJ/MM/AAAA
    events = (await client.get("/fhir/AuditEvent")).json()["entry"]
    audit = events[0]["resource"]
    assert audit["agent"][0]["who"]["reference"] == refs[DR_BENALI]
    assert audit["entity"][0]["what"]["reference"].startswith("Patient/")
    unknown = await browser.get("/medecin/assure", params={"q": "999999999"})
    assert unknown.status_code == 404 and "Aucun assuré" in unknown.text
    wrong = await browser.get("/medecin/assure", params={"q": "Tazi"})
    assert wrong.status_code == 400 and "9 chiffres" in wrong.text


async def test_a_pharmacist_cannot_open_the_doctor_pages(
    platform: Platform, refs: dict[str, str], browser: httpx.AsyncClient
) -> None:
    await signed_in(platform, browser, Role.PHARMACIST, None)
    for url in ("/medecin", "/medecin/assure?q=123456789"):
        page = await browser.get(url)
        assert page.status_code == 403 and "Accès refusé" in page.text


async def test_without_a_session_the_doctor_pages_ask_to_log_in(browser: httpx.AsyncClient) -> None:
    page = await browser.get("/medecin/assure?q=123456789")
    assert page.status_code == 303 and page.headers["location"].startswith("/connexion")


async def test_a_deceased_insured_shows_the_regime_a_marker_and_no_new_sheet(
    platform: Platform, refs: dict[str, str], browser: httpx.AsyncClient
) -> None:
    """Hassan Idrissi died on 10/06/2026: the doctor sees his regime (not "régime inconnu"),
    that he died and when, and is not offered to write a sheet for him; his widow is."""
    hassan, latifa, *_ = await lookup(platform, "789123456")
    assert hassan.regime == "AMO salariés" and hassan.deceased == "décédé le 10/06/2026"
    assert hassan.rights.message == "bénéficiaire décédé le 10/06/2026"  # never ISO
    assert latifa.deceased == ""
    await signed_in(platform, browser, Role.PRESCRIBER, refs[DR_BENALI])
    page = html.unescape((await browser.get("/medecin/assure", params={"q": "789123456"})).text)
    hassan_card, latifa_card = page.split('<section class="card insured"')[1:3]
    assert "Hassan Idrissi" in hassan_card and "décédé le 10/06/2026" in hassan_card
    assert "régime inconnu" not in hassan_card and "AMO salariés" in hassan_card
    assert "Établir une feuille de soins" not in hassan_card
    assert "Établir une feuille de soins pour Latifa Idrissi" in latifa_card
    # Typing the form's address by hand does not open it either: no sheet after the death.
    for answer in (
        await browser.get("/medecin/feuille", params={"patient": hassan.patient_id}),
        await browser.post(
            "/medecin/feuille",
            data={
                "patient": hassan.patient_id,
                "csrf": csrf_of(await browser.get("/medecin")),
                "acte-1-code": "C",
            },
        ),
    ):
        assert answer.status_code == 409, answer.text
        assert "aucune feuille de soins ne peut être établie" in html.unescape(answer.text)
