"""The replay's fast paths give the old full scans' answers bit for bit.

Every fast path (the bounded model top k, top k with exclusion flags, the sparse
item-kNN similarities, the recent-features pass) is compared with the dense code it
replaces, on random inputs full of ties.
"""

from __future__ import annotations

import numpy as np
import pytest

from streamrec.eval.baselines import CooccurrenceGraph, ItemKNN, RankedCounts, RecentFeatures
from streamrec.model import HybridModel, ModelConfig
from streamrec.model.baseline_kernels import (
    cooccurrence_similarities,
    shared_feature_counts,
    top_rows,
)
from streamrec.model.scoring import top_k as dense_top_k
from streamrec.model.topk import ModelTopK, TopK, top_k_excluding


def reference(scores: np.ndarray, k: int, excluded: np.ndarray, newest_first: bool) -> list[int]:
    """Best first by score, ties to the lower row (or the higher with newest_first)."""
    rows = np.setdiff1d(np.arange(scores.shape[0]), excluded)
    tie = -rows if newest_first else rows
    order = np.lexsort((tie, -scores[rows]))
    return rows[order][:k].tolist()


@pytest.mark.parametrize("seed", range(20))
def test_top_k_with_flags_matches_the_dense_top_k_on_ties(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 300))
    k = int(rng.integers(1, 15))
    for dtype in (np.float32, np.float64):
        scores = rng.integers(0, 5, n).astype(dtype)  # few distinct values: many ties
        excluded = rng.choice(n + 5, size=int(rng.integers(0, n + 1)), replace=True)
        excluded = excluded.astype(np.int32) - 2  # some out of range: ignored
        ex_in = excluded[(excluded >= 0) & (excluded < n)]
        ranker = TopK()
        for newest_first in (False, True):
            got = ranker.top(scores, k, excluded, newest_first=newest_first).tolist()
            assert got == reference(scores, k, ex_in, newest_first)
            assert got == top_rows(scores, k, excluded, newest_first=newest_first).tolist()
        positive = ranker.top(scores, k, excluded, positive=True).tolist()
        assert positive == [r for r in reference(scores, k, ex_in, False) if scores[r] > 0]
        idx, val = np.zeros(k, np.int64), np.zeros(k, dtype)
        m = top_k_excluding(scores, n, k, excluded, ranker.flags, idx, val)
        idx2, val2 = np.zeros(k, np.int64), np.zeros(k, dtype)
        m2 = dense_top_k(scores, n, k, excluded, idx2, val2)
        assert (m, idx[:m].tolist(), val[:m].tolist()) == (
            m2,
            idx2[:m2].tolist(),
            val2[:m2].tolist(),
        )
        assert not ranker.flags.any(), "the flags are left clear"


@pytest.mark.parametrize("config", [ModelConfig(dim=16), ModelConfig(dim=13, new_item_prior=0.0),
                                    ModelConfig(dim=8, trend_weight=0.0, continuity_weight=0.0)])  # fmt: skip
def test_model_top_k_is_top_k_rows_bit_for_bit(config: ModelConfig) -> None:
    rng = np.random.default_rng(3)
    model = HybridModel(config)
    ranker = ModelTopK(model, pool=12, full_scan_below=0)
    cats = [f"cat={c}" for c in range(6)]
    checked = 0
    for e in range(1500):
        if e % 3 == 0 or model.n_items < 5:  # the catalogue keeps growing
            model.add_item(f"i{model.n_items}", [cats[int(rng.integers(6))], f"b={e % 11}"])
        if model.n_users < 40 and e % 7 == 0:
            model.add_user(f"u{model.n_users}", [f"g={model.n_users % 3}"])
        u = int(rng.integers(max(model.n_users, 1))) if model.n_users else model.add_user("u0")
        # popular items and a few ties of untrained rows
        i = int(min(rng.zipf(1.5), model.n_items) - 1)
        if e % 5 == 0:
            for k in (1, 10, 25):
                want = model.top_k_rows(u, k)
                got = ranker.top_k(u, k, model.seen_items(u))
                assert want[0].tolist() == got[0].tolist()
                assert want[1].tobytes() == got[1].tobytes()
                checked += 1
        w = 0.0 if e % 4 == 0 else 1.0
        model.learn_rows(
            np.array([u], np.int32), np.array([i], np.int32), np.array([w], np.float32)
        )
    assert checked == 900


