"""Professionals sign what they write: a Provenance carrying a detached JWS (ES256) over the
canonical JSON of the resources it names, verifiable by anyone with the public key published on
the signer's Practitioner. The platform signs dispense receipts the same way with its own key.

Canonical form (docs/security.md, "Signatures a stranger can check"): the JSON array of the
target resources, in target order, each without ``meta`` (the server stamps it), as RFC 8785
(JCS) bytes. The JWS header is ``{"alg": "ES256", "kid": <RFC 7638 thumbprint>}``.

Signatures made before JCS (a 16-character ``kid``, bytes by orjson with sorted keys, which
writes ``56.0`` where JCS writes ``56``) still verify: their header says which rule made them.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from datetime import datetime
from decimal import Decimal
from typing import Any

import orjson

from fse.crypto import jose
from fse.crypto.tokens import SigningKey

AUTHOR_SIGNATURE = {
    "system": "urn:iso-astm:E1762-95:2013",
    "code": "1.2.840.10065.1.12.1.1",
    "display": "Author's Signature",
}
LEGACY_KID_LENGTH = 16
"""Kids before RFC 7638 thumbprints (43 characters) were 16: such a header marks the old bytes."""


def _unstamped(resources: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{k: v for k, v in r.items() if k != "meta"} for r in resources]


def _as_parsed(value: Any) -> int | float:
    """A Decimal in the signed bytes as a JSON parser reads its text: a whole number written
    without a point (``2``) as an integer, any other (``150.00``, ``1E+2``) as the double
    nearest to it (``150.0``)."""
    if isinstance(value, Decimal) and value.is_finite():
        return int(value) if value.as_tuple().exponent == 0 else float(value)
    raise TypeError(f"{value!r} cannot be signed")


def canonical(resources: list[dict[str, Any]]) -> bytes:
    """The signed bytes: RFC 8785 JSON of the resources without ``meta``. Raises ValueError for
    content JCS cannot write (an integer beyond 2**53, NaN)."""
    return jose.canonical_json(_unstamped(resources))


def _legacy_canonical(resources: list[dict[str, Any]]) -> bytes:
    """The bytes signatures with a 16-character kid were made over (before JCS)."""
    return orjson.dumps(_unstamped(resources), default=_as_parsed, option=orjson.OPT_SORT_KEYS)


def sign(key: SigningKey, resources: list[dict[str, Any]]) -> str:
    """Compact JWS with detached payload: ``header..signature``."""
    return jose.sign_detached(key.ec_key, {"kid": key.kid}, canonical(resources))


def verify(jwk: Mapping[str, Any], jws: str, resources: list[dict[str, Any]]) -> bool:
    """Whether ``jws`` is the signature of ``jwk``'s key over ``resources`` (as stored: their
    ``meta`` is left out)."""
    try:
        kid = jose.header_of(jws).get("kid")
        legacy = isinstance(kid, str) and len(kid) == LEGACY_KID_LENGTH
        signed = _legacy_canonical(resources) if legacy else canonical(resources)
    except (jose.Refused, ValueError, TypeError):
        return False
    return jose.verify_detached(jwk, jws, signed) is not None


def provenance(
    key: SigningKey,
    signer: str,
    resources: list[dict[str, Any]],
    when: datetime,
    activity: str = "CREATE",
    version: int = 1,
) -> dict[str, Any]:
    """A Provenance naming each resource at the signed version (``Type/id/_history/1``: the
    resources are new), signed by ``signer``."""
    moment = when.isoformat(timespec="seconds")
    return {
        "resourceType": "Provenance",
        "target": [
            {"reference": f"{r['resourceType']}/{r['id']}/_history/{version}"} for r in resources
        ],
        "recorded": moment,
        "activity": {
            "coding": [
                {
                    "system": "http://terminology.hl7.org/CodeSystem/v3-DataOperation",
                    "code": activity,
                }
            ]
        },
        "agent": [{"who": {"reference": signer}}],
        "signature": [
            {
                "type": [AUTHOR_SIGNATURE],
                "when": moment,
                "who": {"reference": signer},
                "sigFormat": "application/jose",
                "targetFormat": "application/fhir+json",
                "data": base64.b64encode(sign(key, resources).encode()).decode(),
            }
        ],
    }


def jws_of(provenance_resource: dict[str, Any]) -> str:
    return base64.b64decode(provenance_resource["signature"][0]["data"]).decode()
