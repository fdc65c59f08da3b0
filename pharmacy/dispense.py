"""Dispense prescription lines exactly once, and settle the pharmacy's claim at once.

One database transaction writes everything: the MedicationDispenses, the new remaining quantity
and status of each MedicationRequest, the pharmacy Claim, the pharmacist's signed Provenance,
the settlement (ClaimResponse, ExplanationOfBenefit, ledger) and the dispensation row. Each
line's balance row is locked (``SELECT ... FOR UPDATE`` on PostgreSQL, the single writer on
SQLite) and a CHECK keeps the dispensed quantity within the prescribed one, so of two pharmacies
dispensing the same boxes at the same moment exactly one succeeds; the other gets a
DispenseConflict and nothing of its attempt is stored. A retried request (same Idempotency-Key)
answers the first dispense.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import asdict, dataclass
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

import orjson
from sqlalchemy import insert, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from fhir_profiles.systems import DISPENSE_SYSTEM
from fhir_profiles.systems import GTIN_SYSTEM as GTIN
from fhir_profiles.systems import REMAINING_QUANTITY_EXTENSION as REMAINING
from fse import fhir_json
from fse.audit import change_event
from fse.crypto.provenance import provenance, sign
from fse.crypto.tokens import SigningKey
from fse.errors import NotFound, PreconditionFailed
from fse.fhir_api.interactions import FhirService, under_their_ids
from fse.outbox import emit
from fse.resources import name_of
from fse.store.repository import Stored, new_id
from fse.web.formats import date_fr, mad
from pharmacy.numbers import claim_number, dispense_number
from pharmacy.pharmacist import Pharmacist
from pharmacy.receipt import receipt_payload
from pharmacy.tables import dispensations, prescription_balances
from reimbursement.amounts import amount_lines
from reimbursement.claims import ITEM_REQUEST, fhir_money, new_claim, reference_id
from reimbursement.context import Insured, read_insured
from reimbursement.core.medicines import Medicine, MedicineList
from reimbursement.core.money import CENTIME
from reimbursement.core.reasons import Reason
from reimbursement.medicine_search import label_of
from reimbursement.responses import REASON_LABELS
from reimbursement.settle import Settlement

SUBSTITUTION = "http://terminology.hl7.org/CodeSystem/v3-substanceAdminSubstitution"
HELD = REASON_LABELS[Reason.HELD_FOR_REVIEW]
"""A line's reason when the engine holds it for a CNSS control."""


class DispenseRefused(ValueError):
    """The dispense cannot be written as asked (French message; ``field`` names the input)."""

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


class DispenseHeld(Exception):
    """The engine would hold this dispense for a CNSS control and the pharmacist has not seen
    it: nothing is written, and the page shows what it would pay before "Délivrer" confirms.
    What the settlement decided under its locks, in claim order."""

    def __init__(
        self, claim: dict[str, Any], drafted: list[DraftLine], response: dict[str, Any]
    ) -> None:
        super().__init__("held for a CNSS control")
        self.claim = claim
        self.drafted = drafted
        self.response = response


def holds(claim: dict[str, Any], response: dict[str, Any]) -> bool:
    """Whether the settlement ``response`` of ``claim`` holds a line for a CNSS control (on
    which nothing is paid before the decision)."""
    return any(amounts.reason == HELD for amounts in amount_lines(claim, response))


class DispenseConflict(DispenseRefused):
    """Someone dispensed or changed the line since it was shown: nothing was stored (409)."""


@dataclass(frozen=True)
class LineOrder:
    request_id: str
    quantity: Decimal
    """Boxes handed over now (partial allowed)."""
    ean: str
    """The product handed over: the prescribed one or a generic of it."""
    price: Decimal
    """What the pharmacy charges for the whole line."""
    seen_remaining: Decimal | None = None
    """The remaining quantity the pharmacist was shown: less now means someone else dispensed."""


@dataclass(frozen=True)
class DispenseOrder:
    patient_id: str
    lines: tuple[LineOrder, ...]
    tiers_payant: bool = False
    """The pharmacy is paid by CNSS and the insured pays only their share at the counter."""

    def fingerprint(self) -> str:
        """Identifies the request's content, so one Idempotency-Key cannot mean two dispenses."""
        body = orjson.dumps(asdict(self), default=str, option=orjson.OPT_SORT_KEYS)
        return hashlib.sha256(body).hexdigest()


