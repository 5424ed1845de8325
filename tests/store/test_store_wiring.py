"""The SQL store wired into the workers, over the real broker, on SQLite and PostgreSQL.

Onboarding through the broker lands in the store (and a replay rewrites nothing), a
record the store rejects is dead-lettered, checkpoints are registered, a trainer
without a checkpoint rebuilds from the store, and an item withdrawn in the store
disappears from recommendations within a second.
"""

from __future__ import annotations

import asyncio
import shutil
import time
from collections.abc import Callable
from typing import Any

import pytest

from streamrec.eval.synthetic import World, make_world
from streamrec.settings import Settings
from streamrec.store import EntityRecord, FeatureStore
from streamrec.store.adapters import StoreItemAttributes
from streamrec.stream.broker import ensure_topics
from streamrec.stream.client import Client
from streamrec.stream.topics import Topics
from streamrec.workers import Stack
from streamrec.workers.attributes import MemoryItemAttributes
from streamrec.workers.checkpoints import Checkpoints
from tests.broker_helpers import read_dead_letters

pytestmark = [pytest.mark.integration, pytest.mark.asyncio]


def _features(side: Any, entity_id: str) -> set[str]:
    """The names of an entity's features in the model (identity feature left out)."""
    idx, _ = side.fx.features_of(side.ids.get(entity_id))
    names = {side.feature_names.name(int(i)) for i in idx}
    return {n for n in names if not n.startswith("#")}


