"""Our own redis-server, on its own port, that a test may stop and start again."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.services import OwnRedis, free_port


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[OwnRedis]:
    redis = OwnRedis(tmp_path, free_port())
    redis.start()
    yield redis
    redis.stop()
