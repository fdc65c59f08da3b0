"""What the product imports is what a plain ``pip install .`` brings: every third-party module
the product packages import belongs to a distribution in ``[project.dependencies]`` (not only in
the dev extra, which ``make install`` adds and a user does not). The benchmarks (``bench/``,
outside the product and the wheel) run from a development install: they may use the dev extra
too, but nothing undeclared."""

from __future__ import annotations

import ast
import re
import sys
import tomllib
from importlib.metadata import packages_distributions
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
PRODUCT = ("fse", "fhir_profiles", "prescriber", "pharmacy", "reimbursement")
BENCH = "bench"


def _name(requirement: str) -> str:
    return re.split(r"[\s<>=!~\[;]", requirement, maxsplit=1)[0].lower().replace("_", "-")


def _imported(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module.split(".")[0])
    return found


def _undeclared(packages: tuple[str, ...], declared: set[str]) -> dict[str, str]:
    """Third-party modules imported under ``packages`` whose distribution is not ``declared``
    (module -> the first file importing it)."""
    distributions = packages_distributions()
    missing: dict[str, str] = {}
    for package in packages:
        for path in sorted((ROOT / package).rglob("*.py")):
            for module in _imported(path):
                if module in (*PRODUCT, BENCH) or module in sys.stdlib_module_names:
                    continue
                names = {_name(d) for d in distributions.get(module, [module])}
                if not names & declared:
                    missing.setdefault(module, path.relative_to(ROOT).as_posix())
    return missing


def _project() -> dict[str, Any]:
    return tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]


def test_every_third_party_import_is_a_runtime_dependency() -> None:
    declared = {_name(r) for r in _project()["dependencies"]}
    missing = _undeclared(PRODUCT, declared)
    assert missing == {}, f"imported but not in [project.dependencies]: {missing}"


def test_the_benchmarks_import_only_declared_packages() -> None:
    project = _project()
    declared = {
        _name(r) for r in (*project["dependencies"], *project["optional-dependencies"]["dev"])
    }
    missing = _undeclared((BENCH,), declared)
    assert missing == {}, f"imported by bench/ but not declared (dev extra included): {missing}"
