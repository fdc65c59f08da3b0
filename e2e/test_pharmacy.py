"""The whole journey across both screens in real Chromium: a doctor signs two medicines, a
pharmacy dispenses a generic and half of the other line, a second pharmacy the rest, and CNSS
reads it all through the FHIR API. Every amount shown is checked against the engine's answer.

Screenshots and the printed receipt go to test-results/screenshots/.
"""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Any

import httpx
from playwright.sync_api import Browser, Page, expect

from e2e.test_login import DEMO_PASSWORD
from e2e.test_prescriber import SHOTS, open_sheet, shot
from fse.web.formats import mad
from pharmacy.numbers import claim_number

SID = "https://fse.cnss.ma/fhir/sid"
CICLOVIRAL = "6118000070313"


def pharmacist(browser: Browser, server: str, username: str) -> Page:
    page = browser.new_context(locale="fr-MA").new_page()
    page.goto(server + "/pharmacie")
    page.get_by_label("Identifiant").fill(username)
    page.get_by_label("Mot de passe").fill(DEMO_PASSWORD)
    page.get_by_role("button", name="Se connecter").click()
    expect(page).to_have_url(server + "/pharmacie")
    return page


def fhir(server: str, token: str, path: str, **params: str) -> dict[str, Any]:
    response = httpx.get(
        f"{server}/fhir/{path}",
        params=params,
        headers={"Authorization": f"Bearer {token}"},
        timeout=10,
    )
    response.raise_for_status()
    return dict(response.json())


