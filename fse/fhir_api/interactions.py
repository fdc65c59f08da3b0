"""FHIR interactions as one service used by the routes and by transaction Bundles.

Methods taking ``conn`` run inside the caller's transaction; events are announced only after
the caller has committed, so subscribers never hear of a write that was rolled back.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qsl
from zoneinfo import ZoneInfo

import orjson
from sqlalchemy.ext.asyncio import AsyncConnection

from fse.care_dates import refuse_future_dates
from fse.config import Settings
from fse.crypto.cin import vault_for
from fse.db import create_engine
from fse.errors import BadRequest, ErrorCode, FhirError, PreconditionFailed
from fse.resources import check_type, declare_profile, name_of, require_supported, validate
from fse.runtime import Runtime, build_runtime
from fse.store.query import SearchQuery, parse_search
from fse.store.repository import ResourceStore, Stored
from fse.store.search_params import SUPPORTED_TYPES


@dataclass(frozen=True)
class Written:
    stored: Stored
    created: bool
    """False when a conditional create matched an existing resource."""


def _utc_now() -> datetime:
    return datetime.now(UTC)


Item = tuple[str, dict[str, Any], str | None]
"""A resource to create: its type, its body, the id it is stored under (None: a new one)."""


def under_their_ids(resources: list[dict[str, Any]]) -> list[Item]:
    """Resources the platform built with their ids, as :meth:`FhirService.create_generated_many`
    items (the id goes apart from the body)."""
    return [
        (r["resourceType"], {k: v for k, v in r.items() if k != "id"}, r["id"]) for r in resources
    ]


class FhirService:
    def __init__(
        self,
        store: ResourceStore,
        runtime: Runtime,
        settings: Settings,
        clock: Callable[[], datetime] = _utc_now,
    ) -> None:
        self.clock = clock
        """What "now" is for the dates-in-the-future rule (tests pin it)."""
        self.store = store
        self.runtime = runtime
        self.settings = settings

    def parse_search(self, rtype: str, items: list[tuple[str, str]], strict: bool) -> SearchQuery:
        query = parse_search(
            rtype,
            items,
            default_count=self.settings.default_page_size,
            max_count=self.settings.max_page_size,
        )
        if strict and query.unknown:
            raise BadRequest(
                f"unknown search parameter(s) for {rtype}: {', '.join(query.unknown)}",
                tuple(query.unknown),
                code=ErrorCode.UNKNOWN_SEARCH_PARAMETER,
            )
        return query

    async def create(
        self,
        conn: AsyncConnection,
        rtype: str,
        resource: dict[str, Any],
        if_none_exist: str | None = None,
        rid: str | None = None,
    ) -> Written:
        require_supported(rtype)
        check_type(resource, rtype)
        validate(resource)
        self.check_care_dates(resource)
        declare_profile(resource)
        if if_none_exist is not None:
            existing = await self.match_conditional(conn, rtype, if_none_exist)
            if existing is not None:
                return Written(existing, created=False)
        return Written(await self.store.create(conn, rtype, resource, rid), created=True)

    async def create_generated(
        self, conn: AsyncConnection, rtype: str, resource: dict[str, Any], rid: str | None = None
    ) -> Stored:
        """Store a resource the platform built itself (a signed sheet, a dispense, the
        engine's answers, an AuditEvent): its dates are checked and its profile declared as
        on any create, but it is not validated again per request (the R4B model alone costs
        0.4-0.9 ms a resource). The tests validate every shape generated instead
        (tests/prescriber/test_signing_path.py, tests/pharmacy/test_dispense_path.py,
        tests/reimbursement/test_submit.py)."""
        return (await self.create_generated_many(conn, [(rtype, resource, rid)]))[0]

    async def create_generated_many(self, conn: AsyncConnection, items: list[Item]) -> list[Stored]:
        """Several of them (type, resource, id or None) in one round trip on PostgreSQL."""
        for _, resource, _ in items:
            self.check_care_dates(resource)
            declare_profile(resource)
        return await self.store.create_many(conn, items)

    async def update(
        self,
        conn: AsyncConnection,
        rtype: str,
        rid: str,
        resource: dict[str, Any],
        if_match: int | None,
    ) -> Written:
        require_supported(rtype)
        check_type(resource, rtype)
        if resource.get("id") != rid:
            raise BadRequest(
                f"body id {resource.get('id')!r} must equal the id in the URL {rid!r}",
                (f"{rtype}.id",),
                code=ErrorCode.ID_MISMATCH,
            )
        validate(resource)
        self.check_care_dates(resource)
        declare_profile(resource)
        return Written(await self.store.update(conn, rtype, rid, resource, if_match), False)

    def check_care_dates(self, resource: dict[str, Any], now: datetime | None = None) -> None:
        """422 FSE-0034 for a date of care, creation or dispense later than now (with the
        clock tolerance): every write of these resources goes through here, $submit too."""
        refuse_future_dates(
            resource,
            now or self.clock(),
            timedelta(seconds=self.settings.clock_tolerance_seconds),
            ZoneInfo(self.settings.payment_timezone),
        )

    async def match_conditional(
        self, conn: AsyncConnection, rtype: str, criteria: str
    ) -> Stored | None:
        """The one resource matching ``criteria`` (If-None-Exist), under a lock on the criteria."""
        items = parse_qsl(criteria.lstrip("?"), keep_blank_values=True)
        if not items:
            raise BadRequest(
                "If-None-Exist has no search criteria", code=ErrorCode.PRECONDITION_MISSING
            )
        query = parse_search(rtype, items, default_count=2, max_count=2)
        if query.unknown:
            raise BadRequest(
                f"If-None-Exist uses unknown parameter(s): {', '.join(query.unknown)}",
                tuple(query.unknown),
                code=ErrorCode.UNKNOWN_SEARCH_PARAMETER,
            )
        await self.store.lock_conditional(
            conn, rtype, "&".join(f"{k}={v}" for k, v in sorted(items))
        )
        page = await self.store.search(conn, query)
        if len(page.matches) > 1:
            raise PreconditionFailed(
                f"If-None-Exist '{criteria}' matches more than one {rtype}",
                code=ErrorCode.MULTIPLE_MATCHES,
            )
        if not page.matches:
            return None
        return await self.store.read(conn, rtype, page.matches[0].id)

    async def display_names(
        self, conn: AsyncConnection, references: Iterable[str]
    ) -> dict[str, str]:
        """How each ``Type/id`` is called on screen (its name); a reference that is not one,
        like a user account's ``user:name``, or that no longer resolves, stands for itself."""
        names = {reference: reference.removeprefix("user:") for reference in references}
        heads = [
            (rtype, rid, ())
            for reference in names
            for rtype, _, rid in [reference.partition("/")]
            if rid and rtype in SUPPORTED_TYPES
        ]
        if not heads:
            return names
        # One round trip for them all (a page names its insured, doctor and pharmacist).
        found = await self.store.read_each_with_referrers(conn, heads)
        for (rtype, rid, _), read in zip(heads, found, strict=True):
            if not isinstance(read, FhirError) and read[0].content:
                names[f"{rtype}/{rid}"] = name_of(orjson.loads(read[0].content))
        return names

    def announce(self, written: list[Stored]) -> None:
        """Queue committed changes for the event stream (the database stays the truth)."""
        for stored in written:
            self.runtime.events.publish_soon(
                {
                    "resourceType": stored.type,
                    "id": stored.id,
                    "versionId": stored.version,
                    "method": stored.method,
                    "lastUpdated": stored.last_updated.isoformat(),
                }
            )


@asynccontextmanager
async def standalone_service(settings: Settings) -> AsyncIterator[FhirService]:
    """A FhirService outside the web app (CLI, seeding): own engine, in-process runtime."""
    engine = create_engine(settings.database_url)
    runtime = build_runtime(None)
    try:
        yield FhirService(ResourceStore(engine, vault_for(settings)), runtime, settings)
    finally:
        await runtime.close()
        await engine.dispose()
