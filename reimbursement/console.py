"""The CNSS agents' console (French, server-rendered): the queue of held claims with the rules
that fired (named in French), who each is held on and its evidence, filtered by rule, regime,
professional and date of care, searched by sheet number or immatriculation, paged; each sheet
opens in full (``sheet_file``); a decision with a reason (release or reject, audited), and the
recent decisions with the payment batch that paid them."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from urllib.parse import urlencode

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy import exists, func, or_, select
from sqlalchemy.ext.asyncio import AsyncConnection

from fhir_profiles.identifiers import IMMATRICULATION_RE
from fse import fhir_json
from fse.audit import audit_read
from fse.errors import FhirError
from fse.fhir_api.interactions import FhirService
from fse.security.sessions import Session
from fse.store.query import whole_number
from fse.web.charts import bar_chart
from fse.web.deps import Posted, SignedIn
from fse.web.state import fhir_of, runtime_of
from fse.web.templates import TEMPLATES
from reimbursement.core.anomalies import RULE_NAMES, rule_name
from reimbursement.dashboard import DELAYS, dashboard
from reimbursement.insured import InsuredNumber, insured_people
from reimbursement.ledger import batch_holding
from reimbursement.review import DECISIONS, review_claim
from reimbursement.sheet_file import (
    REGIME_LABELS,
    evidence_of,
    number_of,
    regime_label,
    settlement_key,
    sheet_file,
)
from reimbursement.state import settlement_of, today_of
from reimbursement.status import ClaimStatus, Stage
from reimbursement.tables import claim_reviews, settlement_holds, settlements

router = APIRouter(include_in_schema=False)
PAGE_SIZE = 20


@dataclass(frozen=True)
class HeldClaim:
    response_id: str
    number: str
    patient_id: str
    patient: str
    provider: str
    regime: str
    care_date: date
    billed: Decimal
    benefit: Decimal
    holds: list[tuple[str, str, list[str]]]
    """Each rule that fired: its French name, the professional it is held on, what it measured."""


@dataclass(frozen=True)
class Decided:
    number: str
    decision: str
    reason: str
    reviewer: str
    decided_at: datetime
    benefit: Decimal
    batch: str | None


@dataclass(frozen=True)
class Filters:
    """The queue's filters, from the GET form (every field optional; a bad one is ignored and
    said)."""

    rule: str = ""
    regime: str = ""
    provider: str = ""
    start: date | None = None
    end: date | None = None
    page: int = 1
    problems: tuple[str, ...] = ()

    @classmethod
    def of(cls, query: Mapping[str, str]) -> Filters:
        problems = []
        rule = query.get("regle", "")
        if rule and rule not in RULE_NAMES:
            problems.append("règle inconnue")
            rule = ""
        regime = query.get("regime", "")
        if regime and regime not in REGIME_LABELS:
            problems.append("régime inconnu")
            regime = ""
        days = []
        for name, label in (("du", "date de début"), ("au", "date de fin")):
            text = query.get(name, "").strip()
            try:
                days.append(date.fromisoformat(text) if text else None)
            except ValueError:
                problems.append(f"{label} illisible (JJ/MM/AAAA attendu)")
                days.append(None)
        number = whole_number(query.get("page", ""))  # ASCII digits; a huge one is no page
        page = number if number is not None and 0 < number < 1_000_000 else 1
        return cls(rule, regime, query.get("professionnel", ""), *days, page, tuple(problems))

    def query(self, page: int | None = None) -> str:
        """These filters as a query string (for the pages' links)."""
        values = {
            "regle": self.rule,
            "regime": self.regime,
            "professionnel": self.provider,
            "du": self.start.isoformat() if self.start else "",
            "au": self.end.isoformat() if self.end else "",
            "page": str(page or self.page),
        }
        return urlencode({k: v for k, v in values.items() if v and (k != "page" or v != "1")})


async def _insured_ids(fhir: FhirService, conn: AsyncConnection, immatriculation: str) -> set[str]:
    """The insured with this immatriculation and the beneficiaries of their rights."""
    number = InsuredNumber("immatriculation", immatriculation)
    return {p["id"] for p in await insured_people(fhir, conn, number)}


async def held_claims(
    request: Request, filters: Filters, patients: set[str] | None = None
) -> tuple[list[HeldClaim], int]:
    """One page of the held claims matching the filters (oldest first), and how many match."""
    fhir = fhir_of(request)
    s, h = settlements.c, settlement_holds.c
    where = [s.status == "held"]
    if filters.rule:
        where.append(exists().where(h.settlement_pk == s.pk, h.rule == filters.rule))
    if filters.regime:
        where.append(s.regime == filters.regime)
    if filters.provider:
        where.append(
            or_(
                s.provider_ref == filters.provider,
                exists().where(h.settlement_pk == s.pk, h.professional_ref == filters.provider),
            )
        )
    if filters.start:
        where.append(s.care_date >= filters.start)
    if filters.end:
        where.append(s.care_date <= filters.end)
    if patients is not None:
        where.append(s.patient_id.in_(sorted(patients) or [""]))
    async with fhir.store.snapshot() as conn:
        total = int(await conn.scalar(select(func.count()).where(*where)) or 0)
        rows = (
            await conn.execute(
                select(settlements)
                .where(*where)
                .order_by(s.received_at, s.pk)
                .offset((filters.page - 1) * PAGE_SIZE)
                .limit(PAGE_SIZE)
            )
        ).all()
        fired = (
            await conn.execute(
                select(h.settlement_pk, h.rule, h.professional_ref)
                .where(h.settlement_pk.in_([r.pk for r in rows] or [0]))
                .order_by(h.pk)
            )
        ).all()
        people = {f"Patient/{r.patient_id}" for r in rows} | {r.provider_ref for r in rows}
        names = await fhir.display_names(conn, people | {f.professional_ref for f in fired})
        held = []
        for row in rows:
            stored = await fhir.store.read(conn, "ClaimResponse", row.response_id)
            response = fhir_json.loads(stored.content or "{}")
            evidence = evidence_of([n.get("text", "") for n in response.get("processNote", [])])
            held.append(
                HeldClaim(
                    response_id=row.response_id,
                    number=number_of(row.claim_key),
                    patient_id=row.patient_id,
                    patient=names[f"Patient/{row.patient_id}"],
                    provider=names[row.provider_ref],
                    regime=regime_label(row.regime),
                    care_date=row.care_date,
                    billed=row.billed,
                    benefit=row.benefit,
                    holds=[
                        (rule_name(f.rule), names[f.professional_ref], evidence.get(f.rule, []))
                        for f in fired
                        if f.settlement_pk == row.pk
                    ],
                )
            )
    return held, total


async def queue_choices(request: Request) -> list[tuple[str, str]]:
    """The professionals the held claims are on or held on (the provider filter's choices)."""
    fhir = fhir_of(request)
    s, h = settlements.c, settlement_holds.c
    async with fhir.store.snapshot() as conn:
        refs = set(
            (await conn.execute(select(s.provider_ref).where(s.status == "held").distinct()))
            .scalars()
            .all()
        )
        refs |= set(
            (
                await conn.execute(
                    select(h.professional_ref)
                    .select_from(settlement_holds.join(settlements))
                    .where(s.status == "held")
                    .distinct()
                )
            )
            .scalars()
            .all()
        )
        names = await fhir.display_names(conn, refs)
    return sorted(names.items(), key=lambda item: item[1])


async def recent_decisions(request: Request, count: int = 20) -> list[Decided]:
    fhir = fhir_of(request)
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
    zone = settlement_of(request).schedule.zone
    filters = Filters.of(request.query_params if request.method == "GET" else {})
    searched = request.query_params.get("q", "").strip() if request.method == "GET" else ""
    patients = None
    notice = ""
    if searched:
        compact = searched.replace(" ", "")
        fhir = fhir_of(request)
        async with fhir.store.snapshot() as conn:
            if IMMATRICULATION_RE.match(compact):
                patients = await _insured_ids(fhir, conn, compact)
                if not patients:
                    notice = f"Aucun assuré immatriculé {compact}."
            else:
                key = settlement_key(searched.upper())
                found = await conn.scalar(
                    select(settlements.c.claim_key).where(settlements.c.claim_key == key)
                )
                if found is not None:
                    return RedirectResponse(f"/cnss/feuilles/{number_of(found)}", status_code=303)
                notice = f"Aucune feuille n° {searched}."
    held, total = await held_claims(request, filters, patients)
    if held and request.method == "GET":
        # The agent sees who the held sheets are for: each insured's log says so. (A refused
        # decision shows the same queue again: that is not a new look, and nothing is written.)
        await audit_read(
            fhir_of(request),
            f"user:{session.user.username}",
            sorted({h.patient_id for h in held}),
            "console CNSS : feuilles retenues pour contrôle",
            "Plateforme FSE - console CNSS",
        )
    pages = max(1, -(-total // PAGE_SIZE))
    context = {
        "title": "Console CNSS",
        "session": session,
        "held": held,
        "total": total,
        "filters": filters,
        "searched": searched,
        "notice": notice,
        "page": filters.page,
        "pages": pages,
        "previous": f"/cnss?{filters.query(filters.page - 1)}" if filters.page > 1 else None,
        "next": f"/cnss?{filters.query(filters.page + 1)}" if filters.page < pages else None,
        "rules": sorted(RULE_NAMES.items(), key=lambda item: item[1]),
        "rule_name": rule_name,
        "regimes": REGIME_LABELS,
        "providers": await queue_choices(request),
        "decided": await recent_decisions(request),
        "zone": zone,
        "error": error,
        "done": done,
    }
    return TEMPLATES.TemplateResponse(
        request, "cnss_console.html", context, status_code=status_code
    )


@router.get("/cnss", response_class=HTMLResponse)
async def console(request: Request, session: SignedIn) -> Response:
    return await _console(request, session, done=request.query_params.get("fait", ""))


@router.get("/cnss/feuilles/{number}", response_class=HTMLResponse)
async def sheet(request: Request, number: str, session: SignedIn) -> Response:
    """One sheet in full, to decide on it (or to see what became of it)."""
    settlement = settlement_of(request)
    fhir = settlement.fhir
    async with fhir.store.snapshot() as conn:
        found = await sheet_file(fhir, settlement.books, conn, number)
    context: dict[str, object] = {"title": f"Feuille {number}", "session": session}
    if found is None:
        context["missing"] = number
        return TEMPLATES.TemplateResponse(request, "cnss_feuille.html", context, status_code=404)
    await audit_read(
        fhir,
        f"user:{session.user.username}",
        [found.patient_id],
        f"console CNSS : feuille {number}",
        "Plateforme FSE - console CNSS",
    )
    context |= {"sheet": found, "zone": settlement.schedule.zone}
    return TEMPLATES.TemplateResponse(request, "cnss_feuille.html", context)


@router.post("/cnss/controle/{response_id}", response_class=HTMLResponse)
async def decide(request: Request, response_id: str, session: SignedIn, values: Posted) -> Response:
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
            settlement_of(request), response_id, body, f"user:{session.user.username}"
        )
    except FhirError as refused:
        message = f"Décision refusée : {refused}"
        return await _console(request, session, error=message, status_code=refused.status)
    number = answer["identifier"][0]["value"]
    return RedirectResponse(f"/cnss?fait={number}", status_code=303)


@router.get("/cnss/tableau-de-bord", response_class=HTMLResponse)
async def board(request: Request, session: SignedIn) -> Response:
    fhir = fhir_of(request)
    async with fhir.store.snapshot() as conn:
        figures = await dashboard(conn, today_of(request))
        names = await fhir.display_names(conn, [p for p, _, _ in figures.indicators])
    days = [d.strftime("%d/%m") for d in figures.days]
    label = {r: REGIME_LABELS.get(r, r) for r in figures.sheets}
    context = {
        "title": "Tableau de bord CNSS",
        "session": session,
        "figures": figures,
        "runtime": runtime_of(request).health(),
        "names": names,
        "rule_name": rule_name,
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
