"""``--only-access``: what the access model's checks cost one request, measured alone.

The FHIR API phases compare whole servers, and this machine varies 20-40 % between
runs. Here one process serves the same requests (in-process ASGI, one PostgreSQL database) with
the request's guard (``fse.fhir_api.guard``) and with a guard that lets everything through,
alternating rounds, and reports the CPU each request costs both ways: the difference is the
checks, before (narrowing, includes, chains) and after (``disclose``) the store.
"""

from __future__ import annotations

import asyncio
import re
import statistics
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

import httpx
import orjson

from bench.callers import bench_doctor, bench_token
from bench.harness import asyncpg_url, drop_database, machine, migrated_database
from bench.resources import SID, doctors_claim
from fhir_profiles.identifiers import care_sheet_number
from fse.fhir_api import guard as guard_module
from fse.fhir_api.guard import Disclosed, Guard

ROUNDS = 7
REQUESTS = 400


class OpenGuard(Guard):
    """A guard that checks nothing: the baseline the real one is compared with."""

    def allow(self, rtype: str, letter: str) -> Any:
        return guard_module.EVERYTHING

    async def narrow(self, conn: Any, query: Any) -> Any:
        return query

    async def disclose(self, conn: Any, items: Sequence[Any], *args: Any) -> Disclosed[Any]:
        return Disclosed(list(items))

    async def require(self, conn: Any, rtype: str, rid: str) -> None:
        return None


class _Timer:
    """Time spent in the guard, outermost calls only (``narrow`` calls ``allow``)."""

    spent = 0.0
    depth = 0
    started = 0.0

    def __enter__(self) -> None:
        _Timer.depth += 1
        if _Timer.depth == 1:
            _Timer.started = time.perf_counter()

    def __exit__(self, *_exc: object) -> None:
        _Timer.depth -= 1
        if _Timer.depth == 0:
            _Timer.spent += time.perf_counter() - _Timer.started


class TimedGuard(Guard):
    """The real guard, timing its own work."""

    def allow(self, rtype: str, letter: str) -> Any:
        with _Timer():
            return super().allow(rtype, letter)

    async def narrow(self, conn: Any, query: Any) -> Any:
        with _Timer():
            return await super().narrow(conn, query)

    async def disclose(self, conn: Any, items: Sequence[Any], *args: Any) -> Disclosed[Any]:
        with _Timer():
            return await super().disclose(conn, items, *args)

    async def require(self, conn: Any, rtype: str, rid: str) -> None:
        with _Timer():
            return await super().require(conn, rtype, rid)

    async def searched(self, *args: Any) -> None:
        with _Timer():
            return await super().searched(*args)


async def _world(http: httpx.AsyncClient) -> tuple[list[str], list[tuple[str, str]]]:
    """200 insured and 2,000 claims of the bench doctor (Practitioner/bench)."""
    patients = []
    for n in range(200):
        resource = {
            "resourceType": "Patient",
            "identifier": [{"system": f"{SID}/immatriculation", "value": f"8{n:08d}"}],
            "name": [{"family": f"Guard{n}", "given": ["Test"]}],
            "gender": "female" if n % 2 else "male",
            "birthDate": f"{1950 + n % 60}-01-01",
        }
        created = await http.post("/fhir/Patient", content=orjson.dumps(resource))
        if created.status_code != 201:
            raise RuntimeError(f"bench insured refused: {created.text[:300]}")
        patients.append(created.json()["id"])
    claims = []
    for n in range(2000):
        number = care_sheet_number(2026, 500_000 + n)
        body = doctors_claim(patients[n % len(patients)], number)
        created = await http.post("/fhir/Claim", content=body)
        if created.status_code != 201:
            raise RuntimeError(f"bench claim refused: {created.text[:300]}")
        claims.append((created.json()["id"], number))
    return patients, claims


async def _sign_in(http: httpx.AsyncClient, database_url: str) -> None:
    name, password = await bench_doctor(database_url)
    page = await http.get("/connexion")
    csrf = re.search(r'name="csrf" value="([^"]+)"', page.text)
    assert csrf is not None
    form = {"identifiant": name, "mot_de_passe": password, "suite": "/espace", "csrf": csrf[1]}
    signed = await http.post("/connexion", data=form)
    if signed.status_code != 303:
        raise RuntimeError(f"the bench doctor could not sign in: {signed.status_code}")


