"""The access model (``fse.security.access``) applied to one FHIR request.

Before the store is asked: may the caller use this interaction on this type (403 ``FSE-0025``),
is the type written through REST at all (405 ``FSE-0010``), are the types a search includes or
chains into readable, does a search name what its rule needs, and which criterion narrows it to
the caller's own data. After: every resource a response carries (read, search matches,
``_include``/``_revinclude``, history, batch and transaction entries) leaves only through
``disclose``, and Bundles are assembled (``fse.fhir_api.bundles``) from what it disclosed. A
system client's scopes decide per type; a person's rule per resource. A read outside a person's
data is 403 ``FSE-0032``; a resource withheld from a Bundle is named in an OperationOutcome entry
(lenient: the caller could not know it in advance).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Generic, TypeVar

import orjson
from fastapi import Request
from sqlalchemy.ext.asyncio import AsyncConnection

from fse.errors import ErrorCode, FhirError, Forbidden, Issue, MethodNotAllowed
from fse.fhir_api.interactions import FhirService
from fse.security.access import (
    LOOKING_UP,
    NARROWED,
    SYSTEM_ONLY,
    Permission,
    Rule,
    permission,
    reserved,
)
from fse.security.auth import Principal, authorize, principal_of
from fse.security.lookups import looked_up, record_lookups
from fse.security.scopes import allows
from fse.store.indexing import reference_of, values_at
from fse.store.query import Chain, Criterion, SearchQuery, parse_search
from fse.store.repository import Match, Stored
from fse.store.search_params import SUPPORTED_TYPES, search_param

T = TypeVar("T", Stored, Match)
SELVES_TTL = 10.0
"""Seconds a worker remembers whom a professional acts as (like a client's revocation state)."""
SELVES_CACHE_SIZE = 10_000
_SELVES: dict[str, tuple[float, tuple[str, ...]]] = {}
EVERYTHING = Permission(Rule.ALL)
WRITES = frozenset("cud")


@dataclass(frozen=True)
class Disclosed(Generic[T]):
    """Resources the caller may see, and what was withheld: the only input Bundles take."""

    items: list[T]
    withheld: list[Issue] = field(default_factory=list)


class Guard:
    def __init__(self, principal: Principal | None, service: FhirService) -> None:
        """``principal`` None is the platform itself (seeding), never an HTTP caller."""
        self.principal = principal
        self.person = principal.person if principal is not None else None
        self.service = service
        self._selves: tuple[str, ...] | None = None
        self._looked_up: tuple[str, ...] | None = None
        self._narrowed: list[SearchQuery] = []
        """Searches this guard narrowed (kept, compared by identity): their matches hold its
        criterion already."""

    # -- before -------------------------------------------------------------------------------

    def allow(self, rtype: str, letter: str) -> Permission:
        """403 unless the caller may use ``letter`` on ``rtype``; how a person is narrowed."""
        authorize(self.principal, rtype, letter)
        if self.person is None:
            return EVERYTHING
        found = permission(self.person.role, rtype, letter)
        assert found is not None  # authorize checked the role's letters
        return found

    def writable(self, rtype: str, letter: str) -> None:
        """405 for a write no one does through REST (``access.RESERVED``)."""
        how = reserved(rtype, letter)
        if how is not None:
            raise MethodNotAllowed(
                f"{rtype} is not written through the REST API: {how}",
                (rtype,),
                code=ErrorCode.METHOD_NOT_ALLOWED,
            )

    def allow_interaction(self, rtype: str, letter: str) -> Permission:
        """A REST interaction: 405 if no one writes the type so, else as ``allow``."""
        if letter in WRITES:
            self.writable(rtype, letter)
        return self.allow(rtype, letter)

    def system_only(self, door: str) -> None:
        """403 for a person's session at a door for CNSS system clients only."""
        if self.person is not None:
            raise Forbidden(SYSTEM_ONLY[door], (door,), code=ErrorCode.FORBIDDEN)

    def narrowed(self, rtype: str, letter: str) -> bool:
        """Whether a person's rule filters ``letter`` on ``rtype`` (resource by resource)."""
        if self.person is None:
            return False
        found = permission(self.person.role, rtype, letter)
        return found is not None and found.rule in NARROWED

    async def narrow(self, conn: AsyncConnection, query: SearchQuery) -> SearchQuery | None:
        """Check a search and add the caller's rule to it; None: nothing can match."""
        perm = self.allow(query.resource_type, "s")
        self._check_links(query)
        if self.person is None:
            return query
        if perm.rule is Rule.IDENTIFIED and not any(
            _identifying(query.resource_type, c) for c in query.criteria
        ):
            raise Forbidden(
                f"{self.person.role_label}: search {query.resource_type} by the insured's "
                "identifier (CIN, immatriculation), id or reference; browsing is not allowed",
                (f"{query.resource_type}.identifier",),
                code=ErrorCode.FORBIDDEN,
            )
        if perm.rule in NARROWED:
            values = await self._values(conn, perm)
            if not values:
                return None
            assert perm.via is not None
            narrowing = parse_search(
                query.resource_type, [(perm.via, ",".join(values))], default_count=1, max_count=1
            )
            query.criteria.extend(narrowing.criteria)
            self._narrowed.append(query)
        return query

    def check_history(self, rtype: str) -> None:
        """Type history lists every version of every resource: only for an unnarrowed type."""
        perm = self.allow(rtype, "s")
        if self.person is not None and perm.rule is not Rule.ALL:
            raise Forbidden(
                f"{self.person.role_label}: the history of every {rtype} is not open to you; "
                "read the history of one resource instead",
                (rtype,),
                code=ErrorCode.FORBIDDEN,
            )

    def _check_links(self, query: SearchQuery) -> None:
        """``_include``d, ``_revinclude``d and chained types must be readable by the caller."""
        for include in query.includes:
            param = search_param(include.source_type, include.param)
            targets = (param.targets if param is not None else ()) or SUPPORTED_TYPES
            for rtype in (include.target_type,) if include.target_type else targets:
                self.allow(rtype, "r")
        for include in query.revincludes:
            self.allow(include.source_type, "r")
        for criterion in query.criteria:
            if isinstance(criterion, Chain):
                for rtype, inner in criterion.inner.items():
                    self._check_chain(query.resource_type, criterion.param, rtype, inner)

    def _check_chain(self, rtype: str, param: str, target: str, inner: Criterion) -> None:
        perm = self.allow(target, "r")
        if self.person is None or perm.rule is Rule.ALL:
            return
        if perm.rule is Rule.IDENTIFIED and _identifying(target, inner):
            return
        raise Forbidden(
            f"{self.person.role_label}: {rtype}?{param}.{inner.param} searches {target} "
            f"resources that are not open to you; search {target} directly",
            (f"{param}.{inner.param}",),
            code=ErrorCode.FORBIDDEN,
        )

    # -- after --------------------------------------------------------------------------------

    def passed(self, stored: T) -> Disclosed[T]:
        """A resource already let through: the caller has just written it, or ``require``
        passed for it."""
        return Disclosed([stored])

    async def disclose(
        self,
        conn: AsyncConnection,
        items: Sequence[T],
        searched: str | None = None,
        query: SearchQuery | None = None,
    ) -> Disclosed[T]:
        """The items the caller may see; ``searched``: the type the caller searched (its
        matches need the search letter, anything else the read letter); ``query``: the search
        they match, whose criteria, once this guard narrowed it, already hold the rule."""
        if self.principal is None or not items:
            return Disclosed(list(items))
        if query is not None and any(query is narrowed for narrowed in self._narrowed):
            return Disclosed(list(items))
        by_type: dict[str, set[str]] = {}
        for item in items:
            by_type.setdefault(item.type, set()).add(item.id)
        visible: set[tuple[str, str]] = set()
        withheld: list[Issue] = []
        for rtype, ids in by_type.items():
            perm = self._permission(rtype, rtype == searched)
            seen = set() if perm is None else await self._visible_ids(conn, rtype, perm, ids)
            visible.update((rtype, rid) for rid in seen)
            if len(seen) < len(ids):
                reason = _RULE_REASONS[perm.rule] if perm else "the caller may not read this type"
                withheld.append(_withheld(rtype, len(ids - seen), reason))
        return Disclosed([i for i in items if (i.type, i.id) in visible], withheld)

    async def require(self, conn: AsyncConnection, rtype: str, rid: str) -> None:
        """403 ``FSE-0032`` unless a person's rule lets them at this one resource (the type's
        letter is checked by ``allow``; a system client's scopes are per type only)."""
        if self.person is None:
            return
        perm = self._permission(rtype, False)
        if perm is None:
            authorize(self.principal, rtype, "r")
            return
        if perm.rule in NARROWED and rid not in await self._visible_ids(conn, rtype, perm, {rid}):
            raise self._not_own(rtype, perm, f"{rtype}/{rid}")

    async def check_new(
        self, conn: AsyncConnection, rtype: str, resource: dict[str, Any], letter: str = "c"
    ) -> None:
        """A person creates (or submits) only as themselves: 403 ``FSE-0032`` otherwise."""
        if self.person is None:
            return
        perm = self.allow(rtype, letter)
        if perm.rule not in NARROWED:
            return
        assert perm.via is not None
        param = search_param(rtype, perm.via)
        named = {  # as the index reads them: what a search by this parameter would find
            "/".join(target)
            for path in (param.paths if param is not None else ())
            for value in values_at(resource, path)
            if (target := reference_of(value))
        }
        if not named & set(await self._values(conn, perm)):
            raise self._not_own(rtype, perm, f"this {rtype}")

    async def searched(self, rtype: str, query: SearchQuery, disclosed: Disclosed[Match]) -> None:
        """A person whose role reads the insured they look up has just looked some up."""
        if (
            self.person is None
            or self.person.role not in LOOKING_UP
            or rtype != "Patient"
            or not disclosed.items
            or not any(
                isinstance(c, Criterion) and c.param == "identifier" and _identifying(rtype, c)
                for c in query.criteria
            )
        ):
            return
        await record_lookups(
            self.service.store.engine,
            self.person.pk,
            [m.id for m in disclosed.items],
            datetime.now(UTC),
        )

    # -- the caller's data --------------------------------------------------------------------

    def _permission(self, rtype: str, searched: bool) -> Permission | None:
        if self.principal is None:
            return EVERYTHING
        if self.person is None:
            grants = self.principal.grants
            readable = allows(grants, rtype, "r") or (searched and allows(grants, rtype, "s"))
            return EVERYTHING if readable else None
        role = self.person.role
        return permission(role, rtype, "r") or (permission(role, rtype, "s") if searched else None)

    async def _visible_ids(
        self, conn: AsyncConnection, rtype: str, perm: Permission, ids: set[str]
    ) -> set[str]:
        """The ids the caller may see: all, or those the rule's search criterion finds."""
        if perm.rule not in NARROWED:
            return ids
        values = await self._values(conn, perm)
        if not values:
            return set()
        assert perm.via is not None
        query = parse_search(
            rtype,
            [("_id", ",".join(sorted(ids))), (perm.via, ",".join(values))],
            default_count=len(ids),
            max_count=len(ids),
        )
        page = await self.service.store.search(conn, query)
        return {match.id for match in page.matches}

    async def _values(self, conn: AsyncConnection, perm: Permission) -> tuple[str, ...]:
        """The references a narrowed rule accepts: the caller themselves, or their insured."""
        if perm.rule is Rule.OWN:
            return await self.selves(conn)
        if self._looked_up is None:
            assert self.person is not None
            ids = await looked_up(conn, self.person.pk, datetime.now(UTC))
            self._looked_up = tuple(f"Patient/{pid}" for pid in ids)
        return self._looked_up

    async def selves(self, conn: AsyncConnection) -> tuple[str, ...]:
        """The person's Practitioner and the organisations of their active PractitionerRoles
        (the pharmacy, the lab): what ``own`` resources name. Remembered by each worker for
        ``SELVES_TTL`` seconds: a role ended is seen within that delay."""
        practitioner = self.person.practitioner if self.person else None
        if self._selves is None and not practitioner:
            self._selves = ()
        if self._selves is None:
            assert practitioner is not None
            remembered = _SELVES.get(practitioner)
            if remembered is None or remembered[0] <= time.monotonic():
                found = (practitioner, *await self._organisations(conn, practitioner))
                if len(_SELVES) > SELVES_CACHE_SIZE:
                    _SELVES.clear()
                remembered = (time.monotonic() + SELVES_TTL, tuple(dict.fromkeys(found)))
                _SELVES[practitioner] = remembered
            self._selves = remembered[1]
        return self._selves

    async def _organisations(self, conn: AsyncConnection, practitioner: str) -> list[str]:
        query = self.service.parse_search(
            "PractitionerRole", [("practitioner", practitioner), ("_count", "50")], True
        )
        found = []
        for match in (await self.service.store.search(conn, query)).matches:
            role = orjson.loads(match.content)
            organization = (role.get("organization") or {}).get("reference")
            if role.get("active") is not False and organization:
                found.append(organization)
        return found

    def _not_own(self, rtype: str, perm: Permission, what: str) -> FhirError:
        assert self.person is not None and perm.via is not None
        head = perm.via.split(".")[0]
        param = search_param(rtype, head)
        path = f"{rtype}.{param.paths[0] if param is not None else head}"
        whose = (
            "name you (your Practitioner or your organisation)"
            if perm.rule is Rule.OWN
            else "concern an insured you looked up"
        )
        return Forbidden(
            f"{self.person.role_label}: {what} is not yours: {rtype} resources open to you "
            f"{whose} in {path}",
            (path,),
            code=ErrorCode.NOT_OWN_DATA,
        )


_RULE_REASONS = {
    Rule.OWN: "they do not name the caller",
    Rule.LOOKED_UP: "they concern insured the caller has not looked up",
    Rule.ALL: "",
    Rule.IDENTIFIED: "",
}


def _withheld(rtype: str, count: int, reason: str) -> Issue:
    return Issue(
        ErrorCode.NOT_OWN_DATA,
        f"{count} {rtype} left out of this Bundle: {reason}",
        (rtype,),
        severity="warning",
        issue_type="suppressed",
    )


def _identifying(rtype: str, criterion: Criterion | Chain) -> bool:
    """Whether a criterion names one insured: an identifier with its value, an id, a reference
    to a Patient, or a chain through such a reference to the Patient's identifier or id."""
    param = search_param(rtype, criterion.param)
    if isinstance(criterion, Chain):
        return (
            param is not None
            and "Patient" in param.targets
            and "Patient" in criterion.inner
            and _identifying("Patient", criterion.inner["Patient"])
        )
    if criterion.modifier is not None:
        return False
    if criterion.kind == "id":
        return True
    if criterion.param == "identifier" and criterion.kind == "token":
        return all(code is not None for _system, code in criterion.values)
    return (
        criterion.kind == "reference"
        and param is not None
        and param.targets == ("Patient",)
        and all(rid for _rtype, rid in criterion.values)
    )


def guard_of(request: Request) -> Guard:
    """The request's guard (one per request: the caller's data is looked up once)."""
    guard = getattr(request.state, "guard", None)
    if guard is None:
        guard = Guard(principal_of(request), request.app.state.fhir)
        request.state.guard = guard
    return guard
