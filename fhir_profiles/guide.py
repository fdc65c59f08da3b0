"""The AMO implementation guide: the FHIR JSON definitions in ``definitions/`` and what they say.

Definitions are data; this module reads them: NamingSystems and the identifier rule each one
names (extension ``identifier-rule``), CodeSystems, and ValueSets expanded to their codes.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from fhir_profiles.identifiers import RULES
from fhir_profiles.systems import IDENTIFIER_RULE_EXTENSION as RULE_EXTENSION

DEFINITIONS = Path(__file__).parent / "definitions"


@dataclass(frozen=True)
class IdentifierSystem:
    system: str
    """The preferred URI (what ``Identifier.system`` holds)."""
    name: str
    kind: str
    """identifier (checks Identifier.value) or codesystem (checks Coding.code)."""
    rule: Callable[[str], str | None]
    aliases: tuple[str, ...]


def definitions(resource_type: str | None = None) -> list[dict[str, Any]]:
    """Every definition of the guide (optionally of one type), sorted by file name."""
    found = []
    for path in sorted(DEFINITIONS.glob("*.json")):
        resource = json.loads(path.read_text(encoding="utf-8"))
        if resource_type is None or resource["resourceType"] == resource_type:
            found.append(resource)
    return found


def _rule_of(naming_system: dict[str, Any]) -> Callable[[str], str | None]:
    codes = [
        e["valueCode"] for e in naming_system.get("extension", []) if e["url"] == RULE_EXTENSION
    ]
    if len(codes) != 1 or codes[0] not in RULES:
        raise ValueError(f"NamingSystem/{naming_system['id']} must name one known identifier rule")
    return RULES[codes[0]]


@cache
def identifier_systems() -> dict[str, IdentifierSystem]:
    """Identifier systems by every URI or OID they are known under."""
    by_uri: dict[str, IdentifierSystem] = {}
    for naming_system in definitions("NamingSystem"):
        unique = naming_system["uniqueId"]
        preferred = next(u["value"] for u in unique if u.get("preferred"))
        aliases = tuple(
            u["value"] if u["type"] != "oid" else f"urn:oid:{u['value']}" for u in unique
        )
        entry = IdentifierSystem(
            preferred,
            naming_system["name"],
            naming_system["kind"],
            _rule_of(naming_system),
            aliases,
        )
        for alias in aliases:
            if alias in by_uri:
                raise ValueError(f"{alias} is declared by two NamingSystems")
            by_uri[alias] = entry
    return by_uri


@cache
def code_systems() -> dict[str, dict[str, Any]]:
    return {cs["url"]: cs for cs in definitions("CodeSystem")}


@cache
def value_set_codes(url: str) -> frozenset[tuple[str, str]]:
    """(system, code) pairs of a guide ValueSet: listed concepts, or every code of a guide
    CodeSystem included whole. Raises KeyError for a ValueSet the guide does not define."""
    value_set = next((vs for vs in definitions("ValueSet") if vs["url"] == url), None)
    if value_set is None:
        raise KeyError(url)
    pairs: set[tuple[str, str]] = set()
    for include in value_set["compose"]["include"]:
        system = include["system"]
        if "concept" in include:
            pairs.update((system, c["code"]) for c in include["concept"])
        else:
            pairs.update((system, c["code"]) for c in code_systems()[system]["concept"])
    return frozenset(pairs)


def identifier_problem(system: str, value: str) -> str | None:
    """What is wrong with ``value`` under ``system`` (None if valid or the system is not ours)."""
    known = identifier_systems().get(system)
    return known.rule(value) if known else None
