"""The reimbursement phases (after the FHIR API phases; ``--only-reimbursement`` alone):

1. adjudication cost per claim in the pure core (no I/O): p50/p95/p99 per call;
2. claims settled per second through ``Claim/$submit`` on PostgreSQL (a real server, HTTP);
3. one payment batch over N approved claims (default 1,000,000): time, peak memory, ledger check.
"""

from __future__ import annotations

import asyncio
import random
import resource
import time
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path

import orjson

from bench.callers import authenticate
from bench.harness import (
    COLUMNS,
    HEADER,
    Connection,
    Op,
    Result,
    asyncpg_url,
    drop_database,
    migrated_database,
    percentiles,
    run_phase,
    served,
    settle,
)
from bench.resources import SID, act, claim, located, transaction
from bench.statements import statements_of
from fhir_profiles.identifiers import care_sheet_number, iban_from_rib, rib_key
from fse.config import Settings
from fse.fhir_api.interactions import standalone_service
from reimbursement.core.adjudication import adjudicate
from reimbursement.core.model import (
    Beneficiary,
    CareSheet,
    CodeKind,
    CoveragePeriod,
    Line,
    PrescriptionLine,
    Provider,
)
from reimbursement.feature import schedule_of
from reimbursement.ledger import check_ledger
from reimbursement.payments import Payments
from reimbursement.reference_data import default_books

REGIME = "https://fse.cnss.ma/fhir/CodeSystem/regime"
RIGHTS = "https://fse.cnss.ma/fhir/StructureDefinition/rights-status"


def core_cost(rounds: int = 20_000) -> list[str]:
    """Adjudicate three typical sheets (consultation, lab, pharmacy) ``rounds`` times each."""
    books = default_books()
    care = date(2026, 11, 20)
    coverage = (CoveragePeriod("c", "salaries", "ouverts", date(2024, 1, 1), None),)
    person = Beneficiary("p", date(1978, 4, 12))
    gp = Provider("Practitioner/gp", ("394814009",))
    prescription = PrescriptionLine("mr", "6118001141531", date(2027, 2, 18), "active", Decimal(2))
    sheets = {
        "consultation C": (Line(1, CodeKind.NGAP, "C", Decimal("150.00"), care),),
        "lab B120 + B40": (
            Line(1, CodeKind.NGAP, "B", Decimal("132.00"), care, Decimal(120)),
            Line(2, CodeKind.NGAP, "B", Decimal("44.00"), care, Decimal(40)),
        ),
        "pharmacy 2 lines": (
            Line(
                1,
                CodeKind.MEDICINE,
                "6118000070313",
                Decimal("418.00"),
                care,
                quantity=Decimal(2),
                prescription=prescription,
            ),
            Line(
                2,
                CodeKind.MEDICINE,
                "6118001141531",
                Decimal("232.00"),
                care,
                prescription=prescription,
            ),
        ),
    }
    rows = []
    for name, lines in sheets.items():
        sheet = CareSheet("k", gp, person, coverage, lines, date(2026, 11, 22))
        for _ in range(1000):
            adjudicate(sheet, books)
        samples = []
        for _ in range(rounds):
            start = time.perf_counter_ns()
            adjudicate(sheet, books)
            samples.append((time.perf_counter_ns() - start) / 1000)
        p50, p95, p99 = percentiles(samples)
        rows.append(
            f"  core adjudication, {name:<18} p50 {p50:6.1f} µs  p95 {p95:6.1f} µs  "
            f"p99 {p99:6.1f} µs  ({rounds} calls)"
        )
    return rows


