"""The Annoy index, the fresh buffer and the atomic swap, without a broker."""

from __future__ import annotations

import time

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


def test_a_published_index_is_mapped_by_readers_and_swapped_atomically(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from streamrec.index import IndexFiles, IndexManifest
    from streamrec.index.build import build_file

    files = IndexFiles(tmp_path / "index")
    assert files.current() is None
    reps = _reps(500)
    q = np.ones(reps.shape[1], dtype=np.float32)
    path = files.staging_path()
    seconds = build_file(reps, str(path), n_trees=10)
    about = IndexManifest("", 500, reps.shape[1], 7, 0.0, 0.0, seconds, 10, -1, 0)
    manifest = files.publish_file(path, about)
    assert files.current() == manifest and manifest.seq == 1 and manifest.version == 7
    reader = files.load(manifest)
    assert reader is not None and reader.size == 500
    truth = set(exact_top_k(reps, q, 10).tolist())
    assert len(truth & set(reader.query(q, 200).tolist())) >= 9
    # a reader keeps its mapped index while newer ones replace and prune the old file
    live = LiveIndex()
    live.swap_loaded(reader)
    for _ in range(4):
        nxt = files.staging_path()
        build_file(reps, str(nxt), n_trees=2)
        files.publish_file(nxt, about)
    assert files.current().seq == 5  # type: ignore[union-attr]
    assert not path.exists()  # pruned (only the newest few stay)
    assert len(live.snapshot.query(q, 10)) == 10  # type: ignore[union-attr]
    assert sorted(p.name for p in (tmp_path / "index").iterdir() if p.suffix == ".ann") == [
        "index-00000003.ann", "index-00000004.ann", "index-00000005.ann"]  # fmt: skip


def test_indexed_items_stay_fresh_for_keep_s_but_at_most_keep_max_of_them() -> None:
    fresh = FreshBuffer(keep_s=60.0, keep_max=3)
    fresh.add(range(10))  # a bulk catalogue: every item changed just now
    fresh.begin_build()
    fresh.add([42])  # changed during the build: the snapshot does not hold it
    fresh.end_build(swapped=True)
    # the unindexed one, and the three most recently changed of the indexed ones
    assert sorted(fresh.rows().tolist()) == [7, 8, 9, 42]
    unbounded = FreshBuffer(keep_s=60.0, keep_max=0)
    unbounded.add(range(10))
    unbounded.begin_build()
    unbounded.end_build(swapped=True)
    assert len(unbounded.rows()) == 0  # keep_max 0: none kept beyond the build
    loaded = FreshBuffer(keep_s=60.0, keep_max=2)
    loaded.add(range(5))
    loaded.retain_since(time.time() + 1.0)  # a snapshot read after every change
    assert sorted(loaded.rows().tolist()) == [3, 4]


def test_only_items_the_snapshot_does_not_hold_count_as_unindexed() -> None:
    fresh = FreshBuffer(keep_s=60.0, keep_max=5)
    fresh.add(range(10))
    assert fresh.unindexed() == 10  # no snapshot yet
    fresh.begin_build()
    fresh.add([42])  # changed during the build
    fresh.end_build(swapped=True)
    assert len(fresh) == 6 and fresh.unindexed() == 1  # five kept, held by the snapshot
    fresh.add([5, 43])  # a kept item changes again, a new one arrives
    assert fresh.unindexed() == 3
    time.sleep(0.01)
    fresh.retain_since(time.time())  # a loaded snapshot read after every change
    assert len(fresh) == 5 and fresh.unindexed() == 0
    time.sleep(0.01)
    fresh.add([44])
    assert fresh.unindexed() == 1


def test_a_loaded_index_drops_items_changed_before_its_build_however_late_they_arrived() -> None:
    live = LiveIndex()
    t0 = time.time() - 60.0  # the trainer's clock: changes taken a minute ago...
    live.fresh.add([1, 2], at=t0)  # ...reach this replica only now
    live.fresh.add([3], at=t0 + 30.0)
    live.swap_loaded(build_snapshot(_reps(50), 2, started_at=t0 + 10.0))
    assert live.fresh.rows().tolist() == [3]  # changed after the build read the model


def test_held_items_leave_the_fresh_buffer_after_keep_s_without_another_swap() -> None:
    fresh = FreshBuffer(keep_s=30.0, keep_max=100)
    now = time.time()
    fresh.add(range(5), at=now - 40.0)
    assert fresh.expire(now) == 0  # no snapshot yet: every item is unindexed, and stays
    fresh.add([7, 8], at=now - 10.0)
    fresh.begin_build()
    fresh.add([9], at=now - 50.0)  # changed during the build (the snapshot lacks it)
    fresh.end_build(swapped=True)
    assert sorted(fresh.rows().tolist()) == [7, 8, 9]  # 0-4 went at the swap (over keep_s)
    assert fresh.expire(now) == 0
    assert fresh.expire(now + 25.0) == 2  # 7 and 8: held, and changed over 30 s ago
    assert fresh.rows().tolist() == [9] and fresh.unindexed() == 1  # 9 stays until indexed


def test_a_loaded_index_keeps_items_changed_after_its_build_fresh() -> None:
    live = LiveIndex()
    live.fresh.add([1, 2])
    snap = build_snapshot(_reps(50), 2, started_at=time.time() + 1.0)
    live.fresh.add([3])
    live.swap_loaded(snap)  # built after every change so far: none stays fresh
    assert live.fresh.rows().tolist() == []
    live.fresh.add([4])
    live.swap_loaded(build_snapshot(_reps(50), 2, started_at=0.0))  # an old build
    assert live.fresh.rows().tolist() == [4]


def test_a_large_fresh_buffer_yields_its_best_rows_and_every_row_without_a_vector() -> None:
    fresh = FreshBuffer()
    reps = np.zeros((100, 3), dtype=np.float32)
    reps[:, 0] = np.arange(100)  # row 10 + i scores i for q = (1, 0, 0)
    fresh.add(range(10, 110), reps)
    fresh.add([5])  # no representation: always a candidate
    q = np.array([1.0, 0.0, 0.0], dtype=np.float32)
    assert sorted(fresh.top(q, 3).tolist()) == [5, 107, 108, 109]
    assert len(fresh.top(q, 200)) == 101  # fewer than asked: all of them
    live = LiveIndex()
    live.fresh.begin_build()
    live.swap(build_snapshot(_reps(10, d=3), n_trees=2))
    live.fresh.add(range(10, 110), reps)
    cand = live.candidates(q, 3, 112)  # rows 110, 111: newer than the index, not fresh
    assert cand is not None
    assert {107, 108, 109, 110, 111} <= set(cand.tolist()) and 10 not in set(cand.tolist())


def test_refreshed_representations_rank_the_fresh_rows_at_once() -> None:
    fresh = FreshBuffer()
    reps = np.zeros((50, 3), dtype=np.float32)
    reps[:, 0] = np.arange(50)  # row 100 + i scores i for q = (1, 0, 0)
    fresh.add(range(100, 150), reps)
    q = np.array([1.0, 0.0, 0.0], dtype=np.float32)
    assert sorted(fresh.top(q, 2).tolist()) == [148, 149]
    rows = fresh.rows()
    fresh.refresh(rows, -reps)  # every fresh row re-embedded (what the indexers do)
    assert sorted(fresh.top(q, 2).tolist()) == [100, 101]
    fresh.refresh(np.array([120, 999]), np.array([[99.0, 0, 0], [5.0, 0, 0]]))  # 999: not fresh
    assert sorted(fresh.top(q, 2).tolist()) == [100, 120]
    assert fresh.rows().tolist() == list(range(100, 150))  # change order unmoved
    fresh.add([7])  # no representation: a candidate whatever the query
    assert 7 in fresh.top(q, 2).tolist() and len(fresh.top(q, 2)) == 3
    new = np.zeros((51, 3), dtype=np.float32)
    new[0, 0], new[50, 0] = 500.0, 1000.0  # rows 100 and 7 (changed last)
    fresh.refresh(fresh.rows(), new)  # now 7 has one: searched like the others
    assert sorted(fresh.top(q, 2).tolist()) == [7, 100]
