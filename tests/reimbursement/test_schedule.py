"""Payment cut-offs: the insured learns on the spot when the money leaves."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from reimbursement.schedule import PaymentSchedule

SCHEDULE = PaymentSchedule.parse("16:00, 11:00", "Africa/Casablanca")


@pytest.mark.parametrize(
    ("now", "expected"),
    [
        ("2026-11-20T08:00:00+01:00", "2026-11-20T11:00:00+01:00"),
        ("2026-11-20T11:00:00+01:00", "2026-11-20T16:00:00+01:00"),  # at a cut-off: the next
        ("2026-11-20T15:59:59+01:00", "2026-11-20T16:00:00+01:00"),
        ("2026-11-20T18:30:00+01:00", "2026-11-21T11:00:00+01:00"),  # evening: tomorrow morning
        ("2026-11-20T23:30:00+00:00", "2026-11-21T11:00:00+01:00"),  # UTC input, local cut-off
    ],
)
def test_next_cutoff(now: str, expected: str) -> None:
    found = SCHEDULE.next_cutoff(datetime.fromisoformat(now))
    assert found == datetime.fromisoformat(expected)
    assert found.astimezone(UTC) > datetime.fromisoformat(now).astimezone(UTC)


@pytest.mark.parametrize("text", ["", "25:00", "midi"])
def test_a_bad_setting_names_the_variable(text: str) -> None:
    with pytest.raises(ValueError, match="FSE_PAYMENT_CUTOFFS"):
        PaymentSchedule.parse(text, "Africa/Casablanca")
