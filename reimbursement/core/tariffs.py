"""The TNR tariff book: key letters, flat rates and acts outside the basket, in dated versions.

A version covers regime families (cnss, public) and a date range. A later version may restate
only some keys (the 2020 CNSS conventions changed C and Cs): a key absent from the newest version
in force keeps its value from the version before, which is how the conventions were written.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Any

from reimbursement.core.dated import in_force, newest_first, parse_date
from reimbursement.core.money import amount


@dataclass(frozen=True)
class Tariff:
    code: str
    value: Decimal
    """Value of one unit (of coefficient, day or session)."""
    category: str
    """ambulatory, biology, dental or hospitalisation: chooses the coverage rate."""
    version: str
    coefficient_min: Decimal = Decimal(1)
    coefficient_max: Decimal = Decimal(1)
    specialties: tuple[str, ...] = ()
    """If set, only these specialties may bill it."""
    not_specialties: tuple[str, ...] = ()

    def allows(self, specialties: Sequence[str]) -> bool:
        if not specialties:
            return True  # unknown specialty: nothing to compare against
        if self.specialties and not set(self.specialties) & set(specialties):
            return False
        return not (self.not_specialties and set(specialties) <= set(self.not_specialties))


@dataclass(frozen=True)
class TariffVersion:
    id: str
    valid_from: date
    valid_to: date | None
    regime_families: frozenset[str]
    key_letters: Mapping[str, Tariff]
    flat_rates: Mapping[str, Tariff]
    excluded: Mapping[str, str]


def _tariff(code: str, version: str, data: Mapping[str, Any]) -> Tariff:
    coefficient = data.get("coefficient", {})
    return Tariff(
        code=code,
        value=amount(data["value"]),
        category=data["category"],
        version=version,
        coefficient_min=amount(coefficient.get("min", "1")),
        coefficient_max=amount(coefficient.get("max", "1")),
        specialties=tuple(data.get("specialties", ())),
        not_specialties=tuple(data.get("not_specialties", ())),
    )


def tariff_version(data: Mapping[str, Any]) -> TariffVersion:
    vid = data["id"]
    valid_from = parse_date(data["valid_from"])
    if valid_from is None:
        raise ValueError(f"tariff version {vid} has no valid_from")
    return TariffVersion(
        id=vid,
        valid_from=valid_from,
        valid_to=parse_date(data.get("valid_to")),
        regime_families=frozenset(data["regime_families"]),
        key_letters={k: _tariff(k, vid, v) for k, v in data.get("key_letters", {}).items()},
        flat_rates={k: _tariff(k, vid, v) for k, v in data.get("flat_rates", {}).items()},
        excluded=dict(data.get("excluded", {})),
    )


class TariffBook:
    def __init__(self, versions: Sequence[TariffVersion]) -> None:
        self.versions = newest_first(versions)
        ids = [v.id for v in self.versions]
        if len(set(ids)) != len(ids):
            raise ValueError(f"tariff versions with the same id: {ids}")

    def _in_force(self, family: str, on: date) -> list[TariffVersion]:
        return [v for v in self.versions if family in v.regime_families and in_force(v, on)]

    def key_letter(self, code: str, family: str, on: date) -> Tariff | None:
        for version in self._in_force(family, on):
            if code in version.key_letters:
                return version.key_letters[code]
        return None

    def flat_rate(self, code: str, family: str, on: date) -> Tariff | None:
        for version in self._in_force(family, on):
            if code in version.flat_rates:
                return version.flat_rates[code]
        return None

    def excluded(self, code: str, family: str, on: date) -> str | None:
        """The label of an act outside the AMO basket, or None."""
        for version in self._in_force(family, on):
            if code in version.excluded:
                return version.excluded[code]
        return None

    def key_letters(self, family: str, on: date) -> dict[str, Tariff]:
        """Every key letter in force (for a UI that searches the nomenclature)."""
        found: dict[str, Tariff] = {}
        for version in reversed(self._in_force(family, on)):
            found.update(version.key_letters)
        return found
