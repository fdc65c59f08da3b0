"""FHIR REST routes: parse the request, call one service method, render. Nothing else."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import datetime
from urllib.parse import urlencode

import orjson
from fastapi import APIRouter, Request, Response
from fastapi.routing import APIRoute
from starlette.routing import BaseRoute, Match, Route
from starlette.types import Scope

from fse.errors import BadRequest, ErrorCode, Forbidden, MethodNotAllowed, NotFound
from fse.fhir_api import bundles
from fse.fhir_api.capability import capability_statement
from fse.fhir_api.guard import Guard, guard_of
from fse.fhir_api.http import (
    FORM_TYPES,
    base_url,
    form_items,
    parse_etag,
    prefer,
    read_body,
    version_headers,
    write_response,
)
from fse.fhir_api.interactions import FhirService
from fse.fhir_api.operations import OperationCall, OperationRegistry
from fse.fhir_api.searching import searchset
from fse.fhir_api.transaction import BundleProcessor
from fse.limits import MAX_VERSION
from fse.resources import parse_json, require_supported
from fse.responses import fhir_response
from fse.security.access import reserved
from fse.store.dates import date_range
from fse.store.query import ID_RE, decode_cursor, encode_cursor, whole_number

router = APIRouter(prefix="/fhir", tags=["FHIR"])

# The body is read raw (parsed once with orjson); declare it for the OpenAPI description.
FHIR_BODY = {
    "requestBody": {
        "required": True,
        "content": {"application/fhir+json": {"schema": {"type": "object"}}},
    }
}


# Plain helpers rather than FastAPI dependencies: resolving dependencies costs ~5% of a search.
def service_of(request: Request) -> FhirService:
    return request.app.state.fhir


def operations_of(request: Request) -> OperationRegistry:
    return request.app.state.operations


def base_of(request: Request) -> str:
    return base_url(request, request.app.state.settings.base_url)


def _checked_id(request: Request, rtype: str, rid: str, letter: str | None) -> Guard:
    """Known type, caller allowed ``letter`` on it (None: the operation decides), well-formed
    id (else 404/403); the request's guard."""
    require_supported(rtype)
    guard = guard_of(request)
    if letter is not None:
        guard.allow_interaction(rtype, letter)
    if rid == "_search":
        raise MethodNotAllowed(
            f"{rtype}/_search is searched with POST and a form body",
            code=ErrorCode.METHOD_NOT_ALLOWED,
        )
    if not ID_RE.match(rid):
        raise NotFound(f"{rtype}/{rid} not found: not a valid id")
    return guard


CAPABILITY_TTL_SECONDS = 300


@router.get("/metadata", summary="CapabilityStatement")
async def metadata(request: Request) -> Response:
    """Rendered once per base URL and kept in the runtime cache (it lists every parameter)."""
    base = base_of(request)
    cache = request.app.state.runtime.cache
    key = f"capability:{base}"
    body = await cache.get(key)
    if body is None:
        settings = request.app.state.settings
        statement = capability_statement(
            base,
            operations_of(request),
            "0.1.0",
            settings.max_page_size,
            request.app.state.subscription_topics.describe(),
        )
        body = orjson.dumps(statement)
        await cache.set(key, body, CAPABILITY_TTL_SECONDS)
    return fhir_response(body)


@router.post("", summary="transaction or batch Bundle", openapi_extra=FHIR_BODY)
async def transaction(request: Request) -> Response:
    service = service_of(request)
    base = base_of(request)
    processor = BundleProcessor(service, base, guard_of(request))
    kind, entries = processor.entries(
        parse_json(await read_body(request, service.settings.max_body_bytes))
    )
    body, written = await (
        processor.transaction(entries) if kind == "transaction" else processor.batch(entries)
    )
    service.announce(written)
    return fhir_response(body)


async def _search(
    request: Request, service: FhirService, base: str, rtype: str, items: list[tuple[str, str]]
) -> Response:
    require_supported(rtype)
    guard = guard_of(request)
    guard.allow(rtype, "s")
    query = service.parse_search(rtype, items, prefer(request, "handling") == "strict")
    async with service.store.snapshot() as conn:
        body, matches = await searchset(conn, guard, base, query)
    await guard.searched(rtype, query, matches)
    return fhir_response(body)


@router.get("/{rtype}", summary="search-type")
async def search(rtype: str, request: Request) -> Response:
    service = service_of(request)
    base = base_of(request)
    return await _search(request, service, base, rtype, list(request.query_params.multi_items()))


@router.post("/{rtype}/_search", summary="search-type (form body)")
async def search_post(rtype: str, request: Request) -> Response:
    service = service_of(request)
    base = base_of(request)
    headers = request.headers
    empty = "content-type" not in headers and headers.get("content-length", "0") == "0"
    form = b"" if empty else await read_body(request, service.settings.max_body_bytes, FORM_TYPES)
    items = list(request.query_params.multi_items()) + form_items(form)
    return await _search(request, service, base, rtype, items)


