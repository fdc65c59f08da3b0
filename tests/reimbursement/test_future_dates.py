"""Claim/$submit refuses care dated in the future (422 FSE-0034): nothing stored, nothing paid.

Reproductions of issue 13: a consultation dated 2030-01-01 was settled `complete` for 161.00 MAD,
and a line dated 9999-12-31 was paid 56.00.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from fse.errors import ErrorCode
from reimbursement.tables import ledger_entries, settlements
from tests.conftest import Platform
from tests.reimbursement.demo import FATIMA, act, adjudication, claim, load_demo, total
from tests.reimbursement.test_eligibility import ELIGIBLE, request

SUBMIT = "/fhir/Claim/$submit"
EXAMPLE = Path(__file__).resolve().parents[2] / "docs" / "examples" / "claim-consultation.json"


def future_paths(answer: httpx.Response) -> list[str]:
    """The paths of a 422 FSE-0034, one per offending element (and only FSE-0034 issues)."""
    assert answer.status_code == 422, answer.text
    issues = answer.json()["issue"]
    assert {c["code"] for i in issues for c in i["details"]["coding"]} == {
        ErrorCode.DATE_IN_FUTURE.value
    }
    return [e for i in issues for e in i["expression"]]


async def assert_nothing_paid(platform: Platform, before: dict[str, int]) -> None:
    assert await platform.row_counts() == before
    async with platform.engine.connect() as conn:
        assert await conn.scalar(select(func.count()).select_from(settlements)) == 0
        assert await conn.scalar(select(func.count()).select_from(ledger_entries)) == 0


@pytest.fixture
def pin(platform: Platform, monkeypatch: pytest.MonkeyPatch) -> Callable[[datetime], None]:
    """Pin "now" for the API and the settlement (restored after the test)."""

    def pinned(when: datetime) -> None:
        monkeypatch.setattr(platform.app.state.fhir, "clock", lambda: when)
        monkeypatch.setattr(platform.app.state.settlement, "clock", lambda: when)

    return pinned


async def test_a_consultation_dated_2030_is_refused_and_not_paid(
    client: httpx.AsyncClient, platform: Platform
) -> None:
    await load_demo(client)
    sheet = json.loads(EXAMPLE.read_text(encoding="utf-8"))
    assert (await client.post(SUBMIT, json=sheet)).json()["outcome"] == "complete"  # as sent
    await platform.truncate()
    await load_demo(client)
    for item in sheet["item"]:
        item["servicedDate"] = "2030-01-01"
    before = await platform.row_counts()
    answer = await client.post(SUBMIT, json=sheet)
    assert future_paths(answer) == ["Claim.item[0].servicedDate", "Claim.item[1].servicedDate"]
    assert "2030-01-01" in answer.json()["issue"][1]["diagnostics"]
    await assert_nothing_paid(platform, before)


async def test_a_line_dated_9999_12_31_is_refused_and_not_paid(
    client: httpx.AsyncClient, platform: Platform
) -> None:
    refs = await load_demo(client)
    before = await platform.row_counts()
    sheet = claim(refs, FATIMA, [act("C", "150.00"), act("C", "150.00", "9999-12-31")])
    answer = await client.post(SUBMIT, json=sheet)
    assert future_paths(answer) == ["Claim.item[1].servicedDate"]
    await assert_nothing_paid(platform, before)


async def test_a_serviced_period_in_the_future_is_refused(
    client: httpx.AsyncClient, platform: Platform
) -> None:
    refs = await load_demo(client)
    before = await platform.row_counts()
    stay = act("C", "150.00")
    del stay["servicedDate"]
    stay["servicedPeriod"] = {"start": "2026-11-20", "end": "2031-06-30"}
    later = act("C", "150.00")
    del later["servicedDate"]
    later["servicedPeriod"] = {"start": "2031-01-01"}
    answer = await client.post(SUBMIT, json=claim(refs, FATIMA, [stay, later]))
    assert future_paths(answer) == [
        "Claim.item[1].servicedPeriod.start",
        "Claim.item[0].servicedPeriod.end",
    ]
    await assert_nothing_paid(platform, before)


async def test_a_claim_created_or_billed_in_the_future_is_refused(
    client: httpx.AsyncClient, platform: Platform
) -> None:
    refs = await load_demo(client)
    before = await platform.row_counts()
    sheet = claim(refs, FATIMA, [act("C", "150.00")], created="2030-01-01T10:00:00+01:00")
    assert future_paths(await client.post(SUBMIT, json=sheet)) == ["Claim.created"]
    billed = claim(refs, FATIMA, [act("C", "150.00")], billablePeriod={"end": "2030-01"})
    assert future_paths(await client.post(SUBMIT, json=billed)) == ["Claim.billablePeriod.end"]
    await assert_nothing_paid(platform, before)


async def test_every_element_in_the_future_is_named(
    client: httpx.AsyncClient, platform: Platform
) -> None:
    refs = await load_demo(client)
    before = await platform.row_counts()
    period = act("C", "150.00")
    period["servicedPeriod"] = {"start": "2030-02-01", "end": "2030-02-02"}
    del period["servicedDate"]
    sheet = claim(
        refs,
        FATIMA,
        [act("C", "150.00", "2030-01-01"), act("C", "150.00"), period],
        created="2030-01-01",
    )
    answer = await client.post(SUBMIT, json=sheet)
    assert future_paths(answer) == [
        "Claim.created",
        "Claim.item[0].servicedDate",
        "Claim.item[2].servicedPeriod.start",
        "Claim.item[2].servicedPeriod.end",
    ]
    await assert_nothing_paid(platform, before)


AT = datetime(2026, 11, 20, 15, 0, tzinfo=UTC)
"""16:00 in Casablanca, the demo's care day."""


