"""Rights and rates of an insured for a date of care (``CoverageEligibilityRequest/$submit``).

The answer is stored; a Claim that names it (extension ``eligibility-response``) is settled on
the rights it confirmed: what the doctor was told at the point of care is what is paid.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

from fhir_profiles.systems import CARE_CATEGORY_SYSTEM as CATEGORY_SYSTEM
from fse import fhir_json
from fse.fhir_api.interactions import FhirService
from fse.resources import check_type
from reimbursement.claims import not_adjudicable, reference_id
from reimbursement.context import beneficiary_of, coverage_periods, exonerations, referenced
from reimbursement.core.adjudication import Books
from reimbursement.core.model import Rights
from reimbursement.core.rights import rights_on
from reimbursement.responses import reason_concept
from reimbursement.schedule import PaymentSchedule

CATEGORIES = {
    "ambulatory": "Soins ambulatoires (TNR)",
    "biology": "Biologie (B)",
    "dental": "Soins dentaires",
    "medicines": "Médicaments (PBR)",
    "hospitalisation": "Hospitalisation",
}
BENEFIT_TYPE = "http://terminology.hl7.org/CodeSystem/benefit-type"


async def check_eligibility(
    fhir: FhirService,
    books: Books,
    schedule: PaymentSchedule,
    request: dict[str, Any],
    now: datetime | None = None,
) -> dict[str, Any]:
    check_type(request, "CoverageEligibilityRequest")
    now = now or datetime.now(UTC)
    patient_id = reference_id(request.get("patient"), "Patient")
    if patient_id is None:
        raise not_adjudicable(
            "référence Patient/<id> attendue", "CoverageEligibilityRequest.patient"
        )
    served = request.get("servicedDate")
    day = date.fromisoformat(str(served)[:10]) if served else now.astimezone(schedule.zone).date()
    request.setdefault("status", "active")
    request.setdefault("purpose", ["validation", "benefit"])
    request.setdefault("created", now.isoformat(timespec="seconds"))
    request.setdefault("insurer", {"display": "CNSS"})
    written = []
    async with fhir.store.transaction() as conn:
        path = "CoverageEligibilityRequest.patient"
        patient = await referenced(fhir, conn, "Patient", patient_id, path)
        periods, _ = await coverage_periods(fhir, conn, patient)
        rights = rights_on(beneficiary_of(patient), periods, day, books.rights)
        stored_request = (await fhir.create(conn, "CoverageEligibilityRequest", request)).stored
        written.append(stored_request)
        response: dict[str, Any] = {
            "resourceType": "CoverageEligibilityResponse",
            "status": "active",
            "purpose": request["purpose"],
            "patient": {"reference": f"Patient/{patient_id}"},
            "servicedDate": day.isoformat(),
            "created": now.isoformat(timespec="seconds"),
            "request": {"reference": f"CoverageEligibilityRequest/{stored_request.id}"},
            "outcome": "complete",
            "disposition": _disposition(rights),
            "insurer": request["insurer"],
        }
        if rights.coverage_id is not None:
            insurance: dict[str, Any] = {
                "coverage": {"reference": f"Coverage/{rights.coverage_id}"},
                "inforce": rights.open,
            }
            if rights.open and rights.regime is not None:
                insurance["item"] = _items(books, rights.regime, day)
                for exoneration in await exonerations(fhir, conn, patient_id):
                    rate = books.rates.exoneration_rate(exoneration, day)
                    if rate is not None:
                        insurance["item"].append(
                            _item(
                                f"{exoneration.kind}-{exoneration.code}",
                                f"{exoneration.kind} {exoneration.code} (lignes liées)",
                                rate.rate,
                            )
                        )
            response["insurance"] = [insurance]
        if not rights.open and rights.reason is not None:
            response["error"] = [{"code": reason_concept(rights.reason)}]
        stored = (await fhir.create(conn, "CoverageEligibilityResponse", response)).stored
        written.append(stored)
    fhir.announce(written)
    assert stored.content is not None
    return fhir_json.loads(stored.content)


def _disposition(rights: Rights) -> str:
    text = rights.message[:1].upper() + rights.message[1:]
    if rights.opens_on is not None:
        text += f" ; droits ouverts à partir du {rights.opens_on.strftime('%d/%m/%Y')}"
    if rights.until is not None and rights.open:
        text += f" ; jusqu'au {rights.until.strftime('%d/%m/%Y')}"
    if rights.regime:
        text += f" (régime {rights.regime})"
    return text


def _items(books: Books, regime: str, day: date) -> list[dict[str, Any]]:
    version = books.rates.version(regime, day)
    if version is None:
        return []
    return [
        _item(category, CATEGORIES.get(category, category), rate)
        for category, rate in version.rates.items()
    ]


def _item(code: str, display: str, rate: Decimal) -> dict[str, Any]:
    return {
        "category": {"coding": [{"system": CATEGORY_SYSTEM, "code": code, "display": display}]},
        "benefit": [
            {
                "type": {"coding": [{"system": BENEFIT_TYPE, "code": "benefit"}]},
                "allowedUnsignedInt": int(rate * 100),
            }
        ],
    }
