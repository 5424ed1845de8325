"""The replay spread over processes (``jobs``) gives every figure of the one-process replay."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from streamrec.errors import ReplayError
from streamrec.eval.baselines import Baseline, Popularity
from streamrec.eval.datasets import load_log
from streamrec.eval.prequential import ReplayResult, replay
from streamrec.model import ModelConfig


def assert_same(a: ReplayResult, b: ReplayResult) -> None:
    assert list(a.systems) == list(b.systems)
    for name, ours in a.systems.items():
        theirs = b.systems[name]
        np.testing.assert_array_equal(ours.hits, theirs.hits, err_msg=name)
        np.testing.assert_array_equal(ours.ranks, theirs.ranks, err_msg=name)
        assert ours.recommended == theirs.recommended, name
    np.testing.assert_array_equal(a.cold, b.cold)
    assert a.new_item is not None and b.new_item is not None
    np.testing.assert_array_equal(a.new_item, b.new_item)
    assert a.metrics() == b.metrics()
    assert (a.n_users, a.n_items, a.n_positive, a.n_burn_in) == (
        b.n_users, b.n_items, b.n_positive, b.n_burn_in
    )  # fmt: skip


def test_every_figure_is_the_same_over_one_two_and_three_processes(jd_events: Path) -> None:
    # a real log with item features (onboarding, feature changes) and seen-only events
    log = load_log(jd_events).head(12_000)
    one = replay(log, ModelConfig(dim=8), jobs=1)
    assert one.n_scored > 1_000 and any(r.hits.any() for r in one.systems.values())
    assert_same(one, replay(log, ModelConfig(dim=8), jobs=2))
    assert_same(one, replay(log, ModelConfig(dim=8), jobs=3))


def test_more_jobs_than_baselines_and_no_baselines() -> None:
    from tests.eval.test_prequential import make_log

    events = [(f"u{n % 5}", f"i{n % 7}", "click" if n % 3 else "view") for n in range(80)]
    log = make_log(events)
    one = replay(log, ModelConfig(dim=4), burn_in=0.25, baselines=[Popularity()])
    assert_same(one, replay(log, ModelConfig(dim=4), burn_in=0.25, baselines=[Popularity()],
                            jobs=4))  # fmt: skip
    alone = replay(log, ModelConfig(dim=4), burn_in=0.25, baselines=(), jobs=2)
    assert list(alone.systems) == ["model"]


class Failing(Baseline):
    name = "failing"
    label = "failing"

    def top_k(self, user: int, n_items: int, k: int, excluded: np.ndarray) -> np.ndarray:
        raise RuntimeError(f"no ranking for user row {user}")

    def learn(self, user: int, item: int, positive: bool) -> None:
        pass


def test_a_failing_baseline_process_is_a_clear_error() -> None:
    from tests.eval.test_prequential import make_log

    log = make_log([(f"u{n % 3}", f"i{n % 4}", "click") for n in range(20)])
    with pytest.raises(ReplayError, match="no ranking for user row"):
        replay(log, ModelConfig(dim=4), baselines=[Failing()], jobs=2)
    with pytest.raises(ValueError, match="jobs must be >= 1"):
        replay(log, ModelConfig(dim=4), jobs=0)