@router.post("/{rtype}", summary="create (conditional with If-None-Exist)", openapi_extra=FHIR_BODY)
async def create(rtype: str, request: Request) -> Response:
    service = service_of(request)
    base = base_of(request)
    require_supported(rtype)
    guard = guard_of(request)
    guard.allow_interaction(rtype, "c")
    resource = parse_json(await read_body(request, service.settings.max_body_bytes))
    criteria = request.headers.get("if-none-exist")
    store = service.store
    async with store.transaction() if criteria is not None else store.single_write() as conn:
        await guard.check_new(conn, rtype, resource)
        written = await service.create(conn, rtype, resource, criteria)
        if not written.created:
            await guard.require(conn, rtype, written.stored.id)
    if not written.created:
        return write_response(request, written.stored, 200, base)
    service.announce([written.stored])
    return write_response(request, written.stored, 201, base)


def _page_size(raw: str | None, service: FhirService) -> int:
    if raw is None:
        return service.settings.default_page_size
    count = whole_number(raw)
    if not count:
        raise BadRequest(
            "_count must be a positive whole number (ASCII digits)",
            ("_count",),
            code=ErrorCode.INVALID_SEARCH_PARAMETER,
        )
    return min(count, service.settings.max_page_size)


def since_param(raw: str | None) -> datetime | None:
    """``_since`` of history and $export: a FHIR instant (400 naming ``_since`` otherwise)."""
    if raw is None:
        return None
    try:
        if not raw.isascii():  # the date pattern's \d also reads Arabic-Indic digits
            raise ValueError(raw)
        return date_range(raw)[0]
    except ValueError:
        raise BadRequest(
            f"_since: '{raw}' is not a FHIR instant",
            ("_since",),
            code=ErrorCode.INVALID_SEARCH_PARAMETER,
        ) from None


async def _history(
    request: Request, service: FhirService, base: str, rtype: str, rid: str | None
) -> Response:
    guard = guard_of(request)
    params = request.query_params
    count = _page_size(params.get("_count"), service)
    since = since_param(params.get("_since"))
    before = decode_cursor(params["_cursor"])[1] if "_cursor" in params else None
    async with service.store.snapshot() as conn:
        if rid is not None:
            await guard.require(conn, rtype, rid)
        versions, next_pk = await service.store.history(conn, rtype, rid, count, before, since)
        disclosed = await guard.disclose(conn, versions)
    path = f"{base}/{rtype}" + (f"/{rid}" if rid else "") + "/_history"
    kept = [(k, v) for k, v in params.multi_items() if k in ("_count", "_since")]
    self_url = path + (f"?{urlencode(kept)}" if kept else "")
    next_url = None
    if next_pk is not None:
        next_url = f"{path}?{urlencode([*kept, ('_cursor', encode_cursor(None, next_pk))])}"
    return fhir_response(bundles.history(base, self_url, next_url, disclosed))


@router.get("/{rtype}/_history", summary="history-type")
async def history_type(rtype: str, request: Request) -> Response:
    service = service_of(request)
    base = base_of(request)
    require_supported(rtype)
    guard_of(request).check_history(rtype)
    return await _history(request, service, base, rtype, None)


@router.get("/{rtype}/{rid}", summary="read")
async def read(rtype: str, rid: str, request: Request) -> Response:
    service = service_of(request)
    base = base_of(request)
    guard = _checked_id(request, rtype, rid, "r")
    async with service.store.snapshot() as conn:
        stored = await service.store.read(conn, rtype, rid)
        await guard.require(conn, rtype, rid)
    headers = version_headers(stored, base)
    del headers["Location"]
    return fhir_response(stored.content, 200, headers)


@router.put(
    "/{rtype}/{rid}", summary="update (If-Match for optimistic locking)", openapi_extra=FHIR_BODY
)
async def update(rtype: str, rid: str, request: Request) -> Response:
    service = service_of(request)
    base = base_of(request)
    guard = _checked_id(request, rtype, rid, "u")
    if_match = parse_etag(request.headers.get("if-match"))
    resource = parse_json(await read_body(request, service.settings.max_body_bytes))
    async with service.store.transaction() as conn:
        await guard.require(conn, rtype, rid)
        await guard.check_new(conn, rtype, resource, "u")
        written = await service.update(conn, rtype, rid, resource, if_match)
    service.announce([written.stored])
    return write_response(request, written.stored, 200, base)


@router.delete("/{rtype}/{rid}", summary="delete (versioned)")
async def delete(rtype: str, rid: str, request: Request) -> Response:
    service = service_of(request)
    guard = _checked_id(request, rtype, rid, "d")
    async with service.store.transaction() as conn:
        await guard.require(conn, rtype, rid)
        stored = await service.store.delete(conn, rtype, rid)
    if stored is not None:
        service.announce([stored])
        return fhir_response(None, 204, {"ETag": stored.etag})
    return fhir_response(None, 204)


