"""Numeric kernels of the evaluation baselines (:mod:`streamrec.eval.baselines`).

They live here because only ``streamrec/model`` (and ``index``) compile numba code;
they read no model table: each baseline owns its arrays.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from streamrec.model.scoring import top_k


def top_rows(
    scores: np.ndarray, k: int, excluded: np.ndarray, newest_first: bool = False
) -> np.ndarray:
    """The rows of the ``k`` best ``scores`` not in ``excluded``, best first.

    Ties go to the lower row, or with ``newest_first`` to the higher row (items get rows
    in order of first appearance, so the higher row is the newer item).
    """
    n = scores.shape[0]
    idx = np.zeros(k, dtype=np.int64)
    val = np.zeros(k, dtype=scores.dtype)
    excluded = np.asarray(excluded, dtype=np.int32)
    if newest_first:
        m = top_k(scores[::-1].copy(), n, k, n - 1 - excluded, idx, val)
        return n - 1 - idx[:m]
    m = top_k(scores, n, k, excluded, idx, val)
    return idx[:m]


@njit(cache=True)
def cooccurrence_similarities(co: np.ndarray, n: int) -> np.ndarray:
    """Cosine of the co-occurrence counts: co[a, b] / sqrt(co[a, a] * co[b, b]), diagonal 0."""
    sim = np.zeros((n, n), dtype=np.float32)
    norm = np.zeros(n, dtype=np.float32)
    for a in range(n):
        norm[a] = math.sqrt(co[a, a]) if co[a, a] > 0 else 0.0
    for a in range(n):
        if norm[a] == 0.0:
            continue
        for b in range(n):
            if b != a and norm[b] > 0.0 and co[a, b] > 0:
                sim[a, b] = co[a, b] / (norm[a] * norm[b])
    return sim


@njit(cache=True)
def shared_feature_counts(
    recent: np.ndarray,
    n_recent: int,
    fx: np.ndarray,
    n_items: int,
    mark: np.ndarray,
    out: np.ndarray,
) -> None:
    """out[i] = how many features of item i occur among the features of the recent items.

    ``fx[i]``: item i's feature ids, padded with -1; ``mark``: zeros, one per feature id
    (left zero again).
    """
    for t in range(n_recent):
        j = recent[t]
        for k in range(fx.shape[1]):
            f = fx[j, k]
            if f < 0:
                break
            mark[f] = 1
    for i in range(n_items):
        s = 0
        for k in range(fx.shape[1]):
            f = fx[i, k]
            if f < 0:
                break
            s += mark[f]
        out[i] = s
    for t in range(n_recent):  # reset the marks for the next call
        j = recent[t]
        for k in range(fx.shape[1]):
            f = fx[j, k]
            if f < 0:
                break
            mark[f] = 0
