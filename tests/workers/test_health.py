"""``/health`` tells the truth: 200 and ``ok`` while the trainer keeps up, 503 and
``degraded`` with the reason when a threshold of the settings is passed."""

from __future__ import annotations

import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from streamrec.model import ModelConfig
from streamrec.settings import Settings
from streamrec.stream.broker import ensure_topics
from streamrec.stream.client import Client
from streamrec.stream.topics import Topics
from streamrec.workers import Stack
from streamrec.workers.serving.follower import DeltaFollower


def _settings(tmp_path: Path, runtime: str, **extra: Any) -> Settings:
    values: dict[str, Any] = {"topic_prefix": f"h{uuid.uuid4().hex[:8]}", "runtime": runtime,
                              "data_dir": tmp_path / "data", "web_port": 0, "fetch_wait_ms": 5,
                              "checkpoint_interval_s": 3600, "model": ModelConfig(dim=8),
                              **extra}  # fmt: skip
    return Settings.load(values, environ={})


async def _get(port: int) -> tuple[int, dict[str, Any]]:
    import aiohttp

    async with (
        aiohttp.ClientSession() as http,
        http.get(f"http://127.0.0.1:{port}/health") as resp,
    ):
        return resp.status, await resp.json()


async def _health_after_30_clicks(
    bootstrap: str, embedded: bool, settings: Settings
) -> tuple[int, dict[str, Any]]:
    """A trainer's /health once it has learned 30 clicks."""
    await ensure_topics(bootstrap, Topics(settings.topic_prefix).partitions(settings.partitions))
    stack = Stack(settings, bootstrap, roles=("trainer",), embedded=embedded)
    await stack.start()
    client = Client(bootstrap, settings=settings)
    await client.start()
    try:
        for k in range(30):
            await client.track(f"u{k}", f"i{k % 7}", wait=False)
        await client.flush()
        assert await stack.state.wait_for(client.watermarks(), 30)
        assert stack.web is not None
        return await _get(stack.web.port)
    finally:
        await client.stop()
        await stack.stop()


@pytest.mark.integration
@pytest.mark.asyncio
@pytest.mark.parametrize("runtime", ["faust", "asyncio"])
async def test_health_is_503_with_the_reason_when_degraded(
    bootstrap: str, embedded: bool, tmp_path: Path, runtime: str
) -> None:
    # a checkpoint older than 1 ms is "too old": degraded from the start
    settings = _settings(tmp_path, runtime, health_max_checkpoint_age_s=0.001)
    status, body = await _health_after_30_clicks(bootstrap, embedded, settings)
    assert status == 503 and body["status"] == "degraded"
    assert [p.split()[0:2] for p in body["trainer"]["problems"]] == [["last", "checkpoint"]]
    assert body["trainer"]["lag"] == 0 and body["trainer"]["store_backlog"] == 0


@pytest.mark.integration
@pytest.mark.asyncio
async def test_health_is_200_and_ok_while_the_trainer_keeps_up(
    bootstrap: str, embedded: bool, tmp_path: Path
) -> None:
    settings = _settings(tmp_path, "asyncio")
    status, body = await _health_after_30_clicks(bootstrap, embedded, settings)
    assert (status, body["status"], body["trainer"]["problems"]) == (200, "ok", [])
    assert body["trainer"]["lag"] == 0


def test_a_replica_waiting_too_long_for_a_resync_is_degraded(tmp_path: Path) -> None:
    settings = _settings(tmp_path, "asyncio", health_max_replica_gap_s=5)
    follower = DeltaFollower(settings, "unused:9092")
    assert follower.health()["problems"] == []
    follower._waiting_since = time.monotonic() - 6  # a gap seen 6 s ago, no checkpoint since
    problems = follower.health()["problems"]
    assert len(problems) == 1 and problems[0].startswith("replica waiting 6 s > 5 s")
