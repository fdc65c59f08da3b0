"""What the platform itself changes in a signed care sheet after signing, as data, and why.

``fse sheet verify`` compares each signed resource's current version with the signed one. A
difference listed here is the sheet's life and is reported ("délivrée", "annulée"); any other
difference is tampering. ``meta`` is not signed (the server stamps it) and is not compared.
Found by reading every update of Encounter, ChargeItem, MedicationRequest, ServiceRequest and
Claim: pharmacy/dispense.py, pharmacy/reversal.py (which restores what dispense.py changed; it
cancels the pharmacy's own Claim, not the doctor's) and prescriber/cancel.py.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from fhir_profiles.systems import REMAINING_QUANTITY_EXTENSION as REMAINING
from prescriber.cancel import CANCELLED

EXTENSION = "extension:"
"""Prefix of an element that is one extension (by URL) rather than a top-level element."""


@dataclass(frozen=True)
class Allowed:
    """An element of a signed resource the platform may change after signing."""

    rtype: str
    element: str
    """A top-level element, or ``extension:<url>``."""
    values: frozenset[str] | None
    """The values it may take (a status); None: any value."""
    label: str
    """How ``fse sheet verify`` reports it."""
    why: str


LIFECYCLE: tuple[Allowed, ...] = (
    Allowed(
        "MedicationRequest",
        "status",
        frozenset({"completed"}),
        "délivrée",
        "pharmacy/dispense.py: the line's last boxes are handed over (reversal.py sets it back)",
    ),
    Allowed(
        "MedicationRequest",
        f"{EXTENSION}{REMAINING}",
        None,
        "délivrée",
        "pharmacy/dispense.py: the boxes left to hand over (reversal.py gives boxes back)",
    ),
    *(
        Allowed(
            rtype,
            "status",
            frozenset({status}),
            "annulée",
            "prescriber/cancel.py: the doctor cancels the sheet (until a line is dispensed)",
        )
        for rtype, status in CANCELLED.items()
    ),
)


@dataclass(frozen=True)
class Changes:
    lifecycle: list[tuple[Allowed, str]]
    """Each allowed change made, with what it shows now (e.g. "status completed")."""
    tampered: list[str]
    """The other elements that changed: the resource is no longer what was signed."""


def _of(extensions: Any, url: str) -> list[Any]:
    return [e for e in extensions or [] if isinstance(e, dict) and e.get("url") == url]


def _without(extensions: Any, urls: set[str]) -> list[Any]:
    return [e for e in extensions or [] if not (isinstance(e, dict) and e.get("url") in urls)]


def _shown(extensions: list[Any]) -> str:
    """The value of an extension, as short as can be read (``0`` for 0.0 boxes)."""
    values = [
        v.get("value") if isinstance(v, dict) else v
        for e in extensions
        for k, v in e.items()
        if k.startswith("value")
    ]
    text = ", ".join(f"{v.normalize():f}" if isinstance(v, Decimal) else str(v) for v in values)
    return text or "retirée"


def changes(signed: dict[str, Any], current: dict[str, Any]) -> Changes:
    """What differs between the signed version of a resource and its current one."""
    allowed = [a for a in LIFECYCLE if a.rtype == signed.get("resourceType")]
    by_url = {
        a.element.removeprefix(EXTENSION): a for a in allowed if a.element.startswith(EXTENSION)
    }
    lifecycle: list[tuple[Allowed, str]] = []
    tampered: list[str] = []
    for element in sorted((set(signed) | set(current)) - {"meta"}):
        before, after = signed.get(element), current.get(element)
        if element == "extension":
            for url, rule in by_url.items():
                if _of(before, url) != _of(after, url):
                    name = url.rsplit("/", 1)[-1]
                    lifecycle.append((rule, f"{name} {_shown(_of(after, url))}"))
            before, after = _without(before, set(by_url)), _without(after, set(by_url))
        if before == after:
            continue
        rule = next(
            (
                a
                for a in allowed
                if a.element == element and a.values is not None and after in a.values
            ),
            None,
        )
        if rule is None:
            tampered.append(element)
        else:
            lifecycle.append((rule, f"{element} {after}"))
    return Changes(lifecycle, tampered)
