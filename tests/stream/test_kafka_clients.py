"""Producers are idempotent on Apache Kafka and plain on the embedded broker."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable

import pytest

from streamrec.settings import Settings
from streamrec.stream.broker import ensure_topics
from streamrec.stream.client import Client
from streamrec.stream.kafka_clients import is_idempotent, make_producer, supports_idempotence
from streamrec.stream.topics import Topics
from streamrec.workers import Stack


def test_the_producer_is_idempotent_exactly_on_real_kafka(
    bootstrap: str, request: pytest.FixtureRequest
) -> None:
    kind = request.node.callspec.params["bootstrap"]

    async def scenario() -> tuple[bool, bool, int]:
        supported = await supports_idempotence(bootstrap)
        producer = await make_producer(bootstrap, linger_ms=0)
        await producer.start()
        try:
            await producer.send_and_wait(f"t{uuid.uuid4().hex[:10]}.probe", b"x", partition=0)
            manager = producer._txn_manager
            pid = -1 if manager is None else int(manager.producer_id)
            return supported, is_idempotent(producer), pid
        finally:
            await producer.stop()

    supported, idempotent, producer_id = asyncio.run(scenario())
    assert supported is (kind == "kafka")
    assert idempotent is (kind == "kafka")
    if kind == "kafka":
        assert producer_id >= 0  # the broker granted a producer id and the send used it


def test_the_workers_and_the_sdk_produce_idempotently_exactly_on_real_kafka(
    bootstrap: str, request: pytest.FixtureRequest, settings_factory: Callable[..., Settings]
) -> None:
    kind = request.node.callspec.params["bootstrap"]
    settings = settings_factory()

    async def scenario() -> list[bool]:
        await ensure_topics(bootstrap, Topics(settings.topic_prefix).partitions(1))
        stack = Stack(settings, bootstrap, roles=("trainer", "recommender"), fresh=True,
                      web=False)  # fmt: skip
        await stack.start()
        try:
            async with Client(bootstrap, settings=settings) as client:
                assert stack.trainer is not None and stack.recommender is not None
                return [is_idempotent(stack.trainer._producer),
                        is_idempotent(stack.recommender._producer),
                        is_idempotent(client._producer)]  # fmt: skip
        finally:
            await stack.stop()

    assert asyncio.run(scenario()) == [kind == "kafka"] * 3


@pytest.mark.integration
@pytest.mark.parametrize("compression", ["zstd", "gzip", "none"])
def test_events_travel_compressed_and_arrive_intact(bootstrap: str, compression: str) -> None:
    """The SDK's producer compresses its batches as set; a plain consumer reads back
    every event as it was sent."""
    from aiokafka import AIOKafkaConsumer, TopicPartition

    from streamrec.stream.codec import decode
    from streamrec.stream.schemas import Interaction

    settings = Settings.load({"topic_prefix": f"cz{uuid.uuid4().hex[:8]}", "partitions": 1,
                              "compression": compression}, environ={})  # fmt: skip
    topics = Topics(settings.topic_prefix)

    async def scenario() -> tuple[str | None, list[tuple[str, str]]]:
        await ensure_topics(bootstrap, topics.partitions(1))
        async with Client(bootstrap, settings=settings) as client:
            kind = client._producer._compression_type
            for k in range(500):
                await client.track(f"u{k % 37}", f"i{k}", wait=False)
            await client.flush()
        consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, auto_offset_reset="earliest")
        await consumer.start()
        got: list[tuple[str, str]] = []
        try:
            tp = TopicPartition(topics.interactions, 0)
            consumer.assign([tp])
            for _ in range(200):
                batch = await consumer.getmany(tp, timeout_ms=100)
                got += [(m.user, m.item) for m in
                        (decode(r.value, Interaction) for r in batch.get(tp, []))]  # fmt: skip
                if len(got) >= 500:
                    break
        finally:
            await consumer.stop()
        return kind, got

    kind, got = asyncio.run(scenario())
    assert kind == (None if compression == "none" else compression)
    assert got == [(f"u{k % 37}", f"i{k}") for k in range(500)]


def test_the_compression_setting_is_checked() -> None:
    from streamrec.errors import ConfigError

    assert Settings.load(environ={}).compression == "zstd"
    assert Settings.load(environ={"STREAMREC_COMPRESSION": "none"}).compression_type is None
    with pytest.raises(ConfigError, match="compression='brotli' must be one of"):
        Settings.load({"compression": "brotli"}, environ={})
