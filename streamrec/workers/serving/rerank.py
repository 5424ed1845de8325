"""Re-ranking of scored candidates: freshness boost, MMR diversity.

Attribute filters are :mod:`streamrec.stream.filters` (one language for requests and
the store's attribute cache).

Pure functions over arrays (no broker), so they are tested on their own.
"""

from __future__ import annotations

import numpy as np


def freshness_bonus(
    created: np.ndarray, now: float, boost: float, half_life_s: float, scale: float = 1.0
) -> np.ndarray:
    """``boost * scale * 2 ** (-age / half_life)`` per item (0 for unknown creation times).

    The recommender passes the candidates' score range as ``scale``, so ``boost`` is
    scale-free: 1.0 lifts a brand-new item by the whole range, to the top of the list.
    """
    if boost == 0.0:
        return np.zeros(len(created), dtype=np.float64)
    age = np.maximum(now - created, 0.0)
    bonus = boost * scale * np.exp2(-age / max(half_life_s, 1e-9))
    return np.where(np.isfinite(created), bonus, 0.0)


def mmr(scores: np.ndarray, vectors: np.ndarray, k: int, diversity: float) -> np.ndarray:
    """Maximal marginal relevance: positions of ``k`` picks, best first.

    Each step picks the candidate maximising ``(1 - diversity) * relevance - diversity *
    max cosine similarity to the picks so far``, relevance being the score rescaled to
    [0, 1] over the candidates.  ``diversity = 0`` is plain ranking by score.
    """
    n = len(scores)
    k = min(k, n)
    order = np.argsort(-scores, kind="stable")
    if diversity <= 0.0 or k <= 1:
        return order[:k]
    lo, hi = float(scores.min()), float(scores.max())
    rel = (scores - lo) / (hi - lo) if hi > lo else np.ones(n)
    norms = np.linalg.norm(vectors, axis=1)
    unit = vectors / np.where(norms > 0, norms, 1.0)[:, None]
    picked = [int(order[0])]
    max_sim = unit @ unit[picked[0]]
    available = np.ones(n, dtype=bool)
    available[picked[0]] = False
    for _ in range(k - 1):
        value = (1.0 - diversity) * rel - diversity * max_sim
        value = np.where(available, value, -np.inf)
        best = int(np.argmax(value))
        picked.append(best)
        available[best] = False
        max_sim = np.maximum(max_sim, unit @ unit[best])
    return np.asarray(picked, dtype=np.int64)
