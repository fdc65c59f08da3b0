"""The reference data files load, agree with the guide, and carry what the engine needs."""

from __future__ import annotations

import json
from datetime import date
from decimal import Decimal
from pathlib import Path

import pytest

from fhir_profiles.guide import code_systems
from fhir_profiles.identifiers import ean13_problem
from fhir_profiles.systems import REJECTION_REASON_SYSTEM as SYSTEM
from reimbursement.core.reasons import Reason
from reimbursement.reference_data import DATA, load_books


def test_reason_codes_are_the_guide_code_system() -> None:
    concepts = {c["code"] for c in code_systems()[SYSTEM]["concept"]}
    assert concepts == {reason.value for reason in Reason}


def test_every_ngap_key_letter_of_the_guide_has_a_2006_tariff() -> None:
    books = load_books()
    guide = {
        c["code"] for c in code_systems()["https://fse.cnss.ma/fhir/CodeSystem/ngap"]["concept"]
    }
    priced = set(books.tariffs.key_letters("cnss", date(2026, 11, 20)))
    assert guide == priced


def test_flat_rates_and_exclusions_are_the_guide_code_system() -> None:
    tnr = json.loads((DATA / "tnr" / "2006-09-01-tnr.json").read_text(encoding="utf-8"))
    guide = code_systems()["https://fse.cnss.ma/fhir/CodeSystem/tnr-forfait"]["concept"]
    assert {c["code"] for c in guide} == set(tnr["flat_rates"]) | set(tnr["excluded"])


def test_the_2020_convention_is_a_dated_version_for_cnss_only() -> None:
    books = load_books()
    assert books.tariffs.key_letter("C", "cnss", date(2021, 6, 1)).value == Decimal("150.00")
    assert books.tariffs.key_letter("C", "cnss", date(2026, 11, 20)).value == Decimal("80.00")
    assert books.tariffs.key_letter("C", "public", date(2021, 6, 1)).value == Decimal("80.00")
    # Keys the convention did not restate keep the 2006 value.
    assert books.tariffs.key_letter("K", "cnss", date(2021, 6, 1)).version == "tnr-2006"


def test_every_key_letter_has_a_dated_fee_ceiling_well_above_its_tariff() -> None:
    books = load_books()
    for day in (date(2006, 9, 1), date(2021, 6, 1), date(2026, 11, 20)):
        ceilings = books.ceilings.in_force(day)
        for code, tariff in books.tariffs.key_letters("cnss", day).items():
            assert ceilings[code] >= 10 * tariff.value, (code, day)
    assert books.ceilings.in_force(date(2006, 8, 31)) == {}
    k30 = books.ceilings.ceiling("K", date(2026, 11, 20), Decimal(30))
    assert k30 is not None and k30.limit == Decimal("6750.00")
    on = date(2026, 11, 20)
    assert books.ceilings.exceeded("C", on, Decimal("1500.00")) is None
    assert books.ceilings.exceeded("C", on, Decimal("1500.01")) is not None
    assert books.ceilings.exceeded("hospitalisation-medicale", on, Decimal("99999999")) is None


def test_medicines_have_valid_ean13_and_a_pbr_not_above_the_price() -> None:
    """As published: every code is accepted (19 with a wrong check digit, kept as the list
    gives them), and the PBR is above the PPV only where the source says so."""
    books = load_books()
    medicines = books.medicines.in_force(date(2026, 11, 20))
    assert len(medicines) == 5917
    above = []
    for ean, medicine in medicines.items():
        assert ean13_problem(ean) is None, ean
        if None not in (medicine.pbr, medicine.ppv) and medicine.pbr > medicine.ppv:  # type: ignore[operator]
            above.append(medicine.name)
    assert above == ["AMOXICILLINE LLORENTE"]  # 28.90 / 31.10 in the source


def test_a_broken_data_file_is_named(tmp_path: Path) -> None:
    for source in (p for p in DATA.rglob("*") if p.is_file()):  # the NGAP list is a CSV
        target = tmp_path / source.relative_to(DATA)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(source.read_bytes())
    (tmp_path / "rates.json").write_text("{not json", encoding="utf-8")
    with pytest.raises(ValueError, match=r"rates\.json"):
        load_books(tmp_path)
