"""Interactions over event-period topics on the embedded broker (stream/topics.py).

Clicks go on for several periods (shortened to 1 s) while the trainer deletes the
periods it has learned and checkpointed: every click is learned once, the broker keeps
only the last periods, and consistent requests whose watermarks name deleted periods
are answered.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncIterator

import pytest

from streamrec.settings import Settings
from streamrec.stream.broker import (
    advance_event_periods,
    ensure_topics,
    event_period_partitions,
)
from streamrec.stream.client import Client
from streamrec.stream.kafka_clients import topic_partitions
from streamrec.stream.topics import Topics
from streamrec.workers import Stack
from tests.broker_helpers import onboard_two_topics, running_deployment

pytestmark = [pytest.mark.integration]

PERIOD_S = 1


@contextlib.asynccontextmanager
async def _deployment(
    bootstrap: str, settings: Settings
) -> AsyncIterator[tuple[Topics, Stack, Client]]:
    """The event periods made ahead, a started stack and a started client."""
    topics = Topics(settings.topic_prefix)
    names = topics.partitions(settings.partitions)
    names |= event_period_partitions(topics, PERIOD_S, settings.partitions)
    creator = advance_event_periods(bootstrap, topics, PERIOD_S, settings.partitions)
    async with running_deployment(bootstrap, settings, names, creator) as (stack, client):
        yield topics, stack, client


@pytest.mark.asyncio
@pytest.mark.parametrize("runtime", ["asyncio", "faust"])
async def test_clicks_over_event_periods_are_learned_once_and_the_periods_deleted(
    embedded_bootstrap: str,
    runtime: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    bootstrap = embedded_bootstrap
    settings = Settings.load(
        {"topic_prefix": f"ep{uuid.uuid4().hex[:8]}", "data_dir": tmp_path_factory.mktemp("ep"),
         "web_port": -1, "runtime": runtime, "fetch_wait_ms": 5, "checkpoint_interval_s": 0,
         "event_period_s": PERIOD_S},
        environ={},
    )  # fmt: skip
    async with _deployment(bootstrap, settings) as (topics, stack, client):
        await onboard_two_topics(client, stack)
        first_marks = None
        sent, used = 0, set()
        t_end = time.monotonic() + 6 * PERIOD_S
        while time.monotonic() < t_end:
            topic = await client.interactions_topic()
            used.add(topic)
            await client.track("u", f"it-{sent % 20}", wait=False)
            sent += 1
            if sent == 20:
                await client.flush()
                first_marks = [m for m in client.watermarks()
                               if topics.event_period_span(m.topic)]  # fmt: skip
            await asyncio.sleep(0.01)
        await client.flush()
        assert first_marks
        assert len(used) >= 5 and topics.interactions not in used

        # the trainer learns every click once and deletes the periods behind it
        start_events = 0  # onboarding has no interaction
        deadline = time.monotonic() + 30
        trainer = stack.trainer
        assert trainer is not None
        while time.monotonic() < deadline:
            periods = topics.event_periods_in(await topic_partitions(client._producer))
            if len(used - set(periods)) >= 3 and stack.state.model.n_events >= sent:
                break
            await asyncio.sleep(0.2)
        assert stack.state.model.n_events == start_events + sent
        assert len(used - set(periods)) >= 3  # deleted from the broker
        assert trainer.metrics.get("trainer", "event_topics_deleted_total") >= 3
        assert stack.state.events_retired_before > 0
        assert not any(t in used and (t, p) in stack.state.applied
                       for t in used for p in range(settings.partitions)
                       if topics.event_period_span(t)[0] < stack.state.events_retired_before)  # fmt: skip

        # a consistent request waiting for records of deleted periods is answered at once
        assert stack.state.reached(first_marks)
        response = await client.recommend("u", 5, timeout=10)  # (u has seen every item)
        assert response.error is None and not response.stale


@pytest.mark.asyncio
async def test_a_record_that_arrives_just_before_the_deletion_is_learned_not_lost(
    embedded_bootstrap: str,
    tmp_path_factory: pytest.TempPathFactory,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The fetch just before a deletion finds a record the trainer had not seen (sent to
    a period two periods after it ended): the topic is kept, read on from where it was
    learned to, and deleted once that record is learned and checkpointed."""
    from streamrec.stream.schemas import Interaction
    from streamrec.workers.training import trainer as trainer_module

    settings = Settings.load(
        {"topic_prefix": f"late{uuid.uuid4().hex[:8]}", "data_dir": tmp_path_factory.mktemp("lt"),
         "web_port": -1, "runtime": "asyncio", "fetch_wait_ms": 5, "checkpoint_interval_s": 0,
         "event_period_s": PERIOD_S},
        environ={},
    )  # fmt: skip
    real_probe = trainer_module.probe
    probed: list[str] = []
    async with _deployment(embedded_bootstrap, settings) as (_, stack, client):
        await onboard_two_topics(client, stack)
        target = await client.interactions_topic()
        for k in range(10):
            await client.track("u", f"it-{k}")

        async def late_probe(bootstrap: str, wanted: dict, timeout: float = 10.0) -> dict:  # type: ignore[type-arg]
            names = {tp.topic for tp in wanted}
            probed.extend(names)
            if names == {target} and probed.count(target) == 1:  # a late record lands now
                await (await client.send(target, Interaction(user="u", item="it-15"), "u"))
            return await real_probe(bootstrap, wanted, timeout)

        monkeypatch.setattr(trainer_module, "probe", late_probe)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if target not in await topic_partitions(client._producer):
                break
            await asyncio.sleep(0.1)
        assert target not in await topic_partitions(client._producer)
        assert probed.count(target) >= 2  # the first attempt found the late record
        assert stack.state.model.n_events == 11  # and it was learned, once


@pytest.mark.asyncio
async def test_the_sdk_falls_back_to_the_plain_topic_and_forgets_past_periods(
    embedded_bootstrap: str, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """Without a topic for the current period (``up`` has not made it) the SDK sends to
    the plain interactions topic, and finds the period's topic within a second once it
    exists, whatever length its own settings give periods; a period's topic leaves the
    producer's metadata a period after it ended (the embedded broker would otherwise
    create it again when it is deleted)."""
    from streamrec.stream.topics import event_period_at

    settings = Settings.load(
        {"topic_prefix": f"sdk{uuid.uuid4().hex[:8]}", "data_dir": tmp_path_factory.mktemp("sd")},
        environ={},
    )  # fmt: skip
    assert settings.event_period_s == 30  # the SDK takes the length from the topics' names
    topics = Topics(settings.topic_prefix)
    start, _ = event_period_at(PERIOD_S)
    old = topics.event_period(start - 100, start - 99)  # a deployment with periods
    await ensure_topics(embedded_bootstrap, {**topics.partitions(1), old: 1})
    async with Client(embedded_bootstrap, settings=settings, responses=False) as client:
        await client.track("u", "i")
        assert await client.interactions_topic() == topics.interactions
        assert [m.topic for m in client.watermarks()] == [topics.interactions]
        await ensure_topics(embedded_bootstrap,
                            event_period_partitions(topics, PERIOD_S, 1))  # fmt: skip
        await asyncio.sleep(1.1)
        used = (await client.track("u", "i")).topic
        assert topics.event_period_span(used) is not None
        assert used in client._producer.client._topics
        await asyncio.sleep(2.5 * PERIOD_S)  # its period ended more than a period ago
        assert used not in client._producer.client._topics
