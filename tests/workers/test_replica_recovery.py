"""Replicas apply every change once: duplicates skipped, gaps and trainer restarts resynced.

The unit tests drive a :class:`DeltaFollower` without a broker; the broker tests (on the
embedded broker and on Apache Kafka) kill a trainer after its last checkpoint and make
a delta publish fail, and require the replica to end equal to the trainer, array for
array.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
import pytest_asyncio

from streamrec.eval.synthetic import World, make_world
from streamrec.model import HybridModel, ModelConfig
from streamrec.settings import Settings
from streamrec.stream.broker import ensure_topics
from streamrec.stream.client import Client
from streamrec.stream.codec import encode_binary
from streamrec.stream.kafka_clients import probe
from streamrec.stream.schemas import Watermark
from streamrec.stream.topics import Topics
from streamrec.workers import Stack
from streamrec.workers.checkpoints import Checkpoints
from streamrec.workers.deltas import DeltaTracker
from streamrec.workers.lifecycle import cancel
from streamrec.workers.serving.follower import DeltaFollower
from tests.loop_turns import LoopTurns


def _settings(tmp_path: Path, **extra: Any) -> Settings:
    values: dict[str, Any] = {"topic_prefix": f"rr{uuid.uuid4().hex[:8]}",
                              "data_dir": tmp_path / "data", "web_port": -1, "fetch_wait_ms": 5,
                              "delta_interval_ms": 50, "checkpoint_interval_s": 0,
                              "model": ModelConfig(dim=16), **extra}  # fmt: skip
    return Settings.load(values, environ={})


def _differences(a: HybridModel, b: HybridModel) -> list[str]:
    """Names of the model arrays that differ (empty: the two models are the same)."""
    left, right = a.arrays(), b.arrays()
    out = [name for name in left if not np.array_equal(left[name], right[name])]
    if (a.n_events, a.version) != (b.n_events, b.version):
        out.append("counters")
    return out


def _learn(model: HybridModel, world: World, events: list[tuple[str, str, str]]) -> None:
    for user, item, _ in events:
        if not model.has_user(user):
            model.add_user(user, world.user_features(user))
        if not model.has_item(item):
            model.add_item(item, world.item_features(item))
    model.learn([u for u, _, _ in events], [i for _, i, _ in events], [t for _, _, t in events])


# ----------------------------------------------------------------- without a broker
def _messages(tracker: DeltaTracker) -> list[bytes]:
    return [encode_binary(d) for d in tracker.build([Watermark("t.interactions", 0, 1)])]


@pytest.mark.asyncio
async def test_duplicates_are_skipped_and_a_gap_waits_for_a_checkpoint(tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    world = make_world(n_users=10, items_per_cluster=5, events_per_user=4)
    trainer = HybridModel(ModelConfig(dim=16))
    tracker = DeltaTracker(trainer, epoch="A")
    follower = DeltaFollower(settings, "unused:9092")
    follower.epoch = "A"  # as if bootstrapped from an empty checkpoint of epoch A
    follower.state.model = HybridModel(ModelConfig(dim=16))
    events = world.events
    _learn(trainer, world, events[:20])
    first = _messages(tracker)
    _learn(trainer, world, events[20:30])
    lost = _messages(tracker)
    _learn(trainer, world, events[30:])
    third = _messages(tracker)

    assert all([await follower.apply(m) for m in first])
    assert all([await follower.apply(m) for m in first])  # again: skipped, not applied twice
    assert follower.metrics.get("follower", "deltas_skipped_total") == len(first)
    replica = follower.state.model
    assert replica.n_events == 20

    # ``lost`` never arrives: the next delta is a gap, and no checkpoint covers it yet
    assert await follower.apply(third[0]) is False
    assert replica.n_events == 20 and follower.next_seq == len(first)

    # the trainer's checkpoint after the failed publish holds the lost change set
    Checkpoints(settings, Topics(settings.topic_prefix).deltas).prepare(
        trainer, {}, 0, None, epoch="A", next_seq=len(first) + len(lost) + len(third)
    ).write()
    assert await follower.apply(third[0]) is False  # resynced (the consumer would move)
    assert _differences(follower.state.model, trainer) == []
    assert follower.metrics.get("follower", "replica_resyncs_total") == 1
    assert all([await follower.apply(m) for m in third])  # already in the checkpoint: skipped
    assert _differences(follower.state.model, trainer) == []


@pytest.mark.asyncio
async def test_a_new_epoch_waits_for_its_checkpoint(tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    world = make_world(n_users=10, items_per_cluster=5, events_per_user=4)
    old = HybridModel(ModelConfig(dim=16))
    follower = DeltaFollower(settings, "unused:9092")
    follower.state.model = HybridModel(ModelConfig(dim=16))
    follower.epoch = "A"
    tracker = DeltaTracker(old, epoch="A")
    _learn(old, world, world.events[:30])
    assert all([await follower.apply(m) for m in _messages(tracker)])
    # a trainer restarted from a checkpoint of 10 events: epoch B, which knows nothing of
    # the 20 events after it
    restarted = HybridModel(ModelConfig(dim=16))
    _learn(restarted, world, world.events[:10])
    tracker_b = DeltaTracker(restarted, epoch="B")
    restarted.forget_changes()
    first_b = _messages(tracker_b)
    assert await follower.apply(first_b[0]) is False  # no checkpoint of epoch B yet: wait
    assert follower.epoch == "A" and follower._waiting_since is not None
    Checkpoints(settings, Topics(settings.topic_prefix).deltas).prepare(
        restarted, {}, 0, None, epoch="B", next_seq=len(first_b)
    ).write()
    assert await follower.apply(first_b[0]) is False  # resynced from it
    assert follower.epoch == "B" and _differences(follower.state.model, restarted) == []
    _learn(restarted, world, world.events[10:40])
    assert all([await follower.apply(m) for m in first_b])  # before the checkpoint: skipped
    assert all([await follower.apply(m) for m in _messages(tracker_b)])
    assert _differences(follower.state.model, restarted) == []


@pytest.mark.asyncio
async def test_a_resync_reads_the_checkpoint_off_the_serving_loop(tmp_path: Path) -> None:
    """While a gap waits for its checkpoint, only the header is read (not the file, on
    every retry); the resync reads the file in another thread, and the event loop (the
    replica's serving) runs meanwhile."""
    import threading

    settings = _settings(tmp_path)
    world = make_world(n_users=10, items_per_cluster=5, events_per_user=4)
    trainer = HybridModel(ModelConfig(dim=16))
    tracker = DeltaTracker(trainer, epoch="A")
    follower = DeltaFollower(settings, "unused:9092")
    follower.epoch, follower.state.model = "A", HybridModel(ModelConfig(dim=16))
    _learn(trainer, world, world.events[:20])
    first = _messages(tracker)
    _learn(trainer, world, world.events[20:30])
    lost = _messages(tracker)
    _learn(trainer, world, world.events[30:])
    third = _messages(tracker)
    assert all([await follower.apply(m) for m in first])
    checkpoints = Checkpoints(settings, Topics(settings.topic_prefix).deltas)
    checkpoints.prepare(trainer, {}, 0, None, epoch="A", next_seq=len(first)).write()
    reads: list[bool] = []  # whether each full read ran on the loop's thread
    read = follower.checkpoints.latest

    def slow_read(attributes: bool = True) -> Any:
        reads.append(threading.current_thread() is threading.main_thread())
        time.sleep(0.3)
        return read(attributes)

    follower.checkpoints.latest = slow_read  # type: ignore[method-assign]
    for _ in range(3):  # a gap; the checkpoint is not ahead of the replica: wait
        assert await follower.apply(third[0]) is False
    assert reads == [] and follower._waiting_since is not None
    end = len(first) + len(lost) + len(third)
    checkpoints.prepare(trainer, {}, 0, None, epoch="A", next_seq=end).write()
    async with LoopTurns(0.01) as serving:
        assert await follower.apply(third[0]) is False  # resynced
    assert reads == [False] and serving.count >= 10
    assert follower.next_seq == end and _differences(follower.state.model, trainer) == []


# --------------------------------------------------------------------- with a broker
async def _replica_catches_up(trainer: Stack, replica: Stack, timeout: float) -> list[str]:
    """Wait until the replica equals the trainer; the differences left at ``timeout``."""
    deadline = time.monotonic() + timeout
    diff = ["not compared"]
    while time.monotonic() < deadline:
        diff = _differences(replica.state.model, trainer.state.model)
        if not diff:
            return diff
        await asyncio.sleep(0.1)
    return diff


async def _publish(client: Client, world: World, events: list[tuple[str, str, str]]) -> None:
    for user, item, kind in events:
        await client.track(user, item, kind, wait=False)
    await client.flush()


async def _onboard(client: Client, world: World) -> None:
    for item in world.items:
        await client.add_item(item, world.item_features(item), wait=False)
    for user in world.users:
        await client.add_user(user, world.user_features(user), wait=False)
    await client.flush()


@dataclass
class _Stacks:
    """A trainer and a replica on a fresh topic prefix, and a client (fixture ``stacks``)."""

    settings: Settings
    world: World
    trainer: Stack
    replica: Stack
    client: Client
    trainer_stopped: bool = False

    async def stop_trainer(self) -> None:
        if not self.trainer_stopped:
            self.trainer_stopped = True
            await self.trainer.stop()


def _stack(settings: Settings, bootstrap: str, embedded: bool, role: str) -> Stack:
    return Stack(settings, bootstrap, roles=(role,), web=False, embedded=embedded)


@contextlib.asynccontextmanager
async def _trainer_and_replica(
    settings: Settings, bootstrap: str, embedded: bool
) -> AsyncIterator[tuple[Stack, Stack]]:
    """A trainer and a replica on ``settings``' topics (created here), started; stopped
    when the block ends (the replica first)."""
    await ensure_topics(bootstrap, Topics(settings.topic_prefix).partitions(settings.partitions))
    trainer = _stack(settings, bootstrap, embedded, "trainer")
    replica = _stack(settings, bootstrap, embedded, "recommender")
    await trainer.start()
    await replica.start()
    try:
        yield trainer, replica
    finally:
        await replica.stop()
        await trainer.stop()


@pytest_asyncio.fixture
async def stacks(bootstrap: str, embedded: bool, tmp_path: Path) -> AsyncIterator[_Stacks]:
    """A trainer and a replica started, the world's entities onboarded; all stopped after."""
    settings = _settings(tmp_path)
    await ensure_topics(bootstrap, Topics(settings.topic_prefix).partitions(settings.partitions))
    world = make_world(n_users=30, items_per_cluster=10, events_per_user=10)
    trainer = _stack(settings, bootstrap, embedded, "trainer")
    await trainer.start()
    replica = _stack(settings, bootstrap, embedded, "recommender")
    await replica.start()
    client = Client(bootstrap, settings=settings)
    await client.start()
    running = _Stacks(settings, world, trainer, replica, client)
    try:
        await _onboard(client, world)
        yield running
    finally:
        await client.stop()
        await replica.stop()
        await running.stop_trainer()


def _die(stack: Stack) -> None:
    """Make ``stack``'s trainer stop like a killed process: no last deltas, no checkpoint."""
    trainer = stack.trainer
    assert trainer is not None

    async def nothing() -> None:
        return None

    trainer.publish_deltas = nothing  # type: ignore[method-assign]
    trainer.checkpoint = lambda wait=0.0: None  # type: ignore[method-assign]


@pytest.mark.integration
@pytest.mark.asyncio
async def test_replica_equals_the_restarted_trainer_after_a_kill(
    stacks: _Stacks, bootstrap: str, embedded: bool
) -> None:
    half = len(stacks.world.events) // 2
    restarted: Stack | None = None
    try:
        await _publish(stacks.client, stacks.world, stacks.world.events[:half])
        assert await stacks.trainer.state.wait_for(stacks.client.watermarks(), 30)
        assert stacks.trainer.trainer is not None
        await stacks.trainer.trainer.checkpoint_now()  # the last checkpoint before the "kill"
        await _publish(stacks.client, stacks.world, stacks.world.events[half:])
        assert await stacks.replica.state.wait_for(stacks.client.watermarks(), 30)
        # work the restarted trainer will never see (learned, published, never
        # checkpointed): a replica that kept it would differ from the restarted trainer
        # for good
        lost = [(u, i, "purchase") for u, i, _ in stacks.world.events[:40]]
        async with stacks.trainer.trainer._lock:
            _learn(stacks.trainer.state.model, stacks.world, lost)
        total = len(stacks.world.events) + len(lost)
        for _ in range(100):
            if stacks.replica.state.model.n_events == total:
                break
            await asyncio.sleep(0.05)
        assert stacks.replica.state.model.n_events == total  # the replica holds that work
        _die(stacks.trainer)
        await stacks.stop_trainer()

        restarted = _stack(stacks.settings, bootstrap, embedded, "trainer")
        await restarted.start()  # restores the checkpoint, learns the second half again
        assert await restarted.state.wait_for(stacks.client.watermarks(), 30)
        # each event learned once
        assert restarted.state.model.n_events == len(stacks.world.events)
        assert await _replica_catches_up(restarted, stacks.replica, 5) == []
        assert stacks.replica.metrics.get("follower", "replica_resyncs_total") >= 1
    finally:
        if restarted is not None:
            await restarted.stop()


@pytest.mark.integration
@pytest.mark.asyncio
async def test_replica_recovers_a_lost_delta(stacks: _Stacks) -> None:
    from aiokafka.errors import KafkaTimeoutError

    third = len(stacks.world.events) // 3
    await _publish(stacks.client, stacks.world, stacks.world.events[:third])
    assert await stacks.replica.state.wait_for(stacks.client.watermarks(), 30)
    assert stacks.trainer.trainer is not None
    producer = stacks.trainer.trainer._producer
    send = producer.send
    failed: list[str] = []

    async def flaky(topic: str, *args: Any, **kwargs: Any) -> Any:
        if topic == Topics(stacks.settings.topic_prefix).deltas and not failed:
            failed.append(topic)
            raise KafkaTimeoutError("forced by the test")
        return await send(topic, *args, **kwargs)

    producer.send = flaky
    await _publish(stacks.client, stacks.world, stacks.world.events[third : 2 * third])
    assert await stacks.trainer.state.wait_for(stacks.client.watermarks(), 30)
    for _ in range(100):  # the next delta publish fails
        if failed:
            break
        await asyncio.sleep(0.05)
    assert failed
    await _publish(stacks.client, stacks.world, stacks.world.events[2 * third :])
    assert await stacks.trainer.state.wait_for(stacks.client.watermarks(), 30)
    assert await _replica_catches_up(stacks.trainer, stacks.replica, 5) == []
    assert stacks.replica.metrics.get("follower", "replica_resyncs_total") >= 1


@pytest.mark.integration
@pytest.mark.asyncio
async def test_new_items_reach_the_replica_before_the_delta_tick(
    bootstrap: str, embedded: bool, tmp_path: Path
) -> None:
    """A batch that onboards users or items is published at once; other learning waits
    for the delta tick (here a minute away, so never during the test)."""
    settings = _settings(tmp_path, delta_interval_ms=60_000)
    async with (
        _trainer_and_replica(settings, bootstrap, embedded) as (trainer, replica),
        Client(bootstrap, settings=settings) as client,
    ):
        await client.add_user("u1", ["age=1"])
        await client.add_item("i1", ["genre=1"])
        deadline = time.monotonic() + 20
        while not replica.state.model.has_item("i1") and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        assert replica.state.model.has_item("i1") and replica.state.model.has_user("u1")
        await client.track("u1", "i1", "click")
        assert await trainer.state.wait_for(client.watermarks(), 20)
        assert trainer.state.model.n_events == 1
        await asyncio.sleep(1.0)  # a click alone waits for the tick
        assert replica.state.model.n_events == 0


@pytest.mark.integration
@pytest.mark.asyncio
async def test_the_deltas_topic_is_recreated_empty_and_replicas_follow(
    bootstrap: str, embedded: bool, runtime: dict[str, str], tmp_path: Path
) -> None:
    """With a tiny ``deltas_rotate_mb`` the trainer recreates the deltas topic at every
    publish; the replica that follows it and one started afterwards (from the last
    rotation's checkpoint and the new topic) both end equal to the trainer, and the
    topic holds only the deltas since the last rotation."""
    # the suite's feed wait (tests/conftest.py); replicas were seen still behind after
    # 20 s, cause not found (see docs/testing.md), hence the 60 s waits
    settings = _settings(tmp_path, deltas_rotate_mb=0.005, feed_fetch_wait_ms=5, **runtime)
    world = make_world(n_users=30, items_per_cluster=10, events_per_user=10)
    late: Stack | None = None
    async with _trainer_and_replica(settings, bootstrap, embedded) as (trainer, replica):
        try:
            async with Client(bootstrap, settings=settings) as client:
                await _onboard(client, world)
                rounds = 6
                share = len(world.events) // rounds
                k = 0
                # a rotation starts only after a publish, and none while a checkpoint is
                # written: the events go round again (up to 4 times) until 3 rotations
                while k < rounds or (
                    k < 4 * rounds and trainer.metrics.get("trainer", "deltas_rotations_total") < 3
                ):
                    part = (k % rounds) * share
                    await _publish(client, world, world.events[part : part + share])
                    assert await trainer.state.wait_for(client.watermarks(), 30)
                    await asyncio.sleep(0.3)  # its deltas published (every 50 ms)
                    k += 1
                deadline = time.monotonic() + 20  # the last publishes may still be rotating
                while trainer.metrics.get("trainer", "deltas_rotations_total") < 3:
                    assert time.monotonic() < deadline, "3 rotations of the deltas topic"
                    await asyncio.sleep(0.05)
                assert await _replica_catches_up(trainer, replica, 60) == []
                assert trainer.trainer is not None and replica.follower is not None
                held = replica.follower._consumer.highwater(replica.follower._tp)
                assert held is not None and held < trainer.trainer.tracker.seq / 2
                late = _stack(settings, bootstrap, embedded, "recommender")
                await late.start()
                assert await _replica_catches_up(trainer, late, 60) == []
        finally:
            if late is not None:
                await late.stop()


@pytest.mark.integration
@pytest.mark.asyncio
async def test_a_replica_that_missed_the_deltas_before_a_rotation_resyncs_when_idle(
    bootstrap: str, embedded: bool, tmp_path: Path
) -> None:
    """The trainer recreates the deltas topic after every publish here, and the replica
    reads nothing while the last deltas are published and rotated away; no later delta
    comes to show the gap.  With nothing to read it finds the rotation's checkpoint
    ahead of it and resyncs from it, on either broker."""
    settings = _settings(
        tmp_path, deltas_rotate_mb=1e-6, feed_fetch_wait_ms=100, runtime="asyncio"
    )  # its follower runs as a task we can pause
    world = make_world(n_users=20, items_per_cluster=8, events_per_user=6)
    async with _trainer_and_replica(settings, bootstrap, embedded) as (trainer, replica):
        assert trainer.trainer is not None and replica.follower is not None
        follower = replica.follower
        async with Client(bootstrap, settings=settings) as client:
            await _onboard(client, world)
            half = len(world.events) // 2
            await _publish(client, world, world.events[:half])
            assert await trainer.state.wait_for(client.watermarks(), 30)
            assert await _replica_catches_up(trainer, replica, 20) == []
            assert follower._task is not None
            await cancel(follower._task)  # the replica reads nothing from here,
            follower._consumer.pause(follower._tp)  # nor fetches in the background
            rotations = trainer.metrics.get("trainer", "deltas_rotations_total")
            await _publish(client, world, world.events[half:])
            assert await trainer.state.wait_for(client.watermarks(), 30)
            core, deadline = trainer.trainer, time.monotonic() + 20
            while time.monotonic() < deadline and (  # until its last deltas are rotated away
                trainer.metrics.get("trainer", "deltas_rotations_total") == rotations
                or core.tracker.dirty or core._delta_bytes > 0 or core._rotating
            ):  # fmt: skip
                await asyncio.sleep(0.05)
            assert _differences(replica.state.model, trainer.state.model) != []
            follower._consumer.resume(follower._tp)
            follower._task = asyncio.create_task(follower._run())
            # by a resync from the rotation's checkpoint (without it the replica stays
            # behind for good), or, when the trainer published one more delta after its
            # last rotation, by a gap in that delta
            assert await _replica_catches_up(trainer, replica, 20) == []


@pytest.mark.integration
@pytest.mark.asyncio
async def test_a_replica_whose_old_position_is_the_new_topics_end_reads_from_the_checkpoint(
    bootstrap: str, embedded: bool, tmp_path: Path
) -> None:
    """A replica that applied every delta before a rotation, and the new deltas topic
    then holds exactly as many records as the old one: at the replica's position there
    is nothing to fetch, the position is not past the end, and no later delta shows a
    gap.  The rotation's checkpoint holds what the replica holds; the replica reads the
    new topic from that checkpoint's offset, on either broker."""
    settings = _settings(tmp_path, deltas_rotate_mb=1.0, runtime="asyncio")  # no rotation
    world = make_world(n_users=20, items_per_cluster=8, events_per_user=6)
    async with _trainer_and_replica(settings, bootstrap, embedded) as (trainer, replica):

        async def deltas_end() -> int:
            """The deltas topic's end, once the trainer has published what it learned."""
            assert await trainer.state.wait_for(client.watermarks(), 30)
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline and (
                core.tracker.dirty or any(not t.done() for t in core._side.values())
            ):
                await asyncio.sleep(0.02)
            end = (await probe(bootstrap, {follower._tp: 0}))[follower._tp].highwater
            return end or 0

        assert trainer.trainer is not None and replica.follower is not None
        core, follower = trainer.trainer, replica.follower
        async with Client(bootstrap, settings=settings) as client:
            await _onboard(client, world)
            await _publish(client, world, world.events[:10])
            old_end = await deltas_end()
            assert await _replica_catches_up(trainer, replica, 20) == []
            deadline = time.monotonic() + 20  # and it has read every delta
            while await follower._consumer.position(follower._tp) < old_end:
                assert time.monotonic() < deadline, "the replica reads the deltas"
                await asyncio.sleep(0.05)
            assert follower._task is not None
            await cancel(follower._task)  # the replica reads nothing from here,
            follower._consumer.pause(follower._tp)  # nor fetches in the background
            old_end = await follower._consumer.position(follower._tp)
            assert old_end >= 1
            core._delta_bytes = 2 * 2**20  # past deltas_rotate_mb: the next rotation runs
            while not trainer.metrics.get("trainer", "deltas_rotations_total"):
                await core.rotate_deltas()  # (not while a checkpoint is being written)
                await asyncio.sleep(0.05)
            new_end, events = 0, iter(world.events[10:])
            while new_end < old_end:  # one event, one delta: as many records as before
                await _publish(client, world, [next(events)])
                new_end = await deltas_end()
            assert new_end == old_end, "one delta per event expected"
            assert _differences(replica.state.model, trainer.state.model) != []
            # at the replica's position: nothing to fetch, and not past the end
            found = (await probe(bootstrap, {follower._tp: old_end}))[follower._tp]
            assert found.record is None and found.highwater == old_end
            follower._consumer.resume(follower._tp)
            # the look the follower takes once no delta came for IDLE_S (the consumer's
            # cached high watermark, from before the rotation, must not decide the test)
            assert await follower._behind_the_checkpoint()
            assert await follower._consumer.position(follower._tp) == 0
            follower._task = asyncio.create_task(follower._run())
            assert await _replica_catches_up(trainer, replica, 20) == []


@pytest.mark.asyncio
async def test_a_backlog_of_deltas_gives_the_serving_loop_a_turn_per_fetch(
    tmp_path: Path,
) -> None:
    """Fetched deltas come back at once, without suspending: the follower still lets the
    requests beside it on the loop run between its fetches."""
    world = make_world(n_users=10, items_per_cluster=5, events_per_user=4)
    trainer = HybridModel(ModelConfig(dim=16))
    tracker = DeltaTracker(trainer, epoch="A")
    backlog = []
    for k in range(0, 40, 4):
        _learn(trainer, world, world.events[k : k + 4])
        backlog += _messages(tracker)
    follower = DeltaFollower(_settings(tmp_path), "unused:9092")
    follower.epoch = "A"
    follower.state.model = HybridModel(ModelConfig(dim=16))

    class Fetched:
        async def getmany(self, timeout_ms: int = 0) -> dict[str, list[Any]]:
            offset = len(backlog) - len(pending)
            return {"deltas": [SimpleNamespace(value=pending.pop(0), offset=offset)]}

    pending = list(backlog)
    follower._consumer = Fetched()
    async with LoopTurns() as requests:
        while pending:
            await follower.poll_once()
    assert follower.state.model.n_events == 40
    assert requests.count >= len(backlog)


@pytest.mark.integration
@pytest.mark.asyncio
async def test_a_replica_behind_the_deltas_retention_resyncs_from_a_checkpoint(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    """Real Apache Kafka: while a replica's follower is held up, retention
    (``DeleteRecords``) deletes every delta it has not read.  Its fetch is out of range,
    it reads on from the log's start, where no delta is left to show a gap, and once no
    delta came for a second it resyncs from the trainer's newest checkpoint: it ends
    equal to the trainer, array for array.  (The embedded broker has no DeleteRecords.)"""
    from aiokafka import TopicPartition
    from aiokafka.admin import AIOKafkaAdminClient, RecordsToDelete

    settings = _settings(tmp_path)
    world = make_world(n_users=30, items_per_cluster=10, events_per_user=10)
    deltas = TopicPartition(Topics(settings.topic_prefix).deltas, 0)
    async with _trainer_and_replica(settings, kafka_bootstrap, False) as (trainer, replica):
        assert trainer.trainer is not None and replica.follower is not None
        async with Client(kafka_bootstrap, settings=settings) as client:
            await _onboard(client, world)
            half = len(world.events) // 2
            await _publish(client, world, world.events[:half])
            assert await replica.state.wait_for(client.watermarks(), 30)
            held = replica.follower._consumer
            held.pause(deltas)  # the replica falls behind
            await _publish(client, world, world.events[half:])
            assert await trainer.state.wait_for(client.watermarks(), 30)
            await trainer.trainer.publish_deltas()
            await trainer.trainer.checkpoint_now()
            end = (await probe(kafka_bootstrap, {deltas: 0}))[deltas].highwater
            assert end is not None and end > 0
            admin = AIOKafkaAdminClient(bootstrap_servers=kafka_bootstrap)
            await admin.start()
            try:
                await admin.delete_records({deltas: RecordsToDelete(end)})
            finally:
                await admin.close()
            assert _differences(replica.state.model, trainer.state.model) != []
            held.resume(deltas)
            assert await _replica_catches_up(trainer, replica, 15) == []
            assert replica.metrics.get("follower", "replica_resyncs_total") >= 1
