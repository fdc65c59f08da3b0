"""Bundles assembled from stored JSON text (resources are never re-serialised through models).

Every builder takes what ``Guard.disclose`` let through (``Disclosed``), never raw store
results: this is the one place responses are assembled, so nothing leaves unchecked. What the
guard withheld is named in an OperationOutcome entry.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

import orjson

from fse.errors import operation_outcome
from fse.fhir_api.guard import Disclosed
from fse.store.dates import instant_text
from fse.store.repository import Match, Page, Stored


def _head(kind: str, extra: dict[str, Any]) -> bytes:
    head = {
        "resourceType": "Bundle",
        "id": str(uuid.uuid4()),
        "meta": {"lastUpdated": instant_text(datetime.now(UTC))},
        "type": kind,
        **extra,
    }
    return orjson.dumps(head)[:-1]


def _entry(base: str, stored: Stored | Match, tail: dict[str, Any]) -> bytes:
    full_url = f'"fullUrl":"{base}/{stored.type}/{stored.id}"'.encode()
    parts = [b"{" + full_url]
    if stored.content is not None:
        parts.append(b',"resource":' + stored.content.encode())
    parts.append(b"," + orjson.dumps(tail)[1:-1] + b"}")
    return b"".join(parts)


def _assemble(head: bytes, entries: list[bytes]) -> bytes:
    """FHIR JSON has no empty arrays: no entries, no ``entry``."""
    if not entries:
        return head + b"}"
    return head + b',"entry":[' + b",".join(entries) + b"]}"


def searchset(
    base: str,
    resource_type: str,
    echo: list[tuple[str, str]],
    page: Page,
    matches: Disclosed[Match],
    included: Disclosed[Match],
) -> bytes:
    """``page`` gives the links and total; the entries are the disclosed ones only."""
    self_url = f"{base}/{resource_type}" + (f"?{urlencode(echo)}" if echo else "")
    links = [{"relation": "self", "url": self_url}]
    if page.next_cursor:
        joiner = "&" if echo else "?"
        links.append({"relation": "next", "url": f"{self_url}{joiner}_cursor={page.next_cursor}"})
    extra: dict[str, Any] = {"link": links}
    if page.total is not None:
        extra = {"total": page.total, **extra}
    entries = [_entry(base, s, {"search": {"mode": "match"}}) for s in matches.items]
    entries += [_entry(base, s, {"search": {"mode": "include"}}) for s in included.items]
    withheld = matches.withheld + included.withheld
    if withheld:
        outcome = orjson.dumps(operation_outcome(withheld))
        entries.append(b'{"resource":' + outcome + b',"search":{"mode":"outcome"}}')
    return _assemble(_head("searchset", extra), entries)


def history(base: str, self_url: str, next_url: str | None, versions: Disclosed[Stored]) -> bytes:
    links = [{"relation": "self", "url": self_url}]
    if next_url:
        links.append({"relation": "next", "url": next_url})
    entries = [
        _entry(
            base,
            s,
            {
                "request": {
                    "method": s.method,
                    "url": s.type if s.method == "POST" else f"{s.type}/{s.id}",
                },
                "response": {
                    "status": {"POST": "201 Created", "DELETE": "204 No Content"}.get(
                        s.method, "200 OK"
                    ),
                    "etag": s.etag,
                    "lastModified": instant_text(s.last_updated),
                },
            },
        )
        for s in versions.items
    ]
    return _assemble(_head("history", {"link": links}), entries)


def response_entry(
    status: str,
    disclosed: Disclosed[Stored] | None = None,
    outcome: dict[str, Any] | None = None,
    base: str = "",
    with_resource: bool = True,
) -> bytes:
    """A batch/transaction response entry; the resource only if the guard disclosed it."""
    stored = disclosed.items[0] if disclosed is not None and disclosed.items else None
    response: dict[str, Any] = {"status": status}
    if stored is not None:
        response |= {
            "location": f"{base}/{stored.location}",
            "etag": stored.etag,
            "lastModified": instant_text(stored.last_updated),
        }
    if outcome is not None:
        response["outcome"] = outcome
    if stored is not None and with_resource and stored.content is not None:
        return (
            f'{{"fullUrl":"{base}/{stored.type}/{stored.id}","resource":'.encode()
            + stored.content.encode()
            + b',"response":'
            + orjson.dumps(response)
            + b"}"
        )
    return orjson.dumps({"response": response})


def response_bundle(kind: str, entries: list[bytes]) -> bytes:
    return _assemble(_head(kind, {}), entries)
