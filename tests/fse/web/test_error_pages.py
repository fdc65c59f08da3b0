"""A browser never meets FHIR JSON, a bare line or a traceback: every web path answers its
errors with a French page styled like the others, with a way back; the API keeps its
OperationOutcomes."""

from __future__ import annotations

import html
import re
import uuid
from collections.abc import AsyncIterator

import httpx
import pytest

from fse.errors import Conflict, TooManyRequests
from fse.security.users import Role, create_user
from tests.conftest import Platform
from tests.fse.web.test_login import login

HTML = {"Accept": "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"}


def styled_french_page(response: httpx.Response, status: int, *texts: str) -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("text/html")
    page = html.unescape(response.text)
    assert '<html lang="fr">' in page and 'href="/static/fse/fse.css"' in page
    assert f"Erreur {status}" in page
    assert 'href="/espace"' in page or 'href="/"' in page  # a way back
    for text in texts:
        assert text in page, text
    for internal in ("Traceback", "OperationOutcome", "FSE-00", "Error", "exception"):
        assert internal not in page, internal


@pytest.fixture
async def doctor(platform: Platform) -> AsyncIterator[httpx.AsyncClient]:
    """A signed-in doctor's browser; app errors come back as pages, as a browser sees them."""
    transport = httpx.ASGITransport(app=platform.app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
        name = f"dr.err.{uuid.uuid4().hex[:8]}"
        await create_user(platform.engine, name, "correct-horse-battery", Role.PRESCRIBER, "Dr E")
        assert (await login(http, name)).status_code == 303
        yield http


async def test_an_unknown_web_url_is_a_french_page_not_fhir_json(
    browser: httpx.AsyncClient,
) -> None:
    page = await browser.get("/labo", headers=HTML)
    styled_french_page(page, 404, "Page introuvable", "Retour à l'accueil")
    # An API client (no HTML asked) and the API paths keep the OperationOutcome.
    api = await browser.get("/labo", headers={"Accept": "application/fhir+json"})
    assert api.status_code == 404 and api.json()["resourceType"] == "OperationOutcome"
    fhir = await browser.get("/fhir/Labo", headers=HTML)
    assert fhir.status_code >= 400 and "html" not in fhir.headers["content-type"]
    health = await browser.post("/health", headers=HTML)
    assert "html" not in health.headers["content-type"]


async def test_an_unknown_sheet_is_a_french_page_with_a_way_back(
    doctor: httpx.AsyncClient,
) -> None:
    page = await doctor.get("/medecin/feuille/FSE-2026-000000001-00", headers=HTML)
    styled_french_page(page, 404, "Feuille introuvable", 'href="/espace"', "Se déconnecter")
    unknown = await doctor.get("/medecin/feuille?patient=nobody")
    styled_french_page(unknown, 404, "Patient introuvable")


async def test_a_refused_form_is_a_french_403_page(doctor: httpx.AsyncClient) -> None:
    page = await doctor.post("/deconnexion", data={"csrf": "forged"})
    styled_french_page(page, 403, "Requête refusée", "rien n'a été fait", 'href="/espace"')
    other = await doctor.get("/pharmacie", headers=HTML)  # another role's section
    assert other.status_code == 403 and "Accès refusé" in other.text
    assert 'href="/espace"' in other.text


async def test_conflict_too_many_and_internal_errors_are_french_pages(
    doctor: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Whatever a page's services raise, the browser gets the status's French page: a 409
    and a 429 (keeping Retry-After), and for a failure a 500 that names nothing internal."""
    import prescriber.pages

    failures: list[Exception] = [
        Conflict("version conflict on Encounter/123"),
        TooManyRequests("more than 5 requests", headers={"Retry-After": "42"}),
        RuntimeError("Error in /srv/fse/secret.py: password=hunter2"),
    ]

    async def failing(*_args: object, **_kwargs: object) -> list[object]:
        raise failures[0]

    monkeypatch.setattr(prescriber.pages, "sheets_of", failing)
    conflict = await doctor.get("/medecin", headers=HTML)
    styled_french_page(conflict, 409, "rechargez la page")
    failures.pop(0)
    throttled = await doctor.get("/medecin", headers=HTML)
    styled_french_page(throttled, 429, "Trop de demandes")
    assert throttled.headers["Retry-After"] == "42"
    failures.pop(0)
    crashed = await doctor.get("/medecin", headers=HTML)
    styled_french_page(crashed, 500, "Erreur interne", "rien n'a été enregistré")
    assert "hunter2" not in crashed.text and "secret.py" not in crashed.text
    api = await doctor.get("/medecin", headers={"Accept": "application/fhir+json"})
    assert api.status_code == 500 and api.json()["resourceType"] == "OperationOutcome"


async def test_favicon_is_served_and_linked_and_the_header_offers_logout(
    doctor: httpx.AsyncClient, browser: httpx.AsyncClient
) -> None:
    icon = await browser.get("/favicon.ico")
    assert icon.status_code == 200 and icon.headers["content-type"] == "image/x-icon"
    assert icon.content[:4] == b"\x00\x00\x01\x00"  # an ICO file
    svg = await browser.get("/static/fse/favicon.svg")
    assert svg.status_code == 200 and "<svg" in svg.text
    home = await browser.get("/")
    assert 'rel="icon"' in home.text and "Se déconnecter" not in home.text
    space = await doctor.get("/espace")
    header = space.text.split("<main>")[0]
    assert "Se déconnecter" in header and 'action="/deconnexion"' in header
    csrf = re.search(r'name="csrf" value="([^"]+)"', header)
    assert csrf
    out = await doctor.post("/deconnexion", data={"csrf": csrf[1]})
    assert out.status_code == 303 and out.headers["location"] == "/connexion"
    assert (await doctor.get("/espace")).status_code == 303  # signed out
