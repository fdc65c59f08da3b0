"""The biology nomenclature (NABM): analyses and their B coefficient, in dated versions."""

from __future__ import annotations

import unicodedata
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


def _folded(text: str) -> str:
    return "".join(
        c for c in unicodedata.normalize("NFKD", text.casefold()) if not unicodedata.combining(c)
    )


class BiologyNomenclature:
    def __init__(self, versions: Sequence[BiologyVersion]) -> None:
        self.versions = newest_first(versions)

    def in_force(self, on: date) -> Mapping[str, Analysis]:
        version = version_on(self.versions, on)
        return version.acts if version else {}

    def find(self, text: str, on: date) -> list[Analysis]:
        """By code, exact label, or words of the label (accents and case ignored)."""
        acts = self.in_force(on)
        text = text.strip()
        if text in acts:
            return [acts[text]]
        exact = [a for a in acts.values() if _folded(a.label) == _folded(text)]
        if exact:
            return exact
        words = _folded(text).split()
        return [a for a in acts.values() if words and all(w in _folded(a.label) for w in words)]
