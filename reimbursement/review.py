"""A CNSS agent's decision on a held claim: release it (it is booked and paid at the next
cut-off) or reject it, with a reason. Recorded once (unique per settlement), in the same
transaction as the new ClaimResponse version and the ledger entries."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sqlalchemy import insert, select, update
from sqlalchemy.exc import IntegrityError

from fse import fhir_json
from fse.audit import change_event
from fse.errors import BadRequest, Conflict, ErrorCode, NotFound
from fse.outbox import emit
from reimbursement.claims import fhir_money
from reimbursement.core.money import ZERO
from reimbursement.ledger import approval_number, book_benefit
from reimbursement.responses import payment
from reimbursement.tables import claim_reviews, settlements

if TYPE_CHECKING:
    from reimbursement.settle import Settlement

DECISIONS = ("release", "reject")


def _parameters(body: dict[str, Any]) -> tuple[str, str]:
    values = {
        p.get("name"): p.get("valueCode") or p.get("valueString")
        for p in body.get("parameter", []) or []
        if isinstance(p, dict)
    }
    decision, reason = values.get("decision"), values.get("reason")
    if body.get("resourceType") != "Parameters" or decision not in DECISIONS:
        raise BadRequest(
            "send Parameters with decision (release | reject) and reason",
            ("Parameters.parameter",),
            code=ErrorCode.INVALID_REQUEST,
        )
    if not reason or not str(reason).strip():
        raise BadRequest(
            "a review decision needs a reason",
            ("Parameters.parameter",),
            code=ErrorCode.INVALID_REQUEST,
        )
    return str(decision), str(reason).strip()


def _reviewed(response: dict[str, Any], decision: str, reason: str, reviewer: str) -> None:
    """The ClaimResponse after review: released lines keep their benefit, rejected ones pay 0."""
    response["outcome"] = "complete"
    verdict = "libérée" if decision == "release" else "rejetée"
    response["disposition"] = f"Feuille {verdict} après contrôle CNSS : {reason}"
    notes = response.setdefault("processNote", [])
    notes.append(
        {"number": len(notes) + 1, "type": "display", "text": f"Contrôle ({reviewer}) : {reason}"}
    )
    for item in response.get("item", []):
        amounts = {a["category"]["coding"][0]["code"]: a for a in item["adjudication"]}
        benefit = amounts["benefit"]
        if decision == "release":
            if (benefit.get("reason") or {}).get("coding", [{}])[0].get("code") == "R13":
                benefit.pop("reason")
        else:
            benefit["amount"] = fhir_money(ZERO)
            amounts["copay"]["amount"] = dict(amounts["submitted"]["amount"])
    if decision == "reject":
        for total in response.get("total", []):
            code = total["category"]["coding"][0]["code"]
            if code == "benefit":
                total["amount"] = fhir_money(ZERO)
        copay = next(t for t in response["total"] if t["category"]["coding"][0]["code"] == "copay")
        submitted = next(
            t for t in response["total"] if t["category"]["coding"][0]["code"] == "submitted"
        )
        copay["amount"] = dict(submitted["amount"])
        response.pop("payment", None)


async def review_claim(
    settlement: Settlement, response_id: str, body: dict[str, Any], reviewer: str
) -> dict[str, Any]:
    decision, reason = _parameters(body)
    fhir = settlement.fhir
    now = settlement.clock()
    try:
        async with fhir.store.transaction() as conn:
            query = select(settlements).where(settlements.c.response_id == response_id)
            if fhir.store.is_postgres:
                query = query.with_for_update()
            row = (await conn.execute(query)).first()
            if row is None:
                raise NotFound(f"ClaimResponse/{response_id} is not a settled claim")
            if row.status != "held":
                raise Conflict(
                    f"ClaimResponse/{response_id} is {row.status}, not held for review",
                    code=ErrorCode.REVIEW_NOT_ALLOWED,
                )
            await conn.execute(
                insert(claim_reviews).values(
                    settlement_pk=row.pk,
                    decision=decision,
                    reason=reason,
                    reviewer=reviewer,
                    decided_at=now,
                )
            )
            stored = await fhir.store.read(conn, "ClaimResponse", response_id)
            assert stored.content is not None
            response = fhir_json.loads(stored.content)
            _reviewed(response, decision, reason, reviewer)
            if decision == "release":
                payment_date = settlement.schedule.next_cutoff(now).date()
                if row.benefit > 0:  # announced now that the money will move
                    response["payment"] = payment(row.benefit, payment_date)
                await book_benefit(conn, row.pk, row.benefit, now)
                values: dict[str, Any] = {"status": "approved", "outcome": "complete"}
                if row.payee_iban is not None:
                    values["approval_seq"] = await approval_number(conn)
            else:
                values = {"status": "rejected", "outcome": "complete"}
            await conn.execute(
                update(settlements).where(settlements.c.pk == row.pk).values(**values)
            )
            written = await fhir.update(conn, "ClaimResponse", response_id, response, None)
            verdict = "libérée" if decision == "release" else "rejetée"
            number = row.claim_key.rsplit("|", 1)[-1]
            audit = change_event(
                reviewer,
                f"feuille {number} {verdict} après contrôle : {reason}",
                [f"ClaimResponse/{response_id}", f"Patient/{row.patient_id}"],
                "Plateforme FSE - contrôle CNSS",
                now,
                settlement.schedule.zone,
            )
            logged = await fhir.create(conn, "AuditEvent", audit)
            await emit(
                conn,
                "claim.reviewed",
                f"ClaimResponse/{response_id}",
                f"Patient/{row.patient_id}",
                claim=number,
                decision=decision,
                provider=row.provider_ref,
                focus={"status": "active", "outcome": values["outcome"]},
            )
    except IntegrityError:
        raise Conflict(
            f"ClaimResponse/{response_id} was reviewed concurrently",
            code=ErrorCode.REVIEW_NOT_ALLOWED,
        ) from None
    fhir.announce([written.stored, logged.stored])
    assert written.stored.content is not None
    return fhir_json.loads(written.stored.content)
