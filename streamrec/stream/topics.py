"""Topic names under one prefix, and the partition count of each.

**Request slots.**  The embedded broker (Tansu's memory engine) lists every record batch
of a partition for each fetch that returns records, and never drops one, so the request
path's fetches cost more with every request answered (docs/operations.md, Known
limits).  There, ``streamrec up`` carries requests and responses over a ring of
``request_slots`` topic pairs, ``<prefix>.rec-requests.<i>`` and
``<prefix>.rec-responses.<i>``: callers send to the slot of the current
:data:`SLOT_S`-second period, the recommenders read the slots of the current and the
previous periods (the others once read to their end are paused:
:class:`~streamrec.stream.recreated.SlotTurns`) and answer on the
response slot paired with the request's, and :func:`~streamrec.stream.broker.recycle_slots`
deletes and creates again, half a period ahead, the slot that comes next, whose
traffic ended ``request_slots - 1.5`` periods before (10 s with the default 4 slots).  A consumer whose position is past a
recreated partition's end starts it again from 0
(:func:`~streamrec.stream.recreated.rewind_recreated`).  The plain ``rec-requests`` and
``rec-responses`` topics are always there too, answered as before.

**Event periods.**  For the same reason the interactions topic cannot grow for as long
as ``streamrec up`` runs.  There, interactions go to a topic per ``event_period_s``-second
period, ``<prefix>.interactions.<start>-<end>`` (Unix seconds): ``up`` creates each one
:data:`EVENT_PERIODS_AHEAD` periods ahead, the SDK sends to the one of the current
period (the plain topic when it finds none), the trainer reads every one it finds and
deletes one only once its period ended a period ago, it has learned it to its end, and
a checkpoint holds those offsets (``Trainer.maintain_event_topics`` in
``workers/training/trainer.py``).
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass

#: How long each request slot is the one callers send to, in seconds.  A constant, not a
#: setting: every caller and the deployment must agree on it.  At 500 requests/s a
#: partition of a 3-partition slot gains about 670 batches in a period, which the
#: embedded broker lists in about 0.3 ms (``bench/broker_fetch.py``).
SLOT_S = 4.0


def period_at(now: float | None = None) -> int:
    """The number of the :data:`SLOT_S`-second period ``now`` (wall clock) falls in."""
    return int((time.time() if now is None else now) // SLOT_S)


def period_start(period: float) -> float:
    """The wall-clock time period number ``period`` begins at (fractions allowed)."""
    return period * SLOT_S


def current_slot(slots: int, now: float | None = None) -> int:
    """The request slot callers send to at ``now`` (wall clock)."""
    return period_at(now) % slots


#: How many periods ahead ``streamrec up`` creates the event-period topics.
EVENT_PERIODS_AHEAD = 2


def event_period_at(period_s: int, now: float | None = None) -> tuple[int, int]:
    """``(start, end)`` in Unix seconds of the ``period_s``-second period ``now`` falls in."""
    start = int((time.time() if now is None else now) // period_s) * period_s
    return start, start + period_s


@dataclass(frozen=True)
class Topics:
    """The six streamrec topics, named ``<prefix>.<role>``, and the request slots.

    ``deltas`` always has one partition: embedding deltas must be applied in order.
    """

    prefix: str = "streamrec"

    @property
    def interactions(self) -> str:
        return f"{self.prefix}.interactions"

    @property
    def entities(self) -> str:
        return f"{self.prefix}.entities"

    @property
    def requests(self) -> str:
        return f"{self.prefix}.rec-requests"

    @property
    def responses(self) -> str:
        return f"{self.prefix}.rec-responses"

    @property
    def deltas(self) -> str:
        return f"{self.prefix}.deltas"

    @property
    def dead_letters(self) -> str:
        return f"{self.prefix}.dead-letters"

    def event_period(self, start: int, end: int) -> str:
        """The interactions topic of the period ``[start, end)`` (Unix seconds)."""
        return f"{self.interactions}.{start}-{end}"

    def event_period_span(self, name: str) -> tuple[int, int] | None:
        """``(start, end)`` of an event-period topic's name; None for any other name."""
        head = self.interactions + "."
        if not name.startswith(head):
            return None
        start, sep, end = name[len(head) :].partition("-")
        if not (sep and start.isdigit() and end.isdigit() and int(start) < int(end)):
            return None
        return int(start), int(end)

    def event_periods_in(self, names: Iterable[str]) -> list[str]:
        """The event-period topics among ``names``, oldest first."""
        spans = [(span, n) for n in names if (span := self.event_period_span(n)) is not None]
        return [n for _, n in sorted(spans)]

    def learned(self, name: str) -> bool:
        """Whether ``name`` is a topic the trainer learns from (interactions, one of its
        event periods, entities): what consistent requests can wait for."""
        return name in (self.interactions, self.entities) or (
            self.event_period_span(name) is not None
        )

    def request_slot(self, i: int) -> str:
        return f"{self.requests}.{i}"

    def response_slot(self, i: int) -> str:
        return f"{self.responses}.{i}"

    def request_topics(self, slots: int) -> list[str]:
        """Every topic requests arrive on: the plain one and the ``slots`` slots."""
        return [self.requests, *(self.request_slot(i) for i in range(slots))]

    def response_for(self, request_topic: str) -> str:
        """The response topic paired with ``request_topic`` (plain or a slot)."""
        if request_topic.startswith(self.requests):
            return self.responses + request_topic[len(self.requests) :]
        return self.responses

    def slots_in(self, names: set[str]) -> int:
        """How many request slots ``names`` (a broker's topics) hold, counted from 0: a
        slot counts when either of its topics is there (the recycler recreates them one
        after the other, so one may be missing for a moment)."""
        n = 0
        while self.request_slot(n) in names or self.response_slot(n) in names:
            n += 1
        return n

    def slots_whole(self, names: set[str], slots: int) -> bool:
        """Whether both topics of each of the ``slots`` request slots are in ``names``."""
        return all(self.request_slot(i) in names and self.response_slot(i) in names
                   for i in range(slots))  # fmt: skip

    def all(self) -> tuple[str, ...]:
        return (
            self.interactions,
            self.entities,
            self.requests,
            self.responses,
            self.deltas,
            self.dead_letters,
        )

    def partitions(self, default: int, slots: int = 0) -> dict[str, int]:
        """Partition count per topic, ``slots`` request slots included: ``default``
        everywhere but the ordered deltas topic."""
        names = [*self.all(), *(t for i in range(slots)
                                for t in (self.request_slot(i), self.response_slot(i)))]  # fmt: skip
        return {name: (1 if name == self.deltas else default) for name in names}
