"""What a Subscription may ask for: ``Type`` or ``Type?param=value[,value]&...``, where the type
and parameters are those the outbox events describe (their ``focus``). Features declare them
when they are installed, as they register operations."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

from fse.errors import ErrorCode, Unprocessable

CRITERIA_PATH = ("Subscription.criteria",)


@dataclass
class Topics:
    """Resource types whose changes are announced, with the search parameters the events carry."""

    filters: dict[str, frozenset[str]] = field(default_factory=dict)

    def offer(self, resource_type: str, params: tuple[str, ...]) -> None:
        self.filters[resource_type] = self.filters.get(resource_type, frozenset()) | set(params)

    def describe(self) -> str:
        return "; ".join(
            f"{rtype}?{'|'.join(sorted(ps))}=…" for rtype, ps in sorted(self.filters.items())
        )


@dataclass(frozen=True)
class Criteria:
    resource_type: str
    filters: dict[str, tuple[str, ...]]

    def matches(self, event: dict[str, Any]) -> bool:
        subject_type = str(event.get("subject", "")).partition("/")[0]
        if subject_type != self.resource_type:
            return False
        focus = event.get("focus") or {}
        return all(focus.get(param) in values for param, values in self.filters.items())


def parse_criteria(text: str | None, topics: Topics) -> Criteria:
    """The criteria, or a 422 naming what can be subscribed to."""
    if not text or not text.strip():
        raise _refused("Subscription.criteria is required", topics)
    rtype, _, query = text.strip().partition("?")
    if rtype not in topics.filters:
        raise _refused(f"no events are published for {rtype!r}", topics)
    filters: dict[str, tuple[str, ...]] = {}
    for param, value in parse_qsl(query, keep_blank_values=True):
        if param not in topics.filters[rtype]:
            raise _refused(f"{rtype} events cannot be filtered on {param!r}", topics)
        values = tuple(v for v in value.split(",") if v)
        if not values:
            raise _refused(f"{param} has no value", topics)
        filters[param] = tuple(sorted({*filters.get(param, ()), *values}))
    return Criteria(rtype, filters)


def _refused(reason: str, topics: Topics) -> Unprocessable:
    return Unprocessable(
        f"{reason}; subscribable: {topics.describe()}",
        CRITERIA_PATH,
        code=ErrorCode.INVALID_SUBSCRIPTION,
    )
