"""Read stored resources as the features' services need them: parsed JSON with exact decimals,
inside the caller's connection (their transaction or snapshot).

A search says how many matches it needs: ``count=n`` answers the first ``n`` (one page, however
large ``n`` is: the API's page-size limit is for clients, not for the platform's own reads), and
``count=ALL`` pages through every match. Nothing is cut short without the caller asking.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any, Final

from sqlalchemy.ext.asyncio import AsyncConnection

from fse import fhir_json
from fse.errors import Gone, NotFound
from fse.fhir_api.interactions import FhirService
from fse.store.query import decode_cursor
from fse.store.repository import Lookup

__all__ = [
    "ALL",
    "PAGE",
    "Lookup",
    "find_each",
    "read",
    "read_each_with_referrers",
    "search",
]

ALL: Final = None
"""``count=ALL``: every match, read page by page."""

PAGE: Final = 200
"""Matches read per statement when a search wants them all."""


async def read(service: FhirService, conn: AsyncConnection, rtype: str, rid: str) -> dict[str, Any]:
    """The current version of ``rtype/rid``; NotFound (404) or Gone (410) as the store raises."""
    stored = await service.store.read(conn, rtype, rid)
    assert stored.content is not None  # a live resource has content; a deleted one raised Gone
    return fhir_json.loads(stored.content)


async def read_each_with_referrers(
    service: FhirService,
    conn: AsyncConnection,
    heads: Sequence[tuple[str, str, Sequence[tuple[str, str]]]],
) -> list[tuple[dict[str, Any], list[list[dict[str, Any]]]] | NotFound | Gone]:
    """Each (type, id, referrers) of ``heads`` as :func:`read`, with every live resource of
    each (type, reference parameter) of its referrers pointing at it (all of them, as
    ``search(..., count=ALL)``), in one round trip; a head not found or deleted is its
    NotFound or Gone, for the caller to raise in its own words
    (``ResourceStore.read_each_with_referrers``)."""
    answers: list[tuple[dict[str, Any], list[list[dict[str, Any]]]] | NotFound | Gone] = []
    for found in await service.store.read_each_with_referrers(conn, heads):
        if isinstance(found, (NotFound, Gone)):
            answers.append(found)
            continue
        stored, pages = found
        assert stored.content is not None
        loaded = [[fhir_json.loads(match.content) for match in page] for page in pages]
        answers.append((fhir_json.loads(stored.content), loaded))
    return answers


async def find_each(
    service: FhirService, conn: AsyncConnection, lookups: Sequence[Lookup]
) -> list[list[dict[str, Any]]]:
    """Per lookup, every live match (as ``search(..., count=ALL)`` finds them), all in one
    round trip (``ResourceStore.find_each``)."""
    pages = await service.store.find_each(conn, lookups)
    return [[fhir_json.loads(match.content) for match in page] for page in pages]


async def search(
    service: FhirService,
    conn: AsyncConnection,
    rtype: str,
    params: list[tuple[str, str]],
    *,
    count: int | None,
) -> list[dict[str, Any]]:
    """The resources matching ``params`` (search parameters, no ``_count``), in the store's
    order: the first ``count``, or all of them with ``count=ALL``. An unknown parameter is a
    programming error and raises BadRequest, as a strict API search does."""
    if count is not None and count < 1:
        raise ValueError("count must be positive, or ALL")
    query = service.parse_search(rtype, params, strict=True)
    query = dataclasses.replace(query, count=PAGE if count is None else count)
    found: list[dict[str, Any]] = []
    while True:
        page = await service.store.search(conn, query)
        found += [fhir_json.loads(match.content) for match in page.matches]
        if count is not None or page.next_cursor is None:
            return found
        query = dataclasses.replace(query, cursor=decode_cursor(page.next_cursor))
