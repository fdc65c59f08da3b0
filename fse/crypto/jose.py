"""The platform's JOSE, in one place and through a maintained library (joserfc): ES256 compact
JWS (RFC 7515), its detached form (Appendix F), JWTs (RFC 7519), key ids as RFC 7638 JWK
thumbprints, and the RFC 8785 canonical JSON that detached signatures cover.

Every signature the platform makes or checks goes through here (access tokens, Provenance
signatures, dispense receipts), so another implementation needs only the rules in
docs/security.md ("Signatures a stranger can check") to check them. Imports nothing of ours.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import math
from collections.abc import Callable, Mapping
from decimal import Decimal
from typing import Any

import orjson
import rfc8785
from cryptography.hazmat.primitives.asymmetric import ec
from joserfc import jws
from joserfc.errors import ClaimError, ExpiredTokenError, JoseError
from joserfc.jwk import ECKey
from joserfc.jwt import JWTClaimsRegistry

ALG = "ES256"
CLOCK_LEEWAY_SECONDS = 30
"""Allowed on exp, nbf and iat: the clocks of the servers that issue and check tokens differ."""

_REGISTRY = jws.JWSRegistry(algorithms=[ALG])
# A detached payload is ours (a care sheet's resources), not a stranger's: joserfc's default
# ceiling (128 kB) would refuse a large sheet.
_REGISTRY.max_payload_length = 64 * 1024 * 1024


class Refused(Exception):
    """A JWS or JWT that does not verify; the message says why (sent in WWW-Authenticate)."""


def jose_key(key: ec.EllipticCurvePrivateKey | ec.EllipticCurvePublicKey) -> ECKey:
    return ECKey.import_key(key)


def thumbprint(key: ECKey) -> str:
    """The RFC 7638 JWK thumbprint (SHA-256, base64url): the key id of every platform key."""
    return key.thumbprint()


def public_jwk(key: ECKey) -> dict[str, str]:
    """The public JWK as published (JWKS, Practitioner), its ``kid`` the thumbprint."""
    public = key.as_dict(private=False)
    return {
        "kty": "EC",
        "crv": str(public["crv"]),
        "x": str(public["x"]),
        "y": str(public["y"]),
        "use": "sig",
        "alg": ALG,
        "kid": thumbprint(key),
    }


def with_thumbprint(jwk: dict[str, str]) -> dict[str, str]:
    """A stored public JWK with its ``kid`` recomputed (keys made before RFC 7638 ids). Every
    signed-in request reads its person's key: the thumbprint is hashed from the JWK's members,
    not by importing the key (an EC point check, ~70 µs), and remembered per key."""
    return {**jwk, "kid": _ec_thumbprint(jwk["crv"], jwk["x"], jwk["y"])}


@functools.lru_cache(maxsize=4096)
def _ec_thumbprint(crv: str, x: str, y: str) -> str:
    """RFC 7638 for an EC key: SHA-256 over ``{"crv","kty","x","y"}`` in that order, no spaces."""
    members = orjson.dumps({"crv": crv, "kty": "EC", "x": x, "y": y})
    return base64.urlsafe_b64encode(hashlib.sha256(members).digest()).rstrip(b"=").decode()


def _plain(value: Any) -> Any:
    """JSON values as JCS takes them: a Decimal becomes the IEEE double RFC 8785 defines
    numbers as (``150.00``, ``150.0`` and ``150`` are one number, written ``150``), for the
    canonical form only: what is stored and shown keeps its exact digits."""
    if isinstance(value, Mapping):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(item) for item in value]
    if isinstance(value, Decimal):
        if not value.is_finite():
            raise ValueError(f"{value} is not a JSON number")
        return float(value)
    return value


def canonical_json(value: Any) -> bytes:
    """RFC 8785 (JCS) bytes of ``value``: keys sorted by UTF-16 code units, no whitespace,
    numbers as ECMAScript prints doubles, UTF-8. Raises ValueError for what JCS cannot encode
    (NaN, infinities, integers beyond 2**53)."""
    return rfc8785.dumps(_plain(value))


def sign_compact(key: ECKey, header: dict[str, Any], payload: bytes) -> str:
    """``BASE64URL(header).BASE64URL(payload).BASE64URL(signature)``, ES256."""
    return jws.serialize_compact({"alg": ALG, **header}, payload, key, registry=_REGISTRY)


def sign_detached(key: ECKey, header: dict[str, Any], payload: bytes) -> str:
    """The compact JWS with its payload left out (``header..signature``, RFC 7515 Appendix F):
    the verifier rebuilds the payload from the content it already has."""
    return jws.detach_content(sign_compact(key, header, payload))


def _parsed(compact: str, payload: bytes | None = None) -> tuple[jws.CompactSignature, dict]:
    """The JWS and its protected header, not verified; Refused unless the header is an object
    (joserfc takes any JSON value that contains "alg": ``"alg"`` or ``["alg"]``)."""
    try:
        found = jws.extract_compact(compact.encode(), payload, registry=_REGISTRY)
        header = found.headers()
    except (JoseError, ValueError, UnicodeError) as exc:
        raise Refused("malformed token") from exc
    if not isinstance(header, dict):
        raise Refused("malformed token")
    return found, header


def header_of(compact: str) -> dict[str, Any]:
    """The protected header of a compact JWS (not verified: to choose the key)."""
    return _parsed(compact)[1]


def verify_detached(
    key: ECKey | Mapping[str, Any], compact: str, payload: bytes
) -> dict[str, Any] | None:
    """The protected header when ``compact`` (``header..signature``) is ``key``'s ES256
    signature over ``payload``; None otherwise (including a malformed JWS or key)."""
    try:
        parts = compact.split(".")
        if len(parts) != 3 or parts[1]:
            return None  # an attached payload would be verified instead of ours
        public = key if isinstance(key, ECKey) else ECKey.import_key(dict(key))
        found, header = _parsed(compact, payload)
        if "b64" in header or not jws.validate_compact(found, public, registry=_REGISTRY):
            return None
    except (Refused, JoseError, ValueError, TypeError, KeyError, UnicodeError):
        return None
    return header


def encode_jwt(key: ECKey, typ: str, claims: dict[str, Any]) -> str:
    header = {"alg": ALG, "typ": typ, "kid": thumbprint(key)}
    return sign_compact(key, header, orjson.dumps(claims))


def decode_jwt(
    find_key: Callable[[str], ECKey | None],
    token: str,
    types: frozenset[str],
    issuer: str,
    audience: str,
    now: float | None = None,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """(header, claims) of a JWT signed ES256 by the key its ``kid`` names, whose ``typ`` is
    one of ``types``, for ``audience`` from ``issuer``, with ``exp`` (required), ``nbf`` and
    ``iat`` checked with ``CLOCK_LEEWAY_SECONDS``; or Refused saying why not."""
    found, header = _parsed(token)
    kid = header.get("kid")
    key = find_key(kid) if isinstance(kid, str) else None
    if header.get("alg") != ALG or key is None:
        raise Refused("token not signed by this platform (unknown or retired key)")
    try:
        valid = "b64" not in header and jws.validate_compact(found, key, registry=_REGISTRY)
    except (JoseError, ValueError) as exc:
        raise Refused("bad signature") from exc
    if not valid:
        raise Refused("bad signature")
    if header.get("typ") not in types:
        raise Refused(f"not an access token (typ not {' or '.join(sorted(types))})")
    try:
        claims = orjson.loads(found.payload)
    except orjson.JSONDecodeError as exc:
        raise Refused("malformed token") from exc
    if not isinstance(claims, dict):
        raise Refused("malformed token")
    registry = JWTClaimsRegistry(
        now=math.floor(now) if now is not None else None,
        leeway=CLOCK_LEEWAY_SECONDS,
        exp={"essential": True},
        iss={"essential": True, "value": issuer},
        aud={"essential": True, "value": audience},
    )
    try:
        registry.validate(claims)
    except ExpiredTokenError as exc:
        raise Refused("token expired") from exc
    except ClaimError as exc:
        if exc.claim == "exp":
            raise Refused("token expired") from exc
        if exc.claim in {"iss", "aud"} or "iss" in exc.claim or "aud" in exc.claim:
            raise Refused("token issued for another audience") from exc
        raise Refused(f"token refused: {exc.description}") from exc
    return header, claims
