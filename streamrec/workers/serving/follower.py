"""A replica of the trainer's model for recommenders in other processes.

Bootstraps from the trainer's latest checkpoint (when the data directory is shared),
then follows the deltas topic from the offset recorded in that checkpoint.  The
replica's ``applied`` offsets come from the deltas, so requests can wait for it too.

Every delta names its trainer incarnation (``epoch``) and its number in it (``seq``).
The replica applies a delta only when it is the next one of the epoch it holds, and
skips the ones it already applied, so no change is applied twice.  A gap (a lost
delta) or a new epoch (a restarted trainer, which began again from its last
checkpoint) makes it load the newest checkpoint of that epoch and follow the deltas
from there, so no change is missed and none learned by a dead trainer after its last
checkpoint stays behind.  Until that checkpoint exists (the trainer writes one right
after a new epoch's first delta and right after a failed publish) it reads the delta
again every :data:`RETRY_S` seconds.  Without a shared data directory there is no
checkpoint to go by: the replica then follows a new epoch from its first delta after
:data:`GIVE_UP_S` seconds, and says so in the log.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from streamrec.errors import ReplicaError
from streamrec.model import HybridModel
from streamrec.settings import Settings
from streamrec.stream.codec import Rejected, decode_binary
from streamrec.stream.fetch_wait import FetchWaitGuard
from streamrec.stream.kafka_clients import probe
from streamrec.stream.recreated import PastTheEnd
from streamrec.stream.schemas import Delta
from streamrec.stream.topics import Topics
from streamrec.workers.attributes import CheckpointedAttributes
from streamrec.workers.checkpoints import Checkpoints, Restored
from streamrec.workers.deltas import apply_delta
from streamrec.workers.lifecycle import cancel, close
from streamrec.workers.metrics import Metrics
from streamrec.workers.state import ModelState

log = logging.getLogger(__name__)
WORKER = "follower"
#: Seconds between two looks for the checkpoint a resync needs.
RETRY_S = 0.2
#: Seconds after which a replica without that checkpoint follows a new epoch as it is.
GIVE_UP_S = 30.0
#: Seconds without a delta after which a new checkpoint is looked at
#: (:meth:`DeltaFollower._behind_the_checkpoint`).  The look reads the header alone on
#: the serving loop (0.25 ms at 100,000 items: the attributes are a member of their
#: own); longer than the feed's long poll, so that deltas in flight arrive first.
IDLE_S = 1.0


class DeltaFollower:
    def __init__(
        self,
        settings: Settings,
        bootstrap: str,
        state: ModelState | None = None,
        metrics: Metrics | None = None,
    ) -> None:
        self.settings = settings
        self.bootstrap = bootstrap
        self.topics = Topics(settings.topic_prefix)
        self.state = state or ModelState(HybridModel(settings.model))
        self.metrics = metrics or Metrics()
        self.checkpoints = Checkpoints(settings, self.topics.deltas)
        self.epoch = ""  # the trainer incarnation whose deltas this replica follows
        self.next_seq = 0  # the seq of the next delta of that epoch
        self._consumer: Any = None
        self._fetch_wait: FetchWaitGuard | None = None
        self._tp: Any = None
        self._ends = PastTheEnd()
        self._task: asyncio.Task[None] | None = None
        self._waiting_since: float | None = None  # for a checkpoint to resync from
        self._reread: tuple[str, int] | None = None  # the gap last read again from a checkpoint
        self._last_delta: tuple[str, int] | None = None  # before the checkpoint's offset
        self._checked: tuple[int, int] | None = None  # the checkpoint file last looked at
        self._last_batch = time.monotonic()  # when a fetch last brought deltas

    def _restore(self) -> int | None:
        """Load the trainer's newest checkpoint; the deltas offset to follow from, or None."""
        restored = self.checkpoints.latest()
        if restored is None:
            return None
        self._adopt(restored)
        self._last_delta = restored.last_delta
        return restored.deltas_offset

    def _adopt(self, restored: Restored) -> None:
        self.state.model = restored.model
        if isinstance(self.state.attributes, CheckpointedAttributes):
            self.state.attributes.load_dict(restored.attributes)
        self.state.reset_applied(restored.offsets)
        self.epoch, self.next_seq = restored.epoch, restored.next_seq

    async def start(self) -> None:
        """Bootstrap, then follow the deltas from an asyncio task (the asyncio runtime)."""
        await self.open()
        self._task = asyncio.create_task(self._run(), name="delta-follower")

    async def open(self) -> None:
        """Load the checkpoint; assign the deltas partition at the checkpoint's offset."""
        from aiokafka import AIOKafkaConsumer, TopicPartition

        start = self._restore()
        self._consumer = AIOKafkaConsumer(
            bootstrap_servers=self.bootstrap, enable_auto_commit=False,
            fetch_max_wait_ms=self.settings.feed_fetch_wait_ms, auto_offset_reset="earliest",
            max_partition_fetch_bytes=8 * 1024 * 1024,
        )  # fmt: skip
        await self._consumer.start()
        self._fetch_wait = FetchWaitGuard(self._consumer, "delta follower")
        tp = self._tp = TopicPartition(self.topics.deltas, 0)
        self._consumer.assign([tp])
        if start and await self._continues(start):
            self._consumer.seek(tp, start)
        else:
            if start:
                log.warning("the deltas topic does not hold the checkpoint's delta before "
                            "offset %d (recreated): reading it from the start", start)  # fmt: skip
            await self._consumer.seek_to_beginning(tp)

    async def _continues(self, start: int) -> bool:
        """Whether the delta before ``start`` is the one the checkpoint names (its epoch
        and seq; older checkpoints: any delta of the checkpoint's epoch), read with a
        fetch: the embedded broker's ListOffsets(latest) cannot be trusted."""
        found = (await probe(self.bootstrap, {self._tp: start - 1}))[self._tp]
        if found.record is None:
            return False
        try:
            delta = decode_binary(found.record.value, Delta)
        except Rejected:
            return False
        if self._last_delta is not None:
            return (delta.epoch, delta.seq) == self._last_delta
        return delta.epoch == self.epoch and delta.seq < self.next_seq

    def health(self) -> dict[str, Any]:
        """What ``/health`` shows of the replica: the delta it expects, and for how long it
        has waited for a checkpoint to resync from (a gap)."""
        waiting = 0.0 if self._waiting_since is None else time.monotonic() - self._waiting_since
        out: dict[str, Any] = {"epoch": self.epoch, "next_seq": self.next_seq,
                               "gap_s": round(waiting, 1), "problems": []}  # fmt: skip
        limit = self.settings.health_max_replica_gap_s
        if waiting > limit:
            out["problems"].append(f"replica waiting {waiting:.0f} s > {limit:.0f} s for a "
                                   f"checkpoint to resync from")  # fmt: skip
        return out

    async def stop(self) -> None:
        await cancel(self._task)
        await close(self._consumer)

    async def _run(self) -> None:
        while True:
            try:
                await self.poll_once()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("delta follower error; continuing")
                await asyncio.sleep(0.5)

    async def poll_once(self) -> None:
        """One fetch of the deltas topic, applied in order (see the module docstring)."""
        # one turn of the event loop per fetch: behind a backlog of deltas a fetch returns
        # at once without suspending, and the requests beside it would wait for all of it
        await asyncio.sleep(0)
        batch = await self._consumer.getmany(timeout_ms=max(self.settings.fetch_wait_ms, 20))
        if self._fetch_wait is not None:
            self._fetch_wait.after_poll(batch)
        if not batch:
            if not await self._past_the_end() and time.monotonic() - self._last_batch >= IDLE_S:
                await self._behind_the_checkpoint()
            return
        self._last_batch = time.monotonic()
        for records in batch.values():
            for rec in records:
                if not await self.apply(rec.value, rec.offset):
                    if self._waiting_since is not None:
                        await asyncio.sleep(RETRY_S)
                    return  # the consumer was moved: the rest of this fetch comes again

    async def _past_the_end(self) -> bool:
        """Whether the position is past the topic's end (the trainer recreated the topic:
        ``deltas_rotate_mb``); then read it from the start.  Apache Kafka answers such a
        fetch with an out-of-range error, which resets the consumer to the earliest
        offset; the embedded broker answers it with no records and a high watermark
        below the position (told from an answer running past its own high watermark by
        :class:`~streamrec.stream.recreated.PastTheEnd`)."""
        if self._tp not in self._ends.find(self._consumer):
            return False
        log.warning("the deltas topic ends at %s, before this replica's position %d "
                    "(recreated): reading it from the start", self._consumer.highwater(self._tp),
                    await self._consumer.position(self._tp))  # fmt: skip
        await self._consumer.seek_to_beginning(self._tp)
        return True

    async def _behind_the_checkpoint(self) -> bool:
        """Whether the newest checkpoint shows this replica behind in its epoch; then
        catch up from it.  Asked when no delta came for :data:`IDLE_S`, for each new
        checkpoint file (its header alone: a fraction of a millisecond).  Two cases, both
        after the trainer recreated the deltas topic (``deltas_rotate_mb``) with no later
        delta to show a gap:

        - the checkpoint is ahead (this replica had not read the last deltas before the
          rotation; they are in the checkpoint): resync from it;
        - it holds what this replica holds, but its deltas offset is not this replica's
          position: the position is the old topic's end, and the new topic has exactly
          as many records, so none is fetched.  The deltas after the checkpoint are at
          its offset and after: read from there (the ones before are skipped as
          duplicates).  The trainer makes a rotation's checkpoint the newest only once
          the topic is new, so the offset is the new topic's.
        """
        stamp = self.checkpoints.stamp()
        if stamp is None or stamp == self._checked:
            return False
        self._checked = stamp
        position = self.checkpoints.latest_position()
        if position is None or position[0] != self.epoch or position[1] < self.next_seq:
            return False
        if position[1] == self.next_seq:
            here = await self._consumer.position(self._tp)
            if here == position[2]:
                return False
            log.info("replica holds the newest checkpoint's deltas (%s/%d) but reads at "
                     "offset %d, not its %d (the deltas topic was recreated): reading from "
                     "there", self.epoch, self.next_seq, here, position[2])  # fmt: skip
            self._consumer.seek(self._tp, position[2])
            return True
        restored = await self._load()
        if restored is None or restored.epoch != self.epoch or restored.next_seq <= self.next_seq:
            return False
        log.info("replica at the end of the deltas (holds %s/%d) resyncs from %s (seq %d)",
                 self.epoch, self.next_seq, restored.path, restored.next_seq)  # fmt: skip
        self._resync_to(restored)
        return True

    async def _load(self) -> Restored | None:
        """The newest checkpoint, read in a thread: a replica serves from the model it
        holds while it reads one (106 MB at 100,000 items and users), then
        swaps to it at once (:meth:`_resync_to`)."""
        t0 = time.perf_counter()
        # the attributes only where they come from checkpoints (not from a store): their
        # JSON is parsed in one call, which holds the GIL (0.15 s at 100,000 items)
        wanted = isinstance(self.state.attributes, CheckpointedAttributes)
        restored = await asyncio.to_thread(self.checkpoints.latest, wanted)
        self.metrics.inc(WORKER, "resync_load_seconds_total", time.perf_counter() - t0,
                         "time reading checkpoints to resync from (off the serving loop)")  # fmt: skip
        return restored

    def _resync_to(self, restored: Restored) -> None:
        """Hold ``restored`` and follow the deltas from its offset."""
        self._adopt(restored)
        self._waiting_since = None
        self.metrics.inc(WORKER, "replica_resyncs_total", 1, "replica reloads from checkpoints")
        if self._consumer is not None:
            self._consumer.seek(self._tp, restored.deltas_offset)

    async def apply(self, value: bytes | None, offset: int | None = None) -> bool:
        """Apply one delta message; False when the consumer was moved instead."""
        try:
            delta = decode_binary(value, Delta)
        except Rejected as exc:
            log.error("skipping a bad delta: %s", exc.reason)
            return True
        if delta.epoch == self.epoch and delta.seq < self.next_seq:
            self.metrics.inc(WORKER, "deltas_skipped_total", 1, "deltas applied before")
            return True
        if delta.epoch == self.epoch and delta.seq == self.next_seq:
            return await self._apply(delta, offset)
        return await self._resync(delta, offset)

    async def _apply(self, delta: Delta, offset: int | None) -> bool:
        t0 = time.perf_counter()
        try:
            apply_delta(self.state, delta, self.topics)
        except ReplicaError as exc:
            log.error("delta %s/%s does not fit this replica: %s", delta.epoch, delta.seq, exc)
            return await self._resync(delta, offset, force=True)
        self.next_seq = delta.seq + 1
        self._waiting_since = None
        self.metrics.inc(WORKER, "deltas_applied_total", 1, "delta messages applied")
        self.metrics.inc(WORKER, "delta_seconds_total", time.perf_counter() - t0, "time applying")
        return True

    async def _resync(self, delta: Delta, offset: int | None, force: bool = False) -> bool:
        """A gap or a new epoch: move to the newest checkpoint of ``delta``'s epoch.

        Which way is decided from the checkpoint's header; the checkpoint itself is read
        only to resync from it, off the serving loop (:meth:`_load`)."""
        position = self.checkpoints.latest_position()
        if position is not None:
            epoch, next_seq, deltas_offset = position
            newer = delta.epoch != self.epoch or force or next_seq > self.next_seq
            if (epoch == delta.epoch == self.epoch and not newer and offset is not None
                    and deltas_offset < offset
                    and self._reread != (delta.epoch, delta.seq)):  # fmt: skip
                # the deltas topic was recreated while this replica was between the old
                # position and the new log's: the deltas missing here follow that
                # checkpoint (the ones before next_seq are skipped); read again from
                # there, once
                self._reread = (delta.epoch, delta.seq)
                log.info("gap at delta %s/%d (holds %d): reading the deltas again from "
                         "offset %d", delta.epoch, delta.seq, self.next_seq,
                         deltas_offset)  # fmt: skip
                if self._consumer is not None:
                    self._consumer.seek(self._tp, deltas_offset)
                return False
            restored = await self._load() if epoch == delta.epoch and newer else None
            # (the file read may be newer than the header was)
            if restored is not None and restored.epoch == delta.epoch and newer:
                log.info("replica resyncs from %s (epoch %s, seq %d) at delta %s/%d",
                         restored.path, restored.epoch, restored.next_seq, delta.epoch,
                         delta.seq)  # fmt: skip
                self._resync_to(restored)
                return False
        now = time.monotonic()
        if self._waiting_since is None:
            self._waiting_since = now
            log.warning("replica at delta %s/%d (holds %s/%d): waiting for a checkpoint of "
                        "that epoch", delta.epoch, delta.seq, self.epoch, self.next_seq)  # fmt: skip
        if delta.seq == 0 and delta.epoch != self.epoch and now - self._waiting_since >= GIVE_UP_S:
            log.error("no checkpoint of epoch %s after %.0f s: following its deltas from here "
                      "(changes of the previous trainer after its last checkpoint may stay "
                      "in this replica)", delta.epoch, GIVE_UP_S)  # fmt: skip
            self.epoch, self.next_seq = delta.epoch, 0
            return await self._apply(delta, offset)
        if self._consumer is not None and offset is not None:
            self._consumer.seek(self._tp, offset)  # read it again after RETRY_S
        return False
