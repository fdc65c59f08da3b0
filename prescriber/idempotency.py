"""A reviewed form signs one care sheet, however often it is posted.

Asking to review stores the form (``sheet_reviews``) under a random key and redirects to the
review page, a GET of that row: pages are never cached (``Cache-Control: no-store``), so the
browser's Back comes to the same review, with the same key, instead of a form to post again.
Signing writes a ``signed_sheets``
row (doctor, key, hash of what was signed) in the signing transaction; UNIQUE (doctor, key)
makes a second post of the same form (Back + "Signer", a double click, a retry, even
concurrent) find the first sheet and write nothing. The same key with other content is refused:
the doctor did not review what is being signed.
"""

from __future__ import annotations

import functools
import hashlib
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any

import orjson
from sqlalchemy import String, bindparam, delete, insert, select
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.sql.dml import Insert

from fse.fhir_api.interactions import FhirService
from fse.store.repository import after_locks, lock_binds
from fse.store.tables import UtcDateTime
from prescriber.tables import sheet_reviews, signed_sheets
from prescriber.visit import ActLine, Visit


@dataclass(frozen=True)
class ReviewedForm:
    """What the doctor reviewed and now signs: the form's key, the hash of its content, the hash
    of its lines (the duplicate check) and whether they confirmed a same-day duplicate."""

    key: str
    content: str
    lines: str
    duplicate_confirmed: bool


class KeyReused(ValueError):
    """This review key already signed another content (French message naming the sheet)."""


def new_key() -> str:
    """A review form's key: unguessable, so one doctor's keys never meet by chance."""
    return secrets.token_urlsafe(24)


def valid_key(key: str) -> bool:
    return 16 <= len(key) <= 128


def number_text(value: Decimal) -> str:
    """150 and 150.00 are one amount: the hashes compare values, not spellings."""
    return f"{value.normalize():f}"


def _named(act: ActLine) -> list[str]:
    """The NGAP act a line names (nothing when none: earlier hashes stay as they were)."""
    listed = act.ngap_act
    return [] if listed is None else [listed.code, listed.label]


def content_hash(patient_id: str, visit: Visit) -> str:
    """Everything the doctor reviewed and signs: the patient and each line as typed."""
    content = {
        "patient": patient_id,
        "acts": [
            [a.code, number_text(a.coefficient), number_text(a.fee), a.ald, *_named(a)]
            for a in visit.acts
        ],
        "medicines": [
            [m.medicine.ean, m.dosage, m.days, m.boxes, m.not_substitutable, m.ald]
            for m in visit.medicines
        ],
        "labs": [[b.label, number_text(b.coefficient), b.note, b.ald] for b in visit.labs],
    }
    return hashlib.sha256(orjson.dumps(content, option=orjson.OPT_SORT_KEYS)).hexdigest()


async def _signed_with(conn: AsyncConnection, practitioner: str, key: str) -> Any:
    """The sheet (number, content hash) this doctor's review key signed, if any."""
    columns = signed_sheets.c
    statement = select(columns.number, columns.content_hash).where(
        columns.practitioner == practitioner, columns.idempotency_key == key
    )
    return (await conn.execute(statement)).first()


async def first_sheet(fhir: FhirService, practitioner: str, key: str, content: str) -> str | None:
    """The number of the sheet this form already signed, if any; KeyReused if it signed
    something else."""
    async with fhir.store.snapshot() as conn:
        row = await _signed_with(conn, practitioner, key)
    if row is None:
        return None
    if row.content_hash != content:
        raise KeyReused(
            f"Ce formulaire de relecture a déjà servi à signer la feuille {row.number}, avec un "
            "autre contenu : rien n'a été enregistré. Vérifiez la feuille ci-dessous puis "
            "signez-la si elle est juste."
        )
    return str(row.number)


async def record(
    conn: AsyncConnection,
    form: ReviewedForm,
    number: str,
    practitioner: str,
    patient_id: str,
    care_date: date,
    now: datetime,
    locks: Sequence[str] = (),
) -> None:
    """Claim the form's key for this sheet, in the signing transaction (IntegrityError if the
    key is taken: a concurrent post of the same form committed first). ``locks``: the store's
    advisory locks to hold first, taken by the same statement on PostgreSQL (SQLite's single
    writer already serialises)."""
    taken = len(locks) if conn.dialect.name == "postgresql" else 0
    await conn.execute(
        _record(taken),
        {
            "sheet_number": number,
            "practitioner": practitioner,
            "idempotency_key": form.key,
            "content_hash": form.content,
            "patient_id": patient_id,
            "care_date": care_date,
            "lines_hash": form.lines,
            "signed_at": now,
            **lock_binds(locks[:taken]),
        },
    )


@functools.cache
def _record(locks: int) -> Insert:
    """The key row's INSERT (built once), its number written once ``locks`` are held."""
    number = bindparam("sheet_number", type_=String())
    return insert(signed_sheets).values(number=after_locks(number, locks) if locks else number)


REVIEW_LIFETIME = timedelta(days=1)
"""A review not signed within a day is forgotten (the doctor reviews again)."""
PRUNE_EVERY = timedelta(minutes=1)
"""How often, at most, a process deletes the reviews past their lifetime as it saves one (not
on every save: the review page already ignores them)."""


@dataclass
class _Pruning:
    last: datetime | None = None

    def due(self, now: datetime) -> bool:
        if self.last is not None and now - self.last < PRUNE_EVERY:
            return False
        self.last = now
        return True


PRUNING = _Pruning()

_REVIEW = select(
    sheet_reviews.c.patient_id,
    sheet_reviews.c.form,
    select(signed_sheets.c.number)
    .where(
        signed_sheets.c.practitioner == sheet_reviews.c.practitioner,
        signed_sheets.c.idempotency_key == sheet_reviews.c.idempotency_key,
    )
    .scalar_subquery()
    .label("signed"),
).where(
    sheet_reviews.c.idempotency_key == bindparam("key", type_=String()),
    sheet_reviews.c.practitioner == bindparam("practitioner", type_=String()),
    sheet_reviews.c.created_at >= bindparam("since", type_=UtcDateTime()),
)
"""A doctor's review still within its lifetime, with the sheet it signed if any: one
statement, built once."""


async def save_review(
    fhir: FhirService, practitioner: str, patient_id: str, form: dict[str, str], now: datetime
) -> str:
    """Store the reviewed form; its key is the review page's address and the signature's key."""
    key = new_key()
    async with fhir.store.transaction() as conn:
        if PRUNING.due(now):
            await conn.execute(
                delete(sheet_reviews).where(sheet_reviews.c.created_at < now - REVIEW_LIFETIME)
            )
        await conn.execute(
            insert(sheet_reviews).values(
                idempotency_key=key,
                practitioner=practitioner,
                patient_id=patient_id,
                form=orjson.dumps(form).decode(),
                created_at=now,
            )
        )
    return key


async def load_review(
    fhir: FhirService, practitioner: str, key: str, now: datetime
) -> tuple[str, dict[str, str], str | None] | None:
    """(patient, form, the sheet it signed if any) of this doctor's review; None if unknown or
    older than ``REVIEW_LIFETIME``."""
    binds = {"key": key, "practitioner": practitioner, "since": now - REVIEW_LIFETIME}
    async with fhir.store.snapshot() as conn:
        row = (await conn.execute(_REVIEW, binds)).first()
    if row is None:
        return None
    return str(row.patient_id), orjson.loads(row.form), row.signed