async def _cpu_per_request(op: Callable[[int], Awaitable[bool]], guard: type[Guard]) -> float:
    guard_module.Guard = guard  # what guard_of builds for each request
    try:
        start = time.process_time()
        for i in range(REQUESTS):
            if not await op(i):
                raise RuntimeError("a request of the access benchmark failed")
        return (time.process_time() - start) / REQUESTS * 1e6
    finally:
        guard_module.Guard = Guard


async def _measure(database_url: str) -> list[tuple[str, list[float], list[float], float]]:
    from fse.app import close, create_app, warm_up
    from fse.config import Settings
    from fse.security.clients import create_client

    scratch = Path(tempfile.mkdtemp(prefix="fse-access-bench-"))
    settings = Settings(
        database_url=database_url,
        signing_key_file=scratch / "key.pem",
        token_keys_file=scratch / "token-keys.json",
        cin_key_file=scratch / "cin.json",
        rate_limit_per_minute=0,
        rate_limit_per_system_client=0,
        rate_limit_per_user=0,
        payment_schedule=False,
        export_dir=scratch / "exports",
    )
    app = create_app(settings)
    warm_up()
    client, _ = await create_client(
        app.state.engine, f"bench-{uuid.uuid4().hex[:6]}", "system/*.cruds"
    )
    token = bench_token(app, settings, client.client_id)
    transport = httpx.ASGITransport(app=app)
    system = httpx.AsyncClient(
        transport=transport,
        base_url="http://bench",
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/fhir+json"},
    )
    doctor = httpx.AsyncClient(transport=transport, base_url="http://bench")
    try:
        print("  loading 200 insured and 2,000 claims ...", flush=True)
        patients, claims = await _world(system)
        await _sign_in(doctor, database_url)

        def get(http: httpx.AsyncClient, url: Callable[[int], str]) -> Callable[[int], Any]:
            async def op(i: int) -> bool:
                return (await http.get(url(i))).status_code == 200

            return op

        ops = {
            "GET /Claim?patient=": get(
                system, lambda i: f"/fhir/Claim?patient={patients[i % 200]}"
            ),
            "GET /Claim?patient=&_include": get(
                system, lambda i: f"/fhir/Claim?patient={patients[i % 200]}&_include=Claim:patient"
            ),
            "GET /Claim?identifier=": get(
                system, lambda i: f"/fhir/Claim?identifier={SID}/fse|{claims[i][1]}"
            ),
            "GET /Claim/{id}": get(system, lambda i: f"/fhir/Claim/{claims[i][0]}"),
            "GET /Claim?patient= (doctor)": get(
                doctor, lambda i: f"/fhir/Claim?patient={patients[i % 200]}"
            ),
        }
        results = []
        for name, op in ops.items():
            print(f"  {name}: {ROUNDS} rounds of {REQUESTS} requests each way ...", flush=True)
            checked, open_ = [], []
            await _cpu_per_request(op, Guard)  # warm caches and connections
            for round_ in range(ROUNDS):  # alternate which goes first: no order effect
                pair = [(checked, Guard), (open_, OpenGuard)]
                for into, guard in pair if round_ % 2 == 0 else reversed(pair):
                    into.append(await _cpu_per_request(op, guard))
            _Timer.spent = 0.0
            await _cpu_per_request(op, TimedGuard)
            results.append((name, checked, open_, _Timer.spent / REQUESTS * 1e6))
        return results
    finally:
        await system.aclose()
        await doctor.aclose()
        await close(app)


def run() -> int:
    url = asyncpg_url(migrated_database("fse_bench_access"))
    try:
        results = asyncio.run(_measure(url))
    finally:
        asyncio.run(drop_database("fse_bench_access"))
    print()
    print(f"machine: {machine()}")
    print(f"date: {time.strftime('%Y-%m-%d %H:%M %Z')}")
    print("CPU per request, client and server in one process (median of rounds, microseconds);")
    print("'in guard': time spent inside the guard's methods per request (wall clock: its")
    print("queries, a person's, included; a system client's checks never wait)")
    print(
        f"{'operation':<32} {'checked':>9} {'open':>9} {'difference':>10} {'in guard':>9}"
        f" {'share':>7}"
    )
    for name, checked, open_, inside in results:
        with_checks, without = statistics.median(checked), statistics.median(open_)
        print(
            f"{name:<32} {with_checks:>9.0f} {without:>9.0f} {with_checks - without:>10.0f}"
            f" {inside:>9.1f} {inside / with_checks * 100:>6.1f}%"
        )
    return 0
