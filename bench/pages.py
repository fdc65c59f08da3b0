"""What the phases that drive the web pages share: a form field read from a page, an
operation of several requests timed request by request, its failures counted by reason."""

from __future__ import annotations

import asyncio
import html
import time
from collections.abc import Iterator
from contextlib import contextmanager

from bench.harness import COLUMNS, HEADER, Result, drop_database, machine, percentiles
from bench.statements import labelled, statements_of

FORM = "application/x-www-form-urlencoded"


def field(page: bytes, name: str) -> str | None:
    """The value of the form field ``name`` in ``page``, None if it has none."""
    marker = f'name="{name}" value="'.encode()
    if marker not in page:
        return None
    return html.unescape(page.split(marker, 1)[1].split(b'"', 1)[0].decode())


class Pages:
    """An operation of the requests ``steps``: their latencies (each labelled for the
    statement count), how the operations ended and what went wrong, by reason."""

    def __init__(self, steps: tuple[str, ...]) -> None:
        self.steps: dict[str, list[float]] = {step: [] for step in steps}
        self.errors: dict[str, int] = {}
        self.outcomes: dict[str, int] = {}

    def _failed(self, why: str) -> bool:
        self.errors[why] = self.errors.get(why, 0) + 1
        return False

    @contextmanager
    def _timed(self, step: str) -> Iterator[None]:
        began = time.perf_counter()
        with labelled(step):
            yield
        self.steps[step].append(time.perf_counter() - began)


def step_rows(steps: dict[str, list[float]], statements: dict[str, float]) -> list[str]:
    """Per request of the operation: its latency and its statements."""
    width = max(map(len, steps), default=0)
    rows = []
    for step, latencies in steps.items():
        if not latencies:
            continue
        p50, p95, p99 = (s * 1000 for s in percentiles(latencies))
        sql = f"{statements[step]:5.1f}" if step in statements else "    -"
        rows.append(
            f"    {step:<{width}} p50 {p50:7.1f} ms  p95 {p95:7.1f} ms  p99 {p99:7.1f} ms"
            f"  sql {sql}"
        )
    return rows


def report(
    result: Result,
    pages: Pages,
    database: str,
    database_url: str,
    client_id: str | None = None,
) -> int:
    """After the served phase: its operation counted again in-process (``statements_of``),
    the phase's database dropped, and the rows printed; 0 when every operation succeeded."""
    served = {step: list(latencies) for step, latencies in pages.steps.items()}
    errors = dict(pages.errors)
    print("  counting statements in-process ...", flush=True)
    counted = asyncio.run(
        statements_of(database_url, [(result.name, pages)], client_id=client_id)
    ).get(result.name)
    result.counted(counted)
    asyncio.run(drop_database(database))
    print(f"  outcomes: {pages.outcomes}; errors by reason: {errors or 0}")
    print("  per request of the operation (served run; sql: counted in-process):")
    per_step = {step: counted.per_operation(step) for step in served} if counted else {}
    for row in step_rows(served, per_step):
        print(row)
    print(f"  machine: {machine()}; {time.strftime('%Y-%m-%d %H:%M %Z')}")
    print(HEADER)
    print(result.row())
    if breakdown := result.stored_by_table():
        print(breakdown)
    print(f"  {COLUMNS}", flush=True)
    return 0 if result.errors == 0 and result.latencies else 1
