"""transaction and batch Bundles (FHIR R4 §3.1.0.11).

A transaction runs every entry in one database transaction: DELETE, then POST, then PUT, then
GET; ``urn:uuid:`` fullUrls are replaced by the ids the server assigns. Any failure rolls the whole
Bundle back and names the failing entry. A batch runs each entry in its own transaction and
answers 200 whatever happens inside one: each entry has its own status (and OperationOutcome),
an entry that failed, even on a server error, stored nothing, and one that succeeded says so.
Both refuse a written resource whose references resolve to nothing (``references.py``) and a
Bundle whose fullUrls are not unique (bdl-7).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from sqlalchemy.ext.asyncio import AsyncConnection

from fse.errors import BadRequest, ErrorCode, FhirError, InternalError, PayloadTooLarge
from fse.fhir_api import bundles
from fse.fhir_api.guard import Disclosed, Guard
from fse.fhir_api.http import parse_etag
from fse.fhir_api.interactions import FhirService
from fse.fhir_api.references import PLACEHOLDERS, refuse_dangling
from fse.fhir_api.searching import searchset
from fse.resources import require_supported
from fse.responses import reason_phrase
from fse.store.query import SearchQuery
from fse.store.repository import Match, Stored, new_id

log = logging.getLogger(__name__)

ORDER = {"DELETE": 0, "POST": 1, "PUT": 2, "GET": 3}
STATUS_TEXT = {200: "200 OK", 201: "201 Created", 204: "204 No Content"}


@dataclass
class Entry:
    index: int
    method: str
    rtype: str
    rid: str | None
    query: str
    resource: dict[str, Any] | None
    full_url: str | None
    if_none_exist: str | None
    if_match: int | None


def _bad(index: int, message: str, path: str = "request") -> BadRequest:
    return BadRequest(
        f"entry[{index}]: {message}",
        (f"Bundle.entry[{index}].{path}",),
        code=ErrorCode.INVALID_BUNDLE,
    )


def _parse_entry(index: int, raw: Any, base: str) -> Entry:
    if not isinstance(raw, dict) or not isinstance(raw.get("request"), dict):
        raise _bad(index, "each entry needs a request with method and url")
    request = raw["request"]
    method, url = request.get("method"), request.get("url")
    if method not in ORDER or not isinstance(url, str) or not url:
        raise _bad(index, "request.method must be GET, POST, PUT or DELETE and url is required")
    if url.startswith(base):
        url = url[len(base) :]
    parts = urlsplit(url.lstrip("/"))
    segments = [s for s in parts.path.split("/") if s]
    if not segments or len(segments) > 2:
        raise _bad(index, f"request.url '{url}' must be Type, Type/id or Type?query", "request.url")
    resource = raw.get("resource")
    if method in ("POST", "PUT") and not isinstance(resource, dict):
        raise _bad(index, f"{method} needs a resource", "resource")
    if (method == "POST" and len(segments) != 1) or (
        method in ("PUT", "DELETE") and len(segments) != 2
    ):
        raise _bad(index, f"{method} {url}: wrong url shape", "request.url")
    return Entry(
        index,
        method,
        segments[0],
        segments[1] if len(segments) == 2 else None,
        parts.query,
        resource,
        raw.get("fullUrl"),
        request.get("ifNoneExist"),
        parse_etag(request.get("ifMatch")),
    )


def _in_entry(error: FhirError, entry: Entry) -> FhirError:
    """Re-home the error's paths inside the Bundle entry that caused it."""

    def where(expression: str) -> str:
        if expression == entry.rtype or expression.startswith(entry.rtype + "."):
            return f"Bundle.entry[{entry.index}].resource" + expression[len(entry.rtype) :]
        if expression.startswith("Bundle."):
            return expression
        return f"Bundle.entry[{entry.index}].request.{expression}"

    error.issues = [
        replace(
            issue,
            diagnostics=f"entry[{entry.index}] ({entry.method} {entry.rtype}): {issue.diagnostics}",
            expression=tuple(where(e) for e in issue.expression)
            or (f"Bundle.entry[{entry.index}]",),
        )
        for issue in error.issues
    ]
    return error


def _rewrite_references(node: Any, mapping: dict[str, str]) -> Any:
    if isinstance(node, dict):
        return {
            k: (
                mapping.get(v, v)
                if k == "reference" and isinstance(v, str)
                else _rewrite_references(v, mapping)
            )
            for k, v in node.items()
        }
    if isinstance(node, list):
        return [_rewrite_references(v, mapping) for v in node]
    return node


PERMISSION = {"POST": "c", "PUT": "u", "DELETE": "d"}


