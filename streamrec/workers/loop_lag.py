"""How late a worker's event loop runs what is due: its stalls, measured and logged.

A worker process learns, follows deltas and answers requests on one asyncio event loop.
While one step holds the loop (a long computation, a full garbage collection, the GIL
held by one of its threads), or a queue of ready work does (a batch of requests
behind a backlog), every request that arrives waits behind it, and a latency percentile
shows it without saying where it came from.  :class:`LoopLag` wakes every ``interval``
seconds and measures how late it woke:

- ``event_loop_lag_max_seconds`` (gauge): the latest wake-up of the last ``window``
  seconds;
- ``event_loop_stalls_total`` (counter): wake-ups later than ``stall_s``;
- each such stall is logged at INFO with the time the loop stopped running what was
  due, so ``-v`` logs place it beside a rotation, an index swap or a checkpoint.

It costs one wake-up per ``interval``: 20 a second by default, 0.46 to 0.54% of a core
(beside an idle loop, two 10-s runs on the project machine).  A wake-up's lateness
falls short of the hold behind it by up to ``interval``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from datetime import UTC, datetime

from streamrec.workers.metrics import Metrics

log = logging.getLogger(__name__)


class LoopLag:
    """The event-loop lag probe of one process (``worker``: its label in the metrics)."""

    def __init__(
        self,
        metrics: Metrics,
        worker: str,
        interval: float = 0.05,
        stall_s: float = 0.1,
        window: float = 5.0,
    ) -> None:
        self.metrics = metrics
        self.worker = worker
        self.interval = interval
        self.stall_s = stall_s
        self.window = window
        self.stalls = 0
        self._recent: deque[tuple[float, float]] = deque()  # (woke at, lateness)
        metrics.inc(worker, "event_loop_stalls_total", 0.0,
                    f"event-loop wake-ups later than {stall_s} s (a step held the loop)")  # fmt: skip
        metrics.set(worker, "event_loop_lag_max_seconds", 0.0,
                    f"latest event-loop wake-up of the last {window:g} s")  # fmt: skip

    async def run(self) -> None:
        while True:
            due = time.monotonic() + self.interval
            await asyncio.sleep(self.interval)
            now = time.monotonic()
            self.record(now - due, now, time.time())

    def record(self, late: float, now: float, wall: float) -> None:
        """Note one wake-up ``late`` seconds after it was due, at monotonic ``now``
        (``wall``: the same moment by the wall clock, for the log)."""
        late = max(0.0, late)
        recent = self._recent
        recent.append((now, late))
        while recent and recent[0][0] < now - self.window:
            recent.popleft()
        self.metrics.set(self.worker, "event_loop_lag_max_seconds", max(x for _, x in recent))
        if late > self.stall_s:
            self.stalls += 1
            self.metrics.inc(self.worker, "event_loop_stalls_total")
            began = datetime.fromtimestamp(wall - late, UTC).strftime("%H:%M:%S.%f")[:-3]
            log.info("event loop %.3f s late from %s UTC", late, began)


__all__ = ["LoopLag"]
