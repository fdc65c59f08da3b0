"""The dispensing phases (after the reimbursement phases; ``--only-pharmacy`` alone), on
PostgreSQL:

1. dispenses per second: concurrent pharmacists each dispensing one box of a different line
   (the whole transaction: lock, dispense, claim, signed Provenance, settlement, ledger), with
   the SQL statements of one (20 more, one at a time), the bytes the tables grew per
   dispense (``bench.statements``) and this process's CPU time per dispense (the service and
   its callers: the target's "server CPU" with a little of the driver in it);
2. contention: 50 pharmacies at once on the same line, how long until all have their answer
   and how many won (exactly one must).

In-process (one event loop, the service, no HTTP): the web page adds a form parse and a
template around the same call.
"""

from __future__ import annotations

import asyncio
import random
import time
import uuid
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

from cryptography.hazmat.primitives.asymmetric import ec

from bench.harness import (
    drop_database,
    growth,
    growth_line,
    migrated_database,
    percentiles,
    stored_by_table,
)
from bench.resources import SID
from bench.statements import Counts, count_in_process, deferred_work
from fse.accounts import create_account
from fse.config import Settings
from fse.crypto.tokens import SigningKey
from fse.fhir_api.interactions import FhirService, standalone_service
from fse.fhir_api.reading import search
from fse.security.users import Role, unlock_signing_key
from fse.seed.synthetic import load_synthetic
from pharmacy.dispense import DispenseConflict, DispenseOrder, LineOrder, dispense
from pharmacy.pharmacist import Pharmacist, pharmacist_of
from reimbursement.feature import schedule_of
from reimbursement.reference_data import default_books
from reimbursement.settle import Settlement

GTIN = "urn:oid:1.3.160"
CICLOVIRAL = "6118000070313"
PASSWORD = "bench-pharmacien-2026"  # a throwaway account in the throwaway bench database


def now() -> datetime:
    return datetime.now(UTC)


async def _pharmacy(fhir: FhirService, run: str) -> tuple[Pharmacist, SigningKey, SigningKey]:
    """A pharmacy (INPE ``39{run}001``), its pharmacist's account ``bench.{run}`` (password
    ``PASSWORD``) and key, and a key standing for the platform's."""
    async with fhir.store.transaction() as conn:
        org = await fhir.create(
            conn,
            "Organization",
            {
                "resourceType": "Organization",
                "identifier": [{"system": f"{SID}/inpe", "value": f"39{run}001"}],
                "name": f"Pharmacie Bench {run}",
                "type": [
                    {
                        "coding": [
                            {
                                "system": "http://terminology.hl7.org/CodeSystem/organization-type",
                                "code": "prov",
                            }
                        ]
                    }
                ],
            },
        )
        person = await fhir.create(
            conn,
            "Practitioner",
            {
                "resourceType": "Practitioner",
                "identifier": [{"system": f"{SID}/inpe", "value": f"29{run}001"}],
                "name": [{"family": "Bench", "given": ["Pharmacien"]}],
            },
        )
        practitioner = f"Practitioner/{person.stored.id}"
        await fhir.create(
            conn,
            "PractitionerRole",
            {
                "resourceType": "PractitionerRole",
                "practitioner": {"reference": practitioner},
                "organization": {"reference": f"Organization/{org.stored.id}"},
                "code": [
                    {
                        "coding": [
                            {
                                "system": "http://terminology.hl7.org/CodeSystem/practitioner-role",
                                "code": "pharmacist",
                            }
                        ]
                    }
                ],
            },
        )
    name = f"bench.{run}"
    await create_account(fhir, name, PASSWORD, Role.PHARMACIST, "Bench", practitioner)
    key = await unlock_signing_key(fhir.store.engine, name, PASSWORD)
    pharmacist = await pharmacist_of(fhir, practitioner)
    assert pharmacist is not None and key is not None
    return pharmacist, key, SigningKey(ec.generate_private_key(ec.SECP256R1()))


def prescription(patient: str, doctor: str, ean: str, boxes: int, today: date) -> dict[str, Any]:
    """A line of ``boxes`` boxes of ``ean`` for ``patient``, valid 90 days (substitutable)."""
    return {
        "resourceType": "MedicationRequest",
        "status": "active",
        "intent": "order",
        "medicationCodeableConcept": {"coding": [{"system": GTIN, "code": ean}]},
        "subject": {"reference": f"Patient/{patient}"},
        "authoredOn": today.isoformat(),
        "requester": {"reference": f"Practitioner/{doctor}"},
        "dosageInstruction": [{"text": "1 comprimé 5 fois par jour"}],
        "dispenseRequest": {
            "validityPeriod": {
                "start": today.isoformat(),
                "end": (today + timedelta(days=90)).isoformat(),
            },
            "quantity": {"value": boxes},
        },
    }


async def _prescriptions(fhir: FhirService, lines: int, boxes: int) -> list[tuple[str, str]]:
    """(patient id, MedicationRequest id): one line of ``boxes`` boxes per insured."""
    async with fhir.store.snapshot() as conn:
        doctors = await search(
            fhir, conn, "Practitioner", [("identifier:missing", "false")], count=200
        )
        patients = [
            c["beneficiary"]["reference"].split("/")[1]
            for c in await search(fhir, conn, "Coverage", [("status", "active")], count=200)
        ]
    today = datetime.now(UTC).date()
    made = []
    async with fhir.store.transaction() as conn:
        for n in range(lines):
            patient = patients[n % len(patients)]
            doctor = doctors[n % len(doctors)]["id"]
            request = await fhir.create(
                conn, "MedicationRequest", prescription(patient, doctor, CICLOVIRAL, boxes, today)
            )
            made.append((patient, request.stored.id))
    return made


