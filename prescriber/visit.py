"""The visit form: what the doctor typed, checked line by line (pure: no I/O).

The form has a fixed number of rows per section so it works without JavaScript; empty rows are
ignored. Errors are keyed by field name so the page shows each one next to its field, with the
input kept.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from decimal import Decimal, InvalidOperation

from fse.store.indexing import normalize
from fse.web.formats import mad, number_fr
from reimbursement.act_search import resolve_act, said, unsound_why
from reimbursement.core.biology import Analysis
from reimbursement.core.medicines import Medicine
from reimbursement.core.money import centimes
from reimbursement.core.ngap_acts import Act, ActListVersion
from reimbursement.core.tariffs import Tariff
from reimbursement.medicine_search import index_of, resolve

ACT_ROWS, MEDICINE_ROWS, LAB_ROWS = 4, 5, 3
COTATION = re.compile(r"^([A-Za-z]+)\s*(\d+(?:[.,]\d+)?)?$")


def cotation(text: str, key_letters: dict[str, Tariff]) -> tuple[str, str] | None:
    """ "K30" -> ("K", "30"), "Cs" -> ("Cs", ""), "cs" -> ("Cs", ""): the key letter as the
    nomenclature spells it, and the coefficient written after it (if any)."""
    found = COTATION.match(text.strip())
    if found is None:
        return None
    by_upper = {code.upper(): code for code in key_letters}
    letter = by_upper.get(found[1].upper())
    return (letter, found[2] or "") if letter else None


@dataclass(frozen=True)
class ActLine:
    code: str
    """The key letter, typed by the doctor: what prices the line against the TNR."""
    coefficient: Decimal
    fee: Decimal
    ald: bool
    ngap_act: Act | None = None
    """The act of the NGAP list the line names, if the doctor chose one."""


@dataclass(frozen=True)
class MedicineLine:
    medicine: Medicine
    dosage: str
    days: int
    boxes: int
    not_substitutable: bool
    ald: bool
    label: str = ""
    """How the screens name the product (``MedicineIndex.label``)."""


@dataclass(frozen=True)
class LabLine:
    label: str
    coefficient: Decimal
    note: str
    ald: bool


@dataclass
class Visit:
    acts: list[ActLine] = field(default_factory=list)
    medicines: list[MedicineLine] = field(default_factory=list)
    labs: list[LabLine] = field(default_factory=list)
    errors: dict[str, str] = field(default_factory=dict)
    chosen: dict[str, str] = field(default_factory=dict)
    """Per medicine or act field, what it names, shown under what was typed."""

    @property
    def ok(self) -> bool:
        return not self.errors and bool(self.acts or self.medicines or self.labs)


def find_analysis(text: str, analyses: Mapping[str, Analysis]) -> list[Analysis]:
    """By code, exact label, or words of the label (accents and case ignored)."""
    text = text.strip()
    if text in analyses:
        return [analyses[text]]
    exact = [a for a in analyses.values() if normalize(a.label) == normalize(text)]
    if exact:
        return exact
    words = normalize(text).split()
    return [a for a in analyses.values() if words and all(w in normalize(a.label) for w in words)]


def find_medicine(text: str, medicines: Mapping[str, Medicine]) -> tuple[Medicine | None, str]:
    """By EAN-13, exact name, start of the name, or whole words of the name, DCI and strength
    (``reimbursement.medicine_search``): the one product, or why not."""
    return resolve(text, medicines)


def _decimal(text: str) -> Decimal | None:
    try:
        value = Decimal(text.replace(",", ".").strip())
    except InvalidOperation:
        return None
    return value if value.is_finite() else None


def _integer(text: str, low: int, high: int) -> int | None:
    return int(text) if text.strip().isdigit() and low <= int(text) <= high else None


def coefficient_rule(code: str, low: Decimal, high: Decimal) -> str:
    """What the coefficient of ``code`` may be, in French (a fixed one says so)."""
    if low == high:
        return f"Coefficient fixé à {number_fr(low)} pour {code} : laissez le champ vide."
    return f"Coefficient entre {number_fr(low)} et {number_fr(high)} pour {code}."


def _above_ceiling(code: str, coefficient: Decimal, fee: Decimal, per_unit: Decimal) -> str:
    limit = centimes(per_unit * coefficient)
    written = code if coefficient == 1 else f"{code}{coefficient.normalize():f}"
    unit = f" ({mad(per_unit)} par unité de coefficient)" if coefficient != 1 else ""
    return (
        f"Honoraires de {mad(fee)} au-delà du plafond de {mad(limit)} pour {written}{unit} : "
        "vérifiez le montant saisi."
    )


def _act_line(
    p: str,
    form: dict[str, str],
    key_letters: dict[str, Tariff],
    ceilings: Mapping[str, Decimal],
    acts: ActListVersion | None,
    visit: Visit,
) -> ActLine | None:
    """One act row: its cotation (key letter and coefficient), fee, and optional NGAP act.

    The act's list coefficient is the default coefficient of a key letter that takes one, and
    the most the line may have, when it is sound (``Act.limit``). The key letter stays the one
    typed: the list gives none, and its chapter letter is not one."""
    errors = visit.errors
    code, coef, fee, typed_act = (
        form.get(f"{p}-{k}", "").strip() for k in ("code", "coef", "honoraires", "ngap")
    )
    if not (code or fee or typed_act):
        return None
    act = None
    if typed_act:
        act, why = resolve_act(typed_act, acts)
        if act is None:
            errors[f"{p}-ngap"] = why
            return None
        visit.chosen[f"{p}-ngap"] = said(act)
        if not code:
            errors[f"{p}-code"] = (
                f"Indiquez la lettre clé de l'acte {act.code} (K, Z, D…) : "
                "la liste NGAP ne la donne pas."
            )
            return None
    parsed = cotation(code, key_letters)
    if parsed is None:
        errors[f"{p}-code"] = (
            "Cotation NGAP : lettre clé et coefficient, par exemple C, Cs, K30, Z15."
        )
        return None
    code, written = parsed
    tariff = key_letters[code]
    coef = coef or written
    if not coef and act is not None and tariff.coefficient_min != tariff.coefficient_max:
        if act.limit is None:
            errors[f"{p}-coef"] = (
                f"Coefficient à saisir pour l'acte {act.code} : {unsound_why(act)}."
            )
            return None
        coef = str(act.limit)
    coefficient = _decimal(coef) if coef else Decimal(1)
    if coefficient is None or not tariff.coefficient_min <= coefficient <= tariff.coefficient_max:
        errors[f"{p}-coef"] = coefficient_rule(code, tariff.coefficient_min, tariff.coefficient_max)
        return None
    if act is not None and act.limit is not None and coefficient > act.limit:
        errors[f"{p}-coef"] = (
            f"Coefficient {number_fr(coefficient)} au-delà de {number_fr(act.limit)}, "
            f"celui de l'acte {act.code} dans la liste NGAP."
        )
        return None
    amount = _decimal(fee)
    if amount is None or amount < 0 or amount.as_tuple().exponent < -2:  # type: ignore[operator]
        errors[f"{p}-honoraires"] = "Honoraires en dirhams, par exemple 150 ou 150,00."
        return None
    per_unit = ceilings.get(code)
    if per_unit is not None and amount > centimes(per_unit * coefficient):
        errors[f"{p}-honoraires"] = _above_ceiling(code, coefficient, amount, per_unit)
        return None
    return ActLine(code, coefficient, amount.quantize(Decimal("0.01")), False, act)


def read_visit(
    form: dict[str, str],
    key_letters: dict[str, Tariff],
    medicines: Mapping[str, Medicine],
    has_exoneration: bool,
    analyses: Mapping[str, Analysis] | None = None,
    ceilings: Mapping[str, Decimal] | None = None,
    acts: ActListVersion | None = None,
) -> Visit:
    """``ceilings``: the fee ceiling of each key letter per unit of coefficient, in force today
    (``FeeCeilings.in_force``): a fee above it is refused here, as ``$submit`` would. ``acts``:
    the NGAP act list in force, for the optional act of each line (``_act_line``)."""
    visit = Visit()
    errors = visit.errors

    def ald(name: str) -> bool:
        checked = form.get(name) == "on"
        if checked and not has_exoneration:
            errors[name] = "Ce patient n'a pas d'ALD/ALC reconnue en cours."
        return checked

    for i in range(1, ACT_ROWS + 1):
        line = _act_line(f"acte-{i}", form, key_letters, ceilings or {}, acts, visit)
        if line is not None:
            visit.acts.append(replace(line, ald=ald(f"acte-{i}-ald")))

    for i in range(1, MEDICINE_ROWS + 1):
        p = f"med-{i}"
        typed = form.get(f"{p}-produit", "").strip()
        if not typed:
            continue
        medicine, why = find_medicine(typed, medicines)
        if medicine is None or not medicine.reimbursable:
            errors[f"{p}-produit"] = why or "Ce médicament n'est pas remboursable."
            continue
        named = visit.chosen[f"{p}-produit"] = index_of(medicines).label(medicine)
        dosage = form.get(f"{p}-posologie", "").strip()
        if not dosage:
            errors[f"{p}-posologie"] = "Indiquez la posologie."
        days = _integer(form.get(f"{p}-duree", ""), 1, 365)
        if days is None:
            errors[f"{p}-duree"] = "Durée du traitement en jours (1 à 365)."
        boxes = _integer(form.get(f"{p}-quantite", ""), 1, 20)
        if boxes is None:
            errors[f"{p}-quantite"] = "Nombre de boîtes (1 à 20)."
        if dosage and days is not None and boxes is not None:
            visit.medicines.append(
                MedicineLine(
                    medicine,
                    dosage,
                    days,
                    boxes,
                    form.get(f"{p}-ns") == "on",
                    ald(f"{p}-ald"),
                    named,
                )
            )

    for i in range(1, LAB_ROWS + 1):
        p = f"bio-{i}"
        label, coef = form.get(f"{p}-libelle", "").strip(), form.get(f"{p}-coef", "").strip()
        if not (label or coef):
            continue
        tariff = key_letters.get("B")
        found = find_analysis(label, analyses or {}) if label else []
        if not coef and len(found) == 1:
            label, coef = found[0].label, str(found[0].coefficient)
        coefficient = _decimal(coef)
        if not label:
            errors[f"{p}-libelle"] = "Indiquez l'analyse demandée."
        elif not coef and len(found) > 1:
            names = ", ".join(a.label for a in found[:5])
            errors[f"{p}-libelle"] = f"Plusieurs analyses correspondent ({names}) : précisez."
        elif (
            tariff is None
            or coefficient is None
            or not (tariff.coefficient_min <= coefficient <= tariff.coefficient_max)
        ):
            errors[f"{p}-coef"] = "Analyse hors nomenclature : indiquez sa cotation en B (ex. 120)."
        else:
            note = form.get(f"{p}-note", "").strip()
            visit.labs.append(LabLine(label, coefficient, note, ald(f"{p}-ald")))

    if not errors and not (visit.acts or visit.medicines or visit.labs):
        errors["feuille"] = (
            "La feuille est vide : ajoutez au moins un acte, un médicament ou une analyse."
        )
    return visit
