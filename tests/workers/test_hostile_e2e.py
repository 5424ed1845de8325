"""Hostile payloads on every consumed topic, through a real broker (both brokers).

One of each kind the issue names plus hypothesis-drawn ones, mixed into a clean world
on the interactions, entities and request topics: no exception escapes a worker, every
bad payload reaches the dead-letter topic with its original bytes, every clean event is
learned and a clean request is still answered.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable

import pytest

from streamrec.settings import Settings
from streamrec.stream.broker import ensure_topics
from streamrec.stream.client import Client
from streamrec.stream.kafka_clients import make_producer
from streamrec.stream.schemas import Watermark
from streamrec.stream.topics import Topics
from streamrec.workers import Stack
from tests.broker_helpers import read_dead_letters
from tests.hostile import clean_world, draw_payloads, every_kind

pytestmark = [pytest.mark.integration, pytest.mark.asyncio]


async def test_hostile_payloads_are_dead_lettered_and_clean_events_learned(
    bootstrap: str,
    embedded: bool,
    settings_factory: Callable[..., Settings],
    caplog: pytest.LogCaptureFixture,
) -> None:
    settings = settings_factory(runtime="asyncio", checkpoint_interval_s=0)
    topics = Topics(settings.topic_prefix)
    await ensure_topics(bootstrap, topics.partitions(settings.partitions))
    world = clean_world(300)
    bad = every_kind() + draw_payloads(30)
    names = {"interactions": topics.interactions, "entities": topics.entities,
             "requests": topics.requests}  # fmt: skip
    stack = Stack(settings, bootstrap, fresh=True, web=False, embedded=embedded)
    await stack.start()
    producer = await make_producer(bootstrap, max_request_size=4 * 1024 * 1024)
    await producer.start()
    caplog.set_level(logging.ERROR)
    try:
        assert await stack.ready(30)
        ends: dict[tuple[str, int], int] = {}

        async def send(topic: str, value: bytes, key: bytes) -> None:
            md = await (await producer.send(topic, value, key=key))
            if topic != topics.requests:
                ends[(topic, md.partition)] = max(ends.get((topic, md.partition), -1), md.offset)

        clean = [(topics.entities, v) for v in world.entities]
        clean += [(topics.interactions, v) for v in world.interactions]
        step = len(clean) // len(bad)
        for n, (topic, value) in enumerate(clean):
            await send(topic, value, b"k%d" % (n % 7))
            if n % step == 0 and n // step < len(bad):
                payload = bad[n // step]
                await send(names[payload.topic], payload.value, b"hostile")
        marks = [Watermark(t, p, o) for (t, p), o in ends.items()]
        assert await stack.state.wait_for(marks, 60)

        letters = await read_dead_letters(bootstrap, topics.dead_letters, len(bad))
        assert Counter(d.original for d in letters) == Counter(p.value for p in bad)
        assert all(d.reason for d in letters)
        model = stack.state.model
        assert model.n_events == world.n_events
        assert model.n_users == 40 and model.n_items == 30
        async with Client(bootstrap, settings=settings) as client:
            answer = await client.recommend("u1", 5)
            assert len(answer.ids) == 5
        escaped = [r for r in caplog.records if "loop error" in r.getMessage()]
        assert escaped == []
    finally:
        await producer.stop()
        await stack.stop()


async def test_a_letter_too_large_to_send_is_cut_and_blocks_none_behind_it(
    bootstrap: str, settings_factory: Callable[..., Settings]
) -> None:
    from streamrec.stream.dead_letters import CUT_BYTES, dead_letter, send_dead_letters
    from streamrec.stream.records import Record

    topics = Topics(settings_factory().topic_prefix)
    await ensure_topics(bootstrap, {topics.dead_letters: 1})
    producer = await make_producer(bootstrap, max_request_size=200_000)
    await producer.start()
    try:
        huge = Record("src", 0, 7, b"k", b"x" * 300_000)
        small = Record("src", 0, 8, b"k", b'{"kind": "bogus"}')
        letters = [dead_letter("too big", huge, "trainer"), dead_letter("bad", small, "trainer")]
        assert await send_dead_letters(producer, topics.dead_letters, letters) == 2
    finally:
        await producer.stop()
    got = await read_dead_letters(bootstrap, topics.dead_letters, 2)
    assert [d.source_offset for d in got] == [7, 8]
    assert got[0].truncated and got[0].original_size == 300_000
    assert got[0].original == b"x" * CUT_BYTES
    assert not got[1].truncated and got[1].original == b'{"kind": "bogus"}'
