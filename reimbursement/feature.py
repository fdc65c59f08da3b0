"""What the reimbursement package contributes to the app: its FHIR operations, the CNSS agents'
console, the settlement service, and the payment schedule (a batch at each cut-off, run as
``fse pay`` in its own process so a large batch never stalls the server's requests, by one
worker of the cluster only)."""

from __future__ import annotations

import asyncio
import logging
import sys
from datetime import UTC, datetime
from pathlib import Path

from fastapi import FastAPI

from fse.config import Settings
from fse.db import create_engine
from fse.fhir_api.operations import OperationRegistry
from fse.web.sources import DataSource, add_source
from fse.web.templates import add_directory
from reimbursement.act_search import act_index
from reimbursement.act_suggestions import router as acts_router
from reimbursement.console import router as console_router
from reimbursement.medicine_search import index_of
from reimbursement.medicine_suggestions import router as medicines_router
from reimbursement.operations import OPERATIONS
from reimbursement.payment_runs import claim_cutoff, record_exit, this_worker
from reimbursement.reference_data import load_books, published_state
from reimbursement.schedule import PaymentSchedule
from reimbursement.settle import Settlement
from reimbursement.state import keep_settlement, settlement_on

log = logging.getLogger("fse.payments")


def schedule_of(settings: Settings) -> PaymentSchedule:
    return PaymentSchedule.parse(settings.payment_cutoffs, settings.payment_timezone)


def install(app: FastAPI, operations: OperationRegistry, settings: Settings) -> None:
    for operation in OPERATIONS:
        operations.register(operation)
    add_directory(Path(__file__).parent / "templates")
    app.include_router(console_router)
    app.include_router(medicines_router)
    app.include_router(acts_router)
    books = load_books(published=settings.reference_data_dir)
    keep_settlement(app, Settlement(app.state.fhir, books, schedule_of(settings)))
    index_medicines(app)
    cite_sources(app)
    # Adjudications, holds and reviews (settle, review), payment batches (payments).
    app.state.subscription_topics.offer("ClaimResponse", ("status", "outcome"))
    app.state.subscription_topics.offer("PaymentReconciliation", ("status",))


UNCONFIRMED_TEXT = (
    "Texte officiel reproduit non identifié : les codes, libellés et coefficients ne sont pas "
    "confirmés contre l'arrêté (docs/reimbursement.md)."
)


def cite_sources(app: FastAPI) -> None:
    """The act and medicines lists' notices on the "à propos" page, as their licences ask."""
    books = settlement_on(app).books
    cited = [(v.id, v.citation, UNCONFIRMED_TEXT) for v in books.acts.versions]
    cited += [
        (
            v.id,
            v.citation,
            f"Version {v.id}, en vigueur depuis le {v.valid_from:%d/%m/%Y}. Base dérivée, "
            "partagée sous la même licence dans le dépôt (reimbursement/data/).",
        )
        for v in books.medicines.versions
    ]
    for vid, citation, note in cited:
        if citation.attribution:
            add_source(
                app,
                DataSource(
                    name=citation.title or vid,
                    attribution=citation.attribution,
                    licence=citation.licence,
                    licence_url=citation.licence_url or None,
                    source_url=citation.source_url or None,
                    note=note,
                ),
            )


def index_medicines(app: FastAPI) -> None:
    """Index the medicines list and the NGAP acts in force now, so the first doctor to type
    does not wait for them (a few tenths of a second each on the full lists)."""
    settlement = settlement_on(app)
    today = datetime.now(UTC).astimezone(settlement.schedule.zone).date()
    index_of(settlement.books.medicines.in_force(today))
    acts = settlement.books.acts.in_force(today)
    if acts is not None:
        act_index(acts)


RELOAD_SECONDS = 5.0


async def reload_published_books(app: FastAPI, settings: Settings) -> None:
    """Pick up versions published by ``fse tariffs import`` without a restart: the settlement
    prices each sheet with the books of the moment (a dated version changes nothing before its
    ``valid_from``)."""
    seen = published_state(settings.reference_data_dir)
    while True:
        await asyncio.sleep(RELOAD_SECONDS)
        now = published_state(settings.reference_data_dir)
        if now == seen:
            continue
        try:
            settlement_on(app).books = load_books(published=settings.reference_data_dir)
            index_medicines(app)
            cite_sources(app)
            seen = now
            log.info("reference data reloaded: %s", [name for name, _ in now])
        except ValueError:
            log.exception("published reference data could not be loaded; keeping the books")


async def run_payment_schedule(settings: Settings) -> None:
    """Sleep until each cut-off, then pay for it unless another worker does (``pay_at_cutoff``),
    in the background: this worker is awake at the next cut-off however long the pay takes. A
    failure is logged and the next cut-off still comes: what is unpaid waits for it."""
    schedule = schedule_of(settings)
    running: set[asyncio.Task[None]] = set()
    while True:
        cutoff = schedule.next_cutoff(datetime.now(UTC))
        await asyncio.sleep(max(0.0, (cutoff - datetime.now(UTC)).total_seconds()))
        task = asyncio.create_task(_logged_pay(settings, cutoff))
        running.add(task)
        task.add_done_callback(running.discard)


async def _logged_pay(settings: Settings, cutoff: datetime) -> None:
    try:
        await pay_at_cutoff(settings, cutoff)
    except Exception:
        log.exception("payment at cut-off %s failed", cutoff)


async def pay_at_cutoff(settings: Settings, cutoff: datetime) -> int | None:
    """Run ``fse pay`` for ``cutoff`` if this worker is the first to claim it, cluster-wide
    (every worker of every server wakes at the same cut-off); return its exit code, or None
    when another worker has it. ``fse pay`` itself is safe to overlap (payment lock)."""
    engine = create_engine(settings.database_url, pool_size=1)
    try:
        if not await claim_cutoff(engine, cutoff, datetime.now(UTC)):
            log.info("cut-off %s: another worker runs fse pay; nothing done here", cutoff)
            return None
        log.info("cut-off %s: %s runs fse pay", cutoff, this_worker())
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "fse.cli", "pay", "--database-url", settings.database_url
        )
        code = await process.wait()
        await record_exit(engine, cutoff, code, datetime.now(UTC))
    finally:
        await engine.dispose()
    log.log(logging.INFO if code == 0 else logging.ERROR, "fse pay at %s: exit %s", cutoff, code)
    return code
