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
