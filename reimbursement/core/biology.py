"""The biology nomenclature (NABM): analyses and their B coefficient, in dated versions."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Any

from reimbursement.core.dated import newest_first, parse_date, version_on
from reimbursement.core.money import amount


@dataclass(frozen=True)
class Analysis:
    code: str
    label: str
    coefficient: Decimal


@dataclass(frozen=True)
class BiologyVersion:
    id: str
    valid_from: date
    valid_to: date | None
    acts: Mapping[str, Analysis]


def biology_version(data: Mapping[str, Any]) -> BiologyVersion:
    valid_from = parse_date(data["valid_from"])
    if valid_from is None:
        raise ValueError(f"{data['id']}: valid_from is required")
    acts = {
        str(a["code"]): Analysis(str(a["code"]), a["label"], amount(a["coefficient"]))
        for a in data["acts"]
    }
    return BiologyVersion(data["id"], valid_from, parse_date(data.get("valid_to")), acts)


class BiologyNomenclature:
    def __init__(self, versions: Sequence[BiologyVersion]) -> None:
        self.versions = newest_first(versions)

    def in_force(self, on: date) -> Mapping[str, Analysis]:
        version = version_on(self.versions, on)
        return version.acts if version else {}
