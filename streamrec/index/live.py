"""The live index: the current Annoy snapshot (swapped atomically) plus the fresh buffer."""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Iterable

import numpy as np

from streamrec.index.ann import AnnSnapshot


class FreshBuffer:
    """Items created or re-featured since the current snapshot read the representations.

    They are always retrieval candidates (scored exactly), so a new item is recommendable
    at once.  A local build marks its start with ``begin_build``; when that snapshot is
    swapped in, only the items changed after the mark stay fresh.  A snapshot built by
    another process (loaded from its file) says when it read the representations
    (``started_at``, wall clock): :meth:`retain_since` keeps the items changed after it.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._seq = itertools.count()
        self._rows: dict[int, tuple[int, float]] = {}  # row -> (change number, wall time)
        self._mark: int | None = None
        self._cache: np.ndarray | None = None

    def add(self, rows: Iterable[int]) -> None:
        now = time.time()
        with self._lock:
            for r in rows:
                self._rows[int(r)] = (next(self._seq), now)
            self._cache = None

    def begin_build(self) -> None:
        with self._lock:
            self._mark = next(self._seq)

    def end_build(self, swapped: bool) -> None:
        with self._lock:
            if swapped and self._mark is not None:
                mark = self._mark
                self._rows = {r: v for r, v in self._rows.items() if v[0] > mark}
                self._cache = None
            self._mark = None

    def retain_since(self, started_at: float) -> None:
        """Keep only the items changed at or after ``started_at`` (a loaded snapshot's)."""
        with self._lock:
            self._rows = {r: v for r, v in self._rows.items() if v[1] >= started_at}
            self._cache = None

    def rows(self) -> np.ndarray:
        """The fresh rows, in the order they (last) changed; a cached array: do not modify."""
        cache = self._cache
        if cache is not None:
            return cache
        with self._lock:
            order = sorted(self._rows.items(), key=lambda kv: kv[1][0])
            cache = np.fromiter((r for r, _ in order), dtype=np.int64, count=len(order))
            cache.setflags(write=False)
            self._cache = cache
            return cache

    def __len__(self) -> int:
        return len(self._rows)


class LiveIndex:
    """What a recommender retrieves from: ``snapshot`` (None before the first build) + fresh.

    ``search_k`` (Annoy's per-query budget) applies to snapshots that name none.
    """

    #: Seconds of clock difference tolerated between a builder process and this one.
    CLOCK_SLACK_S = 1.0

    def __init__(self, search_k: int = -1) -> None:
        self.snapshot: AnnSnapshot | None = None
        self.fresh = FreshBuffer()
        self.builds = 0
        self.search_k = search_k
        self.pinned = np.zeros(0, dtype=np.int64)

    def pin(self, rows: np.ndarray) -> None:
        """Rows that are always candidates (e.g. the most popular items), replaced at once."""
        self.pinned = np.asarray(rows, dtype=np.int64)

    def swap(self, snapshot: AnnSnapshot) -> None:
        """Install a snapshot built here: one reference assignment, so readers see old or new."""
        self.snapshot = snapshot
        self.builds += 1
        self.fresh.end_build(swapped=True)

    def swap_loaded(self, snapshot: AnnSnapshot) -> None:
        """Install a snapshot another process built (loaded from its file), atomically.

        Items changed after it read the representations (less a clock slack) stay fresh.
        """
        self.snapshot = snapshot
        self.builds += 1
        self.fresh.retain_since(snapshot.started_at - self.CLOCK_SLACK_S)

    def candidates(self, q: np.ndarray, n: int, n_items: int) -> np.ndarray | None:
        """Candidate rows, sorted: index top ``n`` + pinned + fresh + rows newer than the snapshot.

        None when there is no snapshot yet (the caller scores exactly).  Costs
        O(n + pinned + fresh + new rows), never O(catalogue).
        """
        snap = self.snapshot
        if snap is None:
            return None
        budget = snap.search_k if snap.search_k != -1 else self.search_k
        parts = [snap.query(q, n, budget), self.pinned, self.fresh.rows()]
        if n_items > snap.size:
            parts.append(np.arange(snap.size, n_items, dtype=np.int64))
        rows = np.unique(np.concatenate(parts))
        return rows[rows < n_items]
