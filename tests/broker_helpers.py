"""Helpers for the tests that talk to a real broker."""

from __future__ import annotations

import time
from collections.abc import Callable

from streamrec.stream.client import Client
from streamrec.stream.codec import decode
from streamrec.stream.schemas import DeadLetter
from streamrec.workers import Stack


async def read_dead_letters(
    bootstrap: str, topic: str, n: int, match: Callable[[DeadLetter], bool] | None = None
) -> list[DeadLetter]:
    """The first ``n`` dead letters on ``topic`` (that ``match``; fewer if 20 s pass first)."""
    from aiokafka import AIOKafkaConsumer

    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest")
    await consumer.start()
    out: list[DeadLetter] = []
    try:
        deadline = time.monotonic() + 20
        while len(out) < n and time.monotonic() < deadline:
            batch = await consumer.getmany(timeout_ms=200)
            letters = [decode(r.value, DeadLetter) for recs in batch.values() for r in recs]
            out += [d for d in letters if match is None or match(d)]
    finally:
        await consumer.stop()
    return out


async def onboard_two_topics(client: Client, stack: Stack) -> None:
    """20 items alternating ``topic=0`` / ``topic=1`` and a user ``u`` who likes topic 0,
    published by ``client`` and waited for in ``stack``'s model."""
    for i in range(20):
        await client.add_item(f"it-{i}", [f"topic={i % 2}"], wait=False)
    await client.add_user("u", ["likes=0"], wait=False)
    await client.flush()
    assert await stack.state.wait_for(client.watermarks(), 30)
