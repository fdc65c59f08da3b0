"""Finding the medicine a doctor types: whole words, strengths as quantities, the exact name
first, then names starting with the text, then every word of name, DCI and strength."""

from __future__ import annotations

import csv
from dataclasses import replace
from datetime import date
from pathlib import Path

import pytest

from prescriber.visit import find_medicine
from reimbursement.core.medicines import Medicine, medicine_list_version
from reimbursement.medicine_search import index_of
from reimbursement.reference_data import default_books

TODAY = date(2026, 11, 22)
AMOXI_GEN_1G, AMOXI_GEN_500, AMOXYL_D_1G = "6118001701476", "6118001701445", "6118001701469"
CNOPS = (
    Path(__file__).resolve().parents[2].parent
    / "shared"
    / "data"
    / "medicines"
    / "cnops_referentiel_medicaments_2014.csv"
)


def shipped() -> dict[str, Medicine]:
    return dict(default_books().medicines.in_force(TODAY))


def chosen(text: str, medicines: dict[str, Medicine]) -> str | None:
    found, _ = find_medicine(text, medicines)
    return found.ean if found is not None else None


@pytest.mark.parametrize(
    "typed",
    [
        "AMOXI-GEN 1 g",  # the name as the doctor reads it, with its strength
        "amoxi-gen 1g",
        "Amoxi-Gen 1000 mg",  # the list says 1 g: the same quantity
        "AMOXI-GEN 1",
        "AMOXI-GEN 1 g, boîte de 12",  # the list's whole name
        AMOXI_GEN_1G,
    ],
)
def test_a_name_with_its_strength_is_the_one_product(typed: str) -> None:
    assert chosen(typed, shipped()) == AMOXI_GEN_1G


def test_a_number_or_a_unit_never_matches_inside_another_word() -> None:
    """ "1" is not in "12" (boîte de 12) nor "g" in "mg": AMOXI-GEN 1 g, not AMOXI-GEN 500 mg."""
    medicines = shipped()
    assert chosen("AMOXI-GEN 500", medicines) == AMOXI_GEN_500
    none, why = find_medicine("amoxicilline 1 g", medicines)
    assert none is None
    assert "AMOXI-GEN 1 g" in why and "AMOXYL-D 1 g" in why and "500 mg" not in why
    twelve = replace(
        medicines[AMOXI_GEN_500], ean="6118009999992", name="AMOXI-GEN 12 mg", strength="12 mg"
    )
    both = {**medicines, twelve.ean: twelve}
    assert chosen("AMOXI-GEN 1 g", both) == AMOXI_GEN_1G
    assert chosen("AMOXI-GEN 12 mg", both) == twelve.ean
    # The name starting with the text wins over the other packs of 12.
    assert chosen("AMOXI-GEN 12", both) == twelve.ean


def test_the_exact_name_is_chosen_even_when_other_names_start_with_it() -> None:
    medicines = shipped()
    base = medicines["6118001701421"]  # DOLIPARA 500 mg, boîte de 20
    sachets = replace(base, ean="6118009999985", name="DOLIPARA 500 mg, boîte de 20 sachets")
    both = {**medicines, sachets.ean: sachets}
    assert chosen("dolipara 500 mg, boite de 20", both) == base.ean
    assert chosen("DOLIPARA 500 mg, boîte de 20 sachets", both) == sachets.ean
    none, why = find_medicine("DOLIPARA 500", both)  # both names start so: which one?
    assert none is None and why.startswith("Plusieurs médicaments correspondent")


def test_then_the_start_of_the_name_then_the_dci() -> None:
    medicines = shipped()
    assert chosen("zovirax", medicines) == "6118001701407"
    assert chosen("paracétamol keni", medicines) == "6118000170143"
    none, why = find_medicine("aciclovir", medicines)  # the DCI: two products
    assert none is None and "ZOVIRAX" in why and "CICLOVIRAL" in why
    assert chosen("metformine 1 g", medicines) is None  # GLUCOFAGE-D or METFORMA 1000 mg
    assert chosen("metformine 1 g glucofage", medicines) == "6118001701506"
    assert chosen("levothyroxine 100 mcg", medicines) == "6118001701636"  # µg, however written
    assert find_medicine("vitamine c", medicines) == (
        None,
        "Aucun médicament remboursable ne correspond.",
    )


