"""Security headers on every answer of the app, no-store where personal data may show, HSTS over
https only; no inline code anywhere the Content-Security-Policy would have to allow it; the
stylesheets and scripts ship in the package."""

from __future__ import annotations

import re
import tomllib
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from fastapi.routing import iter_route_contexts
from starlette.routing import Mount

from fse.security.access import page_allows, page_roles
from fse.security.users import Role
from fse.web.charts import bar_chart
from fse.web.templates import TEMPLATES
from tests.conftest import Platform
from tests.pharmacy.test_pages import setting, signed_in
from tests.reimbursement.demo import DR_BENALI, PHARMACIST, load_demo

ROOT = Path(__file__).resolve().parents[3]
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "object-src 'none'; base-uri 'self'; form-action 'self'; frame-ancestors 'none'"
)
ALWAYS = {
    "content-security-policy": CSP,
    "x-frame-options": "DENY",
    "x-content-type-options": "nosniff",
    "referrer-policy": "same-origin",
}
PARAMETERS = {"number": "FSE-2026-000000001-00", "response_id": "inconnue", "key": "inconnue"}
MOUNT_PROBES = {"/static/swagger": "swagger-ui.css", "/static/fse": "fse.css"}
CACHEABLE = {
    "/openapi.json",
    "/favicon.ico",
    "/.well-known/smart-configuration",
    "/.well-known/jwks.json",
}


def web_routes(app: FastAPI) -> Iterator[tuple[str, str]]:
    """(method, URL) of every route outside /fhir, path parameters filled in; one file of each
    static mount."""
    for context in iter_route_contexts(app.routes):
        path = context.path or ""
        if path.startswith("/fhir"):
            continue
        if isinstance(context.original_route, Mount):
            yield "GET", f"{path}/{MOUNT_PROBES[path]}"
            continue
        url = re.sub(r"\{(\w+)(:\w+)?\}", lambda m: PARAMETERS[m[1]], path)
        for method in sorted(getattr(context.original_route, "methods", None) or {"GET"}):
            if method != "HEAD":
                yield method, url


def role_of(url: str) -> Role:
    """Who may see the page (the access model); the other pages are anyone's (an agent)."""
    roles = page_roles(url) or ()
    return next((role for role in roles if isinstance(role, Role)), Role.CNSS_AGENT)


def assert_protected(response: httpx.Response, method: str, url: str) -> None:
    where = f"{method} {url} ({response.status_code})"
    assert response.status_code < 500, where
    for name, value in ALWAYS.items():
        assert response.headers.get(name) == value, (where, name)
    assert "strict-transport-security" not in response.headers, where  # plain http here
    cache = response.headers.get("cache-control", "")
    if url.startswith("/static/") or url in CACHEABLE:
        assert "no-store" not in cache, where
    else:
        assert "no-store" in cache, where
    if response.headers.get("content-type", "").startswith("text/html"):
        assert "no-store" in cache, where


async def test_every_page_answers_with_the_security_headers(
    platform: Platform, client: httpx.AsyncClient, browser: httpx.AsyncClient
) -> None:
    refs = await load_demo(client)
    practitioners = {Role.PRESCRIBER: refs[DR_BENALI], Role.PHARMACIST: refs[PHARMACIST]}
    routes = list(web_routes(platform.app))
    urls = {url for _method, url in routes}
    assert {"/connexion", "/medecin", "/pharmacie/recherche", "/cnss", "/docs"} <= urls
    for method, url in routes:  # not signed in: most pages redirect to the login page
        answer = await browser.request(method, url)
        assert_protected(answer, method, url)
        if method == "GET" and not page_allows(url, None):
            assert answer.status_code == 303 and answer.headers["location"].startswith(
                "/connexion?suite="
            )
    for role in (Role.PRESCRIBER, Role.PHARMACIST, Role.CNSS_AGENT):
        async with signed_in(platform, practitioners.get(role), role) as user:
            for method, url in routes:
                if role_of(url) is role:
                    assert_protected(await user.request(method, url), method, url)


