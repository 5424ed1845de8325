"""Producers are idempotent on Apache Kafka and plain on the embedded broker."""

from __future__ import annotations

import asyncio
import uuid

import pytest

from streamrec.stream.kafka_clients import is_idempotent, make_producer, supports_idempotence


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
