"""Fee ceilings: the most a line of a key letter may bill, per unit of coefficient, in dated
versions. A fee above it is not a fee but a typing slip (``99999999``, ``1e9``): it is refused
before anything is written, naming the ceiling, rather than settled with an absurd patient share.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Any

from reimbursement.core.dated import newest_first, parse_date, version_on
from reimbursement.core.money import amount, centimes


@dataclass(frozen=True)
class CeilingVersion:
    id: str
    valid_from: date
    valid_to: date | None
    per_unit: Mapping[str, Decimal]
    """Key letter -> the most billed per unit of coefficient (and per quantity)."""


@dataclass(frozen=True)
class Ceiling:
    """The ceiling of one line: ``limit`` = ``per_unit`` x coefficient x quantity."""

    code: str
    per_unit: Decimal
    limit: Decimal
    version: str


def ceiling_version(data: Mapping[str, Any]) -> CeilingVersion:
    vid = data["id"]
    valid_from = parse_date(data["valid_from"])
    if valid_from is None:
        raise ValueError(f"fee ceiling version {vid} has no valid_from")
    per_unit = {code: amount(value) for code, value in data["key_letters"].items()}
    if any(value <= 0 for value in per_unit.values()):
        raise ValueError(f"fee ceiling version {vid}: ceilings are positive")
    return CeilingVersion(vid, valid_from, parse_date(data.get("valid_to")), per_unit)


class FeeCeilings:
    def __init__(self, versions: Sequence[CeilingVersion]) -> None:
        self.versions = newest_first(versions)

    @classmethod
    def from_data(cls, data: Mapping[str, Any]) -> FeeCeilings:
        return cls([ceiling_version(v) for v in data.get("versions", [])])

    def in_force(self, on: date) -> dict[str, Decimal]:
        """Each key letter's ceiling per unit of coefficient on ``on`` (for a form)."""
        version = version_on(self.versions, on)
        return dict(version.per_unit) if version is not None else {}

    def ceiling(
        self, code: str, on: date, coefficient: Decimal = Decimal(1), quantity: Decimal = Decimal(1)
    ) -> Ceiling | None:
        """The ceiling of a line of ``code`` on ``on``; None when the key letter has none."""
        version = version_on(self.versions, on)
        if version is None or code not in version.per_unit:
            return None
        per_unit = version.per_unit[code]
        return Ceiling(code, per_unit, centimes(per_unit * coefficient * quantity), version.id)

    def exceeded(
        self,
        code: str,
        on: date,
        billed: Decimal,
        coefficient: Decimal = Decimal(1),
        quantity: Decimal = Decimal(1),
    ) -> Ceiling | None:
        """The ceiling ``billed`` is above, else None."""
        found = self.ceiling(code, on, coefficient, quantity)
        return found if found is not None and billed > found.limit else None
