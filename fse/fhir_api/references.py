"""The literal references of a resource written by a transaction or batch entry must resolve.

FHIR (R4 §3.1.0.11.2) resolves a ``urn:uuid:`` against the fullUrls of the Bundle and a
relative ``Type/id`` (or an absolute URL on this server) against this server: one that resolves
to nothing would be stored pointing at nothing, so it is refused (422 FSE-0042, one issue per
reference, with its path); so is a conditional reference (``Patient?identifier=…``), which
this server does not resolve. Not ours to resolve, so never dangling here: an absolute URL on
another server, a reference by identifier alone, a contained ``#id``, canonical URLs (not
References at all), and any other form this server does not read as local.

Plain create and update do not check this: many clients (and fixtures) write claims naming a
provider or coverage the platform has not stored yet; a Bundle is where the client says what
it references, so it is held to it.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterator
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from fse.errors import ErrorCode, Issue, Unprocessable
from fse.store.repository import ResourceStore

LOCAL = re.compile(
    r"^(?P<type>[A-Z][A-Za-z]{0,63})/(?P<id>[A-Za-z0-9\-.]{1,64})"
    r"(?:/_history/[A-Za-z0-9\-.]{1,64})?$"
)
PLACEHOLDERS = ("urn:uuid:", "urn:oid:")
"""fullUrl forms that name an entry of the Bundle, never a stored resource."""
CONDITIONAL = re.compile(r"^[A-Z][A-Za-z]{0,63}\?")
"""``Patient?identifier=…``: a conditional reference. This server does not resolve them, so it
refuses them rather than store a search as if it were a reference (``identifier`` serves)."""


def references_in(node: Any, path: str) -> Iterator[tuple[str, str]]:
    """Every ``reference`` string under ``node``, with its path (``Claim.insurance[0]...``)."""
    if isinstance(node, dict):
        for key, value in node.items():
            here = f"{path}.{key}"
            if key == "reference" and isinstance(value, str):
                yield here, value
            else:
                yield from references_in(value, here)
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from references_in(value, f"{path}[{index}]")


def local_target(reference: str, base: str) -> tuple[str, str] | None:
    """``(Type, id)`` of a reference this server must resolve itself; else None."""
    if reference.startswith(base + "/"):
        reference = reference[len(base) + 1 :]
    match = LOCAL.match(reference)
    return (match["type"], match["id"]) if match else None


async def refuse_dangling(
    conn: AsyncConnection,
    store: ResourceStore,
    base: str,
    rtype: str,
    resource: dict[str, Any],
    in_bundle: set[str],
) -> None:
    """422 FSE-0042 unless every local reference of ``resource`` (already rewritten from the
    Bundle's fullUrls) names a resource stored now in ``conn`` or ``in_bundle`` (``Type/id``
    the Bundle creates), and no ``urn:uuid:`` is left."""
    found = list(references_in(resource, rtype))
    dangling: dict[int, str] = {}
    """Why each refused reference (by its place in ``found``) resolves to nothing."""
    wanted: dict[str, dict[str, list[int]]] = defaultdict(lambda: defaultdict(list))
    for place, (_path, reference) in enumerate(found):
        if reference.startswith(PLACEHOLDERS):
            dangling[place] = f"{reference} is the fullUrl of no entry of the Bundle"
            continue
        if CONDITIONAL.match(reference):
            dangling[place] = (
                f"{reference} is a conditional reference, which this server does not resolve "
                "(use Reference.identifier)"
            )
            continue
        target = local_target(reference, base)
        if target is not None and "/".join(target) not in in_bundle:
            wanted[target[0]][target[1]].append(place)
    for target_type, ids in wanted.items():
        present = await store.current_ids(conn, target_type, set(ids))
        for target_id, places in ids.items():
            if target_id not in present:
                for place in places:
                    dangling[place] = f"{target_type}/{target_id} is not stored on this server"
    if dangling:
        issues = [
            Issue(
                ErrorCode.DANGLING_REFERENCE,
                f"{found[place][0]}: {why}",
                (found[place][0],),
                issue_type="processing",
            )
            for place, why in sorted(dangling.items())
        ]
        raise Unprocessable.of(issues)
