"""A replica of the trainer's model for recommenders in other processes.

Bootstraps from the trainer's latest checkpoint (when the data directory is shared),
then follows the deltas topic from the offset recorded in that checkpoint.  The
replica's ``applied`` offsets come from the deltas, so requests can wait for it too.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from streamrec.model import HybridModel
from streamrec.settings import Settings
from streamrec.stream.codec import Rejected, decode_binary
from streamrec.stream.schemas import Delta
from streamrec.stream.topics import Topics
from streamrec.workers.attributes import CheckpointedAttributes
from streamrec.workers.checkpoints import Checkpoints
from streamrec.workers.deltas import apply_delta
from streamrec.workers.lifecycle import cancel, close
from streamrec.workers.metrics import Metrics
from streamrec.workers.state import ModelState

log = logging.getLogger(__name__)
WORKER = "follower"


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
        self._consumer: Any = None
        self._task: asyncio.Task[None] | None = None

    def _restore(self) -> int | None:
        """Load the trainer's newest checkpoint; the deltas offset to follow from, or None."""
        restored = self.checkpoints.latest()
        if restored is None:
            return None
        self.state.model = restored.model
        if isinstance(self.state.attributes, CheckpointedAttributes):
            self.state.attributes.load_dict(restored.attributes)
        self.state.advance(restored.offsets)
        return restored.deltas_offset

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
            fetch_max_wait_ms=self.settings.fetch_wait_ms, auto_offset_reset="earliest",
            max_partition_fetch_bytes=8 * 1024 * 1024,
        )  # fmt: skip
        await self._consumer.start()
        tp = TopicPartition(self.topics.deltas, 0)
        self._consumer.assign([tp])
        end = (await self._consumer.end_offsets([tp]))[tp]
        if start is not None and start <= end:
            self._consumer.seek(tp, start)
        else:
            await self._consumer.seek_to_beginning(tp)

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
        """One fetch of the deltas topic, applied."""
        batch = await self._consumer.getmany(timeout_ms=max(self.settings.fetch_wait_ms, 20))
        for records in batch.values():
            for rec in records:
                self.apply(rec.value)

    def apply(self, value: bytes | None) -> None:
        try:
            delta = decode_binary(value, Delta)
        except Rejected as exc:
            log.error("skipping a bad delta: %s", exc.reason)
            return
        t0 = time.perf_counter()
        apply_delta(self.state, delta)
        self.metrics.inc(WORKER, "deltas_applied_total", 1, "delta messages applied")
        self.metrics.inc(WORKER, "delta_seconds_total", time.perf_counter() - t0, "time applying")
