"""The indexer: rebuilds the Annoy snapshot in a background thread and swaps it in.

A rebuild starts when the index is older than ``index_rebuild_s`` and the model moved,
or when ``index_rebuild_changes`` items are waiting in the fresh buffer.  After each
build it measures recall@10 of the index (top-N candidates re-scored exactly) against
exact search for a sample of users.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from typing import Any

import numpy as np

from streamrec.index import LiveIndex, build_snapshot, recall_at_k
from streamrec.settings import Settings
from streamrec.workers.lifecycle import cancel
from streamrec.workers.metrics import Metrics
from streamrec.workers.state import ModelState

log = logging.getLogger(__name__)
WORKER = "indexer"


class Indexer:
    def __init__(
        self,
        settings: Settings,
        state: ModelState,
        index: LiveIndex | None = None,
        metrics: Metrics | None = None,
        recall_sample: int = 100,
    ) -> None:
        self.settings = settings
        self.state = state
        self.index = index or LiveIndex()
        self.metrics = metrics or Metrics()
        self.recall_sample = recall_sample
        self.state.on_items_changed(self.index.fresh.add)
        self._task: asyncio.Task[None] | None = None
        self._built_version = -1
        self._rng = np.random.default_rng(0)

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="indexer")

    async def stop(self) -> None:
        await cancel(self._task)

    def due(self) -> bool:
        m = self.state.model
        snap = self.index.snapshot
        if m.n_items == 0:
            return False
        if snap is None:
            return True
        if len(self.index.fresh) >= self.settings.index_rebuild_changes:
            return True
        return snap.age() >= self.settings.index_rebuild_s and m.version != self._built_version

    async def _run(self) -> None:
        while True:
            try:
                await self.check_once()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("index rebuild failed; retrying later")
            await asyncio.sleep(0.2)

    async def check_once(self) -> None:
        """Rebuild if due; report the index gauges."""
        if self.due():
            await self.rebuild()
        self._report()

    async def rebuild(self) -> None:
        m = self.state.model
        self.index.fresh.begin_build()
        version = m.version
        reps = m.item_representations()
        queries = self._queries()
        snap = await asyncio.to_thread(build_snapshot, reps, self.settings.index_trees, 42, version)
        snap.recall_at_10 = await asyncio.to_thread(
            recall_at_k, snap, reps, queries, 10, self.settings.index_candidates
        )
        self.index.swap(snap)
        self._built_version = version
        self.metrics.inc(WORKER, "index_builds_total", 1, "Annoy index builds")
        self.metrics.set(WORKER, "index_build_seconds", snap.build_seconds, "last build time")
        log.info("index rebuilt: %d items in %.2f s, recall@10 %.3f", snap.size,
                 snap.build_seconds, snap.recall_at_10)  # fmt: skip

    def _queries(self) -> np.ndarray:
        m = self.state.model
        if m.n_users == 0:
            return np.zeros((0, m.query_dim), dtype=np.float32)
        rows = self._rng.choice(m.n_users, size=min(self.recall_sample, m.n_users), replace=False)
        return np.stack([m.user_query_row(int(r)) for r in rows])

    def stats(self) -> dict[str, Any]:
        snap = self.index.snapshot
        return {
            "size": snap.size if snap else 0,
            "age_s": round(snap.age(), 3) if snap else None,
            "recall_at_10": (
                round(snap.recall_at_10, 4) if snap and not math.isnan(snap.recall_at_10) else None
            ),
            "fresh": len(self.index.fresh),
            "builds": self.index.builds,
            "build_s": round(snap.build_seconds, 3) if snap else None,
            "checked_at": time.time(),
        }

    def _report(self) -> None:
        st = self.stats()
        self.metrics.set(WORKER, "index_size", st["size"], "items in the Annoy snapshot")
        self.metrics.set(WORKER, "index_age_seconds", st["age_s"] or 0.0, "age of the snapshot")
        self.metrics.set(WORKER, "index_fresh_items", st["fresh"], "items in the fresh buffer")
        if st["recall_at_10"] is not None:
            self.metrics.set(WORKER, "index_recall_at_10", st["recall_at_10"],
                             "recall@10 of the index vs exact search")  # fmt: skip
