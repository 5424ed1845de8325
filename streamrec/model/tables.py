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
        if row >= self.emb.shape[0]:
            cap = capacity_for(row + 1, self.emb.shape[0])
            self.emb = grown(self.emb, cap)
            self.bias = grown(self.bias, cap)
            self.emb_acc = grown(self.emb_acc, cap, 1.0)
            self.bias_acc = grown(self.bias_acc, cap, 1.0)
            self.cont = grown(self.cont, cap)
            self.cont_acc = grown(self.cont_acc, cap, 1.0)
            self.count = grown(self.count, cap)
        if not identity and self.init_scale > 0:
            std = self.init_scale / np.sqrt(self.dim)
            self.emb[row] = self.rng.normal(0.0, std, self.dim).astype(np.float32)
        self.n = row + 1
        return row


class EntityFeatures:
    """Each entity's feature rows and weights, padded with -1 to a common width."""

    def __init__(self) -> None:
        self.n = 0
        self.idx = np.full((_MIN_CAPACITY, 1), -1, dtype=np.int32)
        self.w = np.zeros((_MIN_CAPACITY, 1), dtype=np.float32)

    def set(self, row: int, rows: np.ndarray, weights: np.ndarray) -> None:
        """Give entity ``row`` (new or existing) exactly these features."""
        if row >= self.idx.shape[0]:
            cap = capacity_for(row + 1, self.idx.shape[0])
            self.idx = grown(self.idx, cap, -1)
            self.w = grown(self.w, cap, 0.0)
        width = len(rows)
        if width > self.idx.shape[1]:
            idx = np.full((self.idx.shape[0], width), -1, dtype=np.int32)
            w = np.zeros((self.idx.shape[0], width), dtype=np.float32)
            idx[:, : self.idx.shape[1]] = self.idx
            w[:, : self.w.shape[1]] = self.w
            self.idx, self.w = idx, w
        self.idx[row] = -1
        self.w[row] = 0.0
        self.idx[row, :width] = rows
        self.w[row, :width] = weights
        self.n = max(self.n, row + 1)

    def features_of(self, row: int) -> tuple[np.ndarray, np.ndarray]:
        k = int(np.count_nonzero(self.idx[row] >= 0))
        return self.idx[row, :k].copy(), self.w[row, :k].copy()