def test_model_top_k_takes_over_from_the_full_scan() -> None:
    """Small catalogues use the model's scan; the bounds start when the catalogue grows."""
    model = HybridModel(ModelConfig(dim=8))
    ranker = ModelTopK(model, full_scan_below=30)
    model.add_user("u0")
    for e in range(60):
        model.add_item(f"i{e}", [f"c={e % 4}"])
        model.learn_rows(np.array([0], np.int32), np.array([e // 2], np.int32),
                         np.array([1.0], np.float32))  # fmt: skip
        want = model.top_k_rows(0, 5)
        got = ranker.top_k(0, 5, model.seen_items(0))
        assert want[0].tolist() == got[0].tolist() and want[1].tobytes() == got[1].tobytes()
    assert ranker.epoch == 31, "the bounds answered from 30 items on"


def test_model_top_k_keeps_the_change_log_complete() -> None:
    """The ranker takes trained-item marks; the next export still carries their rows."""
    plain, ranked = HybridModel(ModelConfig(dim=8)), HybridModel(ModelConfig(dim=8))
    ranker = ModelTopK(ranked, full_scan_below=0)
    for model in (plain, ranked):
        for i in range(6):
            model.add_item(f"i{i}", ["cat=a"] if i % 2 else ["cat=b"])
        model.add_user("u0")
        model.learn(["u0", "u0"], ["i1", "i2"], ["click", "click"])
        model.export_changes()
        model.learn(["u0"], ["i3"], ["click"])
    ranker.top_k(0, 3, ranked.seen_items(0))
    a, b = plain.export_changes(), ranked.export_changes()
    assert np.array_equal(np.sort(a.item_rows.rows), np.sort(b.item_rows.rows))
    assert len(a.item_rows.rows) > 0


def test_sparse_cooccurrence_matches_the_dense_similarities() -> None:
    rng = np.random.default_rng(5)
    n = 60
    co = np.zeros((n, n), dtype=np.float32)
    graph = CooccurrenceGraph()
    history: dict[int, list[int]] = {}
    for _ in range(900):
        user, item = int(rng.integers(25)), int(min(rng.zipf(1.3), n) - 1)
        hist = history.setdefault(user, [])
        if item in hist:
            continue
        h = np.array(hist, dtype=np.int64)
        co[item, h] += 1.0
        co[h, item] += 1.0
        co[item, item] += 1.0
        graph.add(item, h)
        hist.append(item)
    m = n - 7  # the fit covers the first m items only
    sim = cooccurrence_similarities(co, m)
    graph.fit(m)
    for user, hist in history.items():
        h = np.array(hist, dtype=np.int64)
        dense = sim[h[h < m]].sum(axis=0)
        sparse = np.zeros(m, dtype=np.float32)
        for a in hist:
            graph.add_row(a, sparse)
        assert dense.tobytes() == sparse.tobytes(), f"user {user}"


def test_recent_features_matches_the_dense_key() -> None:
    rng = np.random.default_rng(9)
    b = RecentFeatures(window=4, half_life=3.0)  # short half-life: rescales happen
    n = 80
    for item in range(n):
        b.add_item(item, [f"c={rng.integers(5)}", f"b={rng.integers(9)}"][: 1 + item % 2])
    for e in range(3000):
        user, item = int(rng.integers(6)), int(rng.integers(n))
        if e % 3 == 0:
            excluded = rng.choice(n, size=int(rng.integers(0, 20)), replace=False).astype(np.int32)
            recent = np.asarray(b.recent.get(user, ()), dtype=np.int64)
            shared = np.zeros(n, dtype=np.float64)
            shared_feature_counts(recent, recent.shape[0], b.item_features, n, b.mark, shared)
            key = shared * 1e3 + np.log1p(b.popularity.scores(n))
            want = top_rows(key, 7, excluded, newest_first=True).tolist()
            assert b.top_k(user, n, 7, excluded).tolist() == want
        b.learn(user, item, bool(e % 5))


@pytest.mark.parametrize("half_life", [None, 3.0, 50.0])
@pytest.mark.parametrize("cap", [1, 5, 40, 2048])
def test_ranked_counts_match_the_full_scan_on_ties(half_life: float | None, cap: int) -> None:
    """The leader list answers as TopK over the counts, through rescales and exclusions."""
    rng = np.random.default_rng(int(cap + (half_life or 0)))
    ranked = RankedCounts(half_life, cap=cap)
    n = 3
    for e in range(2500):
        if e % 7 == 0:
            n += 1  # the catalogue grows; new rows are known before their first positive
        if e % 2 == 0:
            k = int(rng.integers(1, 12))
            excluded = rng.choice(n + 3, size=int(rng.integers(0, n)), replace=True) - 1
            want = TopK().top(ranked.counts.scores(n).copy(), k, excluded).tolist()
            assert ranked.top(n, k, excluded).tolist() == want
        # few distinct items: many ties among the counts
        ranked.add(int(min(rng.zipf(1.4), n) - 1) if e % 3 else int(rng.integers(n)))


@pytest.mark.parametrize("leaders", [1, 3, 2048])
def test_item_knn_matches_the_dense_profile(leaders: int) -> None:
    """Profiles listed sparsely rank as the dense profile through TopK, then popularity."""
    rng = np.random.default_rng(leaders)
    knn = ItemKNN(refit_every=25, leaders=leaders)
    n = 30
    for e in range(2500):
        if e % 20 == 0:
            n += 1
        user = int(rng.integers(12))
        if e % 3 == 0:
            k = int(rng.integers(1, 12))
            excluded = rng.choice(n, size=int(rng.integers(0, n // 2)), replace=False)
            rows = np.zeros(0, dtype=np.int64)
            m = knn.co.m
            if m and user in knn.history:
                profile = np.zeros(m, dtype=np.float32)
                for a in knn._hist(user).tolist():
                    knn.co.add_row(a, profile)
                rows = TopK().top(profile, k, excluded, positive=True)
            if rows.shape[0] < k:
                pop = knn.popularity.counts.scores(n).copy()
                rows = np.concatenate(
                    [rows, TopK().top(pop, k - rows.shape[0], np.concatenate([excluded, rows]))]
                )
            assert knn.top_k(user, n, k, excluded).tolist() == rows.tolist()
        knn.learn(user, int(min(rng.zipf(1.3), n) - 1), bool(e % 4))


def full_pass(b: RecentFeatures, user: int, n: int, k: int, excluded: np.ndarray) -> list[int]:
    """The recent-features top k by the dense key over every item (the reference)."""
    recent = np.asarray(b.recent.get(user, ()), dtype=np.int64)
    shared = np.zeros(n, dtype=np.float64)
    shared_feature_counts(recent, recent.shape[0], b.item_features, n, b.mark, shared)
    key = shared * 1e3 + np.log1p(b.popularity.scores(n))
    return top_rows(key, k, excluded, newest_first=True).tolist()


@pytest.mark.parametrize("leaders", [1, 4, 2048])
def test_recent_features_candidates_match_the_dense_key(leaders: int) -> None:
    """Growing catalogue, features replaced, tiny leader lists: the full pass's answer."""
    rng = np.random.default_rng(leaders + 100)
    b = RecentFeatures(window=4, half_life=5.0, leaders=leaders)
    n = 0
    for e in range(3000):
        if e % 10 == 0 or n < 3:
            n += 1
            b.add_item(n - 1, [f"c={rng.integers(6)}", f"b={rng.integers(15)}"][: 1 + n % 2])
        if e % 37 == 0:  # an item's features replaced
            b.add_item(int(rng.integers(n)), [f"c={rng.integers(6)}"])
        user, item = int(rng.integers(8)), int(rng.integers(n))
        if e % 2 == 0:
            k = int(rng.integers(1, 10))
            excluded = rng.choice(n, size=int(rng.integers(0, n // 2 + 1)), replace=False)
            assert b.top_k(user, n, k, excluded).tolist() == full_pass(b, user, n, k, excluded)
        b.learn(user, item, bool(e % 5))


@pytest.mark.parametrize("leaders", [3, 2048])
@pytest.mark.parametrize("half_life", [1.5, 40.0])
def test_recent_features_ordered_lists_through_rescales_and_new_features(
    half_life: float, leaders: int
) -> None:
    """The ordered feature lists stop early, survive rescales (every key changes at once),
    features replaced by more or fewer, popular and unpopular items: the full pass's answer."""
    rng = np.random.default_rng(int(half_life * 10))
    b = RecentFeatures(window=3, half_life=half_life, leaders=leaders)
    n = 0
    rescales = 0
    checked = 0
    for e in range(4000):
        if e % 6 == 0 or n < 3:
            n += 1
            names = [f"c={rng.integers(4)}", f"b={rng.integers(12)}", f"s={rng.integers(3)}"]
            b.add_item(n - 1, names[: 1 + n % 3])
        if e % 53 == 0:  # an item's features replaced (sometimes by none)
            b.add_item(int(rng.integers(n)), [f"c={rng.integers(4)}"] * int(rng.integers(2)))
        user, item = int(rng.integers(5)), int(min(rng.zipf(1.6), n) - 1)
        if e % 2 == 0:
            k = int(rng.integers(1, 8))
            excluded = rng.choice(n, size=int(rng.integers(0, n // 3 + 1)), replace=False)
            assert b.top_k(user, n, k, excluded).tolist() == full_pass(b, user, n, k, excluded)
            checked += 1
        weight = b.popularity._weight
        b.learn(user, item, bool(e % 4))
        rescales += b.popularity._weight < weight
    assert checked == 2000
    if half_life < 2:
        assert rescales > 0, "the counts were rescaled"


@pytest.mark.parametrize("group_size", [3, 256])
def test_grouped_model_top_k_follows_notes_and_new_features(group_size: int) -> None:
    """Told what was learned and which items changed features, the ranker never rescans
    everything, and still answers as the full scan, ties included."""
    rng = np.random.default_rng(group_size)
    model = HybridModel(ModelConfig(dim=8))
    ranker = ModelTopK(model, full_scan_below=0, group_size=group_size, group_pool=2,
                       refresh_every=10**9, newest=4)  # fmt: skip
    cats = [f"cat={c}" for c in range(4)]
    checked = 0
    for e in range(1200):
        if e % 3 == 0 or model.n_items < 5:
            model.add_item(f"i{model.n_items}", [cats[int(rng.integers(4))], f"b={e % 5}"])
        if e % 41 == 0 and model.n_items > 10:  # an item's features replaced
            row = int(rng.integers(model.n_items))
            model.add_item(f"i{row}", [cats[int(rng.integers(4))]])
            ranker.features_changed(row)
        if model.n_users < 30 and e % 7 == 0:
            model.add_user(f"u{model.n_users}", [f"g={model.n_users % 3}"])
        u = int(rng.integers(max(model.n_users, 1))) if model.n_users else model.add_user("u0")
        i = int(min(rng.zipf(1.5), model.n_items) - 1)
        if e % 4 == 0:
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
    assert checked == 600
    assert ranker.full_refreshes == 1, "only the first query rescanned every item"
