"""Coverage rates per regime family, care category and facility; ALD/ALC exoneration rates."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Any

from reimbursement.core.dated import newest_first, parse_date, version_on
from reimbursement.core.model import Exoneration, Payee
from reimbursement.core.money import amount

FULL = Decimal("1.00")
CATEGORY_LABELS = {
    "ambulatory": "ambulatoire",
    "biology": "biologie",
    "dental": "dentaire",
    "medicines": "médicaments",
    "hospitalisation": "hospitalisation",
}


@dataclass(frozen=True)
class RateVersion:
    id: str
    valid_from: date
    valid_to: date | None
    family: str
    medicine_base: str
    """pbr (CNSS) or ppv (public sector: 70 % of the public price)."""
    rates: Mapping[str, Decimal]
    public_facility_rates: Mapping[str, Decimal]
    free_in_public_facilities: frozenset[str]


@dataclass(frozen=True)
class ExonerationVersion:
    id: str
    valid_from: date
    valid_to: date | None
    defaults: Mapping[str, Decimal]
    by_condition: Mapping[str, Mapping[str, Decimal]]


@dataclass(frozen=True)
class Rate:
    rate: Decimal
    payee: Payee | None
    """Set when the rule decides who is paid (Tadamon in a public facility: the facility)."""
    version: str
    why: str


class RateBook:
    def __init__(self, data: Mapping[str, Any]) -> None:
        self.families: dict[str, str] = dict(data["regimes"])
        self.versions = newest_first(_rate_version(v) for v in data["versions"])
        self.exonerations = newest_first(_exoneration_version(v) for v in data["exonerations"])

    def family(self, regime: str) -> str:
        try:
            return self.families[regime]
        except KeyError:
            raise ValueError(f"regime {regime!r} has no rate family") from None

    def version(self, regime: str, on: date) -> RateVersion | None:
        return self.version_for_family(self.family(regime), on)

    def version_for_family(self, family: str, on: date) -> RateVersion | None:
        return version_on([v for v in self.versions if v.family == family], on)

    def rate(
        self,
        regime: str,
        category: str,
        on: date,
        public_facility: bool,
        exoneration: Exoneration | None = None,
        own_rate: Decimal | None = None,
    ) -> Rate | None:
        """Precedence: free care in public facilities, then public-facility rates, then the
        higher of the exoneration rate and the base (the product's own rate if the list gives
        one, else the regime's rate for the category)."""
        version = self.version(regime, on)
        if version is None or category not in version.rates:
            return None
        if public_facility and regime in version.free_in_public_facilities:
            return Rate(FULL, Payee.PROVIDER, version.id, f"{regime} : gratuit dans le public")
        if public_facility and category in version.public_facility_rates:
            rate = version.public_facility_rates[category]
            return Rate(rate, None, version.id, "établissement public")
        if own_rate is not None:
            base = Rate(own_rate, None, version.id, "taux de la liste des médicaments")
        else:
            base = Rate(
                version.rates[category],
                None,
                version.id,
                f"taux {CATEGORY_LABELS.get(category, category)}",
            )
        if exoneration is not None:
            exonerated = self.exoneration_rate(exoneration, on)
            if exonerated is not None and exonerated.rate > base.rate:
                return exonerated
        return base

    def exoneration_rate(self, exoneration: Exoneration, on: date) -> Rate | None:
        if not exoneration.in_force(on):
            return None
        version = version_on(self.exonerations, on)
        if version is None or exoneration.kind not in version.defaults:
            return None
        by_code = version.by_condition.get(exoneration.kind, {})
        rate = version.defaults[exoneration.kind]
        code = exoneration.code
        while code:  # ICD-10 is hierarchical: E11.9 falls under E11
            if code in by_code:
                rate = by_code[code]
                break
            code = code[:-1].rstrip(".")
        return Rate(rate, None, version.id, f"{exoneration.kind} {exoneration.code}")


def _rate_version(data: Mapping[str, Any]) -> RateVersion:
    return RateVersion(
        id=data["id"],
        valid_from=_required_date(data),
        valid_to=parse_date(data.get("valid_to")),
        family=data["regime_family"],
        medicine_base=data["medicine_base"],
        rates={k: amount(v) for k, v in data["rates"].items()},
        public_facility_rates={k: amount(v) for k, v in data["public_facility_rates"].items()},
        free_in_public_facilities=frozenset(data["free_in_public_facilities"]),
    )


def _exoneration_version(data: Mapping[str, Any]) -> ExonerationVersion:
    kinds = [k for k in data if k in ("ALD", "ALC")]
    return ExonerationVersion(
        id=data["id"],
        valid_from=_required_date(data),
        valid_to=parse_date(data.get("valid_to")),
        defaults={k: amount(data[k]["default"]) for k in kinds},
        by_condition={
            k: {c: amount(r) for c, r in data[k].get("conditions", {}).items()} for k in kinds
        },
    )


def _required_date(data: Mapping[str, Any]) -> date:
    found = parse_date(data.get("valid_from"))
    if found is None:
        raise ValueError(f"{data.get('id')}: valid_from is required")
    return found
