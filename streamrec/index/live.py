"""The live index: the current Annoy snapshot (swapped atomically) plus the fresh buffer."""

from __future__ import annotations

import heapq
import itertools
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any, NamedTuple

import numpy as np

from streamrec.index.ann import AnnSnapshot


class FreshBuffer:
    """Items created or re-featured since the current snapshot read the representations.

    They are always retrieval candidates, so a new item is recommendable at once.  A
    local build marks its start with ``begin_build``; when that snapshot is swapped in,
    only the items changed after the mark stay fresh.  A snapshot built by another
    process (loaded from its file) says when it read the representations
    (``started_at``, wall clock): :meth:`retain_since` keeps the items changed after it.

    ``keep_s``: an item stays fresh at least this long after its last change, even once
    a snapshot holds it: new items move most while they collect their first events, and
    the snapshot holds them as they were.  At most ``keep_max`` such items (the most
    recently changed) stay so: the indexers re-embed every fresh item at each check, and
    a catalogue onboarded in bulk, or a churn of 1,000 new items/s, must not make that
    O(catalogue).  Items no snapshot holds yet always stay.

    Items added with their representation (``reps``) can be searched by brute force
    (:meth:`top`): with thousands of fresh items a request then re-scores exactly only
    the best few of them, not all.
    """

    def __init__(self, keep_s: float = 0.0, keep_max: int = 2000) -> None:
        self.keep_s = keep_s
        self.keep_max = keep_max
        self._lock = threading.Lock()
        self._seq = itertools.count()
        # row -> (change number, wall time, representation or None)
        self._rows: dict[int, tuple[int, float, np.ndarray | None]] = {}
        self._mark: int | None = None
        self._cache: _FreshArrays | None = None
        # which entries the current snapshot does not hold (None: no snapshot swapped in)
        self._unheld: Callable[[tuple[int, float, Any]], bool] | None = None

    def add(
        self, rows: Iterable[int], reps: np.ndarray | None = None, at: float | None = None
    ) -> None:
        """Items changed at wall time ``at`` (default: now).  A replica passes the time
        the trainer took the change (its delta's ``ts``), the clock a loaded snapshot's
        ``started_at`` is on (see :meth:`LiveIndex.swap_loaded`)."""
        now = time.time() if at is None else at
        with self._lock:
            for i, r in enumerate(rows):
                rep = None if reps is None else reps[i]
                self._rows[int(r)] = (next(self._seq), now, rep)
            self._cache = None

    def expire(self, now: float | None = None) -> int:
        """Drop the items the current snapshot holds that changed more than ``keep_s``
        ago (how many): they stay past a swap for ``keep_s`` only, also when no swap
        comes after (a model that stopped moving is not rebuilt).  O(fresh items)."""
        cutoff = (time.time() if now is None else now) - self.keep_s
        with self._lock:
            unheld = self._unheld
            if unheld is None:
                return 0
            gone = [r for r, v in self._rows.items() if v[1] < cutoff and not unheld(v)]
            for r in gone:
                del self._rows[r]
            if gone:
                self._cache = None
            return len(gone)

    def refresh(self, rows: np.ndarray, reps: np.ndarray) -> None:
        """Newer representations of fresh rows (items move as they learn); rows no longer
        fresh are ignored, and no row's change time moves.

        Given :meth:`rows` itself (what the indexers pass at every check) and every row
        searched by representation, the cached arrays take the new representations at
        once instead of being rebuilt from the entries at the next request."""
        with self._lock:
            for r, rep in zip(rows.tolist(), reps, strict=True):
                entry = self._rows.get(r)
                if entry is not None:
                    self._rows[r] = (entry[0], entry[1], rep)
            cache = self._cache
            if cache is not None and rows is cache.rows and not len(cache.plain):
                self._cache = cache._replace(reps=np.ascontiguousarray(reps[cache.positions],
                                                                       dtype=np.float32))  # fmt: skip
            else:
                self._cache = None

    def begin_build(self) -> None:
        with self._lock:
            self._mark = next(self._seq)

    def end_build(self, swapped: bool) -> None:
        with self._lock:
            if swapped and self._mark is not None:
                mark = self._mark
                self._unheld = lambda v: v[0] > mark
                self._rows = self._kept(self._unheld)
                self._cache = None
            self._mark = None

    def retain_since(self, started_at: float) -> None:
        """Keep only the items changed at or after ``started_at`` (a loaded snapshot's)."""
        with self._lock:
            self._unheld = lambda v: v[1] >= started_at
            self._rows = self._kept(self._unheld)
            self._cache = None

    def unindexed(self) -> int:
        """How many fresh items the current snapshot does not hold: those changed since
        it read the representations, not those kept for ``keep_s`` (what a rebuild would
        add; O(fresh items))."""
        with self._lock:
            unheld = self._unheld
            if unheld is None:
                return len(self._rows)
            return sum(1 for v in self._rows.values() if unheld(v))

    def _kept(self, unindexed: Callable[[tuple[int, float, Any]], bool]) -> dict[int, Any]:
        """The rows that stay fresh after a swap: those the snapshot does not hold
        (``unindexed``), and the ``keep_max`` most recently changed of those changed in
        the last ``keep_s`` seconds."""
        out = {r: v for r, v in self._rows.items() if unindexed(v)}
        if self.keep_s > 0 and self.keep_max > 0:
            recent = time.time() - self.keep_s
            held = [(v[0], r, v) for r, v in self._rows.items()
                    if r not in out and v[1] >= recent]  # fmt: skip
            for _, r, v in heapq.nlargest(self.keep_max, held):
                out[r] = v
        return out

    def _arrays(self) -> _FreshArrays:
        cache = self._cache
        if cache is not None:
            return cache
        with self._lock:
            order = sorted(self._rows.items(), key=lambda kv: kv[1][0])
            rows = np.fromiter((r for r, _ in order), dtype=np.int64, count=len(order))
            rows.setflags(write=False)
            has_rep = np.fromiter((v[2] is not None for _, v in order), dtype=bool,
                                  count=len(order))  # fmt: skip
            positions = np.flatnonzero(has_rep)
            plain = rows[~has_rep]
            searched = rows[positions]
            known = [v[2] for _, v in order if v[2] is not None]  # in ``positions`` order
            reps = np.stack(known).astype(np.float32) if known else None
            cache = _FreshArrays(rows, plain, searched, reps, positions)
            self._cache = cache
            return cache

    def rows(self) -> np.ndarray:
        """The fresh rows, in the order they (last) changed; a cached array: do not modify."""
        return self._arrays().rows

    def top(self, q: np.ndarray, n: int) -> np.ndarray:
        """Fresh rows to re-score for ``q``: the ``n`` best of those added with their
        representation (by that representation), and every one added without."""
        arrays = self._arrays()
        if arrays.reps is None or len(arrays.searched) <= n:
            return arrays.rows
        scores = np.einsum("ij,j->i", arrays.reps, q)  # no BLAS call: faster at this size here
        best = np.argpartition(-scores, n - 1)[:n]
        return np.concatenate([arrays.searched[best], arrays.plain])

    def __len__(self) -> int:
        return len(self._rows)


