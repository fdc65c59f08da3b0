"""Declared search parameters per resource type: what is indexed on write and can be searched.

Names and paths follow the FHIR R4 SearchParameter registry; ``targets`` lists the resource types
a reference parameter may point to (used for chaining and plain-id values).
"""

from __future__ import annotations

from dataclasses import dataclass

TOKEN, REFERENCE, DATE, STRING, QUANTITY, NUMBER = (
    "token",
    "reference",
    "date",
    "string",
    "quantity",
    "number",
)

PRACTITIONER_LIKE = ("Practitioner", "PractitionerRole", "Organization")


@dataclass(frozen=True)
class SearchParam:
    name: str
    type: str
    paths: tuple[str, ...]
    targets: tuple[str, ...] = ()
    typed: bool = False
    """Only references to one of ``targets`` are indexed: the FHIRPath keeps those alone
    (``target.where(resolve() is Patient)``); the path's other references are another
    parameter's (``target``, ``entity``)."""


def _p(
    name: str, type_: str, *paths: str, targets: tuple[str, ...] = (), typed: bool = False
) -> SearchParam:
    return SearchParam(name, type_, paths or (name,), targets, typed)


def _identifier() -> SearchParam:
    return _p("identifier", TOKEN, "identifier")


def _patient(path: str) -> tuple[SearchParam, ...]:
    """``patient`` and ``subject`` both search the subject reference (our subjects are insured)."""
    return (
        _p("patient", REFERENCE, path, targets=("Patient",)),
        _p("subject", REFERENCE, path, targets=("Patient",)),
    )


_NAME = (
    _p("name", STRING, "name.family", "name.given", "name.text", "name.prefix"),
    _p("family", STRING, "name.family"),
    _p("given", STRING, "name.given"),
)

