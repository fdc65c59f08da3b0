"""`fse pay` and `fse ledger check` as an operator runs them (real processes, SQLite file)."""

from __future__ import annotations

import sqlite3
from contextlib import closing
from pathlib import Path

import httpx

from fse.app import close, create_app
from fse.config import Settings
from fse.crypto.tokens import issue
from fse.security.clients import create_client
from tests.fse.test_cli import fse
from tests.reimbursement.demo import FATIMA, act, claim, load_demo


async def _settle_one(database: Path, tmp: Path) -> None:
    settings = Settings(
        database_url=f"sqlite:///{database}",
        signing_key_file=tmp / "key.pem",
        token_keys_file=tmp / "token-keys.json",
        payment_schedule=False,
        rate_limit_per_minute=0,
        rate_limit_per_system_client=0,
    )
    app = create_app(settings)
    client, _ = await create_client(app.state.engine, "cli-test", "system/*.cruds")
    audience = settings.token_audience
    token = issue(
        app.state.signing_key,
        {"iss": audience, "aud": audience, "sub": client.client_id, "scope": "system/*.cruds"},
        600,
    )
    transport = httpx.ASGITransport(app=app)
    headers = {"Authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(transport=transport, base_url="http://t", headers=headers) as h:
        refs = await load_demo(h)
        answer = await h.post("/fhir/Claim/$submit", json=claim(refs, FATIMA, [act("C", "150")]))
        assert answer.json()["outcome"] == "complete"
    await close(app)


async def test_pay_then_check_the_ledger(tmp_path: Path) -> None:
    database = tmp_path / "pay.sqlite3"
    assert fse("migrate", database=database).returncode == 0
    empty = fse("pay", database=database)
    assert empty.returncode == 0 and "nothing to pay" in empty.stdout
    await _settle_one(database, tmp_path)
    owed = fse("ledger", "check", database=database)
    assert owed.returncode == 0
    assert "owed 1 (56.00 MAD)" in owed.stdout and "ledger balances" in owed.stdout
    paid = fse("pay", database=database, FSE_PAYMENTS_DIR=str(tmp_path / "out"))
    assert paid.returncode == 0, paid.stderr
    assert "1 care sheets, 1 transfers, 56.00 MAD" in paid.stdout
    assert len(list((tmp_path / "out").glob("CNSS-*.xml"))) == 1
    assert "nothing to pay" in fse("pay", database=database).stdout
    checked = fse("ledger", "check", database=database)
    assert "paid 1 care sheets (56.00 MAD); owed 0 (0.00 MAD)" in checked.stdout
    # someone edits a benefit behind the ledger's back
    with closing(sqlite3.connect(database)) as conn, conn:
        conn.execute("UPDATE ledger_entries SET amount = 65 WHERE account = 'benefits'")
    tampered = fse("ledger", "check", database=database)
    assert tampered.returncode == 1
    assert "PROBLEM" in tampered.stdout and "ledger check FAILED" in tampered.stdout
