"""What one export covers: resource types, ``_since``, and the Patient compartment (pure).

A Patient-level export holds the Patients themselves and every resource whose reference search
parameters that may point to a Patient (``patient``, ``subject``, ``beneficiary``,
``subscriber``, ...) name one of them, as the FHIR Patient compartment does; the store already
indexes those references in ``idx_reference``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from fse.store.search_params import REFERENCE, SEARCH_PARAMS

SYSTEM, PATIENT = "system", "patient"


def _compartment() -> dict[str, tuple[str, ...]]:
    found: dict[str, tuple[str, ...]] = {"Patient": ()}
    for rtype, params in SEARCH_PARAMS.items():
        names = tuple(p.name for p in params if p.type == REFERENCE and "Patient" in p.targets)
        if names and rtype != "Patient":
            found[rtype] = names
    return found


PATIENT_COMPARTMENT: dict[str, tuple[str, ...]] = _compartment()
"""Per type in the Patient compartment, the reference parameters naming the Patient."""


@dataclass(frozen=True)
class ExportScope:
    types: tuple[str, ...]
    since: datetime | None = None
    level: str = SYSTEM
    """``system`` (everything) or ``patient`` (Patient compartments)."""
    patient_id: str | None = None
    """One insured's compartment; None at Patient level: every patient's."""
