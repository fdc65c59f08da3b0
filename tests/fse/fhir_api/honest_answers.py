"""The rule of the issue "Never a 500, never a lie", as one check shared by the fuzzer and the
replay of its regressions: no 5xx, and every /fhir refusal is a FHIR OperationOutcome with a
stable code (a client must never have to parse a framework's or a server's own error page)."""

from __future__ import annotations

import orjson

from fse.errors import ERROR_CODE_SYSTEM


def dishonesty(path: str, status: int, content_type: str | None, body: bytes) -> str | None:
    """Why this answer breaks the rule, or None when it keeps it."""
    if status >= 500:
        return f"server error {status}: {body[:300]!r}"
    if status < 400 or not path.startswith("/fhir"):
        return None  # /auth/token answers RFC 6749 errors, not OperationOutcomes
    if not (content_type or "").startswith("application/fhir+json"):
        return f"{status} with Content-Type {content_type!r}, not application/fhir+json"
    try:
        outcome = orjson.loads(body)
    except orjson.JSONDecodeError:
        return f"{status} whose body is not JSON: {body[:300]!r}"
    if not isinstance(outcome, dict) or outcome.get("resourceType") != "OperationOutcome":
        return f"{status} whose body is not an OperationOutcome: {body[:300]!r}"
    codings = [
        coding
        for issue in outcome.get("issue", [])
        for coding in (issue.get("details") or {}).get("coding", [])
    ]
    if not any(c.get("system") == ERROR_CODE_SYSTEM and c.get("code") for c in codings):
        return f"{status} OperationOutcome without a stable FSE error code: {body[:300]!r}"
    return None
