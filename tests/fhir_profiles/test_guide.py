"""The guide's NamingSystems are valid FHIR, each names its rule, and systems resolve to rules."""

from __future__ import annotations

import pytest
from fhir.resources.R4B.namingsystem import NamingSystem

from fhir_profiles.guide import definitions, identifier_problem, identifier_systems, value_set_codes
from fhir_profiles.identifiers import RULES

SID = "https://fse.cnss.ma/fhir/sid"


def test_every_naming_system_is_valid_r4b() -> None:
    naming_systems = definitions("NamingSystem")
    assert len(naming_systems) == len(RULES)
    for resource in naming_systems:
        NamingSystem.model_validate(resource)
        assert sum(1 for u in resource["uniqueId"] if u.get("preferred")) == 1


def test_every_rule_has_exactly_one_naming_system() -> None:
    rules = sorted(system.rule.__name__ for system in set(identifier_systems().values()))
    assert rules == sorted(rule.__name__ for rule in RULES.values())


def test_identifiers_are_checked_by_their_system() -> None:
    assert identifier_problem(f"{SID}/immatriculation", "123456789") is None
    assert identifier_problem(f"{SID}/immatriculation", "12345") is not None
    assert identifier_problem(f"{SID}/cin", "BE123456") is None
    assert identifier_problem(f"{SID}/inpe", "1000000191") is not None
    assert identifier_problem("urn:iso:std:iso:13616", "MA64011519000001205000534921") is None
    assert identifier_problem("https://www.gs1.org/gtin", "6118000170144") is not None
    assert identifier_problem("urn:oid:1.3.160", "6118000190219") is None


def test_systems_that_are_not_ours_are_not_judged() -> None:
    assert identifier_problem("http://example.org/other", "anything") is None


def test_every_definition_is_valid_r4b_and_canonical_urls_are_unique() -> None:
    from fhir.resources.R4B import get_fhir_model_class

    urls = []
    for resource in definitions():
        get_fhir_model_class(resource["resourceType"]).model_validate(resource)
        if "url" in resource:
            urls.append(resource["url"])
        if resource["resourceType"] == "CodeSystem":
            assert resource["count"] == len(resource["concept"])
    assert len(urls) == len(set(urls))


def test_value_sets_expand_to_their_codes() -> None:
    regime = value_set_codes("https://fse.cnss.ma/fhir/ValueSet/regime")
    assert {code for _, code in regime} == {"salaries", "tns", "tadamon", "achamil", "public"}
    relationship = value_set_codes("https://fse.cnss.ma/fhir/ValueSet/beneficiary-relationship")
    assert relationship == {
        ("http://terminology.hl7.org/CodeSystem/subscriber-relationship", code)
        for code in ("self", "spouse", "child")
    }
    with pytest.raises(KeyError):
        value_set_codes("https://fse.cnss.ma/fhir/ValueSet/unknown")


def test_rejection_reasons_are_a_stable_numbered_catalogue() -> None:
    reasons = value_set_codes("https://fse.cnss.ma/fhir/ValueSet/rejection-reason")
    codes = sorted(code for _, code in reasons)
    assert codes == [f"R{n:02d}" for n in range(1, len(codes) + 1)]
    assert {"R01", "R06", "R07"} <= set(codes)  # rights closed, duplicate, filing deadline
