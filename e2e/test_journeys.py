"""Money told truthfully before and after, in real Chromium: the doctor sees the
pre-settlement, signs, then cancels (no payment announced, the copy marked); a held dispense is
announced before "Délivrer", promises nothing while held, and after the agent's rejection says
who owes what.

Screenshots go to test-results/screenshots/.
"""

from __future__ import annotations

import re

from playwright.sync_api import Browser, Page, expect

from e2e.test_console import COSTLY
from e2e.test_login import DEMO_PASSWORD
from e2e.test_pharmacy import doctor_signs, pharmacist, row
from e2e.test_prescriber import open_sheet, shot
from fse.web.formats import mad
from pharmacy.numbers import claim_number


def test_a_signed_sheet_cancelled_announces_no_payment_and_its_copy_says_so(
    server: str, page: Page
) -> None:
    open_sheet(page, server, "BE123456", "Fatima Alaoui")
    page.get_by_label("Acte 1 : cotation").fill("C")
    page.locator("#acte-1-honoraires").fill("150")
    page.get_by_label("Médicament 1 (nom, DCI ou EAN)").fill("zovirax 200")
    page.locator("#med-1-posologie").fill("1 comprimé 5 fois par jour")
    page.locator("#med-1-duree").fill("5")
    page.locator("#med-1-quantite").fill("1")
    page.get_by_role("button", name="Relire la feuille").click()
    # Before signing: C billed 150 on a TNR of 80 at 70 %: 56.00 back, 94.00 for the insured.
    before = page.locator("#preliquidation").get_by_role("row").filter(has_text="150,00")
    for figure in ("80,00", "70 %", "56,00", "94,00"):
        expect(before).to_contain_text(figure)
    page.get_by_role("button", name="Signer la feuille").click()
    expect(
        page.get_by_text(f"Feuille réglée : la CNSS paie {mad('56.00')}", exact=False)
    ).to_be_visible()
    sheet_url = page.url

    page.get_by_role("button", name="Annuler cette feuille").click()
    expect(page.get_by_role("heading", name="Confirmer l'annulation ?")).to_be_visible()
    expect(page.get_by_text(f"le remboursement de {mad('56.00')} n'est pas versé")).to_be_visible()
    shot(page, "40-annulation-confirmer")
    page.get_by_role("button", name="Oui, annuler la feuille").click()
    expect(page).to_have_url(sheet_url)
    expect(page.get_by_text("ANNULÉE").first).to_be_visible()
    expect(page.get_by_text("Feuille réglée", exact=False)).to_have_count(0)
    expect(page.get_by_text("la CNSS paie", exact=False)).to_have_count(0)
    expect(page.get_by_text("viré le", exact=False)).to_have_count(0)
    shot(page, "41-feuille-annulee")
    page.get_by_role("link", name="Copie patient (à imprimer)").click()
    expect(page.get_by_text("ANNULÉE").first).to_be_visible()
    expect(page.get_by_text("code d'accès", exact=False)).to_have_count(0)
    shot(page, "42-copie-annulee")
    page.goto(server + "/medecin")
    mine = page.get_by_role("row").filter(has_text=sheet_url.rsplit("/", 1)[1])
    expect(mine).to_contain_text("annulée")
    expect(mine).to_contain_text("Fatima Alaoui")


def test_a_held_dispense_is_announced_then_told_honestly_after_rejection(
    server: str, page: Page, browser: Browser
) -> None:
    # Two vials (the console's test prescribes one: the same lines twice a day are refused).
    number = doctor_signs(server, page, [("6118001050116", "1 flacon par cure", "21", "2")])
    counter = pharmacist(browser, server, "pharmacie.alamal")
    counter.get_by_label("CIN, immatriculation ou numéro de feuille de l'assuré").fill(number)
    counter.get_by_role("button", name="Rechercher").click()
    row(counter, number, "HERCEPTIN").get_by_label(re.compile("Boîtes délivrées")).fill("1")
    counter.get_by_label(re.compile("Tiers payant")).check()
    counter.get_by_role("button", name="Vérifier les montants").click()
    expect(
        counter.get_by_text(
            "Cette ligne sera retenue pour contrôle CNSS : rien n'est payé avant la décision."
        )
    ).to_be_visible()
    counter.get_by_role("button", name="Délivrer").click()
    expect(
        counter.get_by_text("Délivrance retenue pour contrôle CNSS", exact=False)
    ).to_be_visible()
    expect(counter.get_by_text("la CNSS paie", exact=False)).to_have_count(0)
    dispense_url = counter.url
    dispensed = claim_number(dispense_url.rsplit("/", 1)[1])

    agent = browser.new_context(locale="fr-MA").new_page()
    agent.goto(server + "/cnss")
    agent.get_by_label("Identifiant").fill("agent.cnss")
    agent.get_by_label("Mot de passe").fill(DEMO_PASSWORD)
    agent.get_by_role("button", name="Se connecter").click()
    held = agent.get_by_role("article").filter(has_text=dispensed)
    expect(held).to_contain_text(COSTLY)
    held.get_by_label(re.compile("Motif de la décision")).fill("hors indication remboursable")
    held.get_by_role("button", name="Rejeter").click()
    decision = agent.get_by_role("row").filter(has_text=dispensed)
    expect(decision).to_contain_text("refusée après contrôle")
    expect(decision).to_contain_text("rien n'est payé")
    agent.context.close()

    counter.goto(dispense_url)
    expect(
        counter.get_by_text("Délivrance refusée après contrôle CNSS : hors indication remboursable")
    ).to_be_visible()
    # HERCEPTIN 6,890.00: CNSS pays none of it; the insured owes the whole price.
    expect(counter.get_by_text(f"À la charge de l'assuré : {mad('6890.00')}")).to_be_visible()
    expect(counter.get_by_text("la CNSS paie", exact=False)).to_have_count(0)
    expect(counter.get_by_text("Mise en attente pour contrôle")).to_have_count(0)
    shot(counter, "43-delivrance-refusee-apres-controle")
    counter.goto(server + "/pharmacie")
    expect(
        counter.get_by_role("row").filter(has_text=dispense_url.rsplit("/", 1)[1])
    ).to_contain_text("refusée après contrôle")
    counter.context.close()
