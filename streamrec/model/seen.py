"""Per-user sets of seen items in numpy arrays, updated in bulk by numba.

A hash set of ``(user, item)`` keys (open addressing, linear probing, at most half
full) answers "has this user an event for this item?"; every new pair is also an entry
in a chain per user (``head[user]`` -> ``entry_next`` -> ...), which lists the user's
items for the exclusions of top-k.  Capacities double as needed, before each kernel
call, so the kernels never allocate.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from numba import njit

from streamrec.model.tables import capacity_for, grown

_EMPTY = -1


@njit(cache=True, error_model="numpy")
def _slot(keys, user, item):
    """The slot of (user, item) in ``keys``, or of the empty slot where it would go."""
    mask = keys.shape[0] - 1
    key = (np.int64(user) << 32) | np.int64(item)
    h = (np.int64(user) * 1000003 + np.int64(item) * 7919) & mask
    while keys[h] != _EMPTY and keys[h] != key:
        h = (h + 1) & mask
    return h


@njit(cache=True, error_model="numpy")
def add_pairs(users, items, keys, entry_user, entry_item, entry_next, head, count, n):
    """Insert each (users[k], items[k]); capacities must already fit the batch."""
    for k in range(users.shape[0]):
        user, item = users[k], items[k]
        h = _slot(keys, user, item)
        if keys[h] != _EMPTY:
            continue
        keys[h] = (np.int64(user) << 32) | np.int64(item)
        e = n[0]
        entry_user[e] = user
        entry_item[e] = item
        entry_next[e] = head[user]
        head[user] = e
        count[user] += 1
        n[0] = e + 1


@njit(cache=True, error_model="numpy")
def _rehash(keys, entry_user, entry_item, n):
    for e in range(n):
        h = _slot(keys, entry_user[e], entry_item[e])
        keys[h] = (np.int64(entry_user[e]) << 32) | np.int64(entry_item[e])


@njit(cache=True, error_model="numpy")
def _contains(keys, user, item):
    return keys[_slot(keys, user, item)] != _EMPTY


@njit(cache=True, error_model="numpy")
def _collect(user, entry_item, entry_next, head, out):
    e = head[user]
    k = 0
    while e >= 0:
        out[k] = entry_item[e]
        k += 1
        e = entry_next[e]


class SeenSets:
    """Which items each user has an event for (seen-only events included)."""

    def __init__(self) -> None:
        self.keys = np.full(1024, _EMPTY, dtype=np.int64)
        self.entry_user = np.zeros(256, dtype=np.int32)
        self.entry_item = np.zeros(256, dtype=np.int32)
        self.entry_next = np.zeros(256, dtype=np.int32)
        self.head = np.full(64, _EMPTY, dtype=np.int32)
        self.user_count = np.zeros(64, dtype=np.int32)
        self.n = np.zeros(1, dtype=np.int64)
        self.n_users = 0

    def __len__(self) -> int:
        return self.n_users

    @property
    def n_pairs(self) -> int:
        return int(self.n[0])

    def ensure(self, n_users: int) -> None:
        """Room for users ``0 .. n_users - 1``."""
        if n_users > self.head.shape[0]:
            cap = capacity_for(n_users, self.head.shape[0])
            self.head = grown(self.head, cap, _EMPTY)
            self.user_count = grown(self.user_count, cap)
        self.n_users = max(self.n_users, n_users)

    def _reserve(self, extra: int) -> None:
        need = self.n_pairs + extra
        if need > self.entry_item.shape[0]:
            cap = capacity_for(need, self.entry_item.shape[0])
            self.entry_user = grown(self.entry_user, cap)
            self.entry_item = grown(self.entry_item, cap)
            self.entry_next = grown(self.entry_next, cap)
        if 2 * need > self.keys.shape[0]:
            self.keys = np.full(capacity_for(2 * need, self.keys.shape[0]), _EMPTY, np.int64)
            _rehash(self.keys, self.entry_user, self.entry_item, self.n_pairs)

    def add_many(self, users: np.ndarray, items: np.ndarray) -> None:
        """Mark each ``(users[k], items[k])`` seen (users must be within :meth:`ensure`)."""
        users = np.ascontiguousarray(users, dtype=np.int32)
        items = np.ascontiguousarray(items, dtype=np.int32)
        self._reserve(users.shape[0])
        add_pairs(users, items, self.keys, self.entry_user, self.entry_item, self.entry_next,
                  self.head, self.user_count, self.n)  # fmt: skip

    def add(self, user: int, item: int) -> None:
        self.add_many(np.array([user], np.int32), np.array([item], np.int32))

    def contains(self, user: int, item: int) -> bool:
        return user < self.n_users and bool(_contains(self.keys, user, item))

    def count(self, user: int) -> int:
        return int(self.user_count[user]) if user < self.n_users else 0

    def items(self, user: int) -> np.ndarray:
        """The user's seen items, most recent first (a new array)."""
        out = np.zeros(self.count(user), dtype=np.int32)
        if out.shape[0]:
            _collect(user, self.entry_item, self.entry_next, self.head, out)
        return out

    def to_csr(self) -> tuple[np.ndarray, np.ndarray]:
        """(indptr, indices) per user, each user's items oldest first."""
        return self.frozen()()

    def frozen(self) -> Callable[[], tuple[np.ndarray, np.ndarray]]:
        """:meth:`to_csr` as of now, computed when called: copies of the pairs now (a
        memory copy), sorted by user only then (the sort is most of the cost, 66 ms for
        1,000,000 pairs), so a checkpoint copies under its lock and sorts off it."""
        counts = self.user_count[: self.n_users].astype(np.int64)
        users = self.entry_user[: self.n_pairs].copy()
        items = self.entry_item[: self.n_pairs].copy()

        def csr() -> tuple[np.ndarray, np.ndarray]:
            indptr = np.zeros(counts.shape[0] + 1, dtype=np.int64)
            np.cumsum(counts, out=indptr[1:])
            return indptr, items[np.argsort(users, kind="stable")]

        return csr

    @classmethod
    def from_csr(cls, indptr: np.ndarray, indices: np.ndarray) -> SeenSets:
        out = cls()
        n_users = len(indptr) - 1
        out.ensure(n_users)
        users = np.repeat(np.arange(n_users, dtype=np.int32), np.diff(indptr).astype(np.int64))
        out.add_many(users, indices.astype(np.int32))
        return out
