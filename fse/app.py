"""The app factory: builds settings, engine, store, runtime services and mounts every feature.

Feature packages (prescriber, pharmacy, reimbursement) contribute routers and FHIR operations
here; the rest of the kernel never imports them.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.exceptions import HTTPException as StarletteHTTPException

from fhir_profiles.validator import warm_up as warm_up_guide
from fse import access_log, audit_chain, outbox
from fse.access_log import Spool
from fse.api_audit import ApiAudit, ApiAuditMiddleware
from fse.audit_chain import RECENT, seal
from fse.config import Settings
from fse.crypto.cin import vault_for
from fse.crypto.key_ring import TokenKeys
from fse.crypto.tokens import load_or_create_key
from fse.db import create_engine, unavailable
from fse.errors import ErrorCode, FhirError, Issue, Unavailable, operation_outcome
from fse.export import jobs as export_jobs
from fse.export.jobs import fail_stale_jobs
from fse.export.routes import router as export_router
from fse.export.runner import ExportRunner
from fse.fhir_api.interactions import FhirService
from fse.fhir_api.negotiation import FhirRequestMiddleware
from fse.fhir_api.openapi import fhir_openapi
from fse.fhir_api.operations import OperationRegistry
from fse.fhir_api.operations.validate import VALIDATE
from fse.fhir_api.routes import allowed_methods
from fse.fhir_api.routes import router as fhir_router
from fse.head import HeadAsGetMiddleware
from fse.health import router as health_router
from fse.outbox import prune, relay
from fse.resources import model_class
from fse.responses import fhir_response
from fse.runtime import Runtime, runtime_for
from fse.runtime.events import StreamUnavailable
from fse.security import tables as security_tables
from fse.security.auth import Authenticator, AuthMiddleware
from fse.security.headers import SecurityHeadersMiddleware
from fse.security.throttle import ThrottleMiddleware, by_address, by_caller
from fse.security.token_endpoint import router as token_router
from fse.store.repository import ResourceStore
from fse.store.search_params import SUPPORTED_TYPES
from fse.subscriptions import tables as subscription_tables
from fse.subscriptions.criteria import Topics
from fse.subscriptions.routes import router as subscriptions_router
from fse.subscriptions.worker import Worker
from fse.web import pages
from fse.web.errors import error_page, wants_html
from pharmacy import feature as pharmacy
from pharmacy import tables as pharmacy_tables
from prescriber import feature as prescriber
from prescriber import tables as prescriber_tables
from reimbursement import feature as reimbursement
from reimbursement import tables as reimbursement_tables

log = logging.getLogger("fse")

TABLE_MODULES = (
    access_log,
    audit_chain,
    export_jobs,
    outbox,
    security_tables,
    subscription_tables,
    pharmacy_tables,
    prescriber_tables,
    reimbursement_tables,
)
"""Every module declaring tables, kernel then features: importing one adds its tables to the
store's metadata, which the migrations are compared with (fse/migrations/env.py)."""

