"""One validator for the AMO guide: reads its StructureDefinitions, checks a resource against them.

What it checks, all read from the guide's JSON (no per-resource code):
- cardinality (``min``/``max``) of differential elements, relative to each parent instance;
- ``fixed[x]`` (equality) and ``pattern[x]`` (the instance contains the pattern) values;
- ``required`` bindings to guide ValueSets, on CodeableConcept, Coding and code values;
- identifier slices discriminated by ``system`` (how many identifiers of each kind);
- invariants (``constraint.expression``) with FHIRPath (fhirpathpy);
- every Identifier and Coding whose system has a NamingSystem, with that system's rule.

Pure: dict in, problems out, every problem with its element path. Problems are in French: doctors
and pharmacists read them.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import cache
from typing import Any

import fhirpathpy

from fhir_profiles.guide import definitions, identifier_systems, value_set_codes
from fhir_profiles.systems import CANONICAL

EXTENSION_SLOT = re.compile(r"\.(?:modifierExtension|extension)\[\d+\]$")
Node = tuple[str, Any]
"""A value in a resource with its concrete FHIRPath (``Patient.identifier[1].value``)."""


@dataclass(frozen=True)
class Problem:
    path: str
    message: str
    rule: str
    """cardinality, fixed, pattern, binding, slice, invariant, identifier or profile."""


@dataclass(frozen=True)
class Profile:
    url: str
    version: str
    type: str
    elements: tuple[dict[str, Any], ...]
    invariants: tuple[tuple[str, str, Callable[[Any], list[Any]]], ...]
    """(key, human text, compiled expression) of the root element's constraints."""

    @property
    def canonical(self) -> str:
        return f"{self.url}|{self.version}"


def _compile(structure: dict[str, Any]) -> Profile:
    elements = tuple(structure["differential"]["element"])
    root = next((e for e in elements if e["path"] == structure["type"]), {})
    invariants = tuple(
        (c["key"], c["human"], fhirpathpy.compile(c["expression"]))
        for c in root.get("constraint", [])
    )
    return Profile(structure["url"], structure["version"], structure["type"], elements, invariants)


@cache
def profiles() -> dict[str, Profile]:
    """Every profile of the guide by ``url`` and by ``url|version``."""
    found: dict[str, Profile] = {}
    for structure in definitions("StructureDefinition"):
        profile = _compile(structure)
        found[profile.canonical] = profile
        current = found.get(profile.url)
        if current is None or _version_key(profile.version) > _version_key(current.version):
            found[profile.url] = profile
    return found


@cache
def default_profiles() -> dict[str, Profile]:
    """The latest profile of each resource type: what a resource without meta.profile meets."""
    latest: dict[str, Profile] = {}
    for url, profile in profiles().items():
        if "|" not in url:
            latest[profile.type] = profile
    return latest


def _version_key(version: str) -> tuple[int, ...]:
    return tuple(int(part) for part in version.split(".") if part.isdigit())


def nodes_at(resource: dict[str, Any], path: str, root: str | None = None) -> list[Node]:
    """Values at a StructureDefinition path, each with its concrete path; arrays flattened.

    ``root`` names where ``resource`` sits (an extension inside a resource), default the type.
    """
    steps = path.split(".")
    current: list[Node] = [(root or steps[0], resource)]
    for step in steps[1:]:
        found: list[Node] = []
        for where, node in current:
            if not isinstance(node, dict):
                continue
            keys = [k for k in node if k.startswith(step[:-3])] if step.endswith("[x]") else [step]
            for key in keys:
                if key not in node:
                    continue
                value = node[key]
                if isinstance(value, list):
                    found.extend((f"{where}.{key}[{i}]", item) for i, item in enumerate(value))
                else:
                    found.append((f"{where}.{key}", value))
        current = found
    return current


def _contains(instance: Any, pattern: Any) -> bool:
    """FHIR pattern semantics: every value in the pattern is present in the instance."""
    if isinstance(pattern, dict):
        return isinstance(instance, dict) and all(
            k in instance and _contains(instance[k], v) for k, v in pattern.items()
        )
    if isinstance(pattern, list):
        return isinstance(instance, list) and all(
            any(_contains(item, p) for item in instance) for p in pattern
        )
    return instance == pattern


def _prefixed(element: dict[str, Any], prefix: str) -> Any:
    for key, value in element.items():
        if key.startswith(prefix) and key != prefix:
            return value
    return None


def _cardinality(
    resource: dict[str, Any], element: dict[str, Any], root: str | None
) -> Iterator[Problem]:
    parent_path, _, last = element["path"].rpartition(".")
    minimum, maximum = element.get("min", 0), element.get("max", "*")
    for where, parent in nodes_at(resource, parent_path, root):
        if not isinstance(parent, dict):
            continue
        count = len(nodes_at(parent, f"x.{last}"))
        if count < minimum:
            yield Problem(
                f"{where}.{last}", f"{last} est obligatoire (au moins {minimum})", "cardinality"
            )
        if maximum != "*" and count > int(maximum):
            yield Problem(
                f"{where}.{last}", f"{last} : au plus {maximum} autorisé(s)", "cardinality"
            )


def _slice_pattern(element: dict[str, Any]) -> Any:
    """What members of the slice look like: its pattern, or the url of its extension profile."""
    pattern = _prefixed(element, "pattern")
    if pattern is None:
        profiles_of_type = [p for t in element.get("type", []) for p in t.get("profile", [])]
        pattern = {"url": profiles_of_type[0]} if profiles_of_type else {}
    return pattern


