"""The CNOPS medicines list the platform ships: the repository's copy, read as published and
converted by the same code as ``fse tariffs import``, with its counts, codes, prices and generic
groups checked against the source's own figures (reimbursement/data/sources/README.md)."""

from __future__ import annotations

import csv
from collections import Counter, defaultdict
from datetime import date
from decimal import Decimal
from pathlib import Path

import pytest

from fhir_profiles.identifiers import ean13_key_ok, ean13_problem
from reimbursement.cnops import NotACnopsList, dumps, strength, version_from_csv
from reimbursement.core.generic_groups import form_of, group_of, pack_of
from reimbursement.core.medicines import Medicine, medicine_list_version
from reimbursement.reference_data import DATA, load_books

CSV = DATA / "sources" / "cnops_referentiel_medicaments_2014.csv"
SHIPPED = DATA / "medicines" / "2014-06-23-cnops-2014.json"
DAY = date(2026, 12, 1)
WRONG_KEYS = {
    "6118000140213", "6118000140541", "6118000140497", "6118000170237", "6118000140480",
    "6118000240443", "6118000140510", "6118000140039", "6118000140527", "6118000140503",
    "6118000170244", "6118000140275", "6118000140473", "6118000170220", "6118000140565",
    "6118000140466", "6118001161264", "6118000141340", "6118000140268",
}  # fmt: skip
"""The 19 codes the source README lists as failing the EAN-13 check, kept as published."""


@pytest.fixture(scope="module")
def medicines() -> dict[str, Medicine]:
    return dict(load_books().medicines.in_force(DAY))


def test_the_shipped_list_is_the_conversion_of_the_shipped_csv() -> None:
    version = version_from_csv(CSV.read_bytes(), date(2014, 6, 23), "cnops-2014")
    assert dumps(version) == SHIPPED.read_bytes()
    assert version["attribution"].startswith("Contient des données CNOPS")
    assert "ODbL" in version["licence"]


