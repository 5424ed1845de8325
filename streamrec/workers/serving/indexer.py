"""The indexer: one Annoy build per rebuild, shared by every recommender through a file.

:class:`Indexer` (the ``indexer`` role) builds the index off the serving path: in a
child process of its own by default (``settings.index_build=process``; ``thread`` runs
the build in a thread of this process instead), saves it in ``<data dir>/index/<prefix>``
(:class:`~streamrec.index.IndexFiles`: temporary name, rename, then the manifest) and
swaps it in here.  A rebuild starts when the index is older than ``index_rebuild_s``
and the model moved, when ``index_rebuild_changes`` items of the fresh buffer are not
in the index yet (:meth:`FreshBuffer.unindexed`: not those it keeps fresh after a build
that holds them), or when the model has learned ``index_rebuild_growth`` more events
than it had at the last build (at least :data:`GROWTH_MIN_EVENTS`).

:class:`IndexFollower` (a recommender without the indexer role in its process) watches
the manifest and maps each new file with Annoy's ``load``: every recommender process
shares the one build and one copy of it in the page cache.  Swaps are one reference
assignment: a request sees the old index or the new one.

Both measure recall@10 continuously (:class:`RecallSampler`): sampled users' served
retrieval (index candidates + fresh buffer + items newer than the index, re-scored
exactly) against exact search over every item of the live model, exported as the
``index_recall_at_10`` gauge.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import math
import os
import sys
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

import streamrec
from streamrec.index import IndexFiles, IndexManifest, LiveIndex, build_snapshot
from streamrec.index.ann import top_k_of
from streamrec.index.build import build_file
from streamrec.settings import Settings
from streamrec.workers.lifecycle import cancel
from streamrec.workers.metrics import Metrics
from streamrec.workers.state import ModelState

log = logging.getLogger(__name__)
WORKER = "indexer"


#: Rows pinned as candidates per kind (highest bias, most popular, newest).
PINNED = 200
#: Smaller catalogues build in a thread even with ``index_build=process``: their build
#: takes milliseconds, starting the child process about a second.
PROCESS_BUILD_MIN_ITEMS = 10_000
#: The fewest events learned since the last build that ``index_rebuild_growth`` rebuilds
#: for (a small model would otherwise rebuild after every few events).
GROWTH_MIN_EVENTS = 10_000


def index_folder(settings: Settings) -> Path:
    """Where the indexer of a deployment publishes its index files."""
    return settings.data_dir / "index" / settings.topic_prefix


class RecallSampler:
    """recall@10 of the served retrieval against exact search, over a rolling window."""

    def __init__(self, state: ModelState, index: LiveIndex, settings: Settings,
                 window: int = 200, per_round: int = 4) -> None:  # fmt: skip
        self.state, self.index, self.settings = state, index, settings
        self.window: collections.deque[float] = collections.deque(maxlen=window)
        self.per_round = per_round
        self._rng = np.random.default_rng(0)

    def sample(self, users: int | None = None) -> None:
        """Measure ``users`` (default ``per_round``) random users (O(catalogue) each, on
        the serving process's event loop: callers spread them out, see
        :meth:`IndexWorker._sample_recall`)."""
        m = self.state.model
        if m.n_users == 0 or m.n_items < 10 or self.index.snapshot is None:
            return
        for row in self._rng.integers(0, m.n_users, size=users or self.per_round):
            q = m.user_query_row(int(row))
            cand = self.index.candidates(q, self.settings.index_candidates, m.n_items)
            if cand is None:
                return
            truth = set(top_k_of(m.scores_for_query(q), 10).tolist())
            found = cand[top_k_of(m.item_representations(cand) @ q, 10)]
            self.window.append(len(truth.intersection(found.tolist())) / len(truth))

    @property
    def value(self) -> float:
        return float(np.mean(self.window)) if self.window else math.nan


class IndexWorker:
    """What the builder and the follower share: the live index, its gauges and recall."""

    def __init__(
        self,
        settings: Settings,
        state: ModelState,
        index: LiveIndex | None = None,
        metrics: Metrics | None = None,
        serving: bool = True,
    ) -> None:
        self.settings = settings
        self.state = state
        #: whether requests are answered from this process's index (see :class:`Indexer`)
        self.serving = serving
        self.index = index or LiveIndex(settings.index_search_k, settings.index_fresh_keep_s,
                                        settings.index_fresh_keep_max)  # fmt: skip
        self.metrics = metrics or Metrics()
        self.files = IndexFiles(index_folder(settings))
        self.recall = RecallSampler(state, self.index, settings)
        self.state.on_items_changed(self._changed)
        self._task: asyncio.Task[None] | None = None
        self._last_sample = 0.0
        self._bias_rows = np.zeros(0, dtype=np.int64)

    def _changed(self, rows: Iterable[int], at: float | None = None) -> None:
        """Items created or re-featured (at ``at``, the trainer's clock): fresh, with their
        representation as of now (the fresh buffer searches those; requests re-score the
        best exactly).  Where nothing is served, only their being fresh counts (towards
        the next rebuild)."""
        sel = np.asarray(list(rows), dtype=np.int64)
        if len(sel):
            reps = self.state.model.item_representations(sel) if self.serving else None
            self.index.fresh.add(sel.tolist(), reps, at)

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=type(self).__name__.lower())

    async def stop(self) -> None:
        await cancel(self._task)

    async def _run(self) -> None:
        while True:
            try:
                await self.check_once()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("%s: index check failed; retrying later", type(self).__name__)
            await asyncio.sleep(0.2)

    async def check_once(self) -> None:
        raise NotImplementedError

    def pin(self) -> None:
        """Re-embed the fresh items (O(fresh)), and pin the rows every user's top may hold
        whatever the user vector: the highest item biases (as of the last build, from
        its manifest), the most popular items and the newest ones (every check;
        O(catalogue) in numpy, off the request path).
        The score's user-independent part (bias + affinity x trend) is what Annoy's dot
        search misses most (bench/serving.py recall: Annoy's candidates alone vs served)."""
        m = self.state.model
        n = m.n_items
        if n == 0:
            return
        fresh = self.index.fresh.rows()
        if len(fresh):  # re-embed the fresh items: clicks move them after they arrive
            self.index.fresh.refresh(fresh, m.item_representations(fresh))
        popular = top_k_of(m.popularity(), PINNED)
        newest = np.arange(max(n - PINNED, 0), n, dtype=np.int64)
        self.index.pin(np.unique(np.concatenate([self._bias_rows, popular, newest])))

    def _after_swap(self) -> None:
        """A new index: pin its rows and measure its recall at once (then periodically)."""
        self.pin()
        self._last_sample = time.monotonic()
        self.recall.sample(1)
        self._report()

    def _sample_recall(self) -> None:
        """One user every ``index_recall_interval_s / per_round`` seconds: ``per_round``
        users per interval, but never all at once (each costs an exact scan of the
        catalogue, a few ms at 100,000 items, which requests queued meanwhile wait for)."""
        now = time.monotonic()
        period = self.settings.index_recall_interval_s / self.recall.per_round
        if now - self._last_sample >= period:
            # one per period on average, though checks come every 0.2 s (at most one user
            # per check: never a burst)
            self._last_sample = max(self._last_sample + period, now - period)
            self.recall.sample(1)

    def stats(self) -> dict[str, Any]:
        snap = self.index.snapshot
        recall = self.recall.value
        return {
            "size": snap.size if snap else 0,
            "age_s": round(snap.age(), 3) if snap else None,
            "recall_at_10": None if math.isnan(recall) else round(recall, 4),
            "recall_samples": len(self.recall.window),
            "fresh": len(self.index.fresh),
            "builds": self.index.builds,
            "build_s": round(snap.build_seconds, 3) if snap else None,
            "file": snap.path if snap else None,
            "checked_at": time.time(),
        }

    def _report(self) -> None:
        st = self.stats()
        self.metrics.set(WORKER, "index_size", st["size"], "items in the Annoy snapshot")
        self.metrics.set(WORKER, "index_age_seconds", st["age_s"] or 0.0, "age of the snapshot")
        self.metrics.set(WORKER, "index_fresh_items", st["fresh"], "items in the fresh buffer")
        if st["recall_at_10"] is not None:
            self.metrics.set(WORKER, "index_recall_at_10", st["recall_at_10"],
                             "recall@10 of the served retrieval vs exact search, sampled users "
                             "(rolling window)")  # fmt: skip


class Indexer(IndexWorker):
    """Builds, publishes and swaps in the index (the ``indexer`` role).

    Without a recommender in its process (``serving`` False: ``streamrec up``'s trainer
    process) nothing is served from its index, so it neither pins rows nor samples
    recall (each an O(catalogue) scan); the recommenders' followers do.
    """

    _built_version = -1
    _built_events = 0  # the model's events when the snapshot in use read it
    _building: asyncio.Task[None] | None = None

    def due(self) -> bool:
        m = self.state.model
        snap = self.index.snapshot
        if m.n_items == 0:
            return False
        if snap is None:
            return True
        # items the snapshot does not hold: those kept fresh for index_fresh_keep_s are
        # in it (after a bulk onboarding, up to index_fresh_keep_max of them for 30 s)
        if self.index.fresh.unindexed() >= self.settings.index_rebuild_changes:
            return True
        growth = self.settings.index_rebuild_growth
        if growth > 0 and m.n_events - self._built_events >= max(
            growth * self._built_events, GROWTH_MIN_EVENTS
        ):
            return True
        return snap.age() >= self.settings.index_rebuild_s and m.version != self._built_version

    async def check_once(self) -> None:
        """Let the fresh items the index holds go after ``keep_s``; start a rebuild if one
        is due (in the background: checks go on meanwhile); pin the popular rows; sample
        recall; report the index gauges."""
        self.index.fresh.expire()
        building = self._building is not None and not self._building.done()
        if not building and self.due():
            self._building = asyncio.create_task(self._rebuild_logged(), name="index build")
        if self.serving:
            self.pin()
            self._sample_recall()
        self._report()

    async def _rebuild_logged(self) -> None:
        try:
            await self.rebuild()
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("index rebuild failed; retrying at the next check")

    async def stop(self) -> None:
        await cancel(self._building)
        await super().stop()

    async def rebuild(self) -> None:
        s = self.settings
        m = self.state.model
        self.index.fresh.begin_build()
        # what the build reads, on the trainer's clock (see LiveIndex.swap_loaded)
        started = self.state.changes_taken_at or time.time()
        version, events = m.version, m.n_events
        reps = m.item_representations()
        path = self.files.staging_path()
        if s.index_build == "process" and len(reps) >= PROCESS_BUILD_MIN_ITEMS:
            seconds = await _build_in_child(reps, path, s.index_trees, s.index_build_nice)
        else:
            seconds = await asyncio.to_thread(build_file, reps, str(path), s.index_trees)
        bias_rows = top_k_of(reps[:, m.dim], PINNED)  # the bias column
        manifest = self.files.publish_file(path, IndexManifest(
            file=path.name, size=len(reps), dim=reps.shape[1], version=version,
            started_at=started, built_at=time.time(), build_seconds=seconds,
            trees=s.index_trees, search_k=s.index_search_k, seq=0, pinned=bias_rows.tolist(),
        ))  # fmt: skip
        snap = self.files.load(manifest)
        if snap is None:  # cannot happen unless the folder is shared with another indexer
            self.index.fresh.end_build(swapped=False)
            return
        self._bias_rows = bias_rows
        self.index.swap(snap)
        self._built_version, self._built_events = version, events
        if self.serving:
            self._after_swap()
        else:
            self._report()
        self.metrics.inc(WORKER, "index_builds_total", 1, "Annoy index builds")
        self.metrics.set(WORKER, "index_build_seconds", seconds, "last build time")
        log.info("index rebuilt: %d items in %.2f s (%s)", snap.size, seconds, path.name)


async def _build_in_child(reps: np.ndarray, path: Path, trees: int, nice: int = 0) -> float:
    """Run :mod:`streamrec.index.build` in a child process (killed if this task is cancelled)."""
    src = path.with_name(f".{path.stem}.npy")
    await asyncio.to_thread(np.save, src, reps)
    root = str(Path(streamrec.__file__).resolve().parent.parent)  # this streamrec, in the child
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        p for p in (root, os.environ.get("PYTHONPATH", "")) if p)}  # fmt: skip
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "streamrec.index.build", str(src), str(path), str(trees), str(nice),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=env,
    )  # fmt: skip
    try:
        out, err = await proc.communicate()
    except asyncio.CancelledError:
        proc.kill()
        await proc.wait()
        raise
    finally:
        src.unlink(missing_ok=True)
    if proc.returncode != 0:
        raise RuntimeError(f"index build failed ({proc.returncode}): {err.decode()[-500:]}")
    return float(out.decode().strip().splitlines()[-1])


class IndexFollower(IndexWorker):
    """Maps each index the indexer publishes (a recommender without the indexer role)."""

    _seq = 0

    async def check_once(self) -> None:
        """Swap in a newer published index, if any; sample recall; report."""
        self.index.fresh.expire()
        manifest = self.files.current()
        if manifest is not None and manifest.seq > self._seq:
            snap = await asyncio.to_thread(self.files.load, manifest)
            if snap is not None:
                self._bias_rows = np.asarray(manifest.pinned, dtype=np.int64)
                self.index.swap_loaded(snap)
                self._after_swap()
                self._seq = manifest.seq
                self.metrics.inc(WORKER, "index_loads_total", 1, "index files mapped")
        self.pin()
        self._sample_recall()
        self._report()


__all__ = [
    "IndexFollower",
    "IndexWorker",
    "Indexer",
    "RecallSampler",
    "build_snapshot",
    "index_folder",
]
