"""FHIR operations (``$name``): a registry that the kernel and feature packages contribute to."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from fastapi import Request, Response

from fse.fhir_api.interactions import FhirService


@dataclass(frozen=True)
class OperationCall:
    request: Request
    service: FhirService
    resource_type: str
    resource_id: str | None
    base: str


Handler = Callable[[OperationCall], Awaitable[Response]]


@dataclass(frozen=True)
class Operation:
    name: str
    """Without the ``$``."""
    resource_types: tuple[str, ...]
    handler: Handler
    type_level: bool = True
    instance_level: bool = False
    definition: str = ""
    permission: str = "r"
    """The SMART scope letter the caller needs on the resource type (c, r, u, d or s)."""
    checks_owner: bool = False
    """The handler applies a person's narrowing rule itself (``Guard.check_new``); otherwise a
    person whose role narrows ``permission`` on the type is refused (fail closed)."""


class OperationRegistry:
    def __init__(self) -> None:
        self._ops: dict[tuple[str, str], Operation] = {}

    def register(self, operation: Operation) -> None:
        for rtype in operation.resource_types:
            key = (rtype, operation.name)
            if key in self._ops:
                raise ValueError(f"operation ${operation.name} already registered on {rtype}")
            self._ops[key] = operation

    def find(self, resource_type: str, name: str) -> Operation | None:
        return self._ops.get((resource_type, name))

    def for_type(self, resource_type: str) -> list[Operation]:
        return [op for (rtype, _), op in sorted(self._ops.items()) if rtype == resource_type]
