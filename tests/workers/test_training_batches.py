"""The trainer's batch paths give exactly what the record-by-record paths give.

A fetched batch is decoded in one pass (:func:`decode_records`), ordered with one sort
(:func:`merge_by_time`), and runs of interactions are checked and queued as a whole
(:meth:`TrainerCore.apply`).  Each is compared with its one-record-at-a-time
counterpart on a clean world with hostile payloads mixed in: the same messages and
rejection reasons, the same order, the same model (integers exactly, floats to the
~1e-8 the kernel's sums vary by from run to run), the same entity upserts and the same
dead letters.
"""

from __future__ import annotations

import asyncio
import heapq
import time
from collections import deque
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from streamrec.model import HybridModel, ModelConfig
from streamrec.settings import Settings
from streamrec.stream.codec import Rejected, encode
from streamrec.stream.records import Record
from streamrec.stream.schemas import Interaction, NewItem, NewUser
from streamrec.workers.deltas import DeltaTracker
from streamrec.workers.state import ModelState
from streamrec.workers.training import core as core_module
from streamrec.workers.training.core import (
    Decoded,
    TrainerCore,
    decode_record,
    decode_records,
    merge_by_time,
)
from streamrec.workers.training.sinks import EntityUpsert, NullEntitySink
from streamrec.workers.training.trainer import Trainer
from tests.hostile import Payload, clean_world, hostile
from tests.loop_turns import LoopTurns

CLEAN = clean_world(300)
CONFIG = ModelConfig(dim=8)
SLOW = {"suppress_health_check": [HealthCheck.too_slow, HealthCheck.data_too_large,
                                  HealthCheck.function_scoped_fixture]}  # fmt: skip


class ListSink(NullEntitySink):
    """Keeps every upsert in the order it came (with the offset of its source)."""

    def __init__(self) -> None:
        self.seen: list[tuple[EntityUpsert, Any]] = []

    def upsert(self, entity: EntityUpsert, source: Any = None) -> None:
        self.seen.append((entity, None if source is None else source.offset))


def _records(values: list[tuple[str, bytes]]) -> list[Record]:
    return [Record(topic, 0, offset, b"k", value, 1_000 + offset)
            for offset, (topic, value) in enumerate(values)]  # fmt: skip


def _mixed(bad: list[Payload], positions: list[int]) -> list[tuple[str, bytes]]:
    values = [("entities", v) for v in CLEAN.entities]
    values += [("interactions", v) for v in CLEAN.interactions]
    for shift, (pos, payload) in enumerate(zip(sorted(positions), bad, strict=True)):
        values.insert(pos + shift, (payload.topic, payload.value))
    return values


def _verdict(d: Decoded) -> tuple[Any, ...]:
    msg = d.message
    return (d.ts, d.record, msg.reason if isinstance(msg, Rejected) else msg)


def _apply(records: list[Decoded], monkeypatch: pytest.MonkeyPatch, one_by_one: bool) -> Any:
    model = HybridModel(CONFIG)
    sink = ListSink()
    core = TrainerCore(ModelState(model), sink, DeltaTracker(model))
    with monkeypatch.context() as patch:
        patch.setattr(core_module, "time", SimpleNamespace(time=lambda: 1_234.5))
        if one_by_one:  # no run is long enough for the whole-run path
            patch.setattr(core_module, "MIN_RUN", len(records) + 1)
        dead = core.apply(records)
    letters = [(d.source_offset, d.reason, d.original) for d in dead]
    return model, letters, [(e.kind, e.id, e.features, dict(e.attributes), s)
                            for e, s in sink.seen]  # fmt: skip


def _trainer_hostile() -> st.SearchStrategy[list[Payload]]:
    return st.lists(hostile().filter(lambda p: p.topic != "requests"), min_size=1, max_size=10)


@settings(max_examples=20, deadline=None, **SLOW)
@given(bad=_trainer_hostile(), data=st.data())
def test_a_batch_decodes_as_its_records_one_by_one(bad: list[Payload], data: st.DataObject) -> None:
    positions = data.draw(st.lists(st.integers(0, 400), min_size=len(bad), max_size=len(bad)))
    records = _records(_mixed(bad, positions))
    batched = decode_records(records)
    assert [_verdict(d) for d in batched] == [_verdict(decode_record(r)) for r in records]


