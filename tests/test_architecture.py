"""Dependencies point down: the kernel never imports features; cores import no I/O."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FEATURES = ("prescriber", "pharmacy", "reimbursement")
ASSEMBLY = {"fse/app.py", "fse/cli.py"}
OURS = ("fse", "fhir_profiles", *FEATURES)


def imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def python_files(package: str) -> list[Path]:
    return sorted((ROOT / package).rglob("*.py"))


def test_kernel_imports_no_feature_package_outside_the_assembly() -> None:
    offenders = []
    for path in python_files("fse"):
        relative = path.relative_to(ROOT).as_posix()
        if relative in ASSEMBLY:
            continue
        bad = {m for m in imported_modules(path) if m.split(".")[0] in FEATURES}
        if bad:
            offenders.append((relative, sorted(bad)))
    assert offenders == []


def test_fhir_profiles_imports_nothing_of_ours() -> None:
    others = set(OURS) - {"fhir_profiles"}
    for path in python_files("fhir_profiles"):
        assert {m for m in imported_modules(path) if m.split(".")[0] in others} == set(), path


def test_store_and_query_know_no_web_framework() -> None:
    for path in [*python_files("fse/store"), ROOT / "fse/resources.py", ROOT / "fse/errors.py"]:
        web = {
            m
            for m in imported_modules(path)
            if m.split(".")[0] in ("fastapi", "starlette", "jinja2")
        }
        assert web == set(), path


def test_checker_sees_a_violation() -> None:
    """Guard the guard: a file importing a feature is reported."""
    sample = ROOT / "var" / "arch_sample.py"
    sample.parent.mkdir(exist_ok=True)
    sample.write_text(
        "from reimbursement import engine\nimport pharmacy.dispense\n", encoding="utf-8"
    )
    try:
        assert imported_modules(sample) == {"reimbursement", "pharmacy.dispense"}
    finally:
        sample.unlink()


def test_the_reimbursement_core_is_pure() -> None:
    """Data in, decision out: no database, web, network, file or clock in reimbursement/core."""
    allowed = {
        "__future__",
        "calendar",
        "collections",
        "dataclasses",
        "datetime",
        "decimal",
        "enum",
        "re",
        "unicodedata",
        "typing",
        "reimbursement",
    }
    for path in python_files("reimbursement/core"):
        found = {m.split(".")[0] for m in imported_modules(path)}
        assert found <= allowed, (path, found - allowed)
        text = path.read_text(encoding="utf-8")
        for call in ("open(", ".now(", ".today(", "time.", "random."):
            assert call not in text, (path, call)
