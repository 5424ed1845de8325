"""Kernels against their pure-Python twins, and the gradients against numerical ones."""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from streamrec.model import HybridModel, ModelConfig, kernels, scoring, topk, vectors
from tests.model.world import planted_world

FULL = {"recent_items": 4, "activity_buckets": 4, "trend_weight": 1.0, "recent_include_seen": True}


def small_model(**overrides: object) -> HybridModel:
    world = planted_world(n_clusters=3, n_users=12, n_items=15, events_per_user=3, seed=11)
    model = HybridModel(ModelConfig(dim=8, seed=5, **overrides))  # type: ignore[arg-type]
    for user in world.user_taste:
        model.add_user(user, world.user_features(user) + ["age=3"])
    for item in world.item_genre:
        model.add_item(item, world.item_features(item) + ["decade=199"])
    model.learn([u for u, _ in world.events], [i for _, i in world.events],
                ["click" if n % 4 else "view" for n in range(len(world.events))])  # fmt: skip
    return model


@pytest.mark.parametrize(("loss", "shared"),
                         [("warp", True), ("warp", False), ("bpr", True), ("logistic", True)])  # fmt: skip
def test_learn_batch_matches_its_python_twin(loss: str, shared: bool) -> None:
    """Every loss; WARP with the continuity weights' draws shared and their own."""
    model = small_model(loss=loss, n_negatives=2, continuity_shared_draws=shared, **FULL)
    users = np.array([0, 1, 2, 0, 3], dtype=np.int32)
    items = np.array([1, 2, 3, 4, 0], dtype=np.int32)
    weights = np.array([1.0, 2.0, 0.0, 1.0, 3.0], dtype=np.float32)
    rng_jit = np.array([vectors.seed_state(3)], dtype=np.int64)
    rng_py = rng_jit.copy()
    tables_jit = copy.deepcopy(model.kernel_tables())
    tables_py = copy.deepcopy(model.kernel_tables())
    stats_jit = np.zeros(kernels.STAT_SIZE)
    stats_py = np.zeros(kernels.STAT_SIZE)
    args = (model.n_items, model.hp)
    marks_jit = copy.deepcopy(model.kernel_changes())
    marks_py = copy.deepcopy(model.kernel_changes())
    rc_jit = kernels.learn_batch(users, items, weights, rng_jit, *tables_jit, *args, stats_jit,
                                 marks_jit)  # fmt: skip
    rc_py = kernels.learn_batch.py_func(users, items, weights, rng_py, *tables_py, *args, stats_py,
                                        marks_py)  # fmt: skip
    assert rc_jit == rc_py == -1
    assert rng_jit[0] == rng_py[0], "both twins drew the same random numbers"
    np.testing.assert_allclose(stats_jit, stats_py, rtol=1e-5)
    for group_jit, group_py in zip(tables_jit, tables_py, strict=True):
        for a, b in zip(group_jit, group_py, strict=True):
            np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    for group_jit, group_py in zip(marks_jit, marks_py, strict=True):
        for a, b in zip(group_jit, group_py, strict=True):
            np.testing.assert_array_equal(a, b)


def test_scoring_kernels_match_their_python_twins() -> None:
    model = small_model(**FULL)
    u = model.user_vector_row(2)
    aff = model.trend_affinity_row(2)
    _, items, _, popularity = model.kernel_tables()
    n, nf = model.n_items, len(model.items.feature_names)
    out_jit, out_py = np.zeros(n, np.float32), np.zeros(n, np.float32)
    proj = np.zeros(nf, np.float32)
    # with the user's continuity signal folded in, the twins agree too
    caff, marks = model.continuity_row(2)
    assert caff != 0.0 and marks.any()
    scoring.score_items(u, aff, items, popularity, n, nf, proj, out_jit, caff, marks)
    scoring.score_items.py_func(
        u, aff, items, popularity, n, nf, proj.copy(), out_py, caff, marks.copy()
    )
    np.testing.assert_allclose(out_jit, out_py, rtol=1e-5)
    no_marks = np.zeros_like(marks)
    scoring.score_items(u, aff, items, popularity, n, nf, proj, out_jit, 0.0, no_marks)
    scoring.score_items.py_func(
        u, aff, items, popularity, n, nf, proj.copy(), out_py, 0.0, no_marks
    )
    np.testing.assert_allclose(out_jit, out_py, rtol=1e-5)
    # without it, both equal the inner product of the published representations
    reps = model.item_representations() @ model.user_query(model.users.ids.name(2))
    np.testing.assert_allclose(out_jit, reps, rtol=1e-4, atol=1e-5)
    excluded = np.array([int(np.argmax(out_jit)), 3], dtype=np.int32)
    res = []
    for fn in (scoring.top_k, scoring.top_k.py_func):
        idx, val = np.zeros(5, np.int64), np.zeros(5, np.float32)
        m = fn(out_jit, n, 5, excluded, idx, val)
        res.append((m, idx.tolist(), val.tolist()))
    assert res[0] == res[1]
    order = [int(i) for i in np.argsort(-out_jit, kind="stable") if i not in excluded][:5]
    assert res[0][1] == order


