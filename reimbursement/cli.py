"""``fse pay`` and ``fse ledger check``: the money commands (assembled by fse/cli.py)."""

from __future__ import annotations

import asyncio
import sys

from fse.config import Settings
from fse.fhir_api.interactions import standalone_service
from reimbursement.feature import schedule_of
from reimbursement.ledger import check_ledger
from reimbursement.payments import BatchResult, Payments


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
    results = asyncio.run(_pay(settings))
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
