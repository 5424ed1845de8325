"""Overload over the real broker: deadlines, the in-flight bound, concurrent requests.

A recommender holding ``max_in_flight`` requests answers the next ones ``overloaded`` at
once; a request read after its deadline, or whose deadline passes while it waits for
the model, is dropped unanswered; both are counted.  A request waiting for records the
model has not applied (``after``) holds back no other.  Blockers here wait on a
watermark no trainer will reach, so the outcome depends on no timing.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio

from streamrec.settings import Settings
from streamrec.stream.broker import ensure_topics
from streamrec.stream.client import Client
from streamrec.stream.schemas import RecRequest, RecResponse, Watermark
from streamrec.stream.topics import Topics
from streamrec.workers import Stack
from streamrec.workers.serving.recommender import OVERLOADED, WORKER
from tests.broker_helpers import onboard_two_topics

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="module")]

MAX_IN_FLIGHT = 5
BLOCKERS = 4


class Env:
    def __init__(self, stack: Stack, client: Client) -> None:
        self.stack, self.client = stack, client
        self.topics = client.topics

    def counter(self, name: str) -> float:
        return self.stack.metrics.get(WORKER, name)

    def never(self) -> list[Watermark]:
        """A watermark the model never reaches (nothing is published that far)."""
        return [Watermark(self.topics.interactions, 0, 10**9)]

    async def until(self, check: object, what: str, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while not check():  # type: ignore[operator]
            assert time.monotonic() < deadline, f"timed out waiting for {what}"
            await asyncio.sleep(0.02)


@pytest_asyncio.fixture(scope="module", loop_scope="module",
                        params=[{"runtime": "faust"},
                                {"runtime": "faust", "faust_requests": "agent"}],
                        ids=["fetch", "agent"])  # fmt: skip
async def env(
    request: pytest.FixtureRequest,
    bootstrap: str,
    embedded: bool,
    tmp_path_factory: pytest.TempPathFactory,
) -> AsyncIterator[Env]:
    settings = Settings.load(
        {"topic_prefix": f"ovl{uuid.uuid4().hex[:8]}", "data_dir": tmp_path_factory.mktemp("ovl"),
         "web_port": -1, **request.param, "fetch_wait_ms": 5, "checkpoint_interval_s": 0,
         "max_in_flight": MAX_IN_FLIGHT},
        environ={},
    )  # fmt: skip
    await ensure_topics(bootstrap, Topics(settings.topic_prefix).partitions(settings.partitions))
    stack = Stack(settings, bootstrap, fresh=True, embedded=embedded)
    await stack.start()
    assert await stack.ready(30)
    client = Client(bootstrap, settings=settings)
    await client.start()
    await onboard_two_topics(client, stack)
    yield Env(stack, client)
    await client.stop()
    await stack.stop()


async def _collect(client: Client, wanted: set[str], into: dict[str, RecResponse]) -> None:
    async for resp in client.responses():
        if resp.request_id in wanted:
            into[resp.request_id] = resp
            if len(into) == len(wanted):
                return


async def test_a_request_waiting_for_the_model_blocks_no_other_and_overload_is_answered(
    env: Env,
) -> None:
    client, rec = env.client, env.stack.recommender
    assert rec is not None
    far = time.time() + 600
    for n in range(BLOCKERS):  # they hold 4 of the 5 slots until the stack stops
        await client.send(env.topics.requests,
                          RecRequest(request_id=f"block-{n}", user="u", after=env.never(),
                                     deadline=far), "u")  # fmt: skip
    await env.until(lambda: rec.in_flight == BLOCKERS, "the blockers to be in flight")
    # one more request is answered at once, while the blockers still wait
    recs = await client.recommend("u", 5, consistent=False)
    assert recs.error is None and len(recs.ids) == 5
    assert rec.in_flight == BLOCKERS
    # a burst far above the one free slot: each request answered or refused, none lost
    burst = {f"burst-{n}" for n in range(40)}
    got: dict[str, RecResponse] = {}
    collector = asyncio.create_task(_collect(client, burst, got))
    await asyncio.sleep(0)
    overloaded_before = env.counter("overloaded_requests_total")
    deadline = time.time() + 60
    for request_id in sorted(burst):
        await client.send(env.topics.requests,
                          RecRequest(request_id=request_id, user="u", k=3, deadline=deadline),
                          "u")  # fmt: skip
    await asyncio.wait_for(collector, 60)
    refused = [r for r in got.values() if r.error == OVERLOADED]
    served = [r for r in got.values() if r.error is None]
    assert len(refused) + len(served) == len(burst)
    assert refused and served  # one slot: not all of a 40-request burst fits
    assert all(not r.items and r.strategy == "none" for r in refused)
    assert all(len(r.items) == 3 and r.ts <= deadline for r in served)
    assert env.counter("overloaded_requests_total") - overloaded_before == len(refused)
    assert rec.in_flight == BLOCKERS  # the blockers are still waiting


async def test_an_answer_says_when_it_was_computed_and_how_long_it_queued(env: Env) -> None:
    """``answered_at`` falls between the call and its return, and the recommender's queue
    and its work fit inside the round trip (what bench/scale.py splits the latency by)."""
    before = time.time()
    recs = await env.client.recommend("u", 5, consistent=False)
    after = time.time()
    assert recs.error is None
    assert before <= recs.answered_at <= after
    queue, total = recs.timing["queue_ms"], recs.timing["total_ms"]
    assert queue >= 0.0 and total >= recs.timing["compute_ms"] > 0.0
    assert queue + total <= (after - before) * 1000.0


async def test_expired_requests_are_dropped_and_counted_never_answered(env: Env) -> None:
    client = env.client
    expired_before = env.counter("expired_requests_total")
    answered_before = env.counter("requests_total")
    late = {f"late-{n}" for n in range(10)}
    got: dict[str, RecResponse] = {}
    collector = asyncio.create_task(_collect(client, late, got))
    await asyncio.sleep(0)
    past = time.time() - 1.0
    for request_id in sorted(late):
        await client.send(env.topics.requests,
                          RecRequest(request_id=request_id, user="u", deadline=past),
                          "u")  # fmt: skip
    # a request sent after them on the same partition: once it is answered, they were read
    recs = await client.recommend("u", 5, consistent=False)
    assert recs.error is None
    await env.until(lambda: env.counter("expired_requests_total") - expired_before >= 10,
                    "the late requests to be counted")  # fmt: skip
    assert env.counter("expired_requests_total") - expired_before == 10
    # a request whose deadline passes while it waits for the model is dropped as well
    soon = time.time() + 1.0
    await client.send(env.topics.requests,
                      RecRequest(request_id="late-wait", user="u", after=env.never(),
                                 deadline=soon), "u")  # fmt: skip
    await env.until(lambda: env.counter("expired_requests_total") - expired_before >= 11,
                    "the waiting request to expire")  # fmt: skip
    assert env.counter("requests_total") - answered_before == 1  # the probe only
    collector.cancel()
    assert not got  # none of the expired requests was answered
