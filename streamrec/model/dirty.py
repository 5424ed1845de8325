"""Dirty-row logs: which rows of a table were written since they were last taken.

Kernels mark rows through :func:`mark` (O(1), no allocation); Python code marks rows
through :class:`DirtyRows`, which owns the arrays and grows them with the table.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from streamrec.model.state import DirtyMarks
from streamrec.model.tables import capacity_for, grown


@njit(cache=True, error_model="numpy", inline="always")
def mark(flags: np.ndarray, rows: np.ndarray, n_rows: np.ndarray, row: int) -> None:
    """Record that ``row`` was written (listed once until the marks are taken).

    Branch-free: the row is always written at ``rows[n]`` and ``n`` advances only when
    the row was not flagged yet (so ``rows`` has one slot more than the table has rows).
    A branch here made the learning kernels a third slower.  Takes the arrays of a
    :class:`DirtyMarks`, unpacked once by the caller, not the tuple itself.
    """
    n = n_rows[0]
    rows[n] = row
    n_rows[0] = n + 1 - flags[row]
    flags[row] = 1


@njit(cache=True, error_model="numpy", inline="always")
def mark_feature_rows(
    flags: np.ndarray, rows: np.ndarray, n_rows: np.ndarray, fx: np.ndarray, entity: int
) -> None:
    """:func:`mark` every feature row of ``entity`` (``fx[entity]``, padded with -1)."""
    for k in range(fx.shape[1]):
        row = fx[entity, k]
        if row < 0:
            break
        mark(flags, rows, n_rows, row)


@njit(cache=True, error_model="numpy")
def _mark_each(flags: np.ndarray, rows: np.ndarray, n_rows: np.ndarray, marked: np.ndarray) -> None:
    for row in marked:
        if row >= 0 and flags[row] == 0:
            flags[row] = 1
            rows[n_rows[0]] = row
            n_rows[0] += 1


@njit(cache=True, error_model="numpy")
def _unmark(flags: np.ndarray, rows: np.ndarray) -> None:
    """``flags[rows] = 0`` without numpy's index conversion and checks (a tenth of an export)."""
    for row in rows:
        flags[row] = 0


class DirtyRows:
    """The rows of one table written since the last :meth:`take`."""

    def __init__(self) -> None:
        self.flags = np.zeros(64, dtype=np.uint8)
        self.rows = np.zeros(65, dtype=np.int32)
        self.count = np.zeros(1, dtype=np.int64)

    def __len__(self) -> int:
        return int(self.count[0])

    def ensure(self, n: int) -> None:
        """Room to mark rows ``0 .. n - 1`` (each row is listed at most once)."""
        if n > self.flags.shape[0]:
            cap = capacity_for(n, self.flags.shape[0])
            self.flags = grown(self.flags, cap)
            self.rows = grown(self.rows, cap + 1)

    def marks(self, capacity: int) -> DirtyMarks:
        """The kernel view, with room for a table of ``capacity`` rows."""
        self.ensure(capacity)
        return DirtyMarks(self.flags, self.rows, self.count)

    def mark(self, row: int) -> None:
        self.ensure(row + 1)
        if not self.flags[row]:
            self.flags[row] = 1
            self.rows[self.count[0]] = row
            self.count[0] += 1

    def mark_many(self, rows: np.ndarray) -> None:
        """Mark each of ``rows`` (repeats and -1 padding ignored), O(len(rows))."""
        if not len(rows):
            return
        rows = np.ascontiguousarray(rows, dtype=np.int32).ravel()
        self.ensure(int(rows.max()) + 1)
        _mark_each(self.flags, self.rows, self.count, rows)

    def take(self, ordered: bool = True) -> np.ndarray:
        """The marked rows (ascending unless not ``ordered``), forgotten: O(rows marked)."""
        n = int(self.count[0])
        if not n:
            return np.zeros(0, dtype=np.int32)
        rows = np.sort(self.rows[:n]) if ordered else self.rows[:n].copy()
        _unmark(self.flags, rows)
        self.count[0] = 0
        return rows

    def forget(self) -> None:
        """Unmark every row without listing them: O(rows marked)."""
        n = int(self.count[0])
        if n:
            _unmark(self.flags, self.rows[:n])
            self.count[0] = 0


class ChangeLog:
    """Everything written to a model since its last export (see :mod:`streamrec.model.replica`).

    ``*_base`` are the entity and feature counts at the last export: rows past them are
    new.  ``user_entities``/``item_entities`` mark entities whose feature lists were
    (re)defined; ``seen`` collects (user, item) pairs in the order they were marked.
    """

    def __init__(self) -> None:
        self.user_features = DirtyRows()
        self.item_features = DirtyRows()
        #: Items an update trained, for readers of item vectors (``topk.ModelTopK``):
        #: not part of change sets, and left alone by :meth:`clear`; its reader takes it.
        self.trained_items = DirtyRows()
        self.context = DirtyRows()
        self.users = DirtyRows()
        self.items = DirtyRows()
        self.ring = DirtyRows()
        self.user_entities = DirtyRows()
        self.item_entities = DirtyRows()
        self.seen: list[np.ndarray] = []
        self.user_base = 0
        self.item_base = 0
        self.user_feature_base = 0
        self.item_feature_base = 0

    def _all(self) -> tuple[DirtyRows, ...]:
        return (self.user_features, self.item_features, self.context, self.users, self.items,
                self.ring, self.user_entities, self.item_entities)  # fmt: skip

    def pending(self) -> bool:
        """Whether anything was marked since the last :meth:`clear` (O(1))."""
        return bool(self.seen) or any(len(rows) for rows in self._all())

    def clear(self, n_users: int, n_items: int, n_user_features: int, n_item_features: int) -> None:
        """Forget every mark; the given counts become the new bases."""
        for rows in self._all():
            rows.forget()
        self.seen.clear()
        self.user_base, self.item_base = n_users, n_items
        self.user_feature_base, self.item_feature_base = n_user_features, n_item_features
