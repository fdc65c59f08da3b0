"""The soak (``python -m bench --only-soak``, ``make soak``; not in ``make test``): open-loop
``Claim/$submit`` at a fixed arrival rate for minutes, on a served platform.

Open loop: the n-th claim is due at ``n / rate`` seconds whatever the earlier answers took, each
in its own task on a connection of a pool that grows rather than make a claim wait for a free
one, and its latency runs from that due time. A stalled server then shows as latency, not as
fewer requests (no coordinated omission). Every 15 s window prints what was sent in it and
how it went, the server's CPU and memory and the whole machine's busy share: the target is p99
< 250 ms in every window with the machine under 60 % busy, and memory flat.
"""

from __future__ import annotations

import asyncio
import os
import random
import time
from dataclasses import dataclass, field
from pathlib import Path

import orjson

from bench.callers import authenticate, renew_token
from bench.harness import (
    SERVER_PID,
    Connection,
    asyncpg_url,
    autovacuum,
    drop_database,
    machine,
    migrated_database,
    percentiles,
    served,
    server_cpu_seconds,
    settle,
)
from bench.settlement import _claim, registry
from fhir_profiles.identifiers import care_sheet_number

WINDOW = 15.0
"""Seconds per reported window."""
TARGET_P99 = 0.250
"""The target: p99 under this in every window."""
TARGET_BUSY = 60.0
"""The target: the machine under this share busy (%)."""
INSURED = 4000
"""The registry of the ``$submit`` phase."""
TIMEOUT = 30.0
"""A claim not answered this long after it was due is an error."""
GRACE = 5.0
"""A window's row is printed this long after it ends, so its last claims are answered."""
IDLE = 2.0
"""A pooled connection idle this long is closed, not reused: uvicorn closes a keep-alive
connection after 5 s idle, and a claim sent as it does fails with no answer."""
DATABASE = "fse_bench_soak"
HEADER = (
    f"{'window':>9} {'sent':>6} {'answered':>8} {'errors':>6} {'p50 ms':>8} {'p99 ms':>8}"
    f" {'lag ms':>7} {'server cpu':>10} {'busy':>6} {'rss MiB':>8}"
)


@dataclass
class Claim:
    """One scheduled claim: when it was due and, once answered, its latency."""

    due: float
    latency: float | None = None
    ok: bool = False
    lag: float = 0.0
    """How late the client sent it (its own scheduling, not the server's)."""

    def age(self, now: float) -> float:
        """Its latency, or how long it has waited so far (a lower bound)."""
        return self.latency if self.latency is not None else now - self.due


@dataclass
class Window:
    claims: list[Claim] = field(default_factory=list)
    seconds: float = WINDOW
    """Its length (the last one may be shorter)."""
    server_cpu: float = 0.0
    """Server CPU seconds used during the window."""
    busy: float = 0.0
    """The whole machine's busy share, %."""
    rss: float = 0.0
    """The server processes' resident memory at the window's end, MiB."""

    def p99(self, now: float) -> float:
        """p99 of its claims' latency (unanswered ones at their age ``now``)."""
        return percentiles([c.age(now) for c in self.claims])[2] if self.claims else 0.0

    def row(self, index: int, now: float) -> str:
        ages = [c.age(now) for c in self.claims] or [0.0]
        p50, _, p99 = percentiles(ages)
        answered = sum(c.ok for c in self.claims)
        errors = sum(c.latency is not None and not c.ok for c in self.claims)
        lag = max((c.lag for c in self.claims), default=0.0)
        cpu = self.server_cpu * 100 / self.seconds
        span = f"{index * WINDOW:.0f}-{index * WINDOW + self.seconds:.0f}s"
        return (
            f"{span:>9} {len(self.claims):>6} {answered:>8} {errors:>6} {p50 * 1000:>8.1f}"
            f" {p99 * 1000:>8.1f} {lag * 1000:>7.1f} {cpu:>9.0f}% {self.busy:>5.0f}%"
            f" {self.rss:>8.0f}"
        )


def machine_ticks() -> tuple[int, int]:
    """(busy, total) CPU ticks of the whole machine since boot (``/proc/stat``'s ``cpu`` line:
    idle and iowait are not busy; guest time is already in user)."""
    fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
    total = sum(fields)
    return total - fields[3] - fields[4], total


