"""The client's address and scheme: X-Forwarded-For/-Proto count only from trusted proxies."""

from __future__ import annotations

import pytest
from pydantic import ValidationError
from starlette.types import Scope

from fse.addresses import client_address, client_scheme
from fse.config import Settings

PROXIES = Settings(trusted_proxies="10.9.0.1, 10.8.0.0/16, 2001:db8:f::/48")
NOBODY = Settings(trusted_proxies="")


def scope(peer: str | None, *headers: tuple[str, str], scheme: str = "http") -> Scope:
    return {
        "type": "http",
        "scheme": scheme,
        "client": (peer, 40000) if peer else None,
        "headers": [(k.lower().encode(), v.encode("latin-1")) for k, v in headers],
    }


def test_without_trusted_proxies_the_peer_is_the_client() -> None:
    forged = scope("127.0.0.1", ("X-Forwarded-For", "198.51.100.7"))
    assert client_address(forged, NOBODY) == "127.0.0.1"
    assert client_address(forged, PROXIES) == "127.0.0.1"  # loopback is not trusted by default


def test_a_trusted_proxy_names_the_right_most_untrusted_hop() -> None:
    via = scope("10.9.0.1", ("X-Forwarded-For", "evil, 203.0.113.9, 198.51.100.7, 10.8.4.2"))
    # 10.8.4.2 is a trusted proxy too; 198.51.100.7 is what it saw; the rest the client wrote
    assert client_address(via, PROXIES) == "198.51.100.7"


def test_repeated_headers_are_one_chain() -> None:
    via = scope("10.9.0.1", ("X-Forwarded-For", "203.0.113.9"), ("X-Forwarded-For", "198.51.100.7"))
    assert client_address(via, PROXIES) == "198.51.100.7"


def test_a_chain_of_trusted_proxies_only_and_no_chain_at_all() -> None:
    assert client_address(scope("10.9.0.1", ("X-Forwarded-For", "10.8.0.5")), PROXIES) == (
        "10.8.0.5"
    )
    assert client_address(scope("10.9.0.1"), PROXIES) == "10.9.0.1"


def test_an_entry_no_proxy_would_write_stops_the_walk_at_the_last_trusted_hop() -> None:
    via = scope("10.9.0.1", ("X-Forwarded-For", "198.51.100.7, not-an-address, 10.8.4.2"))
    assert client_address(via, PROXIES) == "10.8.4.2"


def test_ipv6_is_canonical_and_ipv4_mapped_peers_are_ipv4() -> None:
    mapped = scope("::ffff:10.9.0.1", ("X-Forwarded-For", "2001:DB8:0:0::1"))
    assert client_address(mapped, PROXIES) == "2001:db8::1"
    via_v6 = scope("2001:db8:f::2", ("X-Forwarded-For", "198.51.100.7"))
    assert client_address(via_v6, PROXIES) == "198.51.100.7"
    assert client_address(scope("::ffff:192.0.2.1"), NOBODY) == "192.0.2.1"


def test_no_peer_is_unknown() -> None:
    assert client_address(scope(None, ("X-Forwarded-For", "198.51.100.7")), PROXIES) == "unknown"


def test_the_scheme_comes_from_a_trusted_proxy_only() -> None:
    https = ("X-Forwarded-Proto", "https")
    assert client_scheme(scope("127.0.0.1", https), PROXIES) == "http"
    assert client_scheme(scope("10.9.0.1", https), PROXIES) == "https"
    # the right-most value is the one the proxy talking to us wrote
    assert client_scheme(scope("10.9.0.1", ("X-Forwarded-Proto", "http, https")), PROXIES) == (
        "https"
    )
    assert client_scheme(scope("10.9.0.1", ("X-Forwarded-Proto", "gopher")), PROXIES) == "http"
    assert client_scheme(scope("127.0.0.1", scheme="https"), NOBODY) == "https"


@pytest.mark.parametrize("setting", ["10.0.0.300", "proxy.example", "10.0.0.0/33"])
def test_a_mistyped_trusted_proxy_stops_the_server(setting: str) -> None:
    with pytest.raises(ValidationError, match="FSE_TRUSTED_PROXIES"):
        Settings(trusted_proxies=setting)
