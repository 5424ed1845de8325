"""A client made with ``responses=False`` publishes and reads nothing."""

from __future__ import annotations

import uuid

import pytest

from streamrec.errors import ConfigError
from streamrec.settings import Settings
from streamrec.stream.broker import ensure_topics
from streamrec.stream.client import Client
from streamrec.stream.topics import Topics
from tests.broker_helpers import read_topic_values


@pytest.mark.asyncio
async def test_a_publish_only_client_publishes_and_refuses_to_recommend(bootstrap: str) -> None:
    settings = Settings.load({"topic_prefix": f"pub{uuid.uuid4().hex[:8]}"}, environ={})
    topics = Topics(settings.topic_prefix)
    await ensure_topics(bootstrap, topics.partitions(settings.partitions))
    async with Client(bootstrap, settings=settings, responses=False) as client:
        await client.track("u1", "i1")
        assert client._consumer is None  # no fetches of the responses
        with pytest.raises(ConfigError, match="responses=False"):
            await client.recommend("u1")
        with pytest.raises(ConfigError, match="responses=False"):
            await anext(client.responses())
    values = await read_topic_values(bootstrap, topics.interactions, 1)
    assert len(values) == 1 and b'"u1"' in values[0] and b'"i1"' in values[0]
