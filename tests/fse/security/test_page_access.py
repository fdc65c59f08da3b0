"""The web screens' door, generated from the access model: every page route is listed in
``fse.security.access.PAGES``, and each role (and someone not signed in) is let in or shown the
French refusal exactly as the model says, for every method of every page."""

from __future__ import annotations

import re
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from fastapi.routing import iter_route_contexts
from starlette.routing import Mount

from fse.app import create_app
from fse.config import Settings
from fse.security.access import PUBLIC, ROLE_ORDER, page_allows, page_roles
from fse.security.users import Role
from tests.conftest import Platform
from tests.fse.security.world import World, build_world

ANONYMOUS = "anonymous"


def _page_routes() -> list[tuple[str, str]]:
    """(method, path) of every screen of the app (not the FHIR API), as the factory wires it."""
    scratch = Path(tempfile.mkdtemp(prefix="fse-routes-"))
    settings = Settings(
        database_url=f"sqlite+aiosqlite:///{scratch / 'unused.sqlite3'}",
        signing_key_file=scratch / "key.pem",
        token_keys_file=scratch / "token-keys.json",
        cin_key_file=scratch / "cin.json",
    )
    found = []
    for context in iter_route_contexts(create_app(settings).routes):
        path, route = context.path or "", context.original_route
        if path.startswith("/fhir"):
            continue
        if isinstance(route, Mount):
            found.append(("GET", path + "/x"))
        else:
            found += [(m, path) for m in sorted(getattr(route, "methods", None) or {"GET"})]
    return found


def test_every_screen_is_in_the_access_model(platform: Platform) -> None:
    """A page added without a line in PAGES is closed to everyone: listing it is the way in."""
    for context in iter_route_contexts(platform.app.routes):
        path = context.path or ""
        if path.startswith("/fhir"):
            continue
        assert page_roles(path) is not None, f"{path} is not in fse.security.access.PAGES"


@pytest.fixture(scope="module")
async def world(platform: Platform) -> AsyncIterator[World]:
    built = await build_world(platform)
    yield built
    await built.close()


def _paths() -> list[tuple[str, str]]:
    return [(m, p) for m, p in _page_routes() if m in ("GET", "POST")]


PAGE_CELLS = [
    (who, method, path)
    for who in (*ROLE_ORDER, ANONYMOUS)
    for method, path in _paths()
    if PUBLIC not in (page_roles(path) or ())
]


@pytest.mark.parametrize(
    ("who", "method", "path"), PAGE_CELLS, ids=[f"{w}-{m}-{p}" for w, m, p in PAGE_CELLS]
)
async def test_page_cell(world: World, who: str, method: str, path: str) -> None:
    url = re.sub(r"\{[^}]+\}", "FSE-2026-000000001-00", path)
    if who == ANONYMOUS:
        transport = httpx.ASGITransport(app=world.platform.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
            response = await http.request(method, url)
        assert response.status_code == 303, response.text
        assert response.headers["location"].startswith("/connexion?suite=")
        return
    person = world.people[Role(who)]
    form = {"csrf": person.csrf}
    response = await person.http.request(method, url, data=form if method == "POST" else None)
    refused = response.status_code == 403 and "Accès refusé" in response.text
    assert refused == (not page_allows(path, Role(who))), (response.status_code, response.text)
