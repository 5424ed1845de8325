"""Learning a batch on two threads: what must not race is exact, the rest learns as well."""

from __future__ import annotations

import copy
import itertools

import numpy as np
import pytest

from streamrec.model import HybridModel, ModelConfig, kernels
from streamrec.model.threads import MIN_EVENTS_PER_THREAD, threads_for
from tests.model.test_planted_world import cold_start_precision
from tests.model.test_replica import FULL, assert_same
from tests.model.world import World, planted_world

SPLIT = 2 * MIN_EVENTS_PER_THREAD  # the smallest batch learned on two threads


def onboarded(world: World, config: ModelConfig) -> HybridModel:
    model = HybridModel(config)
    for user in world.user_taste:
        model.add_user(user, world.user_features(user))
    for item in world.item_genre:
        model.add_item(item, world.item_features(item))
    return model


def rows(model: HybridModel, world: World) -> tuple[np.ndarray, np.ndarray]:
    users = model.user_rows_of([u for u, _ in world.events])
    items = model.item_rows_of([i for _, i in world.events])
    return np.array(users, dtype=np.int32), np.array(items, dtype=np.int32)


def test_a_batch_is_split_only_when_each_thread_gets_enough_events() -> None:
    assert threads_for(SPLIT - 1, 2) == 1
    assert threads_for(SPLIT, 2) == 2
    assert threads_for(100 * SPLIT, 1) == 1
    assert threads_for(10, 4) == 1


def test_a_small_batch_on_two_threads_is_learned_exactly_as_on_one() -> None:
    world = planted_world(seed=2)
    config = ModelConfig(dim=8, seed=4, **FULL)  # type: ignore[arg-type]
    one, two = onboarded(world, config), onboarded(world, config)
    users, items = rows(one, world)
    weights = np.ones(SPLIT - 1, dtype=np.float32)
    one.learn_rows(users[: SPLIT - 1], items[: SPLIT - 1], weights, threads=1)
    two.learn_rows(users[: SPLIT - 1], items[: SPLIT - 1], weights, threads=2)
    assert_same(one, two)


def test_what_the_threads_share_is_written_as_one_thread_writes_it() -> None:
    """The popularity ring and decayed counts depend only on the items and weights in
    order, so two threads leave them exactly as one does; so do each user's rings and
    activity (one thread per user), the seen pairs and the counters.  Only the
    embeddings differ (other random draws, other interleavings)."""
    world = planted_world(events_per_user=20, seed=3)  # 4,000 events
    config = ModelConfig(dim=8, seed=4, trend_half_life=5.0, trend_seen_weight=0.5, pop_window=256,
                         **FULL)  # type: ignore[arg-type]  # fmt: skip
    one, two = onboarded(world, config), onboarded(world, config)
    users, items = rows(one, world)
    weights = np.random.default_rng(0).choice([0.0, 1.0, 2.0], size=len(users)).astype(np.float32)
    scales = []
    for start in range(0, len(users), SPLIT):
        part = slice(start, start + SPLIT)
        s1 = one.learn_rows(users[part], items[part], weights[part], threads=1)
        s2 = two.learn_rows(users[part], items[part], weights[part], threads=2)
        assert (s1.events, s1.learned) == (s2.events, s2.learned)
        scales.append(float(one.trend_state[0]))
    assert any(b < a for a, b in itertools.pairwise(scales)), "no renormalisation"
    for name in ("pop_ring", "pop_state", "trend", "trend_state", "recent", "recent_n", "last",
                 "last_n", "activity"):  # fmt: skip
        np.testing.assert_array_equal(getattr(one, name), getattr(two, name), err_msg=name)
    for x, y in zip(one.seen.to_csr(), two.seen.to_csr(), strict=True):
        np.testing.assert_array_equal(x, y)
    assert one.n_events == two.n_events
    assert not np.array_equal(one.items.table.emb, two.items.table.emb)


@pytest.mark.parametrize("loss", ["warp", "bpr", "logistic"])
def test_a_replica_follows_a_model_learning_on_two_threads(loss: str) -> None:
    """Every row either thread wrote is in the change set (each thread marks its own
    log, merged after the batch): the replica fed by change sets equals the model."""
    world = planted_world(seed=6)
    config = ModelConfig(dim=6, seed=3, loss=loss, trend_half_life=1.0, pop_window=64,  # type: ignore[arg-type]
                         **FULL)  # type: ignore[arg-type]  # fmt: skip
    trainer, replica = onboarded(world, config), HybridModel(config)
    replica.apply_changes(trainer.export_changes())
    users, items = rows(trainer, world)
    weights = np.random.default_rng(1).choice([0.0, 1.0, 3.0], size=len(users)).astype(np.float32)
    for start in range(0, len(users), SPLIT):
        part = slice(start, start + SPLIT)
        trainer.learn_rows(users[part], items[part], weights[part], threads=2)
        replica.apply_changes(trainer.export_changes())
        assert_same(trainer, replica)


@pytest.mark.parametrize("loss", ["warp", "bpr"])
def test_two_threads_learn_the_planted_world(loss: str) -> None:
    """Known answer: cold-start users get items of their taste, learned on two threads
    (batches of 2,000 events) as on one."""
    world = planted_world(events_per_user=30)
    precision = {}
    for threads in (1, 2):
        model = onboarded(world, ModelConfig(loss=loss, dim=16, seed=1))  # type: ignore[arg-type]
        users, items = rows(model, world)
        for start in range(0, len(users), 2 * SPLIT):
            part = slice(start, start + 2 * SPLIT)
            model.learn_rows(users[part], items[part], np.ones(len(users[part]), np.float32),
                             threads=threads)  # fmt: skip
        precision[threads] = cold_start_precision(model, world)
    assert precision[1] >= 0.9 and precision[2] >= 0.9, precision


def test_learn_shared_matches_its_python_twin() -> None:
    world = planted_world(seed=8)
    config = ModelConfig(dim=8, seed=4, trend_half_life=3.0, trend_seen_weight=0.5, pop_window=32,
                         **FULL)  # type: ignore[arg-type]  # fmt: skip
    model = onboarded(world, config)
    _, items = rows(model, world)
    weights = np.random.default_rng(2).choice([0.0, 1.0], size=len(items)).astype(np.float32)
    refused = (np.arange(len(items)) % 7 == 0).astype(np.uint8)
    tables_jit, tables_py = (
        copy.deepcopy(model.kernel_tables()),
        copy.deepcopy(model.kernel_tables()),
    )
    marks_jit, marks_py = (
        copy.deepcopy(model.kernel_changes()),
        copy.deepcopy(model.kernel_changes()),
    )
    kernels.learn_shared(items, weights, refused, tables_jit.popularity, model.hp, marks_jit)
    kernels.learn_shared.py_func(items, weights, refused, tables_py.popularity, model.hp, marks_py)
    for a, b in zip(tables_jit.popularity, tables_py.popularity, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-12)
    for group_jit, group_py in zip(marks_jit, marks_py, strict=True):
        for a, b in zip(group_jit, group_py, strict=True):
            np.testing.assert_array_equal(a, b)
    assert tables_jit.popularity.ring_count[0] == int(weights[refused == 0].astype(bool).sum())
