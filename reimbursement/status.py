"""The one status of a care sheet or a dispense, and what money is owed now by whom.

Derived by one pure function (``status_of``) from what is stored: the settlement row, the
agent's review, the payment batch holding it, the refused lines' reasons. Every page (the
doctor's sheet, "Mes feuilles", the patient copy, the pharmacy page, the day's dispenses, the
receipt, the console) shows this status, so no screen promises money another says is withheld:
money is shown only when it will be or was paid; a held claim promises nothing; a refused or
cancelled one says that nothing is reimbursed and what stays with the insured.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import date
from decimal import Decimal
from enum import StrEnum
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from fse.web.formats import date_fr, mad
from reimbursement.amounts import AmountLine
from reimbursement.core.money import ZERO
from reimbursement.core.reasons import Reason
from reimbursement.responses import REASON_LABELS
from reimbursement.tables import claim_reviews, payment_batches, settlement_lines, settlements


class Stage(StrEnum):
    SIGNED = "signed"
    """No claim to settle (a sheet of prescriptions only)."""
    SETTLED = "settled"
    """Approved at once: the benefit leaves at the next cut-off."""
    REJECTED = "rejected"
    """Nothing reimbursed at settlement (every line refused, or no rights)."""
    HELD = "held"
    """Held for a CNSS agent's control: nothing is paid before the decision."""
    RELEASED = "released"
    """Released by an agent: paid at the next cut-off."""
    REFUSED = "refused"
    """Rejected by an agent after control: nothing reimbursed."""
    CANCELLED = "cancelled"
    """Cancelled by the doctor, or a dispense reversed by the pharmacy."""
    PAID = "paid"
    """In a payment batch."""


@dataclass(frozen=True)
class ClaimFacts:
    """What is stored about one settled claim (one query for a whole list: ``claim_facts``)."""

    status: str
    """settlements.status: approved, held, rejected or cancelled."""
    to_provider: bool
    billed: Decimal
    benefit: Decimal
    patient_share: Decimal
    refusals: tuple[str, ...] = ()
    """The refused lines' reasons, in French."""
    review: str | None = None
    """The agent's decision: release or reject."""
    review_reason: str = ""
    batch: str | None = None
    paid_on: date | None = None
    """The batch's execution date."""


