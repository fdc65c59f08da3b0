"""The FHIR answers of a decision: ClaimResponse (to the provider and CNSS) and
ExplanationOfBenefit (to the insured), with the standard adjudication categories.

Amounts are Decimals rounded to the centime until here, and stay so: ``claims.fhir_money`` puts them
in the resource as Decimals, which leave as JSON numbers with their two decimals (``150.00``,
never a float's ``150.0``: ``fse.fhir_json``).
"""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Any

from fhir_profiles.systems import CARE_SHEET_SYSTEM, EOB_SYSTEM, RESPONSE_SYSTEM
from fhir_profiles.systems import REJECTION_REASON_SYSTEM as REASON_SYSTEM
from fse.web.formats import mad as mad_fr
from reimbursement.claims import fhir_money
from reimbursement.core.model import Decision, LineDecision, Payee
from reimbursement.core.money import CENTIME
from reimbursement.core.reasons import Reason

ADJUDICATION = "http://terminology.hl7.org/CodeSystem/adjudication"
PAYEE_TYPE = "http://terminology.hl7.org/CodeSystem/payeetype"
PAYMENT_TYPE = "http://terminology.hl7.org/CodeSystem/ex-paymenttype"
REASON_LABELS = {
    Reason.RIGHTS_CLOSED: "Droits fermés à la date des soins",
    Reason.WAITING_PERIOD: "Stage en cours",
    Reason.DEPENDANT_AGE: "Ayant droit hors conditions d'âge",
    Reason.NOT_IN_NOMENCLATURE: "Acte ou produit hors nomenclature",
    Reason.NOT_IN_BASKET: "Acte exclu du panier de soins",
    Reason.DUPLICATE: "Doublon de feuille de soins",
    Reason.FILING_DEADLINE: "Délai de dépôt dépassé",
    Reason.PRACTITIONER_NOT_ALLOWED: "Professionnel non habilité",
    Reason.PRESCRIPTION_EXPIRED: "Prescription expirée ou déjà délivrée",
    Reason.ABOVE_LIMIT: "Quantité ou fréquence au-delà de la norme",
    Reason.PRIOR_APPROVAL: "Accord préalable requis",
    Reason.CEILING_REACHED: "Plafond atteint",
    Reason.HELD_FOR_REVIEW: "Mise en attente pour contrôle",
    Reason.SUBSTITUTION_REFUSED: "Substitution non autorisée",
}


def percent(rate: Decimal) -> Decimal:
    """A rate (``0.70``) as the ``eligpercent`` adjudication's value: ``70.00``, exact."""
    return (rate * 100).quantize(CENTIME)


def reason_concept(reason: Reason) -> dict[str, Any]:
    label = REASON_LABELS[reason]
    return {"coding": [{"system": REASON_SYSTEM, "code": reason.value, "display": label}]}


def _category(code: str) -> dict[str, Any]:
    return {"coding": [{"system": ADJUDICATION, "code": code}]}


def _adjudication(line: LineDecision, held: bool) -> list[dict[str, Any]]:
    benefit: dict[str, Any] = {"category": _category("benefit"), "amount": fhir_money(line.benefit)}
    reasons = list(line.reasons) or ([Reason.HELD_FOR_REVIEW] if held else [])
    if reasons:
        benefit["reason"] = reason_concept(reasons[0])
    return [
        {"category": _category("submitted"), "amount": fhir_money(line.billed)},
        {"category": _category("eligible"), "amount": fhir_money(line.eligible)},
        {"category": _category("eligpercent"), "value": percent(line.rate)},
        benefit,
        {"category": _category("copay"), "amount": fhir_money(line.patient_share)},
    ]


def _totals(decision: Decision) -> list[dict[str, Any]]:
    return [
        {"category": _category("submitted"), "amount": fhir_money(decision.billed)},
        {"category": _category("eligible"), "amount": fhir_money(decision.eligible)},
        {"category": _category("benefit"), "amount": fhir_money(decision.benefit)},
        {"category": _category("copay"), "amount": fhir_money(decision.patient_share)},
    ]


def disposition(decision: Decision) -> str:
    if decision.outcome == "error":
        return "Feuille rejetée : " + " ; ".join(message for _, message in decision.errors)
    total = mad_fr(decision.benefit)
    if decision.outcome == "queued":
        rules = " ; ".join(hold.message for hold in decision.holds)
        return (
            f"Feuille retenue pour contrôle CNSS ({rules}) : rien n'est payé avant la décision "
            f"(montant proposé {total})"
        )
    rejected = sum(1 for line in decision.lines if not line.accepted)
    tail = f", {rejected} ligne(s) rejetée(s)" if rejected else ""
    return f"Feuille réglée : remboursement {total}{tail}"


