"""Partial FHIR dates denote ranges; zones are honoured."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from fse.store.dates import date_range, instant_text, period_range


def utc(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=UTC)


@pytest.mark.parametrize(
    ("text", "low", "high"),
    [
        ("2026", utc(2026, 1, 1), utc(2026, 12, 31, 23, 59, 59, 999999)),
        ("2024-02", utc(2024, 2, 1), utc(2024, 2, 29, 23, 59, 59, 999999)),
        ("2026-11-20", utc(2026, 11, 20), utc(2026, 11, 20, 23, 59, 59, 999999)),
        ("9999-12-31", utc(9999, 12, 31), utc(9999, 12, 31, 23, 59, 59, 999999)),
        (
            "2026-11-20T09:30:00+01:00",
            utc(2026, 11, 20, 8, 30),
            utc(2026, 11, 20, 8, 30, 0, 999999),
        ),
        ("2026-11-20T09:30Z", utc(2026, 11, 20, 9, 30), utc(2026, 11, 20, 9, 30, 59, 999999)),
        (
            "2026-11-20T09:30:00.250Z",
            utc(2026, 11, 20, 9, 30, 0, 250000),
            utc(2026, 11, 20, 9, 30, 0, 250000),
        ),
    ],
)
def test_date_range(text: str, low: datetime, high: datetime) -> None:
    assert date_range(text) == (low, high)


@pytest.mark.parametrize("text", ["", "20/11/2026", "2026-13", "2026-11-20T25:00:00Z", "soon"])
def test_not_a_date(text: str) -> None:
    with pytest.raises(ValueError):
        date_range(text)


def test_open_period_reaches_the_end_of_time() -> None:
    low, high = period_range({"start": "2024-01-01"}) or (None, None)
    assert low == utc(2024, 1, 1) and high is not None and high.year == 9999
    assert period_range({}) is None


def test_instant_text_is_utc_with_milliseconds() -> None:
    assert instant_text(utc(2026, 11, 22, 10, 0, 0, 123456)) == "2026-11-22T10:00:00.123Z"
