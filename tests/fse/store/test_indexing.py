"""Index extraction is pure: resource in, rows out, one rule per parameter type."""

from __future__ import annotations

from decimal import Decimal

from fse.store.indexing import extract, normalize, reference_of, values_at
from tests.builders import CIN, IMMAT, claim, patient


def test_identifiers_become_tokens_and_unique_claims() -> None:
    rows = extract("Patient", patient())
    tokens = {(r["param"], r["system"], r["code"]) for r in rows.token}
    assert ("identifier", IMMAT, "123456789") in tokens
    assert ("identifier", CIN, "BE123456") in tokens
    assert ("gender", None, "female") in tokens
    assert rows.identifiers == sorted([(IMMAT, "123456789"), (CIN, "BE123456")])


def test_names_are_normalised_for_search_and_kept_exact() -> None:
    rows = extract("Patient", patient(family="El Idrissi", given="Élodie"))
    strings = {(r["param"], r["value"], r["exact"]) for r in rows.string}
    assert ("given", "elodie", "Élodie") in strings
    assert ("family", "el idrissi", "El Idrissi") in strings
    assert normalize("  ÉLODIE   Nadia ") == "elodie nadia"


def test_dates_and_references_of_a_claim() -> None:
    rows = extract("Claim", claim("Patient/p1", created="2026-11-20"))
    assert [(r["param"], r["low"].isoformat()) for r in rows.date] == [
        ("created", "2026-11-20T00:00:00+00:00")
    ]
    refs = {(r["param"], r["target_type"], r["target_id"]) for r in rows.reference}
    assert ("patient", "Patient", "p1") in refs
    assert ("provider", "Practitioner", "unknown") in refs


def test_codeable_concepts_give_one_token_per_coding() -> None:
    resource = {
        "resourceType": "Claim",
        "status": "active",
        "item": [
            {
                "productOrService": {
                    "coding": [{"system": "a", "code": "1"}, {"system": "b", "code": "2"}]
                }
            }
        ],
    }
    assert values_at(resource, "item.productOrService.coding.code") == ["1", "2"]


def test_references_that_are_not_literal_are_not_indexed() -> None:
    assert reference_of({"reference": "urn:uuid:1234"}) is None
    assert reference_of({"identifier": {"value": "x"}}) is None
    assert reference_of({"reference": "https://x/fhir/Patient/9/_history/2"}) == ("Patient", "9")


def test_quantities_are_decimals() -> None:
    rows = extract(
        "ChargeItem",
        {"resourceType": "ChargeItem", "quantity": {"value": 2.5}, "factorOverride": 1.5},
    )
    assert {(r["param"], r["value"]) for r in rows.quantity} == {
        ("quantity", Decimal("2.5")),
        ("factor-override", Decimal("1.5")),
    }


def test_duplicate_values_give_one_row() -> None:
    resource = patient()
    resource["name"].append(dict(resource["name"][0]))
    rows = extract("Patient", resource)
    assert len([r for r in rows.string if r["param"] == "family"]) == 1


def test_types_without_unique_identifiers_claim_none() -> None:
    audit = {"resourceType": "AuditEvent", "identifier": [{"system": "s", "value": "v"}]}
    assert extract("AuditEvent", audit).identifiers == []
