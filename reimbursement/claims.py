"""Read a FHIR Claim into what adjudication needs, or say precisely which element is missing.

Encoding (the AMO guide): ``item.productOrService`` in the NGAP system (key letter, coefficient
in the ``ngap-coefficient`` extension; the act of the NGAP list it names, if any, as a second
coding in the ``ngap-actes`` system), the ``tnr-forfait`` system (hospital days) or GTIN
(medicine EAN-13, with the MedicationRequest in the R5 ``Claim.item.request`` extension);
``item.net`` is what was charged; ``item.diagnosisSequence`` links a line to the recognised
ALD/ALC Condition; ``payee.type`` = provider means tiers payant.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Any

from fhir_profiles.systems import CARE_SHEET_SYSTEM
from fhir_profiles.systems import ELIGIBILITY_RESPONSE_EXTENSION as ELIGIBILITY
from fhir_profiles.systems import FLAT_RATE_SYSTEM as FLAT_RATES
from fhir_profiles.systems import GTIN_SYSTEMS as GTIN
from fhir_profiles.systems import NGAP_ACTS_SYSTEM as NGAP_ACTS
from fhir_profiles.systems import NGAP_COEFFICIENT_EXTENSION as COEFFICIENT
from fhir_profiles.systems import NGAP_SYSTEM as NGAP
from fse.errors import ErrorCode, Issue, Unprocessable
from fse.fhir_json import NotADecimal, decimal_of
from fse.limits import MAX_AMOUNT, MAX_QUANTITY, MAX_VERSION, amount_problem
from reimbursement.core.model import CodeKind, Payee
from reimbursement.core.money import CENTIME, ZERO, centimes

ITEM_REQUEST = "http://hl7.org/fhir/5.0/StructureDefinition/extension-Claim.item.request"


@dataclass(frozen=True)
class ClaimLine:
    sequence: int
    kind: CodeKind
    code: str
    billed: Decimal
    care_date: date
    coefficient: Decimal
    quantity: Decimal
    condition_id: str | None
    request_id: str | None
    act: str | None = None
    """The NGAP act named beside the key letter (``ngap-actes`` coding)."""


@dataclass(frozen=True)
class ParsedClaim:
    key: str
    identifier: str
    patient_id: str
    provider_ref: str
    facility_ref: str | None
    coverage_id: str | None
    eligibility_id: str | None
    payee: Payee
    lines: tuple[ClaimLine, ...]

    @property
    def care_date(self) -> date:
        return min(line.care_date for line in self.lines)


def _problem(message: str, path: str, issue_type: str = "required") -> Issue:
    return Issue(ErrorCode.CLAIM_NOT_ADJUDICABLE, message, (path,), issue_type=issue_type)


def not_adjudicable(message: str, path: str, issue_type: str = "required") -> Unprocessable:
    """422 FSE-0026 naming the element adjudication cannot do without."""
    issue = _problem(message, path, issue_type)
    return Unprocessable(message, (path,), code=ErrorCode.CLAIM_NOT_ADJUDICABLE, issues=[issue])


def fhir_money(amount: Decimal) -> dict[str, Any]:
    """A FHIR Money in dirhams, to the centime: it leaves as a JSON number with two decimals
    (``150.00``; ``fse.fhir_json`` writes a Decimal as it is)."""
    return {"value": centimes(amount), "currency": "MAD"}


def new_claim(
    rid: str,
    number: str,
    kind: str,
    patient_id: str,
    provider: str,
    coverage_id: str,
    created: str,
    items: list[dict[str, Any]],
) -> dict[str, Any]:
    """A care sheet's Claim as our screens write it (``kind``: professional or pharmacy); the
    total is the sum of the lines' ``net``."""
    total = sum((decimal_of(item["net"]["value"]) for item in items), ZERO)
    return {
        "resourceType": "Claim",
        "id": rid,
        "identifier": [{"system": CARE_SHEET_SYSTEM, "value": number}],
        "status": "active",
        "type": {
            "coding": [{"system": "http://terminology.hl7.org/CodeSystem/claim-type", "code": kind}]
        },
        "use": "claim",
        "patient": {"reference": f"Patient/{patient_id}"},
        "created": created,
        "provider": {"reference": provider},
        "priority": {
            "coding": [
                {
                    "system": "http://terminology.hl7.org/CodeSystem/processpriority",
                    "code": "normal",
                }
            ]
        },
        "insurance": [
            {"sequence": 1, "focal": True, "coverage": {"reference": f"Coverage/{coverage_id}"}}
        ],
        "item": items,
        "total": fhir_money(total),
    }


