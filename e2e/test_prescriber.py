"""The doctor's whole visit in real Chromium: find, record, review, sign, see the amounts, print.

Screenshots of each page go to test-results/screenshots/ (kept by CI as artefacts).
"""

from __future__ import annotations

import re
from pathlib import Path

from playwright.sync_api import Page, expect

from e2e.test_login import DEMO_PASSWORD

SHOTS = Path(__file__).resolve().parent.parent / "test-results" / "screenshots"


def shot(page: Page, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


def sign_in(page: Page, server: str) -> None:
    page.goto(server + "/medecin")
    page.get_by_label("Identifiant").fill("dr.benali")
    page.get_by_label("Mot de passe").fill(DEMO_PASSWORD)
    page.get_by_role("button", name="Se connecter").click()
    expect(page).to_have_url(server + "/medecin")


def open_sheet(page: Page, server: str, query: str, name: str) -> None:
    """Dr Benali signs in, finds the insured by CIN or immatriculation, opens a new sheet."""
    sign_in(page, server)
    page.get_by_label("Immatriculation ou CIN de l'assuré").fill(query)
    page.get_by_role("button", name="Rechercher").click()
    page.get_by_role("link", name=f"Établir une feuille de soins pour {name}").click()


def test_a_consultation_with_two_medicines_and_a_lab_order(server: str, page: Page) -> None:
    sign_in(page, server)
    shot(page, "01-espace-medecin")
    page.get_by_label("Immatriculation ou CIN de l'assuré").fill("BE123456")
    page.get_by_role("button", name="Rechercher").click()
    expect(page.get_by_role("heading", name="Fatima Alaoui")).to_be_visible()
    expect(page.get_by_text("Droits ouverts")).to_be_visible()
    shot(page, "02-assure-trouve")
    page.get_by_role("link", name="Établir une feuille de soins pour Fatima Alaoui").click()
    unlabeled = page.evaluate(
        """() => [...document.querySelectorAll('input:not([type=hidden]), select, button')]
              .filter(e => e.tagName === 'BUTTON' ? !e.textContent.trim() : e.labels.length === 0)
              .map(e => e.name || e.id)"""
    )
    assert unlabeled == []  # every control has a label a screen reader can announce
    page.set_viewport_size({"width": 1024, "height": 768})  # a tablet in landscape
    page.get_by_label("Acte 1 : cotation").fill("C")
    page.locator("#acte-1-honoraires").fill("150")
    first = page.get_by_label("Médicament 1 (nom, DCI ou EAN)")
    first.fill("DOLIPRANE 300 mg")  # among the 5,917 presentations of the CNOPS list
    expect(page.locator("#med-1-produit-choix")).to_contain_text(
        "Plusieurs médicaments correspondent (DOLIPRANE 300 MG"
    )
    expect(page.locator("#medicaments option")).to_have_count(2)  # suppositories, sachets
    first.fill("zovirax 200")  # the princeps, by name and strength
    # As the doctor types, the line under the field names the product the form will take.
    expect(page.locator("#med-1-produit-choix")).to_have_text(
        "Médicament retenu : ZOVIRAX 200 MG, 1 BOITE 25 COMPRIME — ACICLOVIR, princeps, "
        "PPV 232,00\u00a0MAD"
    )
    page.locator("#med-1-posologie").fill("1 comprimé 5 fois par jour")
    page.locator("#med-1-duree").fill("5")
    page.locator("#med-1-quantite").fill("1")
    page.get_by_label("Médicament 2 (nom, DCI ou EAN)").fill("6118000190219")  # paracétamol
    page.locator("#med-2-posologie").fill("1 comprimé 3 fois par jour")
    page.locator("#med-2-duree").fill("5")
    page.locator("#med-2-quantite").fill("1")
    page.locator("#med-2-ns").check()
    expect(page.locator("#med-2-produit-choix")).to_contain_text("CETAMYL 500 MG")
    third = page.get_by_label("Médicament 3 (nom, DCI ou EAN)")
    third.fill("biomox 1 g")  # the name and strength: two packs, never the 500 mg
    expect(page.locator("#med-3-produit-choix")).to_contain_text(
        "Plusieurs médicaments correspondent (BIOMOX 1 G COMPRIME DISPERSIBLE, 1 BOITE 12 "
        "COMPRIME ; BIOMOX 1 G COMPRIME DISPERSIBLE, 1 BOITE 24 COMPRIME)"
    )
    suggested = page.locator("#medicaments option")
    expect(suggested).to_have_count(2)  # the suggestions are these two, by name
    biomox = "BIOMOX 1 G COMPRIME DISPERSIBLE, 1 BOITE 12 COMPRIME"
    assert suggested.first.get_attribute("value") == biomox
    third.fill("BIOMOX 1 G 12")  # the name with its strength and pack: that product
    expect(page.locator("#med-3-produit-choix")).to_contain_text(
        "Médicament retenu : BIOMOX 1 G COMPRIME DISPERSIBLE, 1 BOITE 12 COMPRIME"
    )
    page.locator("#med-3-posologie").fill("1 gélule matin et soir")
    page.locator("#med-3-duree").fill("6")
    page.locator("#med-3-quantite").fill("1")
    page.get_by_label("Analyse 1").fill("Glycémie à jeun")
    page.locator("#bio-1-coef").fill("30")
    page.locator("#bio-1-note").fill("Contrôle annuel")
    shot(page, "03-feuille-saisie")
    page.get_by_role("button", name="Relire la feuille").click()
    expect(page.get_by_role("heading", name="Relecture avant signature")).to_be_visible()
    expect(page.get_by_text(biomox, exact=True)).to_be_visible()
    # The pre-settlement, before signing: what the settlement will decide for the C.
    before = page.locator("#preliquidation").get_by_role("row").filter(has_text="150,00")
    for figure in ("80,00", "70 %", "56,00", "94,00"):
        expect(before).to_contain_text(figure)
    expect(page.get_by_text(re.compile(r"La CNSS rembourse 56,00.MAD à l'assuré"))).to_be_visible()
    shot(page, "04-relecture")
    page.get_by_role("button", name="Signer la feuille").click()
    expect(page.get_by_role("heading", name="Feuille de soins FSE-")).to_be_visible()
    # C billed 150 on a TNR of 80 at 70 %: 56.00 back, 94.00 for the insured.
    expect(page.get_by_text("Feuille réglée : la CNSS paie 56,00", exact=False)).to_be_visible()
    row = page.get_by_role("row").filter(has_text="150,00")
    expect(row).to_contain_text("80,00")
    expect(row).to_contain_text("70 %")
    expect(row).to_contain_text("94,00")
    expect(page.get_by_text("ZOVIRAX")).to_be_visible()
    expect(page.get_by_text("non substituable")).to_be_visible()
    shot(page, "05-montants")
    page.get_by_role("link", name="Copie patient (à imprimer)").click()
    expect(page.get_by_text("Feuille de soins électronique")).to_be_visible()
    expect(page.locator(".qr svg")).to_be_visible()
    page.emulate_media(media="print")
    shot(page, "06-copie-patient-impression")
    pdf = page.pdf(format="A5")
    assert pdf[:4] == b"%PDF"
    (SHOTS / "06-copie-patient.pdf").write_bytes(pdf)


def test_closed_rights_are_shown_and_the_sheet_is_still_written(server: str, page: Page) -> None:
    sign_in(page, server)
    page.get_by_label("Immatriculation ou CIN de l'assuré").fill("A654321")
    page.get_by_role("button", name="Rechercher").click()
    expect(page.get_by_text("Droits fermés : cotisations impayées", exact=True)).to_be_visible()
    shot(page, "11-droits-fermes")
    page.get_by_role("link", name="Établir une feuille de soins pour Youssef Tazi").click()
    page.get_by_label("Acte 1 : cotation").fill("C")
    page.locator("#acte-1-honoraires").fill("150")
    page.get_by_role("button", name="Relire la feuille").click()
    page.get_by_role("button", name="Signer la feuille").click()
    expect(page.get_by_text("Feuille rejetée", exact=False)).to_be_visible()
    expect(page.get_by_text("rien n'est remboursé", exact=False)).to_be_visible()
    shot(page, "12-feuille-droits-fermes")


def test_the_review_refuses_an_absurd_fee_and_warns_of_a_refused_line(
    server: str, page: Page
) -> None:
    open_sheet(page, server, "BE123456", "Fatima Alaoui")
    page.get_by_label("Acte 1 : cotation").fill("V")  # a home visit (her C of today is signed)
    page.locator("#acte-1-honoraires").fill("99999999")
    page.get_by_label("Acte 2 : cotation").fill("Cs")  # Dr Benali is a GP
    page.locator("#acte-2-honoraires").fill("250")
    page.get_by_role("button", name="Relire la feuille").click()
    expect(page.locator("#acte-1-honoraires-erreur")).to_contain_text("au-delà du plafond de")
    expect(page.get_by_role("heading", name="Relecture avant signature")).to_have_count(0)
    shot(page, "07-honoraires-plafond")
    page.locator("#acte-1-honoraires").fill("200")
    page.get_by_role("button", name="Relire la feuille").click()
    visit = page.locator("#preliquidation").get_by_role("row").filter(has_text="200,00")
    expect(visit).to_contain_text("84,00")  # 70 % of the V's 120.00
    refused = page.locator("#preliquidation").get_by_role("row").filter(has_text="Cs")
    expect(refused).to_contain_text("Professionnel non habilité")
    expect(
        page.get_by_text(re.compile("1 ligne\\(s\\) seront refusées par la CNSS"))
    ).to_be_visible()
    shot(page, "08-relecture-ligne-refusee")
    page.get_by_role("button", name="Signer la feuille").click()
    row = page.get_by_role("row").filter(has_text="Cs")
    expect(row).to_contain_text("Professionnel non habilité")  # as announced


def test_an_ngap_act_is_suggested_by_code_or_label_with_its_coefficient(
    server: str, page: Page
) -> None:
    open_sheet(page, server, "BE123456", "Fatima Alaoui")
    act = page.get_by_label("Acte 1 : acte NGAP (code ou libellé)")
    act.fill("appendic")  # a label word, unfinished: the three labels starting with it decide
    expect(page.locator("#acte-1-ngap-choix")).to_contain_text(
        "Plusieurs actes correspondent (J329 — Appendicectomie à ciel ouvert"
    )
    suggested = page.locator("#actes option")
    expect(suggested).to_have_count(4)  # then J217, whose label holds "appendice"
    assert suggested.first.get_attribute("value") == "J329"  # the field takes the code
    act.fill("j329")
    expect(page.locator("#acte-1-ngap-choix")).to_have_text(
        "Acte retenu : J329 — Appendicectomie à ciel ouvert · coefficient 70 · "
        "chapitre J : Actes portant sur l'abdomen"
    )
    expect(page.locator("#acte-1-coef")).to_have_attribute("placeholder", "70")
    shot(page, "13-acte-ngap")


def test_what_was_typed_before_the_script_arrived_is_named_once_it_does(
    server: str, page: Page
) -> None:
    """On a slow line the doctor types before suggestions.js has loaded: the line under the
    field still names the product once the script runs (CI met this race under load)."""
    held: list = []
    page.route("**/static/fse/suggestions.js", lambda route: held.append(route))
    open_sheet(page, server, "BE123456", "Fatima Alaoui")
    page.get_by_label("Médicament 1 (nom, DCI ou EAN)").fill("zovirax 200")
    expect(page.locator("#med-1-produit-choix")).to_have_text("")
    assert len(held) == 1  # the script is still on its way
    held[0].continue_()
    expect(page.locator("#med-1-produit-choix")).to_have_text(
        "Médicament retenu : ZOVIRAX 200 MG, 1 BOITE 25 COMPRIME — ACICLOVIR, princeps, "
        "PPV 232,00\u00a0MAD"
    )
    expect(page.locator("#med-2-produit-choix")).to_have_text("")  # nothing typed: nothing said
