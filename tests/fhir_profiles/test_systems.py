"""The AMO URLs are named in one place, fhir_profiles/systems.py: every system and extension of
the guide has its name there, and no other product module spells an AMO URL."""

from __future__ import annotations

from pathlib import Path

import fhir_profiles.systems as systems
from fhir_profiles.guide import definitions

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("fhir_profiles", "fse", "reimbursement", "pharmacy", "prescriber")
AMO = "fse.cnss.ma/fhir"
THE_PLACE = ROOT / "fhir_profiles" / "systems.py"
DATA = (ROOT / "fhir_profiles" / "definitions", ROOT / "fse" / "seed" / "demo-bundle.json")
"""Data, not code: the guide's own definitions, and the demo bundle loaded as FHIR JSON."""


def named() -> set[str]:
    found: set[str] = set()
    for name in dir(systems):
        value = getattr(systems, name)
        if name.isupper() and isinstance(value, str):
            found.add(value)
        elif name.isupper() and isinstance(value, tuple):
            found.update(value)
    return found


def spellers(root: Path) -> list[str]:
    """Product files (code, templates, static files) that spell an AMO URL, data excepted."""
    found = []
    for package in PACKAGES:
        for path in sorted((root / package).rglob("*")):
            relative = path.relative_to(root).as_posix()
            if not path.is_file() or path == THE_PLACE:
                continue
            if any(path == d or d in path.parents for d in DATA) or "__pycache__" in path.parts:
                continue
            if AMO in path.read_text(encoding="utf-8", errors="ignore"):
                found.append(relative)
    return found


def test_every_system_and_extension_of_the_guide_is_named() -> None:
    missing = []
    for resource in definitions():
        kind = resource["resourceType"]
        if kind == "NamingSystem":
            url = next(u["value"] for u in resource["uniqueId"] if u.get("preferred"))
        elif kind == "CodeSystem" or resource.get("type") == "Extension":
            url = resource["url"]
        else:
            continue
        if url not in named():
            missing.append(url)
    assert missing == []


def test_the_names_are_under_the_canonical_base() -> None:
    ours = [v for v in named() if AMO in v]
    assert ours and all(v.startswith(systems.CANONICAL) for v in ours)
    assert systems.CARE_SHEET_SYSTEM == "https://fse.cnss.ma/fhir/sid/fse"
    assert systems.CIN_SYSTEM == "https://fse.cnss.ma/fhir/sid/cin"


def test_no_product_module_spells_an_amo_url() -> None:
    assert spellers(ROOT) == []


def test_the_guard_sees_a_spelled_url(tmp_path: Path) -> None:
    for package in PACKAGES:
        (tmp_path / package).mkdir()
    (tmp_path / "pharmacy" / "lookup.py").write_text('SID = "https://fse.cnss.ma/fhir/sid"\n')
    (tmp_path / "prescriber" / "page.html").write_text("<a href='https://fse.cnss.ma/fhir/x'>")
    (tmp_path / "fse" / "clean.py").write_text("from fhir_profiles.systems import CIN_SYSTEM\n")
    assert spellers(tmp_path) == ["pharmacy/lookup.py", "prescriber/page.html"]
