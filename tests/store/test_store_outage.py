"""The trainer through a database outage, over the broker, on SQLite and PostgreSQL.

While the database is down (the store's engine pointed at a file that cannot be opened,
or a port nobody listens on) the trainer keeps learning, its store writes wait in the
sink and checkpoints are postponed; once the database is back the backlog drains and
checkpoints resume, holding every event.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from streamrec.settings import Settings
from streamrec.store import FeatureStore
from streamrec.stream.broker import ensure_topics
from streamrec.stream.client import Client
from streamrec.stream.topics import Topics
from streamrec.workers import Stack
from tests.store.test_store_faults import _dead_engine

pytestmark = [pytest.mark.integration, pytest.mark.asyncio]


async def _until(check: Callable[[], bool], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "condition not reached in time"
        await asyncio.sleep(0.05)


async def _publish(client: Client, start: int, n: int) -> None:
    for k in range(start, start + n):
        await client.add_item(f"i{k}", [f"genre={k % 3}"], {"available": True}, wait=False)
        await client.add_user(f"u{k}", [f"age={k % 4}"], wait=False)
    for k in range(start, start + n):
        for j in range(start, start + n, 3):
            await client.track(f"u{k}", f"i{j}", wait=False)
    await client.flush()


async def test_the_trainer_learns_through_an_outage_and_the_store_catches_up(
    db_url: str, bootstrap: str, embedded: bool, settings_factory: Callable[..., Settings]
) -> None:
    settings = settings_factory(database_url=db_url, checkpoint_interval_s=0.3,
                                runtime="asyncio")  # fmt: skip
    await ensure_topics(bootstrap, Topics(settings.topic_prefix).partitions(settings.partitions))
    with FeatureStore.open(db_url) as store, FeatureStore.open(db_url) as observer:
        stack = Stack(settings, bootstrap, roles=("trainer",), store=store, web=False,
                      embedded=embedded)  # fmt: skip
        await stack.start()
        try:
            assert await stack.ready(30)
            sink = stack.sink
            assert sink is not None
            async with Client(bootstrap, settings=settings) as client:
                await _publish(client, 0, 12)
                assert await stack.state.wait_for(client.watermarks(), 30)
                await _until(lambda: sink.pending() == 0)
                before = observer.latest_checkpoint()
                assert before is not None

                live = store.engine
                store.engine = _dead_engine(db_url)
                try:
                    await _publish(client, 100, 12)  # 24 new entities, 48 interactions
                    # learned while the database is down...
                    assert await stack.state.wait_for(client.watermarks(), 30)
                    assert stack.state.model.n_events == 2 * 48
                    # ...its writes wait, and no checkpoint runs ahead of the store
                    await _until(lambda: sink.last_error is not None)
                    assert sink.pending() >= 24  # (more when a click onboards first)
                    await asyncio.sleep(1.0)  # three checkpoint intervals
                    during = observer.latest_checkpoint()
                    assert during is not None and during.version == before.version
                    assert observer.count("user") == 12
                finally:
                    store.engine.dispose()
                    store.engine = live
            # back: the backlog drains and checkpoints resume with every event
            await _until(lambda: sink.pending() == 0)
            await _until(lambda: (observer.latest_checkpoint() or before).metrics["events"] == 96)
            assert observer.count("user") == 24 and observer.count("item") == 24
            assert observer.features("user", "u105") == {"age=1": 1.0}
        finally:
            await stack.stop()


async def test_a_full_store_queue_holds_the_trainer_back_until_the_store_catches_up(
    embedded_bootstrap: str, tmp_path: Path, settings_factory: Callable[..., Settings]
) -> None:
    """Backpressure: at ``store_queue_max`` waiting upserts the trainer stops fetching
    (the queue stays bounded), and learns the rest once the database is back."""
    url = f"sqlite:///{tmp_path / 'store.db'}"
    settings = settings_factory(database_url=url, runtime="asyncio", store_queue_max=10,
                                batch_max=4, checkpoint_interval_s=0)  # fmt: skip
    bootstrap = embedded_bootstrap
    await ensure_topics(bootstrap, Topics(settings.topic_prefix).partitions(settings.partitions))
    with FeatureStore.open(url) as store:
        stack = Stack(settings, bootstrap, roles=("trainer",), store=store, web=False,
                      embedded=True)  # fmt: skip
        await stack.start()
        try:
            assert await stack.ready(30)
            sink = stack.sink
            assert sink is not None
            live = store.engine
            store.engine = _dead_engine(url)
            try:
                async with Client(bootstrap, settings=settings) as client:
                    for k in range(40):  # 40 new users: 40 upserts
                        await client.add_user(f"u{k}", [f"age={k % 4}"], wait=False)
                    await client.flush()
                    marks = client.watermarks()
                await _until(lambda: sink.pending() >= 10)
                await asyncio.sleep(1.0)  # the trainer would learn the rest meanwhile
                assert not stack.state.reached(marks)
                assert 10 <= sink.pending() < 10 + settings.batch_max  # one batch over at most
                assert stack.state.model.n_users == sink.pending()
            finally:
                store.engine.dispose()
                store.engine = live
            assert await stack.state.wait_for(marks, 30)
            await _until(lambda: sink.pending() == 0)
            assert store.count("user") == 40
        finally:
            await stack.stop()
