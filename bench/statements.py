"""What one operation costs the database, counted by the benchmark itself: SQL statements
sent (a few operations run again in-process, on the phase's database, after its server
stopped) and bytes stored (the database's tables measured around the timed phase).

Statements are two figures. *In the request*: what the operations sent while they ran
(SQLAlchemy's statements on the app's engine, BEGIN and COMMIT not counted, plus the access
log's INSERTs, which go over asyncpg directly). *Deferred*: the background work they left,
run once after them as the server's loops would: the access log turned into AuditEvents, the
outbox relayed and fanned out, the audit chain sealed. In-process the operations run one at a
time, so neither the access log's group commit nor those batches are as large as under load:
both are upper bounds of what the served run pays per operation.
"""

from __future__ import annotations

import contextvars
import os
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine

from bench.harness import REDIS_URL, Connection, Op, asyncpg_url

DEFERRED = "deferred"
"""The label of the background work's statements."""

_label: contextvars.ContextVar[str | None] = contextvars.ContextVar("bench_label", default=None)


@dataclass
class Counts:
    """Statements per label (a step of the operation, or ``DEFERRED``), over ``operations``."""

    operations: int = 0
    by_label: dict[str, int] = field(default_factory=dict)

    def per_operation(self, label: str | None = None) -> float:
        """Mean statements per operation: of one label, or of the requests (not deferred)."""
        if label is not None:
            return self.by_label.get(label, 0) / max(1, self.operations)
        inline = sum(n for name, n in self.by_label.items() if name != DEFERRED)
        return inline / max(1, self.operations)

    def columns(self) -> tuple[float, float]:
        """Per operation: statements in the request, and deferred."""
        return self.per_operation(), self.per_operation(DEFERRED)


@contextmanager
def counting(engine: AsyncEngine) -> Iterator[Counts]:
    """Count what this task (and the tasks it starts) sends on ``engine`` under a label set
    by ``step``; the app's own background tasks started before are not counted (their context
    carries no label)."""
    counts = Counts()

    def record(*_args: Any) -> None:
        label = _label.get()
        if label is not None:
            counts.by_label[label] = counts.by_label.get(label, 0) + 1

    event.listen(engine.sync_engine, "before_cursor_execute", record)
    try:
        yield counts
    finally:
        event.remove(engine.sync_engine, "before_cursor_execute", record)


_filed: list[int] = []
"""Per open ``step``: the access-log INSERTs its inner steps already filed (one at a time)."""


@contextmanager
def step(label: str, counts: Counts | None = None, spool: Any = None) -> Iterator[None]:
    """Statements sent inside are ``label``'s; ``spool`` (the access log's writer, which
    bypasses SQLAlchemy) adds its INSERTs."""
    token = _label.set(label)
    before = spool.inserts if spool is not None else 0
    _filed.append(0)
    try:
        yield
    finally:
        _label.reset(token)
        inner = _filed.pop()
        if counts is not None and spool is not None:
            mine = spool.inserts - before
            counts.by_label[label] = counts.by_label.get(label, 0) + mine - inner
            if _filed:  # the enclosing step does not count them again
                _filed[-1] += mine


CURRENT: list[tuple[Counts, Any]] = []
"""While an in-process count runs: its counts and the app's access-log spool, so that an
operation made of several requests (``labelled``) files each request's statements apart."""


@contextmanager
def labelled(label: str) -> Iterator[None]:
    """One request of a multi-request operation: its statements under ``label`` when counted
    in-process; nothing otherwise."""
    if not CURRENT:
        yield
        return
    counts, spool = CURRENT[-1]
    with step(label, counts, spool):
        yield


async def deferred_work(engine: AsyncEngine, events: Any, api_audit: Any = None) -> None:
    """What the server's background loops do after requests (``fse.app``): the access log
    turned into AuditEvents (``api_audit``: the app's, if any), the outbox relayed to the
    event stream and fanned out to Subscriptions, new AuditEvents sealed in the chain."""
    from fse.audit_chain import seal
    from fse.outbox import relay
    from fse.subscriptions.fanout import fan_out

    if api_audit is not None:
        await api_audit.flush()
    await relay(engine, events)
    await fan_out(engine)
    await seal(engine)


