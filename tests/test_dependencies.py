"""What the product imports is what a plain ``pip install .`` brings: every third-party module
the product packages import belongs to a distribution in ``[project.dependencies]`` (not only in
the dev extra, which ``make install`` adds and a user does not)."""

from __future__ import annotations

import ast
import re
import sys
import tomllib
from importlib.metadata import packages_distributions
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PRODUCT = ("fse", "fhir_profiles", "prescriber", "pharmacy", "reimbursement")
BENCHES = ("bench.py", "access_bench.py", "reference_bench.py")
"""Benchmarks run from a development install (``make bench``); issue 17 moves them out."""


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


def test_every_third_party_import_is_a_runtime_dependency() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    declared = {_name(r) for r in project["dependencies"]}
    distributions = packages_distributions()
    missing = {}
    for package in PRODUCT:
        for path in (ROOT / package).rglob("*.py"):
            if path.name in BENCHES:
                continue
            for module in _imported(path):
                if module in PRODUCT or module in sys.stdlib_module_names:
                    continue
                names = {_name(d) for d in distributions.get(module, [module])}
                if not names & declared:
                    missing.setdefault(module, path.relative_to(ROOT).as_posix())
    assert missing == {}, f"imported but not in [project.dependencies]: {missing}"