def server_rss_mib(pid: int) -> float:
    """Resident memory of a process and its children, living (``/proc``), MiB."""
    total, pending = 0, [pid]
    page = os.sysconf("SC_PAGE_SIZE")
    while pending:
        current = pending.pop()
        try:
            total += int(Path(f"/proc/{current}/statm").read_text().split()[1]) * page
            children = Path(f"/proc/{current}/task/{current}/children").read_text().split()
        except OSError:
            continue
        pending += [int(child) for child in children]
    return total / 1024 / 1024


class Pool:
    """Keep-alive connections: an idle one if there is one, else a new one, so a claim never
    waits for a connection; a connection that failed, or idle ``IDLE`` s, is dropped."""

    def __init__(self, port: int) -> None:
        self.port, self.opened = port, 0
        self.idle: list[tuple[float, Connection]] = []
        """(idle since, connection), the most recently used last."""

    async def fill(self, count: int) -> None:
        for _ in range(count):
            self.release(await self.open())

    async def open(self) -> Connection:
        self.opened += 1
        return await Connection.open("127.0.0.1", self.port)

    async def acquire(self) -> Connection:
        stale = time.perf_counter() - IDLE
        while self.idle and self.idle[0][0] < stale:  # the least recently used first
            self.idle.pop(0)[1].close()
        while self.idle:
            _, conn = self.idle.pop()
            if not conn.reader.at_eof():
                return conn
            conn.close()
        return await self.open()

    def release(self, conn: Connection) -> None:
        self.idle.append((time.perf_counter(), conn))

    def close(self) -> None:
        for _, conn in self.idle:
            conn.close()