def test_labels_tell_apart_products_the_list_names_alike() -> None:
    medicines = shipped()
    twin = replace(medicines[AMOXYL_D_1G], ean="6118009999978", form="comprimé dispersible")
    index = index_of({**medicines, twin.ean: twin})
    labels = [e.label for e in index.entries]
    assert len(labels) == len(set(labels))
    assert "AMOXYL-D 1 g, boîte de 12 (comprimé dispersible)" in labels
    assert chosen("AMOXYL-D 1 g, boîte de 12 (gélule)", {**medicines, twin.ean: twin}) == (
        AMOXYL_D_1G
    )


def test_the_index_is_built_once_per_list_version() -> None:
    medicines = default_books().medicines.in_force(TODAY)
    assert index_of(medicines) is index_of(medicines)


def cnops_list() -> dict[str, Medicine]:
    """The CNOPS 2014 list (next issue's data) in the medicines list format."""
    rows = []
    with CNOPS.open(encoding="utf-8", newline="") as source:
        for row in csv.DictReader(source):
            values, units = row["DOSAGE1"].split(" / "), row["UNITE_DOSAGE1"].split(" / ")
            strength = (
                " / ".join(f"{v} {u}" for v, u in zip(values, units, strict=True))
                if len(values) == len(units) and row["DOSAGE1"]
                else f"{row['DOSAGE1']} {row['UNITE_DOSAGE1']}".strip()
            )
            price = row["PPV"] or row["PRIX_BR"] or row["PH"] or "0"
            rows.append(
                {
                    "ean": row["CODE"],
                    "name": row["NOM"],
                    "dci": row["DCI1"],
                    "form": row["FORME"],
                    "strength": strength,
                    "presentation": row["PRESENTATION"],
                    "ppv": price,
                    "pbr": row["PRIX_BR"] or price,
                    "type": row["PRINCEPS_GENERIQUE"],
                    "reimbursable": row["TAUX_REMBOURSEMENT"] != "0",
                }
            )
    version = {"id": "cnops-2014", "valid_from": "2014-06-23", "medicines": rows}
    return dict(medicine_list_version(version).medicines)


@pytest.mark.skipif(not CNOPS.exists(), reason="the CNOPS list is not beside the project")
def test_on_the_full_cnops_list() -> None:
    medicines = cnops_list()
    assert len(medicines) > 5_000
    index = index_of(medicines)
    labels = [e.label for e in index.entries]
    assert len(labels) == len(set(labels))  # choosing a label is choosing one product
    # DOLIPRANE 1 G: tablets, effervescent tablets, suppositories: which one?
    none, why = find_medicine("doliprane 1 g", medicines)
    assert none is None and "SUPPOSITOIRE" in why and "100 MG" not in why
    assert chosen("doliprane 1000 mg suppositoire", medicines) == "6118000040323"
    none, why = find_medicine("AMOXIL 1 G comprime dispersible", medicines)
    assert none is None and "12 COMPRIME" in why and "24 COMPRIME" in why
    assert chosen("amoxil 1 g comprime dispersible 12", medicines) == "6118000160038"
    none, why = find_medicine("amoxil 1", medicines)  # 1 g only, never 125 mg nor 12 tablets
    assert none is None and "125" not in why and "500 MG" not in why
    every = index.search("paracetamol").ranked
    assert len(every) > 20 and all("PARACETAMOL" in e.medicine.dci for e in every[:20])
    for entry in index.entries[::50]:  # each product's label names it and only it
        assert chosen(entry.label, medicines) == entry.medicine.ean, entry.label
