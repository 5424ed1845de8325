"""Embedding deltas: a replica applying them holds the trainer's model, without a broker."""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np

from streamrec.eval.synthetic import World, make_world
from streamrec.model import HybridModel, ModelConfig
from streamrec.stream.codec import decode, encode
from streamrec.stream.schemas import Delta, ItemMeta, Watermark
from streamrec.workers import deltas as delta_mod
from streamrec.workers.deltas import DeltaTracker, apply_delta
from streamrec.workers.state import ModelState


def _sync(tracker: DeltaTracker, replica: ModelState, mark: int) -> list[Delta]:
    msgs = tracker.build([Watermark("t.interactions", 0, mark)])
    for msg in msgs:  # through the wire format
        apply_delta(replica, decode(encode(msg), Delta))
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
    """One trainer step: onboard the chunk's new users and items, learn it, record it."""
    for user, item, _ in chunk:
        if not trainer.has_item(item):
            attrs = ItemMeta(world.attributes(item), 1.0) if meta else None
            tracker.item_defined(trainer.add_item(item, world.item_features(item)), item, attrs)
        if not trainer.has_user(user):
            tracker.user_defined(trainer.add_user(user, world.user_features(user)))
    u = np.array([trainer.users.ids.get(e[0]) for e in chunk], dtype=np.int32)
    i = np.array([trainer.items.ids.get(e[1]) for e in chunk], dtype=np.int32)
    w = np.ones(len(chunk), dtype=np.float32)
    trainer.learn_rows(u, i, w)
    tracker.learned(u, i, w)


def test_replica_follows_trainer_through_deltas(monkeypatch: object) -> None:
    cfg = ModelConfig(dim=8, recent_items=3)
    world = make_world(n_users=12, items_per_cluster=6, events_per_user=5)
    trainer = HybridModel(cfg)
    tracker = DeltaTracker(trainer)
    replica = ModelState(HybridModel(cfg))
    delta_mod.MAX_ROWS = 7  # force chunked deltas
    events = world.events
    for step, chunk in enumerate((events[:20], events[20:45], events[45:])):
        _learn(trainer, tracker, world, chunk, meta=True)
        msgs = _sync(tracker, replica, step + 1)
        assert msgs[-1].final and len(msgs) > 1
        _assert_same(trainer, replica.model)
    assert replica.applied[("t.interactions", 0)] == 3
    assert replica.attributes.get("books-000")["category"] == "books"
    # re-applying an old delta is harmless
    apply_delta(replica, decode(encode(msgs[0]), Delta))
    _assert_same(trainer, replica.model)
    delta_mod.MAX_ROWS = 1500


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
