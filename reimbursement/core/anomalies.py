"""Anomaly indicators: a rule that fires holds the claim for a CNSS agent instead of paying it.

The indicators are those CNSS controllers use (amo-rules.md §6.1); thresholds are dated data.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Any

from reimbursement.core.dated import newest_first, parse_date, version_on
from reimbursement.core.medicines import MedicineList
from reimbursement.core.model import CareSheet, CodeKind, Hold, Line, LineDecision

RULE_NAMES: dict[str, str] = {
    "before_provider_start": "acte daté avant l'installation du professionnel",
    "practitioner_daily_volume": (
        "volume d'actes du praticien sur la journée très au-dessus de ses pairs"
    ),
    "costly_medicine": "médicament coûteux prescrit hors ALD/ALC reconnue",
    "beneficiary_frequency": "fréquence de consultations du bénéficiaire au-delà de la norme",
    "identical_amounts": (
        "montant identique répété sur de nombreuses feuilles du même professionnel"
    ),
}
"""What each rule is called, in French: the one place every screen and answer names a rule."""


def rule_name(rule: str) -> str:
    """The French name of ``rule``, capitalised for a label; an unknown code stands as itself."""
    name = RULE_NAMES.get(rule, rule)
    return name[:1].upper() + name[1:]


def _hold(
    rule: str, sheet: CareSheet, evidence: dict[str, str], professional: str | None = None
) -> Hold:
    return Hold(rule, RULE_NAMES[rule], evidence, professional or sheet.provider.reference)


@dataclass(frozen=True)
class AnomalyRulesVersion:
    id: str
    valid_from: date
    valid_to: date | None
    settings: Mapping[str, Mapping[str, Any]]


class AnomalyRules:
    def __init__(self, data: Mapping[str, Any]) -> None:
        versions = []
        for v in data["versions"]:
            valid_from = parse_date(v["valid_from"])
            assert valid_from is not None
            settings = {k: s for k, s in v.items() if isinstance(s, dict)}
            versions.append(
                AnomalyRulesVersion(v["id"], valid_from, parse_date(v.get("valid_to")), settings)
            )
        self.versions = newest_first(versions)

    def consultation_window(self, on: date) -> tuple[int, list[str]]:
        """(days, codes) of the beneficiary-frequency indicator, for the service's count."""
        version = version_on(self.versions, on)
        settings = version.settings.get("beneficiary_frequency") if version else None
        if not settings:
            return 0, []
        return int(settings["days"]), list(settings["consultation_codes"])

    def holds(
        self,
        sheet: CareSheet,
        decided: Sequence[tuple[Line, LineDecision]],
        medicines: MedicineList,
    ) -> list[Hold]:
        version = version_on(self.versions, sheet.received_on)
        if version is None:
            return []
        accepted = [line for line, decision in decided if decision.accepted]
        found: list[Hold] = []
        for name, settings in version.settings.items():
            rule = RULES.get(name)
            if rule is None:
                raise ValueError(f"anomaly rule {name!r} in {version.id} is not implemented")
            hold = rule(sheet, accepted, settings, medicines)
            if hold is not None:
                found.append(hold)
        return found


def _before_provider_start(
    sheet: CareSheet, lines: Sequence[Line], _s: Mapping[str, Any], _m: MedicineList
) -> Hold | None:
    start = sheet.provider.start
    early = sorted(line.care_date for line in lines if start and line.care_date < start)
    if not early:
        return None
    return _hold(
        "before_provider_start",
        sheet,
        {"date_des_soins": early[0].isoformat(), "installation": str(start)},
    )


def _practitioner_daily_volume(
    sheet: CareSheet, lines: Sequence[Line], settings: Mapping[str, Any], _m: MedicineList
) -> Hold | None:
    acts = sum(1 for line in lines if line.kind == CodeKind.NGAP)
    if not acts:
        return None
    total = sheet.history.provider_acts_on_day + acts
    limit = Decimal(settings["min_acts"])
    peers = sheet.history.peer_acts_per_provider_day
    if peers is not None:
        limit = max(limit, Decimal(settings["peer_factor"]) * peers)
    if total <= limit:
        return None
    return _hold(
        "practitioner_daily_volume",
        sheet,
        {
            "actes_du_jour": str(total),
            "seuil": str(limit),
            "moyenne_des_pairs": str(peers) if peers is not None else "inconnue",
        },
    )


def _costly_medicine(
    sheet: CareSheet, lines: Sequence[Line], settings: Mapping[str, Any], medicines: MedicineList
) -> Hold | None:
    threshold = Decimal(settings["unit_price_at_least"])
    for line in lines:
        if line.kind != CodeKind.MEDICINE or _exonerated(sheet, line):
            continue
        medicine = medicines.get(line.code, line.care_date)
        price = None if medicine is None else medicine.ppv or medicine.pbr  # PPV may be unknown
        if price is not None and price >= threshold:
            prescriber = line.prescription.prescriber if line.prescription else None
            return _hold(
                "costly_medicine",
                sheet,
                {"ean": line.code, "ppv": str(price), "seuil": str(threshold)},
                prescriber,
            )
    return None


def _exonerated(sheet: CareSheet, line: Line) -> bool:
    """The line is linked to a recognised ALD/ALC in force on its date."""
    return any(
        e.condition_id == line.exoneration_id and e.in_force(line.care_date)
        for e in sheet.exonerations
    )


def _beneficiary_frequency(
    sheet: CareSheet, lines: Sequence[Line], settings: Mapping[str, Any], _m: MedicineList
) -> Hold | None:
    codes = set(settings["consultation_codes"])
    here = sum(1 for line in lines if line.kind == CodeKind.NGAP and line.code in codes)
    total = sheet.history.recent_consultations + here
    if not here or total <= int(settings["max_consultations"]):
        return None
    return _hold(
        "beneficiary_frequency",
        sheet,
        {
            "consultations": str(total),
            "jours": str(settings["days"]),
            "maximum": str(settings["max_consultations"]),
        },
    )


def _identical_amounts(
    sheet: CareSheet, lines: Sequence[Line], settings: Mapping[str, Any], _m: MedicineList
) -> Hold | None:
    repeated = sheet.history.provider_same_amount_today + 1
    if not lines or repeated < int(settings["same_day_claims_at_least"]):
        return None
    billed = sum((line.billed for line in sheet.lines), Decimal(0))
    return _hold(
        "identical_amounts",
        sheet,
        {"montant": str(billed), "feuilles_du_jour": str(repeated)},
    )


RULES = {
    "before_provider_start": _before_provider_start,
    "practitioner_daily_volume": _practitioner_daily_volume,
    "costly_medicine": _costly_medicine,
    "beneficiary_frequency": _beneficiary_frequency,
    "identical_amounts": _identical_amounts,
}