class BundleProcessor:
    def __init__(self, service: FhirService, base: str, guard: Guard | None = None) -> None:
        """Each entry is checked by the caller's ``guard`` as the same interaction alone would
        be; no guard is the platform itself (seeding), never an HTTP caller."""
        self.service = service
        self.base = base
        self.guard = guard or Guard(None, service)
        self._searches: list[tuple[str, SearchQuery, Disclosed[Match]]] = []
        """Searches of GET entries, told to the guard once their transaction has ended."""

    def _authorize(self, entry: Entry) -> None:
        permission = PERMISSION.get(entry.method) or ("r" if entry.rid else "s")
        try:
            self.guard.allow_interaction(require_supported(entry.rtype), permission)
        except FhirError as error:
            raise _in_entry(error, entry) from None

    def entries(self, bundle: dict[str, Any]) -> tuple[str, list[Any]]:
        if bundle.get("resourceType") != "Bundle":
            raise BadRequest(
                "POST /fhir takes a Bundle", ("resourceType",), code=ErrorCode.WRONG_RESOURCE_TYPE
            )
        kind = bundle.get("type")
        if kind not in ("transaction", "batch"):
            raise BadRequest(
                "Bundle.type must be transaction or batch",
                ("Bundle.type",),
                code=ErrorCode.INVALID_BUNDLE,
            )
        entries = bundle.get("entry", []) or []
        if not isinstance(entries, list):
            raise BadRequest(
                "Bundle.entry must be an array", ("Bundle.entry",), code=ErrorCode.INVALID_BUNDLE
            )
        limit = self.service.settings.max_bundle_entries
        if len(entries) > limit:
            raise PayloadTooLarge(
                f"Bundle has {len(entries)} entries; at most {limit} are accepted",
                ("Bundle.entry",),
                code=ErrorCode.BUNDLE_TOO_LARGE,
            )
        _refuse_duplicate_full_urls(entries)
        return kind, entries

    async def transaction(self, raw_entries: list[Any]) -> tuple[bytes, list[Stored]]:
        entries = [_parse_entry(i, raw, self.base) for i, raw in enumerate(raw_entries)]
        for entry in entries:
            self._authorize(entry)
        results: dict[int, bytes] = {}
        written: list[Stored] = []
        # Any other exception rolls it all back: the app's 500 "nothing was stored" is true.
        async with self.service.store.transaction() as conn:
            planned = await self._plan(conn, entries)
            for entry in sorted(entries, key=lambda e: (ORDER[e.method], e.index)):
                try:
                    results[entry.index], stored = await self._run(conn, entry, planned)
                except FhirError as error:
                    raise _in_entry(error, entry) from None
                if stored is not None:
                    written.append(stored)
        body = bundles.response_bundle(
            "transaction-response", [results[i] for i in range(len(entries))]
        )
        try:
            await self._tell_searches()
        except Exception:  # committed: the answer must say so; a lookup left unrecorded only
            # closes the insured to the caller later (fail-safe), so it is logged, not answered
            log.exception("transaction Bundle committed; recording its searches failed")
        return body, written

    async def _tell_searches(self) -> None:
        searches, self._searches = self._searches, []
        for rtype, query, matches in searches:
            await self.guard.searched(rtype, query, matches)

    async def _plan(self, conn: AsyncConnection, entries: list[Entry]) -> Plan:
        """Resolve conditional creates and pre-assign ids, then rewrite urn:uuid references."""
        planned: dict[int, str | Stored] = {}
        mapping: dict[str, str] = {}
        for entry in entries:
            if entry.method == "PUT" and _is_placeholder(entry.full_url):
                mapping[str(entry.full_url)] = f"{entry.rtype}/{entry.rid}"
            if entry.method != "POST":
                continue
            try:
                require_supported(entry.rtype)
                existing = (
                    await self.service.match_conditional(conn, entry.rtype, entry.if_none_exist)
                    if entry.if_none_exist
                    else None
                )
            except FhirError as error:
                raise _in_entry(error, entry) from None
            if existing is not None:
                try:
                    await self.guard.require(conn, entry.rtype, existing.id)
                except FhirError as error:
                    raise _in_entry(error, entry) from None
            planned[entry.index] = existing if existing is not None else new_id()
            target_id = existing.id if existing is not None else planned[entry.index]
            if entry.full_url:
                mapping[entry.full_url] = f"{entry.rtype}/{target_id}"
        if mapping:
            for entry in entries:
                if entry.resource is not None:
                    entry.resource = _rewrite_references(entry.resource, mapping)
        targets = {
            f"{e.rtype}/{plan.id if isinstance(plan, Stored) else plan}"
            for e in entries
            if (plan := planned.get(e.index)) is not None
        }
        return Plan(planned, targets)

    async def _run(
        self, conn: AsyncConnection, entry: Entry, planned: Plan
    ) -> tuple[bytes, Stored | None]:
        service, guard = self.service, self.guard
        if entry.method == "POST":
            plan = planned.by_entry[entry.index]
            if isinstance(plan, Stored):  # a conditional match, required in _plan
                return bundles.response_entry(
                    STATUS_TEXT[200], guard.passed(plan), base=self.base
                ), None
            assert entry.resource is not None
            await guard.check_new(conn, entry.rtype, entry.resource)
            written = await service.create(conn, entry.rtype, entry.resource, rid=plan)
            await self._refuse_dangling(conn, entry, planned)
            return bundles.response_entry(
                STATUS_TEXT[201], guard.passed(written.stored), base=self.base
            ), written.stored
        if entry.method == "PUT":
            assert entry.resource is not None and entry.rid is not None
            await guard.require(conn, entry.rtype, entry.rid)
            await guard.check_new(conn, entry.rtype, entry.resource, "u")
            written = await service.update(
                conn, entry.rtype, entry.rid, entry.resource, entry.if_match
            )
            await self._refuse_dangling(conn, entry, planned)
            return bundles.response_entry(
                STATUS_TEXT[200], guard.passed(written.stored), base=self.base
            ), written.stored
        if entry.method == "DELETE":
            assert entry.rid is not None
            rtype = require_supported(entry.rtype)
            await guard.require(conn, rtype, entry.rid)
            stored = await service.store.delete(conn, rtype, entry.rid)
            return bundles.response_entry(STATUS_TEXT[204]), stored
        return await self._get(conn, entry), None

    async def _refuse_dangling(self, conn: AsyncConnection, entry: Entry, planned: Plan) -> None:
        """After the write (it is valid), in its transaction: a failure rolls it back."""
        assert entry.resource is not None
        await refuse_dangling(
            conn, self.service.store, self.base, entry.rtype, entry.resource, planned.targets
        )

    async def _get(self, conn: AsyncConnection, entry: Entry) -> bytes:
        """A read or a search, answered (and disclosed) exactly as the same GET alone."""
        rtype = require_supported(entry.rtype)
        if entry.rid is not None:
            stored = await self.service.store.read(conn, rtype, entry.rid)
            await self.guard.require(conn, rtype, entry.rid)
            return bundles.response_entry(
                STATUS_TEXT[200], self.guard.passed(stored), base=self.base
            )
        query = self.service.parse_search(
            rtype, parse_qsl(entry.query, keep_blank_values=True), False
        )
        body, matches = await searchset(conn, self.guard, self.base, query)
        self._searches.append((rtype, query, matches))
        return b'{"resource":' + body + b',"response":{"status":"200 OK"}}'

    async def batch(self, raw_entries: list[Any]) -> tuple[bytes, list[Stored]]:
        results: list[bytes] = []
        written: list[Stored] = []
        for index, raw in enumerate(raw_entries):
            try:
                result, stored = await self._batch_entry(index, raw)
            except FhirError as error:
                result, stored = _failed(error), None
            except Exception:  # its transaction rolled back: this entry alone failed
                log.exception("batch Bundle entry[%d] failed; it stored nothing", index)
                result, stored = _failed(_crashed(index)), None
            results.append(result)
            if stored is not None:
                written.append(stored)
        return bundles.response_bundle("batch-response", results), written

    async def _batch_entry(self, index: int, raw: Any) -> tuple[bytes, Stored | None]:
        """One entry alone, in its own transaction; its search told to the guard once that
        has ended (a failure there withholds the entry's answer)."""
        self._searches = []  # a failed entry's search was never answered
        entry = _parse_entry(index, raw, self.base)
        self._authorize(entry)
        async with self.service.store.transaction() as conn:
            planned = await self._plan(conn, [entry])
            result = await self._run(conn, entry, planned)
        await self._tell_searches()
        return result


