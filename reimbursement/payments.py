"""Same-day payment: gather approved unpaid benefits into a batch, write the ISO 20022 credit
transfer file, record the PaymentReconciliation, and settle the payables in the ledger.

One run at a time, cluster-wide (``payment_lock``). Three steps, each safe to repeat: (1) open
a batch over the next range of approval numbers (one row; ranges never overlap, so no
settlement is in two batches); (2) stream the transfer file from the database (one transfer per
payee and account) to a temporary name, record its SHA-256 on the batch, then rename it into
place; (3) in one transaction that first moves the batch from ``assigned`` to ``paid`` (a
conditional update: one completion only), the payment journal and the PaymentReconciliation.

The file is a function of the batch row and its settlements alone: its times are the batch's
(``CreDtTm`` its assignment, ``ReqdExctnDt`` its execution date), never the clock's at writing,
so a rerun writes the very same bytes. A file already renamed into place whose digest is the one
on record is kept as it is. A crash anywhere leaves either an assigned batch, which the next run
completes with the same file, or a paid one: nothing is paid twice, nothing is lost, and the
digest on record is the digest of the file on disk.
"""

from __future__ import annotations

import hashlib
import os
import signal
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from fhir_profiles.systems import PAYMENT_BATCH_SYSTEM
from fse.config import Settings
from fse.fhir_api.interactions import FhirService, Written
from fse.outbox import emit
from reimbursement.claims import fhir_money
from reimbursement.ledger import book_payment, close_approvals
from reimbursement.pain001 import BatchHeader, Debtor, Transfer, write_pain001
from reimbursement.payment_lock import exclusive_payment_run
from reimbursement.tables import payment_batches, settlements

Progress = Callable[[int, int], None]
"""(transfers written, transfers in the batch)."""

KILL_AT = "FSE_TEST_KILL_AT"
"""Tests only: the step at which this process kills itself (see ``_checkpoint``)."""


def _checkpoint(step: str) -> None:
    """``FSE_TEST_KILL_AT=<step>`` SIGKILLs this process at that step (``assigned``,
    ``written``, ``recorded``, ``renamed``, ``completing``), so tests prove a rerun after a
    crash anywhere pays once with the same file. Unset, as in production, it does nothing."""
    if os.environ.get(KILL_AT) == step:
        os.kill(os.getpid(), signal.SIGKILL)


@dataclass(frozen=True)
class BatchResult:
    batch_id: str
    settlements: int
    transfers: int
    total: Decimal
    file: Path
    reconciliation_id: str
    resumed: bool


