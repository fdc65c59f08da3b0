"""Gather, inside the settlement transaction, what the core needs about one claim: the
insured's rights periods and exonerations, the provider, the prescriptions, the history."""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import Date, Select, String, bindparam, func, select, true
from sqlalchemy.ext.asyncio import AsyncConnection

from fhir_profiles.identifiers import iban_from_rib, rib_problem
from fhir_profiles.systems import DEPENDANT_CONDITION_EXTENSION as DEPENDANT_CONDITION
from fhir_profiles.systems import EXONERATION_PERIOD_EXTENSION as EXONERATION_PERIOD
from fhir_profiles.systems import EXONERATION_SYSTEM, REGIME_SYSTEM, RIB_SYSTEM
from fhir_profiles.systems import GTIN_SYSTEMS as GTIN
from fhir_profiles.systems import RIGHTS_STATUS_EXTENSION as RIGHTS_STATUS
from fse.errors import Gone, NotFound, Unprocessable
from fse.fhir_api import reading
from fse.fhir_api.interactions import FhirService
from fse.fhir_api.reading import ALL
from fse.fhir_json import decimal_of
from fse.resources import name_of
from fse.runtime.cache import Cache
from reimbursement.claims import ParsedClaim, not_adjudicable, reference_id
from reimbursement.core.adjudication import Books
from reimbursement.core.model import (
    Beneficiary,
    CareSheet,
    CodeKind,
    CoveragePeriod,
    Exoneration,
    History,
    Line,
    Payee,
    PrescriptionLine,
    Provider,
    Rights,
)
from reimbursement.core.rights import rights_on
from reimbursement.tables import Money, provider_days, settlement_lines, settlements


@dataclass(frozen=True)
class PayeeAccount:
    kind: Payee
    reference: str
    name: str
    iban: str | None


def _unprocessable(message: str, path: str) -> Unprocessable:
    return not_adjudicable(message, path, "not-found")


async def referenced(
    service: FhirService, conn: AsyncConnection, rtype: str, rid: str, path: str
) -> dict[str, Any]:
    """What an element of the claim at ``path`` refers to; 422 naming that element when it does
    not exist (the claim is not adjudicable, the request was well formed)."""
    try:
        return await reading.read(service, conn, rtype, rid)
    except NotFound:
        raise _unprocessable(f"{rtype}/{rid} introuvable", path) from None


LOGICAL_REFERENCES = (
    ("patient", "Patient"),
    ("provider", "Practitioner"),
    ("facility", "Organization"),
    ("insurer", "Organization"),
)


async def _resolved(
    service: FhirService, conn: AsyncConnection, reference: Any, rtype: str, path: str
) -> None:
    """Give a reference made by identifier only (what CNSS systems know: immatriculation,
    INPE) its literal ``Type/id``; 422 naming the element if no such resource exists."""
    if not isinstance(reference, dict) or reference.get("reference"):
        return
    identifier = reference.get("identifier")
    if not isinstance(identifier, dict) or not identifier.get("value"):
        return
    rtype = reference.get("type") or rtype
    token = f"{identifier.get('system', '')}|{identifier['value']}"
    found = await reading.search(service, conn, rtype, [("identifier", token)], count=2)
    if len(found) != 1:
        raise _unprocessable(f"aucun {rtype} avec l'identifiant {token}", f"{path}.identifier")
    reference["reference"] = f"{rtype}/{found[0]['id']}"


def named_by_identifier(claim: dict[str, Any]) -> bool:
    """Whether the claim names anything by identifier only (then it needs the store to
    resolve): most claims use literal ``Type/id`` references."""
    named = [claim.get(field) for field, _ in LOGICAL_REFERENCES]
    named += [i.get("coverage") for i in claim.get("insurance", []) or [] if isinstance(i, dict)]
    return any(
        isinstance(reference, dict)
        and not reference.get("reference")
        and isinstance(reference.get("identifier"), dict)
        for reference in named
    )