@dataclass(frozen=True)
class Plan:
    by_entry: dict[int, str | Stored]
    """Per POST entry: the id it will be created under, or the resource its condition matched."""
    targets: set[str]
    """``Type/id`` of every resource the POST entries create or match: references to them
    resolve although they may not be stored yet."""


def _is_placeholder(full_url: Any) -> bool:
    return isinstance(full_url, str) and full_url.startswith(PLACEHOLDERS)


def _failed(error: FhirError) -> bytes:
    return bundles.response_entry(
        f"{error.status} {reason_phrase(error.status)}", outcome=error.outcome()
    )


def _crashed(index: int) -> InternalError:
    """What a batch entry the server failed on answers: honest, and no detail of the cause."""
    return InternalError(
        f"entry[{index}]: internal error; this entry stored nothing "
        "(the other entries' statuses stand)",
        (f"Bundle.entry[{index}]",),
        code=ErrorCode.INTERNAL_ERROR,
    )


def _refuse_duplicate_full_urls(entries: list[Any]) -> None:
    """bdl-7: entries with the same fullUrl must differ by meta.versionId (400 FSE-0043)."""
    seen: dict[tuple[str, Any], int] = {}
    for index, raw in enumerate(entries):
        if not isinstance(raw, dict) or not isinstance(raw.get("fullUrl"), str):
            continue
        resource = raw.get("resource")
        meta = resource.get("meta") if isinstance(resource, dict) else None
        version = meta.get("versionId") if isinstance(meta, dict) else None
        key = (raw["fullUrl"], version if isinstance(version, str) else None)
        if key in seen:
            raise BadRequest(
                f"entry[{index}].fullUrl {raw['fullUrl']!r} is also entry[{seen[key]}]'s: "
                "a fullUrl names one entry (bdl-7)",
                (f"Bundle.entry[{index}].fullUrl",),
                code=ErrorCode.DUPLICATE_FULL_URL,
            )
        seen[key] = index
