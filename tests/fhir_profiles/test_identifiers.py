"""AMO identifier rules, with published vectors and exhaustive single-error detection."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from fhir_profiles.identifiers import (
    RULES,
    care_sheet_number,
    care_sheet_number_problem,
    cin_problem,
    ean13_check_digit,
    ean13_problem,
    iban_from_rib,
    iban_problem,
    immatriculation_problem,
    inpe_problem,
    iso7064_mod97_10,
    iso7064_mod97_10_valid,
    rib_key,
    rib_problem,
)

# Published examples: the GS1 code of a medicine in the GMR (amo-rules.md §4) and the IBAN
# registry's examples for Morocco and the United Kingdom.
EAN_GMR = "6118000170143"
IBAN_MA_REGISTRY = "MA64011519000001205000534921"
IBAN_GB_REGISTRY = "GB82WEST12345698765432"


@pytest.mark.parametrize(
    ("rule", "valid", "invalid"),
    [
        (
            immatriculation_problem,
            ["123456789", "000000001"],
            ["12345678", "1234567890", "12345678A", ""],
        ),
        (
            cin_problem,
            ["BE123456", "A123456", "K1"],
            ["be123456", "ABC12345", "BE1234567", "123456", "BE"],
        ),
        (inpe_problem, ["100000019"], ["10000001", "10000001X"]),
        (
            ean13_problem,
            [EAN_GMR, "4006381333931"],
            ["6118000170144", "611800017014", "611800017014X"],
        ),
        (
            rib_problem,
            [IBAN_MA_REGISTRY[4:]],
            ["011519000001205000534922", "0115190000012050005349"],
        ),
        (
            iban_problem,
            [IBAN_MA_REGISTRY, "MA64 0115 1900 0001 2050 0053 4921"],
            [
                "MA65011519000001205000534921",
                "FR7630006000011234567890189",
                "MA6401151900000120500053492",
            ],
        ),
    ],
)
def test_valid_and_invalid_values(
    rule: Callable[[str], str | None], valid: list[str], invalid: list[str]
) -> None:
    for value in valid:
        assert rule(value) is None, value
    for value in invalid:
        message = rule(value)
        assert message, value


def test_messages_are_french_and_say_what_is_wrong() -> None:
    assert ean13_problem("6118000170144") == "le chiffre de contrôle du code EAN-13 est faux"
    assert rib_problem("011519000001205000534922") == "la clé du RIB est fausse"
    assert "9 chiffres" in (immatriculation_problem("1") or "")


def test_ean13_check_digit_of_the_gmr_code() -> None:
    assert ean13_check_digit(EAN_GMR[:12]) == 3


def test_rib_key_and_iban_round_trip() -> None:
    rib = IBAN_MA_REGISTRY[4:]
    assert rib_key(rib[:22]) == rib[22:]
    assert iban_from_rib(rib) == IBAN_MA_REGISTRY
    assert rib_key("0" * 22) == "97"  # the key is never 00


def test_iso7064_mod97_10_on_the_registry_example() -> None:
    rearranged = IBAN_GB_REGISTRY[4:] + IBAN_GB_REGISTRY[:4]
    assert iso7064_mod97_10_valid(rearranged)
    assert iso7064_mod97_10(IBAN_GB_REGISTRY[4:] + "GB") == "82"


def test_care_sheet_numbers() -> None:
    number = care_sheet_number(2026, 1)
    assert number.startswith("FSE-2026-000000001-")
    assert care_sheet_number_problem(number) is None
    assert care_sheet_number_problem("FSE-2026-000001") is not None
    assert (
        care_sheet_number_problem(number[:-2] + f"{(int(number[-2:]) + 1) % 100:02d}") is not None
    )
    assert len({care_sheet_number(2026, n) for n in range(1000)}) == 1000


def _substitutions(value: str, alphabet: str) -> list[str]:
    return [
        value[:i] + c + value[i + 1 :]
        for i, original in enumerate(value)
        if original in alphabet
        for c in alphabet
        if c != original
    ]


@pytest.mark.parametrize(
    ("rule", "value"),
    [
        (ean13_problem, EAN_GMR),
        (rib_problem, IBAN_MA_REGISTRY[4:]),
        (iban_problem, IBAN_MA_REGISTRY),
        (care_sheet_number_problem, care_sheet_number(2026, 123456)),
    ],
)
def test_every_single_digit_error_is_caught(rule: Callable[[str], str | None], value: str) -> None:
    wrong = _substitutions(value, "0123456789")
    assert wrong
    assert [w for w in wrong if rule(w) is None] == []


def test_rules_are_registered_by_the_names_naming_systems_use() -> None:
    assert set(RULES) == {
        "immatriculation",
        "cin",
        "inpe",
        "ean13",
        "rib",
        "iban-ma",
        "care-sheet-number",
    }