DATABASE_RETRY_AFTER_SECONDS = 5
HTTP_CODES = {
    404: (ErrorCode.NOT_FOUND, "not-found"),
    405: (ErrorCode.METHOD_NOT_ALLOWED, "not-supported"),
    413: (ErrorCode.PAYLOAD_TOO_LARGE, "too-costly"),
    415: (ErrorCode.UNSUPPORTED_MEDIA_TYPE, "not-supported"),
}


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()
    engine = create_engine(settings.database_url, settings.db_pool_size)
    runtime = runtime_for(settings)
    operations = OperationRegistry()
    operations.register(VALIDATE)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        warm_up()
        await fail_stale_jobs(engine)
        tasks = []
        if settings.audit_seal_seconds > 0:
            tasks.append(
                asyncio.create_task(seal_periodically(engine, settings.audit_seal_seconds))
            )
        tasks.append(asyncio.create_task(reimbursement.reload_published_books(app, settings)))
        if settings.outbox_relay_seconds > 0:
            relayer = relay_periodically(
                engine, runtime, settings.outbox_relay_seconds, settings.outbox_keep_days
            )
            tasks.append(asyncio.create_task(relayer))
        if settings.api_audit_flush_seconds > 0:
            flusher = app.state.api_audit.flush_periodically(settings.api_audit_flush_seconds)
            tasks.append(asyncio.create_task(flusher))
        if settings.subscription_worker_in_server:
            worker = Worker(engine, runtime.events, settings, relays=False)
            tasks.append(asyncio.create_task(worker.run()))
        if settings.payment_schedule:
            tasks.append(asyncio.create_task(reimbursement.run_payment_schedule(settings)))
        yield
        for task in tasks:
            task.cancel()
        # Cancelled tasks still unwind (a rollback, a connection back to the pool): the last
        # flush starts after them, or on SQLite it meets their write lock.
        await asyncio.gather(*tasks, return_exceptions=True)
        await app.state.api_audit.flush()
        await close(app)

    app = FastAPI(
        title="Plateforme FSE - AMO",
        version="0.1.0",
        docs_url=None,
        redoc_url=None,
        lifespan=lifespan,
    )
    app.openapi = lambda: fhir_openapi(app)  # type: ignore[method-assign]
    app.state.settings = settings
    app.state.engine = engine
    app.state.runtime = runtime
    app.state.operations = operations
    app.state.subscription_topics = Topics()
    app.state.data_sources = []
    app.state.fhir = FhirService(ResourceStore(engine, vault_for(settings)), runtime, settings)
    spool = Spool(settings.database_url) if app.state.fhir.store.is_postgres else None
    app.state.api_audit = ApiAudit(app.state.fhir, settings.payment_timezone, spool)
    app.state.exports = ExportRunner(app.state.fhir.store, settings)
    _install_error_handlers(app)
    app.state.signing_key = load_or_create_key(settings.signing_key_file)
    app.state.token_keys = TokenKeys(
        settings.token_keys_file, app.state.signing_key, settings.token_keys_check_seconds
    )
    authenticator = Authenticator(
        app.state.token_keys.find, settings.token_audience, engine, runtime.cache
    )
    app.state.authenticator = authenticator
    reimbursement.install(app, operations, settings)
    prescriber.install(app)
    pharmacy.install(app)
    app.include_router(subscriptions_router)  # before the generic /fhir/{type} routes
    app.include_router(export_router)  # before fhir_router: /fhir/{rtype} would match $export
    app.include_router(fhir_router)
    app.include_router(token_router)
    app.include_router(health_router)
    pages.mount(app)
    # The last added runs first: security headers (on every answer, refusals included),
    # throttle by address, what a FHIR request must be (URL, parameters, Accept),
    # authenticate, throttle by caller, audit, route.
    app.add_middleware(ApiAuditMiddleware, audit=app.state.api_audit)
    app.add_middleware(ThrottleMiddleware, limiter=runtime.limiter, rule=by_caller(settings))
    app.add_middleware(AuthMiddleware, authenticator=authenticator)
    app.add_middleware(FhirRequestMiddleware)
    app.add_middleware(ThrottleMiddleware, limiter=runtime.limiter, rule=by_address(settings))
    app.add_middleware(SecurityHeadersMiddleware, settings=settings)
    app.add_middleware(HeadAsGetMiddleware)
    return app


async def seal_periodically(engine: AsyncEngine, seconds: float) -> None:
    """Chain new audit events every few seconds (each worker may; one seals at a time): the
    recent ones each round, all of them in the first round and once an hour (an event whose
    transaction committed later than ``RECENT`` after it was written is chained then)."""
    swept_at: float | None = None
    while True:
        await asyncio.sleep(seconds)
        sweep = swept_at is None or time.monotonic() - swept_at >= SWEEP_EVERY_SECONDS
        try:
            await seal(engine, within=None if sweep else RECENT)
            if sweep:
                swept_at = time.monotonic()
        except Exception:  # the next round retries; the events are safe in the database
            log.exception("sealing the audit trail failed")


SWEEP_EVERY_SECONDS = 3_600.0
"""How often the sealer looks at every audit event, not only the recent ones."""


PRUNE_EVERY_SECONDS = 3_600.0
"""How often the relay also deletes the outbox events kept long enough."""