def test_projections_four_at_a_time_equal_the_one_at_a_time_sums_bit_for_bit() -> None:
    """score_items projects four rows at once; every value must be the one
    ``topk._projection`` (what evaluate's exact top k uses) computes alone."""
    rng = np.random.default_rng(3)
    V = rng.normal(size=(11, 64)).astype(np.float32)
    Vb = rng.normal(size=11).astype(np.float32)
    u = rng.normal(size=64).astype(np.float32)
    marks = (rng.random(11) < 0.5).astype(np.float32)
    for n, cont_aff in ((11, 0.0), (11, 0.7), (8, 0.3), (3, 0.0)):
        four, one = np.zeros(11, np.float32), np.zeros(11, np.float32)
        scoring.project_all(u, V, Vb, n, cont_aff, marks, four)
        stamp = np.zeros(11, np.int64)
        for f in range(n):
            topk._projection(u, V, Vb, f, cont_aff, marks, one, stamp, 1)
        np.testing.assert_array_equal(four, one)
        assert not four[n:].any()


PURE_SCRIPT = """
import json, sys
import numpy as np
from tests.model.test_kernels import small_model
model = small_model(**json.loads(sys.argv[1]))
np.savez(sys.argv[2], **model.arrays())
"""


@pytest.mark.parametrize("loss", ["warp", "bpr", "logistic"])
def test_whole_model_with_jit_disabled_gives_the_same_tables(loss: str, tmp_path: Path) -> None:
    """The same learning run with every kernel as plain Python (NUMBA_DISABLE_JIT=1)."""
    config = {"loss": loss, **FULL}
    out = tmp_path / "pure.npz"
    env = {**os.environ, "NUMBA_DISABLE_JIT": "1"}
    root = Path(__file__).resolve().parents[2]
    subprocess.run([sys.executable, "-c", PURE_SCRIPT, json.dumps(config), str(out)],
                   env=env, cwd=root, check=True, timeout=120)  # fmt: skip
    jit = small_model(**config).arrays()  # type: ignore[arg-type]
    with np.load(out) as pure:
        assert set(pure.files) == set(jit)
        for name, value in jit.items():
            np.testing.assert_allclose(value, pure[name], rtol=1e-4, atol=1e-5, err_msg=name)


def _numerical_grad(loss_fn, array: np.ndarray, rows: list[int], eps: float = 1e-3) -> np.ndarray:  # type: ignore[no-untyped-def]
    grad = np.zeros((len(rows), *array.shape[1:]))
    for n, r in enumerate(rows):
        for c in np.ndindex(array.shape[1:]):
            keep = array[(r, *c)]
            array[(r, *c)] = keep + eps
            up = loss_fn()
            array[(r, *c)] = keep - eps
            down = loss_fn()
            array[(r, *c)] = keep
            grad[(n, *c)] = (up - down) / (2 * eps)
    return grad


