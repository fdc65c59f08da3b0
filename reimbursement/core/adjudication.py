"""Adjudicate one care sheet: rights per date of care, price per line, rate, benefit, holds.

Per line: eligible = min(billed, tariff); benefit = rate x eligible, rounded to the centime half
up; patient share = billed - benefit (fees above the tariff included). A rejected line pays
nothing and says why with a code of the guide's ``rejection-reason`` CodeSystem.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal

from reimbursement.core.anomalies import AnomalyRules
from reimbursement.core.biology import BiologyNomenclature
from reimbursement.core.ceilings import FeeCeilings
from reimbursement.core.medicines import MedicineList
from reimbursement.core.model import (
    CareSheet,
    CodeKind,
    Decision,
    Exoneration,
    Line,
    LineDecision,
    Payee,
    Rights,
)
from reimbursement.core.money import ZERO, centimes
from reimbursement.core.ngap_acts import ActList
from reimbursement.core.rates import RateBook
from reimbursement.core.reasons import RIGHTS_REASONS, Reason
from reimbursement.core.rights import RightsRules, add_months, rights_on
from reimbursement.core.tariffs import TariffBook


@dataclass(frozen=True)
class Books:
    """The reference data in force: everything the core knows besides the sheet itself."""

    tariffs: TariffBook
    medicines: MedicineList
    biology: BiologyNomenclature
    rates: RateBook
    rights: RightsRules
    anomalies: AnomalyRules
    ceilings: FeeCeilings
    acts: ActList = field(default_factory=ActList)
    """The NGAP act list: a line naming an act is held to its coefficient (R10)."""


@dataclass(frozen=True)
class _Price:
    total: Decimal | None
    category: str = ""
    version: str | None = None
    reason: Reason | None = None
    note: str = ""
    own_rate: Decimal | None = None


def adjudicate(sheet: CareSheet, books: Books) -> Decision:
    if not sheet.lines:
        raise ValueError("a care sheet has at least one line")
    first_day = min(line.care_date for line in sheet.lines)
    months = books.rights.filing_deadline_months(sheet.received_on)
    deadline = add_months(first_day, months)
    if sheet.received_on > deadline:
        message = (
            f"feuille reçue le {sheet.received_on}, après le {deadline} "
            f"(premier acte + {months} mois)"
        )
        lines = tuple(
            _rejected(line, None, Reason.FILING_DEADLINE, message) for line in sheet.lines
        )
        closed = Rights(False, Reason.FILING_DEADLINE, message)
        errors = ((Reason.FILING_DEADLINE, message),)
        return Decision("error", lines, closed, sheet.payee, None, errors=errors)
    days = sorted({line.care_date for line in sheet.lines})
    rights = {day: _rights(sheet, day, books) for day in days}
    main_rights = rights[first_day]
    seen = set(sheet.history.settled_acts)
    payee = sheet.payee
    decided: list[tuple[Line, LineDecision]] = []
    for line in sheet.lines:
        decision, forced = _line(sheet, line, rights[line.care_date], books, seen)
        payee = forced or payee
        decided.append((line, decision))
    lines = tuple(decision for _, decision in decided)
    if not any(d.accepted for d in lines) and all(set(d.reasons) <= RIGHTS_REASONS for d in lines):
        closed = next((r for r in rights.values() if not r.open), main_rights)
        message = closed.message if not closed.open else "régime inconnu pour ces droits"
        errors = ((closed.reason or Reason.RIGHTS_CLOSED, message),)
        return Decision("error", lines, closed, payee, closed.regime, errors=errors)
    holds = tuple(books.anomalies.holds(sheet, decided, books.medicines))
    outcome = "queued" if holds and any(d.accepted for d in lines) else "complete"
    regime = next((r.regime for r in rights.values() if r.open), main_rights.regime)
    kept = holds if outcome == "queued" else ()
    return Decision(outcome, lines, main_rights, payee, regime, holds=kept)


def _rights(sheet: CareSheet, day: date, books: Books) -> Rights:
    if sheet.guaranteed is not None and sheet.guaranteed.open:
        return sheet.guaranteed
    return rights_on(sheet.beneficiary, sheet.coverages, day, books.rights)


def _line(
    sheet: CareSheet,
    line: Line,
    rights: Rights,
    books: Books,
    seen: set[tuple[str, date, str, Decimal]],
) -> tuple[LineDecision, Payee | None]:
    if not rights.open or rights.regime is None:
        return _rejected(line, None, rights.reason or Reason.RIGHTS_CLOSED, rights.message), None
    family = books.rates.family(rights.regime)
    price = _price(sheet, line, family, books)
    if price.reason is not None or price.total is None:
        reason = price.reason or Reason.NOT_IN_NOMENCLATURE
        return _rejected(line, price.total, reason, price.note, price.version), None
    act = (sheet.provider.reference, line.care_date, line.code, line.coefficient)
    if line.kind in (CodeKind.NGAP, CodeKind.FLAT_RATE):
        if act in seen:
            note = "même acte, même professionnel, même jour déjà présenté"
            return _rejected(line, price.total, Reason.DUPLICATE, note, price.version), None
        seen.add(act)
    exoneration = _exoneration(sheet, line)
    rate = books.rates.rate(
        rights.regime,
        price.category,
        line.care_date,
        sheet.provider.public_facility,
        exoneration,
        price.own_rate,
    )
    if rate is None:
        note = f"aucun taux pour {price.category} ({rights.regime})"
        return _rejected(line, price.total, Reason.NOT_IN_BASKET, note, price.version), None
    eligible = min(line.billed, price.total)
    benefit = centimes(rate.rate * eligible)
    decision = LineDecision(
        sequence=line.sequence,
        code=line.code,
        billed=line.billed,
        tariff=price.total,
        eligible=eligible,
        rate=rate.rate,
        benefit=benefit,
        patient_share=line.billed - benefit,
        tariff_version=price.version,
        note=rate.why if not price.note else f"{price.note} ; {rate.why}",
    )
    return decision, rate.payee


def _exoneration(sheet: CareSheet, line: Line) -> Exoneration | None:
    if line.exoneration_id is None:
        return None
    return next((e for e in sheet.exonerations if e.condition_id == line.exoneration_id), None)


def _price(sheet: CareSheet, line: Line, family: str, books: Books) -> _Price:
    day = line.care_date
    excluded = books.tariffs.excluded(line.code, family, day)
    if excluded is not None:
        return _Price(None, reason=Reason.NOT_IN_BASKET, note=f"{excluded} : hors panier de soins")
    if line.kind == CodeKind.NGAP:
        tariff = books.tariffs.key_letter(line.code, family, day)
        if tariff is None:
            return _Price(None, reason=Reason.NOT_IN_NOMENCLATURE, note=f"{line.code} inconnu")
        if not tariff.coefficient_min <= line.coefficient <= tariff.coefficient_max:
            note = (
                f"coefficient {line.coefficient} hors de [{tariff.coefficient_min}, "
                f"{tariff.coefficient_max}] pour {line.code}"
            )
            return _Price(None, reason=Reason.ABOVE_LIMIT, note=note, version=tariff.version)
        limit = books.acts.limit(line.act, day) if line.act else None
        if limit is not None and line.coefficient > limit:
            coefficient, most = _plain(line.coefficient), _plain(limit)
            note = f"coefficient {coefficient} > {most} pour l'acte {line.act}"
            return _Price(None, reason=Reason.ABOVE_LIMIT, note=note, version=tariff.version)
        if not tariff.allows(sheet.provider.specialties):
            note = f"{line.code} non autorisé pour la spécialité du professionnel"
            return _Price(
                None, reason=Reason.PRACTITIONER_NOT_ALLOWED, note=note, version=tariff.version
            )
        total = centimes(tariff.value * line.coefficient * line.quantity)
        return _Price(total, tariff.category, tariff.version)
    if line.kind == CodeKind.FLAT_RATE:
        tariff = books.tariffs.flat_rate(line.code, family, day)
        if tariff is None:
            return _Price(None, reason=Reason.NOT_IN_NOMENCLATURE, note=f"{line.code} inconnu")
        return _Price(centimes(tariff.value * line.quantity), tariff.category, tariff.version)
    if line.kind == CodeKind.MEDICINE:
        return _medicine_price(line, family, books)
    return _Price(None, reason=Reason.NOT_IN_NOMENCLATURE, note=f"{line.code} : code inconnu")


def _plain(number: Decimal) -> str:
    """``90.0`` as ``90``, ``0.75`` as ``0.75``."""
    return format(number.normalize(), "f")


def _medicine_price(line: Line, family: str, books: Books) -> _Price:
    day = line.care_date
    medicine = books.medicines.get(line.code, day)
    if medicine is None or not medicine.reimbursable:
        note = "médicament non remboursable" if medicine else f"EAN {line.code} hors liste"
        return _Price(None, reason=Reason.NOT_IN_NOMENCLATURE, note=note)
    prescription = line.prescription
    if prescription is None:
        return _Price(None, reason=Reason.PRESCRIPTION_EXPIRED, note="aucune prescription liée")
    if prescription.status != "active" or day > prescription.valid_until:
        note = f"prescription {prescription.status}, valable jusqu'au {prescription.valid_until}"
        return _Price(None, reason=Reason.PRESCRIPTION_EXPIRED, note=note)
    if line.quantity > prescription.remaining:
        note = f"quantité {line.quantity} > reste à délivrer {prescription.remaining}"
        return _Price(None, reason=Reason.ABOVE_LIMIT, note=note)
    note = ""
    prescribed = books.medicines.get(prescription.code, day)
    if prescription.code != line.code and not (
        prescribed is not None and medicine.same_product_as(prescribed)
    ):
        if not prescription.substitutable:
            note = "ligne non substituable"
        elif prescribed is None or not medicine.substitutes_for(prescribed):
            note = "pas un générique de même DCI, dosage, forme et contenance"
        if note:
            return _Price(None, reason=Reason.SUBSTITUTION_REFUSED, note=note)
        note = f"substitution de {prescribed.name if prescribed else prescription.code}"
    version = books.rates.version_for_family(family, day)
    on_ppv = version is not None and version.medicine_base == "ppv"
    base = medicine.ppv if on_ppv else medicine.pbr
    if base is None:
        note = f"{'PPV' if on_ppv else 'PBR'} non publié dans la liste : aucune base"
        return _Price(None, reason=Reason.NOT_IN_NOMENCLATURE, note=note)
    total = centimes(base * line.quantity)
    return _Price(total, "medicines", medicine.version, note=note, own_rate=medicine.rate)


def _rejected(
    line: Line,
    tariff: Decimal | None,
    reason: Reason,
    note: str,
    version: str | None = None,
) -> LineDecision:
    return LineDecision(
        sequence=line.sequence,
        code=line.code,
        billed=line.billed,
        tariff=tariff,
        eligible=ZERO,
        rate=ZERO,
        benefit=ZERO,
        patient_share=line.billed,
        reasons=(reason,),
        tariff_version=version,
        note=note,
    )