def reference_id(reference: Any, rtype: str) -> str | None:
    """The id of a literal ``Type/id`` reference of the expected type, else None."""
    if not isinstance(reference, dict):
        return None
    value = reference.get("reference")
    if not isinstance(value, str):
        return None
    parts = value.split("/")
    if len(parts) >= 2 and parts[-2] == rtype and parts[-1]:
        return parts[-1]
    return None


def _out_of_range(message: str, path: str) -> Issue:
    return Issue(ErrorCode.VALUE_OUT_OF_RANGE, f"{path}: {message}", (path,), issue_type="value")


def _money(value: Any, path: str, problems: list[Issue]) -> Decimal:
    """A line's ``net``: the exact amount written, in MAD, positive, to the centime (``150.10``
    and ``150.100`` are the same amount; ``150.105`` is refused, never rounded)."""
    if not isinstance(value, dict) or value.get("value") is None:
        problems.append(_problem("montant facturé manquant", path))
        return ZERO
    try:
        found = decimal_of(value["value"])
    except NotADecimal:
        problems.append(_problem("montant facturé : un nombre attendu", f"{path}.value", "value"))
        return ZERO
    too_large = amount_problem(found)
    if too_large is not None:  # before the database: NUMERIC(14, 2) on PostgreSQL
        problems.append(_out_of_range(too_large, f"{path}.value"))
        return ZERO
    if found < 0 or found != found.quantize(CENTIME):
        problems.append(_problem("montant négatif ou au-delà du centime", f"{path}.value"))
    currency = value.get("currency", "MAD")
    if currency != "MAD":
        problems.append(
            _problem(f"devise {currency} : les montants sont en MAD", f"{path}.currency")
        )
    return found.quantize(CENTIME)


def _factor(value: Any, path: str, problems: list[Issue]) -> Decimal:
    """A line's quantity or coefficient: a number of NUMERIC(10, 2), else a problem (and 1)."""
    try:
        found = decimal_of(value)
    except NotADecimal:
        problems.append(_problem("nombre attendu", path, "value"))
        return Decimal(1)
    if amount_problem(found, MAX_QUANTITY) or found != found.quantize(CENTIME):
        problems.append(
            _out_of_range(f"{value} : au plus {MAX_QUANTITY}, deux décimales au plus", path)
        )
        return Decimal(1)
    return found


def _sequence(value: Any, path: str, problems: list[Issue]) -> int:
    """A line's sequence: a positive whole number of the INTEGER column."""
    if isinstance(value, bool) or not isinstance(value, int) or not 0 < value <= MAX_VERSION:
        problems.append(_problem(f"numéro de ligne {value!r} : entier positif attendu", path))
        return 0
    return value


def _extension(element: dict[str, Any], url: str) -> dict[str, Any] | None:
    return next((e for e in element.get("extension", []) or [] if e.get("url") == url), None)


def _line(claim: dict[str, Any], index: int, problems: list[Issue]) -> ClaimLine | None:
    item = claim["item"][index]
    path = f"Claim.item[{index}]"
    codings = (item.get("productOrService") or {}).get("coding") or []
    coding = next((c for c in codings if c.get("code") and c.get("system") != NGAP_ACTS), None)
    act = next((c for c in codings if c.get("code") and c.get("system") == NGAP_ACTS), None)
    if coding is None:
        message = (
            "lettre clé NGAP manquante : l'acte est coté par lettre clé et coefficient"
            if act is not None
            else "code de l'acte ou du produit manquant"
        )
        problems.append(_problem(message, f"{path}.productOrService"))
        return None
    system = coding.get("system")
    kind = (
        CodeKind.NGAP
        if system == NGAP
        else CodeKind.FLAT_RATE
        if system == FLAT_RATES
        else CodeKind.MEDICINE
        if system in GTIN
        else CodeKind.OTHER
    )
    served = item.get("servicedDate") or (item.get("servicedPeriod") or {}).get("start")
    if not served:
        problems.append(_problem("date des soins manquante", f"{path}.servicedDate"))
        return None
    try:
        care_date = date.fromisoformat(str(served)[:10])
    except ValueError:  # a partial date ("2026-11"): no tariff, rights or deadline to apply
        field = "servicedDate" if item.get("servicedDate") else "servicedPeriod.start"
        problems.append(_problem("date des soins au jour près attendue", f"{path}.{field}"))
        return None
    billed = _money(item.get("net"), f"{path}.net", problems)
    extension = _extension(item, COEFFICIENT)
    coefficient = _factor(
        (extension or {}).get("valueDecimal", 1), f"{path}.extension.valueDecimal", problems
    )
    quantity = _factor((item.get("quantity") or {}).get("value", 1), f"{path}.quantity", problems)
    if quantity <= 0 or coefficient <= 0:
        problems.append(_problem("quantité et coefficient sont positifs", f"{path}.quantity"))
    condition_id = None
    for sequence in item.get("diagnosisSequence", []) or []:
        for diagnosis in claim.get("diagnosis", []) or []:
            if diagnosis.get("sequence") == sequence:
                condition_id = reference_id(diagnosis.get("diagnosisReference"), "Condition")
    request = _extension(item, ITEM_REQUEST)
    request_id = (
        reference_id(request.get("valueReference"), "MedicationRequest") if request else None
    )
    if kind == CodeKind.MEDICINE and request_id is None:
        problems.append(
            _problem(
                "ligne de médicament sans MedicationRequest (extension Claim.item.request)",
                f"{path}.extension",
            )
        )
    return ClaimLine(
        sequence=_sequence(item.get("sequence", index + 1), f"{path}.sequence", problems),
        kind=kind,
        code=str(coding["code"]),
        billed=billed,
        care_date=care_date,
        coefficient=coefficient,
        quantity=quantity,
        condition_id=condition_id,
        request_id=request_id,
        act=str(act["code"]) if act is not None else None,
    )


