"""Entity feature lists: setting many at once equals setting them one by one."""

from __future__ import annotations

import numpy as np

from streamrec.model.tables import EntityFeatures, FeatureTable


def test_set_many_equals_set_one_by_one() -> None:
    rng = np.random.default_rng(0)
    one, many = EntityFeatures(), EntityFeatures()
    for step in range(4):  # new entities and re-featured ones, lists wider and narrower
        entities = rng.choice(300, size=40, replace=False).astype(np.int32)
        counts = rng.integers(0, 6 + step, size=40).astype(np.int32)
        rows = rng.integers(0, 1000, size=int(counts.sum())).astype(np.int32)
        weights = rng.random(int(counts.sum())).astype(np.float32)
        start = 0
        for entity, count in zip(entities.tolist(), counts.tolist(), strict=True):
            one.set(entity, rows[start : start + count], weights[start : start + count])
            start += count
        many.set_many(entities, counts, rows, weights)
        assert one.n == many.n
        width = max(one.idx.shape[1], many.idx.shape[1])
        for e in range(one.n):
            a_idx, a_w = one.features_of(e)
            b_idx, b_w = many.features_of(e)
            np.testing.assert_array_equal(a_idx, b_idx)
            np.testing.assert_array_equal(a_w, b_w)
        assert width == one.idx.shape[1] == many.idx.shape[1]


def test_set_many_of_nothing_changes_nothing() -> None:
    table = EntityFeatures()
    table.set(3, np.array([7, 8], dtype=np.int32), np.array([1.0, 0.5], dtype=np.float32))
    empty = np.zeros(0, dtype=np.int32)
    table.set_many(empty, empty, empty, np.zeros(0, dtype=np.float32))
    idx, w = table.features_of(3)
    assert idx.tolist() == [7, 8] and w.tolist() == [1.0, 0.5]
    assert table.n == 4


def test_append_many_draws_what_appending_one_by_one_draws() -> None:
    flags = np.array([True, False, False, True, False] * 30)
    one = FeatureTable(8, 0.3, np.random.default_rng(5))
    many = FeatureTable(8, 0.3, np.random.default_rng(5))
    one.append(False)
    many.append(False)
    rows = [one.append(bool(f)) for f in flags]
    assert many.append_many(flags) == rows[0] == 1
    assert one.n == many.n == 1 + len(flags)
    np.testing.assert_array_equal(one.emb, many.emb)
    assert np.count_nonzero(np.any(many.emb[: many.n] != 0, axis=1)) == 1 + (~flags).sum()
    assert one.rng.random() == many.rng.random()  # the generators stay in step
