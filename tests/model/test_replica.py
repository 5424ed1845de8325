"""A replica fed by change sets holds exactly the exporting model's state."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest

from streamrec.errors import ReplicaError
from streamrec.model import HybridModel, ModelConfig, load, save
from streamrec.model.replica import ChangeSet

FULL = {"recent_items": 3, "activity_buckets": 4, "trend_weight": 1.0, "recent_include_seen": True}


def assert_same(a: HybridModel, b: HybridModel) -> None:
    """Every table, vocabulary, seen set and counter equal, bit for bit."""
    arrays_a, arrays_b = a.arrays(), b.arrays()
    assert set(arrays_a) == set(arrays_b)
    for name, value in arrays_a.items():
        np.testing.assert_array_equal(value, arrays_b[name], err_msg=name)
    for side in ("users", "items"):
        sa, sb = getattr(a, side), getattr(b, side)
        assert list(sa.ids) == list(sb.ids), side
        assert list(sa.feature_names) == list(sb.feature_names), side
    for x, y in zip(a.seen.to_csr(), b.seen.to_csr(), strict=True):
        np.testing.assert_array_equal(x, y)
    assert (a.version, a.n_events) == (b.version, b.n_events)


def steps(model: HybridModel, seed: int, n_steps: int = 6):  # type: ignore[no-untyped-def]
    """Random learning with onboarding, re-featuring and seen-only events, step by step."""
    rng = np.random.default_rng(seed)
    for step in range(n_steps):
        for k in range(5):  # new entities, some with never-seen features
            model.add_user(f"u{step}-{k}", [f"age={rng.integers(6)}", f"city={step}"])
            model.add_item(f"i{step}-{k}", {f"genre={rng.integers(4)}": 1.0, f"year={step}": 0.5})
        model.add_user(f"u0-{step % 5}", [f"age={rng.integers(9)}"])  # re-featured
        model.add_item(f"i0-{step % 5}", ["genre=0", f"new={step}"])
        n = 120
        users = rng.integers(model.n_users, size=n).astype(np.int32)
        items = rng.integers(model.n_items, size=n).astype(np.int32)
        weights = rng.choice([0.0, 1.0, 3.0], size=n).astype(np.float32)
        model.learn_rows(users, items, weights)
        model.learn([f"bare-user-{step}"], [f"bare-item-{step}"], ["click"])  # onboarded bare
        model.mark_seen(int(users[0]), int(items[-1]))
        yield step


@pytest.mark.parametrize("loss", ["warp", "bpr", "logistic"])
def test_replica_fed_by_change_sets_equals_the_model(loss: str) -> None:
    config = ModelConfig(dim=6, seed=3, loss=loss, trend_half_life=1.0, pop_window=64, **FULL)  # type: ignore[arg-type]
    trainer, replica = HybridModel(config), HybridModel(config)
    scales = []
    for _ in steps(trainer, seed=1):
        changes = trainer.export_changes()
        assert not trainer.has_changes()
        replica.apply_changes(changes)
        assert_same(trainer, replica)
        scales.append(float(trainer.trend_state[0]))
    assert any(b < a for a, b in itertools.pairwise(scales)), "no renormalisation"


def test_applying_a_change_set_twice_is_harmless() -> None:
    config = ModelConfig(dim=4, seed=2, **FULL)  # type: ignore[arg-type]
    trainer, replica = HybridModel(config), HybridModel(config)
    for _ in steps(trainer, seed=4, n_steps=3):
        changes = trainer.export_changes()
        replica.apply_changes(changes)
        replica.apply_changes(changes)
        assert_same(trainer, replica)


@pytest.mark.parametrize("budget", [300, 2_000, 40_000])
def test_split_parts_applied_in_order_equal_the_whole(budget: int) -> None:
    config = ModelConfig(dim=8, seed=5, **FULL)  # type: ignore[arg-type]
    trainer = HybridModel(config)
    whole, in_parts = HybridModel(config), HybridModel(config)
    n_parts = []
    for _ in steps(trainer, seed=6, n_steps=3):
        changes = trainer.export_changes()
        parts = changes.split(budget)
        n_parts.append(len(parts))
        for part in parts:
            assert not part.is_empty()
            in_parts.apply_changes(part)
        whole.apply_changes(changes)
        assert_same(whole, in_parts)
        assert_same(trainer, in_parts)
    if budget < 40_000:
        assert min(n_parts) > 1
    else:
        assert n_parts == [1, 1, 1]


def test_split_respects_the_budget_unless_one_item_is_larger() -> None:
    config = ModelConfig(dim=16, seed=5, **FULL)  # type: ignore[arg-type]
    trainer = HybridModel(config)
    for _ in steps(trainer, seed=8, n_steps=2):
        pass
    changes = trainer.export_changes()
    budget = 1_000
    row_bytes = changes.user_rows.row_bytes()
    parts = changes.split(budget)
    assert sum(len(p.user_rows) for p in parts) == len(changes.user_rows)
    assert sum(len(p.new_users) for p in parts) == len(changes.new_users)
    for part in parts:
        assert part.nbytes() <= budget + row_bytes


def test_a_replica_bootstrapped_from_a_checkpoint_follows_later_change_sets(
    tmp_path: Path,
) -> None:
    config = ModelConfig(dim=4, seed=9, **FULL)  # type: ignore[arg-type]
    trainer = HybridModel(config)
    run = steps(trainer, seed=10, n_steps=4)
    next(run)
    save(trainer, tmp_path / "m.npz")
    trainer.forget_changes()  # the checkpoint holds everything so far
    replica = load(tmp_path / "m.npz")
    assert not replica.has_changes()
    for _ in run:
        replica.apply_changes(trainer.export_changes())
        assert_same(trainer, replica)


def test_a_lost_change_set_is_an_error_not_a_silent_divergence() -> None:
    config = ModelConfig(dim=4, seed=1)
    trainer, replica = HybridModel(config), HybridModel(config)
    trainer.add_user("a")
    trainer.export_changes()  # lost on the way
    trainer.add_user("b")
    with pytest.raises(
        ReplicaError, match=r"gap before row 9 \(replica has 8\); a change set was lost"
    ):
        replica.apply_changes(trainer.export_changes())
    other = HybridModel(config)
    other.add_user("z")
    with pytest.raises(ReplicaError, match="row 0 is 'z', not 'a'"):
        other.apply_changes(ChangeSet(user_base=0, new_users=["a"]))


def test_fixed_entry_sizes_fit_like_listed_ones() -> None:
    """Sections of fixed-size entries are budgeted by arithmetic, the others by cumulative
    sums: both count the same entries as fitting, and the same bytes."""
    from streamrec.model.replica import _Sizes

    for each in (8, 12, 264):
        n = 50
        fixed, listed = _Sizes(each), _Sizes(sizes=[each] * n)
        for start in (0, 1, 17, n - 1):
            for room in (-each - 1, -1, 0, 1, each - 1, each, each + 1, 7 * each + 3, 10**6):
                fits = max(0, min(fixed.fitting(start, room), n - start))  # <= 0: none
                assert fits == max(0, min(listed.fitting(start, room), n - start)), (each, room)
            assert fixed.between(start, n) == listed.between(start, n) == each * (n - start)
    assert _Sizes(sizes=[5, 7, 9]).fitting(0, 12) == 2
    assert _Sizes(sizes=[5, 7, 9]).fitting(1, 15) == 1