async def resolve_identifiers(
    service: FhirService, conn: AsyncConnection, claim: dict[str, Any]
) -> None:
    for field, rtype in LOGICAL_REFERENCES:
        await _resolved(service, conn, claim.get(field), rtype, f"Claim.{field}")
    for index, insurance in enumerate(claim.get("insurance", []) or []):
        if isinstance(insurance, dict):
            path = f"Claim.insurance[{index}].coverage"
            await _resolved(service, conn, insurance.get("coverage"), "Coverage", path)


def _day(value: Any) -> date | None:
    return date.fromisoformat(str(value)[:10]) if value else None


def _code(concept: Any, system: str | None = None) -> str | None:
    for coding in (concept or {}).get("coding", []) or []:
        if system is None or coding.get("system") == system:
            return coding.get("code")
    return None


def _extension_code(resource: dict[str, Any], url: str) -> str | None:
    for extension in resource.get("extension", []) or []:
        if extension.get("url") == url:
            return (extension.get("valueCoding") or {}).get("code")
    return None


def beneficiary_of(patient: dict[str, Any]) -> Beneficiary:
    return Beneficiary(
        patient["id"], _day(patient.get("birthDate")), _day(patient.get("deceasedDateTime"))
    )


def iban_of(resource: dict[str, Any]) -> str | None:
    for identifier in resource.get("identifier", []) or []:
        rib = identifier.get("value")
        if identifier.get("system") == RIB_SYSTEM and rib and rib_problem(rib) is None:
            return iban_from_rib(rib)
    return None


async def coverage_periods(
    service: FhirService, conn: AsyncConnection, patient: dict[str, Any]
) -> tuple[tuple[CoveragePeriod, ...], dict[str, dict[str, Any]]]:
    """The beneficiary's rights periods, and the main insured (subscriber) of each period."""
    found = await reading.search(
        service, conn, "Coverage", [("beneficiary", f"Patient/{patient['id']}")], count=ALL
    )
    return await periods_of(service, conn, patient, found)


async def periods_of(
    service: FhirService,
    conn: AsyncConnection,
    patient: dict[str, Any],
    found: list[dict[str, Any]],
) -> tuple[tuple[CoveragePeriod, ...], dict[str, dict[str, Any]]]:
    """:func:`coverage_periods` of the Coverages ``found`` for the beneficiary (a main
    insured other than the patient is read here)."""
    pid = patient["id"]
    subscribers: dict[str, dict[str, Any]] = {pid: patient}
    by_coverage: dict[str, dict[str, Any]] = {}
    periods = []
    for coverage in found:
        if coverage.get("status") not in ("active", None):
            continue
        subscriber_id = reference_id(coverage.get("subscriber"), "Patient") or pid
        if subscriber_id not in subscribers:
            subscribers[subscriber_id] = await referenced(
                service, conn, "Patient", subscriber_id, "Coverage.subscriber"
            )
        subscriber = by_coverage[coverage["id"]] = subscribers[subscriber_id]
        relationship = _code(coverage.get("relationship")) or "self"
        status = _extension_code(coverage, RIGHTS_STATUS) or "ouverts"
        period = coverage.get("period") or {}
        start = _day(period.get("start")) or date.min
        reason = None
        if status == "maintien":
            died = _day(subscriber.get("deceasedDateTime"))
            if died is not None or subscriber.get("deceasedBoolean"):
                reason = "death"
            elif relationship == "spouse":
                reason = "divorce"
            else:
                reason = "job-loss"
        periods.append(
            CoveragePeriod(
                coverage_id=coverage["id"],
                regime=_code(coverage.get("type"), REGIME_SYSTEM) or "salaries",
                status=status,
                start=start,
                end=_day(period.get("end")),
                relationship=relationship,
                dependant_condition=_extension_code(coverage, DEPENDANT_CONDITION),
                maintained_reason=reason,
            )
        )
    return tuple(periods), by_coverage


async def exonerations(
    service: FhirService, conn: AsyncConnection, patient_id: str
) -> tuple[Exoneration, ...]:
    conditions = await reading.search(
        service, conn, "Condition", [("patient", f"Patient/{patient_id}")], count=ALL
    )
    return exonerations_of(conditions)