SEARCH_PARAMS: dict[str, tuple[SearchParam, ...]] = {
    "Patient": (
        _identifier(),
        *_NAME,
        _p("birthdate", DATE, "birthDate"),
        _p("gender", TOKEN),
        _p("active", TOKEN),
        _p("telecom", TOKEN, "telecom"),
        _p("general-practitioner", REFERENCE, "generalPractitioner", targets=PRACTITIONER_LIKE),
        _p("organization", REFERENCE, "managingOrganization", targets=("Organization",)),
    ),
    "Coverage": (
        _identifier(),
        _p("patient", REFERENCE, "beneficiary", targets=("Patient",)),
        _p("beneficiary", REFERENCE, "beneficiary", targets=("Patient",)),
        _p("subscriber", REFERENCE, "subscriber", targets=("Patient",)),
        _p("payor", REFERENCE, "payor", targets=("Organization", "Patient")),
        _p("status", TOKEN),
        _p("type", TOKEN),
        _p("class-value", TOKEN, "class.value"),
        _p("period", DATE, "period"),
    ),
    "Practitioner": (
        _identifier(),
        *_NAME,
        _p("active", TOKEN),
        _p("gender", TOKEN),
    ),
    "PractitionerRole": (
        _identifier(),
        _p("practitioner", REFERENCE, "practitioner", targets=("Practitioner",)),
        _p("organization", REFERENCE, "organization", targets=("Organization",)),
        _p("role", TOKEN, "code"),
        _p("specialty", TOKEN, "specialty"),
        _p("active", TOKEN),
        _p("date", DATE, "period"),
    ),
    "Organization": (
        _identifier(),
        _p("name", STRING, "name", "alias"),
        _p("type", TOKEN),
        _p("active", TOKEN),
        _p("partof", REFERENCE, "partOf", targets=("Organization",)),
        _p("address-city", STRING, "address.city"),
    ),
    "Encounter": (
        _identifier(),
        *_patient("subject"),
        _p("status", TOKEN),
        _p("class", TOKEN, "class"),
        _p("type", TOKEN),
        _p("date", DATE, "period"),
        _p("participant", REFERENCE, "participant.individual", targets=PRACTITIONER_LIKE),
        _p("practitioner", REFERENCE, "participant.individual", targets=("Practitioner",)),
        _p("service-provider", REFERENCE, "serviceProvider", targets=("Organization",)),
    ),
    "ChargeItem": (
        _identifier(),
        *_patient("subject"),
        _p("status", TOKEN),
        _p("code", TOKEN),
        _p("context", REFERENCE, "context", targets=("Encounter",)),
        _p("entered-date", DATE, "enteredDate"),
        _p("occurrence", DATE, "occurrenceDateTime", "occurrencePeriod"),
        _p("performer-actor", REFERENCE, "performer.actor", targets=PRACTITIONER_LIKE),
        _p("quantity", QUANTITY, "quantity"),
        _p("factor-override", NUMBER, "factorOverride"),
        _p("price-override", QUANTITY, "priceOverride"),
    ),
    "MedicationRequest": (
        _identifier(),
        *_patient("subject"),
        _p("status", TOKEN),
        _p("intent", TOKEN),
        _p("code", TOKEN, "medicationCodeableConcept"),
        _p("authoredon", DATE, "authoredOn"),
        _p("requester", REFERENCE, "requester", targets=PRACTITIONER_LIKE),
        _p("encounter", REFERENCE, "encounter", targets=("Encounter",)),
        _p("group-identifier", TOKEN, "groupIdentifier"),
    ),
    "ServiceRequest": (
        _identifier(),
        *_patient("subject"),
        _p("status", TOKEN),
        _p("intent", TOKEN),
        _p("code", TOKEN),
        _p("category", TOKEN),
        _p("authored", DATE, "authoredOn"),
        _p("requester", REFERENCE, "requester", targets=PRACTITIONER_LIKE),
        _p("encounter", REFERENCE, "encounter", targets=("Encounter",)),
        _p("requisition", TOKEN),
    ),
    "MedicationDispense": (
        _identifier(),
        *_patient("subject"),
        _p("status", TOKEN),
        _p("code", TOKEN, "medicationCodeableConcept"),
        _p("prescription", REFERENCE, "authorizingPrescription", targets=("MedicationRequest",)),
        _p("whenhandedover", DATE, "whenHandedOver"),
        _p("performer", REFERENCE, "performer.actor", targets=PRACTITIONER_LIKE),
        _p("quantity", QUANTITY, "quantity"),
    ),
    "Claim": (
        _identifier(),
        _p("patient", REFERENCE, "patient", targets=("Patient",)),
        _p("status", TOKEN),
        _p("use", TOKEN),
        _p("created", DATE, "created"),
        _p("provider", REFERENCE, "provider", targets=PRACTITIONER_LIKE),
        _p("insurer", REFERENCE, "insurer", targets=("Organization",)),
        _p("facility", REFERENCE, "facility", targets=("Location", "Organization")),
        _p("encounter", REFERENCE, "item.encounter", targets=("Encounter",)),
        _p("priority", TOKEN),
    ),
    "ClaimResponse": (
        _identifier(),
        _p("patient", REFERENCE, "patient", targets=("Patient",)),
        _p("status", TOKEN),
        _p("outcome", TOKEN),
        _p("use", TOKEN),
        _p("created", DATE, "created"),
        _p("request", REFERENCE, "request", targets=("Claim",)),
        _p("insurer", REFERENCE, "insurer", targets=("Organization",)),
        _p("requestor", REFERENCE, "requestor", targets=PRACTITIONER_LIKE),
    ),
    "PaymentReconciliation": (
        _identifier(),
        _p("status", TOKEN),
        _p("outcome", TOKEN),
        _p("created", DATE, "created"),
        _p("request", REFERENCE, "request", targets=("Task",)),
        _p("requestor", REFERENCE, "requestor", targets=PRACTITIONER_LIKE),
        _p("payment-issuer", REFERENCE, "paymentIssuer", targets=("Organization",)),
        _p("payment-date", DATE, "paymentDate"),
    ),
    "ExplanationOfBenefit": (
        _identifier(),
        _p("patient", REFERENCE, "patient", targets=("Patient",)),
        _p("status", TOKEN),
        _p("created", DATE, "created"),
        _p("claim", REFERENCE, "claim", targets=("Claim",)),
        _p("provider", REFERENCE, "provider", targets=PRACTITIONER_LIKE),
        _p("coverage", REFERENCE, "insurance.coverage", targets=("Coverage",)),
    ),
    "CoverageEligibilityRequest": (
        _identifier(),
        _p("patient", REFERENCE, "patient", targets=("Patient",)),
        _p("status", TOKEN),
        _p("created", DATE, "created"),
        _p("provider", REFERENCE, "provider", targets=PRACTITIONER_LIKE),
    ),
    "CoverageEligibilityResponse": (
        _identifier(),
        _p("patient", REFERENCE, "patient", targets=("Patient",)),
        _p("status", TOKEN),
        _p("outcome", TOKEN),
        _p("created", DATE, "created"),
        _p("request", REFERENCE, "request", targets=("CoverageEligibilityRequest",)),
    ),
    "Provenance": (
        _p("target", REFERENCE, "target", targets=()),
        _p("patient", REFERENCE, "target", targets=("Patient",), typed=True),
        _p("recorded", DATE, "recorded"),
        _p("agent", REFERENCE, "agent.who", targets=(*PRACTITIONER_LIKE, "Patient", "Device")),
        _p("entity", REFERENCE, "entity.what", targets=()),
    ),
    "Condition": (
        _identifier(),
        *_patient("subject"),
        _p("code", TOKEN),
        _p("category", TOKEN),
        _p("clinical-status", TOKEN, "clinicalStatus"),
        _p("verification-status", TOKEN, "verificationStatus"),
        _p("recorded-date", DATE, "recordedDate"),
    ),
    "AuditEvent": (
        _p("date", DATE, "recorded"),
        _p("type", TOKEN),
        _p("subtype", TOKEN),
        _p("action", TOKEN),
        _p("outcome", TOKEN),
        _p("agent", REFERENCE, "agent.who", targets=(*PRACTITIONER_LIKE, "Patient", "Device")),
        _p("entity", REFERENCE, "entity.what", targets=()),
        _p("patient", REFERENCE, "entity.what", targets=("Patient",), typed=True),
    ),
}