@dataclass(frozen=True)
class Dispensed:
    number: str
    """The dispense's number (DEL-…); its Claim is the care sheet ``claim_number(number)``."""
    replayed: bool
    """True when this Idempotency-Key had been used: the first dispense, nothing new stored."""


def boxes(quantity: Decimal) -> str:
    return f"{quantity.normalize():f}"


def money(raw: str, field: str) -> Decimal:
    """A price typed at the counter (comma or point), positive, to the centime."""
    try:
        value = Decimal(raw.strip().replace(",", ".").replace(" ", ""))
    except (InvalidOperation, AttributeError):
        raise DispenseRefused("Prix invalide : un montant en dirhams, ex. 209,00.", field) from None
    if not value.is_finite() or value < 0 or value != value.quantize(CENTIME):
        raise DispenseRefused("Prix invalide : un montant positif, au centime.", field)
    return value.quantize(CENTIME)


async def dispense(
    fhir: FhirService,
    settlement: Settlement,
    pharmacist: Pharmacist,
    key: SigningKey,
    order: DispenseOrder,
    idempotency_key: str,
    now: datetime,
    platform_key: SigningKey,
    warned: bool = True,
) -> Dispensed:
    """``key`` is the pharmacist's (the Provenance); ``platform_key`` signs the receipt.
    ``warned=False``: the pharmacist has not seen what this order pays, so one the engine
    holds for a control raises DispenseHeld with nothing written (decided under the same locks
    as the dispense itself, so no separate preview reads it all first)."""
    if not order.lines:
        raise DispenseRefused("Indiquez au moins une quantité à délivrer.")
    requested = [line.request_id for line in order.lines]
    if len(set(requested)) != len(requested):
        raise DispenseRefused("Une même ligne de prescription figure en double.")
    if not 8 <= len(idempotency_key) <= 128:
        raise DispenseRefused("Clé d'idempotence absente ou invalide : rechargez la page.")
    fingerprint = order.fingerprint()
    earlier = await _earlier(fhir, pharmacist.practitioner, idempotency_key, fingerprint)
    if earlier is not None:
        return earlier
    now = now.astimezone(settlement.schedule.zone)
    number = dispense_number(now.year, secrets.randbelow(10**9))
    written: list[Stored] = []
    try:
        async with fhir.store.transaction() as conn:
            receipt = await _write(
                fhir, conn, settlement, pharmacist, key, order, number, now, written, warned
            )
            await conn.execute(
                insert(dispensations).values(
                    number=number,
                    pharmacist=pharmacist.practitioner,
                    pharmacy=pharmacist.pharmacy,
                    idempotency_key=idempotency_key,
                    request_hash=fingerprint,
                    patient_id=order.patient_id,
                    claim_id=next(s.id for s in written if s.type == "Claim"),
                    provenance_id=next(s.id for s in written if s.type == "Provenance"),
                    lines=",".join(
                        f"{s.id}:{line.request_id}:{line.quantity}"
                        for s, line in zip(
                            (s for s in written if s.type == "MedicationDispense"),
                            sorted(order.lines, key=lambda line: line.request_id),
                            strict=True,
                        )
                    ),
                    receipt=orjson.dumps(receipt).decode(),
                    receipt_jws=sign(platform_key, [receipt]),
                    created_at=now,
                )
            )
            claim_ref = f"Claim/{next(s.id for s in written if s.type == 'Claim')}"
            audit = change_event(
                pharmacist.practitioner,
                f"délivrance {number} : {sum(line.quantity for line in order.lines)} boîte(s)",
                [f"Patient/{order.patient_id}", claim_ref],
                "Plateforme FSE - espace pharmacien",
                now,
                settlement.schedule.zone,
                organization=pharmacist.pharmacy,
                action="C",
            )
            written.append(await fhir.create_generated(conn, "AuditEvent", audit))
            await emit(
                conn,
                "medication.dispensed",
                claim_ref,
                f"Patient/{order.patient_id}",
                dispense=number,
                pharmacy=pharmacist.pharmacy,
                requests=[line.request_id for line in order.lines],
                focus={"status": "active"},
            )
    except (IntegrityError, PreconditionFailed, DispenseConflict) as lost:
        # Lost a race: to the same request (a double click: answer as it did), or to another
        # dispense of these lines (a balance CHECK, a MedicationRequest version, a lock).
        earlier = await _earlier(fhir, pharmacist.practitioner, idempotency_key, fingerprint)
        if earlier is not None:
            return earlier
        if isinstance(lost, DispenseConflict):
            raise
        raise DispenseConflict(
            "Une autre délivrance de ces lignes vient d'être enregistrée : rien n'a été "
            "enregistré, recherchez à nouveau l'assuré."
        ) from None
    fhir.announce(written)
    return Dispensed(number, replayed=False)


