"""Numeric kernels of the evaluation baselines (:mod:`streamrec.eval.baselines`).

They live here because only ``streamrec/model`` (and ``index``) compile numba code;
they read no model table: each baseline owns its arrays.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from streamrec.model.scoring import top_k
from streamrec.model.topk import flag_rows, insert_best


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
def _mark_features(recent, n_recent, fx, mark, value):
    """mark[f] = value for every feature f of the items ``recent[:n_recent]``."""
    for t in range(n_recent):
        j = recent[t]
        for c in range(fx.shape[1]):
            f = fx[j, c]
            if f < 0:
                break
            mark[f] = value


@njit(cache=True)
def _shared_count(i, fx, mark):
    """How many of item i's features are marked."""
    s = 0
    for c in range(fx.shape[1]):
        f = fx[i, c]
        if f < 0:
            break
        s += mark[f]
    return s


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
    _mark_features(recent, n_recent, fx, mark, 1)
    for i in range(n_items):
        out[i] = _shared_count(i, fx, mark)
    _mark_features(recent, n_recent, fx, mark, 0)


# ------------------------------------------------- sparse co-occurrence (item-kNN)
#
# The co-occurrence counts of item-kNN as a graph: one entry per direction of each
# co-occurring pair (a, b), a != b, chained per item (``head[a]`` -> ``nxt`` -> ...),
# found through an open-addressing hash of (min, max) -> the a -> b entry (the b -> a
# entry follows it).  A refit turns them into sparse rows of cosine similarities, the
# values :func:`cooccurrence_similarities` writes densely.


@njit(cache=True)
def _pair_slot(keys, a, b):
    mask = keys.shape[0] - 1
    key = (np.int64(a) << 32) | np.int64(b)
    h = (np.int64(a) * 1000003 + np.int64(b) * 7919) & mask
    while keys[h] != -1 and keys[h] != key:
        h = (h + 1) & mask
    return h


@njit(cache=True)
def cooccurrence_add(item, hist, n_hist, keys, slot_entry, head, nbr, nxt, cnt, diag, state):
    """co[item, h] += 1 and co[h, item] += 1 for each h in ``hist[:n_hist]``; co[item, item] += 1.

    ``state`` = [entries used, hash keys used]; capacities must fit ``2 * n_hist`` more
    entries and ``n_hist`` more keys at most half full.
    """
    for t in range(n_hist):
        h = hist[t]
        a, b = (item, h) if item < h else (h, item)
        s = _pair_slot(keys, a, b)
        if keys[s] == -1:
            keys[s] = (np.int64(a) << 32) | np.int64(b)
            e = state[0]
            state[0] = e + 2
            state[1] += 1
            slot_entry[s] = e
            nbr[e] = b
            nxt[e] = head[a]
            head[a] = e
            nbr[e + 1] = a
            nxt[e + 1] = head[b]
            head[b] = e + 1
            cnt[e] = 0.0
            cnt[e + 1] = 0.0
        e = slot_entry[s]
        cnt[e] += 1.0
        cnt[e + 1] += 1.0
    diag[item] += 1.0


@njit(cache=True)
def rehash_pairs(keys, slot_entry, new_keys, new_slot_entry):
    """Move every key of ``keys`` into the empty (all -1) ``new_keys``."""
    for s in range(keys.shape[0]):
        key = keys[s]
        if key == -1:
            continue
        t = _pair_slot(new_keys, key >> 32, key & 0xFFFFFFFF)
        new_keys[t] = key
        new_slot_entry[t] = slot_entry[s]


@njit(cache=True)
def cooccurrence_fit(cnt, head, nbr, nxt, diag, n, norm, indptr, indices, values):
    """The similarities of a refit over items ``0 .. n - 1``, as sparse rows.

    norm[a] = sqrt(co[a, a]); row ``a`` lists ``b`` and co[a, b] / (norm[a] * norm[b]) for
    every co-occurring b (exactly the non-zero entries of :func:`cooccurrence_similarities`),
    in ``indices[indptr[a]:indptr[a + 1]]`` and ``values`` (sized by the caller to the
    number of entries).  Returns the number written.
    """
    for a in range(n):
        norm[a] = math.sqrt(diag[a]) if diag[a] > 0 else 0.0
    t = 0
    for a in range(n):
        indptr[a] = t
        if norm[a] == 0.0:
            continue
        e = head[a]
        while e >= 0:
            b = nbr[e]
            if b < n and norm[b] > 0.0 and cnt[e] > 0:
                indices[t] = b
                values[t] = cnt[e] / (norm[a] * norm[b])
                t += 1
            e = nxt[e]
    indptr[n] = t
    return t


@njit(cache=True)
def add_similarity_row(a, m, indptr, indices, values, out):
    """out += row ``a`` of the fitted similarities (:func:`cooccurrence_fit`; rows below ``m``)."""
    if a >= m:
        return
    for t in range(indptr[a], indptr[a + 1]):
        out[indices[t]] += values[t]


@njit(cache=True)
def recent_features_top_k(recent, n_recent, fx, n_items, mark, log_pop, excluded, flags, k,
                          out_idx, out_score):  # fmt: skip
    """The recent-features baseline's top k in one pass, newest first on ties.

    key[i] = 1e3 * (features of item i among the recent items' features, as
    :func:`shared_feature_counts` counts them) + log_pop[i]: the values and the order of
    ``top_rows(key, k, excluded, newest_first=True)``.  ``flags``: zeros, one per item
    (left zero).  Returns how many were written.
    """
    _mark_features(recent, n_recent, fx, mark, 1)
    flag_rows(flags, excluded, n_items, 1)
    m = 0
    for t in range(n_items):
        i = n_items - 1 - t
        if not flags[i]:
            key = np.float64(_shared_count(i, fx, mark)) * 1e3 + log_pop[i]
            m = insert_best(key, i, k, m, out_idx, out_score)
    flag_rows(flags, excluded, n_items, 0)
    _mark_features(recent, n_recent, fx, mark, 0)
    return m
