"""Embedding deltas: a replica applying them holds the trainer's model, without a broker."""

from __future__ import annotations

import itertools
import time
from typing import Any

import numpy as np
import pytest

from streamrec.eval.synthetic import World, make_world
from streamrec.model import HybridModel, ModelConfig
from streamrec.stream.codec import decode_binary, encode_binary
from streamrec.stream.schemas import Delta, ItemMeta, Watermark
from streamrec.workers import deltas as delta_mod
from streamrec.workers.deltas import DeltaTracker, apply_delta, part_bytes
from streamrec.workers.state import ModelState


def _sync(tracker: DeltaTracker, replica: ModelState, mark: int) -> list[Delta]:
    msgs = tracker.build([Watermark("t.interactions", 0, mark)])
    for msg in msgs:  # through the wire format
        apply_delta(replica, decode_binary(encode_binary(msg), Delta))
    return msgs


def _assert_same(a: HybridModel, b: HybridModel) -> None:
    assert a.n_users == b.n_users and a.n_items == b.n_items
    np.testing.assert_array_equal(a.item_representations(), b.item_representations())
    for row in range(a.n_users):
        np.testing.assert_array_equal(a.user_vector_row(row), b.user_vector_row(row))
        np.testing.assert_array_equal(a.seen.items(row), b.seen.items(row))


def _learn(
    trainer: HybridModel, tracker: DeltaTracker, world: World, chunk: list[Any], meta: bool
) -> None:
    """One trainer step: onboard the chunk's new users and items, learn it."""
    for user, item, _ in chunk:
        if not trainer.has_item(item):
            trainer.add_item(item, world.item_features(item))
            if meta:
                tracker.item_meta(item, ItemMeta(world.attributes(item), 1.0))
        if not trainer.has_user(user):
            trainer.add_user(user, world.user_features(user))
    u = np.array([trainer.users.ids.get(e[0]) for e in chunk], dtype=np.int32)
    i = np.array([trainer.items.ids.get(e[1]) for e in chunk], dtype=np.int32)
    w = np.ones(len(chunk), dtype=np.float32)
    trainer.learn_rows(u, i, w)


