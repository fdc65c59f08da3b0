"""Who is calling, and over which scheme: the one answer every decision uses (throttling, the
``Secure`` cookie flag, HSTS).

The client is the TCP peer. ``X-Forwarded-For`` and ``X-Forwarded-Proto`` are anybody's to
write, so they count only when the peer is one of ``FSE_TRUSTED_PROXIES``: then the client is
the right-most address of the ``X-Forwarded-For`` chain that is not itself a trusted proxy (the
entries left of it were written by the client and prove nothing). uvicorn is told not to
rewrite the peer (``fse/serve.py``), so this module is the only place the headers are read.
"""

from __future__ import annotations

from functools import lru_cache
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network, ip_address, ip_network
from typing import TYPE_CHECKING

from starlette.types import Scope

if TYPE_CHECKING:
    from fse.config import Settings

Address = IPv4Address | IPv6Address
Network = IPv4Network | IPv6Network
UNKNOWN = "unknown"
"""The client of a connection without a peer address (e.g. a Unix socket)."""


@lru_cache(maxsize=16)
def trusted_networks(setting: str) -> tuple[Network, ...]:
    """``FSE_TRUSTED_PROXIES`` parsed: addresses or CIDR blocks, comma-separated (ValueError on
    anything else, so a typo stops the server instead of silently trusting nobody)."""
    networks = []
    for entry in setting.split(","):
        if entry.strip():
            try:
                networks.append(ip_network(entry.strip(), strict=False))
            except ValueError as error:
                message = f"FSE_TRUSTED_PROXIES: {entry.strip()!r} is not an IP address or CIDR"
                raise ValueError(message) from error
    return tuple(networks)


def _parsed(text: str) -> Address | None:
    """An address as written in a peer or a forwarded header; IPv4-mapped IPv6 as IPv4."""
    try:
        found = ip_address(text.strip())
    except ValueError:
        return None
    if isinstance(found, IPv6Address) and found.ipv4_mapped is not None:
        return found.ipv4_mapped
    return found


def _trusted(address: Address | None, networks: tuple[Network, ...]) -> bool:
    return address is not None and any(address in network for network in networks)


def _header(scope: Scope, name: bytes) -> list[str]:
    """Every comma-separated value of a header, repeated headers joined in order."""
    values: list[str] = []
    for key, value in scope.get("headers") or ():
        if key.lower() == name:
            parts = (part.strip() for part in value.decode("latin-1").split(","))
            values.extend(part for part in parts if part)
    return values


def _peer(scope: Scope) -> tuple[str, Address | None]:
    client = scope.get("client")
    host = str(client[0]) if client else UNKNOWN
    parsed = _parsed(host)
    return (str(parsed) if parsed else host), parsed


def client_address(scope: Scope, settings: Settings) -> str:
    """The client's address: the peer, or what the trusted proxies in front of us saw."""
    host, peer = _peer(scope)
    networks = trusted_networks(settings.trusted_proxies)
    if not _trusted(peer, networks):
        return host
    for entry in reversed(_header(scope, b"x-forwarded-for")):
        hop = _parsed(entry)
        if hop is None:
            # not written by a proxy we trust: the last trusted hop is all we know
            return host
        host = str(hop)
        if not _trusted(hop, networks):
            return host
    return host  # the chain is all trusted proxies (or empty): the left-most one we saw


def client_scheme(scope: Scope, settings: Settings) -> str:
    """``https`` or ``http`` as the client used it: the connection's, or the right-most
    ``X-Forwarded-Proto`` (set by the proxy talking to us) when that proxy is trusted."""
    scheme = str(scope.get("scheme", "http"))
    networks = trusted_networks(settings.trusted_proxies)
    if not networks or not _trusted(_peer(scope)[1], networks):
        return scheme
    forwarded = [v.lower() for v in _header(scope, b"x-forwarded-proto") if v]
    if forwarded and forwarded[-1] in ("http", "https"):
        return forwarded[-1]
    return scheme
