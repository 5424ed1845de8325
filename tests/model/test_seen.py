"""The numba seen sets against Python sets, through growth, rehashing and checkpoints."""

from __future__ import annotations

import numpy as np

from streamrec.model.seen import SeenSets, add_pairs


def test_seen_sets_match_python_sets() -> None:
    rng = np.random.default_rng(0)
    seen = SeenSets()
    reference: dict[int, list[int]] = {}
    n_users = 0
    for _batch in range(30):  # grows users, entries and the hash table many times over
        n_users += 40
        seen.ensure(n_users)
        users = rng.integers(n_users, size=400).astype(np.int32)
        items = rng.integers(300, size=400).astype(np.int32)
        seen.add_many(users, items)
        for u, i in zip(users.tolist(), items.tolist(), strict=True):
            lst = reference.setdefault(u, [])
            if i not in lst:
                lst.append(i)
    assert seen.n_pairs == sum(len(v) for v in reference.values())
    for u in range(n_users):
        expected = reference.get(u, [])
        assert seen.count(u) == len(expected)
        assert seen.items(u).tolist() == expected[::-1]  # most recent first
    for u, i in [(3, 5), (7, 299), (n_users - 1, 0)]:
        assert seen.contains(u, i) == (i in reference.get(u, []))
    indptr, indices = seen.to_csr()
    again = SeenSets.from_csr(indptr, indices)
    for u in range(n_users):
        assert again.items(u).tolist() == seen.items(u).tolist()
        assert indices[indptr[u] : indptr[u + 1]].tolist() == reference.get(u, [])


def test_add_pairs_matches_its_python_twin() -> None:
    users = np.array([0, 1, 0, 0, 2, 1], np.int32)
    items = np.array([5, 5, 5, 6, 1, 7], np.int32)
    results = []
    for fn in (add_pairs, add_pairs.py_func):
        arrays = (np.full(64, -1, np.int64), np.zeros(16, np.int32), np.zeros(16, np.int32),
                  np.zeros(16, np.int32), np.full(4, -1, np.int32), np.zeros(4, np.int32),
                  np.zeros(1, np.int64))  # fmt: skip
        fn(users, items, *arrays)
        results.append(arrays)
    for a, b in zip(*results, strict=True):
        np.testing.assert_array_equal(a, b)
    assert results[0][-1][0] == 5  # (0, 5) repeated once
