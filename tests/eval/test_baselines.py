"""The baselines of the evaluation: known rankings, and the JD reference figures."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from streamrec.eval.baselines import (
    DecayedPopularityBaseline,
    ItemKNN,
    Popularity,
    RecentFeatures,
    default_baselines,
)
from streamrec.eval.datasets import load_log
from streamrec.eval.prequential import replay
from streamrec.model import ModelConfig
from streamrec.model.baseline_kernels import top_rows

NONE = np.zeros(0, dtype=np.int32)


def test_top_rows_ties_and_exclusions() -> None:
    scores = np.array([1.0, 3.0, 3.0, 0.0, 3.0])
    assert top_rows(scores, 2, NONE).tolist() == [1, 2]
    assert top_rows(scores, 2, NONE, newest_first=True).tolist() == [4, 2]
    assert top_rows(scores, 3, np.array([2], np.int32), newest_first=True).tolist() == [4, 1, 0]


def test_popularities_count_positives_only() -> None:
    pop, dpop = Popularity(), DecayedPopularityBaseline(half_life=1.0)
    for b in (pop, dpop):
        for item in (0, 0, 1):
            b.learn(0, item, True)
        b.learn(0, 2, False)  # seen only: no count
        b.learn(0, 2, False)
    assert pop.top_k(1, 3, 3, NONE).tolist() == [0, 1, 2]
    # half-life of one event: the latest positive (item 1) outweighs two older ones
    assert dpop.top_k(1, 3, 1, NONE).tolist() == [1]


def test_recent_features_counts_shared_features_then_popularity_then_newest() -> None:
    b = RecentFeatures(window=2, half_life=1000.0)
    feats = {0: ["cat=a", "brand=x"], 1: ["cat=a", "brand=y"], 2: ["cat=a", "brand=x"],
             3: ["cat=b"], 4: ["cat=a"], 5: ["cat=b", "brand=x"]}  # fmt: skip
    for item, f in feats.items():
        b.add_item(item, f)
    b.learn(1, 3, True)  # user 1 makes item 3 popular
    b.learn(0, 0, False)  # user 0 viewed item 0: cat=a, brand=x
    # shares 2: item 2; shares 1: items 1, 4, 5 (none popular: newest first); 3 shares 0
    assert b.top_k(0, 6, 5, np.array([0], np.int32)).tolist() == [2, 5, 4, 1, 3]
    b.learn(1, 1, True)  # item 1 now popular: first among the items sharing one feature
    assert b.top_k(0, 6, 3, np.array([0], np.int32)).tolist() == [2, 1, 5]
    # the window holds the last 2 items of any type: after two more, item 0 is gone
    b.learn(0, 3, False)
    b.learn(0, 3, False)
    assert b.top_k(0, 6, 2, NONE).tolist() == [3, 5]  # cat=b: 3 (popular), then 5


def test_item_knn_recommends_co_occurring_items_after_a_refit() -> None:
    b = ItemKNN(refit_every=12)
    # users 0-3 like items 0 and 1 together; users 4-7 like 2 and 3 together
    for user in range(8):
        pair = (0, 1) if user < 4 else (2, 3)
        for item in pair:
            b.learn(user, item, True)
    b.learn(8, 2, True)  # 17 positives: the similarities were fit after the 12th
    b.learn(9, 2, True)
    b.learn(9, 3, True)  # item 3 (and 2) now outnumber 0 and 1
    assert b.top_k(10, 4, 1, NONE).tolist() == [2], "no history: popularity"
    b.learn(10, 0, True)
    assert b.top_k(10, 4, 1, np.array([0], np.int32)).tolist() == [1], "0 co-occurs with 1"
    assert b.top_k(8, 4, 2, np.array([2], np.int32)).tolist() == [3, 0], "3, then popularity"


def test_baselines_run_in_the_replay_with_their_labels() -> None:
    from tests.eval.test_prequential import make_log

    events = [(f"u{n % 5}", f"i{n % 7}", "click") for n in range(60)]
    result = replay(make_log(events), ModelConfig(dim=4), burn_in=0.5)
    assert list(result.systems) == ["model", *(b.name for b in default_baselines())]
    assert result.labels["recent_features"] == "recent features"
    model_only = replay(make_log(events), ModelConfig(dim=4), burn_in=0.5, baselines=())
    assert list(model_only.systems) == ["model"]
    np.testing.assert_array_equal(model_only.systems["model"].ranks, result.systems["model"].ranks)


def test_jd_reference_figures(jd_events: Path) -> None:
    """EVALUATION.md's JD figures, within tie-breaking (a few of the 19,194 events)."""
    result = replay(load_log(jd_events), ModelConfig(dim=8))
    m = result.metrics()
    assert result.n_scored == 19_194 and int(result.cold.sum()) == 2_144
    assert m["popularity"]["hr"] == pytest.approx(0.0132, abs=2e-4)
    assert m["decayed_popularity"]["hr"] == pytest.approx(0.0164, abs=2e-4)
    assert m["decayed_popularity"]["cold_hr"] == pytest.approx(0.0784, abs=2e-4)
    assert m["recent_features"]["hr"] == pytest.approx(0.0401, abs=5e-4)
    assert m["recent_features"]["cold_hr"] == pytest.approx(0.0821, abs=5e-4)
    assert m["item_knn"]["hr"] == pytest.approx(0.0212, abs=1e-3)
    assert m["item_knn"]["cold_hr"] == pytest.approx(0.0611, abs=1.5e-3)


def test_replay_marks_targets_at_their_first_appearance() -> None:
    from tests.eval.test_prequential import make_log

    events = [("u1", "a", "click"), ("u2", "a", "click"), ("u3", "b", "click"),
              ("u0", "a", "view"), ("u0", "c", "click")]  # fmt: skip
    result = replay(make_log(events), ModelConfig(dim=4), burn_in=0.0, k=1)
    assert result.new_item.tolist() == [True, False, True, True]
    # all-time popularity, k=1: a (the only item), a, then a again for u3 (b new, no count)
    # and c for u0 (a excluded, b and c tie: lower row b): hits 1, 1, 0, 0
    m = result.metrics()["popularity"]
    assert result.systems["popularity"].hits.tolist() == [1, 1, 0, 0]
    assert m["known_item_hr"] == 1.0 and m["hr"] == 0.5
