"""The live index: the current Annoy snapshot (swapped atomically) plus the fresh buffer."""

from __future__ import annotations

import threading
from collections.abc import Iterable

import numpy as np

from streamrec.index.ann import AnnSnapshot


class FreshBuffer:
    """Items created or re-featured since the current snapshot started building.

    They are always retrieval candidates (scored exactly), so a new item is recommendable
    at once.  ``begin_build`` marks the moment a snapshot reads the representations; when
    that snapshot is swapped in, only the items changed after that moment stay fresh.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._rows: set[int] = set()
        self._since_build: set[int] | None = None

    def add(self, rows: Iterable[int]) -> None:
        with self._lock:
            for r in rows:
                self._rows.add(int(r))
                if self._since_build is not None:
                    self._since_build.add(int(r))

    def begin_build(self) -> None:
        with self._lock:
            self._since_build = set()

    def end_build(self, swapped: bool) -> None:
        with self._lock:
            if swapped and self._since_build is not None:
                self._rows = self._since_build
            self._since_build = None

    def rows(self) -> np.ndarray:
        with self._lock:
            return np.fromiter(self._rows, dtype=np.int64, count=len(self._rows))

    def __len__(self) -> int:
        return len(self._rows)


class LiveIndex:
    """What a recommender retrieves from: ``snapshot`` (None before the first build) + fresh."""

    def __init__(self) -> None:
        self.snapshot: AnnSnapshot | None = None
        self.fresh = FreshBuffer()
        self.builds = 0

    def swap(self, snapshot: AnnSnapshot) -> None:
        """Install a new snapshot: one reference assignment, so readers see old or new."""
        self.snapshot = snapshot
        self.builds += 1
        self.fresh.end_build(swapped=True)

    def candidates(self, q: np.ndarray, n: int, n_items: int) -> np.ndarray | None:
        """Candidate rows: index top ``n`` + fresh rows + rows newer than the snapshot.

        None when there is no snapshot yet (the caller scores exactly).
        """
        snap = self.snapshot
        if snap is None:
            return None
        parts = [snap.query(q, n), self.fresh.rows()]
        if n_items > snap.size:
            parts.append(np.arange(snap.size, n_items, dtype=np.int64))
        rows = np.unique(np.concatenate(parts))
        return rows[rows < n_items]
