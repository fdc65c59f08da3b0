"""Settle a care sheet the moment it is submitted: adjudicate, answer, book the benefit.

One transaction writes the Claim, its ClaimResponse and ExplanationOfBenefit, the settlement
row, its lines and the ledger entries. The settlement's unique care-sheet key makes a retry,
even a concurrent one, return the first answer and pay nothing more; a per-insured lock
(PostgreSQL advisory lock, SQLite's single writer) keeps duplicate and frequency checks true.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import bindparam, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from fhir_profiles.systems import CARE_SHEET_SYSTEM
from fse import fhir_json
from fse.errors import Conflict, ErrorCode
from fse.fhir_api.interactions import FhirService
from fse.outbox import event_row, outbox_events
from fse.resources import check_type, declare_profile, validate
from fse.store.pg_chain import Chain, insert_one_by_one
from fse.store.repository import HOLDER, Stored, new_id
from reimbursement.claims import ParsedClaim, parse_claim
from reimbursement.context import (
    Insured,
    Loaded,
    load,
    named_by_identifier,
    resolve_identifiers,
)
from reimbursement.core.adjudication import Books, adjudicate
from reimbursement.core.model import CodeKind, Decision
from reimbursement.fees import check_fees
from reimbursement.ledger import (
    APPROVAL_GATE,
    DRAWN_APPROVAL,
    approval_number,
    benefit_entries,
)
from reimbursement.responses import claim_response, explanation_of_benefit
from reimbursement.schedule import PaymentSchedule
from reimbursement.tables import (
    ledger_entries,
    provider_days,
    settlement_holds,
    settlement_lines,
    settlements,
)


@dataclass(frozen=True)
class Settled:
    response: dict[str, Any]
    replayed: bool
    """True when this care sheet had been settled before: the first answer, nothing paid."""


@dataclass(frozen=True)
class Decided:
    """What settling a claim now decides, before anything is written."""

    parsed: ParsedClaim
    loaded: Loaded
    decision: Decision
    now: datetime
    payment_date: date


def _now() -> datetime:
    return datetime.now(UTC)


class Settlement:
    def __init__(
        self,
        fhir: FhirService,
        books: Books,
        schedule: PaymentSchedule,
        clock: Callable[[], datetime] = _now,
    ) -> None:
        self.fhir = fhir
        self.books = books
        self.schedule = schedule
        self.clock = clock

    async def submit(
        self, claim: dict[str, Any], signature: dict[str, Any] | None = None
    ) -> Settled:
        """``signature``: the submitter's Provenance over ``claim`` (checked by the caller),
        stored with it; the Claim then keeps the id the signature names."""
        check_type(claim, "Claim")
        self.fhir.check_care_dates(claim, self.clock())  # never pay care dated in the future
        if named_by_identifier(claim):
            async with self.fhir.store.snapshot() as conn:
                await resolve_identifiers(self.fhir, conn, claim)
        parsed = parse_claim(claim)
        check_fees(parsed, self.books.ceilings)
        validate(claim)
        declare_profile(claim)
        try:
            written: list[Stored] = []
            async with self.fhir.store.transaction() as conn:
                await self._lock(conn, parsed.patient_id)
                response_id, claim_id = await self._held(conn, parsed)
                if response_id is not None:  # settled before: the first answer, nothing paid
                    return await self._replayed(conn, response_id)
                decided = await self._decide(conn, parsed)
                claim_id, pending = await self._claim_id(
                    conn, claim, parsed, claim_id, written, signature
                )
                response = await self._answer(conn, claim, claim_id, decided, written, pending)
        except (IntegrityError, Conflict):
            # A concurrent retry of the same sheet committed first: answer as it did.
            async with self.fhir.store.snapshot() as conn:
                earlier = await self._replay(conn, parsed.key)
            if earlier is None:
                raise
            return earlier
        self.fhir.announce(written)
        return Settled(response, replayed=False)

    async def submit_within(
        self,
        conn: AsyncConnection,
        claim: dict[str, Any],
        written: list[Stored],
        insured: Insured,
        requests: Mapping[str, dict[str, Any]] | None = None,
        pending: Sequence[tuple[str, dict[str, Any], str | None]] = (),
        locked: bool = False,
    ) -> dict[str, Any]:
        """Settle inside the caller's write transaction, for a feature that built the claim
        and writes its settlement in the same transaction (the doctor's signed sheet, a
        pharmacy dispense). ``insured``: the claim's insured as the caller read them in this
        transaction to build it; the engine reads them no more, nor searches for the claim.
        ``requests``: the MedicationRequests the caller read in this transaction, by id (the
        dispense's), not read again either. The claim is stored under its id, by the caller
        already or in ``pending``: the caller's resources (the claim among them) created in the
        same round trip as the engine's answers. ``locked``: the caller took
        :meth:`lock_name` of the insured with its own locks. The caller's number is new, so
        there is no earlier settlement to look for: one would be a bug, and the settlements'
        unique care-sheet key refuses it (IntegrityError)."""
        check_type(claim, "Claim")
        self.fhir.check_care_dates(claim, self.clock())
        parsed = parse_claim(claim)
        check_fees(parsed, self.books.ceilings)
        if not locked:
            await self._lock(conn, parsed.patient_id)
        decided = await self._decide(conn, parsed, insured, requests)
        return await self._answer(conn, claim, claim["id"], decided, written, pending)

    async def preview(self, claim: dict[str, Any], insured: Insured) -> dict[str, Any]:
        """The ClaimResponse settling ``claim`` now would answer, with nothing written: the
        same reading of the store and the same engine as :meth:`submit_within`, so what a
        screen shows before signing or dispensing is what the settlement then decides (the
        Claim's id and number are the draft's; nothing is stored, locked or announced).
        ``insured``: as the caller read them to draft ``claim``."""
        check_type(claim, "Claim")
        self.fhir.check_care_dates(claim, self.clock())
        async with self.fhir.store.snapshot() as conn:
            parsed = parse_claim(claim)
            check_fees(parsed, self.books.ceilings)
            decided = await self._decide(conn, parsed, insured)
        return claim_response(
            claim, str(claim.get("id", "")), decided.decision, decided.now, decided.payment_date
        )

    async def _decide(
        self,
        conn: AsyncConnection,
        parsed: ParsedClaim,
        insured: Insured | None = None,
        requests: Mapping[str, dict[str, Any]] | None = None,
    ) -> Decided:
        """Read what the core needs and adjudicate: the one path of a settlement and of its
        preview."""
        now = self.clock()
        received_on = now.astimezone(self.schedule.zone).date()
        loaded = await load(self.fhir, conn, parsed, self.books, received_on, insured, requests)
        decision = adjudicate(loaded.sheet, self.books)
        payment_date = self.schedule.next_cutoff(now).date()
        return Decided(parsed, loaded, decision, now, payment_date)

    @staticmethod
    def lock_name(patient_id: str) -> str:
        """One settlement of an insured at a time: the anomaly rules count what the others
        wrote (an advisory lock of the store, PostgreSQL; SQLite's single writer)."""
        return f"fse-settle:{patient_id}"

    async def _lock(self, conn: AsyncConnection, patient_id: str) -> None:
        await self.fhir.store.lock(conn, self.lock_name(patient_id))

    async def _replay(self, conn: AsyncConnection, key: str) -> Settled | None:
        response_id = await conn.scalar(
            select(settlements.c.response_id).where(settlements.c.claim_key == key)
        )
        return None if response_id is None else await self._replayed(conn, response_id)

    async def _replayed(self, conn: AsyncConnection, response_id: str) -> Settled:
        stored = await self.fhir.store.read(conn, "ClaimResponse", response_id)
        assert stored.content is not None
        return Settled(fhir_json.loads(stored.content), replayed=True)

    async def _held(
        self, conn: AsyncConnection, parsed: ParsedClaim
    ) -> tuple[str | None, str | None]:
        """In one statement: the ClaimResponse of this care sheet if it was settled, and the
        Claim stored under its number if any (the UI or a client may have written it first)."""
        binds = self.fhir.store.holder_binds("Claim", CARE_SHEET_SYSTEM, parsed.identifier)
        row = (await conn.execute(_HELD, {"key": parsed.key, **binds})).one()
        return row.r, row.c

    async def _claim_id(
        self,
        conn: AsyncConnection,
        claim: dict[str, Any],
        parsed: ParsedClaim,
        stored_id: str | None,
        written: list[Stored],
        signature: dict[str, Any] | None = None,
    ) -> tuple[str, list[tuple[str, dict[str, Any], str | None]]]:
        """The stored Claim of this care sheet (``stored_id``), else store it: a signed one
        under the id its signature names, with the signature; an unsigned one under a new id,
        handed back to be stored with the engine's answers (one round trip)."""
        if stored_id is not None and signature is not None and stored_id != claim["id"]:
            raise Conflict(  # settling it would pay what was signed against another claim
                f"care sheet {parsed.identifier} is already stored as Claim/{stored_id}, which "
                "is not the claim signed",
                ("Claim.identifier",),
                code=ErrorCode.DUPLICATE_IDENTIFIER,
            )
        if stored_id is not None:
            return stored_id, []
        if signature is None:
            claim_id = new_id()
            return claim_id, [("Claim", claim, claim_id)]
        if await self.fhir.store.exists(conn, "Claim", claim["id"]):
            raise Conflict(
                f"Claim/{claim['id']} already exists: sign the claim under a new id",
                ("Claim.id",),
                code=ErrorCode.DUPLICATE_IDENTIFIER,
            )
        stored = await self.fhir.store.create(conn, "Claim", claim, claim["id"])
        written.append(stored)
        signed = await self.fhir.create(conn, "Provenance", signature)
        written.append(signed.stored)
        return stored.id, []

    async def _answer(
        self,
        conn: AsyncConnection,
        claim: dict[str, Any],
        claim_id: str,
        decided: Decided,
        written: list[Stored],
        pending: Sequence[tuple[str, dict[str, Any], str | None]] = (),
    ) -> dict[str, Any]:
        """Write what was decided for the Claim ``claim_id`` (stored, or ``pending`` with it):
        the ClaimResponse, the ExplanationOfBenefit (those resources in one round trip), the
        settlement, its lines and ledger entries, the events."""
        parsed, decision = decided.parsed, decided.decision
        now, payment_date = decided.now, decided.payment_date
        response = claim_response(claim, claim_id, decision, now, payment_date)
        response_id = new_id()
        creates = [*pending, ("ClaimResponse", response, response_id)]
        coverage_id = decision.rights.coverage_id or parsed.coverage_id
        if coverage_id is not None:
            eob = explanation_of_benefit(
                claim, claim_id, response_id, coverage_id, decision, now, payment_date
            )
            creates.append(("ExplanationOfBenefit", eob, None))
        stored = await self.fhir.create_generated_many(conn, creates)
        written.extend(stored)
        stored_response = stored[len(pending)]
        eob_id = stored[-1].id if coverage_id is not None else None
        events = [
            event_row(
                kind,
                f"ClaimResponse/{stored_response.id}",
                f"Patient/{parsed.patient_id}",
                claim=parsed.identifier,
                outcome=decision.outcome,
                status=decision.status,
                benefit=decision.benefit,
                focus={"status": "active", "outcome": decision.outcome},
            )
            for kind in ("claim.adjudicated", *(("claim.held",) if decision.holds else ()))
        ]
        ids = (claim_id, stored_response.id, eob_id)
        await self._record(conn, parsed, decided.loaded, decision, ids, now, events)
        assert stored_response.content is not None
        return fhir_json.loads(stored_response.content)

    async def _record(
        self,
        conn: AsyncConnection,
        parsed: ParsedClaim,
        loaded: Loaded,
        decision: Decision,
        ids: tuple[str, str, str | None],
        now: datetime,
        events: list[dict[str, Any]],
    ) -> None:
        """The settlement of the claim, response and EOB ``ids``: its row (numbered when
        payable), lines, holds, benefit journal and ``events``, in one statement on
        PostgreSQL."""
        claim_id, response_id, eob_id = ids
        account = loaded.payee_account(decision.payee, decision.rights.coverage_id)
        payable = decision.status == "approved" and account.iban is not None
        row: dict[str, Any] = {
            "claim_key": parsed.key,
            "claim_id": claim_id,
            "response_id": response_id,
            "eob_id": eob_id,
            "patient_id": parsed.patient_id,
            "provider_ref": parsed.provider_ref,
            "payee_kind": account.kind.value,
            "payee_ref": account.reference,
            "payee_name": account.name[:200],
            "payee_iban": account.iban,
            "regime": decision.regime,
            "care_date": parsed.care_date,
            "received_at": now,
            "outcome": decision.outcome,
            "status": decision.status,
            "billed": decision.billed,
            "eligible": decision.eligible,
            "benefit": decision.benefit,
            "patient_share": decision.patient_share,
            "eligibility_id": parsed.eligibility_id,
            "hold_rules": ",".join(hold.rule for hold in decision.holds) or None,
        }
        lines = [
            {
                "sequence": line.sequence,
                "kind": line.kind.value,
                "code": line.code,
                "coefficient": line.coefficient,
                "quantity": line.quantity,
                "care_date": line.care_date,
                "patient_id": parsed.patient_id,
                "provider_ref": parsed.provider_ref,
                "request_id": line.request_id,
                "billed": decided.billed,
                "eligible": decided.eligible,
                "benefit": decided.benefit,
                "accepted": decided.accepted,
                "reason": decided.reasons[0].value if decided.reasons else None,
            }
            for line, decided in zip(parsed.lines, decision.lines, strict=True)
        ]
        holds = [
            {"rule": hold.rule, "professional_ref": hold.professional or parsed.provider_ref}
            for hold in decision.holds
        ]
        approved = decision.status == "approved"
        acts = Counter(
            line["care_date"]
            for line in lines
            if line["accepted"] and line["kind"] == CodeKind.NGAP.value
        )
        rows = {
            settlement_lines.name: lines,
            settlement_holds.name: holds,
            provider_days.name: [
                {"care_date": day, "provider_ref": parsed.provider_ref, "ngap_acts": n}
                for day, n in sorted(acts.items())
            ],
            ledger_entries.name: benefit_entries(decision.benefit, now) if approved else [],
            outbox_events.name: events,
        }
        if self.fhir.store.is_postgres:
            await _SETTLED.insert(conn, row, rows, payable=payable, approval_gate=APPROVAL_GATE)
            return
        row["approval_seq"] = await approval_number(conn) if payable else None
        await insert_one_by_one(conn, _SETTLED, row, rows)


_HELD = select(
    select(settlements.c.response_id)
    .where(settlements.c.claim_key == bindparam("key"))
    .scalar_subquery()
    .label("r"),
    HOLDER.label("c"),
)
"""What :meth:`Settlement._held` asks, built once."""

_SETTLED = Chain(
    settlements,
    children=(
        (settlement_lines, "settlement_pk"),
        (settlement_holds, "settlement_pk"),
        (ledger_entries, "settlement_pk"),
    ),
    beside=(outbox_events,),
    tallies=((provider_days, ("care_date", "provider_ref")),),
    computed={"approval_seq": DRAWN_APPROVAL},
)
"""What a settlement writes beside its FHIR resources."""
