"""Known answers for the continuity signal and the new-item pseudo-count."""

from __future__ import annotations

import math

import numpy as np
import pytest

from streamrec.model import HybridModel, ModelConfig, kernels, vectors


def catalogue(config: ModelConfig) -> HybridModel:
    model = HybridModel(config)
    for n in range(8):  # 6 items of cat=a, 2 of cat=b, each with its own brand
        model.add_item(f"i{n}", [f"cat={'a' if n < 6 else 'b'}", f"brand={n}"])
    model.add_user("u")
    return model


def test_continuity_adds_weight_times_idf_of_the_shared_features() -> None:
    model = catalogue(ModelConfig(dim=4, continuity_weight=2.0, continuity_items=2))
    model.learn(["u"], ["i6"], ["view"])  # the user's last item: cat=b, brand=6
    weight, _ = model.continuity_row(model.users.row("u"))
    assert weight == pytest.approx(2.0), "nothing learned yet: the configured weight"
    row = model.users.row("u")
    full = model.scores("u")
    base = model.scores_for_vector(model.user_vector_row(row), model.trend_affinity_row(row))
    idf_b, idf_brand6 = math.log(8 / 2), math.log(8 / 1)
    expected = np.zeros(8)
    expected[6] = 2.0 * (idf_b + idf_brand6)
    expected[7] = 2.0 * idf_b  # shares cat=b only
    np.testing.assert_allclose(full - base, expected, rtol=1e-5, atol=1e-5)
    # the same signal for a few rows at a time (what a recommender adds to its candidates)
    rows = np.array([7, 0, 6], dtype=np.int64)
    np.testing.assert_allclose(model.continuity_scores(row, rows), expected[rows], rtol=1e-6)
    assert model.continuity_scores(model.add_user("nobody-yet"), rows) is None  # no last items
    # only the last continuity_items items count: two views of cat=a push i6 out
    model.learn(["u", "u"], ["i0", "i1"], ["view", "view"])
    _, marks = model.continuity_row(row)
    names = model.items.feature_names
    assert marks[names.get("cat=b")] == 0.0
    assert marks[names.get("cat=a")] == pytest.approx(math.log(8 / 6))


def test_continuity_weight_is_learned_per_user_features() -> None:
    model = catalogue(ModelConfig(dim=4, continuity_weight=1.0, seed=3))
    model.add_user("v", ["segment=x"])
    for _ in range(30):  # v browses cat=a and buys cat=a items: continuity pays off
        for n in range(6):
            model.learn(["v", "v"], [f"i{n}", f"i{(n + 1) % 6}"], ["view", "click"])
    cont = model.users.table.cont[model.users.feature_names.get("segment=x")]
    assert cont != 0.0 and np.isfinite(cont)


@pytest.mark.parametrize("budget", [1, 3, 10])
def test_the_continuity_warp_draws_at_most_continuity_max_sampled_negatives(budget: int) -> None:
    """A positive no negative can violate: the continuity WARP gives up after exactly
    ``continuity_max_sampled`` draws, one uniform each (no popularity sampling)."""
    model = catalogue(ModelConfig(dim=4, continuity_max_sampled=budget))
    t = model.kernel_tables()
    rfeat = np.array([model.items.feature_names.get("cat=a")], dtype=np.int32)
    rng = np.array([vectors.seed_state(7)], dtype=np.int64)
    expected = rng.copy()
    for _ in range(budget):
        vectors.next_uniform.py_func(expected)
    u, vj = np.zeros(4, dtype=np.float32), np.zeros(4, dtype=np.float32)
    for learn in (kernels._learn_continuity, kernels._learn_continuity.py_func):
        state = rng.copy()
        ok, wrote = learn(0, 0, 1.0, 1e6, u, 0.0, state, t.users, t.items, t.popularity,
                          model.hp, model.n_items, rfeat, 1, vj)  # fmt: skip
        assert (ok, wrote) == (True, False), "no violator: nothing stepped"
        assert state[0] == expected[0], f"{budget} draws, no more"


def test_new_item_pseudo_count_halves_with_every_half_life_of_newer_items() -> None:
    model = catalogue(ModelConfig(dim=4, new_item_prior=8.0, new_item_half_life=2.0))
    trend_column = model.item_representations()[:, -1]
    expected = np.log1p(8.0 * 2.0 ** (-(7 - np.arange(8)) / 2.0))  # i7 newest, i0 oldest
    np.testing.assert_allclose(trend_column, expected, rtol=1e-6)
    model.add_item("a", ["cat=b"])
    model.add_item("b", ["cat=b"])  # two newer items: i7's pseudo-count halves
    reps = model.item_representations()[:, -1]
    assert reps[7] == pytest.approx(math.log1p(4.0), rel=1e-6)
    assert reps[model.items.ids.get("b")] == pytest.approx(math.log1p(8.0), rel=1e-6)
    # positives add to it as decayed counts; the exact scores agree with the representations
    model.learn(["u", "u"], ["i0", "i0"], ["click", "click"])
    reps = model.item_representations()[:, -1]
    assert model.popularity()[0] == pytest.approx(2.0, rel=1e-3)
    assert reps[0] == pytest.approx(math.log1p(8.0 * 2.0**-4.5 + model.popularity()[0]), rel=1e-6)
    row = model.users.row("u")
    query = model.user_query_row(row)
    np.testing.assert_allclose(
        model.scores_for_query(query), model.item_representations() @ query, rtol=1e-4, atol=1e-5
    )


@pytest.mark.parametrize(("shared", "max_sampled", "budget"),
                         [(True, 5, 3), (True, 3, 5), (False, 5, 3)])  # fmt: skip
def test_warp_and_the_continuity_warp_share_their_draws(
    shared: bool, max_sampled: int, budget: int
) -> None:
    """A positive no negative can violate, for either score: with shared draws the event
    takes max(max_sampled, continuity_max_sampled) uniforms, one per draw; with draws
    of its own the continuity WARP takes its budget on top of WARP's."""
    model = catalogue(ModelConfig(dim=4, max_sampled=max_sampled, continuity_max_sampled=budget,
                                  pop_sampling=0.0, continuity_shared_draws=shared))  # fmt: skip
    model.learn(["u", "u"], ["i1", "i2"], ["view", "view"])  # recent items of cat=a
    assert model.n_events == 2 and model.stats[kernels.STAT_EVENTS] == 0, "views: seen only"
    model.items.table.bias[model.items.feature_names.get("#id:i0")] = 1e6  # unbeatable
    expected = model.rng_state.copy()
    for _ in range(max(max_sampled, budget) if shared else max_sampled + budget):
        vectors.next_uniform.py_func(expected)
    stats = model.learn(["u"], ["i0"], ["click"])
    assert (stats.learned, stats.pairs, stats.no_violator) == (1, 0, 1)
    assert model.rng_state[0] == expected[0]
