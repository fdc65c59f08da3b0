"""Engine construction: one place that knows the SQLite and PostgreSQL particulars."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import event, exc
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine
from sqlalchemy.pool import NullPool


def _identity(value: Any) -> Any:
    return value


def create_engine(url: str, pool_size: int = 20) -> AsyncEngine:
    """An async engine whose JSON columns carry text untouched (we store and serve JSON text)."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        database = parsed.database or ""
        if database and database != ":memory:":
            Path(database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_async_engine(
            url,
            json_serializer=_identity,
            json_deserializer=_identity,
            poolclass=NullPool if database == ":memory:" else None,
            connect_args={"timeout": 30},
        )
        _configure_sqlite(engine)
        return engine
    # Every use of a connection ends its own transaction (commit or rollback in a context
    # manager), so the pool need not issue a ROLLBACK round trip on each checkin.
    engine = create_async_engine(
        url,
        json_serializer=_identity,
        json_deserializer=_identity,
        pool_size=pool_size,
        max_overflow=pool_size,
        pool_pre_ping=False,
        pool_reset_on_return=None,
    )
    _drop_closed_connections(engine)
    return engine


@asynccontextmanager
async def reading(engine: AsyncEngine) -> AsyncIterator[AsyncConnection]:
    """A connection for reads: autocommit on PostgreSQL (no BEGIN and ROLLBACK round trips
    around them; each statement sees the committed state as it starts), a read transaction on
    SQLite."""
    async with engine.connect() as conn:
        if engine.dialect.name == "postgresql":
            await conn.execution_options(isolation_level="AUTOCOMMIT")
            yield conn
        else:
            async with conn.begin():
                yield conn


def _drop_closed_connections(engine: AsyncEngine) -> None:
    """pool_pre_ping without its round trip: a pooled connection the server closed (PostgreSQL
    restarted, or ended the backend) is replaced at checkout rather than failing the request.
    asyncpg learns of the close as soon as the server's goodbye arrives, so a restart is seen by
    the first request after it, not by its failure."""

    @event.listens_for(engine.sync_engine, "checkout")
    def _on_checkout(dbapi_connection: Any, _record: Any, _proxy: Any) -> None:
        raw = getattr(dbapi_connection, "_connection", None)
        if raw is not None and raw.is_closed():
            raise exc.DisconnectionError("the server closed this pooled connection")


UNAVAILABLE_NAMES = frozenset(
    {
        "CannotConnectNowError",  # the database system is starting up / shutting down
        "ConnectionDoesNotExistError",
        "ConnectionFailureError",
        "AdminShutdownError",
        "CrashShutdownError",
        "TooManyConnectionsError",
    }
)


def unavailable(error: BaseException) -> bool:
    """Whether an error means the database cannot be reached now (refused, restarting, the
    connection lost), rather than a fault of the request or the code: such a request is
    answered 503 with Retry-After, never 500."""
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, exc.DBAPIError) and current.connection_invalidated:
            return True
        if isinstance(current, (ConnectionError, TimeoutError, exc.TimeoutError)):
            return True
        if type(current).__name__ in UNAVAILABLE_NAMES:
            return True
        if "connection is closed" in str(current) or "connection was closed" in str(current):
            return True
        orig = getattr(current, "orig", None)
        current = orig if isinstance(orig, BaseException) else current.__cause__
    return False


def _configure_sqlite(engine: AsyncEngine) -> None:
    """WAL for concurrent readers; writers take the lock up front (BEGIN IMMEDIATE) so two
    writers never deadlock upgrading a read lock, and conditional creates serialise."""

    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        for pragma in (
            "journal_mode=WAL",
            "synchronous=NORMAL",
            "foreign_keys=ON",
            "busy_timeout=30000",
        ):
            cursor.execute(f"PRAGMA {pragma}")
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(conn: Any) -> None:
        write = conn.get_execution_options().get("fse_write", False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")
