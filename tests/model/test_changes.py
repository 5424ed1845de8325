"""The rows the kernels report as written are exactly the rows whose contents changed."""

from __future__ import annotations

import numpy as np
import pytest

from streamrec.model import HybridModel, ModelConfig
from streamrec.model.dirty import DirtyRows

FULL = {"recent_items": 4, "activity_buckets": 4, "trend_weight": 1.0, "recent_include_seen": True}

#: change-log table -> the arrays of ``HybridModel.arrays()`` it covers
GROUPS = {
    "user_features": (
        "user_emb",
        "user_bias",
        "user_emb_acc",
        "user_bias_acc",
        "user_cont",
        "user_cont_acc",
    ),
    "item_features": ("item_emb", "item_bias", "item_emb_acc", "item_bias_acc"),
    "context": ("ctx_emb", "ctx_acc"),
    "users": ("recent", "recent_n", "activity", "last", "last_n"),
    "items": ("trend",),
    "ring": ("pop_ring",),
}


def onboarded(seed: int, **config: object) -> HybridModel:
    rng = np.random.default_rng(seed)
    model = HybridModel(ModelConfig(dim=8, seed=seed, **config))  # type: ignore[arg-type]
    for u in range(40):
        model.add_user(f"u{u}", [f"age={rng.integers(4)}", f"city={rng.integers(3)}"])
    for i in range(60):
        model.add_item(f"i{i}", {f"genre={rng.integers(5)}": 1.0, f"decade={rng.integers(3)}": 0.5})
    return model


def changed_rows(
    before: dict[str, np.ndarray], after: dict[str, np.ndarray], names: tuple[str, ...]
) -> set[int]:
    rows: set[int] = set()
    for name in names:
        a, b = before[name], after[name]
        n = min(a.shape[0], b.shape[0])
        diff = a[:n] != b[:n]
        moved = diff.reshape(n, -1).any(axis=1) if diff.ndim > 1 else diff
        rows |= set(np.flatnonzero(moved).tolist()) | set(range(n, b.shape[0]))
    return rows


def marked(rows: DirtyRows) -> set[int]:
    return set(rows.rows[: len(rows)].tolist())


def snapshot(model: HybridModel) -> dict[str, np.ndarray]:
    return {name: a.copy() for name, a in model.arrays().items()}


@pytest.mark.parametrize("loss", ["warp", "bpr", "logistic"])
@pytest.mark.parametrize("half_life", [2000.0, 2.0])
def test_kernels_mark_exactly_the_rows_they_change(loss: str, half_life: float) -> None:
    """Random learning (sampled negatives, seen-only events, trend rescales included).

    Rounds of 200 events on a ring of 256 slots: a slot is written at most once per
    round, so a written slot always changed (a slot written twice back to its old value
    would be reported, harmlessly: contents are absolute).
    """
    model = onboarded(3, loss=loss, n_negatives=3, pop_sampling=0.3, pop_window=256,
                      trend_half_life=half_life, **FULL)  # fmt: skip
    rng = np.random.default_rng(7)
    for _ in range(5):
        model.forget_changes()
        before = snapshot(model)
        n = 200
        users = rng.integers(model.n_users, size=n).astype(np.int32)
        items = rng.integers(model.n_items, size=n).astype(np.int32)
        weights = rng.choice([0.0, 1.0, 2.0], size=n).astype(np.float32)
        model.learn_rows(users, items, weights)
        after = model.arrays()
        for group, names in GROUPS.items():
            expected = changed_rows(before, after, names)
            assert expected, f"{group}: the run should change something"
            assert marked(getattr(model.changes, group)) == expected, group
        # the new signals (on by default) wrote in this round: continuity weights, the
        # continuity ring, and seen-only events in the trend
        assert (before["user_cont"] != after["user_cont"]).any()
        assert (before["last_n"] != after["last_n"]).any()
        seen_only = np.flatnonzero(weights == 0.0)
        assert (after["trend"][items[seen_only]] != before["trend"][items[seen_only]]).all()
    if half_life == 2.0:
        assert model.trend_state[0] < 1e100, "the decayed counts were rescaled"


def test_onboarding_marks_new_feature_rows_entities_and_context() -> None:
    model = onboarded(5, **FULL)
    model.forget_changes()
    before = snapshot(model)
    model.add_user("u3", ["age=9"])  # re-featured, one new feature
    model.add_user("new-user", ["age=1"])
    model.add_item("new-item", ["genre=7"])
    after = model.arrays()
    log = model.changes
    assert marked(log.user_entities) == {3, model.n_users - 1}
    assert marked(log.item_entities) == {model.n_items - 1}
    assert marked(log.user_features) == changed_rows(before, after, GROUPS["user_features"])
    assert marked(log.item_features) == changed_rows(before, after, GROUPS["item_features"])
    # context rows are item-feature rows: the new item's identity and its new genre
    n_item_features = len(model.items.feature_names)
    assert marked(log.context) == {n_item_features - 2, n_item_features - 1}
    assert marked(log.context) == changed_rows(before, after, GROUPS["context"])


def test_features_trained_then_replaced_are_still_reported() -> None:
    """A trained entity re-featured before the export: its old rows were written."""
    model = onboarded(4, loss="bpr", **FULL)
    model.forget_changes()
    before = snapshot(model)
    model.learn_rows(np.array([3], np.int32), np.array([5], np.int32), np.ones(1, np.float32))
    model.add_user("u3", ["brand-new=1"])
    model.add_item("i5", ["genre=0"])
    after = model.arrays()
    for group in ("user_features", "item_features"):
        changed = changed_rows(before, after, GROUPS[group])
        assert changed and changed <= marked(getattr(model.changes, group)), group
