"""The FHIR API phases: a real server on a fresh PostgreSQL database driven over HTTP by
concurrent keep-alive clients (writes, searches, reads, a signed-in doctor's calls, the
medicine and act pickers); with a registry database, lookups of insured among its families."""

from __future__ import annotations

import asyncio
import random
import time

import orjson

from bench.callers import authenticate, sign_in_doctor
from bench.harness import (
    COLUMNS,
    HEADER,
    Connection,
    Op,
    Result,
    asyncpg_url,
    fresh_database,
    machine,
    run_phase,
    served,
    settle,
)
from bench.resources import SID, doctors_claim, transaction
from bench.statements import statements_of
from fhir_profiles.identifiers import care_sheet_number

MEDICINE_QUERIES = (
    "amox",
    "CLAMOXYL%201%20g",
    "DOLIPRANE%20300%20mg",
    "paracetamol%20500",
    "metformine%201000%20mg",
    "6118001141531",
)
"""What a doctor types in a medicine field (URL-encoded): a start of name, an exact name with
its strength, a DCI with a strength."""
ACT_QUERIES = ("J329", "appendic", "hernie%20aine", "gastrectomie%20totale", "j3")


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
    status, _, body = await conn.request("POST", "/fhir", transaction(entries))
    conn.close()
    if status != 200:
        raise RuntimeError(f"could not create bench patients: {status} {body[:300]!r}")
    return [e["resource"]["id"] for e in orjson.loads(body)["entry"]]


async def drive(
    port: int, clients: int, seconds: float, database_url: str
) -> tuple[list[Result], list[tuple[str, Op]]]:
    """The phases' results, and their operations (their statements are counted once the
    server stopped)."""
    await authenticate(port, asyncpg_url(database_url))
    doctor = await sign_in_doctor(port, asyncpg_url(database_url))
    patients = await prepare_patients(port, 200)
    await settle(database_url)
    claims: list[tuple[str, str]] = []
    counter = iter(range(random.randrange(10**8), 10**9))

    async def create(conn: Connection, _i: int) -> bool:
        number = care_sheet_number(2026, next(counter))
        status, headers, _ = await conn.request(
            "POST", "/fhir/Claim", doctors_claim(random.choice(patients), number)
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
    ops: list[tuple[str, Op]] = [
        ("POST /Claim", create),
        ("GET /Claim?patient=", by_patient),
        ("GET /Claim?patient=&_include", with_patients),
        ("GET /Claim?patient= (doctor)", doctors_claims),
        ("GET /medicaments?q= (doctor)", medicines),
        ("GET /actes?q= (doctor)", acts),
        ("GET /Claim?identifier=", by_identifier),
        ("GET /Claim/{id}", read),
    ]
    for name, op in ops:
        print(f"  running {name} for {seconds:.0f} s with {clients} clients ...", flush=True)
        results.append(await run_phase(name, op, port, clients, seconds, database_url))
        await settle(database_url)
    return results, ops


async def drive_registry(
    port: int, clients: int, seconds: float, database_url: str, families: int
) -> list[Result]:
    """Find insured among a synthetic registry by CIN and by immatriculation (random families)."""
    from fse.seed.synthetic import family

    await authenticate(port, asyncpg_url(database_url))
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


def run(workers: int, clients: int, seconds: float, registry_db: str | None = None) -> int:
    """The FHIR API phases on a fresh database; with ``registry_db``, lookups of insured in an
    existing synthetic registry (`fse seed --synthetic N` into that database first)."""
    from fse.migrate import upgrade

    database_url = registry_db or asyncio.run(fresh_database())
    upgrade(asyncpg_url(database_url))
    ops: list[tuple[str, Op]] = []
    with served(database_url, workers) as port:
        print(f"server: {workers} worker(s) on port {port}; load: {clients} clients", flush=True)
        if registry_db:
            families = asyncio.run(_registry_size(database_url))
            print(f"registry: {families:,} synthetic insured", flush=True)
            results = asyncio.run(drive_registry(port, clients, seconds, database_url, families))
        else:
            results, ops = asyncio.run(drive(port, clients, seconds, database_url))
    if ops:
        print("  counting statements in-process ...", flush=True)
        counted = asyncio.run(statements_of(database_url, ops, client_id=Connection.client_id))
        for result in results:
            result.counted(counted.get(result.name))
    print()
    print(f"machine: {machine()}")
    print(f"date: {time.strftime('%Y-%m-%d %H:%M %Z')}")
    print(HEADER)
    for result in results:
        print(result.row())
        if breakdown := result.stored_by_table():
            print(breakdown)
    print(COLUMNS)
    return 0 if all(r.errors == 0 for r in results) else 1
