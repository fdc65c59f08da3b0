"""The agents' dashboard: figures aggregated in the database, charts readable without hovering."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal

import httpx
import pytest

from fse.security.users import Role
from fse.web.charts import bar_chart
from fse.web.formats import mad
from reimbursement.dashboard import DELAYS, dashboard, delay_bucket
from reimbursement.state import settlement_on
from tests.conftest import Platform
from tests.pharmacy.test_pages import signed_in
from tests.reimbursement.demo import DR_ELIDRISSI, FATIMA, OUAZZANI, act, claim, load_demo
from tests.reimbursement.test_console import visible
from tests.reimbursement.test_review_and_payments import held_claim, payments

SUBMIT = "/fhir/Claim/$submit"
TODAY = date(2026, 11, 22)


async def test_sheets_amounts_delays_holds_and_indicators(
    platform: Platform, client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    refs = await load_demo(client)
    for sheet in (
        claim(refs, FATIMA, [act("C", "150.00", "2026-11-20")]),  # 56.00
        claim(refs, FATIMA, [act("Z", "200.00", "2026-11-20", "15")]),  # 105.00
        claim(refs, OUAZZANI, [act("C", "80.00", "2026-11-21")]),  # Tadamon, 56.00
    ):
        assert (await client.post(SUBMIT, json=sheet)).json()["outcome"] == "complete"
    await held_claim(client, refs)  # HERCEPTIN outside an ALD, 2026-11-20: held
    assert len(await payments(platform).run()) == 1
    async with platform.engine.connect() as conn:
        board = await dashboard(conn, TODAY)
    nov20, nov21 = board.days.index(date(2026, 11, 20)), board.days.index(date(2026, 11, 21))
    assert board.days[0] == date(2026, 11, 9) and board.days[-1] == TODAY
    assert board.sheets["salaries"][nov20] == 3  # the held one is a sheet received
    assert board.benefits["salaries"][nov20] == Decimal("161.00")  # held: not approved yet
    assert (board.sheets["tadamon"][nov21], board.benefits["tadamon"][nov21]) == (1, 56)
    assert board.paid == 3 and board.paid_same_day == 3 and board.same_day_share == 100
    assert sum(board.delays.values()) == 3
    assert (board.held, board.held_amount) == (1, Decimal("4823.00"))
    # HERCEPTIN is held on Dr El Idrissi's prescription, not on the pharmacy that dispensed it
    assert board.indicators == [(refs[DR_ELIDRISSI], "costly_medicine", 1)]
    # The page's day is the engine's, not the wall clock's: these sheets stay in its window.
    pinned = datetime(2026, 11, 22, 10, tzinfo=UTC)
    monkeypatch.setattr(settlement_on(platform.app), "clock", lambda: pinned)  # restored after
    async with signed_in(platform, None, Role.CNSS_AGENT) as agent:
        page = await agent.get("/cnss/tableau-de-bord")
    assert page.status_code == 200
    assert page.text.count("<svg") == 3
    most_held = page.text[page.text.index('id="indicateurs"') :]
    assert "dont l'acte ou la prescription a déclenché la règle" in most_held  # says so
    assert "<td>Salma El Idrissi</td>" in most_held and "Pharmacie Al Amal" not in most_held
    assert "<td>Médicament coûteux prescrit hors ALD/ALC reconnue</td>" in most_held
    assert "costly_medicine" not in visible(page.text)
    assert f"{mad('4823.00')} en attente" in page.text
    assert "<strong>100,0\u00a0%</strong> (3 sur 3 feuilles payées)" in page.text


def test_delays_fall_in_the_buckets_people_read() -> None:
    assert [delay_bucket(d) for d in (0, 1, 2, 3, 7, 8, 40)] == [
        DELAYS[0],
        DELAYS[1],
        DELAYS[2],
        DELAYS[3],
        DELAYS[3],
        DELAYS[4],
        DELAYS[4],
    ]


def test_every_bar_says_its_value_and_the_chart_its_title() -> None:
    svg = bar_chart(
        "Remboursements <par jour>",
        ["20/11", "21/11"],
        {"Salariés": [Decimal("161.00"), Decimal("0")], "Tadamon": [Decimal("0"), Decimal("56")]},
        " MAD",
    )
    assert svg.startswith('<svg xmlns="http://www.w3.org/2000/svg" role="img"')
    assert "<title>Remboursements &lt;par jour&gt;</title>" in svg  # escaped
    assert ">161,00 MAD</text>" in svg and ">56,00 MAD</text>" in svg  # French, as every page
    assert svg.count("<rect") == 2 + 4  # the legend's two swatches, one bar per value
    assert ">Salariés</text>" in svg and ">Tadamon</text>" in svg
