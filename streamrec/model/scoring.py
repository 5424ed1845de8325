"""Numba scoring kernels: a user against every item, and top-k with exclusions."""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from streamrec.model.topk import project_four, store_projection, top_k_excluding
from streamrec.model.vectors import continuity_affinity, entity_bias, recent_features


@njit(cache=True)
def project_all(u, V, Vb, n_feats, cont_aff, marks, proj):
    """proj[f] = u . V[f] + Vb[f] (+ cont_aff * marks[f]) for every f < ``n_feats``.

    Four rows at a time: four independent sums keep the floating-point units busy where
    one sum waits on its previous addition (four times faster at 100,000 rows, about
    the memory bandwidth), and each is summed in the order :func:`topk._projection`
    sums it, so the values are bit for bit the same (:func:`topk.project_four`, which
    :func:`topk.project_many` shares).
    """
    d = V.shape[1]
    f = 0
    while f + 4 <= n_feats:
        project_four(u, V, Vb, f, f + 1, f + 2, f + 3, cont_aff, marks, proj)
        f += 4
    while f < n_feats:
        s = 0.0
        for c in range(d):
            s += u[c] * V[f, c]
        store_projection(f, s, Vb, cont_aff, marks, proj)
        f += 1


@njit(cache=True)
def score_items(u, affinity, items, popularity, n_items, n_feats, proj, out, cont_aff, marks):
    """out[i] = u . v_i + b_i (+ affinity * trend signal) for the first ``n_items`` items.

    Projects ``u`` on every item-feature row once (``proj[f] = u . V[f] + Vb[f]``), then
    sums each item's weighted projections: cost ``n_feats * d + nnz`` instead of
    ``nnz * d``.  The continuity signal folds into the projections: ``marks[f]`` is 1
    for the shared features of the user's recent items, so ``proj[f]`` adds
    ``cont_aff * marks[f]`` (pass ``cont_aff = 0`` to leave it out).
    """
    V, Vb, ifx, ifw = items.emb, items.bias, items.feature_rows, items.feature_weights
    trend, trend_state = popularity.trend, popularity.trend_scale
    project_all(u, V, Vb, n_feats, cont_aff, marks, proj)
    inv = 1.0 / trend_state[0]
    prior, rate, n_all = popularity.newness[0], popularity.newness[1], popularity.newness[2]
    for i in range(n_items):
        s = entity_bias(i, proj, ifx, ifw)  # the item's features' projections, summed
        if affinity != 0.0:
            new = prior * math.exp(-rate * (n_all - 1.0 - i)) if prior != 0.0 else 0.0
            s += affinity * math.log1p(trend[i] * inv + new)
        out[i] = s


@njit(cache=True)
def continuity_for(user, users, items, context, cont_w, n_items, rows, out):
    """:func:`continuity_of` for user row ``user`` (its learned weight and the features
    of its last items), in one call; False, ``out`` untouched, when the signal is 0 for
    every item (a weight of 0, or no last items)."""
    weight = continuity_affinity(user, users, cont_w)
    if weight == 0.0:
        return False
    rfeat = np.empty(context.last.shape[1] * items.feature_rows.shape[1], dtype=np.int32)
    m = recent_features(user, items, context, -1, rfeat)
    if m == 0:
        return False
    continuity_of(rows, items, rfeat, m, n_items, weight, out)
    return True


@njit(cache=True)
def continuity_of(rows, items, rfeat, m, n_items, weight, out):
    """out[j] = ``weight`` x the continuity signal of item ``rows[j]`` for the recent
    features ``rfeat[:m]`` (:func:`~streamrec.model.vectors.continuity_signal`, each
    feature's idf taken once): what :func:`score_items` adds to that item's score
    through its marks, in O(len(rows)) instead of O(features)."""
    idf = np.empty(m, dtype=np.float64)
    for t in range(m):
        idf[t] = math.log(n_items / max(items.feature_count[rfeat[t]], 1.0))
    ifx, ifw = items.feature_rows, items.feature_weights
    for j in range(rows.shape[0]):
        i = rows[j]
        s = 0.0
        for k in range(1, ifx.shape[1]):
            f = ifx[i, k]
            if f < 0:
                break
            for t in range(m):
                if rfeat[t] == f:
                    s += ifw[i, k] * idf[t]
                    break
        out[j] = weight * s


@njit(cache=True)
def top_k(scores, n, k, excluded, out_idx, out_score):
    """The ``k`` best of ``scores[:n]`` not in ``excluded``, best first.

    Ties go to the lower index.  ``scores`` is left unchanged.  Returns how many were
    written (fewer than ``k`` when fewer items are eligible).
    """
    return top_k_excluding(scores, n, k, excluded, np.zeros(n, dtype=np.uint8), out_idx, out_score)