def _app_deferred(app: Any) -> Callable[[], Awaitable[None]]:
    return lambda: deferred_work(app.state.engine, app.state.runtime.events, app.state.api_audit)


async def count_in_process(
    engine: AsyncEngine,
    operation: Callable[[int], Awaitable[bool]],
    operations: int,
    deferred: Callable[[], Awaitable[None]],
    spool: Any = None,
    warm_up: int = 2,
) -> Counts:
    """Run ``operation`` ``warm_up`` times (caches, the session; not counted), then
    ``operations`` times one after the other, counting their statements on ``engine`` (and
    the INSERTs of ``spool``, the app's access log, if any), then the ``deferred`` work they
    left. Raises if one fails: the count would be of an error page."""
    for i in range(warm_up):
        if not await operation(-1 - i):
            raise RuntimeError("an operation failed in-process (warm-up)")
    await deferred()
    with counting(engine) as counts:
        CURRENT.append((counts, spool))
        try:
            for i in range(operations):
                with step("request", counts, spool):
                    if not await operation(i):
                        raise RuntimeError("an operation failed in-process")
        finally:
            CURRENT.pop()
        with step(DEFERRED, counts):
            await deferred()
    counts.operations = operations
    counts.by_label = {k: v for k, v in counts.by_label.items() if v}
    return counts


class AppConnection(Connection):
    """The app of this process behind ``Connection.request``: a phase's own operation runs
    unchanged in-process (no socket), so that its statements can be counted."""

    def __init__(self, app: Any, token: str | None) -> None:
        transport = httpx.ASGITransport(app=app)
        self.http = httpx.AsyncClient(transport=transport, base_url="http://bench")
        self.token = token
        self.host = "bench"

    async def request(
        self,
        method: str,
        path: str,
        body: bytes = b"",
        content_type: str = "application/fhir+json",
        authorization: str | None = None,
        cookie: str | None = None,
    ) -> tuple[int, dict[str, str], bytes]:
        headers = {}
        if cookie:
            headers["Cookie"] = cookie
        else:
            authorization = authorization or (f"Bearer {self.token}" if self.token else None)
        if authorization:
            headers["Authorization"] = authorization
        if body:
            headers["Content-Type"] = content_type
        answer = await self.http.request(method, path, content=body or None, headers=headers)
        self.http.cookies.clear()  # like Connection: only the cookie the operation names
        found: dict[str, str] = {}
        for name, value in answer.headers.multi_items():
            key = name.lower()
            found[key] = f"{found[key]}\n{value}" if key == "set-cookie" and key in found else value
        return answer.status_code, found, answer.content

    def close(self) -> None:
        """The client is closed by ``statements_of``."""


async def statements_of(
    database_url: str,
    operations: list[tuple[str, Op]],
    count: int = 20,
    client_id: str | None = None,
) -> dict[str, Counts]:
    """Each named operation run ``count`` times on an app of this process on the phase's
    database, configured as ``served`` configures the server (Redis, audit, outbox), its
    statements counted (``count_in_process``). Run it once the server stopped: its background
    loops would take the access log and the outbox this one counts. ``client_id``: the bench
    client, whose token is issued here (the served one may have expired). An operation that
    fails is said and left out of the answer."""
    from bench.callers import bench_token
    from fse.app import close, create_app, warm_up
    from fse.config import Settings

    settings = Settings(
        database_url=asyncpg_url(database_url),
        redis_url=REDIS_URL,
        redis_namespace=f"fse-bench-count-{os.getpid()}",
        rate_limit_per_minute=0,
        rate_limit_per_system_client=0,
        rate_limit_per_user=0,
        payment_schedule=False,
    )
    app = create_app(settings)
    warm_up()
    token = bench_token(app, settings, client_id) if client_id else None
    conn = AppConnection(app, token)
    found = {}
    try:
        for name, op in operations:

            async def once(i: int, op: Op = op) -> bool:
                return await op(conn, i)

            try:
                found[name] = await count_in_process(
                    app.state.engine, once, count, _app_deferred(app), app.state.api_audit.spool
                )
            except Exception as failed:  # said, and '-' in the table: the other phases run
                why = getattr(op, "errors", "") or ""
                print(f"  statements of {name} not counted: {failed!r} {why}", flush=True)
    finally:
        await conn.http.aclose()
        await close(app)
    return found
