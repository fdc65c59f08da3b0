"""``/fhir/Subscription``: create, read, search (the caller's own), update, delete, ``$status``.
Mounted before the generic FHIR routes, which do not serve this type."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response

from fse.fhir_api.guard import guard_of
from fse.fhir_api.http import base_url, parse_etag, read_body
from fse.resources import check_type, parse_json
from fse.responses import fhir_response
from fse.security.auth import Principal, authorize, principal_of
from fse.subscriptions import registry
from fse.subscriptions.criteria import Topics

router = APIRouter(prefix="/fhir/Subscription", tags=["FHIR Subscriptions"])
BODY = {"requestBody": {"required": True, "content": {"application/fhir+json": {}}}}


def _caller(request: Request, permission: str) -> Principal:
    """Subscriptions belong to CNSS systems: a person's session cannot own one."""
    guard_of(request).system_only("Subscription")
    principal = principal_of(request)
    authorize(principal, "Subscription", permission)
    return principal


def _topics(request: Request) -> Topics:
    return request.app.state.subscription_topics


def _located(request: Request, record: registry.SubscriptionRecord, status: int) -> Response:
    base = base_url(request, request.app.state.settings.base_url)
    location = f"{base}/Subscription/{record.id}"  # no version history is served for it
    headers = {"ETag": f'W/"{record.version}"', "Location": location}
    return fhir_response(record.content, status, headers)


async def _body(request: Request) -> dict:
    resource = parse_json(await read_body(request, request.app.state.settings.max_body_bytes))
    check_type(resource, "Subscription")
    return resource


@router.post("", summary="create a rest-hook Subscription", openapi_extra=BODY)
async def create(request: Request) -> Response:
    owner = _caller(request, "c").client_id
    resource = await _body(request)
    async with request.app.state.fhir.store.transaction() as conn:
        record = await registry.create(conn, owner, resource, _topics(request))
    return _located(request, record, 201)


@router.get("", summary="the caller's Subscriptions")
async def search(request: Request) -> Response:
    owner = _caller(request, "s").client_id
    async with request.app.state.fhir.store.snapshot() as conn:
        found = await registry.owned(conn, owner)
    base = base_url(request, request.app.state.settings.base_url)
    bundle = {
        "resourceType": "Bundle",
        "type": "searchset",
        "total": len(found),
        "link": [{"relation": "self", "url": f"{base}/Subscription"}],
    }
    if found:
        bundle["entry"] = [
            {
                "fullUrl": f"{base}/Subscription/{s['id']}",
                "resource": s,
                "search": {"mode": "match"},
            }
            for s in found
        ]
    return fhir_response(bundle)


@router.get("/{rid}", summary="read a Subscription")
async def read(rid: str, request: Request) -> Response:
    owner = _caller(request, "r").client_id
    async with request.app.state.fhir.store.snapshot() as conn:
        record = await registry.find(conn, owner, rid)
    return fhir_response(record.content, 200, {"ETag": f'W/"{record.version}"'})


@router.put("/{rid}", summary="update (pause with status off)", openapi_extra=BODY)
async def update(rid: str, request: Request) -> Response:
    owner = _caller(request, "u").client_id
    resource = await _body(request)
    if_match = parse_etag(request.headers.get("if-match"))
    async with request.app.state.fhir.store.transaction() as conn:
        record = await registry.replace(conn, owner, rid, resource, if_match, _topics(request))
    return _located(request, record, 200)


@router.delete("/{rid}", summary="delete: no more notifications")
async def delete(rid: str, request: Request) -> Response:
    owner = _caller(request, "d").client_id
    async with request.app.state.fhir.store.transaction() as conn:
        await registry.remove(conn, owner, rid)
    return fhir_response(None, 204)


@router.get("/{rid}/$status", summary="SubscriptionStatus: events sent, deliveries")
async def status(rid: str, request: Request) -> Response:
    owner = _caller(request, "r").client_id
    async with request.app.state.fhir.store.snapshot() as conn:
        return fhir_response(await registry.status_of(conn, owner, rid))
