"""A payment batch is paid once and its pain.001 file is written once, whatever is killed and
whoever runs at the same time: every `fse pay` may die at any step (SIGKILL), two may start at
once, and each server worker wakes at the same cut-off."""

from __future__ import annotations

import asyncio
import hashlib
import os
import re
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
from sqlalchemy import func, select

from reimbursement.ledger import check_ledger
from reimbursement.tables import ledger_entries, payment_batches
from tests.conftest import Platform
from tests.reimbursement.demo import FATIMA, act, claim, load_demo
from tests.reimbursement.test_review_and_payments import payments
from tests.services import free_port

SUBMIT = "/fhir/Claim/$submit"
KILL_STEPS = ("assigned", "written", "recorded", "renamed", "completing")
"""The steps of `fse pay` where FSE_TEST_KILL_AT kills it (reimbursement/payments.py)."""


async def _two_sheets(client: httpx.AsyncClient) -> None:
    refs = await load_demo(client)
    for billed, day in (("150.00", "2026-11-20"), ("80.00", "2026-11-21")):
        answer = await client.post(SUBMIT, json=claim(refs, FATIMA, [act("C", billed, day)]))
        assert answer.json()["outcome"] == "complete", answer.text


def _environ(platform: Platform, out: Path, **extra: str) -> dict[str, str]:
    settings = platform.settings
    environ = {k: v for k, v in os.environ.items() if not k.startswith("FSE_")}
    return {
        **environ,
        "FSE_DATABASE_URL": settings.database_url,
        "FSE_PAYMENTS_DIR": str(out),
        "FSE_CIN_KEY_FILE": str(settings.cin_key_file),
        "FSE_SIGNING_KEY_FILE": str(settings.signing_key_file),
        "FSE_REFERENCE_DATA_DIR": str(settings.reference_data_dir),
        **extra,
    }


def _pay(platform: Platform, out: Path, **extra: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "fse.cli", "pay"],
        env=_environ(platform, out, **extra),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _finished(process: subprocess.Popen[str]) -> tuple[int, str]:
    out, err = process.communicate(timeout=120)
    return process.returncode, out + err


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


async def _batches(platform: Platform) -> list[Any]:
    async with platform.engine.connect() as conn:
        return list(await conn.execute(select(payment_batches).order_by(payment_batches.c.pk)))


async def _payment_journals(platform: Platform) -> int:
    e = ledger_entries.c
    async with platform.engine.connect() as conn:
        query = select(func.count(func.distinct(e.journal))).where(e.kind == "payment")
        return int(await conn.scalar(query) or 0)


async def _paid_once(platform: Platform, out: Path, sheets: int = 2) -> tuple[Any, Path]:
    """One batch, paid, booked once; its file the only one in ``out``, its digest on record."""
    batches = await _batches(platform)
    assert [(b.status, b.settlement_count) for b in batches] == [("paid", sheets)]
    batch = batches[0]
    files = sorted(out.iterdir())
    assert [f.name for f in files] == [f"{batch.batch_id}.xml"], files
    assert batch.file_path == str(files[0])
    assert batch.file_sha256 == _sha256(files[0])
    assert await _payment_journals(platform) == 1
    report = await check_ledger(platform.engine)
    assert report.ok, report.problems
    assert (report.settlements_paid, report.settlements_owed) == (sheets, 0)
    return batch, files[0]


def _times(document: bytes) -> tuple[str, str]:
    text = document.decode("utf-8")
    created = re.search(r"<CreDtTm>(.*?)</CreDtTm>", text)
    execution = re.search(r"<ReqdExctnDt>(.*?)</ReqdExctnDt>", text)
    assert created and execution, text[:400]
    return created.group(1), execution.group(1)


def _from_the_batch_row(batch: Any, document: bytes) -> None:
    """Every time in the file is the batch's, never the clock's when it was written."""
    created = batch.created_at.astimezone(UTC).replace(microsecond=0).isoformat()
    assert _times(document) == (created, batch.execution_date.isoformat())


async def test_a_batch_completed_after_its_file_was_renamed_keeps_the_same_bytes(
    client: httpx.AsyncClient, platform: Platform, monkeypatch: pytest.MonkeyPatch
) -> None:
    await _two_sheets(client)
    out = Path(platform.settings.payments_dir)
    earlier = set(out.glob("*.xml"))  # other tests' batches share the directory

    async def killed(*_args: Any) -> None:
        raise RuntimeError("the process dies before the batch is marked paid")

    monkeypatch.setattr("reimbursement.payments.book_payment", killed)
    morning = datetime(2026, 11, 23, 9, 0, 5, tzinfo=UTC)
    with pytest.raises(RuntimeError):
        await payments(platform).run(now=morning)
    (left,) = set(out.glob("*.xml")) - earlier  # complete-looking, the batch still assigned
    first = left.read_bytes()
    assert [b.status for b in await _batches(platform)] == ["assigned"]
    monkeypatch.undo()
    results = await payments(platform).run(now=morning + timedelta(hours=2, seconds=7))
    assert [(r.resumed, r.settlements, r.file) for r in results] == [(True, 2, left)]
    assert left.read_bytes() == first  # the rerun writes the very same bytes
    (batch,) = await _batches(platform)
    assert batch.file_sha256 == _sha256(left)
    _from_the_batch_row(batch, first)


