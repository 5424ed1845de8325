"""The Annoy index, the fresh buffer and the atomic swap, without a broker."""

from __future__ import annotations

import numpy as np

from streamrec.index import FreshBuffer, LiveIndex, build_snapshot, exact_top_k, recall_at_k


def _reps(n: int = 2000, d: int = 17, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    reps = rng.normal(size=(n, d)).astype(np.float32)
    reps[:, -1] = rng.normal(scale=0.3, size=n)  # the bias column
    return reps


def test_recall_against_exact_search_is_high() -> None:
    reps = _reps()
    snap = build_snapshot(reps, n_trees=20)
    queries = np.random.default_rng(1).normal(size=(50, reps.shape[1])).astype(np.float32)
    queries[:, -1] = 1.0
    assert snap.size == 2000
    assert recall_at_k(snap, reps, queries, k=10, n_candidates=200) >= 0.9


def test_exact_top_k_orders_by_inner_product() -> None:
    reps = np.array([[1.0, 0.0], [2.0, 0.0], [0.0, 5.0]], dtype=np.float32)
    assert exact_top_k(reps, np.array([1.0, 0.0], dtype=np.float32), 2).tolist() == [1, 0]


def test_fresh_buffer_keeps_items_changed_during_a_build() -> None:
    fresh = FreshBuffer()
    fresh.add([1, 2])
    fresh.begin_build()
    fresh.add([3])
    fresh.end_build(swapped=True)
    assert sorted(fresh.rows().tolist()) == [3]
    fresh.begin_build()
    fresh.add([4])
    fresh.end_build(swapped=False)
    assert sorted(fresh.rows().tolist()) == [3, 4]


def test_new_and_fresh_items_are_always_candidates() -> None:
    live = LiveIndex()
    reps = _reps(300)
    q = np.ones(reps.shape[1], dtype=np.float32)
    assert live.candidates(q, 10, 300) is None  # no snapshot yet: caller goes exact
    live.fresh.begin_build()
    live.swap(build_snapshot(reps, n_trees=5))
    live.fresh.add([7])
    cand = live.candidates(q, 10, 305)
    assert cand is not None
    assert {7, 300, 301, 302, 303, 304} <= set(cand.tolist())


def test_swap_is_atomic_for_readers() -> None:
    live = LiveIndex()
    a, b = build_snapshot(_reps(100, seed=1), 3), build_snapshot(_reps(200, seed=2), 3)
    live.swap(a)
    held = live.snapshot  # a reader holding the old snapshot keeps a consistent view
    live.swap(b)
    assert held is a and held.size == 100 and len(held.query(np.ones(17, np.float32), 5)) == 5
    assert live.snapshot is b and live.builds == 2


def test_index_package_is_pure() -> None:
    import subprocess
    import sys

    code = ("import sys, streamrec.index, streamrec.workers.serving.rerank\n"
            "print([m for m in ('aiokafka','faust','sqlalchemy') if m in sys.modules])")  # fmt: skip
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