@dataclass(frozen=True)
class ClaimStatus:
    stage: Stage
    reason: str = ""
    """Why: the refused lines' reasons, the rule that held it, the agent's motive."""
    billed: Decimal = ZERO
    benefit: Decimal = ZERO
    """What CNSS pays: zero unless it will be or was paid."""
    insured_share: Decimal = ZERO
    """What stays with the insured (all of it when nothing is reimbursed)."""
    to_provider: bool = False
    """Tiers payant: CNSS pays the pharmacy, the insured pays only their share."""
    payment_date: date | None = None
    batch: str | None = None
    withheld: Decimal = ZERO
    """Refused after control: the benefit CNSS had proposed and does not pay."""

    @property
    def pays(self) -> bool:
        """True when the benefit will be or was paid (the only case money is promised)."""
        return self.stage in (Stage.SETTLED, Stage.RELEASED, Stage.PAID) and self.benefit > 0

    @property
    def pending(self) -> bool:
        return self.stage == Stage.HELD

    @property
    def nothing_reimbursed(self) -> bool:
        return self.stage in (Stage.REJECTED, Stage.REFUSED, Stage.CANCELLED)

    def label(self, dispense: bool = False) -> str:
        """The short status of a list row (the same words on every screen)."""
        done = "délivrée" if dispense else "signée"
        match self.stage:
            case Stage.SIGNED:
                return done
            case Stage.SETTLED:
                return f"{done} et réglée"
            case Stage.REJECTED:
                return f"rejetée ({self.reason})" if self.reason else "rejetée"
            case Stage.HELD:
                return "retenue pour contrôle"
            case Stage.RELEASED:
                return "libérée après contrôle"
            case Stage.REFUSED:
                return "refusée après contrôle"
            case Stage.CANCELLED:
                return "annulée"
            case Stage.PAID:
                when = f", {date_fr(self.payment_date)}" if self.payment_date else ""
                return f"payée (lot {self.batch}{when})"
        raise AssertionError(self.stage)

    def line(self, line: AmountLine) -> AmountLine:
        """A line as this status lets it be shown: a cancelled or refused claim pays nothing
        on any line, whatever the settlement had decided."""
        if self.stage == Stage.CANCELLED:
            return replace(line, benefit=ZERO, copay=line.submitted, reason="Feuille annulée")
        if self.stage == Stage.REFUSED:
            reason = "Refusée après contrôle CNSS"
            return replace(line, benefit=ZERO, copay=line.submitted, reason=reason)
        return line

    def payee(self, dispense: bool = False) -> str:
        if not self.to_provider:
            return "à l'assuré"
        return "à la pharmacie" if dispense else "au professionnel de santé"

    def sentence(self, dispense: bool = False) -> str:
        """The one sentence saying where the money stands."""
        thing = "Délivrance" if dispense else "Feuille"
        match self.stage:
            case Stage.SIGNED:
                return ""
            case Stage.SETTLED | Stage.RELEASED:
                how = "réglée" if self.stage == Stage.SETTLED else "libérée après contrôle CNSS"
                if self.benefit <= 0:
                    return f"{thing} {how} : rien n'est remboursé."
                when = f", virement le {date_fr(self.payment_date)}" if self.payment_date else ""
                paid = f"{mad(self.benefit)} {self.payee(dispense)}"
                return f"{thing} {how} : la CNSS paie {paid}{when}."
            case Stage.PAID:
                when = f" le {date_fr(self.payment_date)}" if self.payment_date else ""
                return (
                    f"{thing} payée : {mad(self.benefit)} virés {self.payee(dispense)} "
                    f"(lot {self.batch}){when}."
                )
            case Stage.REJECTED:
                why = f" ({self.reason})" if self.reason else ""
                return (
                    f"{thing} rejetée{why} : rien n'est remboursé, "
                    f"{mad(self.insured_share)} à la charge de l'assuré."
                )
            case Stage.HELD:
                why = f" ({self.reason})" if self.reason else ""
                return (
                    f"{thing} retenue pour contrôle CNSS{why} : rien n'est payé avant la "
                    "décision de la CNSS."
                )
            case Stage.REFUSED:
                why = f" : {self.reason}" if self.reason else ""
                return (
                    f"{thing} refusée après contrôle CNSS{why}. Rien n'est remboursé : "
                    f"{mad(self.insured_share)} à la charge de l'assuré."
                )
            case Stage.CANCELLED:
                return f"{thing} annulée : rien n'est remboursé."
        raise AssertionError(self.stage)

    def owed(self, dispense: bool = False) -> str:
        """Who owes what now, for a held or refused claim (empty otherwise)."""
        provider = "la pharmacie" if dispense else "le professionnel de santé"
        if self.stage == Stage.HELD and self.to_provider:
            return (
                f"Tiers payant : l'assuré paie sa part ({mad(self.insured_share)}) ; la CNSS ne "
                f"paie {provider} que si elle libère la feuille, sinon l'assuré doit le reste."
            )
        if self.stage == Stage.HELD:
            return (
                "L'assuré règle la totalité ; il n'est remboursé que si la CNSS libère la feuille."
            )
        if self.stage == Stage.REFUSED and self.to_provider:
            return (
                f"Tiers payant refusé : l'assuré doit aussi à {provider} la part que la CNSS "
                f"ne paie pas, {mad(self.withheld)}."
            )
        if self.stage == Stage.REFUSED:
            return "L'assuré a réglé la totalité : rien ne lui est remboursé."
        return ""


