"""Rights on the date of care, from the registry's rights periods (one Coverage per period)."""

from __future__ import annotations

import calendar
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

from reimbursement.core.dated import newest_first, parse_date, version_on
from reimbursement.core.model import Beneficiary, CoveragePeriod, Rights
from reimbursement.core.reasons import Reason

OPEN, CLOSED, WAITING, MAINTAINED = "ouverts", "fermes-cotisations", "stage", "maintien"
# When periods overlap on a date, the most favourable one speaks.
PREFERENCE = {OPEN: 0, MAINTAINED: 1, WAITING: 2, CLOSED: 3}
CARRIES_RIGHTS = {OPEN, MAINTAINED, WAITING}


@dataclass(frozen=True)
class RightsRulesVersion:
    id: str
    valid_from: date
    valid_to: date | None
    waiting_months: Mapping[str, int]
    maintained_months: Mapping[str, int]
    child_max_age: int
    student_max_age: int
    filing_deadline_months: int
    prescription_validity_days: int


class RightsRules:
    def __init__(self, data: Mapping[str, Any]) -> None:
        self.versions = newest_first(_version(v) for v in data["versions"])

    def on(self, day: date) -> RightsRulesVersion | None:
        """The rules in force, or None before AMO existed (no rights then)."""
        return version_on(self.versions, day)

    def filing_deadline_months(self, received_on: date) -> int:
        version = self.on(received_on) or self.versions[-1]
        return version.filing_deadline_months

    def prescription_validity_days(self, on: date) -> int:
        version = self.on(on) or self.versions[-1]
        return version.prescription_validity_days


def _version(data: Mapping[str, Any]) -> RightsRulesVersion:
    valid_from = parse_date(data["valid_from"])
    assert valid_from is not None
    return RightsRulesVersion(
        id=data["id"],
        valid_from=valid_from,
        valid_to=parse_date(data.get("valid_to")),
        waiting_months=dict(data["waiting_months"]),
        maintained_months=dict(data["maintained_months"]),
        child_max_age=int(data["child_max_age"]),
        student_max_age=int(data["student_max_age"]),
        filing_deadline_months=int(data["filing_deadline_months"]),
        prescription_validity_days=int(data["prescription_validity_days"]),
    )


def add_months(day: date, months: int) -> date:
    """Same day ``months`` later, clamped to the month's end (31 Jan + 1 month = 28/29 Feb)."""
    index = day.month - 1 + months
    year, month = day.year + index // 12, index % 12 + 1
    return date(year, month, min(day.day, calendar.monthrange(year, month)[1]))


def age_on(birth: date, day: date) -> int:
    """Completed years."""
    return day.year - birth.year - ((day.month, day.day) < (birth.month, birth.day))


def _end(period: CoveragePeriod, rules: RightsRulesVersion) -> date | None:
    """Last day of the period; maintained rights stop after the months their reason allows."""
    if period.status != MAINTAINED:
        return period.end
    months = rules.maintained_months.get(period.maintained_reason or "job-loss")
    if months is None:
        return period.end
    limit = add_months(period.start, months) - timedelta(days=1)
    return limit if period.end is None or limit < period.end else period.end


def _covers(period: CoveragePeriod, day: date, rules: RightsRulesVersion) -> bool:
    end = _end(period, rules)
    return period.start <= day and (end is None or day <= end)


def _continues(
    period: CoveragePeriod, periods: Sequence[CoveragePeriod], rules: RightsRulesVersion
) -> bool:
    """True when rights carried on up to the day before this period (no fresh opening)."""
    eve = period.start - timedelta(days=1)
    return any(
        p is not period and p.status in CARRIES_RIGHTS and _covers(p, eve, rules) for p in periods
    )


def rights_on(
    beneficiary: Beneficiary,
    periods: Sequence[CoveragePeriod],
    day: date,
    rules: RightsRules,
) -> Rights:
    version = rules.on(day)
    if version is None:
        return Rights(False, Reason.RIGHTS_CLOSED, f"aucune règle AMO en vigueur le {day:%d/%m/%Y}")
    if beneficiary.deceased_on is not None and day > beneficiary.deceased_on:
        return Rights(
            False,
            Reason.RIGHTS_CLOSED,
            f"bénéficiaire décédé le {beneficiary.deceased_on:%d/%m/%Y}",
        )
    covering = sorted(
        (p for p in periods if _covers(p, day, version)), key=lambda p: PREFERENCE.get(p.status, 9)
    )
    if not covering:
        later = sorted(p.start for p in periods if p.start > day and p.status == OPEN)
        return Rights(
            False,
            Reason.RIGHTS_CLOSED,
            "aucune période de droits à cette date",
            opens_on=later[0] if later else None,
        )
    period = covering[0]
    regime, coverage = period.regime, period.coverage_id
    if period.status == CLOSED:
        return Rights(
            False, Reason.RIGHTS_CLOSED, "droits fermés : cotisations impayées", regime, coverage
        )
    if period.status == WAITING:
        opens = period.end + timedelta(days=1) if period.end else None
        return Rights(False, Reason.WAITING_PERIOD, "stage en cours", regime, coverage, opens)
    waiting = version.waiting_months.get(regime, 0)
    if period.status == OPEN and waiting and not _continues(period, periods, version):
        opens = add_months(period.start, waiting)
        if day < opens:
            message = f"stage de {waiting} mois après l'ouverture des droits"
            return Rights(False, Reason.WAITING_PERIOD, message, regime, coverage, opens)
    age_problem = _dependant_age(beneficiary, period, day, version)
    if age_problem:
        return Rights(False, Reason.DEPENDANT_AGE, age_problem, regime, coverage)
    label = "droits maintenus" if period.status == MAINTAINED else "droits ouverts"
    return Rights(True, None, label, regime, coverage, until=_end(period, version))


def _dependant_age(
    beneficiary: Beneficiary, period: CoveragePeriod, day: date, rules: RightsRulesVersion
) -> str | None:
    if period.relationship != "child" or beneficiary.birth_date is None:
        return None
    age = age_on(beneficiary.birth_date, day)
    if age <= rules.child_max_age or period.dependant_condition == "handicape":
        return None
    if period.dependant_condition == "etudiant" and age <= rules.student_max_age:
        return None
    limit = (
        rules.student_max_age if period.dependant_condition == "etudiant" else rules.child_max_age
    )
    return f"enfant de {age} ans : au-delà de {limit} ans"
