"""What the core reads (a care sheet and the insured's situation) and what it decides."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from enum import StrEnum

from reimbursement.core.reasons import Reason


class CodeKind(StrEnum):
    NGAP = "ngap"
    """A key letter (C, Cs, K, B...) times a coefficient."""
    FLAT_RATE = "forfait"
    """A TNR flat rate (hospital day) or an act outside the basket."""
    MEDICINE = "medicine"
    """An EAN-13 of the medicines list."""
    OTHER = "other"


class Payee(StrEnum):
    INSURED = "insured"
    PROVIDER = "provider"
    """Tiers payant: the provider is paid and the insured pays only their share."""


@dataclass(frozen=True)
class CoveragePeriod:
    """One rights period of the beneficiary (the registry keeps one Coverage per period)."""

    coverage_id: str
    regime: str
    status: str
    """ouverts, fermes-cotisations, stage or maintien (CodeSystem rights-status)."""
    start: date
    end: date | None
    relationship: str = "self"
    dependant_condition: str | None = None
    """etudiant or handicape."""
    maintained_reason: str | None = None
    """For maintien: job-loss, divorce or death (how long rights are kept)."""


@dataclass(frozen=True)
class Beneficiary:
    patient_id: str
    birth_date: date | None
    deceased_on: date | None = None


@dataclass(frozen=True)
class Exoneration:
    """A recognised ALD/ALC: its lines are covered at the exoneration rate."""

    condition_id: str
    kind: str
    """ALD or ALC."""
    code: str
    """ICD-10 code of the condition."""
    start: date
    end: date | None

    def in_force(self, on: date) -> bool:
        """Recognised on ``on`` (both ends included)."""
        return self.start <= on and (self.end is None or on <= self.end)


@dataclass(frozen=True)
class PrescriptionLine:
    request_id: str
    code: str
    """The prescribed product (EAN-13)."""
    valid_until: date
    status: str
    remaining: Decimal
    substitutable: bool = True
    prescriber: str | None = None
    """Who wrote the prescription (MedicationRequest.requester), answerable for what it asks."""


@dataclass(frozen=True)
class Line:
    sequence: int
    kind: CodeKind
    code: str
    billed: Decimal
    """What the provider charged for the whole line (fees above the tariff included)."""
    care_date: date
    coefficient: Decimal = Decimal(1)
    quantity: Decimal = Decimal(1)
    exoneration_id: str | None = None
    prescription: PrescriptionLine | None = None
    act: str | None = None
    """The NGAP act the line names (its code in the act list), beside its key letter."""


@dataclass(frozen=True)
class Provider:
    reference: str
    specialties: tuple[str, ...] = ()
    start: date | None = None
    """When the professional was installed (PractitionerRole.period.start)."""
    public_facility: bool = False


@dataclass(frozen=True)
class History:
    """What the store knows that a rule compares against (the service gathers it)."""

    settled_acts: frozenset[tuple[str, date, str, Decimal]] = frozenset()
    """This insured's accepted acts: (provider, date, code, coefficient)."""
    provider_acts_on_day: int = 0
    peer_acts_per_provider_day: Decimal | None = None
    recent_consultations: int = 0
    """This beneficiary's consultations and visits within the frequency window."""
    provider_same_amount_today: int = 0
    """This provider's claims today with the same total billed."""


@dataclass(frozen=True)
class Rights:
    open: bool
    reason: Reason | None
    message: str
    regime: str | None = None
    coverage_id: str | None = None
    opens_on: date | None = None
    until: date | None = None


@dataclass(frozen=True)
class CareSheet:
    key: str
    """The care-sheet identifier: the idempotency key of its settlement."""
    provider: Provider
    beneficiary: Beneficiary
    coverages: tuple[CoveragePeriod, ...]
    lines: tuple[Line, ...]
    received_on: date
    exonerations: tuple[Exoneration, ...] = ()
    payee: Payee = Payee.INSURED
    guaranteed: Rights | None = None
    """Rights confirmed at the point of care (an eligibility answer): they are honoured."""
    history: History = field(default_factory=History)


@dataclass(frozen=True)
class LineDecision:
    sequence: int
    code: str
    billed: Decimal
    tariff: Decimal | None
    """The TNR (or PBR) value of the whole line; None when the code has none."""
    eligible: Decimal
    rate: Decimal
    benefit: Decimal
    patient_share: Decimal
    reasons: tuple[Reason, ...] = ()
    tariff_version: str | None = None
    note: str = ""

    @property
    def accepted(self) -> bool:
        return not self.reasons


@dataclass(frozen=True)
class Hold:
    rule: str
    message: str
    evidence: dict[str, str]
    professional: str | None = None
    """Whose act or prescription triggered the rule (``Type/id``): the prescriber of a costly
    medicine, not the pharmacy that dispensed it; the sheet's provider otherwise."""


@dataclass(frozen=True)
class Decision:
    outcome: str
    """complete, error or queued (FHIR ClaimResponse.outcome)."""
    lines: tuple[LineDecision, ...]
    rights: Rights
    payee: Payee
    regime: str | None
    errors: tuple[tuple[Reason, str], ...] = ()
    holds: tuple[Hold, ...] = ()

    @property
    def billed(self) -> Decimal:
        return sum((line.billed for line in self.lines), Decimal("0.00"))

    @property
    def eligible(self) -> Decimal:
        return sum((line.eligible for line in self.lines), Decimal("0.00"))

    @property
    def benefit(self) -> Decimal:
        return sum((line.benefit for line in self.lines), Decimal("0.00"))

    @property
    def patient_share(self) -> Decimal:
        return sum((line.patient_share for line in self.lines), Decimal("0.00"))

    @property
    def status(self) -> str:
        """approved (to pay), held (for review) or rejected (nothing to pay)."""
        if self.holds:
            return "held"
        return "approved" if self.benefit > 0 else "rejected"
