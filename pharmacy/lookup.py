"""What an insured may collect at the pharmacy: their open prescription lines only.

Found by CIN, immatriculation (the main insured and their beneficiaries) or care-sheet number
(the QR code). Shows what the pharmacist needs and nothing more: no diagnosis, no ALD. Expired,
cancelled and fully dispensed lines are not offered. Each lookup is audited with the pharmacy.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import select

from fhir_profiles.identifiers import CARE_SHEET_RE
from fhir_profiles.systems import GTIN_SYSTEM, PRESCRIPTION_SYSTEM
from fse.audit import audit_read
from fse.fhir_api.interactions import FhirService
from fse.fhir_api.reading import ALL, search
from fse.fhir_json import decimal_of
from fse.security.lookups import record_lookups
from pharmacy.tables import prescription_balances
from reimbursement.insured import compact, insured_number, insured_people


class NotAnIdentifier(ValueError):
    pass


@dataclass(frozen=True)
class OpenLine:
    request_id: str
    patient_id: str
    patient_name: str
    ean: str
    medicine: str
    dosage: str
    prescribed: Decimal
    remaining: Decimal
    prescriber: str
    prescribed_on: str
    valid_until: date | None
    substitutable: bool
    sheet: str | None


async def _dispensed(conn: Any, request_ids: list[str]) -> dict[str, Decimal]:
    """Boxes dispensed per line, from the balance rows dispensing locks (one query)."""
    if not request_ids:
        return {}
    balances = prescription_balances.c
    rows = await conn.execute(
        select(balances.request_id, balances.dispensed).where(balances.request_id.in_(request_ids))
    )
    return {row.request_id: Decimal(row.dispensed) for row in rows}


async def open_lines(
    fhir: FhirService,
    text: str,
    today: date,
    reader: str,
    pharmacy: str | None,
    shown: Callable[[OpenLine], bool] | None = None,
    looked_up_by: int | None = None,
) -> list[OpenLine]:
    """``shown`` keeps only some lines (those of the sheet whose access code was typed).
    ``looked_up_by``: the pharmacist's account, to whom the insured shown are then open through
    the API too (the access model's ``looked-up`` rule)."""
    query = compact(text)
    number = insured_number(query)
    async with fhir.store.snapshot() as conn:
        if CARE_SHEET_RE.match(query):
            requests = await search(
                fhir,
                conn,
                "MedicationRequest",
                [("group-identifier", f"{PRESCRIPTION_SYSTEM}|{query}")],
                count=ALL,
            )
        elif number is not None:
            requests = []
            for patient in await insured_people(fhir, conn, number):
                requests += await search(
                    fhir,
                    conn,
                    "MedicationRequest",
                    [("subject", f"Patient/{patient['id']}"), ("status", "active")],
                    count=ALL,
                )
        else:
            raise NotAnIdentifier(
                "Saisissez une CIN, une immatriculation (9 chiffres) ou un numéro de feuille FSE-…"
            )
        lines = []
        names: dict[str, str] = {}
        dispensed = await _dispensed(conn, [r["id"] for r in requests])
        for request in requests:
            line = await _line(fhir, conn, request, today, names, dispensed)
            if line is not None and (shown is None or shown(line)):
                lines.append(line)
    patients = sorted({line.patient_id for line in lines})
    if patients:
        await audit_read(
            fhir,
            reader,
            patients,
            f"délivrance : recherche {number.searched if number else query}",
            "Plateforme FSE - pharmacie",
            pharmacy,
        )
        if looked_up_by is not None:
            await record_lookups(fhir.store.engine, looked_up_by, patients, datetime.now(UTC))
    return lines


async def _line(
    fhir: FhirService,
    conn: Any,
    request: dict[str, Any],
    today: date,
    names: dict[str, str],
    dispensed: dict[str, Decimal],
) -> OpenLine | None:
    if request.get("status") != "active":
        return None
    dispense = request.get("dispenseRequest") or {}
    end = (dispense.get("validityPeriod") or {}).get("end")
    valid_until = date.fromisoformat(end[:10]) if end else None
    if valid_until is not None and valid_until < today:
        return None
    prescribed = decimal_of((dispense.get("quantity") or {}).get("value", 1))
    remaining = prescribed - dispensed.get(request["id"], Decimal(0))
    if remaining <= 0:
        return None
    coding = next(
        (
            c
            for c in request["medicationCodeableConcept"].get("coding", [])
            if c.get("system") == GTIN_SYSTEM
        ),
        {},
    )
    people = (request["subject"]["reference"], request["requester"]["reference"])
    names.update(await fhir.display_names(conn, [ref for ref in people if ref not in names]))
    return OpenLine(
        request_id=request["id"],
        patient_id=request["subject"]["reference"].split("/")[-1],
        patient_name=names[request["subject"]["reference"]],
        ean=coding.get("code", ""),
        medicine=coding.get("display", coding.get("code", "")),
        dosage="; ".join(d.get("text", "") for d in request.get("dosageInstruction", [])),
        prescribed=prescribed,
        remaining=remaining,
        prescriber=names[request["requester"]["reference"]],
        prescribed_on=str(request.get("authoredOn", ""))[:10],
        valid_until=valid_until,
        substitutable=bool((request.get("substitution") or {}).get("allowedBoolean", True)),
        sheet=(request.get("groupIdentifier") or {}).get("value"),
    )


@dataclass(frozen=True)
class EarlierDispense:
    """A dispense already made on a line of the sheet: when, where, what, substituted."""

    at: str
    pharmacy: str
    medicine: str
    boxes: Decimal
    substituted: bool
    reversed: bool


async def earlier_dispenses(
    fhir: FhirService, sheets: list[str]
) -> dict[str, list[EarlierDispense]]:
    """Per care sheet, the dispenses of its lines so far (by any pharmacy), oldest first: the
    pharmacist sees what was handed over before, and whether a generic replaced it."""
    found: dict[str, list[EarlierDispense]] = {}
    async with fhir.store.snapshot() as conn:
        for sheet in sorted(set(sheets)):
            requests = await search(
                fhir,
                conn,
                "MedicationRequest",
                [("group-identifier", f"{PRESCRIPTION_SYSTEM}|{sheet}")],
                count=ALL,
            )
            dispenses = []
            for request in requests:
                dispenses += await search(
                    fhir,
                    conn,
                    "MedicationDispense",
                    [("prescription", f"MedicationRequest/{request['id']}")],
                    count=ALL,
                )
            places = {
                actor["reference"]
                for d in dispenses
                for p in d.get("performer", [])
                if (actor := p.get("actor", {})).get("reference", "").startswith("Organization/")
            }
            names = await fhir.display_names(conn, places)
            rows = []
            for d in dispenses:
                place = next(
                    (
                        p["actor"]["reference"]
                        for p in d.get("performer", [])
                        if p.get("actor", {}).get("reference", "").startswith("Organization/")
                    ),
                    "",
                )
                coding = (d.get("medicationCodeableConcept") or {}).get("coding", [{}])[0]
                rows.append(
                    EarlierDispense(
                        at=str(d.get("whenHandedOver", "")),
                        pharmacy=names.get(place, place),
                        medicine=str(coding.get("display", coding.get("code", ""))),
                        boxes=decimal_of((d.get("quantity") or {}).get("value", 0)).normalize(),
                        substituted=bool((d.get("substitution") or {}).get("wasSubstituted")),
                        reversed=d.get("status") == "entered-in-error",
                    )
                )
            if rows:
                found[sheet] = sorted(rows, key=lambda row: row.at)
    return found
