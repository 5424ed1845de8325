"""The faust runtime: what the App registers, its broker settings, and health/metrics
served through faust's own web server."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from streamrec.settings import Settings
from streamrec.stream.broker import ensure_topics
from streamrec.stream.client import Client
from streamrec.stream.topics import Topics
from streamrec.workers import Stack
from streamrec.workers.runtime import FaustRuntime
from streamrec.workers.runtime.faust_conf import EMBEDDED_BROKER, app_options


def test_broker_settings_are_tuned_on_the_embedded_broker_only(
    settings_factory: Callable[..., Settings],
) -> None:
    settings = settings_factory()
    tuned = app_options(settings, "127.0.0.1:1", embedded=True, web_port=None)
    assert {k: tuned[k] for k in EMBEDDED_BROKER} == EMBEDDED_BROKER
    assert tuned["broker_rebalance_timeout"] == 3.0 and tuned["store"] == "memory://"
    kafka = app_options(settings, "k1:9092, k2:9092", embedded=False, web_port=6070)
    assert not set(EMBEDDED_BROKER) & set(kafka)  # faust's own defaults on a real Kafka
    assert kafka["broker"] == ["kafka://k1:9092", "kafka://k2:9092"]
    assert (kafka["web_enabled"], kafka["web_port"], kafka["web_bind"]) == (True, 6070, "127.0.0.1")
    assert tuned["web_enabled"] is False


def test_runtime_setting_is_checked(settings_factory: Callable[..., Settings]) -> None:
    from streamrec.errors import ConfigError

    assert Settings.load(environ={}).runtime == "faust"
    assert Settings.load(environ={"STREAMREC_RUNTIME": "asyncio"}).runtime == "asyncio"
    with pytest.raises(ConfigError, match="runtime='trio'"):
        settings_factory(runtime="trio")


@pytest.mark.integration
@pytest.mark.asyncio
async def test_app_registers_agents_tasks_timers_pages_and_serves_them(
    bootstrap: str, embedded: bool, settings_factory: Callable[..., Settings]
) -> None:
    import aiohttp

    settings = settings_factory(web_port=0, runtime="faust", faust_requests="agent",
                                checkpoint_interval_s=30.0, delta_interval_ms=150)  # fmt: skip
    topics = Topics(settings.topic_prefix)
    await ensure_topics(bootstrap, topics.partitions(settings.partitions))
    stack = Stack(settings, bootstrap, fresh=True, embedded=embedded)
    await stack.start()
    try:
        assert await stack.ready(30)
        runtime = stack.runtime
        assert isinstance(runtime, FaustRuntime)
        app = runtime.app
        assert app.conf.id == settings.topic_prefix
        # faust's own registries hold what the runtime registered
        assert set(app.agents) == {"recommender"}
        agent = app.agents["recommender"]
        assert agent.concurrency == settings.request_concurrency
        assert tuple(agent.channel.topics) == (topics.requests,)
        assert sorted(t.__name__ for t in app._app_tasks) == sorted(
            ["trainer", "deltas", "checkpoint", "event topics", "indexer"]
        )
        assert runtime.timers == {"deltas": 0.15, "checkpoint": 30.0, "event topics": 1.0,
                                  "indexer": 0.2}  # fmt: skip
        routes = {r.resource.canonical for r in app.web.web_app.router.routes()}
        assert {"/health", "/metrics"} <= routes
        # the recommender's requests come through the app's consumer group
        assigned = {tp.topic for tp in app.consumer.assignment()}
        assert topics.requests in assigned

        async with Client(bootstrap, settings=settings) as client:
            await client.add_item("it-1", ["topic=a"], {"category": "a"})
            r = await client.recommend("nobody", 1)  # through the faust agent
        assert r.ids == ["it-1"] and r.strategy == "popular"

        assert stack.web is not None
        base = f"http://127.0.0.1:{stack.web.port}"
        async with aiohttp.ClientSession() as http:
            async with http.get(f"{base}/health") as resp:
                assert resp.status == 200 and resp.content_type == "application/json"
                health = await resp.json()
            async with http.get(f"{base}/metrics") as resp:
                assert resp.status == 200 and resp.content_type == "text/plain"
                text = await resp.text()
        assert health["status"] == "ok" and health["runtime"] == "faust"
        assert set(health) == set(stack.health())
        assert health["roles"] == ["trainer", "indexer", "recommender"]
        assert health["model"]["items"] == 1

        # the same Prometheus text as the metrics object renders (index gauges move, so
        # compare the metric families)
        def families(t: str) -> set[str]:
            return {line for line in t.splitlines() if line.startswith("# TYPE")}

        assert families(text) == families(stack.metrics.render())
        assert "# TYPE streamrec_requests_total counter" in text
        assert 'streamrec_trainer_records_total{worker="trainer"} 1' in text
    finally:
        await stack.stop()


@pytest.mark.integration
@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("roles", "tasks", "timers"),
    [
        (("trainer",), ["trainer"], {"deltas", "event topics"}),
        (
            ("trainer", "recommender"),
            ["trainer", "recommender"],
            {"deltas", "event topics", "indexer"},
        ),
        (("recommender",), ["follower", "recommender"], {"indexer"}),
    ],
    ids=["trainer", "trainer+recommender", "replica"],
)
async def test_without_the_agent_faust_joins_no_group(
    bootstrap: str,
    embedded: bool,
    settings_factory: Callable[..., Settings],
    roles: tuple[str, ...],
    tasks: list[str],
    timers: set[str],
) -> None:
    """The default request path: a fetch task in the recommenders' aiokafka group."""
    settings = settings_factory(runtime="faust", checkpoint_interval_s=0)
    topics = Topics(settings.topic_prefix)
    await ensure_topics(bootstrap, topics.partitions(settings.partitions))
    stack = Stack(settings, bootstrap, roles=roles, fresh=True, embedded=embedded)
    await stack.start()
    try:
        runtime = stack.runtime
        assert isinstance(runtime, FaustRuntime)
        assert runtime.app.boot_strategy.enable_kafka is False  # no faust consumer, no group
        assert sorted(runtime.tasks) == sorted(tasks) and set(runtime.timers) == timers
        assert not runtime.agents and stack.web is None
        assert await stack.ready(30)
        if "trainer" in roles and "recommender" in roles:
            async with Client(bootstrap, settings=settings) as client:
                await client.add_item("it-1", ["topic=a"], {"category": "a"})
                assert (await client.recommend("nobody", 1)).ids == ["it-1"]
    finally:
        await stack.stop()
