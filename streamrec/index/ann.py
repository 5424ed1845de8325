"""Annoy snapshots of item representations (bias as last column, so 'dot' is the score)."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
from annoy import AnnoyIndex


@dataclass
class AnnSnapshot:
    """An immutable Annoy index over item rows ``0 .. size - 1`` as they were at ``started_at``.

    ``started_at`` (wall clock) is when the builder read the representations: items
    changed after it are not (or not rightly) in the index and stay in the fresh buffer.
    ``search_k`` is Annoy's per-query node budget (-1: Annoy's default, ``n * trees``).
    """

    index: AnnoyIndex
    size: int
    dim: int
    built_at: float
    build_seconds: float
    version: int = 0
    recall_at_10: float = float("nan")
    meta: dict[str, float] = field(default_factory=dict)
    started_at: float = 0.0
    search_k: int = -1
    path: str = ""

    def query(self, q: np.ndarray, n: int, search_k: int | None = None) -> np.ndarray:
        """Rows of (about) the ``n`` largest inner products with ``q``."""
        if self.size == 0:
            return np.zeros(0, dtype=np.int64)
        budget = self.search_k if search_k is None else search_k
        rows = self.index.get_nns_by_vector(q.tolist(), min(n, self.size), budget)
        return np.asarray(rows, dtype=np.int64)

    def age(self, now: float | None = None) -> float:
        return (now if now is not None else time.time()) - self.built_at


def build_snapshot(
    reps: np.ndarray,
    n_trees: int = 20,
    seed: int = 42,
    version: int = 0,
    started_at: float | None = None,
    search_k: int = -1,
) -> AnnSnapshot:
    """Build an Annoy 'dot' index over ``reps`` (n, width), e.g. ``item_representations()``.

    CPU-bound: run it in a thread (or in the indexer's own process).
    """
    t0 = time.perf_counter()
    start = time.time() if started_at is None else started_at
    n, dim = reps.shape
    index = AnnoyIndex(dim, "dot")
    index.set_seed(seed)
    for row in range(n):
        index.add_item(row, reps[row].tolist())
    index.build(n_trees, n_jobs=1)
    return AnnSnapshot(index, n, dim, time.time(), time.perf_counter() - t0, version,
                       started_at=start, search_k=search_k)  # fmt: skip


def exact_top_k(reps: np.ndarray, q: np.ndarray, k: int) -> np.ndarray:
    """Rows of the ``k`` largest ``reps @ q``, best first (ties to the lower row)."""
    scores = reps @ q
    return top_k_of(scores, k)


def top_k_of(scores: np.ndarray, k: int) -> np.ndarray:
    """Positions of the ``k`` largest ``scores``, best first (ties to the lower position)."""
    k = min(k, len(scores))
    if k <= 0:
        return np.zeros(0, dtype=np.int64)
    top = np.argpartition(-scores, k - 1)[:k]
    return top[np.lexsort((top, -scores[top]))]


def recall_at_k(
    snapshot: AnnSnapshot,
    reps: np.ndarray,
    queries: np.ndarray,
    k: int = 10,
    n_candidates: int = 200,
) -> float:
    """Mean share of the exact top ``k`` found by the index (candidates re-scored exactly)."""
    if len(queries) == 0 or snapshot.size == 0:
        return float("nan")
    reps = reps[: snapshot.size]
    total = 0.0
    for q in queries:
        truth = set(exact_top_k(reps, q, k).tolist())
        cand = snapshot.query(q, n_candidates)
        found = cand[np.argsort(-(reps[cand] @ q), kind="stable")[:k]]
        total += len(truth.intersection(found.tolist())) / max(len(truth), 1)
    return total / len(queries)
