"""The pages under the Content-Security-Policy in real Chromium: the stylesheets apply (the
header's green), the policy refuses nothing, the print buttons print with JavaScript and stay
out of the way without it, and Swagger UI still renders /docs."""

from __future__ import annotations

import re

from playwright.sync_api import Browser, BrowserContext, Page, expect

from e2e.test_login import DEMO_PASSWORD
from e2e.test_pharmacy import doctor_signs, row

GREEN = "rgb(0, 89, 79)"  # #00594f
CETAMYL = "6118000190219"  # CETAMYL 500 MG (paracétamol), 20 tablets
WATCH = """
window.__refused = [];
document.addEventListener("securitypolicyviolation",
  (e) => window.__refused.push(`${e.violatedDirective} ${e.blockedURI}`));
window.print = () => { window.__printed = (window.__printed || 0) + 1; };
"""
"""Record what the policy refuses; make window.print countable (no dialog in a test)."""


class Watched:
    """A browser context whose policy refusals are collected, from events and the console."""

    def __init__(self, context: BrowserContext) -> None:
        self.console: list[str] = []
        context.add_init_script(WATCH)
        context.on("console", lambda message: self.console.append(message.text))

    def assert_nothing_refused(self, page: Page) -> None:
        assert page.evaluate("window.__refused") == []
        assert [m for m in self.console if "Content Security Policy" in m] == []


def assert_styled(page: Page) -> None:
    header = page.locator("body > header")
    expect(header).to_have_css("background-color", GREEN)
    expect(header).to_have_css("color", "rgb(255, 255, 255)")


def test_the_login_page_is_styled_under_the_policy(server: str, page: Page) -> None:
    watched = Watched(page.context)
    page.goto(server + "/connexion")
    assert_styled(page)
    expect(page.get_by_role("button", name="Se connecter")).to_have_css("background-color", GREEN)
    watched.assert_nothing_refused(page)


def test_the_doctors_form_and_patient_copy_under_the_policy(server: str, page: Page) -> None:
    watched = Watched(page.context)
    number = doctor_signs(server, page, [(CETAMYL, "1 comprimé 3 fois par jour", "5", "1")])
    page.goto(server + "/medecin")
    page.get_by_label("Immatriculation ou CIN de l'assuré").fill("BE123456")
    page.get_by_role("button", name="Rechercher").click()
    page.get_by_role("link", name="Établir une feuille de soins pour Fatima Alaoui").click()
    expect(page.get_by_label("Acte 1 : cotation")).to_be_visible()
    assert_styled(page)
    expect(page.locator(".field label").first).to_have_css("display", "block")
    watched.assert_nothing_refused(page)

    page.goto(f"{server}/medecin/feuille/{number}/copie")
    assert_styled(page)
    expect(page.locator(".copy header")).to_have_css("display", "flex")  # a5.css
    printing = page.get_by_role("button", name="Imprimer")
    expect(printing).to_be_visible()
    printing.click()
    assert page.evaluate("window.__printed") == 1
    watched.assert_nothing_refused(page)


def test_the_pharmacy_receipt_under_the_policy(server: str, page: Page, browser: Browser) -> None:
    # 3 boxes: not the same lines as the doctor's test above (that would be a duplicate sheet)
    number = doctor_signs(server, page, [(CETAMYL, "1 comprimé 3 fois par jour", "5", "3")])
    context = browser.new_context(locale="fr-MA")
    watched = Watched(context)
    counter = context.new_page()
    counter.goto(server + "/pharmacie")
    counter.get_by_label("Identifiant").fill("pharmacie.ibnsina")
    counter.get_by_label("Mot de passe").fill(DEMO_PASSWORD)
    counter.get_by_role("button", name="Se connecter").click()
    counter.get_by_label("CIN, immatriculation ou numéro de feuille de l'assuré").fill(number)
    counter.get_by_role("button", name="Rechercher").click()
    row(counter, number, "CETAMYL").get_by_label(re.compile("Boîtes délivrées")).fill("1")
    counter.get_by_role("button", name="Délivrer").click()
    counter.get_by_role("link", name="Reçu (à imprimer)").click()
    expect(counter.get_by_role("heading", name="Reçu de délivrance")).to_be_visible()
    assert_styled(counter)
    expect(counter.locator(".signature")).to_have_css("font-family", "monospace")  # a5.css
    counter.get_by_role("button", name="Imprimer").click()
    assert counter.evaluate("window.__printed") == 1
    watched.assert_nothing_refused(counter)
    context.close()


def test_without_javascript_the_print_button_stays_hidden(server: str, browser: Browser) -> None:
    context = browser.new_context(locale="fr-MA", java_script_enabled=False)
    page = context.new_page()
    medicines = [(CETAMYL, "1 comprimé 3 fois par jour", "5", "4")]
    number = doctor_signs(server, page, medicines, scripted=False)
    page.goto(f"{server}/medecin/feuille/{number}/copie")
    expect(page.get_by_text("Feuille de soins électronique")).to_be_visible()
    assert_styled(page)
    expect(page.get_by_role("button", name="Imprimer")).to_be_hidden()
    context.close()


def test_swagger_ui_renders_under_the_policy(server: str, page: Page) -> None:
    watched = Watched(page.context)
    page.goto(server + "/docs")
    expect(page.get_by_text("search-type").first).to_be_visible(timeout=15_000)
    expect(page.locator(".swagger-ui .info .title")).to_contain_text("Plateforme FSE")
    watched.assert_nothing_refused(page)