def status_of(
    facts: ClaimFacts | None,
    cancelled: bool = False,
    payment_date: date | None = None,
    hold_reason: str = "",
) -> ClaimStatus:
    """The status from what is stored. ``facts`` None: nothing was settled (prescriptions
    only). ``cancelled``: the sheet or dispense itself says so. ``payment_date``: the one the
    ClaimResponse announces (the next cut-off), when it is known."""
    if facts is None:
        return ClaimStatus(Stage.CANCELLED if cancelled else Stage.SIGNED)
    common: dict[str, Any] = {"billed": facts.billed, "to_provider": facts.to_provider}
    nothing = {**common, "insured_share": facts.billed}
    if cancelled or facts.status == "cancelled":
        return ClaimStatus(Stage.CANCELLED, **nothing)
    if facts.status == "held":
        return ClaimStatus(Stage.HELD, hold_reason, insured_share=facts.patient_share, **common)
    if facts.review == "reject":
        refused = facts.billed - facts.patient_share
        return ClaimStatus(Stage.REFUSED, facts.review_reason, withheld=refused, **nothing)
    if facts.status == "rejected":
        return ClaimStatus(Stage.REJECTED, " ; ".join(facts.refusals), **nothing)
    paid = {**common, "benefit": facts.benefit, "insured_share": facts.patient_share}
    if facts.batch is not None:
        return ClaimStatus(
            Stage.PAID, facts.review_reason, payment_date=facts.paid_on, batch=facts.batch, **paid
        )
    stage = Stage.RELEASED if facts.review == "release" else Stage.SETTLED
    return ClaimStatus(stage, facts.review_reason, payment_date=payment_date, **paid)


async def claim_facts(conn: AsyncConnection, claim_keys: Iterable[str]) -> dict[str, ClaimFacts]:
    """The stored facts of these claims (``system|number``), by key; unsettled ones are absent."""
    keys = sorted(set(claim_keys))
    if not keys:
        return {}
    s, r, b = settlements.c, claim_reviews.c, payment_batches.c
    in_batch = (s.status == "approved") & s.approval_seq.between(b.first_seq, b.last_seq)
    rows = (
        await conn.execute(
            select(
                s.pk,
                s.claim_key,
                s.status,
                s.payee_kind,
                s.billed,
                s.benefit,
                s.patient_share,
                r.decision,
                r.reason,
                b.batch_id,
                b.execution_date,
            )
            .select_from(
                settlements.outerjoin(claim_reviews, r.settlement_pk == s.pk).outerjoin(
                    payment_batches, in_batch
                )
            )
            .where(s.claim_key.in_(keys))
        )
    ).all()
    rejected = [row.pk for row in rows if row.status == "rejected" and row.decision is None]
    refusals: dict[int, list[str]] = {}
    if rejected:
        lines = settlement_lines.c
        for pk, code in (
            await conn.execute(
                select(lines.settlement_pk, lines.reason)
                .where(lines.settlement_pk.in_(rejected), lines.reason.is_not(None))
                .order_by(lines.settlement_pk, lines.sequence)
            )
        ).all():
            label = _reason_label(code)
            if label not in refusals.setdefault(pk, []):
                refusals[pk].append(label)
    return {
        row.claim_key: ClaimFacts(
            status=row.status,
            to_provider=row.payee_kind == "provider",
            billed=Decimal(row.billed),
            benefit=Decimal(row.benefit),
            patient_share=Decimal(row.patient_share),
            refusals=tuple(refusals.get(row.pk, ())),
            review=row.decision,
            review_reason=row.reason or "",
            batch=row.batch_id,
            paid_on=row.execution_date,
        )
        for row in rows
    }


def _reason_label(code: str) -> str:
    try:
        return REASON_LABELS[Reason(code)]
    except (ValueError, KeyError):
        return code


def hold_reason(response: dict[str, Any] | None) -> str:
    """The held claim's rules in words, from its ClaimResponse notes (``R13 rule : message``)."""
    messages = []
    for note in (response or {}).get("processNote", []):
        text = str(note.get("text", ""))
        if text.startswith("R13 ") and " : " in text:
            messages.append(text.split(" : ", 1)[1].rsplit(" (", 1)[0])
    return " ; ".join(messages)


def payment_date_of(response: dict[str, Any] | None) -> date | None:
    payment = (response or {}).get("payment")
    return date.fromisoformat(payment["date"]) if payment and payment.get("date") else None
