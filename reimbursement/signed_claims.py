"""A claim a professional submits with their own session (later: their software's token) is
theirs and signed by them; only a CNSS system client submits for others.

The body of ``Claim/$submit`` is then a Bundle (or Parameters) holding the Claim, with the ``id``
its software chose, and a Provenance in the format the doctor's screen writes
(``fse.crypto.provenance``): target ``Claim/<id>/_history/1``, signed by the caller's
Practitioner with the key published on it, a detached JWS (ES256) over the canonical Claim.
The Claim must name its patient, provider and coverage by literal reference, so that what is
stored is byte for byte what was signed; the Provenance is stored with it, in the settlement's
transaction, and verifies later like any signed care sheet.
"""

from __future__ import annotations

import copy
from typing import Any

from fse.crypto.provenance import jws_of, verify
from fse.errors import ErrorCode, FhirError, Forbidden
from fse.fhir_api.guard import Guard
from fse.fhir_api.interactions import FhirService
from fse.store.query import ID_RE
from reimbursement.context import resolve_identifiers


def _refused(message: str, path: str) -> FhirError:
    return Forbidden(message, (path,), code=ErrorCode.SIGNATURE_REQUIRED)


def provenance_in(body: dict[str, Any]) -> dict[str, Any] | None:
    """The Provenance a $submit Bundle or Parameters carries beside the Claim."""
    if body.get("resourceType") == "Bundle":
        found = [e.get("resource") for e in body.get("entry") or [] if isinstance(e, dict)]
    elif body.get("resourceType") == "Parameters":
        found = [p.get("resource") for p in body.get("parameter") or [] if isinstance(p, dict)]
    else:
        return None
    return next(
        (r for r in found if isinstance(r, dict) and r.get("resourceType") == "Provenance"), None
    )


async def checked_signature(
    fhir: FhirService, guard: Guard, body: dict[str, Any], claim: dict[str, Any]
) -> dict[str, Any]:
    """The caller's Provenance over ``claim``, after checking that the claim is theirs (403
    ``FSE-0032``) and that they signed it (403 ``FSE-0033``)."""
    assert guard.person is not None
    async with fhir.store.snapshot() as conn:
        resolved = copy.deepcopy(claim)
        await resolve_identifiers(fhir, conn, resolved)
        await guard.check_new(conn, "Claim", resolved)
    provenance = provenance_in(body)
    if provenance is None:
        raise _refused(
            "a claim submitted with a professional's session must carry their signature: "
            "send a Bundle with the Claim and a Provenance signed with your key",
            "Provenance",
        )
    if resolved != claim:
        raise _refused(
            "a signed claim names its patient, provider, coverage and insurer by literal "
            "reference (Type/id), so that what is stored is what was signed",
            "Claim.provider",
        )
    claim_id = claim.get("id")
    if not isinstance(claim_id, str) or not ID_RE.match(claim_id):
        raise _refused("a signed claim carries the id its signature names", "Claim.id")
    signer = guard.person.practitioner
    targets = [t.get("reference") for t in provenance.get("target") or [] if isinstance(t, dict)]
    signature = (provenance.get("signature") or [{}])[0]
    who = (signature.get("who") or {}).get("reference") if isinstance(signature, dict) else None
    if targets != [f"Claim/{claim_id}/_history/1"]:
        raise _refused(
            f"the Provenance must target Claim/{claim_id}/_history/1", "Provenance.target"
        )
    if signer is None or who != signer or guard.person.signing_jwk is None:
        raise _refused(f"the signature must be yours ({signer})", "Provenance.signature.who")
    try:
        valid = verify(guard.person.signing_jwk, jws_of(provenance), [claim])
    except (KeyError, IndexError, TypeError, ValueError, UnicodeDecodeError):
        valid = False
    if not valid:
        raise _refused(
            "the signature does not verify with your published key over this Claim",
            "Provenance.signature.data",
        )
    return provenance
