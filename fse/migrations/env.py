"""Alembic environment: runs migrations over the async engine of the configured database.

The product has one Alembic history for the kernel's tables and the features': every module that
declares tables adds them to the store's metadata, so this program imports each of them, and an
autogenerate finds nothing to do (tests/fse/test_migrations.py). Alembic runs this file as a
program, never as a library: fse.migrations sits on the assembly floor with fse/app.py and
fse/cli.py, above the features (tests/test_architecture.py).
"""

from __future__ import annotations

import asyncio

from alembic import context
from sqlalchemy.engine import Connection

from fse import access_log, audit_chain, outbox
from fse.db import create_engine
from fse.export import jobs as export_jobs
from fse.security import tables as security_tables
from fse.store.tables import metadata
from fse.subscriptions import tables as subscription_tables
from pharmacy import tables as pharmacy_tables
from prescriber import tables as prescriber_tables
from reimbursement import tables as reimbursement_tables

# Every module declaring tables, kernel then features: importing one adds its tables to the
# store's metadata, the one the migrations are compared with.
TABLE_MODULES = (
    access_log,
    audit_chain,
    export_jobs,
    outbox,
    security_tables,
    subscription_tables,
    pharmacy_tables,
    prescriber_tables,
    reimbursement_tables,
)

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
