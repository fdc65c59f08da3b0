"""One error hierarchy for the FHIR API: each class knows its HTTP status and its issue type.

Every failure a client can see is rendered as an OperationOutcome by a single handler, with a
stable code from :class:`ErrorCode` in ``issue.details.coding`` and the element path in
``issue.expression`` (see docs/errors.md for the catalogue).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Self

from fhir_profiles.systems import ERROR_CODE_SYSTEM


class ErrorCode(StrEnum):
    """Stable error codes; never renumber or reuse one, clients branch on them."""

    MALFORMED_JSON = "FSE-0001"
    WRONG_RESOURCE_TYPE = "FSE-0002"
    INVALID_RESOURCE = "FSE-0003"
    UNKNOWN_RESOURCE_TYPE = "FSE-0004"
    NOT_FOUND = "FSE-0005"
    GONE = "FSE-0006"
    VERSION_CONFLICT = "FSE-0007"
    ID_MISMATCH = "FSE-0008"
    DUPLICATE_IDENTIFIER = "FSE-0009"
    METHOD_NOT_ALLOWED = "FSE-0010"
    PAYLOAD_TOO_LARGE = "FSE-0011"
    UNSUPPORTED_MEDIA_TYPE = "FSE-0012"
    UNKNOWN_SEARCH_PARAMETER = "FSE-0013"
    INVALID_SEARCH_PARAMETER = "FSE-0014"
    BUNDLE_TOO_LARGE = "FSE-0015"
    INVALID_BUNDLE = "FSE-0016"
    PRECONDITION_MISSING = "FSE-0017"
    MULTIPLE_MATCHES = "FSE-0018"
    RATE_LIMITED = "FSE-0019"
    UPDATE_CREATE_NOT_SUPPORTED = "FSE-0020"
    INVALID_REQUEST = "FSE-0021"
    UNKNOWN_OPERATION = "FSE-0022"
    PROFILE_VIOLATION = "FSE-0023"
    UNAUTHENTICATED = "FSE-0024"
    FORBIDDEN = "FSE-0025"
    CLAIM_NOT_ADJUDICABLE = "FSE-0026"
    REVIEW_NOT_ALLOWED = "FSE-0027"
    INVALID_SUBSCRIPTION = "FSE-0028"
    EXPORT_FAILED = "FSE-0029"
    REFERENCE_DATA_REFUSED = "FSE-0030"
    CIN_KEY_UNAVAILABLE = "FSE-0031"
    NOT_OWN_DATA = "FSE-0032"
    SIGNATURE_REQUIRED = "FSE-0033"
    DATE_IN_FUTURE = "FSE-0034"
    VALUE_OUT_OF_RANGE = "FSE-0035"
    INVALID_STRING = "FSE-0036"
    NESTING_TOO_DEEP = "FSE-0037"
    NOT_ACCEPTABLE = "FSE-0039"
    URI_TOO_LONG = "FSE-0040"
    REQUEST_TIMEOUT = "FSE-0041"
    DANGLING_REFERENCE = "FSE-0042"
    DUPLICATE_FULL_URL = "FSE-0043"
    NOT_READY = "FSE-0044"
    REDIS_DEGRADED = "FSE-0045"
    DATABASE_UNAVAILABLE = "FSE-0047"
    FEE_ABOVE_CEILING = "FSE-0048"
    INTERNAL_ERROR = "FSE-9999"


ERROR_DESCRIPTIONS: dict[ErrorCode, str] = {
    ErrorCode.MALFORMED_JSON: "The body is not valid JSON, or not a JSON object.",
    ErrorCode.WRONG_RESOURCE_TYPE: "resourceType is missing or differs from the URL.",
    ErrorCode.INVALID_RESOURCE: "The resource breaks the FHIR R4B model; see the path.",
    ErrorCode.UNKNOWN_RESOURCE_TYPE: "This server does not serve that resource type.",
    ErrorCode.NOT_FOUND: "No resource (or version) with that id.",
    ErrorCode.GONE: "The resource was deleted; its history is still readable.",
    ErrorCode.VERSION_CONFLICT: "If-Match names a version that is no longer current.",
    ErrorCode.ID_MISMATCH: "The id in the body differs from the id in the URL.",
    ErrorCode.DUPLICATE_IDENTIFIER: "Another resource of this type holds that identifier.",
    ErrorCode.METHOD_NOT_ALLOWED: "That HTTP method is not supported at that URL.",
    ErrorCode.PAYLOAD_TOO_LARGE: "The request body is over the size limit.",
    ErrorCode.UNSUPPORTED_MEDIA_TYPE: "Send application/fhir+json (or application/json).",
    ErrorCode.UNKNOWN_SEARCH_PARAMETER: "Unknown search parameter under Prefer: handling=strict.",
    ErrorCode.INVALID_SEARCH_PARAMETER: "A search parameter value cannot be understood.",
    ErrorCode.BUNDLE_TOO_LARGE: "The Bundle has more entries than the server accepts.",
    ErrorCode.INVALID_BUNDLE: "The Bundle is not a usable transaction or batch.",
    ErrorCode.PRECONDITION_MISSING: "The operation needs a header or parameter that is missing.",
    ErrorCode.MULTIPLE_MATCHES: "A conditional request matched more than one resource.",
    ErrorCode.RATE_LIMITED: "Too many requests; retry after the Retry-After delay.",
    ErrorCode.UPDATE_CREATE_NOT_SUPPORTED: "Ids are assigned by the server: create with POST.",
    ErrorCode.INVALID_REQUEST: "The request is not well formed (see diagnostics).",
    ErrorCode.UNKNOWN_OPERATION: "No such operation on this resource type.",
    ErrorCode.PROFILE_VIOLATION: "The resource breaks a rule of the AMO guide; see the path.",
    ErrorCode.UNAUTHENTICATED: "No valid access token: get one at /auth/token.",
    ErrorCode.FORBIDDEN: "The token's scopes do not allow this interaction on this type.",
    ErrorCode.CLAIM_NOT_ADJUDICABLE: (
        "The claim lacks what adjudication needs, or names unknown resources; see the path."
    ),
    ErrorCode.REVIEW_NOT_ALLOWED: (
        "Only a claim held for review can be released or rejected, once."
    ),
    ErrorCode.INVALID_SUBSCRIPTION: (
        "The Subscription asks for a channel, endpoint or criteria this server does not serve."
    ),
    ErrorCode.EXPORT_FAILED: "The bulk export did not finish and kept no file; start it again.",
    ErrorCode.REFERENCE_DATA_REFUSED: (
        "The tariff version or medicines list cannot be published; see the diagnostics."
    ),
    ErrorCode.CIN_KEY_UNAVAILABLE: (
        "A stored CIN cannot be opened with the configured keys; see docs/security.md."
    ),
    ErrorCode.NOT_OWN_DATA: (
        "The role may use this type, but not this resource: another professional's, "
        "or an insured not looked up."
    ),
    ErrorCode.SIGNATURE_REQUIRED: (
        "A claim submitted for a professional needs that professional's valid signature "
        "(a Provenance)."
    ),
    ErrorCode.DATE_IN_FUTURE: (
        "A date of care, creation or dispense is later than now; see the path."
    ),
    ErrorCode.VALUE_OUT_OF_RANGE: (
        "A date, number, amount or identifier is outside what this server stores; see the path."
    ),
    ErrorCode.INVALID_STRING: (
        "A string holds a control character or is over 1,048,576 characters; see the path."
    ),
    ErrorCode.NESTING_TOO_DEEP: "The JSON body nests objects and arrays over 64 levels deep.",
    ErrorCode.NOT_ACCEPTABLE: (
        "Only application/fhir+json (FHIR R4) is served: see Accept and _format."
    ),
    ErrorCode.URI_TOO_LONG: (
        "The URL is over the length limit; send the search as a POST _search form."
    ),
    ErrorCode.REQUEST_TIMEOUT: (
        "The request body did not arrive in full in time (Content-Length larger than the body?)."
    ),
    ErrorCode.DANGLING_REFERENCE: (
        "A reference names a resource that is neither stored nor in the Bundle; see the path."
    ),
    ErrorCode.DUPLICATE_FULL_URL: "Two entries of the Bundle have the same fullUrl (bdl-7).",
    ErrorCode.NOT_READY: (
        "The platform cannot serve requests now: the database does not answer (GET /ready)."
    ),
    ErrorCode.REDIS_DEGRADED: (
        "Redis does not answer: rate limits, cache and events run in-process in each worker "
        "until it does (GET /ready)."
    ),
    ErrorCode.DATABASE_UNAVAILABLE: (
        "The database cannot be reached; nothing was done. Retry after the Retry-After delay."
    ),
    ErrorCode.FEE_ABOVE_CEILING: (
        "A line bills more than the fee ceiling of its key letter on the date of care "
        "(reimbursement/data/fee-ceilings.json); nothing was stored. See the path."
    ),
    ErrorCode.INTERNAL_ERROR: "Unexpected server error; nothing was stored.",
}


@dataclass(frozen=True)
class Issue:
    code: ErrorCode
    diagnostics: str
    expression: tuple[str, ...] = ()
    severity: str = "error"
    issue_type: str = "invalid"

    def to_json(self) -> dict[str, Any]:
        issue: dict[str, Any] = {
            "severity": self.severity,
            "code": self.issue_type,
            "details": {
                "coding": [{"system": ERROR_CODE_SYSTEM, "code": self.code.value}],
                "text": ERROR_DESCRIPTIONS[self.code],
            },
            "diagnostics": self.diagnostics,
        }
        if self.expression:
            issue["expression"] = list(self.expression)
        return issue


def operation_outcome(issues: list[Issue] | tuple[Issue, ...]) -> dict[str, Any]:
    return {"resourceType": "OperationOutcome", "issue": [i.to_json() for i in issues]}


@dataclass
class FhirError(Exception):
    """Base of every client-visible failure; subclasses fix status, issue type and code."""

    diagnostics: str
    expression: tuple[str, ...] = ()
    code: ErrorCode = ErrorCode.INVALID_REQUEST
    issues: list[Issue] = field(default_factory=list)
    headers: dict[str, str] = field(default_factory=dict)
    status = 400
    issue_type = "invalid"

    def __post_init__(self) -> None:
        super().__init__(self.diagnostics)
        if not self.issues:
            self.issues = [
                Issue(self.code, self.diagnostics, self.expression, issue_type=self.issue_type)
            ]

    def outcome(self) -> dict[str, Any]:
        return operation_outcome(self.issues)

    @classmethod
    def of(cls, issues: Sequence[Issue], code: ErrorCode | None = None) -> Self:
        """The error carrying ``issues`` (one per offending element); its text and path are the
        first issue's, its code ``code`` or else the first issue's."""
        first = issues[0]
        return cls(
            first.diagnostics, first.expression, code=code or first.code, issues=list(issues)
        )


class BadRequest(FhirError):
    status = 400
    issue_type = "invalid"


class NotFound(FhirError):
    status = 404
    issue_type = "not-found"

    def __init__(self, diagnostics: str, code: ErrorCode = ErrorCode.NOT_FOUND) -> None:
        super().__init__(diagnostics, code=code)


class MethodNotAllowed(FhirError):
    status = 405
    issue_type = "not-supported"


class Conflict(FhirError):
    status = 409
    issue_type = "conflict"


class Gone(FhirError):
    status = 410
    issue_type = "deleted"

    def __init__(self, diagnostics: str) -> None:
        super().__init__(diagnostics, code=ErrorCode.GONE)


class PreconditionFailed(FhirError):
    status = 412
    issue_type = "conflict"


class PayloadTooLarge(FhirError):
    status = 413
    issue_type = "too-costly"


class UnsupportedMediaType(FhirError):
    status = 415
    issue_type = "not-supported"


class Unprocessable(FhirError):
    """A well-formed resource that breaks the model or a profile (FHIR: 422)."""

    status = 422
    issue_type = "processing"


class Unauthenticated(FhirError):
    status = 401
    issue_type = "login"


class Forbidden(FhirError):
    status = 403
    issue_type = "forbidden"


class TooManyRequests(FhirError):
    status = 429
    issue_type = "throttled"


class RequestTimeout(FhirError):
    status = 408
    issue_type = "timeout"


class NotAcceptable(FhirError):
    status = 406
    issue_type = "not-supported"


class UriTooLong(FhirError):
    status = 414
    issue_type = "too-long"


class InternalError(FhirError):
    """The server failed where it could say so honestly: the diagnostics tell what was stored
    (nothing, for a rolled-back transaction or a failed batch entry)."""

    status = 500
    issue_type = "exception"


class Unavailable(FhirError):
    """The database (or another service the answer needs) cannot be reached: a transient
    refusal, nothing done, with when to retry."""

    status = 503
    issue_type = "transient"