def _slice(
    resource: dict[str, Any], element: dict[str, Any], root: str | None
) -> Iterator[Problem]:
    pattern = _slice_pattern(element)
    parent_path, _, last = element["path"].rpartition(".")
    minimum, maximum = element.get("min", 0), element.get("max", "*")
    label = element.get("short", element["sliceName"])
    for where, parent in nodes_at(resource, parent_path, root):
        items = nodes_at(parent, f"x.{last}") if isinstance(parent, dict) else []
        count = sum(1 for _, item in items if _contains(item, pattern))
        if count < minimum:
            yield Problem(f"{where}.{last}", f"{label} : obligatoire", "slice")
        if maximum != "*" and count > int(maximum):
            yield Problem(f"{where}.{last}", f"{label} : au plus {maximum}", "slice")


def _codings(value: Any) -> list[tuple[str | None, str | None]]:
    if isinstance(value, str):
        return [(None, value)]
    if isinstance(value, dict) and "coding" in value:
        return [(c.get("system"), c.get("code")) for c in value["coding"]]
    if isinstance(value, dict):
        return [(value.get("system"), value.get("code"))]
    return []


def _binding(
    resource: dict[str, Any], element: dict[str, Any], root: str | None
) -> Iterator[Problem]:
    binding = element["binding"]
    allowed = value_set_codes(binding["valueSet"])
    codes = {code for _, code in allowed}
    for where, value in nodes_at(resource, element["path"], root):
        codings = _codings(value)
        if not any((s, c) in allowed or (s is None and c in codes) for s, c in codings):
            shown = ", ".join(f"{s}|{c}" if s else str(c) for s, c in codings) or "aucun code"
            yield Problem(
                where, f"code non autorisé ({shown}) ; attendu : {binding['valueSet']}", "binding"
            )


def _values(
    resource: dict[str, Any], element: dict[str, Any], root: str | None
) -> Iterator[Problem]:
    fixed, pattern = _prefixed(element, "fixed"), _prefixed(element, "pattern")
    for where, value in nodes_at(resource, element["path"], root):
        if fixed is not None and value != fixed:
            yield Problem(where, f"valeur imposée : {fixed!r}", "fixed")
        if pattern is not None and not _contains(value, pattern):
            yield Problem(where, f"doit contenir {pattern!r}", "pattern")


def _element_problems(
    resource: dict[str, Any], element: dict[str, Any], root: str | None = None
) -> Iterator[Problem]:
    if "sliceName" in element:
        if ":" not in element["id"].split(".")[-1]:
            return
        yield from _slice(resource, element, root)
        return
    if ":" in element["id"]:
        return  # children of a slice: their rules live in the slice's pattern or profile
    if "." in element["path"] and ("min" in element or "max" in element):
        yield from _cardinality(resource, element, root)
    if element.get("binding", {}).get("strength") == "required":
        yield from _binding(resource, element, root)
    yield from _values(resource, element, root)


def _walk(node: Any, where: str) -> Iterator[Node]:
    if isinstance(node, dict):
        yield where, node
        for key, value in node.items():
            yield from _walk(value, f"{where}.{key}")
    elif isinstance(node, list):
        for index, item in enumerate(node):
            yield from _walk(item, f"{where}[{index}]")


def _node_problems(resource: dict[str, Any], root: str) -> Iterator[Problem]:
    """One walk over the resource: each guide extension checked against its definition where it
    sits, each Identifier (system+value) and Coding (system+code) by its NamingSystem."""
    known, systems = profiles(), identifier_systems()
    for where, node in _walk(resource, root):
        url = node.get("url")
        if isinstance(url, str) and EXTENSION_SLOT.search(where):
            definition = known.get(url)
            if definition is not None and definition.type == "Extension":
                for element in definition.elements:
                    yield from _element_problems(node, element, where)
        system = node.get("system")
        named = systems.get(system) if isinstance(system, str) else None
        if named is None:
            continue
        field = "value" if named.kind == "identifier" else "code"
        value = node.get(field)
        if isinstance(value, str):
            problem = named.rule(value)
            if problem:
                yield Problem(f"{where}.{field}", problem, "identifier")


def _selected(resource: dict[str, Any]) -> tuple[Profile | None, list[Problem]]:
    rtype = resource["resourceType"]
    claimed = (resource.get("meta") or {}).get("profile") or []
    ours = [p for p in claimed if p.startswith(CANONICAL)]
    if not ours:
        return default_profiles().get(rtype), []
    profile = profiles().get(ours[0])
    if profile is None or profile.type != rtype:
        return None, [Problem(f"{rtype}.meta.profile[0]", f"profil inconnu : {ours[0]}", "profile")]
    return profile, []


def validate(resource: dict[str, Any]) -> list[Problem]:
    """Every problem of the resource against its AMO profile and the identifier rules."""
    rtype = resource["resourceType"]
    profile, problems = _selected(resource)
    if profile is not None:
        for element in profile.elements:
            problems.extend(_element_problems(resource, element))
        for key, human, expression in profile.invariants:
            if expression(resource) != [True]:
                problems.append(Problem(rtype, f"{human} ({key})", "invariant"))
    problems.extend(_node_problems(resource, rtype))
    return problems


def warm_up() -> None:
    """Compile the guide now (profiles, FHIRPath invariants, value sets, naming systems) rather
    than on a worker's first write, while clients wait behind it."""
    for profile in profiles().values():
        for element in profile.elements:
            binding = element.get("binding", {})
            if binding.get("strength") == "required":
                value_set_codes(binding["valueSet"])
    identifier_systems()


def profile_of(resource: dict[str, Any]) -> str | None:
    """The canonical (url|version) the resource is validated against, to record in meta.profile."""
    profile, _ = _selected(resource)
    return profile.canonical if profile else None