async def test_personal_data_is_not_stored_public_documents_may_be(
    platform: Platform, client: httpx.AsyncClient, browser: httpx.AsyncClient
) -> None:
    for url in ("/fhir/Patient", "/fhir/Claim?_count=1"):
        assert (await client.get(url)).headers["cache-control"] == "no-store"
        refused = await browser.get(url)  # 401 without a token
        assert refused.status_code == 401 and refused.headers["cache-control"] == "no-store"
    for url in ("/", "/connexion", "/docs"):
        assert (await browser.get(url)).headers["cache-control"] == "no-store"
    for url in ("/fhir/metadata", "/static/fse/fse.css"):
        answer = await browser.get(url)
        assert answer.status_code == 200 and "cache-control" not in answer.headers, url
        assert answer.headers["x-content-type-options"] == "nosniff"
    # the JWKS may be kept, a while: a rotation's new key shows within five minutes
    jwks = await browser.get("/.well-known/jwks.json")
    assert jwks.headers["cache-control"] == "public, max-age=300"
    assert (await browser.get("/static/fse/fse.css")).headers["content-type"].startswith("text/css")
    # a route's own no-store stays as it was written
    token = await browser.post("/auth/token", data={"grant_type": "client_credentials"})
    assert token.headers["cache-control"] == "no-store" and token.headers["pragma"] == "no-cache"


async def test_hsts_only_over_https(platform: Platform) -> None:
    transport = httpx.ASGITransport(app=platform.app)
    https = {"X-Forwarded-Proto": "https"}
    async with httpx.AsyncClient(transport=transport, base_url="https://test") as direct:
        assert (await direct.get("/connexion")).headers["strict-transport-security"] == (
            "max-age=31536000; includeSubDomains"
        )
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as plain:
        assert "strict-transport-security" not in (await plain.get("/connexion")).headers
        # the header alone proves nothing: the peer (127.0.0.1) is not a trusted proxy
        assert "strict-transport-security" not in (await plain.get("/", headers=https)).headers
        async with setting(platform, "trusted_proxies", "127.0.0.1"):
            proxied = await plain.get("/", headers=https)
        assert proxied.headers["strict-transport-security"].startswith("max-age=31536000")


INLINE = {
    "inline <style>": re.compile(r"<style", re.I),
    "inline <script>": re.compile(r"<script(?![^>]*\ssrc=)[^>]*>", re.I),
    "style attribute": re.compile(r"<[^>]*\sstyle\s*=", re.I),
    "event handler": re.compile(r"<[^>]*\son[a-z]+\s*=", re.I),
    "javascript: URL": re.compile(r"javascript:", re.I),
}


def inline_code(text: str) -> list[str]:
    return [what for what, pattern in INLINE.items() if pattern.search(text)]


def test_the_scanner_sees_inline_code() -> None:
    """Guard the guard."""
    assert inline_code('<button onclick="x()">') == ["event handler"]
    assert inline_code('<p style="color: red">') == ["style attribute"]
    assert inline_code("<script>alert(1)</script>") == ["inline <script>"]
    assert inline_code("<style>p {}</style>") == ["inline <style>"]
    assert inline_code('<script src="/static/fse/print.js" defer></script>') == []


@pytest.mark.usefixtures("platform")  # the app has added the features' template folders
def test_no_template_carries_inline_code() -> None:
    folders = [Path(p) for p in TEMPLATES.env.loader.searchpath]  # type: ignore[union-attr]
    expected = {"fse/web", "prescriber", "pharmacy", "reimbursement"}
    assert {f.parent.relative_to(ROOT).as_posix() for f in folders} == expected
    templates = sorted(path for folder in folders for path in folder.glob("*.html"))
    assert len(templates) > 20
    found = {p.relative_to(ROOT).as_posix(): inline_code(p.read_text()) for p in templates}
    assert {name: what for name, what in found.items() if what} == {}


def test_the_charts_need_no_inline_style() -> None:
    svg = bar_chart("Feuilles", ["01/01", "02/01"], {"Salariés": [Decimal("3"), Decimal("0")]})
    assert svg.startswith("<svg") and inline_code(svg) == []


def test_the_stylesheets_and_scripts_ship_in_the_wheel() -> None:
    """Every file the pages link (templates, static/) is matched by the package data."""
    package_data = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"][
        "package-data"
    ]
    for package, folders in (
        ("fse", ["web/templates", "web/static"]),
        ("prescriber", ["templates"]),
        ("pharmacy", ["templates"]),
        ("reimbursement", ["templates"]),
    ):
        shipped = {path for glob in package_data[package] for path in (ROOT / package).glob(glob)}
        files = {path for folder in folders for path in (ROOT / package / folder).iterdir()}
        assert files and files <= shipped, sorted(str(f) for f in files - shipped)
