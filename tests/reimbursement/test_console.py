"""The CNSS agents' console in the browser's terms: the held claims, a decision with a reason."""

from __future__ import annotations

import re

import httpx
import pytest
from sqlalchemy import select

from fse.security.users import Role
from fse.web.formats import mad as money
from reimbursement import console
from reimbursement.core.anomalies import RULE_NAMES, RULES, rule_name
from reimbursement.tables import claim_reviews, settlements
from tests.conftest import Platform
from tests.pharmacy.test_pages import signed_in
from tests.reimbursement.demo import (
    DR_BENALI,
    DR_ELIDRISSI,
    FASSI,
    FATIMA,
    OUAZZANI,
    PHARMACY,
    PHARMACY_2,
    act,
    claim,
    load_demo,
)
from tests.reimbursement.test_review_and_payments import HERCEPTIN, held_claim, payments

SUBMIT = "/fhir/Claim/$submit"
MAD_4823 = money("4823.00")  # 70 % of 6,890.00: proposed, not paid before the decision


def visible(page: str) -> str:
    """The page's text as read on screen (tags and their attributes left out)."""
    return re.sub(r"<[^>]*>", "", page)


def csrf_of(page: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', page)
    assert found
    return found[1]


async def test_an_agent_releases_a_held_claim_and_it_leaves_in_the_next_batch(
    platform: Platform, client: httpx.AsyncClient
) -> None:
    refs = await load_demo(client)
    held = await held_claim(client, refs)
    number = held["identifier"][0]["value"]
    async with signed_in(platform, None, Role.CNSS_AGENT) as agent:
        page = await agent.get("/cnss")
        assert page.status_code == 200 and f"Feuille {number}" in page.text
        assert "Médicament coûteux prescrit hors ALD/ALC reconnue" in page.text  # the rule
        assert "costly_medicine" not in visible(page.text)  # named in French, not by its code
        assert "retenue sur : Salma El Idrissi" in page.text  # her prescription, not the shop
        assert f"remboursement proposé <strong>{MAD_4823}</strong>" in page.text
        assert f"PPV : {money('6890.00')}" in page.text  # the evidence, in French formats
        before = await platform.row_counts()
        empty = await agent.post(
            f"/cnss/controle/{held['id']}", data={"csrf": csrf_of(page.text), "decision": "release"}
        )
        assert empty.status_code == 422 and "Indiquez le motif" in empty.text
        assert await platform.row_counts() == before
        released = await agent.post(
            f"/cnss/controle/{held['id']}",
            data={
                "csrf": csrf_of(page.text),
                "decision": "release",
                "motif": "ordonnance du cancérologue vérifiée",
            },
        )
        assert (
            released.status_code == 303 and released.headers["location"] == f"/cnss?fait={number}"
        )
        after = await agent.get(released.headers["location"])
        assert f"Décision enregistrée pour la feuille {number}" in after.text
        assert f"Feuille {number}" not in after.text  # out of the queue
        assert "prochain lot" in after.text
        again = await agent.post(
            f"/cnss/controle/{held['id']}",
            data={"csrf": csrf_of(page.text), "decision": "reject", "motif": "doublon"},
        )
        assert again.status_code == 409 and "not held for review" in again.text
        batches = await payments(platform).run()
        assert len(batches) == 1
        paid = await agent.get("/cnss")
        assert batches[0].batch_id in paid.text  # the release left in this batch
    async with platform.engine.connect() as conn:
        status = await conn.scalar(select(settlements.c.status))
        reviewer = await conn.scalar(select(claim_reviews.c.reviewer))
    assert status == "approved" and reviewer.startswith("user:u.")
    audits = (await client.get("/fhir/AuditEvent", params={"action": "U"})).json()["entry"]
    assert any(
        f"feuille {number} libérée après contrôle" in a["resource"]["outcomeDesc"] for a in audits
    )


async def test_only_cnss_agents_open_the_console(
    platform: Platform, client: httpx.AsyncClient
) -> None:
    refs = await load_demo(client)
    held = await held_claim(client, refs)
    async with signed_in(platform, refs[DR_BENALI], Role.PRESCRIBER) as doctor:
        assert (await doctor.get("/cnss")).status_code == 403
        home = await doctor.get("/espace")  # its logout form carries the CSRF token
        refused = await doctor.post(
            f"/cnss/controle/{held['id']}",
            data={"csrf": csrf_of(home.text), "decision": "release", "motif": "x"},
        )
        assert refused.status_code == 403
    async with platform.engine.connect() as conn:
        assert await conn.scalar(select(settlements.c.status)) == "held"


async def test_opening_the_queue_is_in_each_insured_s_access_log(
    platform: Platform, client: httpx.AsyncClient
) -> None:
    refs = await load_demo(client)
    await held_claim(client, refs)
    async with signed_in(platform, None, Role.CNSS_AGENT) as agent:
        assert (await agent.get("/cnss")).status_code == 200
    log = (await client.get("/fhir/AuditEvent", params={"patient": refs[FATIMA]})).json()
    sentences = [e["resource"]["text"]["div"] for e in log["entry"]]
    assert any("console CNSS : feuilles retenues pour contrôle" in s for s in sentences)


def test_every_rule_has_its_french_name() -> None:
    assert set(RULE_NAMES) == set(RULES)
    assert rule_name("costly_medicine") == "Médicament coûteux prescrit hors ALD/ALC reconnue"


async def test_a_held_sheet_opens_in_full(platform: Platform, client: httpx.AsyncClient) -> None:
    refs = await load_demo(client)
    earlier = claim(refs, FASSI, [act("C", "150.00", "2026-11-19")])
    assert (await client.post(SUBMIT, json=earlier)).json()["outcome"] == "complete"
    held = await held_claim(client, refs, FASSI)
    number = held["identifier"][0]["value"]
    async with signed_in(platform, None, Role.CNSS_AGENT) as agent:
        queue = await agent.get("/cnss")
        assert f'href="/cnss/feuilles/{number}"' in queue.text
        page = await agent.get(f"/cnss/feuilles/{number}")
        missing = await agent.get("/cnss/feuilles/FSE-2026-000000999-00")
    assert page.status_code == 200, page.text
    text = page.text
    assert "Retenue pour contrôle" in text and "costly_medicine" not in visible(text)
    # the line: code, label, quantity, billed, base, proposed refund
    row = re.search(rf"<tr><td[^>]*><code>{HERCEPTIN}</code></td>(.*?)</tr>", text, re.S)
    assert row, text
    cells = re.findall(r"<td[^>]*>(.*?)</td>", row[1], re.S)
    assert cells[0].startswith("HERCEPTIN") and cells[1] == "1"
    assert cells[2:5] == [money("6890.00"), money("6890.00"), MAD_4823]
    # the prescriber (name, INPE, speciality) and the pharmacy
    assert "Salma El Idrissi · INPE 100000027 · Cardiologie" in text
    assert "Pharmacie Al Amal · INPE 300000017" in text
    # the insured's rights and ALD on the date of care
    assert "Abdelkader Fassi" in text and "678912345" in text
    assert "ouverts" in text
    assert "ALD E11 du 01/03/2025 au 28/02/2028 : en vigueur à la date des soins" in text
    # the insured's recent sheets, with status and amount
    recent = text[text.index("Dernières feuilles de l'assuré") :]
    assert earlier["identifier"][0]["value"] in recent and "signée et réglée" in recent
    assert f"{number} (celle-ci)" in recent and "retenue pour contrôle" in recent
    assert "Motif de la décision" in text  # decided from here
    assert missing.status_code == 404 and "Feuille introuvable" in missing.text
    log = (await client.get("/fhir/AuditEvent", params={"patient": refs[FASSI]})).json()
    sentences = [e["resource"]["text"]["div"] for e in log["entry"]]
    assert any(f"console CNSS : feuille {number}" in s for s in sentences)


def _queue(page: str) -> list[str]:
    return re.findall(r"<h3 [^>]*>Feuille ([^<]+)</h3>", page)


async def test_the_queue_is_filtered_searched_and_paged_without_javascript(
    platform: Platform, client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    refs = await load_demo(client)
    fatima = (await held_claim(client, refs))["identifier"][0]["value"]
    elodie = (await held_claim(client, refs, OUAZZANI, PHARMACY_2, "2026-11-21"))["identifier"][0][
        "value"
    ]
    async with signed_in(platform, None, Role.CNSS_AGENT) as agent:
        everything = await agent.get("/cnss")
        assert '<form method="get" action="/cnss" role="search">' in everything.text
        assert _queue(everything.text) == [fatima, elodie]

        async def queue(**query: str) -> list[str]:
            page = await agent.get("/cnss", params=query)
            assert page.status_code == 200, page.text
            return _queue(page.text)

        assert await queue(regle="costly_medicine") == [fatima, elodie]
        assert await queue(regle="identical_amounts") == []
        assert await queue(regime="tadamon") == [elodie]
        assert await queue(professionnel=refs[PHARMACY]) == [fatima]
        assert await queue(professionnel=refs[DR_ELIDRISSI]) == [fatima, elodie]  # held on her
        assert await queue(du="2026-11-21") == [elodie]
        assert await queue(au="2026-11-20") == [fatima]
        assert await queue(q="345678912") == [elodie]  # Élodie Ouazzani's immatriculation
        found = await agent.get("/cnss", params={"q": fatima})
        assert found.status_code == 303 and found.headers["location"] == f"/cnss/feuilles/{fatima}"
        unknown = await agent.get("/cnss", params={"q": "FSE-2026-000000999-00"})
        assert "Aucune feuille n° FSE-2026-000000999-00" in unknown.text
        monkeypatch.setattr(console, "PAGE_SIZE", 1)
        first = await agent.get("/cnss", params={"regle": "costly_medicine"})
        assert _queue(first.text) == [fatima] and "Page 1 sur 2" in first.text
        link = re.search(r'href="([^"]+)" rel="next"', first.text)
        assert link and "regle=costly_medicine" in link[1]
        second = await agent.get(link[1].replace("&amp;", "&"))
        assert _queue(second.text) == [elodie] and "Page 2 sur 2" in second.text
        # A page that is no small whole number is the first page, never a 500.
        for odd in ("99999999999999999999", "\u00b2", "-3", "0", "x"):
            answer = await agent.get("/cnss", params={"regle": "costly_medicine", "page": odd})
            assert answer.status_code == 200 and "Page 1 sur 2" in answer.text, odd


async def test_a_rejection_is_named_as_every_other_screen_names_it(
    platform: Platform, client: httpx.AsyncClient
) -> None:
    refs = await load_demo(client)
    held = await held_claim(client, refs)
    number = held["identifier"][0]["value"]
    async with signed_in(platform, None, Role.CNSS_AGENT) as agent:
        page = await agent.get("/cnss")
        decided = await agent.post(
            f"/cnss/controle/{held['id']}",
            data={"csrf": csrf_of(page.text), "decision": "reject", "motif": "hors indication"},
        )
        after = await agent.get(decided.headers["location"])
    row = after.text.split(f">{number}</a></td>")[1].split("</tr>")[0]
    assert "refusée après contrôle" in row and "hors indication" in row
