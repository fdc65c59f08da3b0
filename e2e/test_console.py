"""A CNSS agent in real Chromium: a costly medicine dispensed outside an ALD is held; the agent
opens the console, releases it with a reason, and sees it leave in the next payment batch.

Screenshots go to test-results/screenshots/.
"""

from __future__ import annotations

import re
import subprocess
import sys

from playwright.sync_api import Browser, Page, expect

from e2e.conftest import SERVER_ENV
from e2e.test_login import DEMO_PASSWORD
from e2e.test_pharmacy import doctor_signs, pharmacist, row
from e2e.test_prescriber import shot


def test_an_agent_releases_a_held_claim_paid_in_the_next_batch(
    server: str, page: Page, browser: Browser
) -> None:
    number = doctor_signs(server, page, [("6118001701643", "1 flacon par cure", "21", "1")])
    counter = pharmacist(browser, server, "pharmacie.alamal")
    counter.get_by_label("CIN, immatriculation ou numéro de feuille de l'assuré").fill(number)
    counter.get_by_role("button", name="Rechercher").click()
    row(counter, number, "HERCEPTA").get_by_label(re.compile("Boîtes délivrées")).fill("1")
    counter.get_by_label(re.compile("Tiers payant")).check()
    counter.get_by_role("button", name="Vérifier les montants").click()  # warned before
    expect(
        counter.get_by_text(
            "Cette ligne sera retenue pour contrôle CNSS : rien n'est payé avant la décision."
        )
    ).to_be_visible()
    shot(counter, "30-pharmacie-avant-delivrance-retenue")
    counter.get_by_role("button", name="Délivrer").click()
    expect(counter.get_by_text("Feuille retenue pour contrôle CNSS")).to_be_visible()
    dispensed = counter.url.rsplit("/", 1)[1]
    counter.context.close()

    agent = browser.new_context(locale="fr-MA").new_page()
    agent.goto(server + "/cnss")
    agent.get_by_label("Identifiant").fill("agent.cnss")
    agent.get_by_label("Mot de passe").fill(DEMO_PASSWORD)
    agent.get_by_role("button", name="Se connecter").click()
    held = agent.get_by_role("article").filter(has_text=dispensed)
    expect(held).to_contain_text("costly_medicine")
    expect(held).to_contain_text("6895.00 MAD")  # 70 % of 9,850.00, waiting for the decision
    shot(agent, "31-console-file")
    held.get_by_label(re.compile("Motif de la décision")).fill("protocole ALD en cours, vérifié")
    held.get_by_role("button", name=re.compile("Libérer")).click()
    expect(agent.get_by_text(f"Décision enregistrée pour la feuille {dispensed}")).to_be_visible()
    decision = agent.get_by_role("row").filter(has_text=dispensed)
    expect(decision).to_contain_text("libérée")
    expect(decision).to_contain_text("prochain lot")

    paid = subprocess.run(
        [sys.executable, "-m", "fse.cli", "pay"],
        env=SERVER_ENV,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    batch = re.search(r"CNSS-\d{8}-\d{4}-\d{6}", paid.stdout)
    assert batch, paid.stdout
    agent.reload()
    expect(agent.get_by_role("row").filter(has_text=dispensed)).to_contain_text(batch[0])
    shot(agent, "32-console-decision-payee")
    agent.get_by_role("link", name="Tableau de bord").click()
    expect(agent.get_by_role("img", name=re.compile("Feuilles de soins reçues"))).to_be_visible()
    expect(agent.get_by_text("costly_medicine")).to_be_visible()
    shot(agent, "33-tableau-de-bord")
    agent.context.close()