async def _earlier(
    fhir: FhirService, pharmacist: str, idempotency_key: str, fingerprint: str
) -> Dispensed | None:
    async with fhir.store.snapshot() as conn:
        row = (
            await conn.execute(
                select(dispensations.c.number, dispensations.c.request_hash).where(
                    dispensations.c.pharmacist == pharmacist,
                    dispensations.c.idempotency_key == idempotency_key,
                )
            )
        ).first()
    if row is None:
        return None
    if row.request_hash != fingerprint:
        raise DispenseRefused(
            "Cette demande a déjà servi à une autre délivrance (clé d'idempotence réutilisée)."
        )
    return Dispensed(row.number, replayed=True)


def _check_product(
    request: dict[str, Any], line: LineOrder, medicines: MedicineList, today: date
) -> tuple[Medicine, Medicine | None]:
    """The product handed over (at most its PPV), and the prescribed one when it is a generic
    substitution."""
    prescribed_ean = next(
        (
            c.get("code", "")
            for c in (request.get("medicationCodeableConcept") or {}).get("coding", [])
            if c.get("system") == GTIN
        ),
        "",
    )
    field = f"ligne-{line.request_id}"
    given = medicines.get(line.ean, today)
    if given is None:
        raise DispenseRefused(f"EAN {line.ean} absent de la liste des médicaments.", field)
    ceiling = None if given.ppv is None else given.ppv * line.quantity
    if ceiling is not None and line.price > ceiling:
        raise DispenseRefused(
            f"Prix {mad(line.price)} au-dessus du prix public (PPV {mad(given.ppv)} × "
            f"{boxes(line.quantity)} = {mad(ceiling)}).",
            field,
        )
    prescribed = medicines.get(prescribed_ean, today)
    if line.ean == prescribed_ean or (prescribed is not None and given.same_product_as(prescribed)):
        return given, None  # the prescribed pack, maybe under its other code
    if not (request.get("substitution") or {}).get("allowedBoolean", True):
        raise DispenseRefused(
            "Ligne « non substituable » : délivrez le médicament prescrit.", field
        )
    if prescribed is None or not given.substitutes_for(prescribed):
        raise DispenseRefused(
            f"{label_of(given, medicines.in_force(today))} n'est pas un générique du "
            "médicament prescrit "
            "(même DCI, dosage et forme, autant par boîte).",
            field,
        )
    return given, prescribed


async def _prescription(
    fhir: FhirService, conn: AsyncConnection, order: DispenseOrder, line: LineOrder, today: date
) -> tuple[dict[str, Any], int]:
    """The line's MedicationRequest and version, if it may be dispensed to this insured today."""
    field = f"ligne-{line.request_id}"
    try:
        stored = await fhir.store.read(conn, "MedicationRequest", line.request_id)
    except NotFound:
        raise DispenseRefused("Ligne de prescription introuvable.", field) from None
    assert stored.content is not None
    request: dict[str, Any] = fhir_json.loads(stored.content)
    if reference_id(request.get("subject"), "Patient") != order.patient_id:
        raise DispenseRefused("Cette ligne concerne un autre assuré.", field)
    status = request.get("status")
    if status == "cancelled":
        raise DispenseRefused("Ligne annulée par le médecin : ne pas délivrer.", field)
    if status != "active":
        raise DispenseConflict("Ligne déjà entièrement délivrée.", field)
    end = ((request.get("dispenseRequest") or {}).get("validityPeriod") or {}).get("end")
    if end and date.fromisoformat(end[:10]) < today:
        expired = date_fr(end[:10])
        raise DispenseRefused(f"Prescription expirée le {expired}.", field)
    if line.quantity <= 0 or line.quantity != line.quantity.to_integral_value():
        raise DispenseRefused("Quantité : un nombre entier de boîtes, au moins 1.", field)
    return request, stored.version


