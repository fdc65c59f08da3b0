"""A second sheet with the same lines for the same insured, by the same doctor, the same day is
probably a mistake (signed twice from two reviews): the review page names the earlier sheet and
signing it needs the doctor's explicit confirmation, checked again in the signing transaction."""

from __future__ import annotations

import hashlib
from datetime import date

import orjson
from sqlalchemy import select, true
from sqlalchemy.ext.asyncio import AsyncConnection

from fhir_profiles.systems import CONSULTATION_SYSTEM
from fse.fhir_api.interactions import FhirService
from fse.fhir_api.reading import search
from fse.store.indexing import normalize
from prescriber.idempotency import number_text
from prescriber.tables import signed_sheets
from prescriber.visit import ActLine, Visit

CONFIRM_FIELD = "doublon"
"""The review form's checkbox: "sign it anyway"."""


class DuplicateSheet(ValueError):
    """Same lines as sheets already signed today: ``numbers`` names them (nothing stored)."""

    def __init__(self, numbers: list[str]) -> None:
        super().__init__(
            f"Une feuille avec les mêmes lignes a déjà été signée aujourd'hui pour cet assuré "
            f"({', '.join(numbers)}) : rien n'a été enregistré. Cochez « Je signe une seconde "
            "feuille identique » pour la signer quand même."
        )
        self.numbers = numbers


def _named(act: ActLine) -> list[str]:
    """The NGAP act code a line names: two acts under one cotation are two lines."""
    return [] if act.ngap_act is None else [act.ngap_act.code]


def lines_hash(visit: Visit) -> str:
    """The lines that make two sheets the same, in any order: acts (code and coefficient),
    medicines (EAN and boxes), lab orders (analysis and coefficient). Fees, dosages and notes
    may differ: a fee corrected on a second sheet does not make it a different visit."""
    lines = sorted(
        [
            *(["acte", a.code, number_text(a.coefficient), *_named(a)] for a in visit.acts),
            *(["médicament", m.medicine.ean, str(m.boxes)] for m in visit.medicines),
            *(["analyse", normalize(b.label), number_text(b.coefficient)] for b in visit.labs),
        ]
    )
    return hashlib.sha256(orjson.dumps(lines)).hexdigest()


async def same_lines_today(
    fhir: FhirService,
    conn: AsyncConnection,
    practitioner: str,
    patient_id: str,
    care_date: date,
    lines: str,
    besides: str | None = None,
) -> list[str]:
    """The numbers of this doctor's sheets for this insured on ``care_date`` with these lines,
    cancelled ones and ``besides`` (the sheet being signed) left out, oldest first."""
    columns = signed_sheets.c
    rows = await conn.execute(
        select(columns.number)
        .where(
            columns.practitioner == practitioner,
            columns.patient_id == patient_id,
            columns.care_date == care_date,
            columns.lines_hash == lines,
            columns.number != besides if besides is not None else true(),
        )
        .order_by(columns.pk)
    )
    numbers = []
    for (number,) in rows.all():
        encounters = await search(
            fhir, conn, "Encounter", [("identifier", f"{CONSULTATION_SYSTEM}|{number}")], count=1
        )
        if encounters and encounters[0].get("status") != "cancelled":
            numbers.append(number)
    return numbers


async def flagged(
    fhir: FhirService, practitioner: str, patient_id: str, care_date: date, visit: Visit
) -> list[str]:
    """What the review page names: this doctor's live sheets for the insured on ``care_date``
    with the lines of ``visit``."""
    async with fhir.store.snapshot() as conn:
        return await same_lines_today(
            fhir, conn, practitioner, patient_id, care_date, lines_hash(visit)
        )