def _notes(decision: Decision) -> tuple[list[dict[str, Any]], dict[int, int]]:
    notes: list[dict[str, Any]] = []
    by_line: dict[int, int] = {}
    for line in decision.lines:
        if line.note:
            notes.append({"number": len(notes) + 1, "type": "display", "text": line.note})
            by_line[line.sequence] = len(notes)
    for hold in decision.holds:
        evidence = ", ".join(f"{k} = {v}" for k, v in hold.evidence.items())
        text = f"R13 {hold.rule} : {hold.message} ({evidence})"
        notes.append({"number": len(notes) + 1, "type": "display", "text": text})
    return notes, by_line


def _items(decision: Decision, by_line: dict[int, int]) -> list[dict[str, Any]]:
    held = decision.outcome == "queued"
    items = []
    for line in decision.lines:
        item: dict[str, Any] = {
            "itemSequence": line.sequence,
            "adjudication": _adjudication(line, held),
        }
        if line.sequence in by_line:
            item["noteNumber"] = [by_line[line.sequence]]
        items.append(item)
    return items


def payment(amount: Decimal, payment_date: date) -> dict[str, Any]:
    """The payment a response announces: only for money that will move (never while held)."""
    return {
        "type": {"coding": [{"system": PAYMENT_TYPE, "code": "complete"}]},
        "date": payment_date.isoformat(),
        "amount": fhir_money(amount),
    }


def _payee_type(payee: Payee) -> dict[str, Any]:
    code = "provider" if payee == Payee.PROVIDER else "subscriber"
    return {"coding": [{"system": PAYEE_TYPE, "code": code}]}


def claim_response(
    claim: dict[str, Any],
    claim_id: str,
    decision: Decision,
    created: datetime,
    payment_date: date | None,
) -> dict[str, Any]:
    identifier = _care_sheet_number(claim)
    notes, by_line = _notes(decision)
    response: dict[str, Any] = {
        "resourceType": "ClaimResponse",
        "identifier": [{"system": RESPONSE_SYSTEM, "value": identifier}],
        "status": "active",
        "type": claim["type"],
        "use": "claim",
        "patient": claim["patient"],
        "created": created.isoformat(timespec="seconds"),
        "insurer": claim.get("insurer") or {"display": "CNSS"},
        "requestor": claim["provider"],
        "request": {"reference": f"Claim/{claim_id}"},
        "outcome": decision.outcome,
        "disposition": disposition(decision),
        "payeeType": _payee_type(decision.payee),
        "item": _items(decision, by_line),
        "total": _totals(decision),
    }
    if notes:
        response["processNote"] = notes
    if decision.errors:
        response["error"] = [{"code": reason_concept(reason)} for reason, _ in decision.errors]
    if payment_date is not None and decision.benefit > 0 and decision.outcome == "complete":
        response["payment"] = payment(decision.benefit, payment_date)
    return response


def explanation_of_benefit(
    claim: dict[str, Any],
    claim_id: str,
    response_id: str,
    coverage_id: str,
    decision: Decision,
    created: datetime,
    payment_date: date | None,
) -> dict[str, Any]:
    eob: dict[str, Any] = {
        "resourceType": "ExplanationOfBenefit",
        "identifier": [{"system": EOB_SYSTEM, "value": _care_sheet_number(claim)}],
        "status": "active",
        "type": claim["type"],
        "use": "claim",
        "patient": claim["patient"],
        "created": created.isoformat(timespec="seconds"),
        "insurer": claim.get("insurer") or {"display": "CNSS"},
        "provider": claim["provider"],
        "claim": {"reference": f"Claim/{claim_id}"},
        "claimResponse": {"reference": f"ClaimResponse/{response_id}"},
        "outcome": decision.outcome,
        "disposition": disposition(decision),
        "payee": {"type": _payee_type(decision.payee)},
        "insurance": [{"focal": True, "coverage": {"reference": f"Coverage/{coverage_id}"}}],
        "item": [
            {
                "sequence": line.sequence,
                "productOrService": item["productOrService"],
                "servicedDate": item.get("servicedDate"),
                "net": item.get("net"),
                "adjudication": _adjudication(line, decision.outcome == "queued"),
            }
            for line, item in zip(decision.lines, claim["item"], strict=True)
        ],
        "total": _totals(decision),
    }
    if payment_date is not None and decision.benefit > 0 and decision.outcome == "complete":
        eob["payment"] = payment(decision.benefit, payment_date)
    return eob


def _care_sheet_number(claim: dict[str, Any]) -> str:
    return next(
        i["value"] for i in claim.get("identifier", []) if i.get("system") == CARE_SHEET_SYSTEM
    )
