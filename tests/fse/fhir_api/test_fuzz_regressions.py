"""Replays every known bad input (fuzz_regressions.py) on both databases: each answer is one a
correct server may give, and honest (no 5xx; a refusal is an OperationOutcome with a code)."""

from __future__ import annotations

import httpx
import pytest

from tests.builders import create, patient
from tests.conftest import Platform
from tests.fse.fhir_api.fuzz_regressions import (
    HANGS_ON_POSTGRESQL,
    NEVER_A_500_NEVER_A_LIE,
    REPLAYS,
    Replay,
)
from tests.fse.fhir_api.honest_answers import dishonesty


def _case(replay: Replay) -> object:
    if replay.id in NEVER_A_500_NEVER_A_LIE:
        reason = "issue 'Never a 500, never a lie': fixed on another branch"
        return pytest.param(
            replay, id=replay.id, marks=pytest.mark.xfail(strict=True, reason=reason)
        )
    return pytest.param(replay, id=replay.id)


@pytest.mark.parametrize("replay", [_case(r) for r in REPLAYS])
async def test_known_bad_input_gets_an_honest_answer(
    platform: Platform, client: httpx.AsyncClient, replay: Replay
) -> None:
    if platform.backend == "postgresql" and replay.id in HANGS_ON_POSTGRESQL:
        pytest.xfail("not run on PostgreSQL: it would hang the session (see HANGS_ON_POSTGRESQL)")
    path = replay.path
    if "{patient}" in path:
        path = path.replace("{patient}", (await create(client, patient()))["id"])
    response = await client.request(
        replay.method, path, params=replay.params, headers=replay.headers, content=replay.body
    )
    problem = dishonesty(
        path, response.status_code, response.headers.get("content-type"), response.content
    )
    assert problem is None, f"{replay.method} {path}: {problem}"
    assert response.status_code in replay.expect, response.text[:500]


def test_the_known_failures_name_only_replayed_inputs() -> None:
    assert {r.id for r in REPLAYS} >= NEVER_A_500_NEVER_A_LIE >= HANGS_ON_POSTGRESQL
    assert len({r.id for r in REPLAYS}) == len(REPLAYS)
