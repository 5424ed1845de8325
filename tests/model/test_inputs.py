"""Bad inputs raise clear, typed errors; the divergence guard never writes NaN."""

from __future__ import annotations

import math

import numpy as np
import pytest

from streamrec.errors import (
    ConfigError,
    InvalidFeatureError,
    InvalidIdError,
    InvalidWeightError,
    ModelDivergedError,
    StreamrecError,
    UnknownEntityError,
    UnknownEventTypeError,
)
from streamrec.model import HybridModel, ModelConfig


@pytest.fixture
def model() -> HybridModel:
    m = HybridModel(ModelConfig(dim=8))
    m.add_user("alice", ["age=3"])
    m.add_item("book", ["genre=1"])
    m.add_item("film", ["genre=2"])
    return m


def test_unknown_event_type(model: HybridModel) -> None:
    with pytest.raises(UnknownEventTypeError, match=r"'teleport'.*configured types: add_to_cart"):
        model.learn(["alice"], ["book"], ["teleport"])


def test_nan_and_negative_weights(model: HybridModel) -> None:
    rows = np.zeros(1, np.int32)
    with pytest.raises(InvalidWeightError, match="non-finite weight nan"):
        model.learn_rows(rows, rows, np.array([math.nan], np.float32))
    with pytest.raises(InvalidWeightError, match="negative weight"):
        model.learn_rows(rows, rows, np.array([-1.0], np.float32))
    with pytest.raises(ConfigError, match="event weight for 'click'"):
        ModelConfig(event_weights={"click": math.nan})


@pytest.mark.parametrize("bad", ["", "   ", None, 42])
def test_empty_or_non_string_ids(model: HybridModel, bad: object) -> None:
    with pytest.raises(InvalidIdError):
        model.add_user(bad, ["age=1"])  # type: ignore[arg-type]
    with pytest.raises(InvalidIdError):
        model.learn(["alice"], [bad], ["click"])  # type: ignore[list-item]


def test_bad_features(model: HybridModel) -> None:
    with pytest.raises(InvalidFeatureError, match="non-finite weight"):
        model.add_user("bob", {"age=3": math.inf})
    with pytest.raises(InvalidFeatureError, match="reserved"):
        model.add_item("x", ["#id:book"])
    with pytest.raises(InvalidFeatureError, match="single string"):
        model.add_item("x", "genre=1")  # type: ignore[arg-type]
    with pytest.raises(InvalidFeatureError, match="non-empty"):
        model.add_item("x", [""])


def test_a_bad_batch_learns_nothing(model: HybridModel) -> None:
    before = {k: v.copy() for k, v in model.arrays().items()}
    with pytest.raises(UnknownEventTypeError):
        model.learn(["alice", "alice"], ["book", "film"], ["click", "nope"])
    for name, value in model.arrays().items():
        np.testing.assert_array_equal(value, before[name], err_msg=name)
    assert model.n_events == 0


def test_unknown_users_and_rows(model: HybridModel) -> None:
    with pytest.raises(UnknownEntityError, match="unknown user 'zed'"):
        model.recommend("zed", 3)
    assert [i for i, _ in model.recommend("zed", 2, features=["age=3"])]  # cold start works
    with pytest.raises(UnknownEntityError):
        model.learn_rows(np.array([5], np.int32), np.array([0], np.int32), np.ones(1, np.float32))


def test_bad_settings_are_config_errors() -> None:
    for bad in ({"loss": "hinge"}, {"dim": 0}, {"lr": -1.0}, {"accum_decay": 0.0},
                {"pop_sampling": 2.0}, {"activity_buckets": 99}):  # fmt: skip
        with pytest.raises(ConfigError):
            ModelConfig(**bad)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="unknown model setting"):
        ModelConfig.from_dict({"learning_rate": 0.1})


def test_divergence_raises_and_writes_no_nan() -> None:
    model = HybridModel(ModelConfig(dim=4, optimizer="sgd", lr=1e30, bias_lr=1e30, loss="bpr"))
    model.add_user("u", ["a=1"])
    for n in range(5):
        model.add_item(f"i{n}", [f"g={n % 2}"])
    with pytest.raises(ModelDivergedError, match="non-finite value") as info:
        for _ in range(20):
            model.learn(["u"] * 5, [f"i{n}" for n in range(5)], ["click"] * 5)
    assert isinstance(info.value, StreamrecError)
    model.check_finite()  # nothing non-finite was written
