"""Messages sent without waiting that the broker refuses are reported by the next
``flush``, never dropped silently (real Apache Kafka, whose topics take a
``max.message.bytes``; the embedded broker enforces none)."""

from __future__ import annotations

import uuid

import pytest

from streamrec.errors import BrokerError
from streamrec.settings import Settings
from streamrec.stream.broker import ensure_topics
from streamrec.stream.client import Client
from streamrec.stream.topics import Topics
from tests.broker_helpers import read_topic_values


@pytest.mark.integration
@pytest.mark.asyncio
async def test_a_refused_send_without_waiting_makes_the_next_flush_raise(
    kafka_bootstrap: str,
) -> None:
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic

    settings = Settings.load({"topic_prefix": f"fail{uuid.uuid4().hex[:8]}",
                              "compression": "none"}, environ={})  # fmt: skip
    topics = Topics(settings.topic_prefix)
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    await admin.start()
    try:  # the entities topic takes records of at most 400 bytes
        await admin.create_topics([NewTopic(topics.entities, 1, 1,
                                            topic_configs={"max.message.bytes": "400"})])  # fmt: skip
    finally:
        await admin.close()
    await ensure_topics(kafka_bootstrap, topics.partitions(1))
    big = {"blob": "x" * 2000}
    async with Client(kafka_bootstrap, settings=settings, responses=False) as client:
        await client.add_item("small", ["f=a"], wait=False)
        await client.flush()  # delivered: nothing to report
        await client.add_item("big", ["f=a"], big, wait=False)
        with pytest.raises(BrokerError, match=r"1 message\(s\) sent without waiting were not"):
            await client.flush()
        await client.flush()  # reported once
        with pytest.raises(Exception) as refused:  # a caller that waits gets the error...
            await client.add_item("big2", ["f=a"], big)
        assert not isinstance(refused.value, BrokerError)
        await client.flush()  # ...and the next flush does not raise it again
    values = await read_topic_values(kafka_bootstrap, topics.entities, 1)
    assert len(values) == 1 and b'"small"' in values[0]
