"""Reverse a dispense the same day, by the pharmacy that made it (an error at the counter).

One transaction: the boxes go back to the prescription lines (balances and MedicationRequests),
the MedicationDispenses are marked entered-in-error, the pharmacy Claim is cancelled, its benefit
reversed in the ledger (refused once a payment batch holds it), and an AuditEvent says who did it.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from fhir_profiles.systems import CARE_SHEET_SYSTEM
from fse import fhir_json
from fse.audit import change_event
from fse.fhir_api.interactions import FhirService
from fse.outbox import emit
from fse.store.repository import Stored
from pharmacy.dispense import DispenseRefused, remaining_extension
from pharmacy.numbers import claim_number
from pharmacy.pharmacist import Pharmacist
from pharmacy.tables import dispensations, prescription_balances
from reimbursement.ledger import AlreadyPaid, cancel_settlement


async def reverse_dispense(
    fhir: FhirService, pharmacist: Pharmacist, number: str, now: datetime, zone: Any
) -> None:
    """Raises DispenseRefused (in French) when the dispense is not this pharmacy's, not of
    today, already reversed, or its benefit already left in a payment batch."""
    written: list[Stored] = []
    async with fhir.store.transaction() as conn:
        query = select(dispensations).where(dispensations.c.number == number)
        if conn.dialect.name == "postgresql":
            query = query.with_for_update()
        row = (await conn.execute(query)).first()
        if row is None or row.pharmacy != pharmacist.pharmacy:
            raise DispenseRefused("Délivrance introuvable pour votre pharmacie.")
        if row.reversed_at is not None:
            raise DispenseRefused("Cette délivrance est déjà annulée.")
        if row.created_at.astimezone(zone).date() != now.astimezone(zone).date():
            raise DispenseRefused(
                "Une délivrance ne s'annule que le jour même : contactez la CNSS."
            )
        try:
            await cancel_settlement(conn, f"{CARE_SHEET_SYSTEM}|{claim_number(number)}", now)
        except AlreadyPaid:
            raise DispenseRefused(
                "Le paiement de cette délivrance est déjà parti dans un lot : contactez la CNSS."
            ) from None
        targets: list[str] = []
        for entry in row.lines.split(","):
            dispense_id, request_id, quantity = entry.split(":")
            await _give_back(fhir, conn, request_id, Decimal(quantity), now, written)
            await _set_status(fhir, conn, "MedicationDispense", dispense_id, written)
            targets.append(f"MedicationDispense/{dispense_id}")
        await _set_status(fhir, conn, "Claim", row.claim_id, written)
        targets.append(f"Claim/{row.claim_id}")
        await conn.execute(
            update(dispensations).where(dispensations.c.pk == row.pk).values(reversed_at=now)
        )
        audit = change_event(
            pharmacist.practitioner,
            f"délivrance {number} annulée par la pharmacie",
            [f"Patient/{row.patient_id}", *targets],
            "Plateforme FSE - pharmacie",
            now,
            zone,
            pharmacist.pharmacy,
        )
        written.append((await fhir.create(conn, "AuditEvent", audit)).stored)
        await emit(
            conn,
            "medication.dispense-reversed",
            f"Claim/{row.claim_id}",
            f"Patient/{row.patient_id}",
            dispense=number,
            pharmacy=pharmacist.pharmacy,
            focus={"status": "cancelled"},
        )
    fhir.announce(written)


STATUS = {"MedicationDispense": "entered-in-error", "Claim": "cancelled"}


async def _set_status(
    fhir: FhirService, conn: AsyncConnection, rtype: str, rid: str, written: list[Stored]
) -> None:
    current = await fhir.store.read(conn, rtype, rid)
    assert current.content is not None
    body = fhir_json.loads(current.content)
    body["status"] = STATUS[rtype]
    written.append((await fhir.update(conn, rtype, rid, body, current.version)).stored)


async def _give_back(
    fhir: FhirService,
    conn: AsyncConnection,
    request_id: str,
    quantity: Decimal,
    now: datetime,
    written: list[Stored],
) -> None:
    balances = prescription_balances.c
    left = (
        await conn.execute(
            update(prescription_balances)
            .where(balances.request_id == request_id)
            .values(dispensed=balances.dispensed - quantity, updated_at=now)
            .returning(balances.prescribed - balances.dispensed)
        )
    ).scalar_one()
    current = await fhir.store.read(conn, "MedicationRequest", request_id)
    assert current.content is not None
    request: dict[str, Any] = fhir_json.loads(current.content)
    if request.get("status") == "completed":
        request["status"] = "active"
    request["extension"] = remaining_extension(request, left)
    written.append(
        (await fhir.update(conn, "MedicationRequest", request_id, request, current.version)).stored
    )