@router.get("/{rtype}/{rid}/_history", summary="history-instance")
async def history_instance(rtype: str, rid: str, request: Request) -> Response:
    service = service_of(request)
    base = base_of(request)
    _checked_id(request, rtype, rid, "r")
    return await _history(request, service, base, rtype, rid)


@router.get("/{rtype}/{rid}/_history/{vid}", summary="vread")
async def vread(rtype: str, rid: str, vid: str, request: Request) -> Response:
    service = service_of(request)
    base = base_of(request)
    guard = _checked_id(request, rtype, rid, "r")
    version = whole_number(vid)
    if version is None or version > MAX_VERSION:
        raise NotFound(f"{rtype}/{rid} has no version {vid!r}")
    async with service.store.snapshot() as conn:
        stored = await service.store.vread(conn, rtype, rid, version)
        await guard.require(conn, rtype, rid)
    headers = version_headers(stored, base)
    del headers["Location"]
    return fhir_response(stored.content, 200, headers)


async def _operation(
    request: Request,
    service: FhirService,
    operations: OperationRegistry,
    base: str,
    rtype: str,
    rid: str | None,
    name: str,
) -> Response:
    require_supported(rtype)
    if not name.startswith("$"):
        raise MethodNotAllowed(
            f"POST is not allowed on {request.url.path}", code=ErrorCode.METHOD_NOT_ALLOWED
        )
    operation = operations.find(rtype, name[1:])
    if (
        operation is None
        or (rid is None and not operation.type_level)
        or (rid is not None and not operation.instance_level)
    ):
        raise NotFound(
            f"{rtype} has no operation {name} at this level", code=ErrorCode.UNKNOWN_OPERATION
        )
    guard = guard_of(request)
    guard.allow(rtype, operation.permission)
    if guard.narrowed(rtype, operation.permission) and not operation.checks_owner:
        raise Forbidden(
            f"${operation.name} on {rtype} is not open to a signed-in person's API session",
            (rtype,),
            code=ErrorCode.FORBIDDEN,
        )
    return await operation.handler(OperationCall(request, service, rtype, rid, base))


@router.post("/{rtype}/{name}", summary="type-level operation ($name)", openapi_extra=FHIR_BODY)
async def type_operation(rtype: str, name: str, request: Request) -> Response:
    service = service_of(request)
    operations = operations_of(request)
    base = base_of(request)
    return await _operation(request, service, operations, base, rtype, None, name)


@router.post(
    "/{rtype}/{rid}/{name}", summary="instance-level operation ($name)", openapi_extra=FHIR_BODY
)
async def instance_operation(
    rtype: str,
    rid: str,
    name: str,
    request: Request,
) -> Response:
    service = service_of(request)
    operations = operations_of(request)
    base = base_of(request)
    _checked_id(request, rtype, rid, None)
    return await _operation(request, service, operations, base, rtype, rid, name)


WRITE_LETTERS = {create: "c", update: "u", delete: "d"}
"""Route endpoints that are REST writes, by their interaction letter (``access.RESERVED``)."""
OPERATIONS = (type_operation, instance_operation)
METHOD_ORDER = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")


def allowed_methods(routes: Sequence[BaseRoute], scope: Scope) -> list[str]:
    """The methods served at the request's URL, for the ``Allow`` header of a 405: every route
    of that path, but for writes no one makes on the type (``access.RESERVED``), operation
    routes where the last segment is no ``$operation``, and the refused method itself."""
    methods: set[str] = set()
    scope = {**scope, "path_params": {}}  # not the matched route's: each route's own
    for route in _flat(routes):
        if not isinstance(route, Route | APIRoute) or not route.methods:
            continue
        match, child = route.matches(scope)
        if match is Match.NONE:
            continue
        params = child.get("path_params", {})
        letter = WRITE_LETTERS.get(route.endpoint)  # type: ignore[arg-type]
        if letter is not None and reserved(params.get("rtype", ""), letter) is not None:
            continue
        if route.endpoint in OPERATIONS and not str(params.get("name", "")).startswith("$"):
            continue
        if "rid" in params and not ID_RE.match(params["rid"]):
            continue  # /Patient/_search is no resource: its GET, PUT and DELETE do not apply
        methods |= route.methods
    if "GET" in methods:
        methods.add("HEAD")  # HeadAsGetMiddleware
    methods.discard(scope["method"])
    return sorted(methods, key=lambda m: (*METHOD_ORDER, m).index(m))


def _flat(routes: Sequence[BaseRoute]) -> Iterator[BaseRoute]:
    """The routes of the app, those of its included routers too (FastAPI keeps those behind a
    wrapper that routes requests but shows no path)."""
    for route in routes:
        included = getattr(route, "original_router", None)
        yield from _flat(included.routes) if included is not None else (route,)