def test_replica_follows_trainer_through_deltas(monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = ModelConfig(dim=8, recent_items=3)
    world = make_world(n_users=12, items_per_cluster=6, events_per_user=5)
    trainer = HybridModel(cfg)
    tracker = DeltaTracker(trainer)
    replica = ModelState(HybridModel(cfg))
    monkeypatch.setattr(delta_mod, "MAX_BYTES", 2_000)  # force chunked deltas
    events = world.events
    for step, chunk in enumerate((events[:20], events[20:45], events[45:])):
        _learn(trainer, tracker, world, chunk, meta=True)
        msgs = _sync(tracker, replica, step + 1)
        assert msgs[-1].final and len(msgs) > 1
        _assert_same(trainer, replica.model)
    assert replica.applied[("t.interactions", 0)] == 3
    assert replica.attributes.get("books-000")["category"] == "books"
    # re-applying an old delta is harmless
    apply_delta(replica, decode_binary(encode_binary(msgs[0]), Delta))
    _assert_same(trainer, replica.model)


def test_a_replica_learns_of_new_items_at_the_time_the_trainer_took_them() -> None:
    """The fresh buffer compares that time with a loaded index's start (trainer clock):
    a delta's arrival time would keep items the index holds (FreshBuffer.add)."""
    cfg = ModelConfig(dim=8, recent_items=3)
    world = make_world(n_users=4, items_per_cluster=3, events_per_user=2)
    trainer = HybridModel(cfg)
    tracker = DeltaTracker(trainer)
    replica = ModelState(HybridModel(cfg))
    heard: list[tuple[list[int], float | None]] = []
    replica.on_items_changed(lambda rows, at: heard.append((list(rows), at)))
    _learn(trainer, tracker, world, world.events[:6], meta=False)
    before = time.time()
    msgs = tracker.build([])
    after = time.time()
    assert all(before <= m.ts <= after for m in msgs)
    for msg in msgs:
        apply_delta(replica, decode_binary(encode_binary(msg), Delta))
    assert [rows for rows, _ in heard] == [list(range(trainer.n_items))]
    assert heard[0][1] == msgs[0].ts
    assert replica.changes_taken_at == msgs[-1].ts  # what an index built here would read


def test_replica_follows_the_popularity_counts_through_a_renormalisation() -> None:
    """With a half-life of one positive the counts' scale doubles per event and the trainer
    renormalises after about 330 positives; the replica must still score identically."""
    cfg = ModelConfig(dim=4, trend_half_life=1.0)
    world = make_world(n_users=10, items_per_cluster=5, events_per_user=40)
    trainer = HybridModel(cfg)
    tracker = DeltaTracker(trainer)
    replica = ModelState(HybridModel(cfg))
    scales = []
    for start in range(0, len(world.events), 50):
        _learn(trainer, tracker, world, world.events[start : start + 50], meta=False)
        _sync(tracker, replica, start)
        scales.append(float(trainer.trend_state[0]))
        _assert_same(trainer, replica.model)
        np.testing.assert_array_equal(trainer.popularity(), replica.model.popularity())
    assert any(b < a for a, b in itertools.pairwise(scales)), "no renormalisation"


def test_every_table_reaches_the_replica_through_the_wire(monkeypatch: pytest.MonkeyPatch) -> None:
    """Accumulators, rings, counters and the random state included, bit for bit."""
    from tests.model.test_replica import FULL, assert_same, steps

    monkeypatch.setattr(delta_mod, "MAX_BYTES", 3_000)
    cfg = ModelConfig(dim=6, seed=3, trend_half_life=1.0, **FULL)  # type: ignore[arg-type]
    trainer = HybridModel(cfg)
    tracker = DeltaTracker(trainer)
    replica = ModelState(HybridModel(cfg))
    for step in steps(trainer, seed=2):
        msgs = _sync(tracker, replica, step)
        assert len(msgs) > 1 and [m.final for m in msgs].count(True) == 1
        assert_same(trainer, replica.model)
    assert replica.model.rng_state[0] == trainer.rng_state[0]


def test_a_large_change_set_travels_in_messages_under_a_megabyte() -> None:
    cfg = ModelConfig(dim=64, seed=1)
    trainer = HybridModel(cfg)
    for n in range(6_000):
        trainer.add_user(f"user-{n}", [f"city={n % 50}", f"age={n % 7}"])
        trainer.add_item(f"item-{n}", [f"genre={n % 30}"])
    tracker = DeltaTracker(trainer)
    msgs = tracker.build([])
    sizes = [len(encode_binary(m)) for m in msgs]
    assert len(msgs) > 1 and max(sizes) < 1_000_000
    replica = ModelState(HybridModel(cfg))
    for msg in msgs:
        apply_delta(replica, decode_binary(encode_binary(msg), Delta))
    _assert_same(trainer, replica.model)


def test_every_delta_message_fits_the_brokers_largest_message() -> None:
    """A change set far over the limit travels in parts, each encoded message below
    ``max_message_bytes`` (the trainer's budget: :func:`part_bytes`)."""
    limit = 40_000
    world = make_world(n_users=60, items_per_cluster=20, events_per_user=10)
    trainer = HybridModel(ModelConfig(dim=16))
    tracker = DeltaTracker(trainer, max_bytes=part_bytes(limit))
    _learn(trainer, tracker, world, world.events, meta=True)
    for n in range(3000):  # item metadata alone far over the limit (a store rebuild)
        tracker.item_meta(f"extra-{n}", ItemMeta({"category": "films", "n": n}, 1.0))
    wire = [encode_binary(m) for m in tracker.build([Watermark("t.interactions", 0, 1)])]
    assert len(wire) > 3 and max(len(w) for w in wire) <= limit
    replica = ModelState(HybridModel(ModelConfig(dim=16)))
    for w in wire:
        apply_delta(replica, decode_binary(w, Delta))
    _assert_same(trainer, replica.model)
    assert replica.attributes.get("extra-2999")["n"] == 2999
