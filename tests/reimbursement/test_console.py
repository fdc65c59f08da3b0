"""The CNSS agents' console in the browser's terms: the held claims, a decision with a reason."""

from __future__ import annotations

import re

import httpx
from sqlalchemy import select

from fse.security.users import Role
from reimbursement.tables import claim_reviews, settlements
from tests.conftest import Platform
from tests.pharmacy.test_pages import signed_in
from tests.reimbursement.demo import DR_BENALI, FATIMA, load_demo
from tests.reimbursement.test_review_and_payments import held_claim, payments


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
        assert "costly_medicine" in page.text and "6895.00 MAD" in page.text  # rule, evidence
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
    row = after.text.split(f"<td>{number}</td>")[1].split("</tr>")[0]
    assert "refusée après contrôle" in row and "hors indication" in row
