"""Reference data comes in dated versions: the one in force on the date of care applies."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
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