@pytest.mark.parametrize("loss", ["warp", "bpr", "logistic"])
def test_updates_follow_the_numerical_gradient(loss: str) -> None:
    """With plain SGD, l2 = 0 and unit weight, each touched row moves by -lr * dL/drow."""
    lr = 1e-3
    model = small_model(loss=loss, optimizer="sgd", lr=lr, bias_lr=lr, l2=0.0, **FULL)
    n = model.n_items
    # two items with a non-zero trend signal, so every term of the score is exercised
    by_trend = np.argsort(-model.trend[:n], kind="stable")
    pos, neg = int(by_trend[1]), int(by_trend[0])
    assert model.trend[neg] > 0 and model.trend[pos] > 0
    user = 4
    # every negative draw comes from a popularity ring holding only `neg`
    model.hp[kernels.HP_POP] = 1.0
    model.pop_ring[:] = neg
    model.pop_state[0] = model.pop_ring.shape[0]
    tables = model.kernel_tables()
    code = kernels.LOSS_CODES[loss]

    def loss_fn() -> float:
        return float(kernels.pair_loss(user, pos, neg, code, *tables, model.hp))

    assert loss_fn() > 0.0 or loss != "warp", "the planted pair must violate the margin"
    scale = 1.0
    if loss == "warp":  # one sample needed: rank weight log(floor((n - 1) / 1))
        scale = float(np.log(np.floor((n - 1) / 1)))
    checks = {
        "user_emb": (tables[0][0], list(model.users.fx.idx[user][model.users.fx.idx[user] >= 0])
                     + [int(vectors.activity_row(user, tables[0]))]),
        "user_bias": (tables[0][1], list(model.users.fx.idx[user][model.users.fx.idx[user] >= 0])),
        "item_emb": (tables[1][0], sorted({*model.items.fx.idx[pos], *model.items.fx.idx[neg]} - {-1})),
        "item_bias": (tables[1][1], sorted({*model.items.fx.idx[pos], *model.items.fx.idx[neg]} - {-1})),
        # the context rows of the recent items' features (identity and shared ones)
        "ctx_emb": (tables[2][0], sorted({*model.items.fx.idx[
            model.recent[user][: min(model.recent_n[user], 4)]].ravel()} - {-1})),
    }  # fmt: skip
    expected = {name: -lr * scale * _numerical_grad(loss_fn, arr, rows)
                for name, (arr, rows) in checks.items()}  # fmt: skip
    before = {name: arr[rows].astype(np.float64) for name, (arr, rows) in checks.items()}
    stats = np.zeros(kernels.STAT_SIZE)
    status = kernels.learn_batch(np.array([user], np.int32), np.array([pos], np.int32),
                                 np.ones(1, np.float32), model.rng_state, *tables, n, model.hp,
                                 stats, model.kernel_changes())  # fmt: skip
    assert status == -1 and stats[kernels.STAT_PAIRS] + (loss == "logistic") >= 1
    for name, (arr, rows) in checks.items():
        moved = arr[rows].astype(np.float64) - before[name]
        assert np.abs(expected[name]).max() > 0, f"{name}: no gradient to check"
        np.testing.assert_allclose(moved, expected[name], rtol=0.05, atol=2e-7, err_msg=name)


@pytest.mark.parametrize("compiled", [True, False])
def test_a_step_that_overflows_float32_is_refused_and_not_written(compiled: bool) -> None:
    """The divergence guard of the row and scalar steps, compiled as in its twin: new
    values beyond float32 (infinities of both signs in one row, whose sum is NaN; a
    float64 bias that a float32 table would hold as infinity) are refused, the table
    left as it was.  Compiled, the row's guard once summed the new values and passed
    such a row."""
    row = kernels._adagrad_row if compiled else kernels._adagrad_row.py_func
    scalar = kernels._adagrad_scalar if compiled else kernels._adagrad_scalar.py_func
    signs = np.array([1, -1, 1, -1, 1, 1, -1, 1], dtype=np.float32)
    table = np.zeros((2, 8), dtype=np.float32)
    table[1] = np.float32(2e34) * signs
    before = table.copy()
    acc = np.ones(2, dtype=np.float32)
    with np.errstate(over="ignore", invalid="ignore"):
        ok = row(table, acc, 1, np.float32(1e5) * signs, -6.93e5, 1e30, -1.0, 0.0,
                 np.zeros(8, dtype=np.float32))  # fmt: skip
    assert not ok
    np.testing.assert_array_equal(table, before)
    assert row(table, acc, 1, signs, -1.0, 1.0, -1.0, 0.0, np.zeros(8, dtype=np.float32))
    biases = np.full(2, np.float32(3e38), dtype=np.float32)
    with np.errstate(over="ignore"):
        assert not scalar(biases, acc, 1, -1e38, 1.0, -1.0, 0.0)
    np.testing.assert_array_equal(biases, np.float32(3e38))
    assert scalar(biases, acc, 1, 1.0, 1.0, -1.0, 0.0)
