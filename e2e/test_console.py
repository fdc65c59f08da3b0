"""A CNSS agent in real Chromium: a costly medicine dispensed outside an ALD is held; the agent
finds it in the console (search and filters, without JavaScript), opens the sheet in full,
releases it with a reason, and sees it leave in the next payment batch; the dashboard holds it
against the doctor who prescribed it.

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
from fse.web.formats import mad
from pharmacy.numbers import claim_number

COSTLY = "Médicament coûteux prescrit hors ALD/ALC reconnue"


def test_an_agent_releases_a_held_claim_paid_in_the_next_batch(
    server: str, page: Page, browser: Browser
) -> None:
    number = doctor_signs(server, page, [("6118001050116", "1 flacon par cure", "21", "1")])
    counter = pharmacist(browser, server, "pharmacie.alamal")
    counter.get_by_label("CIN, immatriculation ou numéro de feuille de l'assuré").fill(number)
    counter.get_by_role("button", name="Rechercher").click()
    row(counter, number, "HERCEPTIN").get_by_label(re.compile("Boîtes délivrées")).fill("1")
    counter.get_by_label(re.compile("Tiers payant")).check()
    counter.get_by_role("button", name="Vérifier les montants").click()  # warned before
    expect(
        counter.get_by_text(
            "Cette ligne sera retenue pour contrôle CNSS : rien n'est payé avant la décision."
        )
    ).to_be_visible()
    shot(counter, "30-pharmacie-avant-delivrance-retenue")
    counter.get_by_role("button", name="Délivrer").click()
    expect(
        counter.get_by_text("Délivrance retenue pour contrôle CNSS", exact=False)
    ).to_be_visible()
    expect(counter.get_by_text("la CNSS paie", exact=False)).to_have_count(0)  # nothing promised
    dispensed = claim_number(counter.url.rsplit("/", 1)[1])  # the pharmacy's claim, for CNSS
    counter.context.close()

    agent = browser.new_context(locale="fr-MA").new_page()
    agent.goto(server + "/cnss")
    agent.get_by_label("Identifiant").fill("agent.cnss")
    agent.get_by_label("Mot de passe").fill(DEMO_PASSWORD)
    agent.get_by_role("button", name="Se connecter").click()
    held = agent.get_by_role("article").filter(has_text=dispensed)
    expect(held).to_contain_text(COSTLY)  # the rule in French, never its code
    expect(held).not_to_contain_text("costly_medicine")
    expect(held).to_contain_text("retenue sur : Karim Benali")  # his prescription
    expect(held).to_contain_text(mad("4823.00"))  # 70 % of 6,890.00, waiting for the decision
    shot(agent, "31-console-file")

    agent.get_by_label("Règle").select_option(label=COSTLY)
    agent.get_by_label("Régime").select_option(label="AMO Tadamon")
    agent.get_by_role("button", name="Rechercher").click()
    expect(agent.get_by_text("Aucune feuille en attente pour ces critères")).to_be_visible()
    agent.get_by_label("Régime").select_option(label="AMO salariés")
    agent.get_by_role("button", name="Rechercher").click()
    expect(agent.get_by_role("article").filter(has_text=dispensed)).to_be_visible()
    agent.get_by_label("Numéro de feuille ou immatriculation").fill(dispensed)
    agent.get_by_role("button", name="Rechercher").click()
    expect(agent.get_by_role("heading", name=f"Feuille {dispensed}")).to_be_visible()
    line = agent.get_by_role("row").filter(has_text="6118001050116")
    expect(line).to_contain_text("HERCEPTIN")
    expect(line).to_contain_text(mad("6890.00"))
    expect(line).to_contain_text(mad("4823.00"))
    expect(agent.get_by_text("Karim Benali · INPE 100000019 · Médecine générale")).to_be_visible()
    expect(agent.get_by_text("Pharmacie Al Amal · INPE 300000017")).to_be_visible()
    expect(agent.get_by_text("aucune ALD ni ALC reconnue")).to_be_visible()
    expect(agent.get_by_role("row").filter(has_text=f"{dispensed} (celle-ci)")).to_contain_text(
        "retenue pour contrôle"
    )
    shot(agent, "31b-console-feuille")
    agent.set_viewport_size({"width": 390, "height": 844})
    shot(agent, "31c-console-feuille-390")
    agent.set_viewport_size({"width": 1440, "height": 900})
    agent.get_by_role("link", name="Retour à la console").click()
    held = agent.get_by_role("article").filter(has_text=dispensed)
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
    most_held = agent.get_by_role("row").filter(has_text=COSTLY)
    expect(most_held).to_contain_text("Karim Benali")  # the prescriber, not the pharmacy
    expect(most_held).not_to_contain_text("Pharmacie")
    expect(agent.get_by_text("costly_medicine")).to_have_count(0)
    shot(agent, "33-tableau-de-bord")
    agent.context.close()