def exonerations_of(conditions: list[dict[str, Any]]) -> tuple[Exoneration, ...]:
    """The ALD/ALC exonerations among the insured's Conditions."""
    found = []
    for condition in conditions:
        kind = next(
            (
                c.get("code")
                for category in condition.get("category", []) or []
                for c in category.get("coding", []) or []
                if c.get("system") == EXONERATION_SYSTEM
            ),
            None,
        )
        if kind is None or _code(condition.get("verificationStatus")) != "confirmed":
            continue
        period = next(
            (
                e.get("valuePeriod") or {}
                for e in condition.get("extension", []) or []
                if e.get("url") == EXONERATION_PERIOD
            ),
            {},
        )
        start = _day(period.get("start"))
        if start is None:
            continue
        found.append(
            Exoneration(
                condition["id"],
                kind,
                _code(condition.get("code")) or "",
                start,
                _day(period.get("end")),
            )
        )
    return tuple(found)


async def provider_of(
    service: FhirService,
    conn: AsyncConnection,
    parsed: ParsedClaim,
    known: ProviderRead | None = None,
) -> tuple[Provider, dict[str, Any]]:
    """``known``: the claim's provider as read with its insured (not read again)."""
    rtype = parsed.provider_ref.partition("/")[0]
    roles: list[dict[str, Any]] = []
    organizations: list[dict[str, Any]] = []
    if known is None or known.reference != parsed.provider_ref:
        known = await _read_provider(service, conn, parsed.provider_ref)
    resource = known.resource
    if rtype == "Practitioner":
        roles = known.roles
    elif rtype == "PractitionerRole":
        roles = [resource]
    else:
        organizations = [resource]
    for role in roles:
        org_id = reference_id(role.get("organization"), "Organization")
        if org_id:
            organizations.append(
                await referenced(service, conn, "Organization", org_id, "Claim.provider")
            )
    facility_id = reference_id({"reference": parsed.facility_ref}, "Organization")
    if facility_id:
        organizations.append(
            await referenced(service, conn, "Organization", facility_id, "Claim.facility")
        )
    specialties = tuple(
        c["code"]
        for role in roles
        for s in role.get("specialty", []) or []
        for c in s.get("coding", []) or []
        if c.get("code")
    )
    starts = [d for role in roles if (d := _day((role.get("period") or {}).get("start")))]
    public = any(_code(t) == "govt" for org in organizations for t in org.get("type", []) or [])
    provider = Provider(parsed.provider_ref, specialties, min(starts) if starts else None, public)
    return provider, resource


async def prescription(
    service: FhirService,
    conn: AsyncConnection,
    request_id: str,
    patient_id: str,
    validity_days: int,
    path: str,
    request: dict[str, Any] | None = None,
) -> PrescriptionLine:
    """``request``: the MedicationRequest as the caller read it in this transaction (not
    read again)."""
    if request is None:
        request = await referenced(service, conn, "MedicationRequest", request_id, path)
    if reference_id(request.get("subject"), "Patient") != patient_id:
        raise _unprocessable(f"MedicationRequest/{request_id} concerne un autre patient", path)
    code = next(
        (
            c.get("code")
            for c in (request.get("medicationCodeableConcept") or {}).get("coding", []) or []
            if c.get("system") in GTIN
        ),
        "",
    )
    dispense = request.get("dispenseRequest") or {}
    authored = _day(request.get("authoredOn")) or date.min
    valid_until = _day((dispense.get("validityPeriod") or {}).get("end")) or (
        authored + timedelta(days=validity_days)
    )
    prescribed = decimal_of((dispense.get("quantity") or {}).get("value", 1))
    lines = settlement_lines.c
    dispensed = await conn.scalar(
        select(func.coalesce(func.sum(lines.quantity), 0))
        .select_from(settlement_lines.join(settlements))
        .where(
            lines.request_id == request_id,
            lines.accepted.is_(True),
            settlements.c.status != "cancelled",  # a reversed dispense gives the boxes back
        )
    )
    substitution = request.get("substitution") or {}
    return PrescriptionLine(
        request_id=request_id,
        code=code,
        valid_until=valid_until,
        status=str(request.get("status")),
        remaining=prescribed - Decimal(str(dispensed or 0)),
        substitutable=bool(substitution.get("allowedBoolean", True)),
        prescriber=(request.get("requester") or {}).get("reference") or None,
    )


