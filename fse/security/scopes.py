"""SMART on FHIR v2 system scopes: ``system/Claim.rs``, ``system/*.cruds`` (and v1 read/write).

Each FHIR interaction needs one letter on its resource type: c create, r read (read, vread,
history of an instance, $validate), u update, d delete, s search (and type history).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

SCOPE_RE = re.compile(r"^system/(?P<type>\*|[A-Z][A-Za-z]+)\.(?P<perms>[cruds]+|read|write|\*)$")
V1 = {"read": "rs", "write": "cud", "*": "cruds"}


class InvalidScope(ValueError):
    pass


@dataclass(frozen=True)
class Grant:
    resource_type: str
    """A resource type, or ``*`` for all."""
    permissions: frozenset[str]


def parse(scope_text: str) -> tuple[Grant, ...]:
    """Grants of a space-separated scope string; InvalidScope names the first bad one."""
    grants = []
    for scope in scope_text.split():
        match = SCOPE_RE.match(scope)
        if not match or (
            match["perms"] not in V1
            and "".join(sorted(match["perms"], key="cruds".index)) != match["perms"]
        ):
            raise InvalidScope(f"not a SMART system scope: {scope!r}")
        permissions = V1.get(match["perms"], match["perms"])
        grants.append(Grant(match["type"], frozenset(permissions)))
    return tuple(grants)


def allows(grants: tuple[Grant, ...], resource_type: str, permission: str) -> bool:
    return any(
        permission in g.permissions and g.resource_type in ("*", resource_type) for g in grants
    )


def within(requested: tuple[Grant, ...], granted: tuple[Grant, ...]) -> bool:
    """Every permission requested is granted (a token asks for a subset of its client's scopes)."""
    return all(
        allows(granted, g.resource_type, p)
        if g.resource_type != "*"
        else any(h.resource_type == "*" and p in h.permissions for h in granted)
        for g in requested
        for p in g.permissions
    )