async def test_two_runs_on_one_interrupted_batch_pay_it_once_with_the_digest_on_disk(
    client: httpx.AsyncClient, platform: Platform
) -> None:
    await _two_sheets(client)
    assigned = datetime(2026, 11, 23, 9, 0, 5, tzinfo=UTC)
    assert await payments(platform)._assign(assigned) is not None  # then the process dies
    outcomes = await asyncio.gather(
        payments(platform).run(now=assigned + timedelta(minutes=5)),
        payments(platform).run(now=assigned + timedelta(minutes=9)),
        return_exceptions=True,
    )
    paid = [o for o in outcomes if isinstance(o, list) and o]
    assert len(paid) == 1, outcomes  # the other found the batch taken, or nothing left
    (batch,) = await _batches(platform)
    assert batch.status == "paid" and batch.file_sha256 == _sha256(Path(batch.file_path))
    assert await _payment_journals(platform) == 1
    assert (await check_ledger(platform.engine)).ok


async def test_fse_pay_killed_at_each_step_then_run_again_pays_once_the_same_file(
    client: httpx.AsyncClient, platform: Platform, tmp_path: Path
) -> None:
    """Each run is killed one step further than the one before (each a rerun of the previous,
    which must get past its step), then a last run completes: one batch, paid once, its file
    the very bytes every killed run had written."""
    await _two_sheets(client)
    out = tmp_path / "payments"
    left: dict[str, bytes] = {}
    for step in KILL_STEPS:
        code, said = _finished(_pay(platform, out, FSE_TEST_KILL_AT=step))
        assert code == -signal.SIGKILL, (step, said)
        (batch,) = await _batches(platform)
        assert batch.status == "assigned", step  # killed before it was paid: nothing booked
        assert await _payment_journals(platform) == 0, step
        if out.exists():
            left |= {f"{step}: {f.name}": f.read_bytes() for f in out.iterdir()}
        final = out / f"{batch.batch_id}.xml"
        if batch.file_sha256 is not None and final.exists():
            assert batch.file_sha256 == _sha256(final), step  # on record is what is on disk
    assert len(left) == len(KILL_STEPS) - 1  # every step but the assignment left a file
    code, said = _finished(_pay(platform, out))
    assert code == 0 and "interrupted batch completed" in said, said
    batch, final = await _paid_once(platform, out)
    for name, content in left.items():  # the temporary or final file each killed run left
        assert content == final.read_bytes(), name
    _from_the_batch_row(batch, final.read_bytes())


async def test_two_fse_pay_started_at_once_write_one_batch_and_one_file(
    client: httpx.AsyncClient, platform: Platform, tmp_path: Path
) -> None:
    await _two_sheets(client)
    out = tmp_path / "payments"
    both = [_pay(platform, out), _pay(platform, out)]
    finished = [_finished(process) for process in both]
    assert [code for code, _ in finished] == [0, 0], finished
    said = "\n".join(text for _, text in finished)
    assert said.count("2 care sheets, 1 transfers, 112.00 MAD") == 1, said
    await _paid_once(platform, out)


RUNS = re.compile(r"cut-off (.+?): \S+ runs fse pay")
SKIPS = re.compile(r"cut-off (.+?): another worker runs fse pay; nothing done here")
EXITS = re.compile(r"fse pay at (.+?): exit (-?\d+)")


async def test_two_server_workers_at_a_cutoff_run_one_pay(
    client: httpx.AsyncClient, platform: Platform, tmp_path: Path
) -> None:
    """`fse serve --workers 2` with a cut-off every 3 seconds: once both workers are up, each
    cut-off wakes both; one runs `fse pay`, the other says in the log that it does nothing."""
    await _two_sheets(client)
    out = tmp_path / "payments"
    zone = ZoneInfo(platform.settings.payment_timezone)
    start = datetime.now(zone).replace(microsecond=0) + timedelta(seconds=4)
    cutoffs = ",".join(f"{start + timedelta(seconds=3 * n):%H:%M:%S}" for n in range(30))
    environ = _environ(
        platform,
        out,
        FSE_PAYMENT_CUTOFFS=cutoffs,
        FSE_REDIS_NAMESPACE=platform.settings.redis_namespace,
        FSE_SUBSCRIPTION_WORKER_IN_SERVER="false",
    )
    if platform.settings.redis_url:
        environ["FSE_REDIS_URL"] = platform.settings.redis_url
    log = tmp_path / "server.log"
    serve = ["serve", "--workers", "2", "--port", str(free_port()), "--quiet"]
    with log.open("w") as sink:
        server = subprocess.Popen(
            [sys.executable, "-m", "fse.cli", *serve],
            env=environ,
            stdout=sink,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its workers and their `fse pay` are stopped with it
        )
    try:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            said = log.read_text()
            exited = {cutoff for cutoff, _ in EXITS.findall(said)}
            if set(RUNS.findall(said)) & set(SKIPS.findall(said)) & exited:
                break  # a cut-off both workers woke at, paid by one
            await asyncio.sleep(0.3)
    finally:
        _stop(server)
    said = log.read_text()
    runs = RUNS.findall(said)
    assert runs and len(runs) == len(set(runs)), said  # never two pays for one cut-off
    assert set(runs) & set(SKIPS.findall(said)), said
    assert all(code == "0" for _, code in EXITS.findall(said)), said
    await _paid_once(platform, out)
    assert (await check_ledger(platform.engine)).paid == Decimal("112.00")


def _stop(server: subprocess.Popen[bytes]) -> None:
    """Stop the server, then wait for the `fse pay` a worker may have started to finish."""
    server.send_signal(signal.SIGINT)
    try:
        server.wait(timeout=30)
    except subprocess.TimeoutExpired:
        server.kill()
        server.wait()
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            os.killpg(server.pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.2)
    os.killpg(server.pid, signal.SIGKILL)
