"""The event-loop lag probe: a step that holds the loop shows as a stall, and only then."""

from __future__ import annotations

import asyncio
import logging
import re
import time

import pytest

from streamrec.workers.loop_lag import LoopLag
from streamrec.workers.metrics import Metrics


def test_the_gauge_holds_the_latest_wake_up_of_its_window_and_forgets_older_ones() -> None:
    lag = LoopLag(Metrics(), "w", stall_s=0.1, window=5.0)
    lag.record(0.05, now=100.0, wall=0.0)
    lag.record(0.01, now=101.0, wall=1.0)
    assert lag.metrics.get("w", "event_loop_lag_max_seconds") == 0.05
    lag.record(0.02, now=106.0, wall=6.0)  # the 0.05 of t=100 is out of the window
    assert lag.metrics.get("w", "event_loop_lag_max_seconds") == 0.02
    assert lag.stalls == 0 and lag.metrics.get("w", "event_loop_stalls_total") == 0


@pytest.mark.asyncio
async def test_a_step_holding_the_loop_is_counted_and_logged_as_a_stall(
    caplog: pytest.LogCaptureFixture,
) -> None:
    lag = LoopLag(Metrics(), "trainer", interval=0.01, stall_s=0.1)
    task = asyncio.create_task(lag.run())
    try:
        await asyncio.sleep(0.1)  # a few wake-ups (on time, unless the machine is busy)
        before = lag.stalls
        with caplog.at_level(logging.INFO, logger="streamrec.workers.loop_lag"):
            time.sleep(0.3)  # a step that holds the loop
            await asyncio.sleep(0.05)
    finally:
        task.cancel()
    assert lag.stalls >= before + 1
    assert lag.metrics.get("trainer", "event_loop_stalls_total") == lag.stalls
    assert lag.metrics.get("trainer", "event_loop_lag_max_seconds") >= 0.25
    held = [float(m) for m in re.findall(r"event loop (\d+\.\d+) s late", caplog.text)]
    assert held and max(held) >= 0.25
    assert "streamrec_event_loop_stalls_total" in lag.metrics.render()