async def relay_periodically(
    engine: AsyncEngine, runtime: Runtime, seconds: float, keep_days: float = 0
) -> None:
    """Publish the outbox to the event stream; a stream that is down is retried next round
    (the outage itself is logged once, by the runtime). Once an hour, delete the events
    published and dispatched more than ``keep_days`` ago (0: keep them all)."""
    pruned_at = time.monotonic()
    while True:
        await asyncio.sleep(seconds)
        try:
            await relay(engine, runtime.events)
        except StreamUnavailable:  # Redis down: the events wait in the database
            pass
        except Exception:
            log.warning("outbox relay failed; retrying", exc_info=True)
        if keep_days > 0 and time.monotonic() - pruned_at >= PRUNE_EVERY_SECONDS:
            pruned_at = time.monotonic()
            try:
                await prune(engine, timedelta(days=keep_days))
            except Exception:
                log.warning("outbox pruning failed; retrying in an hour", exc_info=True)


def warm_up() -> None:
    """Build every model class now, then move the startup heap out of the garbage collector's
    reach: fhir.resources creates hundreds of thousands of long-lived objects, and full
    collections walking them showed up as 50-100 ms latency spikes under load."""
    for resource_type in SUPPORTED_TYPES:
        model_class(resource_type)
    warm_up_guide()
    gc.collect()
    gc.freeze()


async def close(app: FastAPI) -> None:
    await app.state.exports.close()
    await app.state.runtime.close()
    if app.state.api_audit.spool is not None:
        await app.state.api_audit.spool.close()
    await app.state.engine.dispose()


def _install_error_handlers(app: FastAPI) -> None:
    def with_allow(request: Request, status: int, headers: dict[str, str]) -> dict[str, str]:
        """A 405 names what the URL does allow (RFC 9110 §15.5.6)."""
        if status == 405:
            headers["Allow"] = ", ".join(allowed_methods(app.router.routes, request.scope))
        return headers

    # A browser on a screen gets a French page (fse/web/errors.py); the API its
    # OperationOutcome. The API's English texts never reach the page.
    @app.exception_handler(FhirError)
    async def fhir_error(request: Request, error: FhirError) -> Response:
        headers = with_allow(request, error.status, dict(error.headers))
        if wants_html(request):
            return await error_page(request, error.status, headers=headers)
        return fhir_response(error.outcome(), error.status, headers or None)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, error: StarletteHTTPException) -> Response:
        if wants_html(request):
            headers = with_allow(request, error.status_code, dict(error.headers or {}))
            return await error_page(request, error.status_code, headers=headers)
        code, issue_type = HTTP_CODES.get(error.status_code, (ErrorCode.INVALID_REQUEST, "invalid"))
        message = f"{request.method} {request.url.path}: {error.detail}"
        outcome = operation_outcome([Issue(code, message, issue_type=issue_type)])
        headers = with_allow(request, error.status_code, dict(error.headers or {}))
        return fhir_response(outcome, error.status_code, headers)

    @app.exception_handler(RequestValidationError)
    async def request_error(request: Request, error: RequestValidationError) -> Response:
        if wants_html(request):
            return await error_page(request, 400)
        outcome = operation_outcome([Issue(ErrorCode.INVALID_REQUEST, str(error.errors()))])
        return fhir_response(outcome, 400)

    async def database_error(request: Request, error: Exception) -> Response:
        if not unavailable(error):
            return await unexpected(request, error)
        log.warning("database unavailable on %s %s: %s", request.method, request.url.path, error)
        refused = Unavailable(
            "the database cannot be reached; nothing was done, retry later",
            code=ErrorCode.DATABASE_UNAVAILABLE,
            headers={"Retry-After": str(DATABASE_RETRY_AFTER_SECONDS)},
        )
        if wants_html(request):
            return await error_page(request, refused.status, headers=refused.headers)
        return fhir_response(refused.outcome(), refused.status, refused.headers)

    # Registered by class, so the answer passes the middlewares (audit, security headers).
    for database_failure in (DBAPIError, PoolTimeout, ConnectionError, TimeoutError):
        app.add_exception_handler(database_failure, database_error)

    @app.exception_handler(Exception)
    async def unexpected(request: Request, error: Exception) -> Response:
        if unavailable(error):  # raised in a middleware, before the routes' handlers
            return await database_error(request, error)
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        if wants_html(request):
            return await error_page(request, 500)
        outcome = operation_outcome(
            [
                Issue(
                    ErrorCode.INTERNAL_ERROR,
                    "internal error; nothing was stored",
                    issue_type="exception",
                )
            ]
        )
        return JSONResponse(outcome, status_code=500, media_type="application/fhir+json")
