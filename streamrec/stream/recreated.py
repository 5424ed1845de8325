"""A consumer's partitions that were deleted and created again, started from 0.

On the embedded broker a fetch past the end of a recreated partition comes back empty
with the new, lower high watermark, not with an out-of-range error, so aiokafka's
``auto_offset_reset`` never runs and the consumer would wait at its old position while
the new records go by (measured: 1,229 of 8,685 records read while a topic of four was
recreated every second).  :func:`rewind_recreated`, called after each poll, seeks every
partition whose position is past the high watermark of a fetch made at that position
to 0 (:class:`PastTheEnd`).  :class:`SlotTurns` rewinds the request slots by the clock
as well, since a fetch may not come in time to show it.
"""

from __future__ import annotations

import logging
from collections.abc import Collection
from typing import Any

from streamrec.stream.kafka_clients import fetch_positions
from streamrec.stream.topics import period_at

log = logging.getLogger(__name__)


class PastTheEnd:
    """Finds the partitions a consumer reads past their log's end: recreated, and new.

    A position past the high watermark is not enough: Apache Kafka can answer a fetch
    with records past the high watermark that the same answer reports (it takes the
    watermark before it reads the records, and a produce can land in between): 5 polls
    in 6,000 records in one run of the test in ``tests/stream/test_recreated.py`` that
    reads while two producers send, which prints how many.  Taking those for a
    recreation sent the consumer back to offset 0, to read the whole partition again.  So a partition counts only when an answer later than
    the one that brought the position there, so an answer to a fetch at that position,
    still reports a lower high watermark.  aiokafka drops answers to fetches at any
    other offset.
    """

    def __init__(self) -> None:
        # partition -> (its position past the end, the stamp of the answer seen with it)
        self._seen: dict[Any, tuple[int, int | None]] = {}

    def find(self, consumer: Any) -> list[Any]:
        """The assigned partitions read past their log's end, by the test above."""
        found, seen = [], {}
        for f in fetch_positions(consumer):
            if f.position <= f.highwater:
                continue
            first = self._seen.get(f.tp)
            if first is None or first[0] != f.position:
                seen[f.tp] = (f.position, f.answered)  # maybe the answer that ran past
            elif first[1] != f.answered:
                found.append(f.tp)
            else:
                seen[f.tp] = first
        self._seen = seen
        return found


def rewind_recreated(consumer: Any, ends: PastTheEnd) -> list[Any]:
    """Seek each assigned partition that ``ends`` finds read past its end to 0; return
    them."""
    rewound = []
    for tp in ends.find(consumer):
        log.debug("%s: position past the end of the log: recreated, reading from 0", tp)
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
        self._ends = PastTheEnd()

    def after_poll(self, consumer: Any, keep: Collection[str] = ()) -> int:
        """:func:`rewind_recreated`, then rewind the slots whose turn began since the last
        call and that were not rewound since their recreation; return how many were.
        With ``live_periods``, pause the slots past their turn, but those in ``keep``."""
        period = period_at()
        rewound = rewind_recreated(consumer, self._ends)
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
        read = {f.tp: f.position >= f.highwater for f in fetch_positions(consumer)}
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