PEER_MEAN_TTL = 300.0
"""Seconds a day's peer mean is reused: it moves slowly, and summing a whole day's provider
rows on every claim would cost more as the day's providers come in."""


async def peer_mean_on(conn: AsyncConnection, cache: Cache, day: date) -> Decimal | None:
    """Mean NGAP acts per active provider on ``day`` (the volume indicator's yardstick)."""
    key = f"settle:peer-mean:{day.isoformat()}"
    cached = await cache.get(key)
    if cached is not None:
        return Decimal(cached.decode()) if cached else None
    counted = provider_days.c
    acts, providers = (
        await conn.execute(
            select(func.sum(counted.ngap_acts), func.count()).where(
                counted.care_date == day, counted.ngap_acts > 0
            )
        )
    ).one()
    mean = Decimal(acts) / Decimal(providers) if providers else None
    await cache.set(key, str(mean).encode() if mean is not None else b"", PEER_MEAN_TTL)
    return mean


@functools.cache
def _history_statement() -> Select[Any]:
    """What the anomaly rules count, as one statement built once (values bound at each
    settlement): the three counts on every row (the provider's acts of the day read from its
    ``provider_days`` row, not counted), then the insured's acts of the sheet's days if
    any (a LEFT JOIN from the counts' one row)."""
    lines = settlement_lines.c
    standing = settlement_lines.join(settlements)
    not_cancelled = settlements.c.status != "cancelled"  # a cancelled sheet may be written again
    patient = bindparam("patient", type_=String())
    day, provider = bindparam("day", type_=Date()), bindparam("provider", type_=String())
    acts = (
        select(lines.provider_ref, lines.care_date, lines.code, lines.coefficient)
        .select_from(standing)
        .where(
            lines.patient_id == patient,
            lines.care_date.in_(bindparam("days", type_=Date(), expanding=True)),
            lines.accepted.is_(True),
            lines.kind.in_((CodeKind.NGAP.value, CodeKind.FLAT_RATE.value)),
            not_cancelled,
        )
        .subquery("acts")
    )
    provider_acts = select(provider_days.c.ngap_acts).where(
        provider_days.c.care_date == day, provider_days.c.provider_ref == provider
    )
    recent = (
        select(func.count())
        .select_from(standing)
        .where(
            lines.patient_id == patient,
            lines.care_date > bindparam("window_start", type_=Date()),
            lines.care_date <= day,
            lines.code.in_(bindparam("codes", type_=String(), expanding=True)),
            lines.accepted.is_(True),
            not_cancelled,
        )
    )
    same_amount = select(func.count()).where(
        settlements.c.provider_ref == provider,
        settlements.c.care_date == day,
        settlements.c.billed == bindparam("billed", type_=Money),
    )
    counts = select(
        provider_acts.scalar_subquery().label("provider_acts"),
        recent.scalar_subquery().label("recent"),
        same_amount.scalar_subquery().label("same_amount"),
    ).subquery("counts")
    return select(counts, acts).select_from(counts.outerjoin(acts, true()))


async def history(
    conn: AsyncConnection, parsed: ParsedClaim, books: Books, received_on: date, cache: Cache
) -> History:
    day = parsed.care_date
    window_days, codes = books.anomalies.consultation_window(received_on)
    binds = {
        "patient": parsed.patient_id,
        "provider": parsed.provider_ref,
        "day": day,
        "days": sorted({line.care_date for line in parsed.lines}),
        "window_start": day - timedelta(days=window_days),
        "codes": sorted(codes),
        "billed": sum((line.billed for line in parsed.lines), Decimal("0.00")),
    }
    rows = (await conn.execute(_history_statement(), binds)).all()
    counted = rows[0]
    settled = frozenset(
        (r.provider_ref, r.care_date, r.code, Decimal(r.coefficient))
        for r in rows
        if r.provider_ref is not None
    )
    peer_mean = await peer_mean_on(conn, cache, day)
    return History(
        settled_acts=settled,
        provider_acts_on_day=int(counted.provider_acts or 0),
        peer_acts_per_provider_day=peer_mean,
        recent_consultations=int(counted.recent or 0),
        provider_same_amount_today=int(counted.same_amount or 0),
    )


