"""`fse bench`: drive a real server on PostgreSQL over HTTP with concurrent keep-alive clients.

Prints requests/s and p50/p95/p99 per operation, and the machine it ran on. The load generator is
a few lines of raw HTTP/1.1 so that, on a small machine, the server and not the client is measured.
"""

from __future__ import annotations

import asyncio
import base64
import os
import platform
import random
import socket
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

import orjson

from fhir_profiles.identifiers import care_sheet_number

ADMIN_URL = os.environ.get(
    "FSE_BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)
REDIS_URL = os.environ.get("FSE_BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")
SID = "https://fse.cnss.ma/fhir/sid"
MEDICINE_QUERIES = (
    "amox",
    "CLAMOXYL%201%20g",
    "DOLIPRANE%20300%20mg",
    "paracetamol%20500",
    "metformine%201000%20mg",
    "6118001141531",
)
ACT_QUERIES = ("J329", "appendic", "hernie%20aine", "gastrectomie%20totale", "j3")
"""What a doctor types in a medicine field (URL-encoded): a start of name, an exact name with
its strength, a DCI with a strength."""


class Connection:
    """One keep-alive HTTP/1.1 connection."""

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

    def row(self) -> str:
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
            f" {max(self.per_client) / max(1, min(self.per_client)):>7.2f}"
        )


Op = Callable[[Connection, int], Awaitable[bool]]


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


async def run_phase(name: str, op: Op, port: int, clients: int, seconds: float) -> Result:
    result = Result(name)
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
    return result


def claim_body(patient_id: str, number: str) -> bytes:
    return orjson.dumps(
        {
            "resourceType": "Claim",
            "identifier": [{"system": f"{SID}/fse", "value": number}],
            "status": "active",
            "type": {
                "coding": [
                    {
                        "system": "http://terminology.hl7.org/CodeSystem/claim-type",
                        "code": "professional",
                    }
                ]
            },
            "use": "claim",
            "patient": {"reference": f"Patient/{patient_id}"},
            "created": "2026-11-20T09:50:00+01:00",
            "provider": {"reference": BENCH_DOCTOR},
            "priority": {"coding": [{"code": "normal"}]},
            "insurance": [
                {"sequence": 1, "focal": True, "coverage": {"reference": "Coverage/bench"}}
            ],
            "item": [
                {
                    "sequence": n,
                    "productOrService": {"coding": [{"system": "ngap", "code": code}]},
                    "net": {"value": value, "currency": "MAD"},
                }
                for n, (code, value) in enumerate((("C", 150), ("K", 450), ("B", 120)), start=1)
            ],
            "total": {"value": 720, "currency": "MAD"},
        }
    )


async def prepare_patients(port: int, count: int) -> list[str]:
    conn = await Connection.open("127.0.0.1", port)
    run = random.randrange(10**6)
    entries = [
        {
            "resource": {
                "resourceType": "Patient",
                "identifier": [
                    {"system": f"{SID}/immatriculation", "value": f"9{run % 1000:03d}{n:05d}"}
                ],
                "name": [{"family": f"Bench{n}", "given": ["Test"]}],
                "gender": "female" if n % 2 else "male",
                "birthDate": f"{1950 + n % 60}-01-01",
            },
            "request": {"method": "POST", "url": "Patient"},
        }
        for n in range(count)
    ]
    status, _, body = await conn.request(
        "POST",
        "/fhir",
        orjson.dumps({"resourceType": "Bundle", "type": "transaction", "entry": entries}),
    )
    conn.close()
    if status != 200:
        raise RuntimeError(f"could not create bench patients: {status} {body[:300]!r}")
    return [e["resource"]["id"] for e in orjson.loads(body)["entry"]]


async def settle(database_url: str) -> None:
    """VACUUM ANALYZE between phases: measure steady state, not autovacuum catching up."""
    import asyncpg

    conn = await asyncpg.connect(database_url)
    try:
        await conn.execute("VACUUM ANALYZE")
    finally:
        await conn.close()


async def authenticate(port: int, database_url: str) -> None:
    """Register a bench client and get its token from /auth/token, as an integrator would."""
    from fse.db import create_engine
    from fse.security.clients import create_client

    engine = create_engine(database_url)
    try:
        client, secret = await create_client(
            engine, f"bench-{uuid.uuid4().hex[:8]}", "system/*.cruds"
        )
    finally:
        await engine.dispose()
    conn = await Connection.open("127.0.0.1", port)
    credentials = base64.b64encode(f"{client.client_id}:{secret}".encode()).decode()
    status, _, payload = await conn.request(
        "POST",
        "/auth/token",
        b"grant_type=client_credentials",
        "application/x-www-form-urlencoded",
        f"Basic {credentials}",
    )
    conn.close()
    if status != 200:
        raise RuntimeError(f"could not get a token: {status} {payload[:200]!r}")
    Connection.token = orjson.loads(payload)["access_token"]