def engine_answer(server: str, token: str, number: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """The pharmacy claim of dispense ``number`` and the engine's ClaimResponse to it."""
    claims = fhir(server, token, "Claim", identifier=f"{SID}/fse|{claim_number(number)}")["entry"]
    claim = claims[0]["resource"]
    answers = fhir(server, token, "ClaimResponse", request=f"Claim/{claim['id']}")["entry"]
    return claim, answers[0]["resource"]


def total(response: dict[str, Any], category: str) -> Decimal:
    for entry in response["total"]:
        if entry["category"]["coding"][0]["code"] == category:
            return Decimal(str(entry["amount"]["value"])).quantize(Decimal("0.01"))
    raise KeyError(category)


def doctor_signs(
    server: str, page: Page, medicines: list[tuple[str, str, str, str]], scripted: bool = True
) -> str:
    """Dr Benali signs, for Fatima Alaoui, one line per (name or EAN, dosage, days, boxes).
    ``scripted``: JavaScript runs, so the line under each field names the product taken."""
    open_sheet(page, server, "BE123456", "Fatima Alaoui")
    for n, (product, dosage, days, boxes) in enumerate(medicines, 1):
        page.get_by_label(f"Médicament {n} (nom, DCI ou EAN)").fill(product)
        if scripted:
            expect(page.locator(f"#med-{n}-produit-choix")).to_contain_text("Médicament retenu : ")
        page.locator(f"#med-{n}-posologie").fill(dosage)
        page.locator(f"#med-{n}-duree").fill(days)
        page.locator(f"#med-{n}-quantite").fill(boxes)
    page.get_by_role("button", name="Relire la feuille").click()
    page.get_by_role("button", name="Signer la feuille").click()
    heading = page.get_by_role("heading", name=re.compile(r"Feuille de soins FSE-"))
    expect(heading).to_be_visible()
    number = re.search(r"FSE-\d{4}-\d{9}-\d{2}", heading.inner_text())
    assert number
    return number[0]


def row(page: Page, number: str, medicine: str) -> Any:
    return page.get_by_role("row").filter(has_text=number).filter(has_text=medicine)


def shown_amounts_match(page: Page, response: dict[str, Any], tiers_payant: bool) -> None:
    billed, benefit, copay = (total(response, c) for c in ("submitted", "benefit", "copay"))
    at_counter = copay if tiers_payant else billed
    expect(page.get_by_text(f"À payer au comptoir : {mad(at_counter)}")).to_be_visible()
    expect(page.get_by_text(f"la CNSS paie {mad(benefit)}", exact=False).first).to_be_visible()
    for item in response["item"]:
        amounts = {a["category"]["coding"][0]["code"]: a for a in item["adjudication"]}
        cells = mad(Decimal(str(amounts["benefit"]["amount"]["value"])))
        expect(page.get_by_role("cell", name=cells, exact=True).first).to_be_visible()


def test_two_pharmacies_dispense_one_sheet_and_cnss_sees_it(
    server: str, page: Page, browser: Browser, api_token: str
) -> None:
    number = doctor_signs(
        server,
        page,
        [
            ("zovirax 200", "1 comprimé 5 fois par jour", "5", "1"),
            ("CLAMOXYL 500 MG, 1 BOITE 12 GELULE", "1 gélule 3 fois par jour", "8", "2"),
        ],
    )
    shot(page, "21-medecin-deux-medicaments")

    first = pharmacist(browser, server, "pharmacie.alamal")
    shot(first, "22-pharmacie-accueil")
    first.get_by_label("CIN, immatriculation ou numéro de feuille de l'assuré").fill("BE123456")
    first.get_by_role("button", name="Rechercher").click()
    expect(first.get_by_role("heading", name="Fatima Alaoui")).to_be_visible()
    zovirax = row(first, number, "ZOVIRAX")
    amoxyl = row(first, number, "CLAMOXYL")
    expect(amoxyl).to_contain_text("2 / 2 boîte(s)")
    expect(first.get_by_text("E11")).to_have_count(0)  # nothing clinical
    unlabeled = first.evaluate(
        """() => [...document.querySelectorAll('input:not([type=hidden]), select, button')]
              .filter(e => e.tagName === 'BUTTON' ? !e.textContent.trim() : e.labels.length === 0)
              .map(e => e.name || e.id)"""
    )
    assert unlabeled == []  # every control has a label a screen reader can announce
    offered = zovirax.get_by_label("Médicament remis").locator("option")
    expect(offered.first).to_contain_text(
        "ZOVIRAX 200 MG, 1 BOITE 25 COMPRIME (princeps), prescrit"
    )
    # the other products of its generic group, 25 tablets per box, cheapest first
    expect(offered.nth(1)).to_contain_text("ACIVIR 200 MG, 1 BOITE 25 COMPRIME (générique)")
    zovirax.get_by_label(re.compile("Boîtes délivrées")).fill("1")
    zovirax.get_by_label("Médicament remis").select_option(CICLOVIRAL)  # the generic
    amoxyl.get_by_label(re.compile("Boîtes délivrées")).fill("1")  # half of the line
    amoxyl.get_by_label(re.compile("Prix facturé")).fill("52,00")
    shot(first, "23-pharmacie-lignes")
    first.get_by_role("button", name="Vérifier les montants").click()  # nothing written yet
    preview = first.locator("section.preview")
    expect(preview.get_by_role("row").filter(has_text="CICLOVIRAL")).to_contain_text("146,30")
    expect(preview.get_by_role("row").filter(has_text="CLAMOXYL")).to_contain_text("32,62")
    expect(preview).to_contain_text(re.compile(r"À payer au comptoir : 261,00.MAD"))
    shot(first, "23b-pharmacie-verification")
    first.get_by_role("button", name="Délivrer").click()
    expect(first.get_by_role("heading", name=re.compile("Délivrance DEL-"))).to_be_visible()
    dispensed = first.url.rsplit("/", 1)[1]
    _, answer = engine_answer(server, api_token, dispensed)
    # CICLOVIRAL 209.00 on its PBR 209.00 and CLAMOXYL 52.00 on the PBR 46.60, at 70 %.
    assert total(answer, "benefit") == Decimal("146.30") + Decimal("32.62")
    shown_amounts_match(first, answer, tiers_payant=False)
    expect(first.get_by_text("générique substitué")).to_be_visible()
    shot(first, "24-pharmacie-montants")
    first.get_by_role("link", name="Reçu (à imprimer)").click()
    expect(first.get_by_role("heading", name="Reçu de délivrance")).to_be_visible()
    expect(first.locator(".signature")).to_contain_text("..")  # detached JWS
    first.emulate_media(media="print")
    shot(first, "25-recu-impression")
    (SHOTS / "25-recu.pdf").write_bytes(first.pdf(format="A5"))

    second = pharmacist(browser, server, "pharmacie.ibnsina")
    second.get_by_label("CIN, immatriculation ou numéro de feuille de l'assuré").fill(number)
    second.get_by_role("button", name="Rechercher").click()
    rest = row(second, number, "CLAMOXYL")
    expect(rest).to_contain_text("2 / 1 boîte(s)")
    expect(row(second, number, "ZOVIRAX")).to_have_count(0)  # fully dispensed
    rest.get_by_label(re.compile("Boîtes délivrées")).fill("1")
    second.get_by_label(re.compile("Tiers payant")).check()
    shot(second, "26-seconde-pharmacie-lignes")
    second.get_by_role("button", name="Délivrer").click()
    expect(second.get_by_role("heading", name=re.compile("Délivrance DEL-"))).to_be_visible()
    rest_number = second.url.rsplit("/", 1)[1]
    _, rest_answer = engine_answer(server, api_token, rest_number)
    assert total(rest_answer, "benefit") == Decimal("32.62")  # 70 % x 46.60
    shown_amounts_match(second, rest_answer, tiers_payant=True)
    shot(second, "27-seconde-pharmacie-montants")

    # CNSS's view through the FHIR API: three dispenses, both pharmacy claims, their answers.
    patient = fhir(server, api_token, "Patient", identifier=f"{SID}/cin|BE123456")
    patient_ref = f"Patient/{patient['entry'][0]['resource']['id']}"
    dispenses = [
        e["resource"]
        for e in fhir(server, api_token, "MedicationDispense", subject=patient_ref)["entry"]
        if e["resource"]["identifier"][0]["value"].split("-D")[0] in (dispensed, rest_number)
    ]
    assert sorted(float(d["quantity"]["value"]) for d in dispenses) == [1.0, 1.0, 1.0]
    assert sum(d["substitution"]["wasSubstituted"] for d in dispenses) == 1
    claims = [engine_answer(server, api_token, n) for n in (dispensed, rest_number)]
    assert {c["provider"]["reference"] for c, _ in claims} == {
        d["performer"][1]["actor"]["reference"] for d in dispenses
    }
    assert [r["outcome"] for _, r in claims] == ["complete", "complete"]
    requests = fhir(
        server,
        api_token,
        "MedicationRequest",
        **{"group-identifier": f"{SID}/prescription|{number}"},
    )
    assert {e["resource"]["status"] for e in requests["entry"]} == {"completed"}
    for browser_page in (first, second):
        browser_page.context.close()