class _FreshArrays(NamedTuple):
    rows: np.ndarray  # every fresh row, in change order
    plain: np.ndarray  # rows added without a representation
    searched: np.ndarray  # rows added with one, in the order of ``reps``
    reps: np.ndarray | None
    positions: np.ndarray  # where ``searched`` are in ``rows``


class LiveIndex:
    """What a recommender retrieves from: ``snapshot`` (None before the first build) + fresh.

    ``search_k`` (Annoy's per-query budget) applies to snapshots that name none;
    ``fresh_keep_s`` and ``fresh_keep_max`` are the fresh buffer's ``keep_s`` and
    ``keep_max``.
    """

    def __init__(
        self, search_k: int = -1, fresh_keep_s: float = 0.0, fresh_keep_max: int = 2000
    ) -> None:
        self.snapshot: AnnSnapshot | None = None
        self.fresh = FreshBuffer(fresh_keep_s, fresh_keep_max)
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

        Items changed after it read the representations stay fresh.  Both times are on
        the trainer's clock: an item's is when the trainer took the delta that brought
        it (:meth:`FreshBuffer.add`), the snapshot's when its builder read the model (in
        the trainer's process), or the last delta it had applied (in a replica's), so
        no slack for clocks apart is needed.  (With a one-second slack, a replica kept
        every item onboarded in the second before a build began, 13,592 of 100,000.)
        """
        self.snapshot = snapshot
        self.builds += 1
        self.fresh.retain_since(snapshot.started_at)

    def candidates(self, q: np.ndarray, n: int, n_items: int) -> np.ndarray | None:
        """Candidate rows, sorted: index top ``n`` + pinned + the fresh buffer's (its best
        ``4 n`` by representation, see :meth:`FreshBuffer.top`: fresh items move fast, so
        a wider net) + rows newer than the snapshot that the fresh buffer does not hold.

        None when there is no snapshot yet (the caller scores exactly).  Costs
        O(n + pinned + fresh + new rows), never O(catalogue).
        """
        snap = self.snapshot
        if snap is None:
            return None
        budget = snap.search_k if snap.search_k != -1 else self.search_k
        fresh = self.fresh.top(q, 4 * n)
        parts = [snap.query(q, n, budget), self.pinned, fresh]
        if n_items > snap.size and np.count_nonzero(self.fresh.rows() >= snap.size) < (
            n_items - snap.size
        ):  # rows newer than the snapshot that the fresh buffer does not hold
            newer = np.arange(snap.size, n_items, dtype=np.int64)
            parts.append(newer[~np.isin(newer, self.fresh.rows())])
        rows = sorted_unique(np.concatenate(parts))
        return rows[: np.searchsorted(rows, n_items)]


def sorted_unique(rows: np.ndarray) -> np.ndarray:
    """``np.unique`` of an integer array by sorting (numpy 2's hash-based ``unique`` took
    ten times longer on a request's ~1,000 candidates)."""
    out = np.sort(rows)
    if len(out) < 2:
        return out
    keep = np.empty(len(out), dtype=bool)
    keep[0] = True
    np.not_equal(out[1:], out[:-1], out=keep[1:])
    return out[keep]
