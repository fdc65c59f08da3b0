"""What the phases that drive the web pages share: a form field read from a page, an
operation of several requests timed request by request, its failures counted by reason."""

from __future__ import annotations

import html
import time
from collections.abc import Iterator
from contextlib import contextmanager

from bench.harness import percentiles
from bench.statements import labelled

FORM = "application/x-www-form-urlencoded"


def field(page: bytes, name: str) -> str | None:
    """The value of the form field ``name`` in ``page``, None if it has none."""
    marker = f'name="{name}" value="'.encode()
    if marker not in page:
        return None
    return html.unescape(page.split(marker, 1)[1].split(b'"', 1)[0].decode())


class Pages:
    """An operation of the requests ``steps``: their latencies (each labelled for the
    statement count) and what went wrong, by reason."""

    def __init__(self, steps: tuple[str, ...]) -> None:
        self.steps: dict[str, list[float]] = {step: [] for step in steps}
        self.errors: dict[str, int] = {}

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