def _conformance(*extra: SearchParam) -> tuple[SearchParam, ...]:
    """Parameters shared by the guide's conformance resources (FHIR R4 §3.1.1.5 'canonical')."""
    return (
        _p("url", TOKEN, "url"),
        _p("name", STRING, "name"),
        _p("title", STRING, "title"),
        _p("status", TOKEN),
        _p("version", TOKEN, "version"),
        _p("date", DATE, "date"),
        *extra,
    )


SEARCH_PARAMS.update(
    {
        "StructureDefinition": _conformance(
            _p("type", TOKEN, "type"),
            _p("base", TOKEN, "baseDefinition"),
            _p("derivation", TOKEN, "derivation"),
        ),
        "CodeSystem": _conformance(_p("code", TOKEN, "concept.code")),
        "ValueSet": _conformance(_p("reference", TOKEN, "compose.include.system")),
        "NamingSystem": (
            _p("name", STRING, "name"),
            _p("status", TOKEN),
            _p("kind", TOKEN),
            _p("date", DATE, "date"),
            _p("value", STRING, "uniqueId.value"),
            _p("id-type", TOKEN, "uniqueId.type"),
            _p("responsible", STRING, "responsible"),
        ),
    }
)

SUPPORTED_TYPES: tuple[str, ...] = tuple(SEARCH_PARAMS)

# Business identifiers that must not be held by two live resources of the same type: enforced by
# the unique_identifiers table, which also makes conditional create on them race-free.
UNIQUE_IDENTIFIER_TYPES: frozenset[str] = frozenset(
    {
        "Patient",
        "Practitioner",
        "PractitionerRole",
        "Organization",
        "Coverage",
        "Encounter",
        "ChargeItem",
        "MedicationRequest",
        "ServiceRequest",
        "MedicationDispense",
        "Claim",
        "ClaimResponse",
        "PaymentReconciliation",
        "ExplanationOfBenefit",
        "CoverageEligibilityRequest",
        "CoverageEligibilityResponse",
    }
)

PARAMS_BY_NAME: dict[str, dict[str, SearchParam]] = {
    rtype: {p.name: p for p in params} for rtype, params in SEARCH_PARAMS.items()
}


def search_param(resource_type: str, name: str) -> SearchParam | None:
    return PARAMS_BY_NAME.get(resource_type, {}).get(name)


FEW_VALUES = frozenset(
    {"status", "gender", "active", "intent", "priority", "use", "outcome", "category"}
    | {"type", "subtype", "action", "kind"}
)
"""Token parameters with a handful of values (a status, a gender, a kind of claim): a nation's
worth of resources shares each one."""


def has_few_values(resource_type: str, name: str) -> bool:
    """A token parameter of ``FEW_VALUES``: a search that has another criterion checks it on
    that criterion's candidates, never by listing every resource with the value."""
    param = search_param(resource_type, name)
    return param is not None and param.type == TOKEN and name in FEW_VALUES
