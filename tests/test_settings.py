"""The settings object refuses values it cannot run with, naming the setting."""

from __future__ import annotations

from typing import Any

import pytest

from streamrec.errors import ConfigError
from streamrec.settings import Settings


@pytest.mark.parametrize(
    "bad",
    [
        {"learn_interval_ms": -1},
        {"index_rebuild_growth": -0.1},
        {"index_search_k": 0},
        {"index_search_k": -2},
        {"index_trees": 0},
        {"batch_max": 0},
    ],
)
def test_out_of_range_settings_are_config_errors(bad: dict[str, Any]) -> None:
    (name,) = bad
    with pytest.raises(ConfigError, match=name):
        Settings.load(bad, environ={})


@pytest.mark.parametrize("good", [{"learn_interval_ms": 0}, {"index_search_k": -1}])
def test_the_edges_of_those_ranges_are_accepted(good: dict[str, Any]) -> None:
    ((name, value),) = good.items()
    assert getattr(Settings.load(good, environ={}), name) == value
