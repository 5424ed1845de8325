"""The replay's per-event helpers give what the code they stand in for gives.

* ``ModelTopK._user_state``: the user vector, trend affinity, continuity weight and
  marks of :class:`HybridModel`'s own ``*_row`` methods, bit for bit, query after query
  (the marks of the previous query cleared, nothing else left set).
* ``refresh_changed``: the bound parts and group maxima of ``refresh_item_bounds`` and
  ``refresh_groups`` over ``np.unique`` of the same rows and their groups.
* ``similarity_profile``: the profile and listed entries of
  ``add_similarity_row_listed`` called row by row.
* ``learn_rows`` with one event: the errors of the batch checks.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from streamrec.errors import InvalidWeightError, UnknownEntityError
from streamrec.eval.baselines import CooccurrenceGraph
from streamrec.model import HybridModel, ModelConfig
from streamrec.model.baseline_kernels import add_similarity_row_listed, similarity_profile
from streamrec.model.topk import (
    ModelTopK,
    refresh_changed,
    refresh_groups,
    refresh_item_bounds,
)


def _world(config: ModelConfig, events: int, seed: int) -> HybridModel:
    """Items with a category and a brand, users with a region, events learned one by one."""
    rng = np.random.default_rng(seed)
    model = HybridModel(config)
    for e in range(events):
        if e % 2 == 0 or model.n_items < 3:
            j = model.n_items
            model.add_item(f"i{j}", [f"cat={j % 5}", f"brand={j % 13}"])
        if e % 5 == 0:
            model.add_user(f"u{model.n_users}", [f"region={model.n_users % 3}"])
        u = int(rng.integers(model.n_users))
        i = int(min(rng.zipf(1.4), model.n_items) - 1)
        w = 0.0 if e % 6 == 0 else 1.0
        model.learn_rows(
            np.array([u], np.int32), np.array([i], np.int32), np.array([w], np.float32)
        )
    return model


@pytest.mark.parametrize(
    "config",
    [ModelConfig(dim=16), ModelConfig(dim=8, continuity_weight=0.0),
     ModelConfig(dim=12, trend_weight=0.0, continuity_items=3)],
)  # fmt: skip
def test_user_state_is_the_models_rows_bit_for_bit(config: ModelConfig) -> None:
    model = _world(config, 400, 1)
    ranker = ModelTopK(model, full_scan_below=0)
    rng = np.random.default_rng(2)
    nf = len(model.items.feature_names)
    for _ in range(60):
        user = int(rng.integers(model.n_users))
        vec, affinity, weight = ranker._user_state(user, model.kernel_tables())
        want_weight, want_marks = model.continuity_row(user)
        assert vec.tobytes() == model.user_vector_row(user).tobytes()
        assert affinity == model.trend_affinity_row(user)
        assert weight == want_weight
        assert ranker.marks[:nf].tobytes() == want_marks[:nf].tobytes()
        assert not ranker.marks[nf:].any()
    if config.continuity_weight != 0.0:
        assert ranker.marked.shape[0] > 0, "some marks were set (the check is not empty)"


def test_refresh_changed_matches_unique_rows_and_groups() -> None:
    model = _world(ModelConfig(dim=8), 600, 3)
    ranker = ModelTopK(model, full_scan_below=0, group_size=4)
    ranker.top_k(0, 5, model.seen_items(0))  # groups assigned, norms current
    groups, n = ranker.groups, model.n_items
    tables = model.kernel_tables()
    rng = np.random.default_rng(4)
    for _ in range(20):
        rows = rng.integers(n, size=int(rng.integers(1, 40))).astype(np.int64)  # repeats
        model.trend[:n] *= rng.uniform(0.5, 1.5, n)  # parts to recompute
        want = [a.copy() for a in (groups.up_norm, groups.up_bias, groups.up_trend,
                                   groups.max_norm, groups.max_bias, groups.max_trend)]  # fmt: skip
        unique = np.unique(rows)
        refresh_item_bounds(unique, tables.items, tables.popularity, ranker.norms,
                            want[0], want[1], want[2])  # fmt: skip
        refresh_groups(np.unique(groups.group[unique]), groups.head, groups.next, want[0],
                       want[1], want[2], want[3], want[4], want[5])  # fmt: skip
        flags = np.zeros(n, dtype=np.uint8)
        gflags = np.zeros(groups.n, dtype=np.uint8)
        m = refresh_changed(rows, flags, gflags, groups.group, tables.items, tables.popularity,
                            ranker.norms, groups.up_norm, groups.up_bias, groups.up_trend,
                            groups.head, groups.next, groups.max_norm, groups.max_bias,
                            groups.max_trend)  # fmt: skip
        assert m == unique.shape[0]
        got = (groups.up_norm, groups.up_bias, groups.up_trend, groups.max_norm,
               groups.max_bias, groups.max_trend)  # fmt: skip
        for a, b in zip(want, got, strict=True):
            assert a.tobytes() == b.tobytes()
        assert not flags.any() and not gflags.any(), "the flags are left clear"


def test_similarity_profile_is_the_rows_added_one_by_one() -> None:
    rng = np.random.default_rng(6)
    co = CooccurrenceGraph()
    n = 50
    history: dict[int, list[int]] = {}
    for _ in range(800):
        user, item = int(rng.integers(15)), int(min(rng.zipf(1.3), n) - 1)
        if item not in history.setdefault(user, []):
            co.add(item, np.array(history[user], dtype=np.int64))
            history[user].append(item)
    co.fit(n - 5)  # items past the fit: skipped
    for items in history.values():
        hist = np.array(items, dtype=np.int64)
        want = np.zeros(co.m, dtype=np.float32)
        want_listed = np.zeros(co.m + 1, dtype=np.int64)
        k = 0
        for a in items:
            k = add_similarity_row_listed(a, co.m, co.indptr, co.indices, co.values, want,
                                          want_listed, k)  # fmt: skip
        got = np.zeros(co.m, dtype=np.float32)
        listed, m = similarity_profile(hist, co.m, co.indptr, co.indices, co.values, got)
        assert got.tobytes() == want.tobytes()
        assert listed[:m].tolist() == want_listed[:k].tolist()
        assert listed.shape[0] >= 64
    assert any(len(v) > 3 for v in history.values())


def test_learn_rows_one_event_raises_the_batch_errors() -> None:
    model = HybridModel(ModelConfig(dim=8))
    model.add_user("alice")
    model.add_item("book")
    one = np.zeros(1, np.int32)
    for weight, match in ((math.nan, "event 0 has non-finite weight nan"),
                          (math.inf, "event 0 has non-finite weight inf"),
                          (-1.0, "event 0 has negative weight -1.0")):  # fmt: skip
        with pytest.raises(InvalidWeightError, match=match):
            model.learn_rows(one, one, np.array([weight], np.float32))
    with pytest.raises(UnknownEntityError, match=r"user rows must be in \[0, 1\), got \[1\]"):
        model.learn_rows(one + 1, one, np.ones(1, np.float32))
    with pytest.raises(UnknownEntityError, match=r"item rows must be in \[0, 1\), got \[-1\]"):
        model.learn_rows(one, one - 1, np.ones(1, np.float32))
    assert model.n_events == 0
    model.learn_rows(one, one, np.ones(1, np.float32))
    assert model.n_events == 1 and model.seen_items(0).tolist() == [0]
    assert model.changes.seen[-1].tolist() == [[0, 0]]
    assert model.changes.seen[-1].dtype == np.int32


@pytest.mark.parametrize("group_size", [4, 256])
def test_grouped_top_k_bounds_single_group_rows_on_norms(group_size: int) -> None:
    """Brands each in one category (as in the benchmark log): a brand's row belongs to one
    group, is bounded on norms first, and projected only when its group can still make
    the top k.  The answers stay the full scan's, and some groups are left out unprojected."""
    rng = np.random.default_rng(group_size)
    model = HybridModel(ModelConfig(dim=8))
    ranker = ModelTopK(model, full_scan_below=0, group_size=group_size, group_pool=2, newest=4)
    checked = 0
    for e in range(1500):
        if e % 2 == 0 or model.n_items < 5:
            brand = int(rng.integers(40))
            model.add_item(f"i{model.n_items}", [f"cat={brand % 4}", f"brand={brand}"])
        if model.n_users < 30 and e % 7 == 0:
            model.add_user(f"u{model.n_users}", [f"g={model.n_users % 3}"])
        u = int(rng.integers(max(model.n_users, 1))) if model.n_users else model.add_user("u0")
        i = int(min(rng.zipf(1.5), model.n_items) - 1)
        if e % 3 == 0:
            for k in (1, 10):
                want = model.top_k_rows(u, k)
                got = ranker.top_k(u, k, model.seen_items(u))
                assert want[0].tolist() == got[0].tolist()
                assert want[1].tobytes() == got[1].tobytes()
                checked += 1
        w = 0.0 if e % 4 == 1 else 1.0
        items = np.array([i], np.int32)
        model.learn_rows(np.array([u], np.int32), items, np.array([w], np.float32))
        ranker.learned(items)
    assert checked == 1000
    assert ranker.stats[3] > 0, "some groups were left out on their bound on norms"
    uses = ranker.groups.shared_uses[: ranker.groups.n_shared]
    assert (uses > 1).any()  # the categories' rows (and brands split over full groups)
    if group_size == 256:
        assert (uses == 1).any()
