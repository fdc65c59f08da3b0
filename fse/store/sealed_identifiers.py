"""CINs sealed on their way into the store and opened on their way out.

Every Identifier of the CIN system, wherever it sits in a resource (a Patient's identifier, a
Claim's ``patient.identifier``), is stored sealed; its index rows and its claim on uniqueness
hold the blind index instead of the number; searches by CIN look the blind index up. Resources
without a CIN (nearly all writes) cost one substring test, reads one more. The text opened or
resealed keeps its decimals as stored (``fse.fhir_json``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

from fhir_profiles.identifiers import cin_problem, masked_cin
from fhir_profiles.systems import CIN_SYSTEM
from fse import fhir_json
from fse.crypto.cin import SEALED_PREFIX, CinVault, is_sealed
from fse.store.indexing import IndexRows
from fse.store.query import ANY, Chain, Criterion, SearchQuery


def _mapped(node: Any, change: Callable[[str], str]) -> Any:
    """A copy of ``node`` with ``change`` applied to the value of every CIN Identifier."""
    if isinstance(node, dict):
        copy = {key: _mapped(value, change) for key, value in node.items()}
        if copy.get("system") == CIN_SYSTEM and isinstance(copy.get("value"), str):
            copy["value"] = change(copy["value"])
        return copy
    if isinstance(node, list):
        return [_mapped(item, change) for item in node]
    return node


class SealedIdentifiers:
    def __init__(self, vault: CinVault) -> None:
        self.vault = vault

    def at_rest(self, resource: dict[str, Any], content: str) -> str:
        """The JSON text to store for ``resource`` (served as ``content``)."""
        if CIN_SYSTEM not in content:
            return content
        return fhir_json.dumps(_mapped(resource, self.vault.seal)).decode()

    def served(self, content: str | None) -> str | None:
        """Stored JSON text with its CINs opened (values stored before sealing pass as they are)."""
        if content is None or SEALED_PREFIX not in content:
            return content
        return fhir_json.dumps(_mapped(fhir_json.loads(content), self._open)).decode()

    def _open(self, value: str) -> str:
        return self.vault.open(value) if is_sealed(value) else value

    def resealed(self, content: str) -> str | None:
        """Stored JSON text with every CIN under the current key (clear ones sealed), or None
        when it already is: what key rotation writes back."""
        changed = False

        def current(value: str) -> str:
            nonlocal changed
            if is_sealed(value) and self.vault.is_current(value):
                return value
            changed = True
            return self.vault.seal(self._open(value))

        resealed = _mapped(fhir_json.loads(content), current)
        return fhir_json.dumps(resealed).decode() if changed else None

    def index_pair(self, system: str, value: str) -> tuple[str, str]:
        """How an identifier is indexed and claimed: a CIN by its blind index."""
        return (system, self.vault.blind(value)) if system == CIN_SYSTEM else (system, value)

    def index(self, rows: IndexRows) -> IndexRows:
        """``rows`` with CIN tokens and identifiers replaced by their blind index (in place)."""
        for row in rows.token:
            if row["system"] == CIN_SYSTEM:
                row["code"] = self.vault.blind(row["code"])
        rows.identifiers[:] = sorted(self.index_pair(s, v) for s, v in rows.identifiers)
        return rows

    def query(self, query: SearchQuery) -> SearchQuery:
        """``query`` with CIN token values replaced by their blind index."""
        criteria = [self._criterion(c) for c in query.criteria]
        if all(new is old for new, old in zip(criteria, query.criteria, strict=True)):
            return query
        return dataclasses.replace(query, criteria=criteria)

    def _criterion(self, criterion: Criterion | Chain) -> Criterion | Chain:
        if isinstance(criterion, Chain):
            inner = {t: self._criterion(c) for t, c in criterion.inner.items()}
            if all(inner[t] is c for t, c in criterion.inner.items()):
                return criterion
            return dataclasses.replace(criterion, inner=inner)  # type: ignore[arg-type]
        if criterion.kind != "token" or criterion.modifier == "missing":
            return criterion
        if not any(self._names_cin(system, code) for system, code in criterion.values):
            return criterion
        values: list[tuple[Any, str | None]] = []
        for system, code in criterion.values:
            if system == CIN_SYSTEM and code:
                values.append((system, self.vault.blind(code)))
                continue
            values.append((system, code))
            if self._names_cin(system, code):  # a code without system may be a CIN too
                values.append((CIN_SYSTEM, self.vault.blind(code)))
        return dataclasses.replace(criterion, values=tuple(values))

    @staticmethod
    def _names_cin(system: Any, code: str | None) -> bool:
        if not code:
            return False
        return system == CIN_SYSTEM or (system is ANY and cin_problem(code) is None)


def shown_identifier(system: str, value: str) -> str:
    """``system|value`` for a message, the CIN masked."""
    return f"{system}|{masked_cin(value) if system == CIN_SYSTEM else value}"