def test_rows_codes_and_prices_are_those_published(medicines: dict[str, Medicine]) -> None:
    with CSV.open(encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == len(medicines) == 5917  # the source README's count
    assert {r["CODE"] for r in rows} == set(medicines)
    assert load_books().medicines.versions[0].valid_from == date(2014, 6, 23)
    zovirax = medicines["6118001141531"]  # amo-rules.md §5.1: PPV 232.00, PBR 209.00
    assert (zovirax.name, zovirax.ppv, zovirax.ph, zovirax.pbr) == (
        "ZOVIRAX",
        Decimal("232.00"),
        Decimal("144.90"),
        Decimal("209.00"),
    )
    assert zovirax.strength == "200 MG" and zovirax.kind == "princeps"
    assert zovirax.rate == Decimal("0.70") and zovirax.reimbursable
    # empty stays unknown, never 0 (README: 208 without PPV, 421 without PH, 27 without PBR)
    values = list(medicines.values())
    assert sum(m.ppv is None for m in values) == 208
    assert sum(m.ph is None for m in values) == 421
    assert sum(m.pbr is None for m in values) == 27
    assert not any(Decimal(0) in (m.ppv, m.ph, m.pbr) for m in values)
    revlimid = next(m for m in values if m.name.startswith("REVLIMID"))
    assert revlimid.ppv is None and revlimid.pbr == Decimal("58465.00")
    # the list's rate: 70 (3,940 rows) or 0 (1,977 rows), 0 meaning not reimbursable
    assert Counter(m.reimbursable for m in values) == {True: 3940, False: 1977}
    assert Counter(m.generic for m in values) == {False: 3031, True: 2886}


def test_codes_with_a_wrong_check_digit_are_kept_and_accepted_as_published(
    medicines: dict[str, Medicine],
) -> None:
    wrong = {ean for ean in medicines if not ean13_key_ok(ean)}
    assert wrong == WRONG_KEYS
    assert all(ean13_problem(ean) is None for ean in wrong)  # official codes: accepted
    typed = "6118000140215"  # COMBIVIR's code, last digit changed: not listed, wrong key
    assert typed not in medicines
    assert ean13_problem(typed) == "le chiffre de contrôle du code EAN-13 est faux"


def test_the_same_pack_under_two_codes_is_one_product(medicines: dict[str, Medicine]) -> None:
    twins = [m for m in medicines.values() if m.product != m.ean]
    assert len(twins) == 692  # README: 690 groups, 692 extra rows
    old, new = medicines["6118000250807"], medicines["6118010116209"]  # TAHOR 20 MG x 28
    assert old.same_product_as(new) and new.same_product_as(old)
    assert not medicines["6118000140719"].same_product_as(new)  # TORVA is another product


def test_generic_groups(medicines: dict[str, Medicine]) -> None:
    groups: dict[str, list[Medicine]] = defaultdict(list)
    for m in medicines.values():
        if m.group is not None:
            groups[m.group].append(m)
    mixed = [g for g in groups.values() if {m.generic for m in g} == {True, False}]
    assert (len(groups), len(mixed)) == (2594, 407)
    assert sum(m.group is None for m in medicines.values()) == 211  # no strength (vaccines…)

    def names(group: str, pack: str) -> set[str]:
        return {m.name for m in groups[group] if m.pack == pack and m.ean == m.product}

    # Ten well-known groups, checked by hand against the CSV.
    assert names("AMOXICILLINE 1000MG | COMPRIME DISPERSIBLE", "12") == {
        "AMOXIL", "BIOMOX", "CLAMOXYL", "NEOMOX", "PENAMOX", "STARMOX", "STREPTOCID",
    }  # fmt: skip
    assert names("PARACETAMOL 500MG | COMPRIME", "20") == {
        "ANDOL", "CALPOL", "CETAMYL", "DOLIPRANE", "DOLOSTOP", "NOFEBRIL", "PANADOL",
        "PARACETAL", "PARANTAL",
    }  # fmt: skip
    assert names("METFORMINE 850MG | COMPRIME", "30") == {
        "ADO", "BIGUAN 850", "GLUCOPHAGE 850", "METFORMINE WIN 850 MG",
    }  # fmt: skip
    assert {"AMLOR", "AMCARD", "AMILO", "AMOVAS"} <= names("AMLODIPINE 5MG | COMPRIME", "28")
    assert names("ACICLOVIR 200MG | COMPRIME", "25") == {
        "ACIVIR", "CICLOVIRAL", "HERPEVIR", "ZOVIRAX",
    }  # fmt: skip
    assert names("ATORVASTATINE 20MG | COMPRIME", "28") == {"TAHOR"}
    assert names("ATORVASTATINE 20MG | COMPRIME", "30") == {"TORVA"}
    assert {"MOPRAL", "OMIZ 20 MG", "PRAZOL"} <= names("OMEPRAZOLE 20MG | GELULE", "14")
    assert names("IBUPROFENE 400MG | COMPRIME", "30") == {"ANTARENE", "BRUFEN", "NURODOL 400 MG"}
    assert {"AZIX", "ZITHROMAX", "AZIMYCINE"} <= names("AZITHROMYCINE 500MG | COMPRIME", "3")
    assert names("LEVOTHYROXINE SODIQUE 0.1MG | COMPRIME", "30") >= {"LEVOTHYROX"}
    # LP and effervescent tablets are other forms: no substitution with plain tablets
    assert "GLYCAN 850 RETARD" in names("METFORMINE 850MG | COMPRIME LP", "30")
    assert "DOLIPRANE" in names("PARACETAMOL 500MG | COMPRIME EFFERVESCENT", "16")


@pytest.mark.parametrize(
    ("dci", "strength_text", "form", "group"),
    [
        ("AMOXICILLINE", "1 G", "COMPRIME", "AMOXICILLINE 1000MG | COMPRIME"),
        ("amoxicilline", "1000 mg", "Comprimé", "AMOXICILLINE 1000MG | COMPRIME"),
        ("SALBUTAMOL", "100 µG", "SUSPENSION", "SALBUTAMOL 0.1MG | SUSPENSION"),
        ("SALBUTAMOL", "2 MG/5ML", "SOLUTION BUVABLE", "SALBUTAMOL 0.4MG/ML | SOLUTION BUVABLE"),
        (
            "PARACETAMOL / ACIDE ASCORBIQUE",
            "500 MG / 150 MG",
            "COMPRIME EFFERVESCENT",
            "ACIDE ASCORBIQUE 150MG + PARACETAMOL 500MG | COMPRIME EFFERVESCENT",
        ),
        (
            "X",
            "1 MUI",
            "POUDRE POUR SUSPENTION BUVABLE",
            "X 1000000UI | POUDRE POUR SUSPENSION BUVABLE",
        ),
        ("X", "10 MG", "COMPRIME PELLICULE SECABLE", "X 10MG | COMPRIME"),
        ("X", "10 MG", "COMPRIME ENROBE LP", "X 10MG | COMPRIME LP"),
        ("X", "10 MG", "GELULE GASTRO-RESISTANTE", "X 10MG | GELULE GASTRO-RESISTANTE"),
        ("VACCIN", "", "SUSPENSION INJECTABLE", None),
        ("A / B", "10 MG", "COMPRIME", None),  # two DCIs, one strength: unreadable
    ],
)
def test_group_normalisation(dci: str, strength_text: str, form: str, group: str | None) -> None:
    assert group_of(dci, strength_text, form) == group


def test_pack_and_form_normalisation() -> None:
    assert pack_of("1 BOITE 24 COMPRIME") == pack_of("1 BOITE 24 COMPRIME PELLICULE") == "24"
    assert pack_of("1 FLACON 100 ML") == "100 ML"
    assert pack_of("3 CARTOUCHE 3 ML") == "9 ML"
    assert form_of("COMPRIME DRAGEIFIE") == "COMPRIME" != form_of("COMPRIME DISPERSIBLE")
    assert strength("500 / 150", "MG / MG") == "500 MG / 150 MG"
    assert strength("", "NA") == strength("5", "NA") == ""


def test_a_list_that_is_not_the_cnops_one_is_refused_with_the_row(tmp_path: Path) -> None:
    header = CSV.read_text(encoding="utf-8").splitlines()[0]
    cases = {
        "CODE,NOM\n1,2\n": "header",
        f"{header}\n611800014021,X,D,1,MG,F,P,1.00,,,P,70\n": "row 2: CODE",
        f"{header}\n6118000140213,X,D,1,MG,F,P,douze,,,P,70\n": "row 2 PPV",
        f"{header}\n6118000140213,X,D,1,MG,F,P,1.00,,,Q,70\n": "neither P nor G",
    }
    for text, message in cases.items():
        with pytest.raises(NotACnopsList, match=message):
            version_from_csv(text.encode(), DAY, "x")
    with pytest.raises(NotACnopsList, match="not UTF-8"):
        version_from_csv(f"{header}\n".encode() + "É".encode("latin-1"), DAY, "x")


def test_a_version_without_prices_loads_them_as_unknown() -> None:
    row = {
        "ean": "6118000040347",
        "name": "DOLIPRANE",
        "dci": "PARACETAMOL",
        "form": "COMPRIME",
        "strength": "500 MG",
        "presentation": "1 BOITE 20 COMPRIME",
        "ppv": None,
        "pbr": "",
        "type": "P",
    }
    version = medicine_list_version({"id": "v", "valid_from": "2020-01-01", "medicines": [row]})
    product = version.medicines["6118000040347"]
    assert (product.ppv, product.pbr, product.ph) == (None, None, None)
    with pytest.raises(ValueError, match="listed twice"):
        medicine_list_version({"id": "v", "valid_from": "2020-01-01", "medicines": [row, row]})