BENCH_DOCTOR = "Practitioner/bench"
"""The provider of the bench's claims, and the Practitioner of its signed-in doctor."""


async def bench_doctor(database_url: str) -> tuple[str, str]:
    """A doctor's account linked to the bench's provider: (user name, password)."""
    from fse.db import create_engine
    from fse.security.users import Role, create_user

    name, password = f"bench.{uuid.uuid4().hex[:8]}", uuid.uuid4().hex
    engine = create_engine(database_url)
    try:
        await create_user(engine, name, password, Role.PRESCRIBER, "Dr Bench", BENCH_DOCTOR)
    finally:
        await engine.dispose()
    return name, password


async def sign_in_doctor(port: int, database_url: str) -> str:
    """The bench doctor signed in through /connexion: the session cookie a person's FHIR calls
    carry."""
    name, password = await bench_doctor(database_url)
    conn = await Connection.open("127.0.0.1", port)
    try:
        _, headers, page = await conn.request("GET", "/connexion", cookie="none=1")
        csrf = page.split(b'name="csrf" value="', 1)[1].split(b'"', 1)[0].decode()
        login_cookie = headers["set-cookie"].split(";", 1)[0]
        form = f"identifiant={name}&mot_de_passe={password}&suite=%2Fespace&csrf={csrf}"
        status, headers, _ = await conn.request(
            "POST",
            "/connexion",
            form.encode(),
            "application/x-www-form-urlencoded",
            None,
            login_cookie,
        )
    finally:
        conn.close()
    cookies = [c.split(";", 1)[0] for c in headers.get("set-cookie", "").splitlines()]
    session = next((c for c in cookies if c.startswith("fse_session=")), None)
    if status != 303 or session is None:
        raise RuntimeError(f"the bench doctor could not sign in: {status}")
    return session


async def drive(port: int, clients: int, seconds: float, database_url: str) -> list[Result]:
    await authenticate(port, database_url.replace("postgresql://", "postgresql+asyncpg://", 1))
    doctor = await sign_in_doctor(
        port, database_url.replace("postgresql://", "postgresql+asyncpg://", 1)
    )
    patients = await prepare_patients(port, 200)
    await settle(database_url)
    claims: list[tuple[str, str]] = []
    counter = iter(range(random.randrange(10**8), 10**9))

    async def create(conn: Connection, _i: int) -> bool:
        number = care_sheet_number(2026, next(counter))
        status, headers, _ = await conn.request(
            "POST", "/fhir/Claim", claim_body(random.choice(patients), number)
        )
        if status == 201:
            claims.append((headers["location"].split("/")[-3], number))
        return status == 201

    async def by_patient(conn: Connection, _i: int) -> bool:
        status, _, _ = await conn.request(
            "GET", f"/fhir/Claim?patient=Patient/{random.choice(patients)}"
        )
        return status == 200

    async def with_patients(conn: Connection, _i: int) -> bool:
        patient = random.choice(patients)
        url = f"/fhir/Claim?patient=Patient/{patient}&_include=Claim:patient"
        status, _, _ = await conn.request("GET", url)
        return status == 200

    async def doctors_claims(conn: Connection, _i: int) -> bool:
        url = f"/fhir/Claim?patient=Patient/{random.choice(patients)}"
        status, _, _ = await conn.request("GET", url, cookie=doctor)
        return status == 200

    async def medicines(conn: Connection, _i: int) -> bool:
        status, _, _ = await conn.request(
            "GET", f"/medicaments?q={random.choice(MEDICINE_QUERIES)}", cookie=doctor
        )
        return status == 200

    async def acts(conn: Connection, _i: int) -> bool:
        status, _, _ = await conn.request(
            "GET", f"/actes?q={random.choice(ACT_QUERIES)}", cookie=doctor
        )
        return status == 200

    async def by_identifier(conn: Connection, _i: int) -> bool:
        _, number = random.choice(claims)
        status, _, body = await conn.request("GET", f"/fhir/Claim?identifier={SID}/fse|{number}")
        return status == 200 and b'"entry"' in body

    async def read(conn: Connection, _i: int) -> bool:
        cid, _ = random.choice(claims)
        status, _, _ = await conn.request("GET", f"/fhir/Claim/{cid}")
        return status == 200

    results = []
    for name, op in (
        ("POST /Claim", create),
        ("GET /Claim?patient=", by_patient),
        ("GET /Claim?patient=&_include", with_patients),
        ("GET /Claim?patient= (doctor)", doctors_claims),
        ("GET /medicaments?q= (doctor)", medicines),
        ("GET /actes?q= (doctor)", acts),
        ("GET /Claim?identifier=", by_identifier),
        ("GET /Claim/{id}", read),
    ):
        print(f"  running {name} for {seconds:.0f} s with {clients} clients ...", flush=True)
        results.append(await run_phase(name, op, port, clients, seconds))
        await settle(database_url)
    return results


