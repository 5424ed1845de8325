"""A consumer's partitions that were deleted and created again, started from 0.

On the embedded broker a fetch past the end of a recreated partition comes back empty
with the new, lower high watermark, not with an out-of-range error, so aiokafka's
``auto_offset_reset`` never runs and the consumer would wait at its old position while
the new records go by (measured: 1,229 of 8,685 records read while a topic of four was
recreated every second).  :func:`rewind_recreated`, called after each poll, seeks every
partition whose position is past its last known high watermark to 0: a position is
never past the end of the partition it was read from.  :class:`SlotTurns` rewinds the
request slots by the clock as well, since a fetch may not come in time to show it.
"""

from __future__ import annotations

import logging
from collections.abc import Collection
from typing import Any

from streamrec.stream.kafka_clients import fetch_positions
from streamrec.stream.topics import period_at

log = logging.getLogger(__name__)


def rewind_recreated(consumer: Any) -> list[Any]:
    """Seek each assigned partition whose position is past its high watermark to 0;
    return them."""
    rewound = []
    for tp, position, end, _ in fetch_positions(consumer):
        if position > end:
            log.debug("%s: position %d past the end %d: recreated, reading from 0",
                      tp, position, end)  # fmt: skip
            consumer.seek(tp, 0)
            rewound.append(tp)
    return rewound


class SlotTurns:
    """Seeks a consumer's partitions of a request slot to 0 when the slot's turn begins.

    The slot's topics were recreated half a period before (``stream/topics.py``), so
    everything in them is new.  :func:`rewind_recreated` alone can miss it: it needs a
    fetch to report the new, lower end before the new records pass the old position, and
    a consumer held up for longer would read on from there, skipping the records before
    it.  A partition :func:`rewind_recreated` started again after the recreation is left
    alone.  ``names[i]`` is slot ``i``'s topic (request or response slots); a record read
    twice this way is answered or delivered twice, which the SDK ignores.

    With ``live_periods`` > 0 (the recommenders: 2), the partitions of the slots whose
    turn is neither the current one nor among the ``live_periods - 1`` before it are
    paused once read to their end, and resumed when their turn begins: every fetch of
    the embedded broker costs it per partition asked for, and nothing is sent to a slot
    whose turn has passed, apart from a request sent by a clock more than a period
    behind.  ``after_poll``'s ``keep`` names slots read all the same: the SDK keeps the
    response slots its waiting requests were sent on (a response may come late), and
    all of them while someone subscribes to every response.  0: none paused.
    """

    def __init__(self, names: list[str], live_periods: int = 0) -> None:
        self.names = names
        self.live_periods = live_periods
        self._slots = set(names)
        self._period: int | None = None
        self._rewound: dict[Any, int] = {}  # partition -> period of its last rewind

    def after_poll(self, consumer: Any, keep: Collection[str] = ()) -> int:
        """:func:`rewind_recreated`, then rewind the slots whose turn began since the last
        call and that were not rewound since their recreation; return how many were.
        With ``live_periods``, pause the slots past their turn, but those in ``keep``."""
        period = period_at()
        rewound = rewind_recreated(consumer)
        for tp in rewound:
            self._rewound[tp] = period
        last, self._period = self._period, period
        if self.live_periods > 0 and self.names:
            self._pause_past(consumer, period, keep)
        if not self.names or last is None or period == last:
            return len(rewound)
        began = range(max(last + 1, period - len(self.names) + 1), period + 1)
        for p in began:  # slot p % n was recreated half way through period p - 1
            name = self.names[p % len(self.names)]
            for tp in consumer.assignment():
                if tp.topic == name and self._rewound.get(tp, -1) < p - 1:
                    consumer.seek(tp, 0)
                    self._rewound[tp] = period
                    rewound.append(tp)
        return len(rewound)

    def _pause_past(self, consumer: Any, period: int, keep: Collection[str]) -> None:
        """Pause the slots' partitions whose turn has passed and that were read to their
        end, but those of ``keep``; resume the others."""
        n = len(self.names)
        live = {self.names[q % n] for q in range(period - self.live_periods + 1, period + 1)}
        live.update(keep)
        read = {tp: position >= end for tp, position, end, _ in fetch_positions(consumer)}
        pause: list[Any] = []
        resume: list[Any] = []
        for tp in consumer.assignment():
            if tp.topic in self._slots:
                past = tp.topic not in live and read.get(tp, False)
                (pause if past else resume).append(tp)
        paused = consumer.paused()
        if any(tp not in paused for tp in pause):
            consumer.pause(*pause)
        if any(tp in paused for tp in resume):
            consumer.resume(*resume)
