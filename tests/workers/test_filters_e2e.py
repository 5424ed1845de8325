"""Request filters over the real broker: list attributes (tags) match, and a bad filter
is an error in its own response while the other requests of the burst are answered.

Runs with the in-memory attribute seam and with the SQL store (SQLite) behind it: the
two paths by which item attributes reach the recommender's filters.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from streamrec.errors import InvalidFilterError
from streamrec.settings import Settings
from streamrec.store import FeatureStore
from streamrec.stream.broker import ensure_topics
from streamrec.stream.client import Client
from streamrec.stream.schemas import RecRequest, RecResponse
from streamrec.stream.topics import Topics
from streamrec.workers import Stack

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="module")]

#: 12 tagged items, plus one without tags and one withdrawn; tags planted by index.
ITEMS = [f"it-{i:02d}" for i in range(12)]


def tags_of(i: int) -> list[str]:
    return ["all", f"mod3-{i % 3}", "even" if i % 2 == 0 else "odd"]


def ids(pred: Any) -> set[str]:
    return {item for i, item in enumerate(ITEMS) if pred(i)}


class Env:
    def __init__(self, stack: Stack, client: Client) -> None:
        self.stack, self.client = stack, client


@pytest_asyncio.fixture(scope="module", loop_scope="module", params=["memory", "sqlite"])
async def env(
    request: pytest.FixtureRequest,
    bootstrap: str,
    embedded: bool,
    runtime: dict[str, str],
    tmp_path_factory: pytest.TempPathFactory,
) -> AsyncIterator[Env]:
    data: Path = tmp_path_factory.mktemp("filters")
    settings = Settings.load(
        {"topic_prefix": f"flt{uuid.uuid4().hex[:8]}", "data_dir": data, "web_port": -1,
         "fetch_wait_ms": 5, "checkpoint_interval_s": 0, **runtime},
        environ={},
    )  # fmt: skip
    await ensure_topics(bootstrap, Topics(settings.topic_prefix).partitions(settings.partitions))
    store = (
        FeatureStore.open(f"sqlite:///{data / 'store.db'}") if request.param == "sqlite" else None
    )
    stack = Stack(settings, bootstrap, fresh=True, store=store, embedded=embedded)
    await stack.start()
    assert await stack.ready(30)
    client = Client(bootstrap, settings=settings)
    await client.start()
    for i, item in enumerate(ITEMS):
        await client.add_item(
            item, [f"topic={i % 3}"], {"tags": tags_of(i), "available": True}, wait=False
        )
    await client.add_item("untagged", ["topic=0"], {"category": "misc"}, wait=False)
    await client.add_item("withdrawn", ["topic=0"], {"tags": ["all"], "available": False},
                          wait=False)  # fmt: skip
    await client.add_user("viewer", ["likes=0"], wait=False)
    await client.flush()
    yield Env(stack, client)
    await client.stop()
    await stack.stop()
    if store is not None:
        store.close()


CASES: list[tuple[dict[str, Any], set[str]]] = [
    ({"tags": "even"}, ids(lambda i: i % 2 == 0)),
    ({"tags": ["mod3-0"]}, ids(lambda i: i % 3 == 0)),
    ({"tags": ["mod3-0", "mod3-1"]}, ids(lambda i: i % 3 != 2)),
    ({"tags": {"all": ["even", "mod3-0"]}}, ids(lambda i: i % 6 == 0)),
    ({"tags": {"any": ["nope", "odd"]}}, ids(lambda i: i % 2 == 1)),
    ({"tags": {"all": ["even", "nope"]}}, set()),
    ({"tags": {"ne": "odd"}}, ids(lambda i: i % 2 == 0) | {"untagged", "withdrawn"}),
    ({"tags": "all"}, set(ITEMS) | {"withdrawn"}),
    ({"tags": "all", "available": True}, set(ITEMS)),
    ({"tags": {"all": ["odd", "mod3-2"]}, "available": {"ne": False}}, ids(lambda i: i % 6 == 5)),
]


@pytest.mark.parametrize(("filters", "expected"), CASES, ids=[repr(f) for f, _ in CASES])
async def test_tag_filters_return_exactly_the_matching_items(
    env: Env, filters: dict[str, Any], expected: set[str]
) -> None:
    r = await env.client.recommend("viewer", 50, filters=filters)
    assert r.error is None and r.strategy == "cold-start"
    assert set(r.ids) == expected
    assert len(r.ids) == len(expected)


async def test_the_sdk_refuses_a_bad_filter_before_sending(env: Env) -> None:
    with pytest.raises(InvalidFilterError, match="in needs a list of values"):
        await env.client.recommend("viewer", 5, filters={"available": {"in": 1}})


async def test_a_bad_filter_is_an_error_in_its_response_and_spares_the_burst(env: Env) -> None:
    client, topics = env.client, env.client.topics
    bad = {
        "bad-in": {"available": {"in": 1}},  # a TypeError inside the worker before
        "bad-all": {"tags": {"all": "even"}},
        "bad-op": {"tags": {"has": "even"}},
    }
    wanted = set(bad)
    got: dict[str, RecResponse] = {}

    async def collect() -> None:
        async for resp in client.responses():
            if resp.request_id in wanted:
                got[resp.request_id] = resp
                if len(got) == len(wanted):
                    return

    collector = asyncio.create_task(collect())
    await asyncio.sleep(0)  # subscribed before anything is sent
    # raw requests: the SDK would refuse these filters
    for request_id, filters in bad.items():
        await client.send(topics.requests,
                          RecRequest(request_id=request_id, user="viewer", k=5, filters=filters),
                          "viewer")  # fmt: skip
    good = await client.recommend("viewer", 50, filters={"tags": "even"}, consistent=False)
    await asyncio.wait_for(collector, 20)

    assert good.error is None and set(good.ids) == ids(lambda i: i % 2 == 0)
    assert "'available': {'in': 1}: in needs a list of values" in (got["bad-in"].error or "")
    assert "all needs a list of values" in (got["bad-all"].error or "")
    assert "unknown operator 'has'" in (got["bad-op"].error or "")
    assert all(r.items == [] and r.strategy == "none" for r in got.values())
    after = await client.recommend("viewer", 50, filters={"tags": "odd"})
    assert after.error is None and set(after.ids) == ids(lambda i: i % 2 == 1)