async def guaranteed_rights(
    service: FhirService, conn: AsyncConnection, parsed: ParsedClaim
) -> Rights | None:
    """Rights confirmed at the point of care for this patient and date are honoured."""
    if parsed.eligibility_id is None:
        return None
    path = "Claim.insurance[0].extension"
    answer = await referenced(
        service, conn, "CoverageEligibilityResponse", parsed.eligibility_id, path
    )
    if reference_id(answer.get("patient"), "Patient") != parsed.patient_id:
        raise _unprocessable("la réponse d'éligibilité concerne un autre patient", path)
    insurance = next(iter(answer.get("insurance", []) or []), {})
    served = _day(answer.get("servicedDate"))
    if not (answer.get("outcome") == "complete" and insurance.get("inforce") is True):
        return None
    if served != parsed.care_date:
        return None
    coverage_id = reference_id(insurance.get("coverage"), "Coverage")
    regime = None
    if coverage_id:
        coverage = await referenced(service, conn, "Coverage", coverage_id, path)
        regime = _code(coverage.get("type"), REGIME_SYSTEM)
    return Rights(True, None, "droits confirmés au point de soins", regime, coverage_id)


@dataclass(frozen=True)
class Insured:
    """What the store says of one insured for a care sheet: read once in the writing
    transaction and handed down, so the draft that names the Coverage and the engine that
    settles against it see the same rights (the signing and dispensing paths)."""

    patient: dict[str, Any]
    periods: tuple[CoveragePeriod, ...]
    subscribers: dict[str, dict[str, Any]]
    """The main insured of each rights period, by Coverage id."""
    exonerations: tuple[Exoneration, ...]
    provider: ProviderRead | None = None
    """The claim's provider, when read in the same statement (:func:`read_insured`)."""

    def coverage_on(self, books: Books, day: date) -> str | None:
        """The Coverage a claim for care on ``day`` names: the rights period in force, else
        the latest known one (the engine then says why rights are closed)."""
        rights = rights_on(beneficiary_of(self.patient), self.periods, day, books.rights)
        return rights.coverage_id or (self.periods[0].coverage_id if self.periods else None)

    def exonerations_on(self, day: date) -> list[Exoneration]:
        """The ALD/ALC in force on ``day``."""
        return [e for e in self.exonerations if e.in_force(day)]


@dataclass(frozen=True)
class ProviderRead:
    """A claim's provider as the store holds it: the resource and, for a practitioner, their
    roles (``PractitionerRole?practitioner=``)."""

    reference: str
    resource: dict[str, Any]
    roles: list[dict[str, Any]]


ROLES_OF = ("PractitionerRole", "practitioner")


def _provider_head(reference: str) -> tuple[str, str, list[tuple[str, str]]]:
    rtype, _, rid = reference.partition("/")
    return rtype, rid, [ROLES_OF] if rtype == "Practitioner" else []


def _provider_read(
    reference: str, found: tuple[dict[str, Any], list[list[dict[str, Any]]]] | NotFound | Gone
) -> ProviderRead | None:
    """None when not found or deleted: the engine's own read (:func:`provider_of`) says why."""
    if isinstance(found, (NotFound, Gone)):
        return None
    resource, pages = found
    return ProviderRead(reference, resource, pages[0] if pages else [])


async def _read_provider(
    service: FhirService, conn: AsyncConnection, reference: str
) -> ProviderRead:
    """The provider (a practitioner with their roles) in one statement; 422 naming
    ``Claim.provider`` when it does not exist, 410 when it was deleted."""
    (found,) = await reading.read_each_with_referrers(service, conn, [_provider_head(reference)])
    if isinstance(found, Gone):
        raise found
    read = _provider_read(reference, found)
    if read is None:
        raise _unprocessable(f"{reference} introuvable", "Claim.provider")
    return read


