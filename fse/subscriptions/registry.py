"""Subscriptions as FHIR resources kept in their own table: each belongs to the CNSS system
client that created it, which alone sees, changes or deletes it."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

import orjson
from fhir.resources.R4B.subscription import Subscription
from pydantic import ValidationError
from sqlalchemy import func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from fhir_profiles.systems import SUBSCRIPTION_DELIVERIES_EXTENSION
from fse.errors import ErrorCode, Gone, NotFound, PreconditionFailed, Unprocessable
from fse.store.dates import instant_text
from fse.store.repository import new_id
from fse.subscriptions.criteria import Topics, parse_criteria
from fse.subscriptions.tables import subscription_deliveries, subscriptions

FHIR_PAYLOADS = frozenset({"application/fhir+json", "application/json"})
CLIENT_STATUSES = frozenset({"requested", "active", "off"})


@dataclass(frozen=True)
class SubscriptionRecord:
    pk: int
    id: str
    version: int
    status: str
    content: dict[str, Any]


def _invalid(reason: str, path: str) -> Unprocessable:
    return Unprocessable(reason, (path,), code=ErrorCode.INVALID_SUBSCRIPTION)


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def checked(resource: dict[str, Any], topics: Topics) -> tuple[dict[str, Any], str, str]:
    """The resource as stored, its type and filters (JSON); 422 with the path otherwise."""
    try:
        Subscription.model_validate(resource)
    except ValidationError as error:
        first = error.errors()[0]
        path = ".".join(["Subscription", *(str(p) for p in first["loc"])])
        raise _invalid(f"not a valid Subscription: {first['msg']}", path) from None
    channel = resource.get("channel") or {}
    if channel.get("type") != "rest-hook":
        raise _invalid("only rest-hook channels are served", "Subscription.channel.type")
    endpoint = urlsplit(channel.get("endpoint") or "")
    secure = endpoint.scheme == "https" or (
        endpoint.scheme == "http" and _loopback(endpoint.hostname or "")
    )
    if not endpoint.hostname or not secure:
        raise _invalid(
            "channel.endpoint must be an https:// URL (http:// only on this machine)",
            "Subscription.channel.endpoint",
        )
    if "payload" in channel and channel["payload"] not in FHIR_PAYLOADS:
        raise _invalid(
            "channel.payload must be application/fhir+json, or absent for references only",
            "Subscription.channel.payload",
        )
    for header in channel.get("header", []):
        if ":" not in header:
            raise _invalid("a channel.header reads 'Name: value'", "Subscription.channel.header")
    if resource.get("status") not in CLIENT_STATUSES:
        raise _invalid("status must be requested, active or off", "Subscription.status")
    criteria = parse_criteria(resource.get("criteria"), topics)
    stored = {k: v for k, v in resource.items() if k not in ("meta", "error")}
    stored["status"] = "off" if resource["status"] == "off" else "active"
    return stored, criteria.resource_type, orjson.dumps(criteria.filters).decode()


def _stamped(content: dict[str, Any], rid: str, version: int, now: datetime) -> dict[str, Any]:
    return {
        "resourceType": "Subscription",
        "id": rid,
        "meta": {"versionId": str(version), "lastUpdated": instant_text(now)},
        **{k: v for k, v in content.items() if k not in ("resourceType", "id")},
    }


async def create(
    conn: AsyncConnection, owner: str, resource: dict[str, Any], topics: Topics
) -> SubscriptionRecord:
    content, rtype, filters = checked(resource, topics)
    now, rid = datetime.now(UTC), new_id()
    stamped = _stamped(content, rid, 1, now)
    pk = await conn.scalar(
        insert(subscriptions)
        .values(
            id=rid,
            owner=owner,
            version=1,
            status=stamped["status"],
            resource_type=rtype,
            filters=filters,
            resource=orjson.dumps(stamped).decode(),
            events_count=0,
            created_at=now,
            updated_at=now,
        )
        .returning(subscriptions.c.pk)
    )
    assert pk is not None
    return SubscriptionRecord(pk, rid, 1, stamped["status"], stamped)


async def find(
    conn: AsyncConnection, owner: str, rid: str, lock: bool = False
) -> SubscriptionRecord:
    """The owner's subscription; another client's is as absent as a missing one (404)."""
    query = select(subscriptions).where(subscriptions.c.id == rid, subscriptions.c.owner == owner)
    if lock and conn.dialect.name == "postgresql":
        query = query.with_for_update()
    row = (await conn.execute(query)).first()
    if row is None:
        raise NotFound(f"Subscription/{rid} not found")
    if row.status == "deleted":
        raise Gone(f"Subscription/{rid} was deleted")
    return SubscriptionRecord(row.pk, row.id, row.version, row.status, orjson.loads(row.resource))


async def replace(
    conn: AsyncConnection,
    owner: str,
    rid: str,
    resource: dict[str, Any],
    if_match: int | None,
    topics: Topics,
) -> SubscriptionRecord:
    current = await find(conn, owner, rid, lock=True)
    if if_match is not None and if_match != current.version:
        raise PreconditionFailed(
            f"Subscription/{rid} is at version {current.version}, not {if_match}",
            code=ErrorCode.VERSION_CONFLICT,
        )
    content, rtype, filters = checked(resource, topics)
    now, version = datetime.now(UTC), current.version + 1
    stamped = _stamped(content, rid, version, now)
    await _write(
        conn,
        current.pk,
        current.version,
        stamped["status"],
        now,
        version,
        stamped,
        resource_type=rtype,
        filters=filters,
    )
    return SubscriptionRecord(current.pk, rid, version, stamped["status"], stamped)


async def remove(conn: AsyncConnection, owner: str, rid: str) -> None:
    """Deleted subscriptions stop at once; their delivery log stays for the record."""
    current = await find(conn, owner, rid, lock=True)
    now = datetime.now(UTC)
    await _write(conn, current.pk, current.version, "deleted", now, current.version + 1, None)


async def _write(
    conn: AsyncConnection,
    pk: int,
    expected_version: int,
    status: str,
    now: datetime,
    version: int,
    content: dict[str, Any] | None,
    **criteria: str,
) -> None:
    """The next version, under the version read (a concurrent change is a 412)."""
    values: dict[str, Any] = {"status": status, "version": version, "updated_at": now, **criteria}
    if content is not None:
        values["resource"] = orjson.dumps(content).decode()
    done = await conn.execute(
        update(subscriptions)
        .where(subscriptions.c.pk == pk, subscriptions.c.version == expected_version)
        .values(**values)
    )
    if done.rowcount != 1:
        raise PreconditionFailed(
            "the Subscription changed concurrently; read it again",
            code=ErrorCode.VERSION_CONFLICT,
        )


async def owned(conn: AsyncConnection, owner: str) -> list[dict[str, Any]]:
    rows = await conn.execute(
        select(subscriptions.c.resource)
        .where(subscriptions.c.owner == owner, subscriptions.c.status != "deleted")
        .order_by(subscriptions.c.pk)
    )
    return [orjson.loads(resource) for (resource,) in rows]


async def status_of(conn: AsyncConnection, owner: str, rid: str) -> dict[str, Any]:
    """An R4B SubscriptionStatus: the events sent so far and how their deliveries stand."""
    record = await find(conn, owner, rid)
    counts = dict(
        (
            await conn.execute(
                select(subscription_deliveries.c.status, func.count())
                .where(subscription_deliveries.c.subscription_pk == record.pk)
                .group_by(subscription_deliveries.c.status)
            )
        ).all()
    )
    last_error = await conn.scalar(
        select(subscription_deliveries.c.last_error)
        .where(
            subscription_deliveries.c.subscription_pk == record.pk,
            subscription_deliveries.c.last_error.is_not(None),
        )
        .order_by(subscription_deliveries.c.pk.desc())
        .limit(1)
    )
    events = await conn.scalar(
        select(subscriptions.c.events_count).where(subscriptions.c.pk == record.pk)
    )
    status: dict[str, Any] = {
        "resourceType": "SubscriptionStatus",
        "status": record.status,
        "type": "query-status",
        "eventsSinceSubscriptionStart": str(events or 0),
        "subscription": {"reference": f"Subscription/{rid}"},
        "extension": [
            {
                "url": f"{SUBSCRIPTION_DELIVERIES_EXTENSION}-{state}",
                "valueUnsignedInt": int(counts.get(state, 0)),
            }
            for state in ("delivered", "pending", "failed")
        ],
    }
    if last_error:
        status["error"] = [{"text": last_error}]
    return status
