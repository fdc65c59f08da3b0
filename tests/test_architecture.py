"""Dependencies point down: every module of the product sits on a named floor and imports only
its own room or what lies below; no import cycle; cores import no I/O.

The floors are docs/architecture.md's map, bottom first. A floor may hold several rooms side by
side: they are independent (neither imports the other). A module belongs to the room of the
longest prefix naming it; a module no room names fails the test, so a new one is placed on
purpose. There is no exception list.
"""

from __future__ import annotations

import ast
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass
from fnmatch import fnmatch
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FEATURES = ("reimbursement", "pharmacy", "prescriber")
PACKAGES = ("fhir_profiles", "fse", *FEATURES)
WEB_FRAMEWORKS = ("fastapi", "starlette", "jinja2")

Room = tuple[str, ...]
FLOORS: tuple[tuple[str, tuple[Room, ...]], ...] = (
    ("the AMO guide", (("fhir_profiles",),)),
    (
        "foundation",
        (("fse.errors", "fse.config", "fse.addresses", "fse.responses", "fse.fhir_json"),),
    ),
    ("keys | runtime services", (("fse.crypto",), ("fse.runtime",))),
    (
        "store",
        (("fse.db", "fse.store", "fse.limits", "fse.care_dates", "fse.migrate"),),
    ),
    (
        "FHIR service | access | records",
        (
            (
                "fse.resources",
                "fse.fhir_api.interactions",
                "fse.fhir_api.http",
                "fse.fhir_api.operations",
                "fse.fhir_api.reading",
            ),
            ("fse.security",),
            ("fse.outbox", "fse.access_log", "fse.audit_chain"),
        ),
    ),
    ("callers and audit", (("fse.audit", "fse.callers", "fse.api_audit", "fse.accounts"),)),
    ("doors: FHIR API | web pages", (("fse.fhir_api", "fse.head", "fse.health"), ("fse.web",))),
    (
        "kernel features: export | subscriptions | seeding",
        (("fse.export",), ("fse.subscriptions",), ("fse.seed",)),
    ),
    ("reimbursement", (("reimbursement",),)),
    ("pharmacy", (("pharmacy",),)),
    ("prescriber", (("prescriber",),)),
    ("assembly", (("fse.app", "fse.cli", "fse.serve", "fse.migrations"),)),
)
"""Bottom first. ``a | b``: rooms side by side on one floor."""