async def drive_registry(
    port: int, clients: int, seconds: float, database_url: str, families: int
) -> list[Result]:
    """Find insured among a synthetic registry by CIN and by immatriculation (random families)."""
    from fse.seed.synthetic import family

    await authenticate(port, database_url.replace("postgresql://", "postgresql+asyncpg://", 1))
    rng = random.Random(7)
    sample = [
        next(r for t, r in family(rng.randrange(families)) if t == "Patient") for _ in range(2000)
    ]

    def lookup(kind: int) -> Op:
        async def op(conn: Connection, _i: int) -> bool:
            ident = rng.choice(sample)["identifier"][kind]
            status, _, body = await conn.request(
                "GET", f"/fhir/Patient?identifier={ident['system']}|{ident['value']}"
            )
            return status == 200 and b'"entry"' in body

        return op

    results = []
    for name, op in (
        ("GET /Patient?identifier=cin", lookup(1)),
        ("GET /Patient?identifier=immat", lookup(0)),
    ):
        for label, concurrency in ((f"{name} (1 client)", 1), (name, clients)):
            print(f"  running {label} for {seconds:.0f} s ...", flush=True)
            results.append(await run_phase(label, op, port, concurrency, seconds))
    return results


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


async def _registry_size(database_url: str) -> int:
    import asyncpg

    conn = await asyncpg.connect(database_url)
    try:
        return int(
            await conn.fetchval(
                "SELECT count(*) FROM unique_identifiers WHERE type = 'Patient' AND system = $1",
                f"{SID}/immatriculation",
            )
        )
    finally:
        await conn.close()


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


async def drop_database(name: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(ADMIN_URL)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


def _free_port() -> int:
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


def _wait_ready(port: int, process: subprocess.Popen[bytes], workers: int) -> None:
    """Wait until every worker listens, so the clients' connections spread over all of them."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError("the server exited; run `fse serve` by hand to see why")
        if listening_sockets(port) >= workers:
            return
        time.sleep(0.2)
    raise RuntimeError(f"{workers} workers did not all start within 60 s")


def run(workers: int, clients: int, seconds: float, registry_db: str | None = None) -> int:
    """The FHIR API phases on a fresh database; with ``registry_db``, lookups of insured in an
    existing synthetic registry (`fse seed --synthetic N` into that database first)."""
    from fse.migrate import upgrade

    database_url = registry_db or asyncio.run(fresh_database())
    upgrade(database_url.replace("postgresql://", "postgresql+asyncpg://", 1))
    port = _free_port()
    env = {
        **os.environ,
        "FSE_DATABASE_URL": database_url,
        "FSE_REDIS_URL": REDIS_URL,
        "FSE_RATE_LIMIT_PER_MINUTE": "0",
        "FSE_RATE_LIMIT_PER_SYSTEM_CLIENT": "0",
        "FSE_RATE_LIMIT_PER_USER": "0",
        "FSE_PORT": str(port),
    }
    server = subprocess.Popen(
        [sys.executable, "-m", "fse.cli", "serve", "--quiet", "--workers", str(workers)], env=env
    )
    SERVER_PID[:] = [server.pid]
    try:
        _wait_ready(port, server, workers)
        print(f"server: {workers} worker(s) on port {port}; load: {clients} clients", flush=True)
        if registry_db:
            families = asyncio.run(_registry_size(database_url))
            print(f"registry: {families:,} synthetic insured", flush=True)
            results = asyncio.run(drive_registry(port, clients, seconds, database_url, families))
        else:
            results = asyncio.run(drive(port, clients, seconds, database_url))
    finally:
        server.terminate()
        server.wait(timeout=30)
    print()
    print(f"machine: {machine()}")
    print(f"date: {time.strftime('%Y-%m-%d %H:%M %Z')}")
    print(
        f"{'operation':<34} {'req/s':>9} {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8} {'mean':>8}"
        f" {'cpu ms':>7} {'count':>8} {'errors':>6} {'spread':>7}"
    )
    for result in results:
        print(result.row())
    return 0 if all(r.errors == 0 for r in results) else 1
