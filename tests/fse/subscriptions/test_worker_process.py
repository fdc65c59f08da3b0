"""`fse worker` killed in the middle of a post: the delivery's lease expires, the next worker
posts it again, and a receiver that drops repeats by event id acts on it exactly once."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time

import httpx
from sqlalchemy import select

from fse.subscriptions.tables import subscription_deliveries
from tests.conftest import Platform
from tests.fse.subscriptions.receiver import Receiver
from tests.fse.subscriptions.test_subscriptions import SUBMIT, subscription
from tests.reimbursement.demo import FATIMA, act, claim, load_demo


def worker_process(platform: Platform, *args: str) -> subprocess.Popen[str]:
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith("FSE_")  # no Redis: the worker polls the database
    }
    env |= {
        "FSE_DATABASE_URL": platform.settings.database_url,
        "FSE_CIN_KEY_FILE": str(platform.settings.cin_key_file),
        "FSE_SUBSCRIPTION_LEASE_SECONDS": "1",
        "FSE_SUBSCRIPTION_POLL_SECONDS": "0.2",
        "FSE_SUBSCRIPTION_TIMEOUT_SECONDS": "120",
    }
    return subprocess.Popen(
        [sys.executable, "-m", "fse.cli", "worker", *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


async def delivery(platform: Platform) -> tuple[str, int]:
    async with platform.engine.connect() as conn:
        row = (await conn.execute(select(subscription_deliveries))).one()
    return row.status, row.attempts


async def test_a_worker_killed_mid_delivery_is_taken_over_and_the_event_acted_on_once(
    platform: Platform, client: httpx.AsyncClient
) -> None:
    receiver = Receiver(mode="hang").start()  # takes the post, never answers in time
    try:
        token = await platform.token_with("system/Subscription.cruds")
        created = await client.post(
            "/fhir/Subscription",
            json=subscription(receiver.url, "ClaimResponse?outcome=complete"),
            headers={"Authorization": f"Bearer {token}"},
        )
        assert created.status_code == 201, created.text
        refs = await load_demo(client)
        await client.post(SUBMIT, json=claim(refs, FATIMA, [act("C", "80.00", "2026-11-20")]))

        first = worker_process(platform)
        try:
            await asyncio.to_thread(receiver.wait_for, 1, 60)
        finally:
            first.send_signal(signal.SIGKILL)  # mid-delivery: the receiver has not answered
            first.communicate(timeout=10)
        assert await delivery(platform) == ("pending", 1)  # leased, attempt counted, not done

        receiver.mode = "ok"
        time.sleep(1.2)  # the dead worker's lease expires
        second = worker_process(platform, "--once")
        out, err = second.communicate(timeout=120)
        assert second.returncode == 0, err
        assert "1 delivered" in out
        assert await delivery(platform) == ("delivered", 2)
        assert len(receiver.received) == 2  # posted twice over the crash...
        assert len(receiver.processed()) == 1  # ...acted on once, by its event id
        assert receiver.received[0].body == receiver.received[1].body
    finally:
        receiver.stop()