def _check_lines(lines: list[ClaimLine | None], problems: list[Issue]) -> None:
    """Each line's sequence once (the settlement's lines are keyed by it), and a total the
    money columns hold."""
    first: dict[int, int] = {}
    for index, line in enumerate(lines):
        if line is None or not line.sequence:
            continue
        if line.sequence in first:
            taken = f"Claim.item[{first[line.sequence]}]"
            problems.append(
                _problem(
                    f"numéro de ligne {line.sequence} déjà pris par {taken}",
                    f"Claim.item[{index}].sequence",
                    "duplicate",
                )
            )
        first.setdefault(line.sequence, index)
    total = sum((line.billed for line in lines if line is not None), Decimal(0))
    if total > MAX_AMOUNT:
        problems.append(_out_of_range(f"somme des lignes {total} > {MAX_AMOUNT}", "Claim.item"))


def parse_claim(claim: dict[str, Any]) -> ParsedClaim:
    """Raises 422 (FSE-0026) with one issue per missing element."""
    problems: list[Issue] = []
    identifier = next(
        (
            i.get("value")
            for i in claim.get("identifier", []) or []
            if i.get("system") == CARE_SHEET_SYSTEM and i.get("value")
        ),
        None,
    )
    if identifier is None:
        problems.append(_problem("numéro de feuille de soins manquant", "Claim.identifier"))
    patient_id = reference_id(claim.get("patient"), "Patient")
    if patient_id is None:
        problems.append(_problem("référence Patient/<id> attendue", "Claim.patient"))
    provider = (claim.get("provider") or {}).get("reference")
    if not isinstance(provider, str) or provider.split("/")[0] not in (
        "Practitioner",
        "PractitionerRole",
        "Organization",
    ):
        problems.append(_problem("professionnel (Practitioner/<id>) attendu", "Claim.provider"))
    insurance = next(iter(claim.get("insurance", []) or []), {})
    coverage_id = reference_id(insurance.get("coverage"), "Coverage")
    eligibility = _extension(insurance, ELIGIBILITY)
    eligibility_id = (
        reference_id(eligibility.get("valueReference"), "CoverageEligibilityResponse")
        if eligibility
        else None
    )
    lines = [_line(claim, i, problems) for i in range(len(claim.get("item", []) or []))]
    if not lines:
        problems.append(_problem("au moins une ligne", "Claim.item"))
    _check_lines(lines, problems)
    if problems:
        raise Unprocessable.of(problems, ErrorCode.CLAIM_NOT_ADJUDICABLE)
    payee_code = next(
        (c.get("code") for c in ((claim.get("payee") or {}).get("type") or {}).get("coding", [])),
        None,
    )
    assert identifier is not None and patient_id is not None and isinstance(provider, str)
    return ParsedClaim(
        key=f"{CARE_SHEET_SYSTEM}|{identifier}",
        identifier=identifier,
        patient_id=patient_id,
        provider_ref=provider,
        facility_ref=(claim.get("facility") or {}).get("reference"),
        coverage_id=coverage_id,
        eligibility_id=eligibility_id,
        payee=Payee.PROVIDER if payee_code == "provider" else Payee.INSURED,
        lines=tuple(line for line in lines if line is not None),
    )
