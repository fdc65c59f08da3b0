"""Dates of care, creation and dispense may not be in the future (FSE-0034).

The engine pays for care that was given: a Claim dated 2030 (or 9999-12-31) describes nothing
that happened yet, and paying it now would pay for nothing. Which elements are checked is data
(:data:`CARE_DATES`), so the rule reads in one place and every write path applies the same one.

Pure: no I/O and no clock; the caller passes ``now`` (so tests pin it).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta, tzinfo
from typing import Any

from fse.errors import ErrorCode, Issue, Unprocessable
from fse.store.dates import DateOutOfRange, date_range

CARE_DATES: Mapping[str, tuple[str, ...]] = {
    # The care sheet paid by the engine: when it was written, the period billed, each line.
    "Claim": (
        "created",
        "billablePeriod.start",
        "billablePeriod.end",
        "item.servicedDate",
        "item.servicedPeriod.start",
        "item.servicedPeriod.end",
    ),
    # Handed over at the counter: prepared and given, never later than now.
    "MedicationDispense": ("whenPrepared", "whenHandedOver"),
    # An act performed (the AMO act profile): it happened, whatever its form.
    "ChargeItem": (
        "occurrenceDateTime",
        "occurrencePeriod.start",
        "occurrencePeriod.end",
        "occurrenceTiming.event",
    ),
    # The consultation of a care sheet: it has begun (its end may still be planned).
    "Encounter": ("period.start",),
    # A prescription or a lab order is signed when written (its validity may run later).
    "MedicationRequest": ("authoredOn",),
    "ServiceRequest": ("authoredOn",),
}
"""Per resource type, the FHIR-path-like elements (lists walked) that may not be later than now.

Deliberately not checked: ``MedicationRequest.dispenseRequest.validityPeriod`` and
``ServiceRequest.occurrence[x]`` (they name the future on purpose), ``Encounter.period.end``,
coverage and rights periods, and CoverageEligibilityRequest (a question about a date, not a
payment)."""


@dataclass(frozen=True)
class FutureDate:
    path: str
    """Where it is, with list indexes: ``Claim.item[1].servicedDate``."""
    value: str


def values_with_paths(node: Any, segments: list[str], path: str) -> Iterator[tuple[str, Any]]:
    """Every value at ``segments`` under ``node``, with its path (lists get an index)."""
    if not segments:
        yield path, node
        return
    value = node.get(segments[0]) if isinstance(node, dict) else None
    here = f"{path}.{segments[0]}"
    if isinstance(value, list):
        for index, item in enumerate(value):
            yield from values_with_paths(item, segments[1:], f"{here}[{index}]")
    elif value is not None:
        yield from values_with_paths(value, segments[1:], here)


def latest_allowed(now: datetime, tolerance: timedelta, zone: tzinfo) -> tuple[datetime, date]:
    """The last instant and the last day (in the platform's zone) that are not the future."""
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    latest = now + tolerance
    return latest, latest.astimezone(zone).date()


def is_future(text: str, latest: datetime, today: date) -> bool:
    """A dateTime/instant counts from its first instant, a date (YYYY, YYYY-MM, YYYY-MM-DD)
    from its first day. Text that is not a FHIR date is left to the model check."""
    try:
        first, _ = date_range(text)
    except DateOutOfRange:  # an instant past the very end (or start) of the calendar in UTC
        return text[:4] == "9999"
    except ValueError:
        return False
    if "T" in text:
        return first > latest
    return first.date() > today


def future_dates(
    resource: dict[str, Any], now: datetime, tolerance: timedelta, zone: tzinfo
) -> list[FutureDate]:
    """Every checked element of ``resource`` later than ``now`` + ``tolerance``, in table order."""
    rtype = resource.get("resourceType")
    elements = CARE_DATES.get(rtype, ()) if isinstance(rtype, str) else ()
    if not elements:
        return []
    latest, today = latest_allowed(now, tolerance, zone)
    return [
        FutureDate(path, value)
        for element in elements
        for path, value in values_with_paths(resource, element.split("."), str(rtype))
        if isinstance(value, str) and is_future(value, latest, today)
    ]


def refuse_future_dates(
    resource: dict[str, Any], now: datetime, tolerance: timedelta, zone: tzinfo
) -> None:
    """Raise 422 FSE-0034 with one issue per element dated in the future."""
    found = future_dates(resource, now, tolerance, zone)
    if not found:
        return
    moment = now.astimezone(zone).isoformat(timespec="seconds")
    issues = [
        Issue(
            ErrorCode.DATE_IN_FUTURE,
            f"date dans le futur : {f.value} est postérieure à maintenant ({moment}, "
            f"tolérance {int(tolerance.total_seconds())} s)",
            (f.path,),
            issue_type="business-rule",
        )
        for f in found
    ]
    raise Unprocessable.of(issues, ErrorCode.DATE_IN_FUTURE)
