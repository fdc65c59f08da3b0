"""The guide's validator: each kind of rule, read from the StructureDefinitions, with its path."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from fhir_profiles.identifiers import care_sheet_number
from fhir_profiles.validator import Problem, profile_of, validate

BASE = "https://fse.cnss.ma/fhir"
SID = f"{BASE}/sid"
DEMO = Path(__file__).resolve().parents[2] / "fse" / "seed" / "demo-bundle.json"


def patient(**changes: Any) -> dict[str, Any]:
    resource = {
        "resourceType": "Patient",
        "identifier": [
            {"system": f"{SID}/immatriculation", "value": "123456789"},
            {"system": f"{SID}/cin", "value": "BE123456"},
        ],
        "name": [{"family": "Alaoui", "given": ["Fatima"]}],
        "gender": "female",
        "birthDate": "1978-04-12",
    }
    resource.update(changes)
    return resource


def coverage(**changes: Any) -> dict[str, Any]:
    resource = {
        "resourceType": "Coverage",
        "extension": [
            {
                "url": f"{BASE}/StructureDefinition/rights-status",
                "valueCoding": {"system": f"{BASE}/CodeSystem/rights-status", "code": "ouverts"},
            }
        ],
        "status": "active",
        "type": {"coding": [{"system": f"{BASE}/CodeSystem/regime", "code": "tns"}]},
        "beneficiary": {"reference": "Patient/p"},
        "subscriber": {"reference": "Patient/p"},
        "relationship": {
            "coding": [
                {
                    "system": "http://terminology.hl7.org/CodeSystem/subscriber-relationship",
                    "code": "self",
                }
            ]
        },
        "period": {"start": "2024-01-01"},
        "payor": [{"reference": "Organization/cnss"}],
    }
    resource.update(changes)
    return resource


def where(problems: list[Problem]) -> list[tuple[str, str]]:
    return [(p.path, p.rule) for p in problems]


def test_demo_data_conforms() -> None:
    for entry in json.loads(DEMO.read_text(encoding="utf-8"))["entry"]:
        assert validate(entry["resource"]) == [], entry["resource"]["resourceType"]


def test_required_elements_relative_to_their_parent() -> None:
    no_birth_date = {k: v for k, v in patient().items() if k != "birthDate"}
    assert where(validate(no_birth_date)) == [("Patient.birthDate", "cardinality")]
    nameless = patient(name=[{"given": ["Fatima"]}, {"family": "Alaoui"}])
    assert where(validate(nameless)) == [("Patient.name[0].family", "cardinality")]


def test_identifier_slices_count_by_system() -> None:
    twice = patient()
    twice["identifier"].append({"system": f"{SID}/immatriculation", "value": "987654321"})
    assert where(validate(twice)) == [("Patient.identifier", "slice")]
    practitioner = {
        "resourceType": "Practitioner",
        "name": [{"family": "Benali"}],
        "identifier": [{"system": f"{SID}/cin", "value": "A1"}],
    }
    problems = validate(practitioner)
    assert where(problems) == [("Practitioner.identifier", "slice")]
    assert "INPE" in problems[0].message


def test_required_binding_and_invariant() -> None:
    wrong = coverage(
        type={"coding": [{"system": f"{BASE}/CodeSystem/regime", "code": "ramed"}]},
        period={"start": "2025-01-01", "end": "2024-12-31"},
    )
    assert where(validate(wrong)) == [("Coverage.type", "binding"), ("Coverage", "invariant")]
    assert "amo-cov-1" in validate(wrong)[1].message


def test_identifiers_and_codings_are_checked_by_their_naming_system() -> None:
    bad_cin = patient()
    bad_cin["identifier"][1]["value"] = "be123456"
    assert where(validate(bad_cin)) == [("Patient.identifier[1].value", "identifier")]
    request = {
        "resourceType": "MedicationRequest",
        "status": "active",
        "intent": "order",
        "subject": {"reference": "Patient/p"},
        "medicationCodeableConcept": {
            "coding": [{"system": "urn:oid:1.3.160", "code": "6118000170144"}]
        },
        "requester": {"reference": "Practitioner/d"},
        "authoredOn": "2026-11-20",
        "dosageInstruction": [{"text": "1 comprimé le soir"}],
    }
    assert where(validate(request)) == [
        ("MedicationRequest.medicationCodeableConcept.coding[0].code", "identifier")
    ]


def test_claim_needs_one_valid_care_sheet_number() -> None:
    claim = {
        "resourceType": "Claim",
        "item": [{"sequence": 1}],
        "identifier": [{"system": f"{SID}/fse", "value": care_sheet_number(2026, 7)}],
    }
    assert validate(claim) == []
    assert where(validate(claim | {"identifier": []})) == [("Claim.identifier", "slice")]
    assert where(validate(claim | {"item": []})) == [("Claim.item", "cardinality")]


@pytest.mark.parametrize(
    ("claimed", "expected"),
    [
        ([], [f"{BASE}/StructureDefinition/amo-patient|1.0.0"]),
        (
            [f"{BASE}/StructureDefinition/amo-patient|1.0.0"],
            [f"{BASE}/StructureDefinition/amo-patient|1.0.0"],
        ),
        (["http://example.org/other-profile"], [f"{BASE}/StructureDefinition/amo-patient|1.0.0"]),
    ],
)
def test_profile_chosen_from_meta_or_by_type(claimed: list[str], expected: list[str]) -> None:
    resource = patient(meta={"profile": claimed}) if claimed else patient()
    assert validate(resource) == []
    assert [profile_of(resource)] == expected


def test_unknown_version_of_our_profile_is_refused() -> None:
    resource = patient(meta={"profile": [f"{BASE}/StructureDefinition/amo-patient|9.9.9"]})
    assert where(validate(resource)) == [("Patient.meta.profile[0]", "profile")]


def test_types_without_profile_get_identifier_rules_only() -> None:
    payment = {
        "resourceType": "PaymentReconciliation",
        "status": "active",
        "identifier": [{"system": f"{SID}/inpe", "value": "12"}],
    }
    assert where(validate(payment)) == [("PaymentReconciliation.identifier[0].value", "identifier")]
    assert profile_of(payment) is None


def test_a_prescription_names_its_medicine_by_ean() -> None:
    request = {
        "resourceType": "MedicationRequest",
        "status": "active",
        "intent": "order",
        "subject": {"reference": "Patient/p"},
        "medicationCodeableConcept": {"text": "Paracétamol 500 mg"},
        "requester": {"reference": "Practitioner/d"},
        "authoredOn": "2026-11-20",
        "dosageInstruction": [{"text": "1 comprimé le soir"}],
    }
    problems = validate(request)
    assert where(problems) == [("MedicationRequest", "invariant")]
    assert "EAN-13" in problems[0].message and "amo-mr-1" in problems[0].message


def test_an_act_is_an_ngap_key_letter_with_its_coefficient() -> None:
    act = {
        "resourceType": "ChargeItem",
        "status": "billable",
        "code": {"coding": [{"system": f"{BASE}/CodeSystem/ngap", "code": "K"}]},
        "subject": {"reference": "Patient/p"},
        "occurrenceDateTime": "2026-11-20",
        "performer": [{"actor": {"reference": "Practitioner/d"}}],
        "quantity": {"value": 30},
    }
    assert validate(act) == []
    unknown = act | {"code": {"coding": [{"system": f"{BASE}/CodeSystem/ngap", "code": "ZZ"}]}}
    assert where(validate(unknown)) == [("ChargeItem.code", "binding")]
    assert where(validate({k: v for k, v in act.items() if k != "quantity"})) == [
        ("ChargeItem.quantity", "cardinality")
    ]


def test_validation_does_not_change_the_resource() -> None:
    resource = patient()
    before = copy.deepcopy(resource)
    validate(resource)
    assert resource == before


def test_guide_extensions_are_checked_where_they_sit() -> None:
    wrong = coverage()
    wrong["extension"][0]["valueCoding"]["code"] = "peut-etre"
    assert where(validate(wrong)) == [("Coverage.extension[0].valueCoding", "binding")]
    empty = coverage()
    del empty["extension"][0]["valueCoding"]
    assert where(validate(empty)) == [("Coverage.extension[0].value[x]", "cardinality")]


def test_a_coverage_states_its_rights_status_once() -> None:
    missing = coverage(extension=[])
    assert where(validate(missing)) == [("Coverage.extension", "slice")]
    twice = coverage()
    twice["extension"].append(copy.deepcopy(twice["extension"][0]))
    assert where(validate(twice)) == [("Coverage.extension", "slice")]


def test_exonerating_condition_needs_its_period_and_category() -> None:
    condition = {
        "resourceType": "Condition",
        "verificationStatus": {
            "coding": [
                {
                    "system": "http://terminology.hl7.org/CodeSystem/condition-ver-status",
                    "code": "confirmed",
                }
            ]
        },
        "category": [{"coding": [{"system": f"{BASE}/CodeSystem/exoneration", "code": "ALC"}]}],
        "code": {"coding": [{"system": "http://hl7.org/fhir/sid/icd-10", "code": "C50"}]},
        "subject": {"reference": "Patient/p"},
        "extension": [
            {
                "url": f"{BASE}/StructureDefinition/exoneration-period",
                "valuePeriod": {"start": "2026-01-01"},
            }
        ],
    }
    assert validate(condition) == []
    assert where(validate(condition | {"extension": []})) == [("Condition.extension", "slice")]
    provisional = copy.deepcopy(condition)
    provisional["verificationStatus"]["coding"][0]["code"] = "provisional"
    assert where(validate(provisional)) == [("Condition.verificationStatus", "pattern")]


def test_the_guide_itself_validates() -> None:
    """Definitions carry extension URLs as their own url: they are not extensions."""
    from fhir_profiles.guide import definitions

    for resource in definitions():
        assert validate(resource) == [], resource["id"]
