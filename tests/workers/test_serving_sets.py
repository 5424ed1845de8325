"""The request path's set operations on sorted row arrays, against numpy's own."""

from __future__ import annotations

import numpy as np

from streamrec.index.live import sorted_unique
from streamrec.workers.serving.recommender import without


def test_without_removes_exactly_the_excluded_rows() -> None:
    rows = np.array([2, 5, 9, 14, 30], dtype=np.int64)
    assert without(rows, np.array([5, 30, 31, 0, 9, 9], dtype=np.int32)).tolist() == [2, 14]
    assert without(rows, np.zeros(0, dtype=np.int64)) is rows
    assert without(np.zeros(0, dtype=np.int64), np.array([1])).tolist() == []
    rng = np.random.default_rng(0)
    for _ in range(50):
        cand = np.unique(rng.integers(0, 500, 200))
        excl = rng.integers(0, 600, 80)
        assert np.array_equal(without(cand, excl), cand[~np.isin(cand, excl)])


def test_sorted_unique_is_numpys_unique() -> None:
    assert sorted_unique(np.array([7, 3, 7, 1, 3], dtype=np.int64)).tolist() == [1, 3, 7]
    assert sorted_unique(np.array([4], dtype=np.int64)).tolist() == [4]
    assert sorted_unique(np.zeros(0, dtype=np.int64)).tolist() == []
    rng = np.random.default_rng(1)
    for _ in range(50):
        rows = rng.integers(0, 300, rng.integers(0, 400))
        assert np.array_equal(sorted_unique(rows), np.unique(rows))