def _prescribed(request: dict[str, Any]) -> Decimal:
    quantity = (request.get("dispenseRequest") or {}).get("quantity") or {}
    return fhir_json.decimal_of(quantity.get("value", 1))


async def _remaining_now(conn: AsyncConnection, request_id: str, prescribed: Decimal) -> Decimal:
    """What is left on the line, read without locking or creating its balance row."""
    balances = prescription_balances.c
    dispensed = await conn.scalar(
        select(balances.dispensed).where(balances.request_id == request_id)
    )
    return prescribed - Decimal(dispensed or 0)


def _check_remaining(line: LineOrder, remaining: Decimal) -> None:
    field = f"ligne-{line.request_id}"
    if line.seen_remaining is not None and remaining < line.seen_remaining:
        raise DispenseConflict(
            f"Ligne délivrée entre-temps ailleurs : il reste {boxes(remaining)} boîte(s) "
            f"(vous en voyiez {boxes(line.seen_remaining)}). Rien n'a été enregistré.",
            field,
        )
    if line.quantity > remaining:
        raise DispenseRefused(
            f"Quantité {boxes(line.quantity)} supérieure au reste à délivrer ({boxes(remaining)}).",
            field,
        )


async def _take(
    conn: AsyncConnection, line: LineOrder, request: dict[str, Any], now: datetime
) -> Decimal:
    """Take the boxes from the line's balance row (created on its first dispense), locked by
    the same statement; returns what is left after. Less left than the pharmacist saw, or
    than they ask for, raises (and the transaction undoes the take)."""
    prescribed = _prescribed(request)
    if line.quantity <= prescribed:  # more would break the row's CHECK on its first take
        b = prescription_balances
        dialect_insert = pg_insert if conn.dialect.name == "postgresql" else sqlite_insert
        taking = dialect_insert(b).values(
            request_id=line.request_id,
            prescribed=prescribed,
            dispensed=line.quantity,
            updated_at=now,
        )
        taken = (
            await conn.execute(
                taking.on_conflict_do_update(
                    index_elements=["request_id"],
                    set_={
                        "dispensed": b.c.dispensed + taking.excluded.dispensed,
                        "updated_at": taking.excluded.updated_at,
                    },
                    # More than is left takes nothing (the row stays locked): refused below.
                    where=b.c.dispensed + taking.excluded.dispensed <= b.c.prescribed,
                ).returning(b.c.prescribed, b.c.dispensed)
            )
        ).first()
        if taken is not None:
            left = Decimal(taken.prescribed) - Decimal(taken.dispensed)
            _check_remaining(line, left + line.quantity)
            return left
    _check_remaining(line, await _remaining_now(conn, line.request_id, prescribed))
    raise AssertionError("a take refused by the balance row was allowed by its check")


def _claim_item(
    index: int,
    line: LineOrder,
    given: Medicine,
    named: str,
    request: dict[str, Any],
    today: date,
    conditions: list[str],
) -> dict[str, Any]:
    """The line as the engine reads it; an ALD/ALC line names its Condition (``conditions``
    collects the claim's diagnoses)."""
    item: dict[str, Any] = {
        "sequence": index,
        "extension": [
            {
                "url": ITEM_REQUEST,
                "valueReference": {"reference": f"MedicationRequest/{line.request_id}"},
            }
        ],
        "productOrService": {"coding": [{"system": GTIN, "code": given.ean, "display": named}]},
        "servicedDate": today.isoformat(),
        "quantity": {"value": whole(line.quantity)},
        "net": fhir_money(line.price),
    }
    condition = reference_id((request.get("reasonReference") or [{}])[0], "Condition")
    if condition:
        if condition not in conditions:
            conditions.append(condition)
        item["diagnosisSequence"] = [conditions.index(condition) + 1]
    return item


