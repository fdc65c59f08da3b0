"""Property: whatever is submitted, released and paid, in any order, the ledger balances, what
left the bank equals the benefits of the paid care sheets, and nothing is paid twice."""

from __future__ import annotations

import asyncio
import shutil
from decimal import Decimal
from pathlib import Path

import httpx
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from fse.app import close, create_app
from fse.config import Settings
from fse.crypto.tokens import issue
from fse.migrate import upgrade
from fse.security.clients import create_client
from reimbursement.feature import schedule_of
from reimbursement.ledger import check_ledger
from reimbursement.payments import Payments
from reimbursement.tables import ledger_entries, settlements
from tests.reimbursement.demo import (
    BENNANI,
    CHRAIBI,
    FASSI,
    FATIMA,
    OUAZZANI,
    TAZI,
    act,
    claim,
    load_demo,
)

PATIENTS = (FATIMA, TAZI, BENNANI, OUAZZANI, CHRAIBI, FASSI)
ACTS = (("C", None), ("Z", "15"), ("B", "120"), ("K", "30"), ("Cs", None))
STEPS = st.lists(
    st.one_of(
        st.tuples(
            st.just("submit"),
            st.sampled_from(PATIENTS),
            st.sampled_from(ACTS),
            st.decimals(min_value=0, max_value=1000, places=2, allow_nan=False),  # < ceilings
            st.integers(min_value=1, max_value=20),
        ),
        st.tuples(st.just("pay")),
        st.tuples(st.just("resubmit")),
    ),
    min_size=1,
    max_size=12,
)
TEMPLATE: dict[str, Path] = {}


def _template(tmp: Path) -> Path:
    """One migrated SQLite file, copied for each example (migrating costs a second)."""
    if "db" not in TEMPLATE:
        path = tmp / "template.sqlite3"
        upgrade(f"sqlite+aiosqlite:///{path}")
        TEMPLATE["db"] = path
    return TEMPLATE["db"]


async def _scenario(database: Path, tmp: Path, steps: list[tuple[object, ...]]) -> None:
    config = Settings(
        database_url=f"sqlite:///{database}",
        signing_key_file=tmp / "key.pem",
        token_keys_file=tmp / "token-keys.json",
        payments_dir=tmp / "payments",
        payment_schedule=False,
        rate_limit_per_minute=0,
        rate_limit_per_system_client=0,
    )
    app = create_app(config)
    client, _ = await create_client(app.state.engine, "property", "system/*.cruds")
    audience = config.token_audience
    claims = {"iss": audience, "aud": audience, "sub": client.client_id, "scope": "system/*.cruds"}
    headers = {"Authorization": f"Bearer {issue(app.state.signing_key, claims, 600)}"}
    payer = Payments(app.state.fhir, config, schedule_of(config).zone)
    transport = httpx.ASGITransport(app=app)
    sent: list[dict[str, object]] = []
    batches = Decimal("0.00")
    try:
        async with httpx.AsyncClient(
            transport=transport, base_url="http://t", headers=headers
        ) as h:
            refs = await load_demo(h)
            for step in steps:
                if step[0] == "submit":
                    _, patient, (code, coefficient), billed, day = step
                    items = [act(code, str(billed), f"2026-11-{day:02d}", coefficient)]
                    sent.append(claim(refs, patient, items))
                    assert (await h.post("/fhir/Claim/$submit", json=sent[-1])).status_code == 200
                elif step[0] == "resubmit" and sent:
                    assert (await h.post("/fhir/Claim/$submit", json=sent[0])).status_code == 200
                elif step[0] == "pay":
                    batches += sum((r.total for r in await payer.run()), Decimal("0.00"))
            batches += sum((r.total for r in await payer.run()), Decimal("0.00"))
        report = await check_ledger(app.state.engine)
        assert report.ok, report.problems
        async with app.state.engine.connect() as conn:
            approved = await conn.scalar(
                select(func.coalesce(func.sum(settlements.c.benefit), 0)).where(
                    settlements.c.status == "approved", settlements.c.approval_seq.is_not(None)
                )
            )
            bank = await conn.scalar(
                select(func.coalesce(func.sum(ledger_entries.c.amount), 0)).where(
                    ledger_entries.c.account == "bank"
                )
            )
            count = await conn.scalar(select(func.count()).select_from(settlements))
        assert count == len({c["identifier"][0]["value"] for c in sent})  # type: ignore[index]
        assert report.paid == batches == Decimal(approved) == -Decimal(bank)
        assert report.owed == Decimal("0.00")
    finally:
        await close(app)


@settings(
    max_examples=12,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(steps=STEPS)
def test_ledger_sums_equal_payments(tmp_path: Path, steps: list[tuple[object, ...]]) -> None:
    database = tmp_path / "example.sqlite3"
    shutil.copy(_template(tmp_path), database)
    asyncio.run(_scenario(database, tmp_path, steps))