def test_null_values_and_newer_schemas_are_rejected_in_a_batch_as_alone() -> None:
    values = [encode(Interaction(user="u", item="i", ts=2.0)), None,
              encode(Interaction(user="u", item="j", ts=3.0, v=99)), b"{"]  # fmt: skip
    records = [Record("t", 0, k, None, v, 5_000) for k, v in enumerate(values)]
    batched = decode_records(records)
    assert [_verdict(d) for d in batched] == [_verdict(decode_record(r)) for r in records]
    assert [type(d.message) for d in batched] == [Interaction, Rejected, Rejected, Rejected]
    assert [d.ts for d in batched] == [2.0, 5.0, 5.0, 5.0]


@settings(max_examples=20, deadline=None, **SLOW)
@given(bad=_trainer_hostile(), data=st.data())
def test_whole_runs_learn_exactly_what_one_by_one_learns(
    bad: list[Payload], data: st.DataObject, monkeypatch: pytest.MonkeyPatch
) -> None:
    positions = data.draw(st.lists(st.integers(0, 400), min_size=len(bad), max_size=len(bad)))
    records = decode_records(_records(_mixed(bad, positions)))
    fast, fast_dead, fast_sink = _apply(records, monkeypatch, one_by_one=False)
    slow, slow_dead, slow_sink = _apply(records, monkeypatch, one_by_one=True)
    assert fast_dead == slow_dead and len(fast_dead) == len(bad)
    assert fast_sink == slow_sink
    assert fast.n_events == slow.n_events == CLEAN.n_events
    assert list(fast.users.ids) == list(slow.users.ids)
    assert list(fast.items.ids) == list(slow.items.ids)
    mine, theirs = fast.arrays(), slow.arrays()
    assert mine.keys() == theirs.keys()
    for name, array in theirs.items():  # the kernel's float sums vary by ~1e-8 run to run
        if np.issubdtype(array.dtype, np.floating):
            np.testing.assert_allclose(mine[name], array, rtol=1e-4, atol=1e-6, err_msg=name)
        else:
            np.testing.assert_array_equal(mine[name], array, err_msg=name)