async def _throughput(
    database_url: str,
    fhir: FhirService,
    settlement: Settlement,
    desk: tuple[Pharmacist, SigningKey, SigningKey],
    lines: list[tuple[str, str]],
    clients: int,
    seconds: float,
) -> tuple[str, bool]:
    pharmacist, key, platform = desk
    queue = list(lines)
    random.shuffle(queue)
    latencies: list[float] = []
    errors: dict[str, int] = {}
    deadline = time.perf_counter() + seconds

    async def worker() -> None:
        while queue and time.perf_counter() < deadline:
            patient, request = queue.pop()
            order = DispenseOrder(
                patient, (LineOrder(request, Decimal(1), CICLOVIRAL, Decimal("209.00")),)
            )
            began = time.perf_counter()
            try:
                await dispense(
                    fhir, settlement, pharmacist, key, order, uuid.uuid4().hex, now(), platform
                )
                latencies.append((time.perf_counter() - began) * 1000)
            except Exception as exc:  # counted and shown: a benchmark must not hide failures
                errors[type(exc).__name__] = errors.get(type(exc).__name__, 0) + 1

    size_before = await stored_by_table(database_url)
    began, cpu_began = time.perf_counter(), time.process_time()
    await asyncio.gather(*(worker() for _ in range(clients)))
    elapsed, cpu = time.perf_counter() - began, time.process_time() - cpu_began
    grown = growth(size_before, await stored_by_table(database_url))
    done = max(1, len(latencies))
    p50, p95, p99 = percentiles(latencies)
    sql = "-"
    if len(queue) > 22:
        try:
            inline, deferred = (await _statements(fhir, settlement, desk, queue)).columns()
            sql = f"{inline:.1f} +bg {deferred:.1f}"
        except Exception as failed:  # said, and '-': the contention phase still runs
            print(f"  statements of a dispense not counted: {failed!r}", flush=True)
    row = (
        f"  dispense (1 line, settled, signed), {clients} concurrent: "
        f"{len(latencies) / elapsed:,.1f}/s  p50 {p50:.0f} ms  p95 {p95:.0f} ms  p99 {p99:.0f} ms"
        f"  ({len(latencies)} in {elapsed:.1f} s, errors {errors or 0});"
        f" cpu ms/op {cpu * 1000 / done:.2f} (this process: the service and its {clients} callers);"
        f" sql/op {sql};"
        f" kB/op {sum(grown.values()) / done / 1024:.1f}\n"
        f"{growth_line({t: b / done for t, b in grown.items()})}"
    )
    return row, not errors


async def _statements(
    fhir: FhirService,
    settlement: Settlement,
    desk: tuple[Pharmacist, SigningKey, SigningKey],
    queue: list[tuple[str, str]],
) -> Counts:
    """Statements of 20 more dispenses, one at a time, and of the outbox and audit work they
    leave (``bench.statements``)."""
    pharmacist, key, platform = desk

    async def one(_i: int) -> bool:
        patient, request = queue.pop()
        order = DispenseOrder(
            patient, (LineOrder(request, Decimal(1), CICLOVIRAL, Decimal("209.00")),)
        )
        await dispense(fhir, settlement, pharmacist, key, order, uuid.uuid4().hex, now(), platform)
        return True

    engine = fhir.store.engine
    return await count_in_process(
        engine, one, 20, lambda: deferred_work(engine, fhir.runtime.events)
    )


async def _contention(
    fhir: FhirService,
    settlement: Settlement,
    desk: tuple[Pharmacist, SigningKey, SigningKey],
    line: tuple[str, str],
    attempts: int = 50,
) -> tuple[str, bool]:
    pharmacist, key, platform = desk
    patient, request = line
    order = DispenseOrder(
        patient, (LineOrder(request, Decimal(2), CICLOVIRAL, Decimal("418.00"), Decimal(2)),)
    )
    began = time.perf_counter()
    results = await asyncio.gather(
        *(
            dispense(fhir, settlement, pharmacist, key, order, uuid.uuid4().hex, now(), platform)
            for _ in range(attempts)
        ),
        return_exceptions=True,
    )
    elapsed = (time.perf_counter() - began) * 1000
    won = sum(1 for r in results if not isinstance(r, BaseException))
    conflicts = sum(1 for r in results if isinstance(r, DispenseConflict))
    row = (
        f"  {attempts} pharmacies at once on one line: {won} dispensed, {conflicts} conflicts, "
        f"{attempts - won - conflicts} other errors; all answered in {elapsed:.0f} ms"
    )
    return row, won == 1 and conflicts == attempts - 1


async def _run(database_url: str, clients: int, seconds: float) -> list[tuple[str, bool]]:
    settings = Settings(database_url=database_url, payment_schedule=False)
    print("  loading 2,000 synthetic insured ...", flush=True)
    await load_synthetic(settings, 2000)
    async with standalone_service(settings) as fhir:
        desk = await _pharmacy(fhir, f"{random.randrange(10**4):04d}")
        lines = await _prescriptions(fhir, 3000, 2)
        settlement = Settlement(fhir, default_books(), schedule_of(settings))
        print(f"  dispensing for {seconds:.0f} s with {clients} concurrent ...", flush=True)
        return [
            await _throughput(database_url, fhir, settlement, desk, lines[:-1], clients, seconds),
            await _contention(fhir, settlement, desk, lines[-1]),
        ]


def run(clients: int, seconds: float) -> int:
    print("pharmacy:", flush=True)
    database_url = migrated_database("fse_bench_pharmacy")
    rows = asyncio.run(_run(database_url, clients, seconds))
    for row, _ in rows:
        print(row, flush=True)
    asyncio.run(drop_database("fse_bench_pharmacy"))
    return 0 if all(ok for _, ok in rows) else 1
