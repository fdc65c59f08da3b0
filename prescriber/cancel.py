"""Cancel a sheet whose lines are not dispensed: every resource marked cancelled, the benefit
reversed in the ledger, an AuditEvent recorded, all in one transaction."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from fhir_profiles.systems import CARE_SHEET_SYSTEM
from fse import fhir_json
from fse.audit import change_event
from fse.errors import PreconditionFailed
from fse.fhir_api.interactions import FhirService
from fse.fhir_api.reading import ALL, search
from prescriber.history import SheetView
from prescriber.sheets import SheetRefused
from reimbursement.ledger import AlreadyPaid, cancel_settlement

HANDED_OVER = ("completed", "in-progress")
"""Dispenses that count; a dispense reversed at the counter is entered-in-error."""

CANCELLED = {
    "Encounter": "cancelled",
    "ChargeItem": "aborted",
    "MedicationRequest": "cancelled",
    "ServiceRequest": "revoked",
    "Claim": "cancelled",
}


async def cancel_sheet(fhir: FhirService, sheet: SheetView, who: str, now: datetime) -> None:
    """Raises SheetRefused (in French) when a line was dispensed or the benefit already paid."""
    written = []
    async with fhir.store.transaction() as conn:
        for request in sheet.medicines:
            ref = f"MedicationRequest/{request['id']}"
            dispenses = await search(
                fhir, conn, "MedicationDispense", [("prescription", ref)], count=ALL
            )
            if any(d.get("status") in HANDED_OVER for d in dispenses):
                raise SheetRefused(
                    "Une ligne a déjà été délivrée en pharmacie : annulation refusée."
                )
        try:
            await cancel_settlement(conn, f"{CARE_SHEET_SYSTEM}|{sheet.number}", now)
        except AlreadyPaid:
            raise SheetRefused(
                "Le remboursement est déjà parti dans un lot de paiement : contactez la CNSS."
            ) from None
        acts = await search(
            fhir, conn, "ChargeItem", [("context", f"Encounter/{sheet.encounter['id']}")], count=ALL
        )
        targets: list[dict[str, Any]] = [
            sheet.encounter,
            *acts,
            *sheet.medicines,
            *sheet.labs,
            *([sheet.claim] if sheet.claim else []),
        ]
        for resource in targets:
            current = await fhir.store.read(conn, resource["resourceType"], resource["id"])
            assert current.content is not None
            body = fhir_json.loads(current.content)
            body["status"] = CANCELLED[body["resourceType"]]
            # A prescription must still be as the doctor saw it: a pharmacy dispensing it at
            # this moment changes its version, and then the cancellation is refused.
            seen = int(resource["meta"]["versionId"])
            try:
                updated = await fhir.update(conn, body["resourceType"], body["id"], body, seen)
            except PreconditionFailed:
                raise SheetRefused(
                    "La feuille vient de changer (délivrance en pharmacie) : rechargez la page."
                ) from None
            written.append(updated.stored)
        audit = change_event(
            who,
            f"feuille {sheet.number} annulée par son auteur",
            [f"{r['resourceType']}/{r['id']}" for r in targets],
            "Plateforme FSE - espace médecin",
            now,
            ZoneInfo(fhir.settings.payment_timezone),
        )
        written.append((await fhir.create(conn, "AuditEvent", audit)).stored)
    fhir.announce(written)