def whole(boxes: Decimal) -> Decimal:
    """A number of boxes as FHIR JSON writes it: ``2``, not ``2.00`` (boxes are whole)."""
    return boxes.to_integral_value() if boxes == boxes.to_integral_value() else boxes


def remaining_extension(request: dict[str, Any], left: Decimal) -> list[dict[str, Any]]:
    """The request's extensions with its boxes left to dispense (``REMAINING``) set to ``left``."""
    kept = [e for e in request.get("extension", []) if e.get("url") != REMAINING]
    return [*kept, {"url": REMAINING, "valueQuantity": {"value": whole(left), "unit": "boîte"}}]


def _with_remaining(request: dict[str, Any], left: Decimal) -> dict[str, Any]:
    request["status"] = "completed" if left == 0 else "active"
    request["extension"] = remaining_extension(request, left)
    return request


@dataclass(frozen=True)
class DraftLine:
    line: LineOrder
    given: Medicine
    substituted: bool
    label: str
    """How the screens name the product given (``label_of``)."""


async def draft_claim(
    fhir: FhirService,
    settlement: Settlement,
    pharmacist: Pharmacist,
    order: DispenseOrder,
    now: datetime,
) -> tuple[dict[str, Any], list[DraftLine], Insured]:
    """The pharmacy Claim dispensing ``order`` now would write, with the same checks
    (prescription, product, price, what remains) but read-only: nothing locked or written. Its
    lines in claim order, and the insured as read to draft it. Raises DispenseRefused or
    DispenseConflict as dispensing would."""
    if not order.lines:
        raise DispenseRefused("Indiquez au moins une quantité à délivrer.")
    requested = [line.request_id for line in order.lines]
    if len(set(requested)) != len(requested):
        raise DispenseRefused("Une même ligne de prescription figure en double.")
    now = now.astimezone(settlement.schedule.zone)
    today = now.date()
    items: list[dict[str, Any]] = []
    conditions: list[str] = []
    drafted: list[DraftLine] = []
    first: dict[str, Any] | None = None
    async with fhir.store.snapshot() as conn:
        for index, line in enumerate(sorted(order.lines, key=lambda line: line.request_id), 1):
            request, _ = await _prescription(fhir, conn, order, line, today)
            given, substituted = _check_product(request, line, settlement.books.medicines, today)
            _check_remaining(
                line, await _remaining_now(conn, line.request_id, _prescribed(request))
            )
            named = label_of(given, settlement.books.medicines.in_force(today))
            items.append(_claim_item(index, line, given, named, request, today, conditions))
            drafted.append(DraftLine(line, given, substituted is not None, named))
            first = first or request
        number = dispense_number(now.year, 0)  # a draft's: never stored
        insured = await read_insured(fhir, conn, order.patient_id, pharmacist.pharmacy)
        claim = _claim(
            settlement, insured, order, number, pharmacist, items, conditions, first, now
        )
    return claim, drafted, insured


async def _write(
    fhir: FhirService,
    conn: AsyncConnection,
    settlement: Settlement,
    pharmacist: Pharmacist,
    key: SigningKey,
    order: DispenseOrder,
    number: str,
    now: datetime,
    written: list[Stored],
    warned: bool,
) -> dict[str, Any]:
    """Lines in id order (two dispenses lock balance rows in the same order: no deadlock).
    Returns the receipt to sign."""
    today = now.date()
    dispenses: list[dict[str, Any]] = []
    items: list[dict[str, Any]] = []
    conditions: list[str] = []
    updated: list[tuple[dict[str, Any], int]] = []
    found: dict[str, dict[str, Any]] = {}
    drafted: list[DraftLine] = []
    for index, line in enumerate(sorted(order.lines, key=lambda line: line.request_id), 1):
        request, version = await _prescription(fhir, conn, order, line, today)
        found[line.request_id] = request
        given, substituted = _check_product(request, line, settlement.books.medicines, today)
        named = label_of(given, settlement.books.medicines.in_force(today))
        left = await _take(conn, line, request, now)
        updated.append((_with_remaining(dict(request), left), version))
        dispenses.append(
            _medication_dispense(
                number, index, line, given, named, substituted is not None, order, pharmacist, now
            )
        )
        items.append(_claim_item(index, line, given, named, request, today, conditions))
        drafted.append(DraftLine(line, given, substituted is not None, named))
    insured = await read_insured(fhir, conn, order.patient_id, pharmacist.pharmacy)
    claim = _claim(
        settlement, insured, order, number, pharmacist, items, conditions, updated[0][0], now
    )
    signed = provenance(key, pharmacist.practitioner, [*dispenses, claim], now)
    created = [*under_their_ids([*dispenses, claim]), ("Provenance", signed, None)]
    written.extend(await fhir.create_generated_many(conn, created))  # one round trip
    # The engine reads the prescriptions as the pharmacist found them; then they move on.
    response = await settlement.submit_within(conn, dict(claim), written, insured, found)
    if not warned and holds(claim, response):
        raise DispenseHeld(claim, drafted, response)  # the transaction rolls back
    for request, version in updated:
        written.append(
            (await fhir.update(conn, "MedicationRequest", request["id"], request, version)).stored
        )
    name = name_of(insured.patient)
    substituted = [d["substitution"]["wasSubstituted"] for d in dispenses]
    cutoff = settlement.schedule.next_cutoff(settlement.clock())
    sheets = sorted({s for request, _ in updated if (s := _sheet_of(request))})
    return receipt_payload(
        number, pharmacist, name, now, claim, response, substituted, cutoff, sheets
    )


