"""Reference data comes in dated versions: the one in force on the date of care applies."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any, Protocol, TypeVar


class Dated(Protocol):
    @property
    def valid_from(self) -> date: ...

    @property
    def valid_to(self) -> date | None: ...


D = TypeVar("D", bound=Dated)


def in_force(version: Dated, on: date) -> bool:
    return version.valid_from <= on and (version.valid_to is None or on <= version.valid_to)


def newest_first(versions: Iterable[D]) -> list[D]:
    return sorted(versions, key=lambda v: v.valid_from, reverse=True)


def version_on(versions: Sequence[D], on: date) -> D | None:
    """The newest version in force on ``on`` (``versions`` sorted newest first)."""
    for version in versions:
        if in_force(version, on):
            return version
    return None


def parse_date(value: Any) -> date | None:
    return None if value in (None, "") else date.fromisoformat(str(value))


@dataclass(frozen=True)
class Citation:
    """Where a dated list comes from, and the notice its licence asks for wherever it is shown
    (the ODbL of the CNOPS medicines list; the NGAP list's source)."""

    title: str = ""
    attribution: str = ""
    licence: str = ""
    licence_url: str = ""
    source_url: str = ""


def citation_of(data: Mapping[str, Any]) -> Citation:
    return Citation(**{name: str(data.get(name) or "") for name in Citation.__dataclass_fields__})
