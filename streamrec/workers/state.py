"""What recommenders serve from: a model, item attributes, applied offsets."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable

from streamrec.model import HybridModel
from streamrec.stream.schemas import Watermark
from streamrec.stream.topics import Topics
from streamrec.workers.attributes import ItemAttributeSource, MemoryItemAttributes

TopicPartitionKey = tuple[str, int]


class ModelState:
    """A model plus the bookkeeping that lets requests wait for the records they depend on.

    ``applied[(topic, partition)]`` is the next offset the model has not applied yet
    (Kafka's convention).  The trainer owns one (single writer); a replica recommender
    owns another, fed by the deltas topic.
    """

    def __init__(
        self,
        model: HybridModel,
        attributes: ItemAttributeSource | None = None,
    ) -> None:
        self.model = model
        self.attributes: ItemAttributeSource = attributes or MemoryItemAttributes()
        self.applied: dict[TopicPartitionKey, int] = {}
        #: event-period topics (stream/topics.py) that began before this Unix second are
        #: learned and deleted: a watermark on one of them is reached
        self.events_retired_before = 0
        self._topics: Topics | None = None
        self.updated_at = time.time()
        #: in a replica, when the trainer took the last delta applied (its clock; None:
        #: none applied, or this is the trainer's process): what an index built from
        #: this model read, on the clock of the items' change times (live.FreshBuffer)
        self.changes_taken_at: float | None = None
        self._event = asyncio.Event()
        self._item_listeners: list[Callable[[Iterable[int], float | None], None]] = []

    # ----------------------------------------------------------------- offsets
    def reached(self, marks: Iterable[Watermark]) -> bool:
        return all(
            self.applied.get((m.topic, m.partition), 0) > m.offset or self._retired(m.topic)
            for m in marks
        )

    def _retired(self, topic: str) -> bool:
        if self._topics is None:
            return False
        span = self._topics.event_period_span(topic)
        return span is not None and span[0] < self.events_retired_before

    def retire_events(self, topics: Topics, before: int) -> None:
        """Every event-period topic of ``topics`` that began before ``before`` (Unix s)
        is learned and deleted: forget its applied offsets, and count a watermark on it
        as reached (a later one never lowers it)."""
        self._topics = topics
        if before <= self.events_retired_before:
            return
        self.events_retired_before = before
        for key in [k for k in self.applied if self._retired(k[0])]:
            del self.applied[key]
        self.notify()

    def advance(self, offsets: dict[TopicPartitionKey, int]) -> None:
        """Record applied offsets (next offset per partition) and wake waiting requests."""
        for tp, off in offsets.items():
            if off > self.applied.get(tp, -1):
                self.applied[tp] = off
        self.notify()

    def set_applied(self, offsets: dict[TopicPartitionKey, int]) -> None:
        """Set the applied offsets of some partitions, lower ones too: a recreated topic's
        new log starts again at 0, and old positions must not count as reached in it.
        (The trainer after it found a topic recreated; a replica from each final delta,
        whose offsets are the trainer's.)"""
        self.applied.update(offsets)
        self.notify()

    def reset_applied(self, offsets: dict[TopicPartitionKey, int]) -> None:
        """Applied offsets as of a checkpoint the model was just reloaded from."""
        self.applied = dict(offsets)
        self.notify()

    def notify(self) -> None:
        self.updated_at = time.time()
        event, self._event = self._event, asyncio.Event()
        event.set()

    async def wait_for(self, marks: list[Watermark], timeout: float) -> bool:
        """Wait until every watermark is applied; False when ``timeout`` ran out first."""
        deadline = time.monotonic() + timeout
        while not self.reached(marks):
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            try:
                await asyncio.wait_for(self._event.wait(), left)
            except TimeoutError:
                return self.reached(marks)
        return True

    # ------------------------------------------------------------------- items
    def on_items_changed(self, listener: Callable[[Iterable[int], float | None], None]) -> None:
        self._item_listeners.append(listener)

    def items_changed(self, rows: Iterable[int], at: float | None = None) -> None:
        """Items created or re-featured (the indexer keeps them in its fresh buffer), at
        wall time ``at`` on the trainer's clock (None: now, in the trainer's process)."""
        rows = list(rows)
        for listener in self._item_listeners:
            listener(rows, at)
