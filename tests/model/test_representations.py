"""Item representations of selected rows (one numba pass) against the numpy sums."""

from __future__ import annotations

import numpy as np

from streamrec.model import HybridModel, ModelConfig


def trained() -> HybridModel:
    """Items with one to four features, unequal weights, some learned."""
    model = HybridModel(ModelConfig(dim=8, seed=3))
    for n in range(40):
        feats = {f"cat={n % 3}": 1.0 + n / 7, f"brand={n % 11}": 0.25}
        if n % 2:
            feats[f"size={n % 5}"] = 3.0
        if n % 5 == 0:
            feats["promo=1"] = 0.5
        model.add_item(f"i{n}", feats)
    for u in range(10):
        model.add_user(f"u{u}", [f"age={u % 3}"])
    rng = np.random.default_rng(0)
    users = [f"u{u}" for u in rng.integers(0, 10, 300)]
    items = [f"i{i}" for i in rng.integers(0, 40, 300)]
    model.learn(users, items, ["click"] * 300)
    return model


def test_selected_rows_equal_the_numpy_column_sums_bit_for_bit() -> None:
    model = trained()
    d = model.dim
    sides = model.items
    for rows in (np.arange(40), np.array([39, 0, 7, 7, 13]), np.array([5])):
        reps = model.item_representations(rows)
        assert reps.dtype == np.float32 and reps.shape == (len(rows), d + 2)
        assert np.array_equal(reps[:, :d], sides.vectors(rows))
        assert np.array_equal(reps[:, d], sides.biases(rows))
    everything = model.item_representations()
    assert np.array_equal(everything[[39, 0, 7]], model.item_representations(np.array([39, 0, 7])))


def test_a_representation_is_the_weighted_sum_of_its_features() -> None:
    model = trained()
    d = model.dim
    names, table = model.items.feature_names, model.items.table
    row = model.item_row("i15")  # cat=0 (weight 1 + 15/7), brand=4 (0.25), size=0 (3), promo=1
    feats = {"cat=0": 1.0 + 15 / 7, "brand=4": 0.25, "size=0": 3.0, "promo=1": 0.5}
    rep = model.item_representations(np.array([row]))[0]
    fx, fw = model.items._feature_lists(np.array([row]))
    weights = dict(zip(fx[0][fx[0] >= 0].tolist(), fw[0][fx[0] >= 0].tolist(), strict=True))
    for name in feats:
        assert names.get(name) in weights
    vec = sum(np.float32(w) * table.emb[f].astype(np.float64) for f, w in weights.items())
    bias = sum(w * float(table.bias[f]) for f, w in weights.items())
    np.testing.assert_allclose(rep[:d], vec, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(rep[d], bias, rtol=1e-5, atol=1e-6)
