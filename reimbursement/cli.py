"""``fse pay``, ``fse ledger check`` and ``fse tariffs import``: the money and reference-data
commands (assembled by fse/cli.py)."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from fse.config import Settings
from fse.fhir_api.interactions import standalone_service
from reimbursement.feature import schedule_of
from reimbursement.ledger import check_ledger
from reimbursement.payment_lock import PaymentsBusy
from reimbursement.payments import BatchResult, Payments
from reimbursement.reference_data import load_books
from reimbursement.tariff_import import (
    ImportRefused,
    converted_csv,
    plan_import,
    publish,
    read_version,
)


def _progress(done: int, total: int) -> None:
    print(
        f"\r  virements écrits : {done}/{total}",
        end="" if done < total else "\n",
        file=sys.stderr,
        flush=True,
    )


async def _pay(settings: Settings) -> list[BatchResult]:
    async with standalone_service(settings) as fhir:
        payments = Payments(fhir, settings, schedule_of(settings).zone)
        return await payments.run(progress=_progress)


def pay(settings: Settings) -> int:
    try:
        results = asyncio.run(_pay(settings))
    except PaymentsBusy:
        print(
            "another fse pay is paying now (it holds the payment lock): nothing done here; "
            "what it leaves unpaid waits for the next run"
        )
        return 0
    if not results:
        print("nothing to pay: no approved benefit waiting (with a declared RIB)")
    for result in results:
        resumed = " (interrupted batch completed)" if result.resumed else ""
        print(
            f"batch {result.batch_id}{resumed}: {result.settlements} care sheets, "
            f"{result.transfers} transfers, {result.total} MAD -> {result.file} "
            f"(PaymentReconciliation/{result.reconciliation_id})"
        )
    return 0


async def _check(settings: Settings) -> int:
    async with standalone_service(settings) as fhir:
        report = await check_ledger(fhir.store.engine)
    print(
        f"ledger: {report.entries} entries in {report.journals} journals; "
        f"paid {report.settlements_paid} care sheets ({report.paid} MAD); "
        f"owed {report.settlements_owed} ({report.owed} MAD)"
    )
    for problem in report.problems:
        print(f"PROBLEM: {problem}")
    print("ledger balances; no care sheet paid twice" if report.ok else "ledger check FAILED")
    return 0 if report.ok else 1


def ledger_check(settings: Settings) -> int:
    return asyncio.run(_check(settings))


def tariffs_import(
    settings: Settings,
    path: Path,
    dry_run: bool,
    valid_from: str | None = None,
    version_id: str | None = None,
) -> int:
    """``fse tariffs import FILE [--dry-run]``: what changes, then publish (unless dry run). A
    CSV is the CNOPS list as published, converted first (``--valid-from`` required)."""

    def progress(done: int, total: int) -> None:
        print(f"\r  rows checked: {done:,}/{total:,}", end="", file=sys.stderr, flush=True)

    books = load_books(published=settings.reference_data_dir)
    try:
        raw = read_version(path)
        if path.suffix.lower() == ".csv":
            raw = converted_csv(raw, str(path), valid_from, version_id, progress)
        plan = plan_import(raw, str(path), books, progress)
    except ImportRefused as refused:
        print(f"fse tariffs import: refused: {refused}", file=sys.stderr)
        return 1
    print(file=sys.stderr)
    for line in plan.report():
        print(line)
    if dry_run:
        print("dry run: nothing published (run again without --dry-run to publish)")
        return 0
    target = publish(raw, plan, settings.reference_data_dir)
    print(f"published: {target} (servers pick it up within seconds)")
    return 0
