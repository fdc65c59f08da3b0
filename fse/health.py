"""``GET /health`` and ``GET /ready``: for a load balancer, and for whoever watches Redis.

``/health`` (liveness) only says this process answers: restarting it will not help anything
else. ``/ready`` (readiness) asks the dependencies: the database must answer a ``SELECT 1``
(503 otherwise, an OperationOutcome ``FSE-0044``: send no traffic here); Redis down is a
warning (``FSE-0045``), not unreadiness, since the platform runs without it (the runtime falls
back to in-process services, ``fse.runtime.redis_link``). Both are public and name no data;
the state is this worker's (each worker has its own connections).
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from sqlalchemy import text

from fse.errors import ErrorCode, Issue, operation_outcome
from fse.responses import fhir_response

log = logging.getLogger("fse.health")
router = APIRouter(tags=["Exploitation"])
DATABASE_TIMEOUT_SECONDS = 2.0
NO_STORE = {"Cache-Control": "no-store"}


@router.get("/health", summary="liveness: this process answers")
async def health() -> Response:
    return JSONResponse({"status": "pass", "pid": os.getpid()}, headers=NO_STORE)


@router.get("/ready", summary="readiness: the database answers; the state of Redis")
async def ready(request: Request) -> Response:
    database = await database_state(request)
    runtime = await request.app.state.runtime.check()
    redis = runtime["redis"]
    redis.pop("lastError", None)  # shown to CNSS agents on their dashboard, not to anyone
    if redis["status"] == "down":
        redis["code"] = ErrorCode.REDIS_DEGRADED.value
    if database["status"] != "up":
        issues = [
            Issue(
                ErrorCode.NOT_READY,
                f"database: {database['error']}",
                ("database",),
                issue_type="transient",
            )
        ]
        if redis["status"] == "down":
            issues.append(_redis_issue(redis))
        return fhir_response(operation_outcome(issues), 503, {"Retry-After": "5", **NO_STORE})
    body = {
        "status": "warn" if redis["status"] == "down" else "pass",
        "checks": {"database": database, "redis": redis},
        "runtime": runtime["backend"],
        "pid": os.getpid(),
    }
    return JSONResponse(body, headers=NO_STORE)


def _redis_issue(redis: dict[str, Any]) -> Issue:
    return Issue(
        ErrorCode.REDIS_DEGRADED,
        f"redis: down since {redis['downSince']}; the platform runs in-process (degraded)",
        ("redis",),
        severity="warning",
        issue_type="transient",
    )


async def database_state(request: Request) -> dict[str, Any]:
    engine = request.app.state.engine
    started = time.perf_counter()
    try:
        async with asyncio.timeout(DATABASE_TIMEOUT_SECONDS):
            async with engine.connect() as conn:
                await conn.execute(text("SELECT 1"))
    except Exception as error:  # any failure to answer is "not ready", never a 500
        # The door is public: the answer names the kind of failure, the log its details
        # (addresses, users, database names are no one else's business).
        log.warning("readiness: the database does not answer: %s", error)
        kind = "timeout" if isinstance(error, TimeoutError) else type(error).__name__
        return {"status": "down", "backend": engine.dialect.name, "error": kind}
    elapsed = round((time.perf_counter() - started) * 1000, 1)
    return {"status": "up", "backend": engine.dialect.name, "latencyMs": elapsed}
