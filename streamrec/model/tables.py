"""Growable numpy tables: feature embeddings and entity feature lists.

Capacity doubles when full, so onboarding n entities costs O(n) amortised and nothing
is sized up front.  Kernels read the arrays directly; rows past ``n`` are unused.
"""

from __future__ import annotations

import numpy as np

_MIN_CAPACITY = 64


def grown(a: np.ndarray, rows: int, fill: float | int = 0) -> np.ndarray:
    """A copy of ``a`` with ``rows`` rows (first axis), new rows set to ``fill``."""
    out = np.full((rows, *a.shape[1:]), fill, dtype=a.dtype)
    out[: a.shape[0]] = a
    return out


def capacity_for(n: int, current: int) -> int:
    cap = max(current, _MIN_CAPACITY)
    while cap < n:
        cap *= 2
    return cap


class FeatureTable:
    """Embeddings and biases of one side's features, with their Adagrad accumulators.

    Identity features start at zero; shared features at N(0, init_scale^2 / dim), so a
    new entity's first representation is exactly the sum of its shared features.
    """

    def __init__(self, dim: int, init_scale: float, rng: np.random.Generator) -> None:
        self.dim = dim
        self.init_scale = init_scale
        self.rng = rng
        self.n = 0
        self.emb = np.zeros((_MIN_CAPACITY, dim), dtype=np.float32)
        self.bias = np.zeros(_MIN_CAPACITY, dtype=np.float32)
        self.emb_acc = np.ones(_MIN_CAPACITY, dtype=np.float32)
        self.bias_acc = np.ones(_MIN_CAPACITY, dtype=np.float32)
        # user side: each feature's learned share of the content-continuity weight
        self.cont = np.zeros(_MIN_CAPACITY, dtype=np.float32)
        self.cont_acc = np.ones(_MIN_CAPACITY, dtype=np.float32)
        # how many entities have each feature (the continuity signal's idf)
        self.count = np.zeros(_MIN_CAPACITY, dtype=np.float32)

    def append(self, identity: bool) -> int:
        """Add one row (zero for identity features, random for shared ones)."""
        row = self.n
        self._ensure(row + 1)
        if not identity and self.init_scale > 0:
            std = self.init_scale / np.sqrt(self.dim)
            self.emb[row] = self.rng.normal(0.0, std, self.dim).astype(np.float32)
        self.n = row + 1
        return row

    def append_many(self, identity: np.ndarray) -> int:
        """Add one row per flag of ``identity``, as as many :meth:`append` calls would (the
        same random draws, in row order); returns the first new row."""
        first, n = self.n, self.n + len(identity)
        self._ensure(n)
        shared = first + np.flatnonzero(~identity.astype(bool))
        if shared.size and self.init_scale > 0:
            std = self.init_scale / np.sqrt(self.dim)
            draws = self.rng.normal(0.0, std, (shared.size, self.dim))
            self.emb[shared] = draws.astype(np.float32)
        self.n = n
        return first

    def _ensure(self, n: int) -> None:
        """Room for rows ``0 .. n - 1``."""
        if n > self.emb.shape[0]:
            cap = capacity_for(n, self.emb.shape[0])
            self.emb = grown(self.emb, cap)
            self.bias = grown(self.bias, cap)
            self.emb_acc = grown(self.emb_acc, cap, 1.0)
            self.bias_acc = grown(self.bias_acc, cap, 1.0)
            self.cont = grown(self.cont, cap)
            self.cont_acc = grown(self.cont_acc, cap, 1.0)
            self.count = grown(self.count, cap)


class EntityFeatures:
    """Each entity's feature rows and weights, padded with -1 to a common width."""

    def __init__(self) -> None:
        self.n = 0
        self.idx = np.full((_MIN_CAPACITY, 1), -1, dtype=np.int32)
        self.w = np.zeros((_MIN_CAPACITY, 1), dtype=np.float32)

    def set(self, row: int, rows: np.ndarray, weights: np.ndarray) -> None:
        """Give entity ``row`` (new or existing) exactly these features."""
        self._ensure(row + 1, len(rows))
        self.idx[row] = -1
        self.w[row] = 0.0
        self.idx[row, : len(rows)] = rows
        self.w[row, : len(rows)] = weights
        self.n = max(self.n, row + 1)

    def set_many(
        self, entities: np.ndarray, counts: np.ndarray, rows: np.ndarray, weights: np.ndarray
    ) -> None:
        """:meth:`set` for several distinct entities at once: entity ``entities[i]`` gets
        the next ``counts[i]`` entries of ``rows`` and ``weights``."""
        if not len(entities):
            return
        self._ensure(int(entities.max()) + 1, int(counts.max()))
        self.idx[entities] = -1
        self.w[entities] = 0.0
        owner = np.repeat(entities, counts)
        starts = np.repeat(np.cumsum(counts) - counts, counts)
        col = np.arange(len(owner)) - starts
        self.idx[owner, col] = rows
        self.w[owner, col] = weights
        self.n = max(self.n, int(entities.max()) + 1)

    def _ensure(self, n: int, width: int) -> None:
        """Room for entities ``0 .. n - 1`` with up to ``width`` features each."""
        if n > self.idx.shape[0]:
            cap = capacity_for(n, self.idx.shape[0])
            self.idx = grown(self.idx, cap, -1)
            self.w = grown(self.w, cap, 0.0)
        if width > self.idx.shape[1]:
            idx = np.full((self.idx.shape[0], width), -1, dtype=np.int32)
            w = np.zeros((self.idx.shape[0], width), dtype=np.float32)
            idx[:, : self.idx.shape[1]] = self.idx
            w[:, : self.w.shape[1]] = self.w
            self.idx, self.w = idx, w

    def features_of(self, row: int) -> tuple[np.ndarray, np.ndarray]:
        k = int(np.count_nonzero(self.idx[row] >= 0))
        return self.idx[row, :k].copy(), self.w[row, :k].copy()
