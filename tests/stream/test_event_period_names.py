"""Event-period topic names (stream/topics.py), and watermarks on deleted periods."""

from __future__ import annotations

import pytest

from streamrec.errors import ConfigError
from streamrec.model import HybridModel, ModelConfig
from streamrec.settings import Settings
from streamrec.stream.broker import event_period_partitions
from streamrec.stream.schemas import Watermark
from streamrec.stream.topics import Topics, event_period_at
from streamrec.workers.state import ModelState

T = Topics("p")


def test_a_period_topic_names_its_span_and_other_names_have_none() -> None:
    assert T.event_period(120, 180) == "p.interactions.120-180"
    assert T.event_period_span("p.interactions.120-180") == (120, 180)
    for name in ["p.interactions", "p.entities", "p.interactions.x-180", "p.interactions.120",
                 "p.interactions.180-120", "q.interactions.120-180", "p.rec-requests.1",
                 "p.interactions.-1-5"]:  # fmt: skip
        assert T.event_period_span(name) is None, name
    names = ["p.interactions.180-240", "p.entities", "p.interactions.120-180", "p.deltas"]
    assert T.event_periods_in(names) == ["p.interactions.120-180", "p.interactions.180-240"]
    assert T.learned("p.interactions.120-180") and T.learned("p.entities")
    assert not T.learned("p.deltas") and not T.learned("p.rec-requests.0")


def test_periods_are_aligned_and_made_ahead() -> None:
    assert event_period_at(60, 1000.5) == (960, 1020)
    assert event_period_at(60, 960.0) == (960, 1020)
    assert event_period_partitions(T, 60, 3, now=1000.0) == {
        "p.interactions.960-1020": 3, "p.interactions.1020-1080": 3,
        "p.interactions.1080-1140": 3,
    }  # fmt: skip


def test_a_watermark_on_a_deleted_period_is_reached_and_its_offsets_forgotten() -> None:
    state = ModelState(HybridModel(ModelConfig(dim=4)))
    old, new = T.event_period(120, 180), T.event_period(180, 240)
    state.advance({(old, 0): 5, (new, 0): 3, (T.interactions, 0): 7})
    marks = [Watermark(old, 0, 9), Watermark(new, 0, 1)]
    assert not state.reached(marks)  # offset 9 of the old period not applied yet
    state.retire_events(T, 180)  # every period that began before 180 is learned, deleted
    assert state.reached(marks)
    assert (old, 0) not in state.applied and state.applied[(new, 0)] == 3
    assert not state.reached([Watermark(new, 0, 5)])  # the period still read is not
    state.retire_events(T, 120)  # never lowered
    assert state.events_retired_before == 180


def test_event_period_s_must_not_be_negative() -> None:
    assert Settings.load({}, environ={}).event_period_s == 30
    assert Settings.load({}, environ={"STREAMREC_EVENT_PERIOD_S": "0"}).event_period_s == 0
    with pytest.raises(ConfigError, match="event_period_s"):
        Settings.load({"event_period_s": -1}, environ={})