class Payments:
    def __init__(self, fhir: FhirService, settings: Settings, zone: Any) -> None:
        self.fhir = fhir
        self.settings = settings
        self.zone = zone

    async def run(
        self, now: datetime | None = None, progress: Progress | None = None
    ) -> list[BatchResult]:
        """Complete any interrupted batch, then pay everything approved and unpaid; raises
        ``PaymentsBusy`` (having done nothing) while another run holds the payment lock."""
        now = now or datetime.now(UTC)
        results = []
        engine = self.fhir.store.engine
        async with exclusive_payment_run(engine, Path(self.settings.payments_dir)):
            for batch_pk in await self._unfinished():
                results.append(await self._complete(batch_pk, now, progress, resumed=True))
            batch_pk = await self._assign(now)
            if batch_pk is not None:
                _checkpoint("assigned")
                results.append(await self._complete(batch_pk, now, progress, resumed=False))
        return results

    async def _unfinished(self) -> list[int]:
        async with self.fhir.store.snapshot() as conn:
            rows = await conn.execute(
                select(payment_batches.c.pk)
                .where(payment_batches.c.status == "assigned")
                .order_by(payment_batches.c.pk)
            )
            return [row.pk for row in rows]

    async def _assign(self, now: datetime) -> int | None:
        """A new batch over the approval numbers after the last batch's, up to the last one
        committed. No settlement row is touched: a million claims cost one row here."""
        s, b = settlements.c, payment_batches.c
        local = now.astimezone(self.zone)
        async with self.fhir.store.transaction() as conn:
            last = await close_approvals(conn)
            previous = await conn.scalar(select(func.max(b.last_seq)))
            first = int(previous or 0) + 1
            if last < first:
                return None
            in_range = s.approval_seq.between(first, last) & (s.status == "approved")
            count, total, transfers = (
                await conn.execute(
                    select(
                        func.count(),
                        func.coalesce(func.sum(s.benefit), 0),
                        func.count(func.distinct(s.payee_ref + "|" + s.payee_iban)),
                    ).where(in_range)
                )
            ).one()
            batch_pk = (
                await conn.execute(
                    insert(payment_batches)
                    .values(
                        batch_id=f"tmp-{first}",
                        created_at=now,
                        execution_date=local.date(),
                        first_seq=first,
                        last_seq=last,
                        follows_seq=previous,
                        status="assigned" if count else "paid",
                        settlement_count=count,
                        transfer_count=transfers,
                        total=total,
                    )
                    .returning(b.pk)
                )
            ).scalar_one()
            await conn.execute(
                update(payment_batches)
                .where(b.pk == batch_pk)
                .values(batch_id=f"CNSS-{local:%Y%m%d-%H%M}-{batch_pk:06d}")
            )
            # Numbers whose settlement was cancelled meanwhile leave an empty range: closed
            # at once, paying nothing.
            return batch_pk if count else None

    def _transfers(self, rows: Any, batch_id: str) -> Iterator[Transfer]:
        for number, row in enumerate(rows, 1):
            yield Transfer(
                end_to_end_id=f"{batch_id}-{number}"[:35],
                amount=Decimal(row.amount),
                creditor_name=row.name,
                creditor_iban=row.payee_iban,
                remittance=f"CNSS AMO : {row.sheets} feuille(s) de soins, lot {batch_id}",
            )

    async def _file(self, batch: Any, progress: Progress | None) -> tuple[Path, str] | None:
        """The batch's file in place and its digest on record: kept when a previous run got as
        far as renaming it, else written to a temporary name, recorded, then renamed. Between
        the record and the rename the final name holds nothing or these same bytes. None:
        another run completed the batch meanwhile."""
        directory = Path(self.settings.payments_dir)
        directory.mkdir(parents=True, exist_ok=True)
        final = directory / f"{batch.batch_id}.xml"
        if batch.file_sha256 and final.is_file() and _sha256(final) == batch.file_sha256:
            return final, batch.file_sha256
        partial = final.with_suffix(".xml.partial")
        await self._write(batch, partial, progress)
        digest = _sha256(partial)
        _checkpoint("written")
        b = payment_batches.c
        async with self.fhir.store.transaction() as conn:
            recorded = await conn.execute(
                update(payment_batches)
                .where(b.pk == batch.pk, b.status == "assigned")
                .values(file_path=str(final), file_sha256=digest)
            )
        if recorded.rowcount != 1:  # completed by another run meanwhile: its file stays
            partial.unlink(missing_ok=True)
            return None
        _checkpoint("recorded")
        partial.replace(final)
        _sync_directory(directory)
        _checkpoint("renamed")
        return final, digest

    async def _write(self, batch: Any, partial: Path, progress: Progress | None) -> None:
        """Stream transfers (one per payee account) from a server-side cursor into the file;
        every value comes from the batch row and its settlements (same bytes at each run)."""
        header = BatchHeader(
            message_id=batch.batch_id,
            created_at=batch.created_at.astimezone(UTC).replace(microsecond=0),
            execution_date=batch.execution_date,
            payment_info_id=batch.batch_id,
            transaction_count=batch.transfer_count,
            control_sum=Decimal(batch.total),
            debtor=Debtor(self.settings.payer_name, self.settings.payer_iban),
        )
        s = settlements.c
        query = (
            select(
                s.payee_ref,
                s.payee_iban,
                func.min(s.payee_name).label("name"),
                func.sum(s.benefit).label("amount"),
                func.count().label("sheets"),
            )
            .where(s.approval_seq.between(batch.first_seq, batch.last_seq), s.status == "approved")
            .group_by(s.payee_ref, s.payee_iban)
            .order_by(s.payee_ref, s.payee_iban)
        )

        def write(sync_conn: Connection) -> None:
            rows = sync_conn.execution_options(stream_results=True, yield_per=5000).execute(query)
            counted = _counted(
                self._transfers(rows, batch.batch_id), batch.transfer_count, progress
            )
            with partial.open("wb") as out:
                write_pain001(out, header, counted)
                out.flush()
                os.fsync(out.fileno())

        async with self.fhir.store.engine.connect() as conn, conn.begin():
            await conn.run_sync(write)

    async def _complete(
        self, batch_pk: int, now: datetime, progress: Progress | None, resumed: bool
    ) -> BatchResult:
        b = payment_batches.c
        async with self.fhir.store.snapshot() as conn:
            batch = (await conn.execute(select(payment_batches).where(b.pk == batch_pk))).one()
        if batch.status != "assigned":
            return await self._completed_by_another(batch_pk, resumed)
        written_file = await self._file(batch, progress)
        if written_file is None:
            return await self._completed_by_another(batch_pk, resumed)
        path, digest = written_file
        reconciliation = self._reconciliation(batch, now)
        async with self.fhir.store.transaction() as conn:
            # First, so that a second completion waits on this row and then finds it paid.
            completed = await conn.execute(
                update(payment_batches)
                .where(b.pk == batch_pk, b.status == "assigned", b.file_sha256 == digest)
                .values(status="paid", paid_at=now)
            )
            completed_here = completed.rowcount == 1
            if completed_here:
                written = await self._book(conn, batch, reconciliation, now)
        if not completed_here:
            return await self._completed_by_another(batch_pk, resumed)
        self.fhir.announce([written.stored])
        return _result(batch, path, written.stored.id, resumed)

    async def _book(
        self, conn: AsyncConnection, batch: Any, reconciliation: dict[str, Any], now: datetime
    ) -> Written:
        """The payment journal, the PaymentReconciliation and its event, in the completing
        transaction (a kill before it commits leaves none of them)."""
        journal = f"payment-{batch.batch_id}"
        await book_payment(conn, batch.pk, journal, Decimal(batch.total), now)
        written = await self.fhir.create(conn, "PaymentReconciliation", reconciliation)
        await conn.execute(
            update(payment_batches)
            .where(payment_batches.c.pk == batch.pk)
            .values(reconciliation_id=written.stored.id)
        )
        await emit(
            conn,
            "payment.batch-paid",
            f"PaymentReconciliation/{written.stored.id}",
            batch=batch.batch_id,
            sheets=batch.settlement_count,
            transfers=batch.transfer_count,
            total=batch.total,
            focus={"status": "active"},
        )
        _checkpoint("completing")
        return written

    async def _completed_by_another(self, batch_pk: int, resumed: bool) -> BatchResult:
        b = payment_batches.c
        async with self.fhir.store.snapshot() as conn:
            batch = (await conn.execute(select(payment_batches).where(b.pk == batch_pk))).one()
        if batch.status != "paid":
            raise RuntimeError(f"batch {batch.batch_id} changed under this run: run fse pay again")
        return _result(batch, Path(batch.file_path), str(batch.reconciliation_id), resumed)

    def _reconciliation(self, batch: Any, now: datetime) -> dict[str, Any]:
        return {
            "resourceType": "PaymentReconciliation",
            "identifier": [{"system": PAYMENT_BATCH_SYSTEM, "value": batch.batch_id}],
            "status": "active",
            "created": now.isoformat(timespec="seconds"),
            "paymentIssuer": {"display": self.settings.payer_name},
            "outcome": "complete",
            "disposition": (
                f"Lot {batch.batch_id} : {batch.settlement_count} feuille(s) de soins, "
                f"{batch.transfer_count} virement(s) ISO 20022 pain.001.001.03"
            ),
            "paymentDate": batch.execution_date.isoformat(),
            "paymentAmount": fhir_money(Decimal(batch.total)),
            "paymentIdentifier": {
                "system": "urn:iso:std:iso:20022:tech:xsd:pain.001.001.03",
                "value": batch.batch_id,
            },
        }


def _counted(
    transfers: Iterator[Transfer], total: int, progress: Progress | None
) -> Iterator[Transfer]:
    for index, transfer in enumerate(transfers, 1):
        if progress is not None and (index % 10_000 == 0 or index == total):
            progress(index, total)
        yield transfer


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as content:
        for chunk in iter(lambda: content.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _sync_directory(directory: Path) -> None:
    """The rename survives a power cut: the directory entry reaches the disk."""
    descriptor = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def _result(batch: Any, path: Path, reconciliation_id: str, resumed: bool) -> BatchResult:
    return BatchResult(
        batch.batch_id,
        batch.settlement_count,
        batch.transfer_count,
        Decimal(batch.total),
        path,
        reconciliation_id,
        resumed,
    )
