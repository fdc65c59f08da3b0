"""Alembic environment: runs migrations over the async engine of the configured database.

The product has one Alembic history for the kernel's tables and the features': every module that
declares tables adds them to the store's metadata. The assembly (``fse.app.TABLE_MODULES``) names
them, features included, so this program imports the assembly, not the features, and an
autogenerate finds nothing to do (tests/fse/test_migrations.py).
"""

from __future__ import annotations

import asyncio

from alembic import context
from sqlalchemy.engine import Connection

from fse.app import TABLE_MODULES
from fse.db import create_engine
from fse.store.tables import metadata

assert TABLE_MODULES  # imported: every table is on the store's metadata

config = context.config


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


async def _online() -> None:
    engine = create_engine(config.get_main_option("sqlalchemy.url") or "")
    async with engine.connect() as connection:
        await connection.run_sync(_run)
        await connection.commit()
    await engine.dispose()


if context.is_offline_mode():
    context.configure(url=config.get_main_option("sqlalchemy.url"), target_metadata=metadata)
    with context.begin_transaction():
        context.run_migrations()
else:
    asyncio.run(_online())
