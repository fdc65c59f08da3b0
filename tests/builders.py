"""Builders for the FHIR resources the tests need, in one place."""

from __future__ import annotations

from typing import Any

from fhir_profiles.identifiers import care_sheet_number

SID = "https://fse.cnss.ma/fhir/sid"
IMMAT = f"{SID}/immatriculation"
CIN = f"{SID}/cin"
INPE = f"{SID}/inpe"
FSE = f"{SID}/fse"
NGAP = "https://fse.cnss.ma/fhir/CodeSystem/ngap"
FHIR_JSON = {"content-type": "application/fhir+json"}


def patient(
    immat: str = "123456789",
    cin: str = "BE123456",
    family: str = "Alaoui",
    given: str = "Fatima",
    birth: str = "1978-04-12",
    **extra: Any,
) -> dict[str, Any]:
    return {
        "resourceType": "Patient",
        "identifier": [{"system": IMMAT, "value": immat}, {"system": CIN, "value": cin}],
        "name": [{"family": family, "given": [given]}],
        "gender": "female",
        "birthDate": birth,
        **extra,
    }


def charge_item(patient_id: str, **fields: Any) -> dict[str, Any]:
    """A billed act (NGAP K) on the insured, with ``fields`` added or replaced."""
    return {
        "resourceType": "ChargeItem",
        "status": "billable",
        "code": {"coding": [{"system": NGAP, "code": "K"}]},
        "subject": {"reference": f"Patient/{patient_id}"},
        "occurrenceDateTime": "2026-11-20T10:00:00+01:00",
        "performer": [{"actor": {"reference": "Practitioner/surgeon"}}],
        **fields,
    }


def practitioner(inpe: str = "100000019", family: str = "Benali") -> dict[str, Any]:
    return {
        "resourceType": "Practitioner",
        "identifier": [{"system": INPE, "value": inpe}],
        "name": [{"family": family, "given": ["Karim"]}],
    }


def claim(
    patient_ref: str,
    sequence: int = 1,
    created: str = "2026-11-20",
    act: str = "C",
    amount: int = 150,
    status: str = "active",
) -> dict[str, Any]:
    """A care sheet numbered FSE-2026-<sequence>-<check characters>."""
    return {
        "resourceType": "Claim",
        "identifier": [{"system": FSE, "value": care_sheet_number(2026, sequence)}],
        "status": status,
        "type": {
            "coding": [
                {
                    "system": "http://terminology.hl7.org/CodeSystem/claim-type",
                    "code": "professional",
                }
            ]
        },
        "use": "claim",
        "patient": {"reference": patient_ref},
        "created": created,
        "provider": {"reference": "Practitioner/unknown"},
        "priority": {"coding": [{"code": "normal"}]},
        "insurance": [{"sequence": 1, "focal": True, "coverage": {"reference": "Coverage/c1"}}],
        "item": [
            {
                "sequence": 1,
                "productOrService": {"coding": [{"system": NGAP, "code": act}]},
                "net": {"value": amount, "currency": "MAD"},
            }
        ],
    }


def medication_request(
    patient_ref: str,
    ean: str = "6118000190219",
    line: str = "RX-1-1",
    authored: str = "2026-11-20T09:45:00+01:00",
) -> dict[str, Any]:
    return {
        "resourceType": "MedicationRequest",
        "identifier": [{"system": f"{SID}/ligne-prescription", "value": line}],
        "status": "active",
        "intent": "order",
        "medicationCodeableConcept": {"coding": [{"system": "urn:oid:1.3.160", "code": ean}]},
        "subject": {"reference": patient_ref},
        "authoredOn": authored,
        "requester": {"reference": "Practitioner/prescriber"},
        "dosageInstruction": [{"text": "1 comprimé 3 fois par jour pendant 5 jours"}],
    }


async def create(client: Any, resource: dict[str, Any], **headers: str) -> dict[str, Any]:
    response = await client.post(
        f"/fhir/{resource['resourceType']}", json=resource, headers={**FHIR_JSON, **headers}
    )
    assert response.status_code == 201, response.text
    return response.json()
