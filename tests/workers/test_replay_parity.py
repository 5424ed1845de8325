"""The broker replay gives the in-process prequential figures (MovieLens 100K slice),
hit for hit: the trainer learns the very same stream (random draws included) and the
recommender serves the model's own top k (the continuity signal included)."""

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
N_EVENTS = 3000

pytestmark = pytest.mark.integration


@pytest.mark.skipif(
    not (ML100K / "u.data").is_file(),
    reason=f"MovieLens 100K not found at {ML100K} (it is never copied into the repository)",
)
def test_broker_replay_matches_in_process_replay(bootstrap: str, tmp_path: Path) -> None:
    log = load_movielens(ML100K).head(N_EVENTS)
    reference = replay(log)
    mine = reference.systems["model"]
    want = (len(mine.hits), int(mine.hits.sum()), int(mine.hits[reference.cold].sum()))

    async def through_broker() -> tuple[int, int, int]:
        settings = Settings.load({"topic_prefix": f"par{uuid.uuid4().hex[:8]}", "data_dir": tmp_path,
                                  "web_port": -1, "fetch_wait_ms": 2, "reorder_ms": 30},
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
        return result.n_scored, result.hits, result.cold_hits

    got = asyncio.run(through_broker())
    print(f"scored, hits, cold-user hits: in process {want}, through the broker {got}")
    assert got == want
