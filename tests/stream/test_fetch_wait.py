"""A consumer starving on the embedded broker (a fetch answered empty while records wait)
gets its fetch wait raised, and then its records; on Apache Kafka the guard never acts."""

from __future__ import annotations

import time
import uuid

import pytest

from streamrec.stream.fetch_wait import FetchWaitGuard

#: one-record batches in the partition: the embedded broker's listing of them takes
#: about 2 ms (0.44 ms per 1,000 on the project machine), longer than a 1 ms wait
BATCHES = 5_000


async def _partition_of_batches(bootstrap: str, n: int) -> tuple[str, int]:
    from aiokafka import AIOKafkaProducer

    topic = f"t{uuid.uuid4().hex[:10]}.starve"
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=0)
    await producer.start()
    try:
        for i in range(n):  # send_and_wait: one record per batch
            await producer.send_and_wait(topic, str(i).encode(), partition=0)
    finally:
        await producer.stop()
    return topic, n


async def _read_last(
    bootstrap: str, topic: str, end: int, guard: bool, seconds: float
) -> tuple[list[bytes], FetchWaitGuard | None]:
    """The last 10 records, read with a 1 ms fetch wait, with or without the guard."""
    from aiokafka import AIOKafkaConsumer, TopicPartition

    tp = TopicPartition(topic, 0)
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False,
                                fetch_max_wait_ms=1)  # fmt: skip
    await consumer.start()
    consumer.assign([tp])
    consumer.seek(tp, end - 10)
    watch = FetchWaitGuard(consumer, "test consumer", patience_s=0.2) if guard else None
    got: list[bytes] = []
    try:
        deadline = time.monotonic() + seconds
        while len(got) < 10 and time.monotonic() < deadline:
            batch = await consumer.getmany(timeout_ms=50)
            got += [r.value for records in batch.values() for r in records]
            if watch is not None:
                watch.after_poll(batch)
    finally:
        await consumer.stop()
    return got, watch


@pytest.mark.asyncio
async def test_a_starving_consumer_gets_its_records_after_the_wait_is_raised(
    bootstrap: str, request: pytest.FixtureRequest
) -> None:
    kind = request.node.callspec.params["bootstrap"]
    topic, end = await _partition_of_batches(bootstrap, BATCHES)
    expected = [str(i).encode() for i in range(end - 10, end)]

    plain, _ = await _read_last(bootstrap, topic, end, guard=False, seconds=3.0)
    guarded, watch = await _read_last(bootstrap, topic, end, guard=True, seconds=20.0)

    assert guarded == expected
    assert watch is not None
    if kind == "embedded":
        assert plain == []  # the broker answers every 1 ms fetch empty: the consumer starves
        assert watch.raised >= 1
    else:
        assert plain == expected  # Kafka serves the fetch within its wait
        assert watch.raised == 0


@pytest.mark.asyncio
async def test_a_consumer_at_the_end_is_not_starving(embedded_bootstrap: str) -> None:
    """No records and nothing behind: an idle topic never raises the wait."""
    from aiokafka import AIOKafkaConsumer, TopicPartition

    topic, end = await _partition_of_batches(embedded_bootstrap, 3)
    tp = TopicPartition(topic, 0)
    consumer = AIOKafkaConsumer(bootstrap_servers=embedded_bootstrap,
                                enable_auto_commit=False, fetch_max_wait_ms=5)  # fmt: skip
    await consumer.start()
    consumer.assign([tp])
    consumer.seek(tp, end)
    watch = FetchWaitGuard(consumer, "idle consumer", patience_s=0.1)
    try:
        t0 = time.monotonic()
        while time.monotonic() - t0 < 1.0:
            watch.after_poll(await consumer.getmany(timeout_ms=50))
        assert watch.raised == 0
        assert watch.wait_ms == 5
    finally:
        await consumer.stop()