@dataclass(frozen=True)
class Import:
    target: str
    line: int
    relative: bool = False
    type_only: bool = False


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def product_modules() -> dict[str, Path]:
    return {
        module_name(path): path for package in PACKAGES for path in (ROOT / package).rglob("*.py")
    }


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def imports_of(source: str, known: set[str] | frozenset[str] = frozenset()) -> list[Import]:
    """Every import of ``source``, at any depth (a function's lazy import counts). ``from a
    import b`` names ``a.b`` when that is a module of ``known``; imports under ``if
    TYPE_CHECKING:`` are marked, since they run only for the type checker."""
    found: list[Import] = []

    def visit(node: ast.AST, type_only: bool) -> None:
        if isinstance(node, ast.Import):
            found.extend(Import(a.name, node.lineno, type_only=type_only) for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                found.append(Import(node.module or "", node.lineno, True, type_only))
            elif node.module:
                for alias in node.names:
                    full = f"{node.module}.{alias.name}"
                    target = full if full in known else node.module
                    found.append(Import(target, node.lineno, type_only=type_only))
        for child in ast.iter_child_nodes(node):
            inner = type_only or (isinstance(node, ast.If) and _is_type_checking(node))
            if isinstance(node, ast.If) and child in node.orelse:
                inner = type_only
            visit(child, inner)

    visit(ast.parse(source), False)
    return found


def resolved(target: str, known: set[str]) -> str | None:
    """The module of ours an import names (its longest known prefix), or None if not ours."""
    parts = target.split(".")
    for end in range(len(parts), 0, -1):
        name = ".".join(parts[:end])
        if name in known:
            return name
    return None


def place(module: str) -> tuple[int, int] | None:
    """(floor, room) of a module: the room with the longest prefix naming it."""
    best: tuple[int, tuple[int, int]] | None = None
    for floor, (_, rooms) in enumerate(FLOORS):
        for room, prefixes in enumerate(rooms):
            for prefix in prefixes:
                named = module == prefix or module.startswith(prefix + ".")
                if named and (best is None or len(prefix) > best[0]):
                    best = (len(prefix), (floor, room))
    return None if best is None else best[1]


def graph(sources: dict[str, str]) -> Iterator[tuple[str, Import, str]]:
    """(module, import, imported module) for every import of ours among ``sources``."""
    known = set(sources)
    for module, source in sorted(sources.items()):
        seen = set()
        for found in imports_of(source, known):
            target = resolved(found.target, known)
            if target is not None and target != module and (found.line, target) not in seen:
                seen.add((found.line, target))
                yield module, found, target


def upward_imports(sources: dict[str, str]) -> list[str]:
    """Imports that go up a floor or sideways into another room of the same floor."""
    bad = []
    for module, found, target in graph(sources):
        here, there = place(module), place(target)
        if here is None or there is None or target in PACKAGES:
            continue  # unplaced modules are reported by their own test; package roots are empty
        if there[0] > here[0] or (there[0] == here[0] and there[1] != here[1]):
            bad.append(
                f"{module}:{found.line} ({FLOORS[here[0]][0]}) imports {target}"
                f" ({FLOORS[there[0]][0]})"
            )
    return bad


def cycles(sources: dict[str, str]) -> list[list[str]]:
    """Import cycles between modules (imports for the type checker only excepted): Tarjan."""
    edges: dict[str, set[str]] = {m: set() for m in sources}
    for module, found, target in graph(sources):
        if not found.type_only:
            edges[module].add(target)
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found_cycles: list[list[str]] = []

    def connect(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for nxt in sorted(edges[node]):
            if nxt not in index:
                connect(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found_cycles.append(sorted(component))

    for node in sorted(edges):
        if node not in index:
            connect(node)
    return found_cycles


def sources_of(modules: dict[str, Path]) -> dict[str, str]:
    return {name: path.read_text(encoding="utf-8") for name, path in modules.items()}


SOURCES = sources_of(product_modules())


def test_every_module_sits_on_a_floor() -> None:
    unplaced = sorted(m for m in SOURCES if m not in PACKAGES and place(m) is None)
    assert unplaced == []


def test_every_room_names_modules_that_exist_and_the_map_draws_them() -> None:
    """A stale name would place nothing; docs/architecture.md names every room's modules."""
    page = (ROOT / "docs" / "architecture.md").read_text(encoding="utf-8")
    drawn = page.split("```")[1]  # the map
    for _, rooms in FLOORS:
        for prefix in (p for room in rooms for p in room):
            assert any(m == prefix or m.startswith(prefix + ".") for m in SOURCES), prefix
            path = prefix.replace(".", "/")
            assert f"{path}/" in drawn or f"{path}.py" in drawn, path


def test_the_package_roots_are_empty() -> None:
    """``fse/__init__.py`` and the like hold a docstring: importing a root brings nothing."""
    for package in PACKAGES:
        assert imports_of(SOURCES[package]) == [], package


def test_no_import_goes_up() -> None:
    assert upward_imports(SOURCES) == []


def test_no_import_cycle() -> None:
    assert cycles(SOURCES) == []


def test_no_relative_import() -> None:
    relative = [
        f"{module}:{found.line}"
        for module, source in sorted(SOURCES.items())
        for found in imports_of(source)
        if found.relative
    ]
    assert relative == []


def test_the_guard_sees_each_kind_of_violation() -> None:
    """Guard the guard: an upward, a sideways and a lazy import, a cycle and a relative import,
    each in a sample, are reported."""
    samples = {
        "fse.store.sample": "def later() -> None:\n    from fse.fhir_api.routes import router\n",
        "fse.crypto.sample": "import fse.runtime.cache\n",
        "fse.fhir_api.routes": "",
        "fse.runtime.cache": "",
        "fse.web.a": "from fse.web import b\n",
        "fse.web.b": "import fse.web.a\n",
        "fse.web.c": "if TYPE_CHECKING:\n    from fse.web.d import x\n",
        "fse.web.d": "from fse.web.c import y\n",
        "fse.web.e": "from . import a\n",
    }
    assert upward_imports(samples) == [
        "fse.crypto.sample:1 (keys | runtime services) imports fse.runtime.cache"
        " (keys | runtime services)",
        "fse.store.sample:2 (store) imports fse.fhir_api.routes (doors: FHIR API | web pages)",
    ]
    assert cycles(samples) == [["fse.web.a", "fse.web.b"]]
    assert [i.relative for i in imports_of(samples["fse.web.e"])] == [True]
    assert place("fse.nowhere") is None


OUTSIDE = ("bench", "tests", "e2e")
"""What stands beside the product and imports it: the benchmarks and the tests."""


def imports_from_outside(sources: dict[str, str]) -> list[str]:
    """Product modules importing the benchmarks or the tests, which the wheel does not hold."""
    return [
        f"{module}:{found.line} imports {found.target}"
        for module, source in sorted(sources.items())
        for found in imports_of(source)
        if found.target.split(".")[0] in OUTSIDE
    ]


ASSEMBLY = ("fse.app", "fse.cli")
"""The only kernel modules that name a feature: the floors put more on the assembly floor
(serve, migrations), but those reach the features through fse.app."""


def kernel_importing_features(sources: dict[str, str]) -> list[str]:
    return [
        f"{module}:{found.line} imports {found.target}"
        for module, source in sorted(sources.items())
        if module.split(".")[0] == "fse" and module not in ASSEMBLY
        for found in imports_of(source)
        if found.target.split(".")[0] in FEATURES
    ]


def test_the_kernel_names_no_feature_outside_app_and_cli() -> None:
    assert kernel_importing_features(SOURCES) == []


def test_kernel_guard_sees_the_migrations_importing_a_feature() -> None:
    samples = {
        "fse.migrations.env": "from pharmacy import tables\n",
        "fse.app": "from pharmacy import feature\n",
        "fse.serve": "def run() -> None:\n    import reimbursement.cli\n",
    }
    assert kernel_importing_features(samples) == [
        "fse.migrations.env:1 imports pharmacy",
        "fse.serve:2 imports reimbursement.cli",
    ]


def test_the_product_imports_neither_the_benchmarks_nor_the_tests() -> None:
    assert imports_from_outside(SOURCES) == []


def test_outside_guard_sees_a_lazy_import_of_the_benchmarks() -> None:
    samples = {
        "fse.cli": "def bench() -> None:\n    from bench.harness import run\n",
        "fse.app": "import tests.builders\n",
        "fse.serve": "from fse.config import Settings\n",
    }
    assert imports_from_outside(samples) == [
        "fse.app:1 imports tests.builders",
        "fse.cli:2 imports bench.harness",
    ]


def test_the_benchmarks_stand_outside_the_wheel() -> None:
    """``bench/`` imports the product; the wheel (setuptools' package list) does not hold it."""
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    included = pyproject["tool"]["setuptools"]["packages"]["find"]["include"]
    assert (ROOT / "bench" / "__main__.py").exists()
    assert not any(fnmatch("bench", pattern) for pattern in included), included
    assert all(any(fnmatch(p, pattern) for pattern in included) for p in PACKAGES)


def test_fhir_profiles_imports_nothing_of_ours() -> None:
    for module, source in SOURCES.items():
        if module.startswith("fhir_profiles"):
            ours = [i.target for i in imports_of(source) if i.target.split(".")[0] in PACKAGES]
            assert [t for t in ours if not t.startswith("fhir_profiles")] == [], module


def test_store_and_query_know_no_web_framework() -> None:
    for module, source in SOURCES.items():
        if module.startswith(("fse.store", "fse.crypto")) or module in (
            "fse.resources",
            "fse.errors",
            "fse.limits",
        ):
            web = {i.target for i in imports_of(source) if i.target.split(".")[0] in WEB_FRAMEWORKS}
            assert web == set(), module


def _kind(feature: str, module: str, source: str) -> int:
    """A feature's own floors: core 0, tables 1, services 2, pages and routes 3, tools 4."""
    short = module.removeprefix(feature + ".")
    if module == f"{feature}.core" or short.startswith("core."):
        return 0
    if short == "tables":
        return 1
    if short == "cli":
        return 4
    web = any(i.target.split(".")[0] in WEB_FRAMEWORKS for i in imports_of(source))
    return 3 if web or short in ("feature", "pages") else 2


KINDS = ("pure core", "tables", "services", "pages and routes", "tools")


def feature_upward_imports(feature: str, sources: dict[str, str]) -> list[str]:
    """Inside a feature: pages/routes -> services -> tables -> core, never back."""
    bad = []
    for module, found, target in graph(sources):
        if module.startswith(feature + ".") and target.startswith(feature + "."):
            here = _kind(feature, module, sources[module])
            there = _kind(feature, target, sources[target])
            if there > here:
                bad.append(
                    f"{module}:{found.line} ({KINDS[here]}) imports {target} ({KINDS[there]})"
                )
    return bad


def test_features_go_down_from_pages_to_services_to_tables() -> None:
    for feature in FEATURES:
        assert feature_upward_imports(feature, SOURCES) == [], feature


def test_feature_guard_sees_a_service_importing_a_page() -> None:
    samples = {
        "pharmacy.pages": "from fastapi import APIRouter\n",
        "pharmacy.dispense": "from pharmacy.pages import router\n",
        "pharmacy.tables": "import pharmacy.dispense\n",
    }
    assert feature_upward_imports("pharmacy", samples) == [
        "pharmacy.dispense:1 (services) imports pharmacy.pages (pages and routes)",
        "pharmacy.tables:1 (tables) imports pharmacy.dispense (services)",
    ]


CORE_STDLIB = frozenset(
    {
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
    }
)


def impure(source: str) -> list[str]:
    """What a module of reimbursement/core may not use: any import but these standard modules
    and the core itself (not the rest of the reimbursement package), a file, a clock, chance."""
    bad = [
        i.target
        for i in imports_of(source)
        if i.relative
        or not (
            i.target.split(".")[0] in CORE_STDLIB
            or i.target == "reimbursement.core"
            or i.target.startswith("reimbursement.core.")
        )
    ]
    return bad + [c for c in ("open(", ".now(", ".today(", "time.", "random.") if c in source]


def test_the_reimbursement_core_is_pure() -> None:
    """Data in, decision out: no database, web, network, file or clock in reimbursement/core."""
    for module, source in SOURCES.items():
        if module == "reimbursement.core" or module.startswith("reimbursement.core."):
            assert impure(source) == [], module


def test_core_guard_refuses_the_rest_of_reimbursement() -> None:
    sample = (
        "from reimbursement.core.money import amount\n"
        "from reimbursement.context import read\n"
        "import sqlalchemy\n"
        "today = date.today()\n"
    )
    assert impure(sample) == ["reimbursement.context", "sqlalchemy", ".today("]
