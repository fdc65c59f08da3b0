"""Every screen from a phone to a wide desktop, in real Chromium: at 390, 1024 and 1440 px wide
nothing is wider than the window (a wide table scrolls or stacks inside its own box), and a
screenshot of each goes to test-results/screenshots/<screen>-<width>.png to be looked at."""

from __future__ import annotations

import re
from collections.abc import Callable

from playwright.sync_api import Browser, Page, expect

from e2e.test_login import DEMO_PASSWORD
from e2e.test_pharmacy import pharmacist
from e2e.test_prescriber import SHOTS, sign_in

WIDTHS = (390, 1024, 1440)
ZOVIRAX, CICLOVIRAL = "6118001141531", "6118000070313"


def signed_in(browser: Browser, server: str, username: str, landing: str) -> Page:
    page = browser.new_context(locale="fr-MA").new_page()
    page.goto(server + landing)
    page.get_by_label("Identifiant").fill(username)
    page.get_by_label("Mot de passe").fill(DEMO_PASSWORD)
    page.get_by_role("button", name="Se connecter").click()
    expect(page).to_have_url(server + landing)
    return page


def fits(page: Page, screen: str, width: int) -> None:
    """Nothing sideways: the document is no wider than the window; then the screenshot."""
    page.set_viewport_size({"width": width, "height": 900})
    page.wait_for_load_state("load")
    scroll = page.evaluate("document.scrollingElement.scrollWidth")
    inner = page.evaluate("window.innerWidth")
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{screen}-{width}.png"), full_page=True)
    assert scroll <= inner, f"{screen} at {width} px: {scroll} px wide"


def test_every_screen_fits_from_a_phone_to_a_desktop(
    server: str, page: Page, browser: Browser
) -> None:
    # A sheet with an act and two medicines; its review page is kept to be shown again. For
    # Abdelkader Fassi (an ALD shown too): the other e2e tests bill Fatima Alaoui's C today.
    sign_in(page, server)
    page.get_by_label("Immatriculation ou CIN de l'assuré").fill("678912345")
    page.get_by_role("button", name="Rechercher").click()
    search_url = page.url
    page.get_by_role("link", name="Établir une feuille de soins pour Abdelkader Fassi").click()
    form_url = page.url
    page.get_by_label("Acte 1 : cotation").fill("C")
    page.locator("#acte-1-honoraires").fill("150")
    for n, (ean, dosage) in enumerate(
        ((ZOVIRAX, "1 comprimé 5 fois par jour"), (CICLOVIRAL, "1 par jour")), 1
    ):
        page.get_by_label(f"Médicament {n} (nom, DCI ou EAN)").fill(ean)
        page.locator(f"#med-{n}-posologie").fill(dosage)
        page.locator(f"#med-{n}-duree").fill("5")
        page.locator(f"#med-{n}-quantite").fill("2")
    page.get_by_role("button", name="Relire la feuille").click()
    review_url = page.url
    page.get_by_role("button", name="Signer la feuille").click()
    heading = page.get_by_role("heading", name=re.compile(r"Feuille de soins FSE-"))
    number = re.search(r"FSE-\d{4}-\d{9}-\d{2}", heading.inner_text())
    assert number
    sheet_url = page.url

    counter = pharmacist(browser, server, "pharmacie.alamal")
    counter.get_by_label("CIN, immatriculation ou numéro de feuille de l'assuré").fill(number[0])
    counter.get_by_role("button", name="Rechercher").click()
    lines_url = counter.url
    counter.get_by_label(re.compile(r"Boîtes délivrées \(ZOVIRAX")).fill("1")
    counter.get_by_role("button", name="Délivrer").click()
    expect(counter.get_by_role("heading", name=re.compile("Délivrance"))).to_be_visible()
    dispense_url = counter.url

    agent = signed_in(browser, server, "agent.cnss", "/cnss")
    anonymous = browser.new_context(locale="fr-MA").new_page()

    def visit(url: str) -> Callable[[Page], None]:
        return lambda p: p.goto(url) and None

    def press(url: str, button: str | re.Pattern[str]) -> Callable[[Page], None]:
        def go(p: Page) -> None:
            p.goto(url)
            p.get_by_role("button", name=button).click()
            expect(p.get_by_role("heading", name="Confirmer l'annulation ?")).to_be_visible()

        return go

    screens: list[tuple[str, Page, Callable[[Page], None]]] = [
        ("accueil", anonymous, visit(server + "/")),
        ("connexion", anonymous, visit(server + "/connexion")),
        ("erreur-404", anonymous, visit(server + "/labo")),
        ("espace", page, visit(server + "/espace")),
        ("medecin", page, visit(server + "/medecin")),
        ("medecin-assure", page, visit(search_url)),
        ("medecin-feuille", page, visit(form_url)),
        ("medecin-relecture", page, visit(review_url)),
        ("medecin-resultat", page, visit(sheet_url)),
        ("medecin-copie", page, visit(sheet_url + "/copie")),
        ("medecin-annuler", page, press(sheet_url, "Annuler cette feuille")),
        ("pharmacie", counter, visit(server + "/pharmacie")),
        ("pharmacie-lignes", counter, visit(lines_url)),
        ("pharmacie-delivrance", counter, visit(dispense_url)),
        ("pharmacie-recu", counter, visit(dispense_url + "/recu")),
        ("pharmacie-annuler", counter, press(dispense_url, re.compile("Annuler cette délivrance"))),
        ("cnss", agent, visit(server + "/cnss")),
        ("cnss-tableau", agent, visit(server + "/cnss/tableau-de-bord")),
    ]
    too_wide = []
    for width in WIDTHS:
        for screen, who, open_it in screens:
            who.set_viewport_size({"width": width, "height": 900})
            open_it(who)
            try:
                fits(who, screen, width)
            except AssertionError as wide:
                too_wide.append(str(wide))
    assert not too_wide, too_wide
    # Nothing was cancelled by merely asking.
    page.goto(sheet_url)
    expect(page.get_by_role("button", name="Annuler cette feuille")).to_be_visible()