async def _until(check: Callable[[], bool], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "condition not reached in time"
        await asyncio.sleep(0.02)


async def _publish_world(client: Client, world: World, interactions: bool = True) -> None:
    for item in world.items:
        await client.add_item(item, world.item_features(item), world.attributes(item), wait=False)
    for user in world.users:
        await client.add_user(user, world.user_features(user), wait=False)
    if interactions:
        for user, item, kind in world.events:
            await client.track(user, item, kind, wait=False)
    await client.flush()


async def _trainer(
    settings: Settings, bootstrap: str, store: FeatureStore, embedded: bool
) -> Stack:
    stack = Stack(settings, bootstrap, roles=("trainer",), store=store, web=False,
                  embedded=embedded)  # fmt: skip
    await stack.start()
    return stack


async def test_onboarding_lands_in_store_restart_rebuilds_and_replay_rewrites_nothing(
    db_url: str,
    bootstrap: str,
    embedded: bool,
    runtime: dict[str, str],
    settings_factory: Callable[..., Settings],
) -> None:
    settings = settings_factory(database_url=db_url, checkpoint_interval_s=0, **runtime)
    topics = Topics(settings.topic_prefix)
    await ensure_topics(bootstrap, topics.partitions(settings.partitions))
    world = make_world(n_users=12, items_per_cluster=4, events_per_user=3)
    with FeatureStore.open(db_url) as store:
        async with Client(bootstrap, settings=settings) as client:
            await _publish_world(client, world)
            # the model takes any scalar attribute; the store wants a boolean: dead letter
            await client.add_item("bad-item", ["topic=books"], {"available": "maybe"})
            marks = client.watermarks()

        stack = await _trainer(settings, bootstrap, store, embedded)
        try:
            # a trainer alone answers no request: no copy of the store's attributes
            assert isinstance(stack.state.attributes, MemoryItemAttributes)
            assert await stack.state.wait_for(marks, 20)
            await _until(lambda: stack.sink is not None and stack.sink.pending() == 0)
        finally:
            await stack.stop()  # writes the last checkpoint and registers it

        # onboarding landed: one row per entity, features and attributes
        assert store.count("user") == len(world.users)
        assert store.count("item") == len(world.items)  # without bad-item
        assert store.features("user", "user-003") == {f"likes={world.users['user-003']}": 1.0}
        _, attrs = store.item_attributes()
        for item, cluster in world.items.items():
            assert attrs[item].category == cluster
            assert attrs[item].available == world.available[item]
            assert attrs[item].created_at is not None
        letters = await read_dead_letters(bootstrap, topics.dead_letters, 1)
        assert len(letters) == 1 and "feature store" in letters[0].reason
        assert "bad-item" in letters[0].reason and letters[0].source_topic == topics.entities

        # the checkpoint is registered, with its offsets and metrics
        # (version 1: the trainer's checkpoint at start, of its new epoch; 2: at stop)
        info = store.latest_checkpoint()
        assert info is not None and info.version == 2
        assert (
            str(Checkpoints(settings, Topics(settings.topic_prefix).deltas).path.resolve())
            == info.path
        )
        assert set(info.offsets) == {topics.interactions, topics.entities}
        assert info.metrics["users"] == len(world.users)
        assert info.metrics["events"] == len(world.events)

        versions = {u: store.version("user", u) for u in world.users}
        versions |= {i: store.version("item", i) for i in world.items}
        attributes_version = store.attributes_version()

        # restart without any checkpoint: vocabularies come back from the store, and the
        # topics are read again from the start -- a replay that must change no row
        shutil.rmtree(settings.data_dir / "checkpoints")
        stack = await _trainer(settings, bootstrap, store, embedded)
        try:
            model = stack.state.model
            assert model.n_events == 0  # no checkpoint was loaded...
            assert _features(model.users, "user-003") == set(
                store.features("user", "user-003") or ()
            )
            assert _features(model.items, "books-001") == {"topic=books"}
            assert await stack.state.wait_for(marks, 20)  # ...and the replay is applied
            await _until(lambda: stack.sink is not None and stack.sink.pending() == 0)
        finally:
            await stack.stop()
        assert {u: store.version("user", u) for u in world.users} | {
            i: store.version("item", i) for i in world.items
        } == versions
        assert store.attributes_version() == attributes_version

        # a start-up prefers the newest registered checkpoint (the default link is gone)
        newest = store.latest_checkpoint()  # the second run's: 3 at start, 4 at stop
        assert newest is not None and newest.version == 4
        Checkpoints(settings, Topics(settings.topic_prefix).deltas).path.unlink()
        stack = await _trainer(settings, bootstrap, store, embedded)
        try:
            assert stack.state.model.n_events == newest.metrics["events"] > 0
        finally:
            await stack.stop()


async def test_item_withdrawn_in_the_store_disappears_within_one_second(
    db_url: str,
    bootstrap: str,
    embedded: bool,
    runtime: dict[str, str],
    settings_factory: Callable[..., Settings],
) -> None:
    settings = settings_factory(database_url=db_url, **runtime)
    await ensure_topics(bootstrap, Topics(settings.topic_prefix).partitions(settings.partitions))
    world = make_world(n_users=20, items_per_cluster=8, events_per_user=5)
    with FeatureStore.open(db_url) as store, FeatureStore.open(db_url) as other_writer:
        stack = Stack(settings, bootstrap, store=store, web=False, embedded=embedded)
        await stack.start()
        try:
            assert await stack.ready(30)
            attributes = stack.state.attributes
            assert isinstance(attributes, StoreItemAttributes)
            async with Client(bootstrap, settings=settings) as client:
                await _publish_world(client, world)
                # every item in the store's cache (the check below reads the cache)
                await _until(lambda: all(attributes.cache.get(i) is not None for i in world.items))
                flt = {"available": True}
                before = await client.recommend("user-003", 5, filters=flt)
                assert len(before.ids) == 5
                assert all(attributes.cache.get(i).available for i in before.ids)  # type: ignore[union-attr]

                # another process withdraws the top item straight in the database
                gone = before.ids[0]
                t0 = time.monotonic()
                await asyncio.to_thread(
                    other_writer.upsert_entities,
                    [EntityRecord("item", gone, None, {"available": False})],
                )
                r = before
                while gone in r.ids:
                    assert time.monotonic() - t0 < 1.0, f"{gone} still served after 1 s"
                    r = await client.recommend("user-003", 5, filters=flt)
                assert len(r.ids) == 5

                # the trainer's own path: an item_update event, then the store
                second = r.ids[0]
                await client.update_item(second, None, {"available": False})
                r = await client.recommend("user-003", 5, filters=flt)
                assert second not in r.ids  # read-your-writes, before the store caught up
                await _until(lambda: not attributes.cache.get(second).available)  # type: ignore[union-attr]
        finally:
            await stack.stop()