def _sheet_of(request: dict[str, Any]) -> str | None:
    """The doctor's care sheet a prescription line belongs to."""
    return (request.get("groupIdentifier") or {}).get("value")


def _medication_dispense(
    number: str,
    index: int,
    line: LineOrder,
    given: Medicine,
    named: str,
    substituted: bool,
    order: DispenseOrder,
    pharmacist: Pharmacist,
    now: datetime,
) -> dict[str, Any]:
    return {
        "resourceType": "MedicationDispense",
        "id": new_id(),
        "identifier": [{"system": DISPENSE_SYSTEM, "value": f"{number}-D{index}"}],
        "status": "completed",
        "medicationCodeableConcept": {
            "coding": [{"system": GTIN, "code": given.ean, "display": named}]
        },
        "subject": {"reference": f"Patient/{order.patient_id}"},
        "performer": [
            {"actor": {"reference": pharmacist.practitioner}},
            {"actor": {"reference": pharmacist.pharmacy}},
        ],
        "authorizingPrescription": [{"reference": f"MedicationRequest/{line.request_id}"}],
        "quantity": {"value": whole(line.quantity), "unit": "boîte"},
        "whenHandedOver": now.isoformat(timespec="seconds"),
        "substitution": {
            "wasSubstituted": substituted,
            "type": {
                "coding": [
                    {
                        "system": SUBSTITUTION,
                        "code": "G" if substituted else "N",
                        "display": "generic composition" if substituted else "none",
                    }
                ]
            },
        },
    }


def _claim(
    settlement: Settlement,
    insured: Insured,
    order: DispenseOrder,
    number: str,
    pharmacist: Pharmacist,
    items: list[dict[str, Any]],
    conditions: list[str],
    first_request: dict[str, Any] | None,
    now: datetime,
) -> dict[str, Any]:
    coverage_id = insured.coverage_on(settlement.books, now.date())
    if coverage_id is None:
        raise DispenseRefused("Aucune couverture AMO connue pour cet assuré : délivrance hors AMO.")
    created = now.isoformat(timespec="seconds")
    claim = new_claim(
        new_id(),
        claim_number(number),
        "pharmacy",
        order.patient_id,
        pharmacist.pharmacy,
        coverage_id,
        created,
        items,
    )
    claim["careTeam"] = [{"sequence": 1, "provider": {"reference": pharmacist.practitioner}}]
    if first_request is not None:
        claim["prescription"] = {"reference": f"MedicationRequest/{first_request['id']}"}
    if order.tiers_payant:
        claim["payee"] = {
            "type": {
                "coding": [
                    {
                        "system": "http://terminology.hl7.org/CodeSystem/payeetype",
                        "code": "provider",
                    }
                ]
            }
        }
    if conditions:
        claim["diagnosis"] = [
            {"sequence": i, "diagnosisReference": {"reference": f"Condition/{c}"}}
            for i, c in enumerate(conditions, 1)
        ]
    return claim
