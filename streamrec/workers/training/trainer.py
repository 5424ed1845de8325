"""The trainer: the single writer of the model.

It reads interactions and entity events in batches (aiokafka ``getmany``), merges the
partitions of both topics by producer time (each partition keeps its own order), decodes
the whole batch, and learns runs of interactions with one ``learn_rows`` call each
(entity events split the runs so onboarding happens in stream order).  Bad records go
to the dead-letter topic.  Every ``delta_interval_ms`` it publishes the coalesced
embedding deltas; every ``checkpoint_interval_s`` (and at stop) it writes a checkpoint
with the consumed offsets.

The loop body is split into callable steps, so both runtimes drive the same code:
:meth:`Trainer.poll_once` (one fetch, learned), :meth:`Trainer.publish_deltas` and
:meth:`Trainer.checkpoint_now`.  The asyncio runtime calls them from :meth:`Trainer._run`;
the faust runtime from a task and two timers (``streamrec.workers.runtime``).  One lock
keeps them sequential, as in one loop: a checkpoint never sees a half-learned batch.

Checkpoints go through :class:`~streamrec.workers.checkpoints.Checkpoints`: with a
registry (the feature store) each one is a new versioned file registered there, and a
start-up without any checkpoint re-onboards every user and item of the entity catalog
(see :meth:`Trainer._restore`).

Event-period topics (``stream/topics.py``): every :data:`EVENT_TOPICS_CHECK_S` seconds
:meth:`Trainer.maintain_event_topics` lists the broker's topics, reads the new ones from
the start (the future ones paused until their period begins), and deletes the oldest
ones that are done: their period ended at least a period ago, every record of them is
learned (position at the fetch high watermark), the last checkpoint written holds
those offsets (one is started if not), and a fetch just before the deletion still finds
the same ends.  Only a record that reaches the broker more than a period after its
period ended, in the milliseconds between that fetch and the deletion, could be lost.
Deltas carry ``events_retired_before``, so requests that wait for a deleted period's
records count them as applied.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import math
import time
import uuid
from collections import deque
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from streamrec.errors import StoreError, TopicError
from streamrec.model import HybridModel
from streamrec.settings import Settings
from streamrec.stream.broker import delete_topic_in_thread, recreate_topic_in_thread
from streamrec.stream.codec import Rejected, encode_binary
from streamrec.stream.dead_letters import dead_letter, send_dead_letters
from streamrec.stream.fetch_wait import FetchWaitGuard
from streamrec.stream.kafka_clients import fingerprint, probe, topic_partitions
from streamrec.stream.limits import InputLimits
from streamrec.stream.records import OffsetGaps, Record
from streamrec.stream.schemas import DeadLetter, Delta, Interaction, Watermark
from streamrec.stream.topics import Topics
from streamrec.workers.attributes import CheckpointedAttributes
from streamrec.workers.checkpoints import (
    CheckpointRegistry,
    Checkpoints,
    EntityCatalog,
    PendingCheckpoint,
    rebuild,
)
from streamrec.workers.deltas import DeltaTracker, part_bytes
from streamrec.workers.lifecycle import cancel, close, logged
from streamrec.workers.metrics import Metrics
from streamrec.workers.state import ModelState
from streamrec.workers.training.core import (
    WORKER,
    Decoded,
    TrainerCore,
    decode_records,
    merge_by_time,
)
from streamrec.workers.training.sinks import EntitySink, NullEntitySink, SinkRejection

log = logging.getLogger(__name__)
#: Longest the trainer waits for the feature store before a checkpoint (seconds).
STORE_WAIT_S = 5.0
#: A batch that onboarded users or items publishes the deltas at once, unless the last
#: publish was less than this long ago (seconds): during a bulk onboarding, each publish
#: re-sends the shared feature rows its new entities touched.
EARLY_PUBLISH_GAP_S = 0.05
#: A batch publishes the deltas right after its last user or item event when at least
#: this many interactions follow it (learned after the publish).
ENTITIES_FIRST_MIN = 500
#: Seconds before a deltas-topic rotation that could not write its checkpoint is tried
#: again (each attempt waits for the feature store).
ROTATE_RETRY_S = 10.0
#: Seconds between two looks at the event-period topics (:meth:`Trainer.maintain_event_topics`):
#: one metadata request for every topic.
EVENT_TOPICS_CHECK_S = 1.0


class Trainer:
    """The trainer worker: owns ``state`` (single writer) and publishes its deltas."""

    def __init__(
        self,
        settings: Settings,
        bootstrap: str,
        state: ModelState | None = None,
        sink: EntitySink | None = None,
        metrics: Metrics | None = None,
        fresh: bool = False,
        registry: CheckpointRegistry | None = None,
        catalog: EntityCatalog | None = None,
    ) -> None:
        self.settings = settings
        self.bootstrap = bootstrap
        self.topics = Topics(settings.topic_prefix)
        self.metrics = metrics or Metrics()
        self.fresh = fresh
        self.checkpoints = Checkpoints(settings, self.topics.deltas, registry)
        self.catalog = catalog
        self.state = state or ModelState(HybridModel(settings.model))
        self.tracker = DeltaTracker(self.state.model,
                                    max_bytes=part_bytes(settings.max_message_bytes))  # fmt: skip
        self.core = TrainerCore(self.state, sink or NullEntitySink(), self.tracker,
                                InputLimits.from_settings(settings),
                                settings.learn_threads)  # fmt: skip
        self._consumer: Any = None
        self._fetch_wait: FetchWaitGuard | None = None
        self._producer: Any = None
        self._task: asyncio.Task[None] | None = None
        self._deltas_offset = 0
        self._last_delta: tuple[str, int] | None = None  # (epoch, seq) just before it
        #: fingerprint of the last learned record of each input partition (kafka_clients)
        self._fingerprints: dict[tuple[str, int], int] = {}
        self._connections: dict[Any, Any] = {}
        self._saving: asyncio.Future[Any] | None = None  # a checkpoint being taken or written
        #: the asyncio runtime's delta publish and timed checkpoint, each running beside
        #: the fetch loop (waiting for the broker's acks or the disk holds no fetch back)
        self._side: dict[str, asyncio.Task[None]] = {}
        self._held: dict[tuple[str, int], deque[tuple[float, Decoded]]] = {}
        self._gaps = OffsetGaps()  # records the broker skipped over (:meth:`_note_gap`)
        self._last_checkpoint = time.monotonic()
        self._last_publish = 0.0  # monotonic time of the last delta publish
        #: monotonic time before which a caught-up trainer does not fetch (learn_interval_ms)
        self._next_fetch = 0.0
        self._onboard_pending = False  # new entities learned, their publish not started
        self._confirming: set[asyncio.Task[None]] = set()  # deltas sent inside a batch
        self._sent_entities = (-1, -1)  # (users, items) when a change set was last taken
        self._delta_bytes = 0  # published on the deltas topic since it was (re)created
        self._rotating = False  # the deltas topic is being recreated: no publish
        self._entity_tps: list[Any] = []  # fetched first (:meth:`_fetch`)
        self._fetch_error: Exception | None = None  # raised by the next :meth:`_fetch`
        self._rotate_after = 0.0  # monotonic time before which no rotation is tried
        self._rejected: list[SinkRejection] = []  # store rejections not dead-lettered yet
        self._dead: list[DeadLetter] = []  # dead letters not handed to the producer yet
        #: offsets of the last checkpoint written (what may be deleted from the broker)
        self._checkpointed: dict[tuple[str, int], int] = {}
        self._resume_at = math.inf  # wall time a paused (future) event period begins
        self._lock = asyncio.Lock()  # the steps below run one at a time
        self.running = False

    # ------------------------------------------------------------- lifecycle
    async def start(self) -> None:
        """Open the clients and run the loop as an asyncio task (the asyncio runtime)."""
        await self.open()
        self._task = asyncio.create_task(self._run(), name="trainer")

    async def open(self) -> None:
        """Restore, open the Kafka clients, assign the partitions at the checkpoint offsets."""
        from aiokafka import AIOKafkaConsumer, TopicPartition

        from streamrec.stream.kafka_clients import make_producer, partitions

        s = self.settings
        self.checkpoints.clean()
        start_offsets = self._restore()
        # deltas are split to half of max_message_bytes; a dead letter carries its original
        # (up to max_message_bytes) in base64 plus the reason: room for that, and a broker
        # that refuses it gets the letter with its original cut (stream/dead_letters.py)
        self._producer = await make_producer(self.bootstrap, linger_ms=2,
                                             max_request_size=2 * s.max_message_bytes)  # fmt: skip
        await self._producer.start()
        await self._begin_epoch()
        self._consumer = AIOKafkaConsumer(
            bootstrap_servers=self.bootstrap, enable_auto_commit=False,
            fetch_max_wait_ms=s.feed_fetch_wait_ms, auto_offset_reset="none",
            max_partition_fetch_bytes=4 * 1024 * 1024,
        )  # fmt: skip
        await self._consumer.start()
        self._fetch_wait = FetchWaitGuard(self._consumer, "trainer (events)")
        tps = []
        for topic in (self.topics.interactions, self.topics.entities):
            parts = await partitions(self._producer, topic)
            tps += [TopicPartition(topic, p) for p in sorted(parts)]
        found = await topic_partitions(self._producer)  # (listed: never created by name)
        periods = self.topics.event_periods_in(found)
        tps += [TopicPartition(t, p) for t in periods for p in sorted(found[t])]
        self._consumer.assign(tps)
        self._entity_tps = [tp for tp in tps if tp.topic == self.topics.entities]
        await self._resume(tps, start_offsets)
        if periods:  # the older ones were deleted, learned (see the module docstring)
            self.state.retire_events(self.topics, self._span(periods[0])[0])
        self._pause_future()
        self.running = True

    async def _resume(self, tps: list[Any], saved: dict[tuple[str, int], int]) -> None:
        """Seek every partition to the checkpoint's offset, unless its topic was recreated.

        The record before that offset (the last one learned) must still be there, with
        the fingerprint the checkpoint recorded; that is read with a fetch (whose answer
        the embedded broker gets right), never with ListOffsets(latest).  A partition
        whose log is shorter, or holds another record there, is a new log: it is read
        from the start.
        """
        wanted = {tp: saved[(tp.topic, tp.partition)] - 1 for tp in tps
                  if saved.get((tp.topic, tp.partition), 0) > 0}  # fmt: skip
        for tp, why in (await self._verify(wanted)).items():
            if why is None:
                self._consumer.seek(tp, wanted[tp] + 1)
                self._gaps.expect((tp.topic, tp.partition), wanted[tp] + 1)
            elif isinstance(why, int):  # retention deleted records not learned yet
                self._consumer.seek(tp, why)
                self._gaps.expect((tp.topic, tp.partition), wanted[tp] + 1)  # reported
            else:
                await self._rewind(tp, f"checkpoint offset {wanted[tp] + 1}: {why}")
        for tp in tps:
            if tp not in wanted:
                await self._consumer.seek_to_beginning(tp)
                self._gaps.expect((tp.topic, tp.partition), 0)
        self._connections = self._open_connections()

    async def _verify(self, wanted: dict[Any, int]) -> dict[Any, str | int | None]:
        """For each partition, None when the record at ``wanted[tp]`` is the one this
        trainer learned last (by its fingerprint); the log's first offset when the log now
        begins after it (retention deleted it, and maybe records not learned yet: the
        same log, read on from there); else why it is another log."""
        if not wanted:
            return {}
        found = await probe(self.bootstrap, wanted)
        out: dict[Any, str | int | None] = {}
        for tp, offset in wanted.items():
            seen = found[tp]
            expected = self._fingerprints.get((tp.topic, tp.partition))
            if seen.log_start is not None:
                out[tp] = seen.log_start
            elif not seen.in_range:
                out[tp] = f"offset {offset} is outside the log"
            elif seen.record is None:
                out[tp] = f"the log ends at {seen.highwater}"
            elif expected is not None and expected != fingerprint(
                seen.record.key, seen.record.value, seen.record.timestamp or 0
            ):
                out[tp] = f"another record sits at offset {offset}"
            else:
                out[tp] = None
        return out

    async def _out_of_range(self, positions: dict[Any, int]) -> None:
        """Fetch positions outside their logs: before the start of one (retention deleted
        records not learned yet) it reads on from the start, the records skipped over
        reported (:meth:`_note_gap`); past the end (a recreated topic), from 0."""
        try:
            starts = await self._consumer.beginning_offsets(list(positions))
        except Exception as exc:  # (a topic deleted meanwhile): taken for recreated
            log.warning("log starts of %s not known: %r", sorted(positions), exc)
            starts = {}
        for tp, offset in positions.items():
            start = starts.get(tp)
            if start is not None and start > offset:
                self._consumer.seek(tp, start)
                self._gaps.expect((tp.topic, tp.partition), offset)
            else:
                await self._rewind(tp, f"offset {offset} is past the log end")

    async def _rewind(self, tp: Any, why: str) -> None:
        """A recreated topic partition: forget its position and read the new log from 0."""
        key = (tp.topic, tp.partition)
        log.warning("%s[%s] %s: the topic was recreated; reading it from the start",
                    tp.topic, tp.partition, why)  # fmt: skip
        await self._consumer.seek_to_beginning(tp)
        self._gaps.expect(key, 0)
        self._fingerprints.pop(key, None)
        self._held.pop(key, None)
        self.state.set_applied({key: 0})
        self.metrics.inc(WORKER, "topic_recreations_total", 1,
                         "input partitions found recreated (read again from the start)")  # fmt: skip

    def _open_connections(self) -> dict[Any, Any]:
        """The consumer's broker connections (aiokafka's own table): a new object there
        means a reconnection, after which the position is checked again (a restarted
        broker may hold a new log)."""
        client = getattr(self._consumer, "_client", None)
        return dict(getattr(client, "_conns", {}) or {})

    async def _reconnected_check(self) -> set[Any]:
        """After a reconnection: the partitions found recreated (and rewound)."""
        from aiokafka import TopicPartition

        now = self._open_connections()
        changed = any(conn is not self._connections.get(k) for k, conn in now.items())
        self._connections = now
        if not changed:
            return set()
        wanted = {TopicPartition(t, p): o - 1 for (t, p), o in self.state.applied.items()
                  if o > 0 and (t, p) in self._fingerprints}  # fmt: skip
        rewound = set()
        for tp, why in (await self._verify(wanted)).items():
            if isinstance(why, str):  # else: the same log, the position stays
                await self._rewind(tp, why)
                rewound.add(tp)
        return rewound

    def _restore(self) -> dict[tuple[str, int], int]:
        """Load the newest readable checkpoint and return its offsets.

        Without one (and unless ``fresh``), a trainer with an entity catalog re-onboards
        every stored user and item with its stored features, so known entities keep
        their cold-start vectors; the topics are then read from the start.
        """
        if self.fresh:
            return {}
        restored = self.checkpoints.restore()
        if restored is not None:
            self.state.model = restored.model
            self.tracker.model = restored.model
            self.tracker.reset_bases()
            attrs = self.state.attributes
            if isinstance(attrs, CheckpointedAttributes):
                attrs.load_dict(restored.attributes)
            self._deltas_offset = restored.deltas_offset
            self._last_delta = restored.last_delta
            self._fingerprints = dict(restored.fingerprints)
            self.state.reset_applied(restored.offsets)
            self._checkpointed = dict(restored.offsets)
            log.info("trainer restored %s from %s", restored.model, restored.path)
            return restored.offsets
        if self.catalog is not None:
            users, items = rebuild(self.catalog, self.core)
            log.info("trainer rebuilt %d users and %d items from the feature store", users,
                     items)  # fmt: skip
        return {}

    async def stop(self) -> None:
        self.running = False
        await cancel(self._task)
        waiting = [*self._side.values(), *self._confirming]
        if waiting:  # let a publish or a checkpoint under way finish
            await asyncio.wait(waiting)
        with logged(log, "publishing the last deltas"):
            if self._producer is not None:
                await self.publish_deltas()
        with logged(log, "the final checkpoint"):
            await self._write_done()  # a timer's checkpoint still writing
            async with self._lock:
                await self._checkpoint_off_loop(2 * STORE_WAIT_S)
        with logged(log, "dead-lettering the store's rejections"):
            if self._producer is not None:
                await self._dead_letter_rejected()
        await close(self._consumer, self._producer)

    # ------------------------------------------------------------------ loop
    async def _run(self) -> None:
        s = self.settings
        interval = s.delta_interval_ms / 1000.0
        last_delta = time.monotonic()
        last_topics = 0.0  # at once: a restart may find periods to delete
        while self.running:
            try:
                await self.poll_once()
                now = time.monotonic()
                if self.tracker.dirty and now - last_delta >= interval:
                    last_delta = now
                    self._beside("deltas", self.publish_deltas)
                if now - last_topics >= EVENT_TOPICS_CHECK_S:
                    last_topics = now
                    self._beside("event topics", self.maintain_event_topics)
                if (s.checkpoint_interval_s > 0
                        and now - self._last_checkpoint >= s.checkpoint_interval_s):  # fmt: skip
                    self._beside("checkpoint", self.checkpoint_now)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("trainer loop error; continuing")
                await asyncio.sleep(0.5)

    def _beside(self, name: str, step: Callable[[], Awaitable[None]]) -> None:
        """Run ``step`` as a task beside the fetch loop, unless the last one still runs
        (the lock orders it with the fetches, as faust's timers are)."""
        running = self._side.get(name)
        if running is not None and not running.done():
            return

        async def guarded() -> None:
            try:
                await step()
            except Exception:
                log.exception("trainer %s failed; trying again at the next tick", name)

        self._side[name] = asyncio.create_task(guarded(), name=f"trainer {name}")

    async def poll_once(self) -> None:
        """One fetch: learn what it brought, hand the batch to the sink, dead-letter rejects;
        when it onboarded users or items, publish the deltas at once (beside the loop)."""
        from aiokafka.errors import OffsetOutOfRangeError

        s = self.settings
        # one turn of the event loop per fetch: behind a backlog a fetch returns at once
        # without suspending, and nothing else on the loop (publishes and their acks, a
        # rotation's steps, timers, /health) ran until the backlog was learned.  Caught
        # up, the turn lasts until learn_interval_ms after the last fetch; aiokafka asks
        # the broker for a partition again only once its fetched records were taken, so
        # that is one broker fetch per batch.
        await asyncio.sleep(max(0.0, self._next_fetch - time.monotonic()))
        if self.core.sink.pending() >= s.store_queue_max:  # backpressure: the store is behind
            self._rejected += self.core.sink.flush()
            await asyncio.sleep(0.05)
            return
        async with self._lock:
            if time.time() >= self._resume_at:  # an event period begins
                self._pause_future()
            wait = s.reorder_ms if s.reorder_ms and self._holding() else max(s.fetch_wait_ms, 20)
            started = time.monotonic()
            try:
                batch = await self._fetch(wait)
            except OffsetOutOfRangeError as exc:
                await self._out_of_range(exc.args[0])
                return
            caught_up = sum(len(recs) for recs in batch.values()) < s.batch_max
            self._next_fetch = started + s.learn_interval_ms / 1000 if caught_up else 0.0
            if batch:
                # records of a recreated partition fetched at the old position belong to
                # a new log: dropped, that partition is read again from 0
                rewound = await self._reconnected_check()
                batch = {tp: recs for tp, recs in batch.items() if tp not in rewound}
            model = self.state.model
            entities = (model.n_users, model.n_items)
            if batch or self._holding():
                await self._process(batch)
            # (users and items a publish inside the batch took are not news)
            onboarded = (model.n_users, model.n_items) not in (entities, self._sent_entities)
            # once per batch: the sink writes it (in the background); collect rejections
            self._rejected += self.core.sink.flush()
            if self._rejected:
                await self._dead_letter_rejected()
        self._publish_onboarded(onboarded)

    def _publish_onboarded(self, onboarded: bool) -> None:
        """New users and items reach the replicas now, not at the next delta tick: a
        publish starts once :data:`EARLY_PUBLISH_GAP_S` has passed since the last one and
        none is running; until a publish has taken them (every change set holds all that
        was learned before it), the next fetches ask again."""
        self._onboard_pending = self._onboard_pending or onboarded
        early = self._last_publish + EARLY_PUBLISH_GAP_S
        if self._onboard_pending and self._producer is not None and time.monotonic() >= early:
            self._beside("deltas", self.publish_deltas)  # (it clears the flag as it sends)

    async def checkpoint_now(self) -> None:
        """A checkpoint off the event loop: under the lock (the model does not move), wait
        for the store and copy the state; then, learning again, write the file.

        The feature store is first given up to ``STORE_WAIT_S`` to catch up while learning
        goes on, so the wait under the lock is only for the last batch's upserts.
        """
        await self._store_catch_up(STORE_WAIT_S)
        await self._write_done()
        async with self._lock:
            if self._rotating:
                return  # a rotation's checkpoint, taken before this one, is written next
            pending = await self._off_loop(self.take_checkpoint, STORE_WAIT_S)
        if pending is not None:
            await self._off_loop(self.write_checkpoint, pending)

    def _writing(self) -> bool:
        """Whether a checkpoint step is in flight in its thread."""
        return self._saving is not None and not self._saving.done()

    async def _write_done(self) -> None:
        """Wait for a checkpoint step in flight (a rotation's write), learning meanwhile:
        taking a checkpoint under the lock would wait for it there, and learning with it."""
        if self._saving is not None and self._writing():
            await asyncio.wait([self._saving])

    async def _store_catch_up(self, wait: float) -> None:
        """Wait (at most ``wait`` s, learning meanwhile) until the store's backlog is no
        more than one batch of upserts."""
        deadline = time.monotonic() + wait
        while self.core.sink.pending() > self.settings.batch_max:
            if time.monotonic() >= deadline:
                return
            await asyncio.sleep(0.05)

    async def _checkpoint_off_loop(self, wait: float = STORE_WAIT_S) -> Path | None:
        """:meth:`checkpoint` (taken and written) off the event loop."""
        path: Path | None = await self._off_loop(self.checkpoint, wait)
        return path

    async def _off_loop(self, step: Callable[..., Any], *args: Any) -> Any:
        """A checkpoint step in a thread that a cancellation cannot orphan: ``stop``
        waits for it, so two never run at once."""
        await self._write_done()
        self._saving = asyncio.ensure_future(asyncio.to_thread(step, *args))
        return await asyncio.shield(self._saving)

    async def _fetch(self, wait: int) -> dict[Any, list[Any]]:
        """Up to ``batch_max`` fetched records, the entities' first.

        aiokafka hands out what it fetched partition by partition, in the order the
        fetches came back: behind a backlog of clicks (a fetch holds up to 4 MB, tens of
        thousands of them), a new item fetched later waited for every batch of them
        before it.  Taking the entities' records first onboards it with the next batch.
        """
        if self._fetch_error is not None:  # kept by the last call, which had records
            error, self._fetch_error = self._fetch_error, None
            raise error
        limit = self.settings.batch_max
        batch = await self._consumer.getmany(*self._entity_tps, timeout_ms=0, max_records=limit)
        left = limit - sum(len(recs) for recs in batch.values())
        if left > 0:
            try:
                rest = await self._consumer.getmany(timeout_ms=0 if batch else wait,
                                                    max_records=left)  # fmt: skip
            except Exception as exc:
                if not batch:
                    raise
                # the entities' records were drained: learn them first, and raise this
                # at the next fetch (what aiokafka does within one call)
                self._fetch_error = exc
                return batch
            for tp, recs in rest.items():
                batch[tp] = batch.get(tp, []) + recs
        if self._fetch_wait is not None:
            self._fetch_wait.after_poll(batch)
        return batch

    def _note_gap(self, key: tuple[str, int], first: int, last: int) -> None:
        """Report the records, if any, between this partition's position and the run of
        records ``first`` to ``last`` fetched there: the broker no longer has them, and
        they are not learned."""
        gap = self._gaps.seen(key, first, last)
        if gap is None:
            return
        n = gap[1] - gap[0] + 1
        log.error("%s[%s]: offsets %d to %d are not at the broker (deleted by retention, or "
                  "lost by the broker): %d records not learned", key[0], key[1], gap[0], gap[1],
                  n)  # fmt: skip
        self.metrics.inc(WORKER, "records_missing_total", n,
                         "input records the broker skipped over (not at the broker when read)")  # fmt: skip

    def _holding(self) -> bool:
        return any(self._held.values())

    def _arrange(self, batch: dict[Any, list[Any]]) -> list[Decoded]:
        """The fetched records decoded (each partition as one batch) and in the order to
        apply them: what :meth:`_release` gives.  Without a hold-back window, and with
        every partition in producer-time order, that order is one stable sort (no
        queues); otherwise the records go through the per-partition queues."""
        now = time.monotonic()
        streams: list[tuple[tuple[str, int], list[Decoded]]] = []
        for tp, recs in batch.items():
            key = (tp.topic, tp.partition)
            self._held.setdefault(key, deque())
            if recs:
                self._note_gap(key, recs[0].offset, recs[-1].offset)
            streams.append((key, decode_records(Record.partition_of(tp.topic, tp.partition, recs))))
        if not self.settings.reorder_ms and not self._holding():
            rank = {key: k for k, key in enumerate(self._held)}
            ordered = [s for _, s in sorted(streams, key=lambda ks: rank[ks[0]])]
            if len(ordered) == 1:
                return ordered[0]
            merged = merge_by_time(ordered)
            if merged is not None:
                return merged
        for key, decoded in streams:
            self._held[key].extend((now, d) for d in decoded)
        return self._release(time.monotonic())

    def _release(self, now: float) -> list[Decoded]:
        """Held records, in producer-time order, that waited at least ``reorder_ms``.

        Each partition is a FIFO (its order is kept); the next record is always the head
        with the smallest producer time, and releasing stops at the first head that has
        not waited long enough: a record delayed on another partition by less than the
        window still lands in order (bounded out-of-orderness, as in stream processors).
        """
        window = self.settings.reorder_ms / 1000.0
        out: list[Decoded] = []
        queues = [q for q in self._held.values() if q]
        while queues:
            head = min(queues, key=lambda q: q[0][1].ts)
            arrival, record = head[0]
            if now - arrival < window:
                break
            head.popleft()
            out.append(record)
            if not head:
                queues = [q for q in queues if q]
        return out

    async def _process(self, batch: dict[Any, list[Any]]) -> None:
        """Learn a fetched batch.  When it onboards or re-features users or items ahead
        of many interactions, the deltas go out once those are applied, then the
        interactions after them are learned (:meth:`_entities_cut`)."""
        t0 = time.perf_counter()
        records = self._arrange(batch)
        if not records:
            return
        cut = self._entities_cut(records)
        dead = self._apply(records[:cut]) if cut else []
        if cut:
            try:
                self._beside_confirm(await self._send_deltas())
            except Exception:  # the rest of the batch is learned all the same
                log.exception("trainer deltas failed; the checkpoint written holds them")
        dead += self._apply(records[cut:])
        m = self.metrics
        m.inc(WORKER, "trainer_records_total", len(records), "records consumed by the trainer")
        m.inc(WORKER, "trainer_batches_total", 1, "batches learned")
        m.set(WORKER, "model_version", self.state.model.version, "model version")
        m.set(WORKER, "model_events", self.state.model.n_events, "events learned")
        m.set(WORKER, "model_users", self.state.model.n_users, "users")
        m.set(WORKER, "model_items", self.state.model.n_items, "items")
        m.inc(WORKER, "trainer_seconds_total", time.perf_counter() - t0, "time spent learning")
        m.set(WORKER, "store_pending_upserts", self.core.sink.pending(),
              "entity upserts not yet written to the feature store")  # fmt: skip
        if dead:
            self._dead += dead
            await self._send_dead_letters()

    def _apply(self, records: list[Decoded]) -> list[DeadLetter]:
        """Apply ``records`` (in order) and advance the applied offsets past them."""
        if not records:
            return []
        dead = self.core.apply(records)
        last: dict[tuple[str, int], Record] = {}
        for d in records:
            last[(d.record.topic, d.record.partition)] = d.record
        for key, r in last.items():
            self._fingerprints[key] = fingerprint(r.key, r.value, r.timestamp_ms)
        self.state.advance({key: r.offset + 1 for key, r in last.items()})
        return dead

    def _entities_cut(self, records: list[Decoded]) -> int:
        """Where to publish inside the batch: after its last user or item event, when at
        least :data:`ENTITIES_FIRST_MIN` interactions follow it and a publish may go now
        (0: learn the batch whole).  Behind a backlog (a rotation's pause, a burst) a
        batch holds thousands of clicks: hundreds of milliseconds of learning."""
        if self._producer is None or self._rotating:
            return 0
        if time.monotonic() < self._last_publish + EARLY_PUBLISH_GAP_S:
            return 0
        for k in range(len(records) - 1, -1, -1):
            if not isinstance(records[k].message, Interaction | Rejected):
                return k + 1 if len(records) - (k + 1) >= ENTITIES_FIRST_MIN else 0
        return 0

    def _beside_confirm(self, sent: list[tuple[Any, Delta]]) -> None:
        """Await the acknowledgements of deltas sent under the lock, beside the loop."""

        async def confirm() -> None:
            try:
                await self._confirm_deltas(sent, locked=False)
            except Exception:
                log.exception("trainer deltas failed; the checkpoint written holds them")

        task = asyncio.create_task(confirm(), name="trainer deltas confirm")
        self._confirming.add(task)
        task.add_done_callback(self._confirming.discard)

    async def publish_deltas(self) -> None:
        """Publish the coalesced deltas of everything learned since the last call (if any).

        The change set is taken and handed to the producer under the lock (consistent
        with the applied offsets it carries); the broker's acknowledgements are awaited
        outside it, so learning goes on meanwhile (the deltas topic has one partition:
        the producer keeps their order).
        """
        async with self._lock:
            if not self.tracker.dirty:
                self._onboard_pending = False  # sent by another publish meanwhile
                return
            if self._rotating:
                return
            sent = await self._send_deltas()
        await self._confirm_deltas(sent, locked=False)
        limit = self.settings.deltas_rotate_mb * 2**20
        if (limit and self._delta_bytes >= limit and time.monotonic() >= self._rotate_after
                and self.running):  # fmt: skip
            # beside this tick: the deltas go on while the rotation waits for the store
            self._beside("rotate", self.rotate_deltas)

    async def rotate_deltas(self) -> None:
        """Recreate the deltas topic empty, so the broker stops holding old deltas (the
        embedded broker keeps every record in memory and applies no retention).

        Under the lock: the deltas so far are published and confirmed, and a checkpoint
        is taken that says the deltas after it start at offset 0 (same epoch, next seq).
        Then, learning again but publishing no delta, the topic is deleted and created
        again; the deltas flow into the new topic while the checkpoint is written (it
        becomes the newest, what replicas look at, once written).  A replica that had
        applied every delta reads on from the new topic's start (its old position is past
        the end); one that was behind finds a gap in ``seq`` and resyncs from that
        checkpoint once it is written, reading it off its serving loop.  If the
        checkpoint cannot be taken (the store is behind or down), the topic is kept and
        the rotation tried again after :data:`ROTATE_RETRY_S` seconds; while another
        checkpoint is being written, a later publish rotates.  :meth:`publish_deltas`
        starts it as a task of its own, so the deltas go on while it waits for the
        store's backlog (before it takes the lock).
        """
        # times: begun, locked (no delta from here on), taken, recreated, written
        steps = [time.monotonic()]
        if self._writing():
            return  # a checkpoint is being written: a later publish rotates (deltas flow)
        await self._store_catch_up(STORE_WAIT_S)  # learning meanwhile, as checkpoint_now
        async with self._lock:
            if self._rotating or self._delta_bytes < self.settings.deltas_rotate_mb * 2**20:
                return  # another call rotated it meanwhile
            steps.append(time.monotonic())
            await self._publish_deltas()
            kept = self._deltas_offset, self._last_delta
            self._deltas_offset, self._last_delta = 0, None
            pending = await self._off_loop(self.take_checkpoint, STORE_WAIT_S)
            if pending is None:
                self._deltas_offset, self._last_delta = kept
                self._rotate_after = time.monotonic() + ROTATE_RETRY_S
                return
            self._rotating = True  # no delta until the topic is new
            steps.append(time.monotonic())
        published, self._delta_bytes = self._delta_bytes, 0
        rotated = True
        try:  # a stop meanwhile must not leave the topic deleted: shielded
            # off this loop: learning holds it for a batch at a time, which each of the
            # admin clients' round trips would wait for (seconds behind a backlog)
            await asyncio.shield(recreate_topic_in_thread(self.bootstrap, self.topics.deltas))
        except TopicError as exc:  # the checkpoint's offset 0 still holds: replicas
            log.error("deltas topic not rotated: %s", exc)  # skip the older deltas
            rotated = False
        finally:
            self._rotating = False
        steps.append(time.monotonic())
        written = await self._off_loop(self.write_checkpoint, pending)
        steps.append(time.monotonic())
        if not rotated:
            return
        lock, take, recreate, write = (b - a for a, b in itertools.pairwise(steps))
        log.info("deltas topic %s recreated empty after %.0f MB of deltas; no delta for "
                 "%.2f s (checkpoint taken %.2f s, topic recreated %.2f s), after %.2f s for "
                 "the store's backlog and the lock; checkpoint %s in %.2f s after that",
                 self.topics.deltas, published / 2**20, take + recreate, take, recreate,
                 lock, "written" if written else "postponed", write)  # fmt: skip
        self.metrics.inc(WORKER, "deltas_rotations_total", 1,
                         "deltas topic recreated empty (deltas_rotate_mb)")  # fmt: skip

    # ----------------------------------------------------- event-period topics
    def _span(self, topic: str) -> tuple[int, int]:
        span = self.topics.event_period_span(topic)
        assert span is not None
        return span

    def _assigned_periods(self) -> list[str]:
        """The event-period topics read now, oldest first."""
        return self.topics.event_periods_in({tp.topic for tp in self._consumer.assignment()})

    async def maintain_event_topics(self) -> None:
        """Read the event-period topics that appeared; delete the oldest ones that are done
        (see the module docstring)."""
        from aiokafka import TopicPartition

        if self._consumer is None or self._producer is None:
            return
        found = await topic_partitions(self._producer)
        periods = self.topics.event_periods_in(found)
        async with self._lock:
            assigned = set(self._consumer.assignment())
            new = {TopicPartition(t, p) for t in periods for p in found[t]} - assigned
            if new:
                await self._reassign(assigned | new, {})
                log.info("trainer reads event topics %s", sorted({tp.topic for tp in new}))
        for topic in self._assigned_periods():
            if not await self._retire(topic):
                break
        self.metrics.set(WORKER, "event_topics", len(self._assigned_periods()),
                         "event-period topics the trainer reads")  # fmt: skip

    async def _reassign(self, wanted: set[Any], positions: dict[Any, int]) -> None:
        """Read the partitions ``wanted`` (under the lock): those read already go on from
        their positions, those in ``positions`` from there, the others from 0."""
        current = set(self._consumer.assignment())
        kept = {tp: await self._consumer.position(tp) for tp in current & wanted}
        self._consumer.assign(sorted(wanted))
        for tp in wanted:
            offset = positions.get(tp, kept.get(tp, 0))
            self._consumer.seek(tp, offset)
            self._gaps.expect((tp.topic, tp.partition), offset)
        self._pause_future()

    def _pause_future(self) -> None:
        """Pause the event periods that have not begun (their producers' clocks are not
        ahead, so reading them would cost the broker fetches of empty partitions) and
        resume those that have; note when the next one begins."""
        now = time.time()
        periods = [(tp, self._span(tp.topic)[0]) for tp in self._consumer.assignment()
                   if self.topics.event_period_span(tp.topic) is not None]  # fmt: skip
        future = [tp for tp, start in periods if start > now]
        begun = [tp for tp, start in periods if start <= now]
        if future:
            self._consumer.pause(*future)
        if begun:
            self._consumer.resume(*begun)
        self._resume_at = min((start for _, start in periods if start > now), default=math.inf)

    def _ends_if_learned(self, topic: str) -> dict[Any, int] | None:
        """The offsets learned to in each partition of ``topic`` if, as far as the last
        fetches tell, they are its ends and no record of it is held back; else None.
        (The embedded broker leaves empty partitions out of its fetch answers, so a
        partition may have no known end: the probe before the deletion checks them all.)"""
        ends = {}
        for tp in self._consumer.assignment():
            if tp.topic != topic:
                continue
            key = (tp.topic, tp.partition)
            learned = self.state.applied.get(key, 0)
            end = self._consumer.highwater(tp)
            if (end is not None and learned < end) or self._held.get(key):
                return None
            ends[tp] = learned
        return ends

    async def _retire(self, topic: str) -> bool:
        """Delete event-period topic ``topic`` if it is done; whether it was."""
        start, end = self._span(topic)
        if time.time() < end + (end - start):
            return False
        ends = self._ends_if_learned(topic)
        if ends is None:
            return False
        if any(self._checkpointed.get((tp.topic, tp.partition), 0) < e for tp, e in ends.items()):
            if self.running:
                self._beside("checkpoint", self.checkpoint_now)
            return False
        async with self._lock:  # out of the assignment first: never asked for by name again
            ends = self._ends_if_learned(topic)
            if ends is None:
                return False
            await self._reassign(set(self._consumer.assignment()) - set(ends), {})
        found = await probe(self.bootstrap, {tp: max(0, e - 1) for tp, e in ends.items()})
        late = [tp for tp, e in ends.items() if found[tp].highwater != e]
        if not late:
            try:
                await delete_topic_in_thread(self.bootstrap, topic)
            except TopicError as exc:
                log.error("event topic %s not deleted: %s", topic, exc)
                late = list(ends)
        if late:  # read it again from where it was learned to
            async with self._lock:
                await self._reassign(set(self._consumer.assignment()) | set(ends), ends)
            return False
        for tp in ends:
            key = (tp.topic, tp.partition)
            self.state.applied.pop(key, None)
            self._fingerprints.pop(key, None)
            self._held.pop(key, None)
        self.state.retire_events(self.topics, end)
        log.info("event topic %s deleted: %d records, learned and checkpointed", topic,
                 sum(ends.values()))  # fmt: skip
        self.metrics.inc(WORKER, "event_topics_deleted_total", 1,
                         "event-period topics deleted once learned and checkpointed")  # fmt: skip
        return True

    async def _begin_epoch(self) -> None:
        """Start a new trainer incarnation: its first deltas, then a checkpoint of it.

        Replicas apply a delta only when it is the next ``seq`` of the epoch they hold
        (duplicates are skipped); on a new epoch or a gap they load the newest checkpoint
        of that epoch and follow the deltas from there.  So a change learned by a trainer
        that died before its next checkpoint never stays in a replica: the restarted
        trainer's epoch begins at the checkpoint it restored.
        """
        self.tracker.epoch = uuid.uuid4().hex
        self.tracker.seq = 0
        await self._publish_deltas()
        await self._checkpoint_off_loop()

    async def _publish_deltas(self) -> None:
        """Send the deltas and wait for the broker (the caller holds the lock)."""
        await self._confirm_deltas(await self._send_deltas(), locked=True)

    async def _send_deltas(self) -> list[tuple[Any, Delta]]:
        """Take the change set and hand its messages to the producer (under the lock)."""
        self._last_publish = time.monotonic()
        self._onboard_pending = False  # every entity learned so far is in this change set
        self._sent_entities = (self.state.model.n_users, self.state.model.n_items)
        offsets = [Watermark(t, p, o) for (t, p), o in sorted(self.state.applied.items())]
        messages = self.tracker.build(offsets, self.state.events_retired_before)
        try:
            sent = []
            for d in messages:
                value = encode_binary(d)
                self._delta_bytes += len(value)
                sent.append((await self._producer.send(self.topics.deltas, value,
                                                       key=b"trainer"), d))  # fmt: skip
            return sent
        except Exception:
            await self._delta_failed(locked=True)
            raise

    async def _confirm_deltas(self, sent: list[tuple[Any, Delta]], locked: bool) -> None:
        try:
            for fut, delta in sent:
                md = await fut  # in send order (one partition), across overlapping calls too
                self._deltas_offset = md.offset + 1
                self._last_delta = (delta.epoch, delta.seq)
        except Exception:
            await self._delta_failed(locked)
            raise
        self.metrics.inc(WORKER, "deltas_published_total", len(sent), "delta messages")

    async def _delta_failed(self, locked: bool) -> None:
        # the change set is gone from the model's log: replicas will see a gap in ``seq``
        # and wait for a checkpoint that holds it; write one now
        self.metrics.inc(WORKER, "delta_send_failures_total", 1, "delta publishes that failed")
        if locked:
            await self._checkpoint_off_loop()
        else:
            async with self._lock:
                await self._checkpoint_off_loop()

    async def _dead_letter_rejected(self) -> None:
        """Dead-letter the messages whose upserts the feature store rejected."""
        rejected, self._rejected = self._rejected, []
        dead = []
        for source, reason in rejected:
            if source is None:
                log.error("feature store rejected an implicit upsert: %s", reason)
                continue
            dead.append(dead_letter(reason, source, WORKER))
        self._dead += dead
        await self._send_dead_letters()

    async def _send_dead_letters(self) -> None:
        """Hand the pending dead letters to the producer, up to 256 per round trip.

        Letters leave the pending list only once the broker has them, so a stop that
        cancels the loop mid-send (on Kafka a first send to a topic waits for its
        metadata) loses none: ``stop`` sends what is left (a chunk cut short may then
        be sent twice).
        """
        while self._dead:
            chunk = self._dead[:256]
            n = await send_dead_letters(self._producer, self.topics.dead_letters, chunk)
            del self._dead[: len(chunk)]
            self.metrics.inc(WORKER, "dead_letters_total", n,
                             "messages sent to the dead-letter topic")  # fmt: skip

    def lag(self) -> int | None:
        """Records in the input topics not learned yet: the fetch high watermarks (right on
        the embedded broker, unlike ListOffsets) minus the applied offsets.  A partition
        no fetch has answered for is not counted (the embedded broker leaves empty ones
        out of its answers: the plain interactions topic under event periods); None
        before any answer."""
        if self._consumer is None:
            return None
        total, known = 0, False
        for tp in self._consumer.assignment():
            end = self._consumer.highwater(tp)
            if end is not None:
                known = True
                total += max(0, end - self.state.applied.get((tp.topic, tp.partition), 0))
        return total if known else None

    def health(self) -> dict[str, Any]:
        """What ``/health`` shows of the trainer, and what is wrong (``problems``)."""
        s = self.settings
        lag = self.lag()
        backlog = self.core.sink.pending()
        age = time.monotonic() - self._last_checkpoint
        out: dict[str, Any] = {"lag": lag, "store_backlog": backlog,
                               "checkpoint_age_s": round(age, 1),
                               "records_missing": self._gaps.missing, "problems": []}  # fmt: skip
        if lag is not None and lag > s.health_max_lag:
            out["problems"].append(f"trainer lag {lag} > {s.health_max_lag} records")
        if backlog > s.health_max_store_backlog:
            out["problems"].append(f"store backlog {backlog} > {s.health_max_store_backlog}")
        max_age = s.health_max_checkpoint_age_s or 3 * s.checkpoint_interval_s + 60
        if s.checkpoint_interval_s > 0 and age > max_age:
            out["problems"].append(f"last checkpoint {age:.0f} s ago > {max_age:.0f} s")
        if not self.running:
            out["problems"].append("trainer not running")
        return out

    def checkpoint(self, wait: float = STORE_WAIT_S) -> Path | None:
        """Write the model, consumed offsets and item attributes (see :class:`Checkpoints`):
        :meth:`take_checkpoint` then :meth:`write_checkpoint`."""
        pending = self.take_checkpoint(wait)
        return None if pending is None else self.write_checkpoint(pending)

    def take_checkpoint(self, wait: float = STORE_WAIT_S) -> PendingCheckpoint | None:
        """A copy of the model, consumed offsets and item attributes as of now (the
        caller holds the lock), to write with :meth:`write_checkpoint`.

        With a feature store: first wait (up to ``wait`` s) until the store holds every
        entity upsert so far, so a checkpoint's offsets never run ahead of the store (if
        it does not catch up, the checkpoint is postponed: None).
        """
        self._rejected += self.core.sink.flush(wait=wait)
        backlog = self.core.sink.pending()
        if backlog:
            log.error("checkpoint postponed: the feature store has not written %d upserts yet",
                      backlog)  # fmt: skip
            self._postpone_checkpoint()
            return None
        attrs = self.state.attributes
        saved = attrs.frozen() if isinstance(attrs, CheckpointedAttributes) else None
        return self.checkpoints.prepare(self.state.model, self.state.applied,
                                        self._deltas_offset, saved, self.tracker.epoch,
                                        self.tracker.seq, self._fingerprints,
                                        self._last_delta)  # fmt: skip

    def write_checkpoint(self, pending: PendingCheckpoint) -> Path | None:
        """Write and register a checkpoint taken by :meth:`take_checkpoint` (None:
        postponed, the registry is down)."""
        try:
            path = pending.write()
        except StoreError as exc:  # the registry (the feature store) is down
            log.error("checkpoint postponed: %s", exc)
            self._postpone_checkpoint()
            return None
        self._last_checkpoint = time.monotonic()
        self._checkpointed = {(t, int(p)): o for t, parts in pending.offsets.items()
                              for p, o in parts.items()}  # fmt: skip
        self.metrics.inc(WORKER, "checkpoints_total", 1, "checkpoints written")
        return path

    def _postpone_checkpoint(self) -> None:
        """Try the checkpoint again in a second, not on every loop iteration."""
        interval = self.settings.checkpoint_interval_s
        self._last_checkpoint = time.monotonic() - max(0.0, interval - 1.0)