async def registry(port: int, patients: int) -> tuple[list[str], list[str], list[str]]:
    """Insured with open rights (their Coverage) and 40 GPs with their role, through transaction
    Bundles: (Practitioner ids, Patient ids, Coverage ids, the n-th Coverage the n-th
    Patient's)."""
    conn = await Connection.open("127.0.0.1", port)
    run = random.randrange(1000)
    practitioners = []
    entries = []
    for n in range(40):
        inpe = f"7{run:03d}{n:05d}"
        entries += [
            {
                "fullUrl": f"urn:uuid:00000000-0000-4000-9000-{n:012d}",
                "resource": {
                    "resourceType": "Practitioner",
                    "identifier": [{"system": f"{SID}/inpe", "value": inpe}],
                    "name": [{"family": f"Bench{n}", "given": ["Dr"]}],
                },
                "request": {"method": "POST", "url": "Practitioner"},
            },
            {
                "resource": {
                    "resourceType": "PractitionerRole",
                    "practitioner": {"reference": f"urn:uuid:00000000-0000-4000-9000-{n:012d}"},
                    "code": [
                        {
                            "coding": [
                                {
                                    "system": "http://terminology.hl7.org/CodeSystem/practitioner-role",
                                    "code": "doctor",
                                }
                            ]
                        }
                    ],
                    "specialty": [
                        {"coding": [{"system": "http://snomed.info/sct", "code": "394814009"}]}
                    ],
                },
                "request": {"method": "POST", "url": "PractitionerRole"},
            },
        ]
    status, _, body = await conn.request("POST", "/fhir", transaction(entries))
    if status != 200:
        raise RuntimeError(f"bench practitioners: {status} {body[:300]!r}")
    practitioners = [
        rid for rtype, rid in map(located, orjson.loads(body)["entry"]) if rtype == "Practitioner"
    ]
    people, coverages = [], []
    for start in range(0, patients, 200):
        entries = []
        for n in range(start, min(patients, start + 200)):
            base = f"{190 + n % 3:03d}780{run:06d}{n:010d}"
            entries += [
                {
                    "fullUrl": f"urn:uuid:00000000-0000-4000-8000-{n:012d}",
                    "resource": {
                        "resourceType": "Patient",
                        "identifier": [
                            {"system": f"{SID}/immatriculation", "value": f"8{run:03d}{n:05d}"},
                            {"system": f"{SID}/rib", "value": base + rib_key(base)},
                        ],
                        "name": [{"family": f"Assure{n}", "given": ["Bench"]}],
                        "gender": "female" if n % 2 else "male",
                        "birthDate": f"{1950 + n % 50}-03-01",
                    },
                    "request": {"method": "POST", "url": "Patient"},
                },
                {
                    "resource": {
                        "resourceType": "Coverage",
                        "extension": [
                            {
                                "url": RIGHTS,
                                "valueCoding": {
                                    "system": "https://fse.cnss.ma/fhir/CodeSystem/rights-status",
                                    "code": "ouverts",
                                },
                            }
                        ],
                        "status": "active",
                        "type": {"coding": [{"system": REGIME, "code": "salaries"}]},
                        "beneficiary": {"reference": f"urn:uuid:00000000-0000-4000-8000-{n:012d}"},
                        "subscriber": {"reference": f"urn:uuid:00000000-0000-4000-8000-{n:012d}"},
                        "relationship": {
                            "coding": [
                                {
                                    "system": "http://terminology.hl7.org/CodeSystem/subscriber-relationship",
                                    "code": "self",
                                }
                            ]
                        },
                        "period": {"start": "2020-01-01"},
                        "payor": [{"display": "CNSS"}],
                    },
                    "request": {"method": "POST", "url": "Coverage"},
                },
            ]
        status, _, body = await conn.request("POST", "/fhir", transaction(entries))
        if status != 200:
            raise RuntimeError(f"bench insured: {status} {body[:300]!r}")
        for entry in orjson.loads(body)["entry"]:
            rtype, rid = located(entry)
            (people if rtype == "Patient" else coverages).append(rid)
    conn.close()
    return practitioners, people, coverages


def _claim(number: str, practitioner: str, patient: str, coverage: str, day: str) -> bytes:
    """A consultation at a random fee (150-199.99 MAD) and a Z15 act, on ``day``."""
    cents = random.randrange(0, 5000)
    items = [
        act(1, "C", float(Decimal(15000 + cents) / 100), day),
        act(2, "Z", 180.0, day, coefficient=15),
    ]
    return claim(
        number,
        f"Patient/{patient}",
        f"Practitioner/{practitioner}",
        f"Coverage/{coverage}",
        f"{day}T10:00:00+01:00",
        items,
    )


async def _submit(port: int, clients: int, seconds: float, database_url: str) -> tuple[Result, Op]:
    await authenticate(port, asyncpg_url(database_url))
    practitioners, people, coverages = await registry(port, 4000)
    await settle(database_url)
    counter = iter(range(random.randrange(10**8), 10**9))
    outcomes: dict[str, int] = {}

    async def submit(conn: Connection, _i: int) -> bool:
        n = random.randrange(len(people))
        day = f"2026-11-{random.randrange(1, 21):02d}"
        body = _claim(
            care_sheet_number(2026, next(counter)),
            random.choice(practitioners),
            people[n],
            coverages[n],
            day,
        )
        status, _, answer = await conn.request("POST", "/fhir/Claim/$submit", body)
        if status == 200:
            outcome = orjson.loads(answer)["outcome"]
            outcomes[outcome] = outcomes.get(outcome, 0) + 1
        return status == 200

    print(
        f"  running POST Claim/$submit for {seconds:.0f} s with {clients} clients ...", flush=True
    )
    result = await run_phase("POST Claim/$submit", submit, port, clients, seconds, database_url)
    print(f"  outcomes: {outcomes}", flush=True)
    return result, submit


