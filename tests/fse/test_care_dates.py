"""The dates-in-the-future checker on its own (pure: ``now`` passed in, no database)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from fse.care_dates import CARE_DATES, future_dates, is_future, latest_allowed, refuse_future_dates
from fse.errors import ErrorCode, Unprocessable
from fse.store.search_params import SUPPORTED_TYPES

CASABLANCA = ZoneInfo("Africa/Casablanca")
TOLERANCE = timedelta(seconds=300)
NOW = datetime(2026, 11, 20, 15, 0, tzinfo=UTC)
"""16:00 in Casablanca (UTC+1 in November)."""


def paths(resource: dict[str, Any], now: datetime = NOW) -> list[str]:
    return [f.path for f in future_dates(resource, now, TOLERANCE, CASABLANCA)]


def test_every_checked_type_is_served() -> None:
    assert set(CARE_DATES) <= set(SUPPORTED_TYPES)


def test_a_claim_names_every_element_in_the_future_with_its_index() -> None:
    claim = {
        "resourceType": "Claim",
        "created": "2030-01-01T10:00:00+01:00",
        "billablePeriod": {"start": "2026-11-01", "end": "2031"},
        "item": [
            {"servicedDate": "2026-11-20"},
            {"servicedDate": "9999-12-31"},
            {"servicedPeriod": {"start": "2026-11-19", "end": "2026-12"}},
            {"servicedPeriod": {"start": "2027-01-01"}},
        ],
    }
    assert paths(claim) == [
        "Claim.created",
        "Claim.billablePeriod.end",
        "Claim.item[1].servicedDate",
        "Claim.item[3].servicedPeriod.start",
        "Claim.item[2].servicedPeriod.end",
    ]  # in the table's order


def test_past_and_present_dates_pass() -> None:
    claim = {
        "resourceType": "Claim",
        "created": "2026-11-20T16:00:00+01:00",
        "item": [{"servicedDate": "2026-11-20"}, {"servicedDate": "2026"}],
    }
    assert paths(claim) == []


@pytest.mark.parametrize(
    ("value", "future"),
    [
        ("2026-11-20T15:04:59Z", False),  # within the tolerance
        ("2026-11-20T15:05:00Z", False),  # exactly now + tolerance
        ("2026-11-20T15:05:01Z", True),
        ("2026-11-20T15:10:00Z", True),
        ("2026-11-20T16:04:00+01:00", False),  # the same instant written in Moroccan time
        ("2026-11-20T16:10:00+01:00", True),
        ("2026-11-20T15:04:59.999+00:00", False),
        ("2026-11-20", False),  # today
        ("2026-11-21", True),  # tomorrow
        ("2026-11", False),  # partial dates count by their first day
        ("2026-12", True),
        ("2026", False),
        ("2027", True),
        ("9999-12-31", True),
        ("9999-12-31T23:59:59-05:00", True),  # past the calendar's end in UTC
        ("0001-01-01T00:00:00+01:00", False),  # before its start
        ("not a date", False),  # left to the model check (FSE-0003)
        ("2026-02-30", False),
    ],
)
def test_the_tolerance_and_partial_dates(value: str, future: bool) -> None:
    latest, today = latest_allowed(NOW, TOLERANCE, CASABLANCA)
    assert is_future(value, latest, today) is future


def test_today_is_the_platform_zone_s_day_at_now_plus_tolerance() -> None:
    tomorrow = {"resourceType": "Claim", "item": [{"servicedDate": "2026-11-21"}]}
    # 23:54:59 in Casablanca: now + 5 min is still the 20th.
    assert paths(tomorrow, datetime(2026, 11, 20, 22, 54, 59, tzinfo=UTC)) == [
        "Claim.item[0].servicedDate"
    ]
    # 23:55: now + 5 min is midnight, the 21st has begun for a clock 5 min ahead.
    assert paths(tomorrow, datetime(2026, 11, 20, 22, 55, tzinfo=UTC)) == []
    # 00:30 in Casablanca is still the 20th in UTC: the zone's day counts, not UTC's.
    assert paths(tomorrow, datetime(2026, 11, 20, 23, 30, tzinfo=UTC)) == []
    late = datetime(2026, 11, 20, 22, 58, tzinfo=UTC)  # 23:58 in Casablanca
    assert future_dates(tomorrow, late, timedelta(seconds=60), CASABLANCA) != []


def test_the_other_care_sheet_types() -> None:
    assert paths(
        {
            "resourceType": "MedicationDispense",
            "whenPrepared": "2026-11-20T15:30:00Z",
            "whenHandedOver": "2026-11-21",
        }
    ) == ["MedicationDispense.whenPrepared", "MedicationDispense.whenHandedOver"]
    assert paths({"resourceType": "ChargeItem", "occurrenceDateTime": "2027-01-01"}) == [
        "ChargeItem.occurrenceDateTime"
    ]
    assert paths(
        {"resourceType": "ChargeItem", "occurrenceTiming": {"event": ["2026-11-19", "2028"]}}
    ) == ["ChargeItem.occurrenceTiming.event[1]"]
    assert paths(
        {"resourceType": "ChargeItem", "occurrencePeriod": {"start": "2026-11-20", "end": "2029"}}
    ) == ["ChargeItem.occurrencePeriod.end"]
    assert paths(
        {"resourceType": "Encounter", "period": {"start": "2030-01-01", "end": "2030-01-02"}}
    ) == ["Encounter.period.start"]
    for rtype in ("MedicationRequest", "ServiceRequest"):
        assert paths({"resourceType": rtype, "authoredOn": "2030-01-01"}) == [f"{rtype}.authoredOn"]


def test_dates_that_name_the_future_on_purpose_are_not_checked() -> None:
    request = {
        "resourceType": "MedicationRequest",
        "authoredOn": "2026-11-20",
        "dispenseRequest": {"validityPeriod": {"start": "2026-11-20", "end": "2027-02-18"}},
    }
    assert paths(request) == []
    assert paths({"resourceType": "ServiceRequest", "occurrenceDateTime": "2027-01-01"}) == []
    assert paths({"resourceType": "CoverageEligibilityRequest", "servicedDate": "2030"}) == []
    assert paths({"resourceType": "Coverage", "period": {"start": "2030-01-01"}}) == []


def test_odd_shapes_do_not_break_the_checker() -> None:
    assert paths({"resourceType": "Claim", "item": "nope", "billablePeriod": ["x"]}) == []
    assert paths({"resourceType": "Claim", "item": [None, 3, {"servicedDate": 2030}]}) == []
    assert paths({"item": [{"servicedDate": "2030"}]}) == []
    with pytest.raises(ValueError, match="aware"):
        future_dates({"resourceType": "Claim"}, datetime(2026, 1, 1), TOLERANCE, CASABLANCA)


def test_the_error_is_422_fse_0034_with_one_issue_per_element() -> None:
    claim = {
        "resourceType": "Claim",
        "created": "2030-01-01",
        "item": [{"servicedDate": "2026-11-20"}, {"servicedDate": "2030-01-01"}],
    }
    with pytest.raises(Unprocessable) as raised:
        refuse_future_dates(claim, NOW, TOLERANCE, CASABLANCA)
    error = raised.value
    assert error.status == 422
    assert [(i.code, i.expression) for i in error.issues] == [
        (ErrorCode.DATE_IN_FUTURE, ("Claim.created",)),
        (ErrorCode.DATE_IN_FUTURE, ("Claim.item[1].servicedDate",)),
    ]
    assert "2030-01-01" in error.issues[1].diagnostics
    refuse_future_dates({"resourceType": "Claim", "created": "2026-11-20"}, NOW, TOLERANCE, UTC)
