"""Topic recreation off a busy event loop (the trainer's rotation of its deltas topic)."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable

import pytest

from streamrec.stream.broker import ensure_topics, recreate_topic, recreate_topic_in_thread

#: how long each step of the stand-in for learning holds the loop
STEP_S = 0.05


async def _steps_while(recreate: Callable[[], Awaitable[None]]) -> int:
    """How many loop-holding steps a stand-in for the trainer's learning took while
    ``recreate`` ran beside it (each step holds the loop, as a learned batch does)."""
    done = asyncio.Event()
    steps = 0

    async def learning() -> None:
        nonlocal steps
        while not done.is_set():
            time.sleep(STEP_S)
            steps += 1
            await asyncio.sleep(0)

    task = asyncio.create_task(learning())
    try:
        await recreate()
    finally:
        done.set()
        await task
    return steps


@pytest.mark.asyncio
async def test_a_recreation_in_a_thread_does_not_wait_for_the_loop(
    embedded_bootstrap: str,
) -> None:
    """On the busy loop every round trip of the admin clients waits for a step; in a
    thread the recreation goes on while the loop is held.  Both leave the topic empty."""
    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

    name = f"t{uuid.uuid4().hex[:10]}.deltas"
    await ensure_topics(embedded_bootstrap, {name: 1})
    producer = AIOKafkaProducer(bootstrap_servers=embedded_bootstrap)
    await producer.start()
    try:
        await producer.send_and_wait(name, b"old delta")
    finally:
        await producer.stop()

    on_loop = await _steps_while(lambda: recreate_topic(embedded_bootstrap, name))
    in_thread = await _steps_while(lambda: recreate_topic_in_thread(embedded_bootstrap, name))
    assert in_thread * 4 < on_loop, (in_thread, on_loop)

    consumer = AIOKafkaConsumer(name, bootstrap_servers=embedded_bootstrap,
                                auto_offset_reset="earliest", enable_auto_commit=False)  # fmt: skip
    await consumer.start()
    try:
        fetched = await consumer.getmany(timeout_ms=500)
    finally:
        await consumer.stop()
    assert not any(fetched.values())
