"""The broker replay gives the in-process prequential figures (MovieLens 100K slice)."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

import pytest

from streamrec.eval.broker_replay import replay_log
from streamrec.eval.datasets import load_movielens
from streamrec.eval.prequential import replay
from streamrec.settings import Settings
from streamrec.stream.broker import ensure_topics
from streamrec.stream.client import Client
from streamrec.stream.topics import Topics
from streamrec.workers import Stack

ML100K = Path(__file__).resolve().parents[2].parent / "shared" / "datasets" / "ml-100k"
N_EVENTS = 5000

pytestmark = pytest.mark.integration


@pytest.mark.skipif(
    not (ML100K / "u.data").is_file(),
    reason=f"MovieLens 100K not found at {ML100K} (it is never copied into the repository)",
)
def test_broker_replay_matches_in_process_replay(bootstrap: str, tmp_path: Path) -> None:
    log = load_movielens(ML100K).head(N_EVENTS)
    reference = replay(log).metrics()["model"]

    async def through_broker() -> tuple[float, float, int]:
        settings = Settings.load({"topic_prefix": f"par{uuid.uuid4().hex[:8]}", "data_dir": tmp_path,
                                  "web_port": -1, "fetch_wait_ms": 2, "reorder_ms": 10},
                                 environ={})  # fmt: skip
        await ensure_topics(
            bootstrap, Topics(settings.topic_prefix).partitions(settings.partitions)
        )
        # the reorder window absorbs the broker handing out records of different partitions
        # in different fetches: then the trainer learns in exactly the published order
        stack = Stack(settings, bootstrap, fresh=True, web=False)
        await stack.start()
        try:
            assert await stack.ready(30)
            async with Client(bootstrap, settings=settings, timeout=30) as client:
                result = await replay_log(client, log)
        finally:
            await stack.stop()
        assert result.stale == 0
        return result.hr, result.cold_hr, result.n_scored

    hr, cold_hr, n_scored = asyncio.run(through_broker())
    print(
        f"in-process HR@10 {reference['hr']:.4f}, through the broker {hr:.4f} "
        f"({n_scored} scored); cold-user HR@10 {reference['cold_hr']:.4f} vs {cold_hr:.4f}"
    )
    assert abs(hr - reference["hr"]) <= 0.01
