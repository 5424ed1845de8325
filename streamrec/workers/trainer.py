"""The trainer: the single writer of the model.

It reads interactions and entity events in batches (aiokafka ``getmany``), merges the
partitions of both topics by producer time (each partition keeps its own order), decodes
the whole batch, and learns runs of interactions with one ``learn_rows`` call each
(entity events split the runs so onboarding happens in stream order).  Bad records go
to the dead-letter topic.  Every ``delta_interval_ms`` it publishes the coalesced
embedding deltas; every ``checkpoint_interval_s`` (and at stop) it writes a checkpoint
with the consumed offsets.

With a feature store (``store=``), every checkpoint is a new versioned file registered
in the store's checkpoint registry, and a start-up without any checkpoint rebuilds the
feature vocabularies of every stored user and item (see :meth:`Trainer._restore`).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from pathlib import Path
from typing import TYPE_CHECKING, Any

from streamrec.errors import StreamrecError
from streamrec.model import HybridModel, load, save
from streamrec.settings import Settings
from streamrec.stream.codec import dead_letter, encode, encode_binary
from streamrec.stream.schemas import (
    DeadLetter,
    ItemMeta,
    Watermark,
)
from streamrec.stream.topics import Topics
from streamrec.workers.checkpoints import (
    KEEP_CHECKPOINTS,
    checkpoint_extra,
    checkpoint_path,
    link_newest,
    next_file_version,
    versioned_checkpoint_path,
)
from streamrec.workers.delta import DeltaTracker
from streamrec.workers.lifecycle import cancel, close, logged
from streamrec.workers.metrics import Metrics
from streamrec.workers.seams import (
    CheckpointedAttributes,
    EntitySink,
    NullEntitySink,
    SinkRejection,
)
from streamrec.workers.state import ModelState
from streamrec.workers.training import WORKER, Decoded, TrainerCore, decode_record

if TYPE_CHECKING:
    from streamrec.store import FeatureStore

log = logging.getLogger(__name__)
#: Longest the trainer waits for the feature store before a checkpoint (seconds).
STORE_WAIT_S = 5.0


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
        store: FeatureStore | None = None,
    ) -> None:
        self.settings = settings
        self.bootstrap = bootstrap
        self.topics = Topics(settings.topic_prefix)
        self.metrics = metrics or Metrics()
        self.fresh = fresh
        self.store = store
        self.state = state or ModelState(HybridModel(settings.model))
        self.tracker = DeltaTracker(self.state.model)
        self.core = TrainerCore(self.state, sink or NullEntitySink(), self.tracker)
        self._consumer: Any = None
        self._producer: Any = None
        self._task: asyncio.Task[None] | None = None
        self._deltas_offset = 0
        self._held: dict[tuple[str, int], deque[tuple[float, Decoded]]] = {}
        self._last_checkpoint = time.monotonic()
        self._rejected: list[SinkRejection] = []  # store rejections not dead-lettered yet
        self.running = False

    # ------------------------------------------------------------- lifecycle
    async def start(self) -> None:
        from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

        s = self.settings
        start_offsets = self._restore()
        self._producer = AIOKafkaProducer(bootstrap_servers=self.bootstrap, linger_ms=2,
                                          max_request_size=4 * 1024 * 1024)  # fmt: skip
        await self._producer.start()
        self._consumer = AIOKafkaConsumer(
            bootstrap_servers=self.bootstrap, enable_auto_commit=False,
            fetch_max_wait_ms=s.fetch_wait_ms, auto_offset_reset="earliest",
            max_partition_fetch_bytes=4 * 1024 * 1024,
        )  # fmt: skip
        await self._consumer.start()
        tps = []
        for topic in (self.topics.interactions, self.topics.entities):
            parts = self._consumer.partitions_for_topic(topic) or set()
            if not parts:
                await self._consumer._client.force_metadata_update()
                parts = self._consumer.partitions_for_topic(topic) or set()
            tps += [TopicPartition(topic, p) for p in sorted(parts)]
        self._consumer.assign(tps)
        ends = await self._consumer.end_offsets(tps)
        for tp in tps:
            saved = start_offsets.get((tp.topic, tp.partition))
            if saved is not None and saved <= ends[tp]:
                self._consumer.seek(tp, saved)
            else:
                if saved is not None:
                    log.warning(
                        "checkpoint offset %s of %s is past the log end %s: the topic "
                        "was recreated; reading it from the start",
                        saved,
                        tp,
                        ends[tp],
                    )
                await self._consumer.seek_to_beginning(tp)
        self.running = True
        self._task = asyncio.create_task(self._run(), name="trainer")

    def _checkpoint_candidates(self) -> list[Path]:
        """Registered checkpoints (newest first), then the default path."""
        paths = []
        if self.store is not None:
            paths = [Path(c.path) for c in self.store.list_checkpoints(limit=KEEP_CHECKPOINTS + 2)]
        return [*paths, checkpoint_path(self.settings)]

    def _restore(self) -> dict[tuple[str, int], int]:
        """Load the newest readable checkpoint and return its offsets.

        Without one (and unless ``fresh``), a store-backed trainer re-onboards every
        stored user and item with its stored features, so known entities keep their
        cold-start vectors; the topics are then read from the start.
        """
        if self.fresh:
            return {}
        for path in self._checkpoint_candidates():
            if not path.exists():
                continue
            try:
                model = load(path)
                extra = checkpoint_extra(path)
            except StreamrecError as exc:
                log.error("ignoring checkpoint %s: %s", path, exc)
                continue
            return self._restored(model, extra, path)
        if self.store is not None:
            self._rebuild_from_store(self.store)
        return {}

    def _rebuild_from_store(self, store: FeatureStore) -> None:
        m, tracker = self.state.model, self.tracker
        for user_id, features in store.iter_entity_features("user"):
            m.add_user(user_id, features)
        _, attributes = store.item_attributes()
        known: dict[str, Any] = {}
        for item_id, features in store.iter_entity_features("item"):
            m.add_item(item_id, features)
            a = attributes.get(item_id)
            meta: dict[str, str | int | float | bool | None] = {}
            if a is not None:
                meta["available"] = a.available
            if a is not None and a.category is not None:
                meta["category"] = a.category
            created = a.created_at.timestamp() if a is not None and a.created_at else time.time()
            known[item_id] = {"attributes": meta, "created": created}
            tracker.item_meta(item_id, ItemMeta(meta, created))  # for the replicas
        attrs = self.state.attributes
        if isinstance(attrs, CheckpointedAttributes):
            attrs.load_dict(known)  # as from a checkpoint: the store's values are no news
        else:
            for item_id, entry in known.items():
                attrs.update(item_id, entry["attributes"], entry["created"])
        log.info("trainer rebuilt %d users and %d items from the feature store", m.n_users,
                 m.n_items)  # fmt: skip

    def _restored(
        self, model: HybridModel, extra: dict[str, Any], path: Path
    ) -> dict[tuple[str, int], int]:
        self.state.model = model
        self.core.state = self.state
        self.tracker.model = model
        self.tracker.reset_bases()
        attrs = self.state.attributes
        if isinstance(attrs, CheckpointedAttributes):
            attrs.load_dict(extra.get("attributes", {}))
        offsets = {(t, int(p)): int(o) for t, ps in extra.get("offsets", {}).items()
                   for p, o in ps.items()}  # fmt: skip
        log.info("trainer restored %s from %s", model, path)
        return offsets

    async def stop(self) -> None:
        self.running = False
        await cancel(self._task)
        with logged(log, "publishing the last deltas"):
            if self._producer is not None and self.tracker.dirty:
                await self._publish_deltas()
        with logged(log, "the final checkpoint"):
            self.checkpoint(wait=2 * STORE_WAIT_S)
        with logged(log, "dead-lettering the store's rejections"):
            if self._producer is not None:
                await self._dead_letter_rejected()
        await close(self._consumer, self._producer)

    # ------------------------------------------------------------------ loop
    async def _run(self) -> None:
        s = self.settings
        interval = s.delta_interval_ms / 1000.0
        last_delta = time.monotonic()
        while self.running:
            try:
                wait = (
                    s.reorder_ms if s.reorder_ms and self._holding() else max(s.fetch_wait_ms, 20)
                )
                batch = await self._consumer.getmany(timeout_ms=wait, max_records=s.batch_max)
                if batch or self._holding():
                    await self._process(batch)
                # once per batch: the sink writes it (in the background); collect rejections
                self._rejected += self.core.sink.flush()
                if self._rejected:
                    await self._dead_letter_rejected()
                now = time.monotonic()
                if self.tracker.dirty and now - last_delta >= interval:
                    last_delta = now
                    await self._publish_deltas()
                if (s.checkpoint_interval_s > 0
                        and now - self._last_checkpoint >= s.checkpoint_interval_s):  # fmt: skip
                    # off the loop: waits for the store, then writes the file; the model
                    # does not move meanwhile (this task is the only writer)
                    await asyncio.to_thread(self.checkpoint)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("trainer loop error; continuing")
                await asyncio.sleep(0.5)

    def _holding(self) -> bool:
        return any(self._held.values())

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
            head = min(queues, key=lambda q: q[0][1][0])
            arrival, record = head[0]
            if now - arrival < window:
                break
            head.popleft()
            out.append(record)
            if not head:
                queues = [q for q in queues if q]
        return out

    async def _process(self, batch: dict[Any, list[Any]]) -> None:
        t0 = time.perf_counter()
        now = time.monotonic()
        for tp, recs in batch.items():
            queue = self._held.setdefault((tp.topic, tp.partition), deque())
            queue.extend((now, decode_record(tp.topic, tp.partition, r)) for r in recs)
        records = self._release(time.monotonic())
        if not records:
            return
        dead = self.core.apply(records)
        offsets: dict[tuple[str, int], int] = {}
        for _, topic, partition, rec, _ in records:
            offsets[(topic, partition)] = rec.offset + 1
        self.state.advance(offsets)
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
            await send_dead_letters(self._producer, self.topics, dead, self.metrics, WORKER)

    async def _publish_deltas(self) -> None:
        offsets = [Watermark(t, p, o) for (t, p), o in sorted(self.state.applied.items())]
        messages = self.tracker.build(offsets)
        futures = [await self._producer.send(self.topics.deltas, encode_binary(d), key=b"trainer")
                   for d in messages]  # fmt: skip
        for fut in futures:
            md = await fut
            self._deltas_offset = md.offset + 1
        self.metrics.inc(WORKER, "deltas_published_total", len(messages), "delta messages")

    async def _dead_letter_rejected(self) -> None:
        """Dead-letter the messages whose upserts the feature store rejected."""
        rejected, self._rejected = self._rejected, []
        dead = []
        for source, reason in rejected:
            if source is None:
                log.error("feature store rejected an implicit upsert: %s", reason)
                continue
            topic, partition, rec = source
            dead.append(dead_letter(reason, topic=topic, partition=partition, offset=rec.offset,
                                    worker=WORKER, value=rec.value, key=rec.key))  # fmt: skip
        if dead:
            await send_dead_letters(self._producer, self.topics, dead, self.metrics, WORKER)

    def checkpoint(self, wait: float = STORE_WAIT_S) -> Path | None:
        """Write the model, consumed offsets and item attributes (atomic rename).

        With a feature store: first wait (up to ``wait`` s) until the store holds every
        entity upsert so far, so a checkpoint's offsets never run ahead of the store (if
        it does not catch up, the checkpoint is postponed: None); then write a new
        versioned file, point :func:`checkpoint_path` at it and register it.
        """
        self._rejected += self.core.sink.flush(wait=wait)
        backlog = self.core.sink.pending()
        if backlog:
            log.error("checkpoint postponed: the feature store has not written %d upserts yet",
                      backlog)  # fmt: skip
            return None
        m = self.state.model
        offsets: dict[str, dict[str, int]] = {}
        for (t, p), o in self.state.applied.items():
            offsets.setdefault(t, {})[str(p)] = o
        extra: dict[str, Any] = {"offsets": offsets,
                                 "deltas": {self.topics.deltas: self._deltas_offset}}  # fmt: skip
        attrs = self.state.attributes
        if isinstance(attrs, CheckpointedAttributes):
            extra["attributes"] = attrs.to_dict()
        if self.store is None:
            path = save(m, checkpoint_path(self.settings), extra=extra)
        else:
            # next version of the registry, never overwriting a file of another store's
            latest = self.store.latest_checkpoint()
            version = next_file_version(self.settings, 0 if latest is None else latest.version)
            path = save(m, versioned_checkpoint_path(self.settings, version), extra=extra)
            metrics = {"model_version": m.version, "events": m.n_events, "users": m.n_users,
                       "items": m.n_items, "deltas_offset": self._deltas_offset}  # fmt: skip
            self.store.register_checkpoint(str(path.resolve()), offsets, metrics, version)
            link_newest(self.settings, path)
        self._last_checkpoint = time.monotonic()
        self.metrics.inc(WORKER, "checkpoints_total", 1, "checkpoints written")
        return path


async def send_dead_letters(
    producer: Any, topics: Topics, dead: list[DeadLetter], metrics: Metrics, worker: str
) -> None:
    for d in dead:
        log.warning("dead letter from %s[%s]@%s: %s", d.source_topic, d.source_partition,
                    d.source_offset, d.reason)  # fmt: skip
        await producer.send(topics.dead_letters, encode(d), key=d.key)
    metrics.inc(worker, "dead_letters_total", len(dead), "messages sent to the dead-letter topic")
