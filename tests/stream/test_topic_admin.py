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


async def _topic_with_a_delta(bootstrap: str) -> str:
    """A new one-partition deltas topic holding one record."""
    from aiokafka import AIOKafkaProducer

    name = f"t{uuid.uuid4().hex[:10]}.deltas"
    await ensure_topics(bootstrap, {name: 1})
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
    await producer.start()
    try:
        await producer.send_and_wait(name, b"old delta")
    finally:
        await producer.stop()
    return name


@pytest.mark.asyncio
async def test_a_recreation_in_a_thread_does_not_wait_for_the_loop(
    embedded_bootstrap: str,
) -> None:
    """On the busy loop every round trip of the admin clients waits for a step; in a
    thread the recreation goes on while the loop is held.  Both leave the topic empty."""
    from aiokafka import AIOKafkaConsumer

    name = await _topic_with_a_delta(embedded_bootstrap)

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


@pytest.mark.integration
@pytest.mark.asyncio
async def test_a_topic_a_client_creates_again_at_once_is_taken_when_new_and_empty(
    bootstrap: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Right after the deletion a client asks for the topic's metadata, as a replica
    following it does, and the broker (``auto.create.topics.enable``) creates it again:
    that topic, new and empty, is the recreated one.  Waiting for it to go away timed
    out after 30 s in the suite's rotations on Apache Kafka."""
    from aiokafka import AIOKafkaConsumer, TopicPartition
    from aiokafka.admin import AIOKafkaAdminClient

    name = await _topic_with_a_delta(bootstrap)
    delete = AIOKafkaAdminClient.delete_topics
    created_again: list[bool] = []  # asked for once gone; then True once listed again

    async def delete_then_ask(
        self: AIOKafkaAdminClient, topics: list[str], *args: object
    ) -> object:
        result = await delete(self, topics, *args)
        if created_again:
            return result
        follower = AIOKafkaConsumer(bootstrap_servers=bootstrap)
        await follower.start()
        try:
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline:  # gone, then asked for: created again
                listed = set(await self.list_topics())
                if name in listed and created_again:
                    created_again.append(True)
                    break
                if name not in listed:
                    created_again.append(True)
                    follower._client.add_topic(name)
                    await follower._client.force_metadata_update()
                await asyncio.sleep(0.05)
        finally:
            await follower.stop()
        return result

    monkeypatch.setattr(AIOKafkaAdminClient, "delete_topics", delete_then_ask)
    await recreate_topic(bootstrap, name, timeout=10)
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        assert name in set(await admin.list_topics())
    finally:
        await admin.close()
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        ends = await consumer.end_offsets([TopicPartition(name, 0)])
    finally:
        await consumer.stop()
    assert created_again == [True, True], "the broker did not create the topic again"
    assert ends == {TopicPartition(name, 0): 0}