async def submit_at(
    client: httpx.AsyncClient, pin: Callable[[datetime], None], when: datetime, **sheet: Any
) -> httpx.Response:
    refs = await load_demo(client)
    pin(when)
    day = sheet.pop("day", "2026-11-20")
    return await client.post(SUBMIT, json=claim(refs, FATIMA, [act("C", "150.00", day)], **sheet))


async def test_a_creation_four_minutes_ahead_is_clock_skew_and_is_paid(
    client: httpx.AsyncClient, pin: Callable[[datetime], None]
) -> None:
    answer = await submit_at(client, pin, AT, created="2026-11-20T16:04:00+01:00")
    assert answer.status_code == 200, answer.text
    assert answer.json()["outcome"] == "complete" and total(answer.json(), "benefit") == 56.0


async def test_a_creation_ten_minutes_ahead_is_refused(
    client: httpx.AsyncClient, platform: Platform, pin: Callable[[datetime], None]
) -> None:
    answer = await submit_at(client, pin, AT, created="2026-11-20T16:10:00+01:00")
    assert future_paths(answer) == ["Claim.created"]


async def test_today_s_date_is_paid(
    client: httpx.AsyncClient, pin: Callable[[datetime], None]
) -> None:
    answer = await submit_at(client, pin, AT, created="2026-11-20")
    assert adjudication(answer.json(), 0, "benefit") == 56.0


@pytest.mark.parametrize(
    ("when", "tolerance", "refused"),
    [
        (datetime(2026, 11, 20, 22, 54, 59, tzinfo=UTC), 300, True),  # 23:54:59 Casablanca
        (datetime(2026, 11, 20, 22, 58, tzinfo=UTC), 60, True),  # 23:58, tolerance 1 min
        (datetime(2026, 11, 20, 22, 55, tzinfo=UTC), 300, False),  # now + 5 min = midnight
    ],
)
async def test_tomorrow_late_in_the_evening_in_casablanca(
    client: httpx.AsyncClient,
    platform: Platform,
    pin: Callable[[datetime], None],
    monkeypatch: pytest.MonkeyPatch,
    when: datetime,
    tolerance: int,
    refused: bool,
) -> None:
    """The day is Casablanca's at now + tolerance: tomorrow is refused until then."""
    monkeypatch.setattr(platform.app.state.settings, "clock_tolerance_seconds", tolerance)
    answer = await submit_at(client, pin, when, day="2026-11-21", created="2026-11-20")
    if refused:
        assert future_paths(answer) == ["Claim.item[0].servicedDate"]
    else:
        assert answer.status_code == 200, answer.text


async def test_today_in_casablanca_is_accepted_while_utc_is_still_yesterday(
    client: httpx.AsyncClient, pin: Callable[[datetime], None]
) -> None:
    when = datetime(2026, 11, 20, 23, 30, tzinfo=UTC)  # 00:30 on the 21st in Casablanca
    answer = await submit_at(client, pin, when, day="2026-11-21", created="2026-11-21")
    assert answer.status_code == 200, answer.text
    assert adjudication(answer.json(), 0, "benefit") == 56.0


async def test_a_care_date_without_its_day_is_named_not_a_crash(
    client: httpx.AsyncClient, platform: Platform
) -> None:
    """A partial date is valid FHIR, but the engine prices and checks rights per day."""
    refs = await load_demo(client)
    before = await platform.row_counts()
    answer = await client.post(SUBMIT, json=claim(refs, FATIMA, [act("C", "150.00", "2026-11")]))
    assert answer.status_code == 422, answer.text
    issue = answer.json()["issue"][0]
    assert issue["details"]["coding"][0]["code"] == ErrorCode.CLAIM_NOT_ADJUDICABLE.value
    assert issue["expression"] == ["Claim.item[0].servicedDate"]
    assert await platform.row_counts() == before


async def test_asking_about_rights_on_a_future_date_is_still_answered(
    client: httpx.AsyncClient,
) -> None:
    """CoverageEligibilityRequest/$submit is a question, not a payment: left alone."""
    refs = await load_demo(client)
    answer = await client.post(ELIGIBLE, json=request(refs, FATIMA, "2027-01-15"))
    assert answer.status_code == 200, answer.text
    assert answer.json()["insurance"][0]["inforce"] is True
