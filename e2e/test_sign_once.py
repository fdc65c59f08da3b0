"""Exactly once from the doctor's real browser: sign, press Back, press "Signer" again; the
first sheet shows, and the pharmacy sees its prescription line once."""

from __future__ import annotations

import re

from playwright.sync_api import Browser, Page, expect

from e2e.test_pharmacy import pharmacist
from e2e.test_prescriber import open_sheet, shot

CIN = "A987654"  # Mohamed Chraibi: no other browser test writes for him


def test_back_then_sign_again_shows_the_first_sheet_and_one_line_at_the_pharmacy(
    server: str, page: Page, browser: Browser
) -> None:
    open_sheet(page, server, CIN, "Mohamed Chraibi")
    page.get_by_label("Acte 1 : cotation").fill("C")
    page.locator("#acte-1-honoraires").fill("150")
    page.get_by_label("Médicament 1 (nom, DCI ou EAN)").fill("zovirax 200")
    page.locator("#med-1-posologie").fill("1 comprimé 5 fois par jour")
    page.locator("#med-1-duree").fill("5")
    page.locator("#med-1-quantite").fill("1")
    page.get_by_role("button", name="Relire la feuille").click()
    page.get_by_role("button", name="Signer la feuille").click()
    heading = page.get_by_role("heading", name=re.compile(r"Feuille de soins FSE-"))
    expect(heading).to_be_visible()
    number = re.search(r"FSE-\d{4}-\d{9}-\d{2}", heading.inner_text())
    assert number
    page.go_back()  # the review page again (a GET: pages are never cached), with its key
    expect(page.get_by_role("heading", name="Relecture avant signature")).to_be_visible()
    expect(page.get_by_role("status")).to_contain_text(f"déjà été signée : feuille {number[0]}")
    page.get_by_role("button", name="Signer la feuille").click()
    expect(page.get_by_role("heading", name=f"Feuille de soins {number[0]}")).to_be_visible()
    shot(page, "31-signer-deux-fois-meme-feuille")

    counter = pharmacist(browser, server, "pharmacie.alamal")
    counter.get_by_label("CIN, immatriculation ou numéro de feuille de l'assuré").fill(CIN)
    counter.get_by_role("button", name="Rechercher").click()
    expect(counter.get_by_role("heading", name="Mohamed Chraibi")).to_be_visible()
    expect(counter.get_by_role("row").filter(has_text=number[0])).to_have_count(1)
    expect(counter.get_by_role("row").filter(has_text="ZOVIRAX")).to_have_count(1)
    shot(counter, "32-pharmacie-une-seule-ligne")
    counter.context.close()
