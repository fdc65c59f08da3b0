"""French display conventions: one helper for dates, one for amounts."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal

import pytest

from fse.web.formats import amount_fr, date_fr, datetime_fr, mad
from fse.web.templates import TEMPLATES


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (date(2026, 12, 1), "01/12/2026"),
        (datetime(2027, 3, 1, 23, 59, tzinfo=UTC), "01/03/2027"),
        ("2027-03-01", "01/03/2027"),
        ("2027-03-01T10:00:00+01:00", "01/03/2027"),
        (None, ""),
        ("", ""),
    ],
)
def test_dates_are_jj_mm_aaaa(value: object, text: str) -> None:
    assert date_fr(value) == text  # type: ignore[arg-type]


def test_a_moment_keeps_its_hour() -> None:
    assert datetime_fr(datetime(2026, 12, 2, 9, 5, tzinfo=UTC)) == "02/12/2026 à 09:05"


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (Decimal("9850"), "9\u202f850,00"),
        (Decimal("1234.5"), "1\u202f234,50"),
        (Decimal("0.005"), "0,01"),
        (Decimal("999999999.99"), "999\u202f999\u202f999,99"),
        (Decimal("-56"), "-56,00"),
        (Decimal("100"), "100,00"),
        ("8.05", "8,05"),
        (0, "0,00"),
    ],
)
def test_amounts_have_a_comma_and_fine_spaces(value: object, text: str) -> None:
    assert amount_fr(value) == text  # type: ignore[arg-type]


def test_an_amount_carries_its_currency_without_a_line_break() -> None:
    assert mad(Decimal("1234.5")) == "1\u202f234,50\u00a0MAD"
    assert mad(None) == ""


def test_every_template_can_use_the_filters() -> None:
    template = TEMPLATES.env.from_string("{{ d|date_fr }} {{ a|mad }}")
    assert (
        template.render(d=date(2026, 12, 2), a=Decimal("9850"))
        == "02/12/2026 9\u202f850,00\u00a0MAD"
    )


def test_counts_and_percentages_follow_the_same_conventions() -> None:
    from fse.web.formats import count_fr, percent_fr

    assert count_fr(110000) == "110\u202f000"
    assert percent_fr(Decimal("99.5")) == "99,5\u00a0%"
    assert percent_fr(None) == ""
