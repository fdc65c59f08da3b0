"""Count the SQL statements one operation sends: the test-side witness that a path reads once
and writes once, so statements per operation cannot creep back unseen."""

from __future__ import annotations

import contextvars
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine


@dataclass(frozen=True)
class Sent:
    sql: str
    parameters: Any

    def reads(self, rtype: str) -> bool:
        """A read or search of resources of ``rtype`` (the type is always the first bind), or
        a read of resources with their referrers (``read_each_with_referrers``) that reads it."""
        values = list(self.parameters.values()) if isinstance(self.parameters, dict) else []
        if isinstance(self.parameters, Sequence) and not isinstance(self.parameters, str):
            values = list(self.parameters)
        if self.sql.startswith("SELECT anon_1.q,"):
            return rtype in values
        if not self.sql.startswith("SELECT resources."):
            return False
        return bool(values) and values[0] == rtype


_counting: contextvars.ContextVar[list[Sent] | None] = contextvars.ContextVar(
    "counting", default=None
)


@contextmanager
def statements(engine: AsyncEngine) -> Iterator[list[Sent]]:
    """The statements sent by this task (and the tasks it starts) while inside the block; the
    runtime's own background tasks (audit flushes, outbox relay) started before are not
    counted. BEGIN and COMMIT are not statements the driver reports, so they are not counted."""
    sent: list[Sent] = []

    def record(conn: Any, cursor: Any, statement: str, parameters: Any, *args: Any) -> None:
        found = _counting.get()
        if found is not None:
            found.append(Sent(" ".join(statement.split()), parameters))

    token = _counting.set(sent)
    event.listen(engine.sync_engine, "before_cursor_execute", record)
    try:
        yield sent
    finally:
        event.remove(engine.sync_engine, "before_cursor_execute", record)
        _counting.reset(token)


def validations(monkeypatch: Any) -> list[str]:
    """The resource types ``FhirService`` validates from now on (the R4B model and the guide),
    in order: what a path validates per request, against what tests prove once."""
    import fse.fhir_api.interactions as interactions

    validated: list[str] = []
    real = interactions.validate

    def counted(resource: dict[str, Any]) -> None:
        validated.append(str(resource["resourceType"]))
        real(resource)

    monkeypatch.setattr(interactions, "validate", counted)
    return validated