async def read_insured(
    service: FhirService, conn: AsyncConnection, patient_id: str, provider: str | None = None
) -> Insured:
    """The insured, their rights periods and exonerations: one statement (and a read of the
    main insured of a beneficiary's rights). ``provider`` (``Type/id``): the claim's provider
    too, in the same statement (``Insured.provider``), for the engine not to read it apart."""
    try:
        return await insured_record(service, conn, patient_id, provider)
    except NotFound:  # the patient's (a provider not found is said as Claim.provider)
        raise _unprocessable(f"Patient/{patient_id} introuvable", "Claim.patient") from None


async def insured_record(
    service: FhirService, conn: AsyncConnection, patient_id: str, provider: str | None = None
) -> Insured:
    """:func:`read_insured` for a screen: NotFound (or Gone) as the store raises it (the
    provider's is not raised: it is left unread)."""
    heads = [("Patient", patient_id, [INSURED_BY, EXONERATED_BY])]
    if provider is not None:
        heads.append(_provider_head(provider))
    found = await reading.read_each_with_referrers(service, conn, heads)
    if isinstance(found[0], (NotFound, Gone)):
        raise found[0]
    patient, (coverages, conditions) = found[0]
    periods, subscribers = await periods_of(service, conn, patient, coverages)
    read = _provider_read(provider, found[1]) if provider is not None else None
    return Insured(patient, periods, subscribers, exonerations_of(conditions), read)


INSURED_BY = ("Coverage", "beneficiary")
EXONERATED_BY = ("Condition", "patient")
"""What the searches ``Coverage?beneficiary=`` and ``Condition?patient=`` find."""


@dataclass(frozen=True)
class Loaded:
    sheet: CareSheet
    insured: Insured
    provider: dict[str, Any]

    def payee_account(self, payee: Payee, coverage_id: str | None) -> PayeeAccount:
        """Insured benefits go to the main insured's declared RIB; tiers payant to the
        provider's."""
        if payee == Payee.PROVIDER:
            return _account(Payee.PROVIDER, self.provider)
        patient = self.insured.patient
        main = self.insured.subscribers.get(coverage_id or "", patient)
        if main.get("deceasedDateTime") or main.get("deceasedBoolean"):
            main = patient  # survivors keep their rights and are paid themselves
        return _account(Payee.INSURED, main)


def _account(kind: Payee, resource: dict[str, Any]) -> PayeeAccount:
    reference = f"{resource['resourceType']}/{resource['id']}"
    return PayeeAccount(kind, reference, name_of(resource), iban_of(resource))


async def load(
    service: FhirService,
    conn: AsyncConnection,
    parsed: ParsedClaim,
    books: Books,
    received_on: date,
    insured: Insured | None = None,
    requests: Mapping[str, dict[str, Any]] | None = None,
) -> Loaded:
    """``insured``: the claim's insured as the caller read them in this transaction (not read
    again); None, or another patient, reads them. ``requests``: MedicationRequests the caller
    read in this transaction, by id (the dispense's)."""
    if insured is None or insured.patient.get("id") != parsed.patient_id:
        insured = await read_insured(service, conn, parsed.patient_id, parsed.provider_ref)
    provider, provider_resource = await provider_of(service, conn, parsed, insured.provider)
    validity = books.rights.prescription_validity_days(received_on)
    lines = []
    for index, line in enumerate(parsed.lines):
        found = None
        if line.request_id is not None:
            path = f"Claim.item[{index}].extension"
            known = (requests or {}).get(line.request_id)
            found = await prescription(
                service, conn, line.request_id, parsed.patient_id, validity, path, known
            )
        lines.append(
            Line(
                sequence=line.sequence,
                kind=line.kind,
                code=line.code,
                billed=line.billed,
                care_date=line.care_date,
                coefficient=line.coefficient,
                quantity=line.quantity,
                exoneration_id=line.condition_id,
                prescription=found,
                act=line.act,
            )
        )
    sheet = CareSheet(
        key=parsed.key,
        provider=provider,
        beneficiary=beneficiary_of(insured.patient),
        coverages=insured.periods,
        lines=tuple(lines),
        received_on=received_on,
        exonerations=insured.exonerations,
        payee=parsed.payee,
        guaranteed=await guaranteed_rights(service, conn, parsed),
        history=await history(conn, parsed, books, received_on, service.runtime.cache),
    )
    return Loaded(sheet, insured, provider_resource)