def submit_throughput(workers: int, clients: int, seconds: float, database_url: str) -> Result:
    """Claims settled per second over HTTP, then their statements counted in-process."""
    with served(database_url, workers, FSE_PAYMENT_SCHEDULE="false") as port:
        result, submit = asyncio.run(_submit(port, clients, seconds, database_url))
    counted = asyncio.run(
        statements_of(database_url, [(result.name, submit)], client_id=Connection.client_id)
    )
    result.counted(counted.get(result.name))
    return result


async def _fill_approved(database_url: str, claims: int) -> None:
    """``claims`` approved, unpaid settlements (with their benefit journals), in bulk SQL."""
    import asyncpg

    payees = min(claims, 700_000)
    ibans = []
    for n in range(1000):
        base = f"{190 + n % 3:03d}780{n:016d}"
        ibans.append(iban_from_rib(base + rib_key(base)))
    conn = await asyncpg.connect(database_url)
    try:
        await conn.execute("CREATE TEMP TABLE bench_ibans (n int primary key, iban text)")
        await conn.executemany("INSERT INTO bench_ibans VALUES ($1, $2)", list(enumerate(ibans)))
        await conn.execute(
            """
            INSERT INTO settlements (claim_key, claim_id, response_id, patient_id, provider_ref,
                payee_kind, payee_ref, payee_name, payee_iban, regime, care_date, received_at,
                outcome, status, billed, eligible, benefit, patient_share, approval_seq)
            SELECT 'bench|' || g, 'c' || g, 'r' || g, 'p' || (g % $2),
                'Practitioner/' || (g % 5000),
                'insured', 'Patient/' || (g % $2), 'Assuré ' || (g % $2), i.iban, 'salaries',
                current_date, now(), 'complete', 'approved', 150, 80, 56 + (g % 7), 94 - (g % 7), g
            FROM generate_series(1, $1) g JOIN bench_ibans i ON i.n = (g % $2) % 1000
            """,
            claims,
            payees,
        )
        for account, sign in (("benefits", ""), ("payable", "-")):
            await conn.execute(
                f"""
                INSERT INTO ledger_entries
                    (journal, account, kind, amount, settlement_pk, created_at)
                SELECT 'benefit-' || pk, '{account}', 'benefit', {sign}benefit, pk, now()
                FROM settlements
                """
            )
        await conn.execute("SELECT setval('settlement_approval_seq', $1)", claims)
        await conn.execute("VACUUM ANALYZE")
    finally:
        await conn.close()


def _rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


async def _batch(database_url: str, claims: int, directory: Path) -> list[str]:
    settings = Settings(database_url=database_url, payments_dir=directory, payment_schedule=False)
    print(f"  filling {claims:,} approved claims ...", flush=True)
    began = time.perf_counter()
    await _fill_approved(database_url, claims)
    print(f"  filled in {time.perf_counter() - began:.0f} s; paying ...", flush=True)
    before = _rss_mib()
    async with standalone_service(settings) as fhir:
        payments = Payments(fhir, settings, schedule_of(settings).zone)
        began = time.perf_counter()
        results = await payments.run(datetime.now(UTC))
        paid = time.perf_counter() - began
        began = time.perf_counter()
        report = await check_ledger(fhir.store.engine)
        checked = time.perf_counter() - began
    batch = results[0]
    size = batch.file.stat().st_size / 1024 / 1024
    batch.file.unlink()  # a few hundred MiB of demo transfers
    return [
        f"  payment batch: {batch.settlements:,} claims -> {batch.transfers:,} transfers, "
        f"{batch.total} MAD in {paid:.1f} s ({batch.settlements / paid:,.0f} claims/s); "
        f"pain.001 {size:.0f} MiB; peak RSS {before:.0f} -> {_rss_mib():.0f} MiB",
        f"  fse ledger check over {report.entries:,} entries: {checked:.1f} s, "
        f"{'balanced' if report.ok else 'PROBLEMS: ' + '; '.join(report.problems[:3])}",
    ]


def run(workers: int, clients: int, seconds: float, payment_claims: int) -> int:
    print("reimbursement:", flush=True)
    for row in core_cost():
        print(row, flush=True)
    database_url = migrated_database("fse_bench_settle")
    result = submit_throughput(workers, clients, seconds, database_url)
    print(HEADER)
    print(result.row())
    if breakdown := result.stored_by_table():
        print(breakdown)
    print(f"  {COLUMNS}", flush=True)
    if payment_claims:
        database_url = migrated_database("fse_bench_pay")
        directory = Path("var") / "bench-payments"
        for row in asyncio.run(_batch(database_url, payment_claims, directory)):
            print(row, flush=True)
        asyncio.run(drop_database("fse_bench_pay"))
    return 0 if result.errors == 0 else 1