@dataclass
class Soak:
    """The registry, the pool and what every window saw."""

    port: int
    rate: float
    seconds: float
    practitioners: list[str]
    people: list[str]
    coverages: list[str]
    windows: list[Window] = field(default_factory=list)
    outcomes: dict[str, int] = field(default_factory=dict)
    failures: dict[str, int] = field(default_factory=dict)
    server_cpu: float = 0.0

    def __post_init__(self) -> None:
        self.pool = Pool(self.port)
        self.counter = iter(range(random.randrange(10**8), 10**9))
        count = int(self.seconds // WINDOW) + (self.seconds % WINDOW > 1e-9)
        self.windows = [Window() for _ in range(count)]

    def body(self) -> bytes:
        n = random.randrange(len(self.people))
        day = f"2026-11-{random.randrange(1, 21):02d}"
        number = care_sheet_number(2026, next(self.counter))
        practitioner = random.choice(self.practitioners)
        return _claim(number, practitioner, self.people[n], self.coverages[n], day)

    async def send(self, claim: Claim) -> None:
        claim.lag = time.perf_counter() - claim.due
        body = self.body()
        conn = None
        try:
            conn = await self.pool.acquire()
            status, _, answer = await asyncio.wait_for(
                conn.request("POST", "/fhir/Claim/$submit", body), TIMEOUT - claim.lag
            )
        except (OSError, EOFError, asyncio.LimitOverrunError, TimeoutError, ValueError) as exc:
            claim.latency = time.perf_counter() - claim.due
            self.fail(type(exc).__name__)
            if conn is not None:
                conn.close()
            return
        claim.latency = time.perf_counter() - claim.due
        self.pool.release(conn)
        if status == 200:
            claim.ok = True
            outcome = orjson.loads(answer)["outcome"]
            self.outcomes[outcome] = self.outcomes.get(outcome, 0) + 1
        else:
            self.fail(f"HTTP {status}")

    def fail(self, reason: str) -> None:
        self.failures[reason] = self.failures.get(reason, 0) + 1

    async def schedule(self, start: float) -> list[asyncio.Task[None]]:
        """A claim every 1/rate s from ``start``, each its own task, whatever the answers."""
        tasks = []
        total = int(self.seconds * self.rate)
        for n in range(total):
            due = start + n / self.rate
            delay = due - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            claim = Claim(due)
            self.windows[int((due - start) // WINDOW)].claims.append(claim)
            tasks.append(asyncio.create_task(self.send(claim)))
        return tasks

    async def measure(self, start: float) -> None:
        """At each window's end, its server CPU, machine busy share and server memory; its row
        ``GRACE`` s later."""
        pid = SERVER_PID[0]
        cpu, (busy, total) = server_cpu_seconds(pid), machine_ticks()
        first = cpu
        printing: list[asyncio.Task[None]] = []
        for index, window in enumerate(self.windows):
            end = start + min((index + 1) * WINDOW, self.seconds)
            await asyncio.sleep(max(0.0, end - time.perf_counter()))
            now_cpu, (now_busy, now_total) = server_cpu_seconds(pid), machine_ticks()
            window.seconds = end - (start + index * WINDOW)
            window.server_cpu = now_cpu - cpu
            window.busy = (now_busy - busy) * 100 / max(1, now_total - total)
            window.rss = server_rss_mib(pid)
            cpu, busy, total = now_cpu, now_busy, now_total
            printing.append(asyncio.create_task(self.print_row(index, window)))
        self.server_cpu = cpu - first
        await asyncio.gather(*printing)

    async def print_row(self, index: int, window: Window) -> None:
        await asyncio.sleep(GRACE)
        print(window.row(index, time.perf_counter()), flush=True)

    async def run(self) -> None:
        await self.pool.fill(max(4, int(self.rate // 4)))
        start = time.perf_counter() + 0.1
        measuring = asyncio.create_task(self.measure(start))
        tasks = await self.schedule(start)
        await asyncio.gather(*tasks)
        await measuring
        self.pool.close()

    def summary(self) -> list[str]:
        now = time.perf_counter()
        claims = [c for w in self.windows for c in w.claims]
        answered = sum(c.ok for c in claims)
        errors = len(claims) - answered
        p50, _, p99 = percentiles([c.age(now) for c in claims]) if claims else (0.0, 0.0, 0.0)
        p99s = [w.p99(now) for w in self.windows if w.claims]
        met = sum(p < TARGET_P99 for p in p99s)
        busy = [w.busy for w in self.windows]
        rss = [w.rss for w in self.windows]
        cpu = self.server_cpu * 1000 / max(1, len(claims))
        reasons = f" {self.failures}" if self.failures else ""
        return [
            f"  total: {len(claims)} sent, {answered} answered, {errors} errors{reasons};"
            f" p50 {p50 * 1000:.1f} ms, p99 {p99 * 1000:.1f} ms",
            f"  worst window p99 {max(p99s, default=0.0) * 1000:.1f} ms; {met}/{len(p99s)}"
            f" windows ({met * 100 / max(1, len(p99s)):.0f} %) with p99 < {TARGET_P99 * 1000:.0f}"
            " ms",
            f"  server CPU {cpu:.1f} ms per sheet; machine busy mean"
            f" {sum(busy) / max(1, len(busy)):.0f} %, max {max(busy, default=0.0):.0f} %"
            f" (target < {TARGET_BUSY:.0f} %); server RSS {rss[0]:.0f} -> {rss[-1]:.0f} MiB"
            f" (max {max(rss):.0f}); {self.pool.opened} connections",
            f"  outcomes: {self.outcomes}",
        ]


async def _soak(port: int, database_url: str, rate: float, seconds: float) -> Soak:
    await authenticate(port, asyncpg_url(database_url))
    print(f"  registering {INSURED:,} insured and 40 GPs ...", flush=True)
    practitioners, people, coverages = await registry(port, INSURED)
    await settle(database_url)
    if not await autovacuum(database_url):
        print(
            "  PostgreSQL runs with autovacuum off: dead rows pile up over the soak and slow it"
            " (production runs it on, docs/operations.md)",
            flush=True,
        )
    soak = Soak(port, rate, seconds, practitioners, people, coverages)
    print(
        f"  POST Claim/$submit open loop: {rate:g} per second for {seconds / 60:g} min,"
        f" a row per {WINDOW:.0f} s window (by due time) ...",
        flush=True,
    )
    print(HEADER, flush=True)
    renewing = asyncio.create_task(_renew_tokens(port))
    try:
        await soak.run()
    finally:
        renewing.cancel()
    return soak


TOKEN_RENEWAL_SECONDS = 120.0
"""Well inside the default token lifetime (300 s), as an integrator renews."""


async def _renew_tokens(port: int) -> None:
    while True:
        await asyncio.sleep(TOKEN_RENEWAL_SECONDS)
        await renew_token(port)


def run(workers: int, rate: float, minutes: float) -> int:
    """The soak; 1 if any claim failed."""
    print("soak:", flush=True)
    database_url = migrated_database(DATABASE)
    try:
        with served(database_url, workers, FSE_PAYMENT_SCHEDULE="false") as port:
            soak = asyncio.run(_soak(port, database_url, rate, minutes * 60))
    finally:
        asyncio.run(drop_database(DATABASE))
    for line in soak.summary():
        print(line)
    print(f"  machine: {machine()}; {time.strftime('%Y-%m-%d %H:%M %Z')}", flush=True)
    return 0 if soak.failures == {} and soak.outcomes else 1
