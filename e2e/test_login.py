"""A doctor signs in with a demo account, sees their space, and signs out."""

from __future__ import annotations

from playwright.sync_api import Page, expect

DEMO_PASSWORD = "demo-fse-2026!"  # public demo seed data (fse/seed/demo-accounts.json)


def test_doctor_signs_in_and_out(server: str, page: Page) -> None:
    page.goto(server + "/espace")
    expect(page).to_have_url(server + "/connexion?suite=/espace")
    page.get_by_label("Identifiant").fill("dr.benali")
    page.get_by_label("Mot de passe").fill(DEMO_PASSWORD)
    page.get_by_role("button", name="Se connecter").click()
    expect(page).to_have_url(server + "/espace")
    expect(page.get_by_role("heading", name="Bonjour Dr Karim Benali")).to_be_visible()
    expect(page.get_by_text("Médecin prescripteur")).to_be_visible()
    page.get_by_role("button", name="Se déconnecter").click()
    expect(page).to_have_url(server + "/connexion")
    page.goto(server + "/espace")
    expect(page).to_have_url(server + "/connexion?suite=/espace")


def test_wrong_password_is_said_in_french(server: str, page: Page) -> None:
    page.goto(server + "/connexion")
    page.get_by_label("Identifiant").fill("dr.benali")
    page.get_by_label("Mot de passe").fill("not-the-password")
    page.get_by_role("button", name="Se connecter").click()
    expect(page.get_by_role("alert")).to_have_text("Identifiant ou mot de passe incorrect.")
