"""What every benchmark phase uses: a fresh PostgreSQL database, a real server (``fse serve``)
on it, a raw HTTP/1.1 load generator and the table of results.

The load generator is a few lines of raw HTTP/1.1 so that, on a small machine, the server and
not the client is measured. Each phase prints requests/s, p50/p95/p99, the server's CPU per
request, the SQL statements and bytes stored per operation (``COLUMNS``; the statements are
counted by ``bench.statements``), and the machine it ran on.
"""

from __future__ import annotations

import asyncio
import os
import platform
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from bench.statements import Counts

ADMIN_URL = os.environ.get(
    "FSE_BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)
REDIS_URL = os.environ.get("FSE_BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")
SQLITE_DIR: list[Path] = []
"""Set by ``--sqlite``: the phases' databases are SQLite files here, not PostgreSQL (to say how
much slower the embedded default is); what only PostgreSQL can tell (bytes per table) is left
out."""
HEADER = (
    f"{'operation':<34} {'req/s':>9} {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8} {'mean':>8}"
    f" {'cpu ms':>7} {'count':>8} {'errors':>6} {'spread':>7} {'sql/op':>7} {'+bg':>5}"
    f" {'kB/op':>7}"
)
"""The columns of ``Result.row``."""
COLUMNS = (
    "sql/op: SQL statements one operation sends (mean of a few run again in-process after the"
    " phase, BEGIN/COMMIT not counted, access-log INSERTs counted); +bg: statements of the"
    " background work it leaves (access log -> AuditEvents, outbox relay and fan-out, audit"
    " chain seal; batched over those few); kB/op: growth of all the database's tables over"
    " the timed phase (indexes, TOAST, history, audit, outbox, ledger included) / operations"
    " done; '-': not measured"
)
"""What ``HEADER``'s last columns mean, printed under the table."""


class Connection:
    """One keep-alive HTTP/1.1 connection."""

    token: str | None = None
    """The bench client's bearer token, once ``bench.callers.authenticate`` got it."""
    client_id: str | None = None
    """That client's id (``bench.statements`` issues its own token for it in-process)."""
    credentials: str = ""
    """Its HTTP Basic credentials, to renew the token (``bench.callers.renew_token``)."""

    def __init__(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, host: str
    ) -> None:
        self.reader, self.writer, self.host = reader, writer, host

    @classmethod
    async def open(cls, host: str, port: int) -> Connection:
        reader, writer = await asyncio.open_connection(host, port)
        return cls(reader, writer, f"{host}:{port}")

    async def request(
        self,
        method: str,
        path: str,
        body: bytes = b"",
        content_type: str = "application/fhir+json",
        authorization: str | None = None,
        cookie: str | None = None,
    ) -> tuple[int, dict[str, str], bytes]:
        """``cookie``: a signed-in person's session instead of the bench's bearer token."""
        head = f"{method} {path} HTTP/1.1\r\nHost: {self.host}\r\n"
        if cookie:
            head += f"Cookie: {cookie}\r\n"
        else:
            authorization = authorization or (f"Bearer {self.token}" if self.token else None)
        if authorization:
            head += f"Authorization: {authorization}\r\n"
        if body:
            head += f"Content-Type: {content_type}\r\nContent-Length: {len(body)}\r\n"
        self.writer.write(head.encode() + b"\r\n" + body)
        status_line = await self.reader.readuntil(b"\r\n")
        headers: dict[str, str] = {}
        while (line := await self.reader.readuntil(b"\r\n")) != b"\r\n":
            name, _, value = line.decode("latin-1").partition(":")
            key = name.strip().lower()
            if key == "set-cookie" and key in headers:  # one per cookie: keep them all
                headers[key] += "\n" + value.strip()
            else:
                headers[key] = value.strip()
        payload = await self.reader.readexactly(int(headers.get("content-length", "0")))
        return int(status_line.split()[1]), headers, payload

    def close(self) -> None:
        self.writer.close()


@dataclass
class Result:
    name: str
    latencies: list[float] = field(default_factory=list)
    errors: int = 0
    seconds: float = 0.0
    per_client: list[int] = field(default_factory=list)
    """Requests completed by each client: uneven counts mean unevenly loaded workers."""
    server_cpu: float = 0.0
    """CPU seconds the server's processes used during the phase (user + system)."""
    statements: tuple[float, float] | None = None
    """SQL statements per operation: in the request, and deferred (``bench.statements``)."""
    stored_bytes: float | None = None
    """Bytes the database's tables grew per operation done during the timed phase."""
    stored_tables: dict[str, float] = field(default_factory=dict)
    """The same, table by table (with its indexes and TOAST)."""

    def row(self) -> str:
        """One line under ``HEADER``."""
        done = sorted(self.latencies)
        if not done:
            return f"{self.name:<28} no successful request ({self.errors} errors)"

        def pct(p: float) -> float:
            return done[min(len(done) - 1, int(p * len(done)))] * 1000

        rate = len(done) / self.seconds
        cpu = self.server_cpu * 1000 / (len(done) + self.errors)
        return (
            f"{self.name:<34} {rate:>9.0f} {pct(0.50):>8.1f} {pct(0.95):>8.1f} {pct(0.99):>8.1f}"
            f" {statistics.fmean(done) * 1000:>8.1f} {cpu:>7.2f} {len(done):>8} {self.errors:>6}"
            f" {max(self.per_client) / max(1, min(self.per_client)):>7.2f} {self.database()}"
        )

    def counted(self, statements: Counts | None) -> None:
        """Take the statements counted in-process (None: not counted)."""
        if statements is not None:
            self.statements = statements.columns()

    def database(self) -> str:
        """The statements and bytes columns."""
        sql = f"{'-':>7} {'-':>5}"
        if self.statements is not None:
            sql = f"{self.statements[0]:>7.1f} {self.statements[1]:>5.1f}"
        stored = "-" if self.stored_bytes is None else f"{self.stored_bytes / 1024:.1f}"
        return f"{sql} {stored:>7}"

    def stored_by_table(self) -> str:
        """Where the bytes of one operation went, largest first (empty if not measured)."""
        return growth_line(self.stored_tables)


def growth_line(per_table: dict[str, float], shown: int = 8) -> str:
    """``  stored per operation: resources 7.8 KiB, idx_token 3.7, …`` (tables that grew)."""
    grew = sorted(((b, t) for t, b in per_table.items() if b >= 1), reverse=True)
    if not grew:
        return ""
    parts = [f"{t} {b / 1024:.1f}" for b, t in grew[:shown]]
    rest = sum(b for b, _ in grew[shown:])
    if rest:
        parts.append(f"other tables {rest / 1024:.1f}")
    return f"  stored per operation (KiB, with indexes): {', '.join(parts)}"


Op = Callable[[Connection, int], Awaitable[bool]]


def percentiles(samples: list[float]) -> tuple[float, float, float]:
    """p50, p95 and p99 of ``samples``."""
    done = sorted(samples)
    p50, p95, p99 = (done[min(len(done) - 1, int(p * len(done)))] for p in (0.5, 0.95, 0.99))
    return p50, p95, p99


def server_cpu_seconds(pid: int) -> float:
    """User + system CPU of a process and its children, living (Linux ``/proc``): what one
    request costs the server, steadier than throughput on a machine that varies 20-40 %."""
    total, ticks = 0.0, os.sysconf("SC_CLK_TCK")
    pending = [pid]
    while pending:
        current = pending.pop()
        try:
            fields = Path(f"/proc/{current}/stat").read_text().rsplit(")", 1)[1].split()
            children = Path(f"/proc/{current}/task/{current}/children").read_text().split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / ticks
        pending += [int(child) for child in children]
    return total


SERVER_PID: list[int] = []
"""The server the phases measure (its CPU is read around each phase)."""


async def run_phase(
    name: str, op: Op, port: int, clients: int, seconds: float, database_url: str | None = None
) -> Result:
    """``clients`` connections each running ``op`` in a loop for ``seconds``; with
    ``database_url``, the bytes its tables grew per operation done (``stored_bytes``; not on
    SQLite)."""
    result = Result(name)
    database_url = None if database_url and is_sqlite(database_url) else database_url
    size_before = await stored_by_table(database_url) if database_url else {}
    cpu_before = server_cpu_seconds(SERVER_PID[0]) if SERVER_PID else 0.0
    deadline = time.perf_counter() + seconds

    async def worker(index: int) -> None:
        conn = await Connection.open("127.0.0.1", port)
        completed = 0
        try:
            while (start := time.perf_counter()) < deadline:
                ok = await op(conn, index)
                completed += 1
                if ok:
                    result.latencies.append(time.perf_counter() - start)
                else:
                    result.errors += 1
        finally:
            conn.close()
            result.per_client.append(completed)

    began = time.perf_counter()
    await asyncio.gather(*(worker(i) for i in range(clients)))
    result.seconds = time.perf_counter() - began
    if SERVER_PID:
        result.server_cpu = server_cpu_seconds(SERVER_PID[0]) - cpu_before
    if database_url and result.latencies:
        grown = growth(size_before, await stored_by_table(database_url, drained=True))
        result.stored_tables = {t: b / len(result.latencies) for t, b in grown.items()}
        result.stored_bytes = sum(grown.values()) / len(result.latencies)
    return result


def asyncpg_url(database_url: str) -> str:
    """The SQLAlchemy URL (asyncpg driver) of a ``postgresql://`` URL."""
    return database_url.replace("postgresql://", "postgresql+asyncpg://", 1)


def is_sqlite(database_url: str) -> bool:
    return database_url.startswith("sqlite")


async def settle(database_url: str) -> None:
    """VACUUM ANALYZE between phases: measure steady state, not autovacuum catching up."""
    import asyncpg

    if is_sqlite(database_url):
        return
    conn = await asyncpg.connect(database_url)
    try:
        await conn.execute("VACUUM ANALYZE")
    finally:
        await conn.close()


async def autovacuum(database_url: str) -> bool:
    """Whether the server runs autovacuum: a long run on one without it (these CI machines turn
    it off) slows as dead rows pile up, which production would not see."""
    import asyncpg

    conn = await asyncpg.connect(database_url)
    try:
        return bool(await conn.fetchval("SHOW autovacuum") == "on")
    finally:
        await conn.close()


TABLES_SIZE = """
SELECT c.relname, pg_total_relation_size(c.oid)
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind IN ('r', 'p', 'm') AND n.nspname NOT IN ('pg_catalog', 'information_schema')
  AND n.nspname NOT LIKE 'pg_toast%'
"""


async def stored_by_table(database_url: str, drained: bool = False) -> dict[str, int]:
    """The size of every table of the database, with its indexes and TOAST (history,
    audit, outbox, ledger all included). ``drained``: first wait (up to 10 s) until the
    server has turned its access log into AuditEvents, so a phase's bytes include them."""
    import asyncpg

    conn = await asyncpg.connect(database_url)
    try:
        deadline = time.monotonic() + 10
        while drained and time.monotonic() < deadline:
            if not await conn.fetchval("SELECT EXISTS (SELECT 1 FROM api_access_log)"):
                break
            await asyncio.sleep(0.2)
        return {name: int(size) for name, size in await conn.fetch(TABLES_SIZE)}
    finally:
        await conn.close()


def growth(before: dict[str, int], after: dict[str, int]) -> dict[str, int]:
    """Bytes each table grew between two ``stored_by_table`` readings."""
    return {t: size - before.get(t, 0) for t, size in after.items()}


def machine() -> str:
    cpu = "unknown CPU"
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    memory = ""
    meminfo = Path("/proc/meminfo")
    if meminfo.exists():
        kib = int(meminfo.read_text().split()[1])
        memory = f", {kib / 1024 / 1024:.0f} GiB"
    return (
        f"{platform.node()}: {os.cpu_count()} cores ({cpu}){memory}; "
        f"{platform.system()} {platform.release()}; Python {platform.python_version()}"
    )


async def fresh_database(name: str = "fse_bench") -> str:
    """An empty PostgreSQL database for one benchmark (dropped first if a run left it)."""
    import asyncpg

    conn = await asyncpg.connect(ADMIN_URL)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await conn.execute(f'CREATE DATABASE "{name}"')
        version = await conn.fetchval("SHOW server_version")
    finally:
        await conn.close()
    print(f"PostgreSQL {version}: fresh database {name}", flush=True)
    return ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"


def migrated_database(name: str) -> str:
    """A fresh database (``fresh_database``, or a SQLite file with ``--sqlite``) with the
    platform's schema."""
    from fse.migrate import upgrade

    if SQLITE_DIR:
        import sqlite3

        path = SQLITE_DIR[0] / f"{name}.sqlite3"
        for stale in SQLITE_DIR[0].glob(f"{name}.sqlite3*"):
            stale.unlink()
        database_url = f"sqlite+aiosqlite:///{path}"
        upgrade(database_url)
        print(f"SQLite {sqlite3.sqlite_version}: fresh database {path}", flush=True)
        return database_url
    database_url = asyncio.run(fresh_database(name))
    upgrade(asyncpg_url(database_url))
    return database_url


async def drop_database(name: str) -> None:
    import asyncpg

    if SQLITE_DIR:
        for path in SQLITE_DIR[0].glob(f"{name}.sqlite3*"):
            path.unlink()
        return
    conn = await asyncpg.connect(ADMIN_URL)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def listening_sockets(port: int) -> int:
    """LISTEN sockets on the port (Linux): one per worker when each binds with SO_REUSEPORT."""
    count = 0
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        path = Path(table)
        if not path.exists():
            continue
        for line in path.read_text().splitlines()[1:]:
            fields = line.split()
            if fields[1].rsplit(":", 1)[1] == f"{port:04X}" and fields[3] == "0A":
                count += 1
    return count


def wait_ready(port: int, process: subprocess.Popen[bytes], workers: int) -> None:
    """Wait until every worker listens, so the clients' connections spread over all of them."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError("the server exited; run `fse serve` by hand to see why")
        if listening_sockets(port) >= workers:
            return
        time.sleep(0.2)
    raise RuntimeError(f"{workers} workers did not all start within 60 s")


@contextmanager
def served(database_url: str, workers: int, **settings: str) -> Iterator[int]:
    """``fse serve`` with ``workers`` on the database and the Redis runtime, no rate limit and
    ``settings`` (``FSE_…`` names) added; yields its port once every worker listens. Its CPU is
    what ``run_phase`` reports."""
    port = free_port()
    env = {
        **os.environ,
        "FSE_DATABASE_URL": database_url,
        "FSE_REDIS_URL": REDIS_URL,
        # Its own namespace: no other run's events, limits or cache (the shared ``fse`` stream
        # holds up to 100,000 events of every earlier run).
        "FSE_REDIS_NAMESPACE": f"fse-bench-{port}-{os.getpid()}",
        "FSE_RATE_LIMIT_PER_MINUTE": "0",
        "FSE_RATE_LIMIT_PER_SYSTEM_CLIENT": "0",
        "FSE_RATE_LIMIT_PER_USER": "0",
        "FSE_PORT": str(port),
        **settings,
    }
    server = subprocess.Popen(
        [sys.executable, "-m", "fse.cli", "serve", "--quiet", "--workers", str(workers)], env=env
    )
    SERVER_PID[:] = [server.pid]
    try:
        wait_ready(port, server, workers)
        yield port
    finally:
        SERVER_PID.clear()
        server.terminate()
        server.wait(timeout=30)