def test_interactions_onboard_new_users_and_items_in_event_order(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A run naming unknown users and items (some twice) onboards them in the order
    one-by-one does, each once, with one implicit upsert each."""
    values = [("entities", encode(NewUser(user="u0", ts=1.0))),
              ("entities", encode(NewItem(item="i0", ts=1.0)))]  # fmt: skip
    pairs = [("u0", "i0"), ("n1", "i0"), ("u0", "m1"), ("n2", "m2"), ("n1", "m1"),
             ("n3", "m3"), ("n2", "i0"), ("u0", "m4"), ("n4", "m2"), ("n3", "m5")]  # fmt: skip
    values += [("interactions", encode(Interaction(user=u, item=i, ts=2.0 + k)))
               for k, (u, i) in enumerate(pairs)]  # fmt: skip
    records = decode_records(_records(values))
    fast, fast_dead, fast_sink = _apply(records, monkeypatch, one_by_one=False)
    slow, slow_dead, slow_sink = _apply(records, monkeypatch, one_by_one=True)
    assert fast_dead == slow_dead == []
    assert list(fast.users.ids) == list(slow.users.ids) == ["u0", "n1", "n2", "n3", "n4"]
    assert list(fast.items.ids) == list(slow.items.ids) == ["i0", "m1", "m2", "m3", "m4", "m5"]
    assert fast_sink == slow_sink
    assert [(kind, eid) for kind, eid, *_ in fast_sink][2:] == [
        ("user", "n1"), ("item", "m1"), ("user", "n2"), ("item", "m2"), ("user", "n3"),
        ("item", "m3"), ("item", "m4"), ("user", "n4"), ("item", "m5")]  # fmt: skip


def _release_order(streams: list[list[Decoded]]) -> list[Decoded]:
    """What the trainer's hold-back queues release, with no hold-back window."""
    trainer = Trainer(Settings.load({}, environ={}), "127.0.0.1:1")
    for k, stream in enumerate(streams):
        trainer._held[("t", k)] = deque((0.0, d) for d in stream)
    return trainer._release(1.0)


@settings(max_examples=50, deadline=None)
@given(st.lists(st.lists(st.integers(0, 6), max_size=12), min_size=2, max_size=5))
def test_one_sort_merges_partitions_as_the_queues_release_them(stamps: list[list[int]]) -> None:
    """Producer times in order per partition (ties between and within partitions)."""
    streams = [[Decoded(float(ts), Record("t", p, k, None, b""), Rejected("x"))
                for k, ts in enumerate(sorted(times))]
               for p, times in enumerate(stamps)]  # fmt: skip
    merged = merge_by_time(streams)
    assert merged is not None
    assert [d.record for d in merged] == [d.record for d in _release_order(streams)]
    assert [d.record for d in merged] == [
        d.record for d in heapq.merge(*streams, key=lambda d: d.ts)
    ]


def test_a_partition_out_of_time_order_is_left_to_the_queues() -> None:
    late = [Decoded(ts, Record("t", 0, k, None, b""), Rejected("x"))
            for k, ts in enumerate([3.0, 1.0])]  # fmt: skip
    other = [Decoded(2.0, Record("t", 1, 0, None, b""), Rejected("x"))]
    assert merge_by_time([late, other]) is None
    nan = [Decoded(float("nan"), Record("t", 2, 0, None, b""), Rejected("x"))]
    assert merge_by_time([nan, other]) is None


def _noticed(records: list[Decoded], one_at_a_time: bool) -> tuple[HybridModel, dict[int, Any]]:
    """Apply ``records`` (in one call, or one call each) and keep what the indexer would
    hold: the last representation told for each changed item, in the order told."""
    model = HybridModel(CONFIG)
    state = ModelState(model)
    told: dict[int, Any] = {}

    def listener(rows: Any, at: float | None) -> None:
        reps = model.item_representations(np.asarray(list(rows), dtype=np.int64))
        for row, rep in zip(rows, reps, strict=True):
            told.pop(row, None)
            told[row] = rep.copy()

    state.on_items_changed(listener)
    core = TrainerCore(state, NullEntitySink(), DeltaTracker(model))
    for chunk in [[d] for d in records] if one_at_a_time else [records]:
        assert core.apply(chunk) == []
    return model, told


def test_changed_items_are_told_once_per_run_with_the_representation_one_by_one_gives() -> None:
    # entities (with a re-featured item and a new one) and then interactions, one naming
    # an unknown item: every notice comes before anything is learned in both ways (a
    # notice per record and learning per record differ only where learning runs differ)
    values = [("entities", v) for v in CLEAN.entities]
    values += [("entities", encode(NewItem(item="i3", features=["genre=9"], ts=3.0))),
               ("entities", encode(NewItem(item="new", features=["genre=1"], ts=3.0))),
               ("interactions", encode(Interaction(user="u1", item="bare", ts=3.0)))]  # fmt: skip
    values += [("interactions", v) for v in CLEAN.interactions[:30]]
    records = decode_records(_records(values))
    # told: each changed item once per run, in the order of its last change, with its
    # vector and bias as one notice per record gives them; the last column (the trend
    # signal's newness prior) decays with every item onboarded after it, so a notice per
    # run gives the value a notice per record shows at the indexer's next refresh
    batched_model, batched = _noticed(records, one_at_a_time=False)
    single_model, single = _noticed(records, one_at_a_time=True)
    assert list(batched) == list(single)
    assert len(batched) == batched_model.n_items == single_model.n_items
    for row, rep in single.items():
        np.testing.assert_allclose(batched[row][:-1], rep[:-1], rtol=1e-4, atol=1e-6,
                                   err_msg=str(row))  # fmt: skip


class BehindSink(NullEntitySink):
    """A feature store far behind until told it caught up."""

    def __init__(self) -> None:
        self.backlog = 1_000_000
        self.asked = asyncio.Event()

    def pending(self) -> int:
        self.asked.set()
        return self.backlog


@pytest.mark.asyncio
async def test_a_checkpoint_lets_learning_go_on_while_the_store_catches_up() -> None:
    """The store's backlog is waited for outside the trainer's lock (a fetch can take
    it meanwhile); the checkpoint itself runs under the lock once the store caught up."""
    sink = BehindSink()
    trainer = Trainer(Settings.load({}, environ={}), "127.0.0.1:1", sink=sink)
    order: list[str] = []

    def take_checkpoint(wait: float = 0.0) -> None:  # (then nothing to write)
        order.append(f"checkpoint with {sink.backlog} pending")

    trainer.take_checkpoint = take_checkpoint  # type: ignore[method-assign, assignment]
    task = asyncio.ensure_future(trainer.checkpoint_now())
    asked = asyncio.ensure_future(sink.asked.wait())
    await asyncio.wait([task, asked], return_when=asyncio.FIRST_COMPLETED)  # either
    async with trainer._lock:  # what a fetch does: not held back by the waiting checkpoint
        order.append("learned a batch")
    sink.backlog = 0
    await task
    asked.cancel()
    assert order == ["learned a batch", "checkpoint with 0 pending"]


@pytest.mark.asyncio
async def test_a_rotation_without_its_checkpoint_keeps_the_topic_and_waits() -> None:
    """When the store keeps the rotation's checkpoint from being taken, the deltas
    topic is not recreated, the trainer's deltas offset stays, and the next attempt
    waits ``ROTATE_RETRY_S``."""
    import time

    from streamrec.workers.training.trainer import ROTATE_RETRY_S

    trainer = Trainer(Settings.load({"deltas_rotate_mb": 1}, environ={}), "127.0.0.1:1")
    published: list[int] = []

    async def publish() -> None:
        published.append(1)

    trainer._publish_deltas = publish  # type: ignore[method-assign]
    trainer.take_checkpoint = lambda wait=0.0: None  # type: ignore[method-assign, assignment]
    trainer._delta_bytes, trainer._deltas_offset = 2**20 + 1, 7
    await trainer.rotate_deltas()
    assert published == [1] and trainer._deltas_offset == 7 and not trainer._rotating
    assert trainer._delta_bytes == 2**20 + 1  # still due, once the wait is over
    assert trainer._rotate_after >= time.monotonic() + ROTATE_RETRY_S - 1


@pytest.mark.asyncio
async def test_a_checkpoint_write_in_flight_holds_no_lock_and_no_rotation() -> None:
    """While a checkpoint is being written, a periodic checkpoint waits for it without the
    lock (learning goes on), and a rotation is left to a later publish (the deltas go
    on)."""
    trainer = Trainer(Settings.load({"deltas_rotate_mb": 1}, environ={}), "127.0.0.1:1")
    loop = asyncio.get_running_loop()
    writing: asyncio.Future[Any] = loop.create_future()
    trainer._saving = writing
    published: list[int] = []

    async def publish() -> None:
        published.append(1)

    trainer._publish_deltas = publish  # type: ignore[method-assign]
    trainer._delta_bytes = 2**20 + 1
    await trainer.rotate_deltas()
    assert published == [] and trainer._delta_bytes == 2**20 + 1 and not trainer._rotating
    taken: list[bool] = []

    def take(wait: float = 0.0) -> None:
        taken.append(trainer._lock.locked())

    trainer.take_checkpoint = take  # type: ignore[method-assign, assignment]
    task = asyncio.create_task(trainer.checkpoint_now())
    await asyncio.sleep(0.05)
    assert not trainer._lock.locked() and taken == []  # waiting, the lock free
    writing.set_result(None)
    await task
    assert taken == [True]  # then taken under the lock


@pytest.mark.integration
@pytest.mark.asyncio
async def test_a_new_item_is_learned_ahead_of_a_backlog_of_clicks(
    bootstrap: str, settings_factory: Any
) -> None:
    """Behind 20,000 clicks already fetched, a new item is onboarded by one of the next
    batches, not after every click before it (aiokafka hands out a partition's fetched
    records before those of a fetch that came back later), on either broker.  Each
    batch of 200 takes 5 ms here, as learning would: aiokafka fetches the entities'
    partition once the clicks have been buffered for 100 ms."""
    from streamrec.stream.broker import ensure_topics
    from streamrec.stream.client import Client
    from streamrec.stream.topics import Topics

    settings = settings_factory(batch_max=200, checkpoint_interval_s=0)
    topics = Topics(settings.topic_prefix)
    await ensure_topics(bootstrap, topics.partitions(1))
    trainer = Trainer(settings, bootstrap)
    async with Client(bootstrap, settings=settings) as client:
        await client.add_user("u0", ["f=u"])
        await client.add_item("i0", ["f=i"])
        await client.track_many([("u0", "i0")] * 20_000, wait=True)
        await trainer.open()
        try:
            clicks = (topics.interactions, 0)
            while trainer.state.applied.get(clicks, 0) < 1_000:  # the clicks' fetch is in
                await trainer.poll_once()
            await client.add_item("fresh", ["f=fresh"])
            while not trainer.state.model.has_item("fresh"):
                await trainer.poll_once()
                await asyncio.sleep(0.005)
            assert trainer.state.applied[clicks] < 15_000, "it waited behind the clicks"
        finally:
            await trainer.stop()


@pytest.mark.asyncio
async def test_a_fetch_error_after_the_entities_records_waits_for_the_next_fetch() -> None:
    """The entities' records drained before the clicks' fetch fails are returned, and
    the failure is raised by the next fetch (as aiokafka does within one call)."""
    from aiokafka import TopicPartition
    from aiokafka.errors import OffsetOutOfRangeError

    trainer = Trainer(Settings.load({"batch_max": 10}, environ={}), "127.0.0.1:1")
    entities = TopicPartition("t.entities", 0)
    calls: list[tuple[Any, ...]] = []

    async def getmany(*tps: Any, timeout_ms: int = 0, max_records: int = 0) -> Any:
        calls.append((tps, max_records))
        if tps:
            return {entities: ["new-item"]}
        raise OffsetOutOfRangeError({"t.interactions": 5})

    trainer._consumer = SimpleNamespace(getmany=getmany)
    trainer._entity_tps = [entities]
    assert await trainer._fetch(20) == {entities: ["new-item"]}
    assert calls == [((entities,), 10), ((), 9)]
    with pytest.raises(OffsetOutOfRangeError):
        await trainer._fetch(20)
    assert len(calls) == 2  # raised before fetching again
    with pytest.raises(OffsetOutOfRangeError):  # with nothing drained, at once
        trainer._entity_tps = []
        await trainer._fetch(20)


@pytest.mark.asyncio
async def test_a_rotation_whose_topic_cannot_be_recreated_still_writes_its_checkpoint(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The checkpoint's deltas offset 0 holds for the old topic too (replicas skip the
    deltas before its seq): it is written, the deltas flow again, and no rotation is
    counted."""
    from streamrec.errors import TopicError
    from streamrec.workers.training import trainer as trainer_module

    async def refuse(bootstrap: str, name: str) -> None:
        raise TopicError("the broker said no")

    monkeypatch.setattr(trainer_module, "recreate_topic_in_thread", refuse)
    trainer = Trainer(Settings.load({"deltas_rotate_mb": 1}, environ={}), "127.0.0.1:1")

    async def publish() -> None:
        pass

    written: list[Any] = []
    trainer._publish_deltas = publish  # type: ignore[method-assign]
    trainer.take_checkpoint = lambda wait=0.0: "pending"  # type: ignore[method-assign, assignment]
    trainer.write_checkpoint = lambda pending: written.append(pending)  # type: ignore[method-assign, assignment, func-returns-value]
    trainer._delta_bytes = 2**20 + 1
    await trainer.rotate_deltas()
    assert written == ["pending"] and not trainer._rotating and trainer._delta_bytes == 0
    assert trainer.metrics.get("trainer", "deltas_rotations_total") == 0


@pytest.mark.asyncio
async def test_new_entities_learned_too_soon_after_a_publish_are_published_later() -> None:
    """A batch that onboards entities within ``EARLY_PUBLISH_GAP_S`` of the last publish
    (or while one waits) does not wait for the delta tick: a later fetch publishes them,
    unless a publish has taken them meanwhile."""
    import time

    trainer = Trainer(Settings.load({}, environ={}), "127.0.0.1:1")
    trainer._producer = object()
    builds: list[int] = []  # change sets taken
    trainer.tracker = SimpleNamespace(  # type: ignore[assignment]
        dirty=True, build=lambda offsets, retired=0: builds.append(1) or []
    )
    trainer._last_publish = time.monotonic()
    trainer._publish_onboarded(True)  # too soon after the last publish
    await asyncio.sleep(0)
    assert builds == [] and trainer._onboard_pending
    trainer._last_publish -= 1.0
    await trainer._lock.acquire()  # a batch being learned
    trainer._publish_onboarded(False)  # a later fetch: a publish starts, waits for the lock
    trainer._publish_onboarded(True)  # more entities meanwhile: that publish will take them
    await asyncio.sleep(0)
    assert builds == [] and trainer._onboard_pending
    trainer._lock.release()
    await trainer._side["deltas"]
    assert builds == [1] and not trainer._onboard_pending
    trainer._last_publish -= 1.0
    trainer._publish_onboarded(False)  # nothing left to publish
    await asyncio.sleep(0)
    assert builds == [1] and trainer._side["deltas"].done()


@pytest.mark.asyncio
async def test_a_batch_publishes_its_new_item_before_learning_the_clicks_behind_it() -> None:
    """Behind a backlog a batch holds thousands of clicks: one with a new item ahead of
    at least ``ENTITIES_FIRST_MIN`` of them sends the deltas (the item in them) before
    learning those, then learns them; one with fewer learns them first, as before."""
    from aiokafka.structs import TopicPartition

    from streamrec.workers.training.trainer import ENTITIES_FIRST_MIN

    trainer = Trainer(Settings.load({}, environ={}), "127.0.0.1:1",
                      state=ModelState(HybridModel(CONFIG)))  # fmt: skip
    topics = trainer.topics
    sends: list[tuple[int, bool]] = []  # (events learned, item known) at each send

    class Producer:
        async def send(self, topic: str, value: bytes, key: bytes) -> asyncio.Future[Any]:
            model = trainer.state.model
            sends.append((model.n_events, model.has_item("fresh")))
            done: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
            done.set_result(SimpleNamespace(offset=len(sends)))
            return done

    trainer._producer = Producer()

    def batch(item: str, clicks: int, start: int) -> dict[Any, list[Any]]:
        def rec(offset: int, value: bytes) -> Any:
            return SimpleNamespace(offset=offset, key=b"k", value=value, timestamp=1_000)

        entity = encode(NewItem(item=item, features=["f=x"], ts=1.0))
        click = [encode(Interaction(user=f"u{k % 7}", item="i0", ts=2.0)) for k in range(clicks)]
        return {TopicPartition(topics.entities, 0): [rec(start, entity)],
                TopicPartition(topics.interactions, 0):
                    [rec(start + k, v) for k, v in enumerate(click)]}  # fmt: skip

    await trainer._process(batch("fresh", ENTITIES_FIRST_MIN, 0))
    await asyncio.gather(*trainer._confirming)
    assert sends == [(0, True)], "the item went out before the clicks were learned"
    assert trainer.state.model.n_events == ENTITIES_FIRST_MIN
    sends.clear()
    trainer._last_publish -= 1.0
    await trainer._process(batch("later", ENTITIES_FIRST_MIN - 1, 10_000))
    assert sends == [] and trainer.state.model.has_item("later")

    # a failed send (the trainer writes a checkpoint that holds the change set) loses
    # none of the batch: its clicks are learned after it
    async def refuse(topic: str, value: bytes, key: bytes) -> None:
        raise ConnectionError("the broker went away")

    failures: list[bool] = []

    async def delta_failed(locked: bool) -> None:
        failures.append(locked)

    trainer._producer.send = refuse  # type: ignore[method-assign]
    trainer._delta_failed = delta_failed  # type: ignore[method-assign]
    trainer._last_publish -= 1.0
    learned = trainer.state.model.n_events
    await trainer._process(batch("third", ENTITIES_FIRST_MIN, 20_000))
    assert failures == [True] and trainer.state.model.has_item("third")
    assert trainer.state.model.n_events == learned + ENTITIES_FIRST_MIN
    assert trainer.state.applied[(topics.interactions, 0)] == 20_000 + ENTITIES_FIRST_MIN


@pytest.mark.asyncio
async def test_each_fetch_gives_the_event_loop_a_turn() -> None:
    """Behind a backlog every fetch returns at once without suspending: the trainer's
    loop still lets the tasks beside it run (publishes, a rotation's steps, timers)."""

    class Backlog:
        async def getmany(self, *partitions: Any, timeout_ms: int = 0,
                          max_records: int | None = None) -> dict[Any, list[Any]]:  # fmt: skip
            return {}  # at once, as fetched records already buffered are

    trainer = Trainer(Settings.load({}, environ={}), "127.0.0.1:1",
                      state=ModelState(HybridModel(CONFIG)))  # fmt: skip
    trainer._consumer = Backlog()
    async with LoopTurns() as beside:
        for _ in range(10):
            await trainer.poll_once()
    assert beside.count >= 10


class _Fetches:
    """A consumer whose every fetch brings ``size`` records at once, with the time of each."""

    def __init__(self, size: int) -> None:
        self.size, self.times = size, []  # type: list[float]

    async def getmany(self, *partitions: Any, timeout_ms: int = 0,
                      max_records: int | None = None) -> dict[Any, list[Any]]:  # fmt: skip
        if partitions:  # the entities' partitions, asked first: nothing there
            return {}
        self.times.append(time.monotonic())
        return {("interactions", 0): [None] * self.size} if self.size else {}


async def _poll_times(size: int, batch_max: int, interval_ms: int, polls: int) -> list[float]:
    settings = Settings.load({"batch_max": batch_max, "learn_interval_ms": interval_ms},
                             environ={})  # fmt: skip
    trainer = Trainer(settings, "127.0.0.1:1", state=ModelState(HybridModel(CONFIG)))
    trainer._consumer = fetches = _Fetches(size)
    trainer._entity_tps = [("entities", 0)]

    async def learn(batch: dict[Any, list[Any]]) -> None:
        assert sum(len(recs) for recs in batch.values()) == size

    async def nothing_recreated() -> set[Any]:
        return set()

    trainer._process = learn  # type: ignore[method-assign]
    trainer._reconnected_check = nothing_recreated  # type: ignore[method-assign]
    for _ in range(polls):
        await trainer.poll_once()
    return fetches.times


@pytest.mark.asyncio
@pytest.mark.parametrize("size", [0, 7])
async def test_a_caught_up_trainer_fetches_at_most_once_per_learn_interval(size: int) -> None:
    """Fewer records than ``batch_max`` (or none): the next fetch waits until
    ``learn_interval_ms`` after this one started, so that it learns in batches."""
    times = await _poll_times(size, batch_max=100, interval_ms=150, polls=4)
    assert len(times) == 4
    assert min(np.diff(times)) >= 0.15


@pytest.mark.asyncio
async def test_behind_a_backlog_the_trainer_fetches_again_at_once() -> None:
    """Full batches: no wait between fetches (a 60 s interval would show)."""
    t0 = time.monotonic()
    times = await _poll_times(100, batch_max=100, interval_ms=60_000, polls=4)
    assert len(times) == 4 and times[-1] - t0 < 30


@pytest.mark.integration
@pytest.mark.asyncio
async def test_records_the_broker_no_longer_holds_are_reported_not_skipped_silently(
    kafka_bootstrap: str, settings_factory: Any
) -> None:
    """Real Apache Kafka: the first 10 clicks deleted (``DeleteRecords``, as retention
    does) before a fresh trainer reads the topic.  It learns the other 20 and says that
    10 were never there: in ``/health``, the ``records_missing_total`` metric and an
    error in the log.  (The embedded broker has no DeleteRecords.)"""
    from aiokafka import TopicPartition
    from aiokafka.admin import AIOKafkaAdminClient, RecordsToDelete

    from streamrec.stream.broker import ensure_topics
    from streamrec.stream.client import Client
    from streamrec.stream.topics import Topics

    settings = settings_factory(checkpoint_interval_s=0, event_period_s=0)
    topics = Topics(settings.topic_prefix)
    await ensure_topics(kafka_bootstrap, topics.partitions(1))
    async with Client(kafka_bootstrap, settings=settings) as client:
        await client.track_many([(f"u{k}", f"i{k}") for k in range(30)], wait=True)
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    await admin.start()
    try:
        await admin.delete_records({TopicPartition(topics.interactions, 0): RecordsToDelete(10)})
    finally:
        await admin.close()
    trainer = Trainer(settings, kafka_bootstrap, fresh=True)
    await trainer.open()
    try:
        clicks = (topics.interactions, 0)
        deadline = time.monotonic() + 30
        while trainer.state.applied.get(clicks, 0) < 30 and time.monotonic() < deadline:
            await trainer.poll_once()
        assert trainer.state.applied.get(clicks, 0) == 30
        assert trainer.state.model.n_events == 20
        assert trainer.health()["records_missing"] == 10
        assert "records_missing_total" in trainer.metrics.render()
    finally:
        await trainer.stop()


@pytest.mark.integration
@pytest.mark.asyncio
async def test_a_trainer_behind_retention_reads_on_and_reports_what_it_missed(
    kafka_bootstrap: str, settings_factory: Any
) -> None:
    """Real Apache Kafka: retention (``DeleteRecords``) deletes clicks the trainer has not
    read, once while it runs and once while it is stopped past its checkpoint.  Each
    time it reads on from the log's new start, the same log (no rewind to 0, no
    recreation counted), and counts exactly the deleted records it never learned."""
    from aiokafka import TopicPartition
    from aiokafka.admin import AIOKafkaAdminClient, RecordsToDelete

    from streamrec.stream.broker import ensure_topics
    from streamrec.stream.client import Client
    from streamrec.stream.topics import Topics

    settings = settings_factory(checkpoint_interval_s=0, event_period_s=0)
    topics = Topics(settings.topic_prefix)
    clicks = (topics.interactions, 0)
    await ensure_topics(kafka_bootstrap, topics.partitions(1))

    async def publish_and_delete(start: int, end: int, before: int) -> None:
        async with Client(kafka_bootstrap, settings=settings) as client:
            await client.track_many([(f"u{k}", f"i{k}") for k in range(start, end)], wait=True)
        admin = AIOKafkaAdminClient(bootstrap_servers=kafka_bootstrap)
        await admin.start()
        try:
            await admin.delete_records({TopicPartition(*clicks): RecordsToDelete(before)})
        finally:
            await admin.close()

    async def learn_until(trainer: Trainer, offset: int) -> None:
        deadline = time.monotonic() + 30
        while trainer.state.applied.get(clicks, 0) < offset and time.monotonic() < deadline:
            await trainer.poll_once()
        assert trainer.state.applied.get(clicks, 0) == offset

    trainer = Trainer(settings, kafka_bootstrap, fresh=True)
    await trainer.open()
    try:
        await publish_and_delete(0, 30, 0)
        await learn_until(trainer, 30)
        part = TopicPartition(*clicks)
        trainer._consumer.pause(part)  # (else its fetcher reads ahead of the deletion)
        await asyncio.sleep(0.2)
        await publish_and_delete(30, 50, 40)  # 30 to 39 deleted before it read them
        trainer._consumer.resume(part)
        await learn_until(trainer, 50)
        assert trainer.state.model.n_events == 40
        assert trainer.health()["records_missing"] == 10
    finally:
        await trainer.stop()  # its checkpoint: offset 50
    await publish_and_delete(50, 70, 60)  # 50 to 59 deleted while it was stopped
    trainer = Trainer(settings, kafka_bootstrap)
    await trainer.open()
    try:
        assert trainer.state.model.n_events == 40  # the checkpoint's
        await learn_until(trainer, 70)
        assert trainer.state.model.n_events == 50
        assert trainer.health()["records_missing"] == 10
        assert "topic_recreations_total" not in trainer.metrics.render()
    finally:
        await trainer.stop()
