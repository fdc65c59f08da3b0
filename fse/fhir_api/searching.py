"""One search as the API answers it: checked and narrowed by the caller's guard, run, disclosed,
assembled. Used by ``GET /fhir/{type}`` and by the GET entries of batch and transaction Bundles,
so both answer the same."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncConnection

from fse.fhir_api import bundles
from fse.fhir_api.guard import Disclosed, Guard
from fse.store.query import SearchQuery
from fse.store.repository import Match, Page


async def searchset(
    conn: AsyncConnection, guard: Guard, base: str, query: SearchQuery
) -> tuple[bytes, Disclosed[Match]]:
    """The searchset Bundle and the matches it holds."""
    narrowed = await guard.narrow(conn, query)
    if narrowed is None:  # the caller's rule leaves nothing to find
        page = Page([], [], None, 0 if query.total else None)
    else:
        page = await guard.service.store.search(conn, narrowed)
    matches = await guard.disclose(conn, page.matches, query.resource_type, narrowed)
    included = await guard.disclose(conn, page.included)
    body = bundles.searchset(base, query.resource_type, query.echo, page, matches, included)
    return body, matches
