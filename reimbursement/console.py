"""The CNSS agents' console (French, server-rendered): the queue of held claims with the rule
that fired and its evidence, a decision with a reason (release or reject, audited), and the
recent decisions with the payment batch that paid them."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal

import orjson
from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy import select

from fse.audit import audit_read
from fse.errors import FhirError
from fse.security.sessions import Session
from fse.web.charts import bar_chart
from fse.web.login import page_session, posted_form
from fse.web.templates import TEMPLATES
from reimbursement.dashboard import DELAYS, dashboard
from reimbursement.ledger import batch_holding
from reimbursement.review import DECISIONS, review_claim
from reimbursement.status import ClaimStatus, Stage
from reimbursement.tables import claim_reviews, settlements

router = APIRouter(include_in_schema=False)
QUEUE_SIZE = 50


@dataclass(frozen=True)
class HeldClaim:
    response_id: str
    number: str
    patient_id: str
    patient: str
    provider: str
    care_date: date
    billed: Decimal
    benefit: Decimal
    rules: list[str]
    evidence: list[str]
    """The ClaimResponse's notes: each rule that fired, with what it measured."""


@dataclass(frozen=True)
class Decided:
    number: str
    decision: str
    reason: str
    reviewer: str
    decided_at: datetime
    benefit: Decimal
    batch: str | None


async def held_claims(request: Request) -> list[HeldClaim]:
    fhir = request.app.state.fhir
    s = settlements.c
    async with fhir.store.snapshot() as conn:
        rows = (
            await conn.execute(
                select(settlements)
                .where(s.status == "held")
                .order_by(s.received_at)
                .limit(QUEUE_SIZE)
            )
        ).all()
        people = {f"Patient/{r.patient_id}" for r in rows} | {r.provider_ref for r in rows}
        names = await fhir.display_names(conn, people)
        held = []
        for row in rows:
            stored = await fhir.store.read(conn, "ClaimResponse", row.response_id)
            response = orjson.loads(stored.content or "{}")
            notes = [n.get("text", "") for n in response.get("processNote", [])]
            held.append(
                HeldClaim(
                    response_id=row.response_id,
                    number=row.claim_key.rsplit("|", 1)[-1],
                    patient_id=row.patient_id,
                    patient=names[f"Patient/{row.patient_id}"],
                    provider=names[row.provider_ref],
                    care_date=row.care_date,
                    billed=row.billed,
                    benefit=row.benefit,
                    rules=(row.hold_rules or "").split(","),
                    evidence=[n for n in notes if n.startswith("R13")],
                )
            )
    return held


async def recent_decisions(request: Request, count: int = 20) -> list[Decided]:
    fhir = request.app.state.fhir
    r, s = claim_reviews.c, settlements.c
    async with fhir.store.snapshot() as conn:
        rows = (
            await conn.execute(
                select(r.decision, r.reason, r.reviewer, r.decided_at, s.claim_key, s.benefit)
                .join(settlements, s.pk == r.settlement_pk)
                .order_by(r.decided_at.desc())
                .limit(count)
            )
        ).all()
        decided = []
        for row in rows:
            batch = await batch_holding(conn, row.claim_key)
            decided.append(
                Decided(
                    number=row.claim_key.rsplit("|", 1)[-1],
                    decision=ClaimStatus(  # the words of every other screen
                        Stage.RELEASED if row.decision == "release" else Stage.REFUSED
                    ).label(),
                    reason=row.reason,
                    reviewer=row.reviewer.removeprefix("user:"),
                    decided_at=row.decided_at,
                    benefit=row.benefit if row.decision == "release" else Decimal("0.00"),
                    batch=batch[0] if batch else None,
                )
            )
    return decided


async def _console(
    request: Request, session: Session, error: str = "", done: str = "", status_code: int = 200
) -> Response:
    zone = request.app.state.settlement.schedule.zone
    held = await held_claims(request)
    if held and request.method == "GET":
        # The agent sees who the held sheets are for: each insured's log says so. (A refused
        # decision shows the same queue again: that is not a new look, and nothing is written.)
        await audit_read(
            request.app.state.fhir,
            f"user:{session.user.username}",
            sorted({h.patient_id for h in held}),
            "console CNSS : feuilles retenues pour contrôle",
            "Plateforme FSE - console CNSS",
        )
    context = {
        "title": "Console CNSS",
        "session": session,
        "held": held,
        "decided": await recent_decisions(request),
        "zone": zone,
        "error": error,
        "done": done,
    }
    return TEMPLATES.TemplateResponse(
        request, "cnss_console.html", context, status_code=status_code
    )


@router.get("/cnss", response_class=HTMLResponse)
async def console(request: Request) -> Response:
    session = await page_session(request)
    if isinstance(session, Response):
        return session
    return await _console(request, session, done=request.query_params.get("fait", ""))


@router.post("/cnss/controle/{response_id}", response_class=HTMLResponse)
async def decide(request: Request, response_id: str) -> Response:
    session = await page_session(request)
    if isinstance(session, Response):
        return session
    values = await posted_form(request, session)
    if isinstance(values, Response):
        return values
    decision, reason = values.get("decision", ""), values.get("motif", "").strip()
    if decision not in DECISIONS or not reason:
        message = "Indiquez le motif de la décision (il est communiqué et archivé)."
        return await _console(request, session, error=message, status_code=422)
    body = {
        "resourceType": "Parameters",
        "parameter": [
            {"name": "decision", "valueCode": decision},
            {"name": "reason", "valueString": reason},
        ],
    }
    try:
        answer = await review_claim(
            request.app.state.settlement, response_id, body, f"user:{session.user.username}"
        )
    except FhirError as refused:
        message = f"Décision refusée : {refused}"
        return await _console(request, session, error=message, status_code=refused.status)
    number = answer["identifier"][0]["value"]
    return RedirectResponse(f"/cnss?fait={number}", status_code=303)


REGIME_LABELS = {
    "salaries": "Salariés",
    "tns": "TNS",
    "tadamon": "Tadamon",
    "achamil": "Achamil",
}


@router.get("/cnss/tableau-de-bord", response_class=HTMLResponse)
async def board(request: Request) -> Response:
    session = await page_session(request)
    if isinstance(session, Response):
        return session
    settlement = request.app.state.settlement
    today = datetime.now(settlement.schedule.zone).date()
    fhir = request.app.state.fhir
    async with fhir.store.snapshot() as conn:
        figures = await dashboard(conn, today)
        names = await fhir.display_names(conn, [p for p, _, _ in figures.indicators])
    days = [d.strftime("%d/%m") for d in figures.days]
    label = {r: REGIME_LABELS.get(r, r) for r in figures.sheets}
    context = {
        "title": "Tableau de bord CNSS",
        "session": session,
        "figures": figures,
        "runtime": request.app.state.runtime.health(),
        "names": names,
        "sheets_chart": bar_chart(
            "Feuilles de soins reçues par jour de soins et par régime",
            days,
            {label[r]: v for r, v in figures.sheets.items()},
        ),
        "amounts_chart": bar_chart(
            "Remboursements approuvés (MAD) par jour de soins et par régime",
            days,
            {label[r]: v for r, v in figures.benefits.items()},
            " MAD",
        ),
        "delays_chart": bar_chart(
            "Feuilles payées, selon le délai entre les soins et le paiement",
            list(DELAYS),
            {"feuilles payées": [figures.delays[d] for d in DELAYS]},
        ),
    }
    return TEMPLATES.TemplateResponse(request, "cnss_tableau.html", context)
