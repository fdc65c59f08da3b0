"""The resource repository: FHIR interactions over the store tables, one transaction each.

Writes lock the current row (``SELECT ... FOR UPDATE`` on PostgreSQL, ``BEGIN IMMEDIATE`` on
SQLite), append a version, and rewrite index rows in the same transaction. Business identifiers
are claimed in ``unique_identifiers`` so two live resources never share one, even under races.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import secrets
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, NamedTuple

import orjson
from sqlalchemy import (
    BigInteger,
    String,
    bindparam,
    case,
    delete,
    false,
    func,
    insert,
    literal,
    select,
    union_all,
    update,
)
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from sqlalchemy.sql.selectable import ScalarSelect, Select

from fse import fhir_json
from fse.crypto.cin import CinVault
from fse.db import reading
from fse.errors import Conflict, ErrorCode, Gone, MethodNotAllowed, NotFound, PreconditionFailed
from fse.store.dates import instant_text
from fse.store.indexing import INDEX_KINDS, IndexRows, extract, rows_by_kind
from fse.store.pg_bulk import copy_bulk
from fse.store.pg_create import (
    DuplicateIdentifiers,
    create_in_one_statement,
    creates_in_one_statement,
)
from fse.store.query import Criterion, SearchQuery, decode_cursor, encode_cursor
from fse.store.sealed_identifiers import SealedIdentifiers, shown_identifier
from fse.store.search import compile_search
from fse.store.search_params import search_param
from fse.store.string_match import beyond_index, matches
from fse.store.tables import (
    INDEX_TABLES,
    idx_token,
    resource_versions,
    resources,
    unique_identifiers,
)
from fse.store.tables import idx_reference as ref

RECHECK_BATCH = 200
"""Candidates read per round when string values longer than the index are compared whole."""


@dataclass(frozen=True)
class Stored:
    """One stored version: ``content`` is the JSON text served to clients."""

    type: str
    id: str
    version: int
    last_updated: datetime
    content: str | None
    deleted: bool = False
    method: str = "POST"
    pk: int = 0

    @property
    def etag(self) -> str:
        return f'W/"{self.version}"'

    @property
    def location(self) -> str:
        return f"{self.type}/{self.id}/_history/{self.version}"


class Match(NamedTuple):
    """A search hit: only what a searchset entry needs."""

    type: str
    id: str
    content: str
    pk: int


@dataclass(frozen=True)
class Page:
    matches: list[Match]
    included: list[Match]
    next_cursor: str | None
    total: int | None


def new_id() -> str:
    """Time-ordered ids keep B-tree inserts local; 80 random bits make them unguessable."""
    return f"{time.time_ns() // 1_000_000:011x}{secrets.token_hex(10)}"


def _stamp(resource: dict[str, Any], rid: str, version: int, now: datetime) -> str:
    resource["id"] = rid
    meta = resource.get("meta") if isinstance(resource.get("meta"), dict) else {}
    resource["meta"] = {**meta, "versionId": str(version), "lastUpdated": instant_text(now)}
    return fhir_json.dumps(resource).decode()


_READ = select(
    resources.c.pk,
    resources.c.version,
    resources.c.last_updated,
    resources.c.deleted,
    resources.c.content,
).where(
    resources.c.type == bindparam("rtype", type_=String()),
    resources.c.id == bindparam("rid", type_=String()),
)
"""A read by type and id, built once (building and keying it cost more than running it)."""


class Lookup(NamedTuple):
    """One search of :meth:`ResourceStore.find_each`: the live ``rtype`` resources whose
    ``param`` is ``value``: ``system|code`` for a token, ``Type/id`` for a reference, the id
    for ``_id``."""

    rtype: str
    param: str
    value: str


@functools.cache
def _each(shape: tuple[tuple[str, str, str], ...]) -> Select[Any]:
    """The statement of ``find_each`` and ``read_each_with_referrers`` for one shape ((type,
    parameter, kind) per search), built once (building and keying it cost more than running
    it); search ``q`` binds ``s{q}`` (system or target type) and ``v{q}``. Kind ``read``: the
    resource of that id, deleted or not (a read tells 410 from 404)."""
    r, tok = resources.c, idx_token.c
    row = (r.pk, r.id, r.version, r.last_updated, r.deleted, r.content)
    parts = []
    for q, (rtype, param, kind) in enumerate(shape):
        first, value = bindparam(f"s{q}", type_=String()), bindparam(f"v{q}", type_=String())
        if kind == "read":
            parts.append(select(literal(q).label("q"), *row).where(r.type == rtype, r.id == value))
            continue
        if kind == "_id":
            found = r.id == value
        elif kind == "token":
            found = r.pk.in_(
                select(tok.resource_pk).where(
                    tok.type == rtype, tok.param == param, tok.system == first, tok.code == value
                )
            )
        else:
            found = r.pk.in_(
                select(ref.c.resource_pk).where(
                    ref.c.type == rtype,
                    ref.c.param == param,
                    ref.c.target_type == first,
                    ref.c.target_id == value,
                )
            )
        parts.append(
            select(literal(q).label("q"), *row).where(r.type == rtype, r.deleted == false(), found)
        )
    ordered = union_all(*parts).subquery()
    return select(ordered).order_by(ordered.c.q, ordered.c.pk)


def conditional_lock(rtype: str, criteria: str) -> str:
    """The lock name of conditional creates of ``rtype`` with these criteria."""
    return f"{rtype}?{criteria}"


def lock_key(name: str) -> int:
    """A lock name as PostgreSQL's 64-bit advisory key (the same in every process)."""
    digest = hashlib.blake2b(name.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


def lock_binds(names: Sequence[str]) -> dict[str, int]:
    """The binds ``k0``, ``k1``... of ``_locks`` and ``after_locks``."""
    return {f"k{i}": lock_key(name) for i, name in enumerate(names)}


def _taken(count: int) -> list[Any]:
    """``pg_advisory_xact_lock(:k0)``, ``(:k1)``...: evaluated left to right."""
    return [
        func.pg_advisory_xact_lock(bindparam(f"k{i}", type_=BigInteger())) for i in range(count)
    ]


def after_locks(value: Any, count: int) -> ScalarSelect[Any]:
    """``value`` as SQL evaluated once the advisory locks bound ``k0``... are held, for a
    write that must take them first without a round trip of its own (PostgreSQL; like the
    approval number drawn under its gate)."""
    return select(value).select_from(select(*_taken(count)).subquery("locks")).scalar_subquery()


@functools.cache
def _locks(count: int) -> Select[Any]:
    """The locks alone, as one statement (built once per count)."""
    return select(*_taken(count))


def _versions() -> Select[Any]:
    """History rows with their JSON: a superseded version's from its own row, the current
    one's from ``resources`` (where it is stored, once)."""
    v, r = resource_versions.c, resources.c
    content = case((v.version == r.version, r.content), else_=v.content)
    return select(
        v.pk,
        v.resource_pk,
        v.type,
        v.id,
        v.version,
        v.last_updated,
        v.method,
        content.label("content"),
    ).join(resources, r.pk == v.resource_pk)


def _now() -> datetime:
    return datetime.now(UTC)


HOLDER: ScalarSelect[str] = (
    select(resources.c.id)
    .join(unique_identifiers, unique_identifiers.c.resource_pk == resources.c.pk)
    .where(
        unique_identifiers.c.type == bindparam("held_type"),
        unique_identifiers.c.system == bindparam("held_system"),
        unique_identifiers.c.value == bindparam("held_value"),
    )
    .scalar_subquery()
)
"""The id of the live resource holding a business identifier (a type whose identifiers are
unique), as a scalar subquery built once that a caller folds into its own statement, bound
with :meth:`ResourceStore.holder_binds`: one round trip where a search would be another."""


class ResourceStore:
    def __init__(self, engine: AsyncEngine, cin: CinVault) -> None:
        self.engine = engine
        self.sealed = SealedIdentifiers(cin)
        """CINs are sealed in stored JSON and blinded in index rows (fse/crypto/cin.py)."""
        self.is_postgres = engine.dialect.name == "postgresql"
        self._insert = pg_insert if self.is_postgres else sqlite_insert

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncConnection]:
        """A write transaction: all or nothing."""
        async with self.engine.connect() as conn:
            await conn.execution_options(fse_write=True)
            async with conn.begin():
                yield conn

    @asynccontextmanager
    async def single_write(self) -> AsyncIterator[AsyncConnection]:
        """For a lone create: on PostgreSQL one atomic statement, so autocommit (no BEGIN/COMMIT
        round trips); on SQLite an ordinary write transaction."""
        if not self.is_postgres:
            async with self.transaction() as conn:
                yield conn
            return
        async with self.engine.connect() as conn:
            await conn.execution_options(isolation_level="AUTOCOMMIT")
            yield conn

    @asynccontextmanager
    async def snapshot(self) -> AsyncIterator[AsyncConnection]:
        """Reads (``fse.db.reading``)."""
        async with reading(self.engine) as conn:
            yield conn

    # -- writes ---------------------------------------------------------------------------

    async def create(
        self, conn: AsyncConnection, rtype: str, resource: dict[str, Any], rid: str | None = None
    ) -> Stored:
        """Store version 1 under a server id (``rid`` is pre-assigned only by transactions)."""
        now, rid = _now(), rid or new_id()
        content = _stamp(resource, rid, 1, now)
        at_rest = self.sealed.at_rest(resource, content)
        rows = self._extract(rtype, resource)
        if self.is_postgres:
            try:
                pk = await create_in_one_statement(conn, rtype, rid, now, at_rest, rows)
            except DuplicateIdentifiers as duplicate:
                raise self._duplicate(rtype, resource, duplicate.taken) from None
            return Stored(rtype, rid, 1, now, content, False, "POST", pk)
        pk = (
            await conn.execute(
                insert(resources)
                .values(
                    type=rtype, id=rid, version=1, last_updated=now, deleted=False, content=at_rest
                )
                .returning(resources.c.pk)
            )
        ).scalar_one()
        stored = Stored(rtype, rid, 1, now, content, False, "POST", pk)
        await self._append_version(conn, stored)
        await self._write_index(conn, stored, resource, rows)
        return stored

    async def create_many(
        self, conn: AsyncConnection, items: list[tuple[str, dict[str, Any], str | None]]
    ) -> list[Stored]:
        """Several creates in the caller's transaction, as :meth:`create` each (type,
        resource, pre-assigned id or None); one statement on PostgreSQL."""
        if not self.is_postgres or len(items) < 2:
            return [await self.create(conn, rtype, resource, rid) for rtype, resource, rid in items]
        now = _now()
        creates, stored = [], []
        for rtype, resource, rid in items:
            rid = rid or new_id()
            content = _stamp(resource, rid, 1, now)
            at_rest = self.sealed.at_rest(resource, content)
            creates.append((rtype, rid, now, at_rest, self._extract(rtype, resource)))
            stored.append(Stored(rtype, rid, 1, now, content, False, "POST", 0))
        try:
            pks = await creates_in_one_statement(conn, creates)
        except DuplicateIdentifiers as duplicate:
            rtype, resource, _ = items[duplicate.index]
            raise self._duplicate(rtype, resource, duplicate.taken) from None
        return [dataclasses.replace(s, pk=pk) for s, pk in zip(stored, pks, strict=True)]

    async def bulk_create(
        self, conn: AsyncConnection, items: list[tuple[str, dict[str, Any]]]
    ) -> int:
        """Store many new resources in the caller's transaction, a statement per table.

        For bulk loads of data already known valid (synthetic registries): no per-resource
        validation, ids taken from the resources when set (so they may reference each other).
        """
        now = _now()
        prepared = []
        for rtype, resource in items:
            rid = resource.get("id") or new_id()
            at_rest = self.sealed.at_rest(resource, _stamp(resource, rid, 1, now))
            prepared.append((rtype, rid, at_rest, self._extract(rtype, resource)))
        if self.is_postgres:
            return await copy_bulk(conn, prepared, now)
        result = await conn.execute(
            insert(resources).returning(resources.c.pk, sort_by_parameter_order=True),
            [
                {
                    "type": t,
                    "id": rid,
                    "version": 1,
                    "last_updated": now,
                    "deleted": False,
                    "content": c,
                }
                for t, rid, c, _ in prepared
            ],
        )
        pks = [row.pk for row in result]
        await conn.execute(
            insert(resource_versions),
            [
                {
                    "resource_pk": pk,
                    "type": t,
                    "id": rid,
                    "version": 1,
                    "last_updated": now,
                    "method": "POST",
                    "content": None,
                }
                for pk, (t, rid, _, _) in zip(pks, prepared, strict=True)
            ],
        )
        indexed = [(pk, index) for pk, (_, _, _, index) in zip(pks, prepared, strict=True)]
        for kind, rows in rows_by_kind(indexed):
            await conn.execute(insert(INDEX_TABLES[kind]), rows)
        claimed = [
            {"type": t, "system": system, "value": value, "resource_pk": pk}
            for pk, (t, _, _, index) in zip(pks, prepared, strict=True)
            for system, value in index.identifiers
        ]
        if claimed:
            await conn.execute(insert(unique_identifiers), claimed)
        return len(pks)

    async def update(
        self,
        conn: AsyncConnection,
        rtype: str,
        rid: str,
        resource: dict[str, Any],
        if_match: int | None = None,
    ) -> Stored:
        current = await self._lock_current(conn, rtype, rid)
        if current is None:
            raise MethodNotAllowed(
                f"{rtype}/{rid} does not exist; ids are assigned by the server, create with POST",
                code=ErrorCode.UPDATE_CREATE_NOT_SUPPORTED,
            )
        pk, version, deleted, held = current
        if if_match is not None and if_match != version:
            raise PreconditionFailed(
                f"If-Match names version {if_match} but {rtype}/{rid} is at version {version}",
                code=ErrorCode.VERSION_CONFLICT,
            )
        now, version = _now(), version + 1
        content = _stamp(resource, rid, version, now)
        stored = Stored(rtype, rid, version, now, content, False, "PUT", pk)
        rows = self._extract(rtype, resource)
        kept = frozenset() if deleted or held is None else self._unchanged(rtype, held, rows)
        at_rest = self.sealed.at_rest(resource, content)
        await self._replace_current(conn, stored, at_rest, held, kept)
        await self._write_index(conn, stored, resource, rows, kept)
        return stored

    def _unchanged(self, rtype: str, held: str, rows: IndexRows) -> frozenset[str]:
        """The index kinds (and ``identifiers``) whose rows the held version already has, as
        extracted from its content now: those tables are not rewritten. A CIN is sealed at
        rest, so a Patient's tokens and identifiers always are. A change of the indexing
        rules must come with a migration that rebuilds the index."""
        before = self._extract(rtype, fhir_json.loads(held))
        kinds = [k for k in INDEX_KINDS if getattr(before, k) == getattr(rows, k)]
        same_identifiers = before.identifiers == rows.identifiers
        return frozenset([*kinds, *(["identifiers"] if same_identifiers else [])])

    async def delete(self, conn: AsyncConnection, rtype: str, rid: str) -> Stored | None:
        """Versioned delete; None when it was already deleted (idempotent)."""
        current = await self._lock_current(conn, rtype, rid)
        if current is None:
            raise NotFound(f"{rtype}/{rid} not found")
        pk, version, deleted, held = current
        if deleted:
            return None
        stored = Stored(rtype, rid, version + 1, _now(), None, True, "DELETE", pk)
        await self._replace_current(conn, stored, None, held)
        return stored

    def holder_binds(self, rtype: str, system: str, value: str) -> dict[str, str]:
        """The values :data:`HOLDER` is bound with for this business identifier."""
        system, value = self.sealed.index_pair(system, value)
        return {"held_type": rtype, "held_system": system, "held_value": value}

    async def lock_conditional(self, conn: AsyncConnection, rtype: str, criteria: str) -> None:
        """Serialise conditional creates with the same criteria (PostgreSQL advisory lock).

        On SQLite, ``BEGIN IMMEDIATE`` already serialises every writer.
        """
        await self.lock(conn, conditional_lock(rtype, criteria))

    async def lock(self, conn: AsyncConnection, *names: str) -> None:
        """Transaction advisory locks by name, taken in the order given, in one statement
        (PostgreSQL; SQLite's single writer already serialises). Every path that takes two
        of them takes them in the same order."""
        if self.is_postgres and names:
            await conn.execute(_locks(len(names)), lock_binds(names))

    async def _lock_current(
        self, conn: AsyncConnection, rtype: str, rid: str
    ) -> tuple[int, int, bool, Any] | None:
        """The current row, locked: pk, version, deleted and its content at rest (to tell
        which index rows an update changes, and to move into its history row)."""
        row = (
            await conn.execute(
                select(
                    resources.c.pk, resources.c.version, resources.c.deleted, resources.c.content
                )
                .where(resources.c.type == rtype, resources.c.id == rid)
                .with_for_update()
            )
        ).first()
        return (row.pk, row.version, row.deleted, row.content) if row else None

    async def _replace_current(
        self,
        conn: AsyncConnection,
        stored: Stored,
        at_rest: str | None,
        superseded: str | None,
        kept: frozenset[str] = frozenset(),
    ) -> None:
        """Make ``stored`` the current version (its JSON ``at_rest``, replacing ``superseded``):
        row, history, and no index rows yet but those of the ``kept`` kinds."""
        await conn.execute(
            update(resources)
            .where(resources.c.pk == stored.pk)
            .values(
                version=stored.version,
                last_updated=stored.last_updated,
                deleted=stored.deleted,
                content=at_rest,
            )
        )
        await self._append_version(conn, stored, superseded)
        await self._clear_index(conn, stored.pk, kept)

    async def _append_version(
        self, conn: AsyncConnection, stored: Stored, superseded: str | None = None
    ) -> None:
        """The history row of ``stored``, without JSON: a version's JSON is stored once, the
        current one in ``resources``. The JSON of the version it replaces (``superseded``,
        None for a deletion's) moves into that version's row, in the same statement on
        PostgreSQL."""
        row = insert(resource_versions).values(
            resource_pk=stored.pk,
            type=stored.type,
            id=stored.id,
            version=stored.version,
            last_updated=stored.last_updated,
            method=stored.method,
            content=None,
        )
        if superseded is None:
            await conn.execute(row)
            return
        v = resource_versions.c
        moved = (
            update(resource_versions)
            .where(v.resource_pk == stored.pk, v.version == stored.version - 1)
            .values(content=superseded)
        )
        if self.is_postgres:
            await conn.execute(row.add_cte(moved.cte("superseded")))
            return
        await conn.execute(moved)
        await conn.execute(row)

    async def _clear_index(
        self, conn: AsyncConnection, pk: int, kept: frozenset[str] = frozenset()
    ) -> None:
        tables = [*((k, INDEX_TABLES[k]) for k in INDEX_KINDS), ("identifiers", unique_identifiers)]
        for kind, table in tables:
            if kind not in kept:
                await conn.execute(delete(table).where(table.c.resource_pk == pk))

    async def _write_index(
        self,
        conn: AsyncConnection,
        stored: Stored,
        resource: dict[str, Any],
        rows: IndexRows | None = None,
        kept: frozenset[str] = frozenset(),
    ) -> None:
        rows = rows or self._extract(stored.type, resource)
        for kind, table_rows in rows_by_kind([(stored.pk, rows)]):
            if kind not in kept:
                await conn.execute(insert(INDEX_TABLES[kind]), table_rows)
        if rows.identifiers and "identifiers" not in kept:
            await self._claim_identifiers(conn, stored, resource, rows.identifiers)

    async def _claim_identifiers(
        self,
        conn: AsyncConnection,
        stored: Stored,
        resource: dict[str, Any],
        identifiers: list[tuple[str, str]],
    ) -> None:
        claimed = await conn.execute(
            self._insert(unique_identifiers)
            .on_conflict_do_nothing()
            .returning(unique_identifiers.c.system, unique_identifiers.c.value),
            [
                {"type": stored.type, "system": s, "value": v, "resource_pk": stored.pk}
                for s, v in identifiers
            ],
        )
        taken = set(identifiers) - {(r.system, r.value) for r in claimed}
        if taken:
            raise self._duplicate(stored.type, resource, taken)

    def _extract(self, rtype: str, resource: dict[str, Any]) -> IndexRows:
        return self.sealed.index(extract(rtype, resource))

    def _duplicate(
        self, rtype: str, resource: dict[str, Any], taken: set[tuple[str, str]]
    ) -> Conflict:
        """409 naming the taken identifiers (as the caller sent them, a CIN masked)."""
        held = [
            (i, ident["system"], ident["value"])
            for i, ident in enumerate(resource.get("identifier", []))
            if isinstance(ident, dict)
            and isinstance(ident.get("system"), str)
            and isinstance(ident.get("value"), str)
            and self.sealed.index_pair(ident["system"], ident["value"]) in taken
        ]
        names = ", ".join(sorted({shown_identifier(s, v) for _, s, v in held}))
        return Conflict(
            f"another {rtype} already holds identifier {names}",
            tuple(f"{rtype}.identifier[{i}]" for i, _, _ in held),
            code=ErrorCode.DUPLICATE_IDENTIFIER,
        )

    # -- reads ----------------------------------------------------------------------------

    async def read(self, conn: AsyncConnection, rtype: str, rid: str) -> Stored:
        row = (await conn.execute(_READ, {"rtype": rtype, "rid": rid})).first()
        if row is None:
            raise NotFound(f"{rtype}/{rid} not found")
        if row.deleted:
            raise Gone(f"{rtype}/{rid} was deleted (version {row.version})")
        content = self.sealed.served(row.content)
        return Stored(rtype, rid, row.version, row.last_updated, content, False, "GET", row.pk)

    async def read_each_with_referrers(
        self,
        conn: AsyncConnection,
        heads: Sequence[tuple[str, str, Sequence[tuple[str, str]]]],
    ) -> list[tuple[Stored, list[list[Match]]] | NotFound | Gone]:
        """Per (type, id, referrers) of ``heads``: ``type/id`` (as :meth:`read`) and, per
        (type, reference parameter) of its ``referrers``, the live resources whose parameter
        points at it, in the store's order (what the searches ``<param>=<type>/<id>`` find),
        every head in one statement: an insured with their Coverages and Conditions and the
        practitioner of their claim with their roles. A head not found or deleted is its
        NotFound or Gone, for the caller to raise in its own words."""
        shape: list[tuple[str, str, str]] = []
        binds: dict[str, str] = {}
        firsts = []
        for rtype, rid, referrers in heads:
            firsts.append(len(shape))
            binds[f"v{len(shape)}"] = rid
            shape.append((rtype, "_id", "read"))
            for referrer, param in referrers:
                binds[f"s{len(shape)}"], binds[f"v{len(shape)}"] = rtype, rid
                shape.append((referrer, param, "reference"))
        by_part: list[list[Any]] = [[] for _ in shape]
        for row in (await conn.execute(_each(tuple(shape)), binds)).all():
            by_part[row.q].append(row)
        served = self.sealed.served
        answers: list[tuple[Stored, list[list[Match]]] | NotFound | Gone] = []
        for first, (rtype, rid, referrers) in zip(firsts, heads, strict=True):
            if not by_part[first]:
                answers.append(NotFound(f"{rtype}/{rid} not found"))
                continue
            head = by_part[first][0]
            if head.deleted:
                answers.append(Gone(f"{rtype}/{rid} was deleted (version {head.version})"))
                continue
            content = served(head.content)
            stored = Stored(
                rtype, rid, head.version, head.last_updated, content, False, "GET", head.pk
            )
            pages = [
                [
                    Match(shape[q][0], row.id, served(row.content) or "", row.pk)
                    for row in by_part[q]
                ]
                for q in range(first + 1, first + 1 + len(referrers))
            ]
            answers.append((stored, pages))
        return answers

    async def find_each(
        self, conn: AsyncConnection, lookups: Sequence[Lookup]
    ) -> list[list[Match]]:
        """Per lookup, what the search ``rtype?param=value`` finds (all of it, in the store's
        order), every lookup in one statement: the resources of one care sheet, found by its
        number, in one round trip instead of one search each. Token and reference parameters
        and ``_id`` only; a token's system and code are required (a CIN is found by its blind
        index, as a search finds it)."""
        shape, binds = [], {}
        for q, lookup in enumerate(lookups):
            if lookup.param == "_id":
                kind, first, value = "_id", "", lookup.value
            else:
                param = search_param(lookup.rtype, lookup.param)
                kind = param.type if param is not None else ""
                if kind == "token":
                    system, _, code = lookup.value.partition("|")
                    first, value = self.sealed.index_pair(system, code)
                elif kind == "reference":
                    first, _, value = lookup.value.partition("/")
                else:
                    raise ValueError(f"{lookup.rtype}?{lookup.param}: not a token or reference")
                if not (first and value):
                    raise ValueError(f"{lookup.rtype}?{lookup.param}={lookup.value}: incomplete")
            shape.append((lookup.rtype, lookup.param, kind))
            binds[f"v{q}"] = value
            if kind != "_id":
                binds[f"s{q}"] = first
        rows = (await conn.execute(_each(tuple(shape)), binds)).all()
        served = self.sealed.served
        found: list[list[Match]] = [[] for _ in lookups]
        for row in rows:
            found[row.q].append(
                Match(lookups[row.q].rtype, row.id, served(row.content) or "", row.pk)
            )
        return found

    async def exists(self, conn: AsyncConnection, rtype: str, rid: str) -> bool:
        """Whether the id was ever used for this type (deleted resources keep theirs)."""
        found = await conn.scalar(
            select(resources.c.pk).where(resources.c.type == rtype, resources.c.id == rid)
        )
        return found is not None

    async def current_ids(self, conn: AsyncConnection, rtype: str, ids: set[str]) -> set[str]:
        """Which of ``ids`` name a current (stored, not deleted) resource of the type."""
        if not ids:
            return set()
        rows = await conn.execute(
            select(resources.c.id).where(
                resources.c.type == rtype,
                resources.c.id.in_(sorted(ids)),
                resources.c.deleted == false(),
            )
        )
        return {row.id for row in rows}

    async def vread(self, conn: AsyncConnection, rtype: str, rid: str, version: int) -> Stored:
        v = resource_versions.c
        row = (
            await conn.execute(
                _versions().where(v.type == rtype, v.id == rid, v.version == version)
            )
        ).first()
        if row is None:
            raise NotFound(f"{rtype}/{rid} has no version {version}")
        if row.method == "DELETE":
            raise Gone(f"version {version} of {rtype}/{rid} is its deletion")
        return self._stored_version(row)

    async def history(
        self,
        conn: AsyncConnection,
        rtype: str,
        rid: str | None,
        count: int,
        before_pk: int | None,
        since: datetime | None,
    ) -> tuple[list[Stored], int | None]:
        """Newest first; returns the page and the cursor (a version pk) of the next one."""
        v = resource_versions
        stmt = _versions().where(v.c.type == rtype).order_by(v.c.pk.desc()).limit(count + 1)
        if rid is not None:
            stmt = stmt.where(v.c.id == rid)
        if before_pk is not None:
            stmt = stmt.where(v.c.pk < before_pk)
        if since is not None:
            stmt = stmt.where(v.c.last_updated >= since)
        rows = (await conn.execute(stmt)).all()
        if rid is not None and not rows and before_pk is None:
            exists = await conn.scalar(
                select(func.count())
                .select_from(resources)
                .where(resources.c.type == rtype, resources.c.id == rid)
            )
            if not exists:
                raise NotFound(f"{rtype}/{rid} not found")
        page = [self._stored_version(r) for r in rows[:count]]
        return page, (rows[count - 1].pk if len(rows) > count else None)

    def _stored_version(self, row: Any) -> Stored:
        return Stored(
            row.type,
            row.id,
            row.version,
            row.last_updated,
            self.sealed.served(row.content),
            row.method == "DELETE",
            row.method,
            row.resource_pk,
        )

    async def search(self, conn: AsyncConnection, query: SearchQuery) -> Page:
        sealed = self.sealed.query(query)
        rechecked = [c for c in query.criteria if isinstance(c, Criterion) and beyond_index(c)]
        total = None
        if rechecked:
            wanted = query.count + 1 if query.count else 0
            rows = await self._rechecked(conn, sealed, rechecked, wanted)
            if query.total:
                everything = dataclasses.replace(sealed, cursor=None)
                total = len(await self._rechecked(conn, everything, rechecked, None))
        else:
            statements, params = compile_search(sealed)
            rows = list((await conn.execute(statements.page, params)).all()) if query.count else []
            total = await conn.scalar(statements.count, params) if query.total else None
        rtype, served = query.resource_type, self.sealed.served
        matches = [Match(rtype, r.id, served(r.content) or "", r.pk) for r in rows[: query.count]]
        next_cursor = None
        if len(rows) > query.count:
            last = rows[query.count - 1]
            next_cursor = encode_cursor(last.sort_key if query.sort else None, last.pk)
        included = await self._included(conn, query, matches)
        return Page(matches, included, next_cursor, total)

    async def _rechecked(
        self,
        conn: AsyncConnection,
        query: SearchQuery,
        criteria: list[Criterion],
        wanted: int | None,
    ) -> list[Any]:
        """The query's rows (from its cursor on) whose whole values pass ``criteria``, in order,
        ``wanted`` at most (None: all): SQL narrows by the indexed prefix, batch by batch."""
        batch = dataclasses.replace(query, count=RECHECK_BATCH, total=False)
        kept: list[Any] = []
        while wanted is None or len(kept) < wanted:
            statements, params = compile_search(batch)
            rows = (await conn.execute(statements.page, params)).all()
            for row in rows[:RECHECK_BATCH]:
                resource = orjson.loads(self.sealed.served(row.content) or "{}")
                if all(matches(query.resource_type, resource, c) for c in criteria):
                    kept.append(row)
            if len(rows) <= RECHECK_BATCH:
                break
            last = rows[RECHECK_BATCH - 1]
            cursor = encode_cursor(last.sort_key if query.sort else None, last.pk)
            batch = dataclasses.replace(batch, cursor=decode_cursor(cursor))
        return kept if wanted is None else kept[:wanted]

    async def _included(
        self, conn: AsyncConnection, query: SearchQuery, matches: list[Match]
    ) -> list[Match]:
        if not matches or not (query.includes or query.revincludes):
            return []
        pks = [m.pk for m in matches]
        wanted: set[int] = set()
        for inc in query.includes:
            if inc.source_type != query.resource_type:
                continue
            target = resources.alias("inc_target")
            stmt = (
                select(target.c.pk)
                .join(ref, (ref.c.target_type == target.c.type) & (ref.c.target_id == target.c.id))
                .where(
                    ref.c.resource_pk.in_(pks),
                    ref.c.param == inc.param,
                    target.c.deleted == false(),
                )
            )
            if inc.target_type:
                stmt = stmt.where(target.c.type == inc.target_type)
            wanted.update((await conn.execute(stmt)).scalars())
        ids = [m.id for m in matches]
        for inc in query.revincludes:
            stmt = select(ref.c.resource_pk).where(
                ref.c.type == inc.source_type,
                ref.c.param == inc.param,
                ref.c.target_type == query.resource_type,
                ref.c.target_id.in_(ids),
            )
            wanted.update((await conn.execute(stmt)).scalars())
        wanted -= set(pks)
        if not wanted:
            return []
        rows = await conn.execute(
            select(resources.c.type, resources.c.id, resources.c.content, resources.c.pk).where(
                resources.c.pk.in_(sorted(wanted)), resources.c.deleted == false()
            )
        )
        return [Match(r.type, r.id, self.sealed.served(r.content) or "", r.pk) for r in rows]
