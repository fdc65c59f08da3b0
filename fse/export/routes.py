"""FHIR Bulk Data ``$export`` (async pattern): kick-off, status, files, delete.

``GET /fhir/$export``, ``/fhir/Patient/$export`` and ``/fhir/Patient/{id}/$export`` with
``Prefer: respond-async`` answer 202 and a status URL; the job runs in the server
(``fse.export.runner``); the status URL answers 202 with ``X-Progress`` until the manifest (200).
Only the caller who started a job sees it (404 for anyone else).

Authorisation: only CNSS system clients export (the access model, ``fse.security.access``: a
person's session is refused); every type exported needs ``r`` and ``s``. An
explicit ``_type`` naming a type the caller may not read is refused (403); without ``_type`` the
export holds exactly the types the caller may read (the IG's "only what the client is
authorised for"). Each kick-off writes an AuditEvent (who exported what) with the job.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import anyio
import orjson
from fastapi import APIRouter, Request, Response
from fastapi.responses import StreamingResponse

from fse.audit import export_event
from fse.callers import caller_of
from fse.errors import BadRequest, ErrorCode, Forbidden, Issue, NotFound, operation_outcome
from fse.export.jobs import COMPLETED, FAILED, ExportJob, create_job, find_job
from fse.export.runner import ExportRunner
from fse.export.scope import PATIENT, PATIENT_COMPARTMENT, SYSTEM, ExportScope
from fse.fhir_api.guard import guard_of
from fse.fhir_api.http import prefer
from fse.fhir_api.routes import base_of, service_of, since_param
from fse.responses import fhir_response
from fse.security.auth import Principal, authorize, principal_of
from fse.security.scopes import allows
from fse.store.dates import instant_text
from fse.store.query import ID_RE
from fse.store.search_params import SUPPORTED_TYPES

router = APIRouter(prefix="/fhir", tags=["FHIR Bulk Data"])

NDJSON = "application/fhir+ndjson"
OUTPUT_FORMATS = frozenset({NDJSON, "application/ndjson", "ndjson"})
KNOWN_PARAMS = frozenset({"_type", "_since", "_outputFormat"})
RETRY_AFTER_SECONDS = 2
FILE_NAME_RE = re.compile(r"^[A-Za-z]+-[0-9]+\.ndjson$")
CHUNK_BYTES = 64 * 1024


def runner_of(request: Request) -> ExportRunner:
    return request.app.state.exports


@router.get("/$export", summary="bulk export of every resource (Prefer: respond-async)")
async def export_system(request: Request) -> Response:
    return await _kick_off(request, ExportScope((), level=SYSTEM))


@router.get("/Patient/$export", summary="bulk export of every insured's compartment")
async def export_patients(request: Request) -> Response:
    return await _kick_off(request, ExportScope((), level=PATIENT))


@router.get("/Patient/{rid}/$export", summary="bulk export of one insured's compartment")
async def export_patient(rid: str, request: Request) -> Response:
    if not ID_RE.match(rid):
        raise NotFound(f"Patient/{rid} not found: not a valid id")
    return await _kick_off(request, ExportScope((), level=PATIENT, patient_id=rid))


async def _kick_off(request: Request, scope: ExportScope) -> Response:
    service = service_of(request)
    principal = principal_of(request)
    guard_of(request).system_only("$export")
    if prefer(request, "respond-async") is None:
        raise BadRequest(
            "$export is asynchronous: send the header Prefer: respond-async",
            ("Prefer",),
            code=ErrorCode.PRECONDITION_MISSING,
        )
    params = request.query_params
    unknown = sorted(set(params) - KNOWN_PARAMS)
    if unknown and prefer(request, "handling") == "strict":
        raise BadRequest(
            f"$export does not support: {', '.join(unknown)}",
            tuple(unknown),
            code=ErrorCode.UNKNOWN_SEARCH_PARAMETER,
        )
    output_format = params.get("_outputFormat")
    if output_format is not None and output_format not in OUTPUT_FORMATS:
        raise BadRequest(
            f"_outputFormat {output_format!r} is not supported; use {NDJSON}",
            ("_outputFormat",),
            code=ErrorCode.INVALID_REQUEST,
        )
    types = _types(params.getlist("_type"), principal, scope.level)
    scope = ExportScope(types, since_param(params.get("_since")), scope.level, scope.patient_id)
    async with service.store.transaction() as conn:
        if scope.patient_id is not None:
            await service.store.read(conn, "Patient", scope.patient_id)  # 404 / 410
        job = await create_job(conn, principal.client_id, str(request.url), scope)
        caller = await caller_of(service, conn, principal.client_id)
        event = export_event(
            caller.agents(),
            caller.named,
            _described(scope),
            job.request_url,
            scope.patient_id,
            datetime.now(UTC),
            ZoneInfo(service.settings.payment_timezone),
        )
        written = await service.create(conn, "AuditEvent", event)
    service.announce([written.stored])
    runner_of(request).start(job)
    status_url = f"{base_of(request)}/$export-status/{job.job_id}"
    return fhir_response(None, 202, {"Content-Location": status_url})


def _types(raw: list[str], principal: Principal, level: str) -> tuple[str, ...]:
    """The types to export, in the order asked (or the server's), each readable by the caller."""
    allowed = PATIENT_COMPARTMENT if level == PATIENT else SUPPORTED_TYPES
    if not raw:
        readable = tuple(
            t
            for t in allowed
            if allows(principal.grants, t, "r") and allows(principal.grants, t, "s")
        )
        if not readable:
            raise Forbidden(
                f"client {principal.client_id} may read no resource type it could export",
                code=ErrorCode.FORBIDDEN,
            )
        return readable
    types: list[str] = []
    for rtype in (t.strip() for value in raw for t in value.split(",")):
        if rtype not in SUPPORTED_TYPES:
            raise BadRequest(
                f"_type: {rtype!r} is not a resource type this server serves",
                ("_type",),
                code=ErrorCode.UNKNOWN_RESOURCE_TYPE,
            )
        if rtype not in allowed:
            raise BadRequest(
                f"_type: {rtype} is not in the Patient compartment",
                ("_type",),
                code=ErrorCode.INVALID_SEARCH_PARAMETER,
            )
        authorize(principal, rtype, "r")
        authorize(principal, rtype, "s")
        if rtype not in types:
            types.append(rtype)
    return tuple(types)


def _described(scope: ExportScope) -> str:
    since = f" (modifiés depuis le {instant_text(scope.since)})" if scope.since else ""
    return ", ".join(scope.types) + since


async def _owned_job(request: Request, job_id: str) -> ExportJob:
    job = await find_job(request.app.state.engine, job_id, principal_of(request).client_id)
    if job is None:
        raise NotFound(f"no export job {job_id}")
    return job


@router.get("/$export-status/{job_id}", summary="bulk export status: 202 running, 200 manifest")
async def export_status(job_id: str, request: Request) -> Response:
    job = await _owned_job(request, job_id)
    if job.status == FAILED:
        issue = Issue(ErrorCode.EXPORT_FAILED, job.error or "", issue_type="exception")
        return fhir_response(operation_outcome([issue]), 500)
    if job.status != COMPLETED:
        headers = {"X-Progress": job.progress, "Retry-After": str(RETRY_AFTER_SECONDS)}
        return fhir_response(None, 202, headers)
    base = base_of(request)
    manifest = {
        "transactionTime": instant_text(job.transaction_time),
        "request": job.request_url,
        "requiresAccessToken": True,
        "output": [
            {"type": o.type, "url": f"{base}/$export-file/{job_id}/{o.name}", "count": o.count}
            for o in job.outputs
        ],
        "error": [],
    }
    return Response(orjson.dumps(manifest), 200, media_type="application/json")


@router.delete("/$export-status/{job_id}", summary="cancel a bulk export, delete its files")
async def export_delete(job_id: str, request: Request) -> Response:
    await _owned_job(request, job_id)
    await runner_of(request).delete(job_id)
    return fhir_response(None, 202)


@router.get("/$export-file/{job_id}/{name}", summary="one NDJSON file of a finished export")
async def export_file(job_id: str, name: str, request: Request) -> Response:
    job = await _owned_job(request, job_id)
    if (
        job.status != COMPLETED
        or not FILE_NAME_RE.match(name)
        or name not in {o.name for o in job.outputs}
    ):
        raise NotFound(f"export {job_id} has no file {name}")
    path = runner_of(request).directory(job_id) / name

    async def chunks() -> AsyncIterator[bytes]:
        async with await anyio.open_file(path, "rb") as file:
            while chunk := await file.read(CHUNK_BYTES):
                yield chunk

    if not await anyio.Path(path).is_file():
        raise NotFound(f"export {job_id} has no file {name}")
    return StreamingResponse(chunks(), media_type=NDJSON)
