"""Numeric kernels of the evaluation baselines (:mod:`streamrec.eval.baselines`).

They live here because only ``streamrec/model`` (and ``index``) compile numba code;
they read no model table: each baseline owns its arrays.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from streamrec.model.scoring import top_k
from streamrec.model.topk import flag_rows, insert_best, offer, ranks_before


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


@njit(cache=True, inline="always")
def n_listed(fx, row):
    """How many features row ``row`` of a padded feature table lists (-1 pads the rest)."""
    n = 0
    while n < fx.shape[1] and fx[row, n] >= 0:
        n += 1
    return n


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
        for c in range(n_listed(fx, j)):
            f = fx[j, c]
            mark[f] = value


@njit(cache=True)
def _shared_count(i, fx, mark):
    """How many of item i's features are marked."""
    s = 0
    for c in range(n_listed(fx, i)):
        f = fx[i, c]
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
# co-occurring pair (a, b), a != b (``nbr[e]`` = b, ``nbr[e ^ 1]`` = a: entries are
# made in pairs, in order), found through an open-addressing hash of (min, max) -> the
# a -> b entry (the b -> a entry follows it; the hash keeps only entries, the pair is
# read back from ``nbr``).  A refit turns them into sparse rows of cosine similarities, the
# values :func:`cooccurrence_similarities` writes densely.


@njit(cache=True)
def _pair_slot(slots, nbr, a, b):
    """The hash slot of the pair (a, b), a < b: the one holding its entry ``e`` (``nbr[e]``
    = b, ``nbr[e + 1]`` = a), else the empty (-1) slot where it goes."""
    mask = slots.shape[0] - 1
    h = (np.int64(a) * 1000003 + np.int64(b) * 7919) & mask
    while True:
        e = slots[h]
        if e == -1 or (nbr[e] == b and nbr[e + 1] == a):
            return h
        h = (h + 1) & mask


@njit(cache=True)
def cooccurrence_add(item, hist, n_hist, slots, nbr, cnt, diag, state):
    """co[item, h] += 1 and co[h, item] += 1 for each h in ``hist[:n_hist]``; co[item, item] += 1.

    ``state`` = [entries used, pairs used]; capacities must fit ``2 * n_hist`` more
    entries and ``n_hist`` more pairs with ``slots`` at most half full.  A slot holds the
    pair's first entry (the pair itself is read back from ``nbr``: no key array).
    """
    for t in range(n_hist):
        h = hist[t]
        a, b = (item, h) if item < h else (h, item)
        s = _pair_slot(slots, nbr, a, b)
        e = slots[s]
        if e == -1:
            e = state[0]
            state[0] = e + 2
            state[1] += 1
            slots[s] = e
            nbr[e] = b
            nbr[e + 1] = a
            cnt[e] = 0.0
            cnt[e + 1] = 0.0
        cnt[e] += 1.0
        cnt[e + 1] += 1.0
    diag[item] += 1.0


@njit(cache=True)
def rehash_pairs(nbr, n_entries, slots):
    """Put every pair of the entries ``0 .. n_entries - 1`` into the empty (all -1) ``slots``."""
    for e in range(0, n_entries, 2):
        slots[_pair_slot(slots, nbr, nbr[e + 1], nbr[e])] = e


@njit(cache=True)
def cooccurrence_fit(cnt, nbr, n_entries, diag, n, norm, indptr, indices, values):
    """The similarities of a refit over items ``0 .. n - 1``, as sparse rows.

    norm[a] = sqrt(co[a, a]); row ``a`` lists ``b`` and co[a, b] / (norm[a] * norm[b]) for
    every co-occurring b (exactly the non-zero entries of :func:`cooccurrence_similarities`),
    in ``indices[indptr[a]:indptr[a + 1]]`` and ``values`` (sized by the caller to the
    number of entries).  Returns the number written.

    Entries are read in the order they were made (a counting sort by row, not a walk of
    the chains: sequential memory), so a row lists its neighbours in some order; a
    profile adds each neighbour once per row, so the sums do not depend on it.  Entry
    ``e`` (a -> b, ``nbr[e] = b``) and its twin ``e ^ 1`` (b -> a) are made together.
    """
    for a in range(n):
        norm[a] = math.sqrt(diag[a]) if diag[a] > 0 else 0.0
    for a in range(n + 1):
        indptr[a] = 0
    for e in range(n_entries):
        a = nbr[e ^ 1]
        b = nbr[e]
        if a < n and b < n and norm[a] > 0.0 and norm[b] > 0.0 and cnt[e] > 0:
            indptr[a + 1] += 1
    for a in range(n):
        indptr[a + 1] += indptr[a]
    fill = indptr[:n].copy()
    for e in range(n_entries):
        a = nbr[e ^ 1]
        b = nbr[e]
        if a < n and b < n and norm[a] > 0.0 and norm[b] > 0.0 and cnt[e] > 0:
            t = fill[a]
            indices[t] = b
            values[t] = cnt[e] / (norm[a] * norm[b])
            fill[a] = t + 1
    return indptr[n]


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


# ------------------------------------------------------------- leader lists
#
# The popularity baselines' keys only grow between rescales (a count gains one positive),
# so the best ``cap`` rows can be kept in order as they change: a row whose key rose moves
# up its list, or takes the last place when it now ranks above the last row.  Every row
# outside the list ranks below the list's last row; a query walks the list past its
# exclusions and needs the full scan only when the list runs out first.


@njit(cache=True)
def leaders_raise(keys, rows, pos, state, item, newest_first):
    """Row ``item``'s key rose, or it is offered for the first time: reorder the list.

    ``rows[:state[0]]`` holds the leaders best first, ``pos[r]`` the place of row r (-1
    outside); the list has ``rows.shape[0]`` places.
    """
    m = state[0]
    p = pos[item]
    if p < 0:
        if m < rows.shape[0]:
            p = m
            state[0] = m + 1
        elif ranks_before(keys[item], item, keys[rows[m - 1]], rows[m - 1], newest_first):
            p = m - 1
            pos[rows[p]] = -1
        else:
            return
    s = keys[item]
    while p > 0 and ranks_before(s, item, keys[rows[p - 1]], rows[p - 1], newest_first):
        r = rows[p - 1]
        rows[p] = r
        pos[r] = p
        p -= 1
    rows[p] = item
    pos[item] = p


@njit(cache=True)
def leaders_track(keys, rows, pos, state, n, newest_first):
    """Offer rows ``state[1] .. n - 1`` (new rows) to the list."""
    for r in range(state[1], n):
        pos[r] = -1
        leaders_raise(keys, rows, pos, state, r, newest_first)
    if n > state[1]:
        state[1] = n


@njit(cache=True)
def leaders_top(rows, state, n_items, excluded, flags, k, out_idx):
    """The first ``k`` leaders not in ``excluded`` (``flags``: zeros, left zero); -1 when
    the list ran out before ``k`` while some rows below ``n_items`` are outside it."""
    flag_rows(flags, excluded, n_items, 1)
    m = 0
    for p in range(state[0]):
        if m == k:
            break
        r = rows[p]
        if r < n_items and not flags[r]:
            out_idx[m] = r
            m += 1
    flag_rows(flags, excluded, n_items, 0)
    if m < k and not (state[0] == state[1] and state[1] >= n_items):
        return -1
    return m


@njit(cache=True)
def listed_top_k(scores, listed, n_listed, excluded, flags, k, positive_only, out_idx, out_score):
    """:func:`top_k_flagged` (ties to the lower row) over the rows ``listed[:n_listed]``
    only (distinct rows, any order): every other row must score 0 with ``positive_only``."""
    n = flags.shape[0]
    flag_rows(flags, excluded, n, 1)
    m = 0
    for t in range(n_listed):
        i = listed[t]
        if flags[i]:
            continue
        s = scores[i]
        if positive_only and not (s > 0):
            continue
        m = offer(s, i, k, m, out_idx, out_score, False)
    flag_rows(flags, excluded, n, 0)
    return m


@njit(cache=True)
def add_similarity_row_listed(a, m, indptr, indices, values, out, listed, n_listed):
    """:func:`add_similarity_row`, listing in ``listed`` each entry of ``out`` that leaves 0
    (similarities are > 0, so ``listed`` holds exactly the non-zero entries); the new count.
    ``listed`` must have room for the row's length more."""
    if a >= m:
        return n_listed
    for t in range(indptr[a], indptr[a + 1]):
        b = indices[t]
        if out[b] == 0.0:
            listed[n_listed] = b
            n_listed += 1
        out[b] += values[t]
    return n_listed


@njit(cache=True)
def similarity_profile(hist, m, indptr, indices, values, out):
    """out (zeros, ``m`` entries) += the fitted similarity rows of ``hist`` in order: what
    :func:`add_similarity_row_listed` called for each of them writes, in one call.
    Returns (listed, count): the entries of ``out`` that left 0, in that order, in an
    array with room for at least 64."""
    total = 0
    for t in range(hist.shape[0]):
        a = hist[t]
        if a < m:
            total += indptr[a + 1] - indptr[a]
    listed = np.zeros(max(64, min(total, m)), dtype=np.int64)
    n = 0
    for t in range(hist.shape[0]):
        n = add_similarity_row_listed(hist[t], m, indptr, indices, values, out, listed, n)
    return listed, n


# ------------------------------------------------ ordered feature lists (recent features)
#
# Each feature's items in the order of the recent-features key among items sharing the
# same number of features: ``log_pop`` descending, newest first on ties.  Feature ``f``
# lists its items in ``pool[start[f] : start[f] + length[f]]``; ``where[i, c]`` is the
# place of item ``i`` in the list of its feature ``fx[i, c]``.  A query walks the lists
# of the recent items' features best first and stops a list once even an item sharing
# every feature it can share would rank below the k-th best found.


@njit(cache=True, inline="always")
def _set_where(r, f, p, fx, where):
    for c in range(fx.shape[1]):
        if fx[r, c] == f:
            where[r, c] = p
            return


@njit(cache=True)
def _feature_list_up(item, c, f, p, fx, log_pop, start, pool, where):
    """Move ``item`` (column ``c``, feature ``f``, now at place ``p``) up its list."""
    s = log_pop[item]
    lo = start[f]
    while p > lo:
        r = pool[p - 1]
        if not ranks_before(s, item, log_pop[r], r, True):
            break
        pool[p] = r
        _set_where(r, f, p, fx, where)
        p -= 1
    pool[p] = item
    where[item, c] = p


@njit(cache=True)
def feature_lists_insert(item, fx, log_pop, start, length, pool, where):
    """Put ``item`` in the list of each of its features ``fx[item]`` (each list must have
    room for one more)."""
    for c in range(n_listed(fx, item)):
        f = fx[item, c]
        p = start[f] + length[f]
        length[f] += 1
        _feature_list_up(item, c, f, p, fx, log_pop, start, pool, where)


@njit(cache=True)
def feature_lists_raise(item, fx, log_pop, start, pool, where):
    """``log_pop[item]`` rose: move the item up each of its lists."""
    for c in range(n_listed(fx, item)):
        f = fx[item, c]
        _feature_list_up(item, c, f, where[item, c], fx, log_pop, start, pool, where)


@njit(cache=True)
def feature_lists_remove(item, fx, start, length, pool, where):
    """Take ``item`` out of the lists of its features ``fx[item]`` (before they change)."""
    for c in range(n_listed(fx, item)):
        f = fx[item, c]
        end = start[f] + length[f] - 1
        for p in range(where[item, c], end):
            r = pool[p + 1]
            pool[p] = r
            _set_where(r, f, p, fx, where)
        length[f] -= 1
        where[item, c] = -1


@njit(cache=True)
def feature_list_move(f, to, start, length, pool, fx, where):
    """Copy feature ``f``'s list to ``pool[to:]`` (room for a longer list)."""
    for t in range(length[f]):
        r = pool[start[f] + t]
        pool[to + t] = r
        _set_where(r, f, to + t, fx, where)
    start[f] = to


@njit(cache=True)
def feature_lists_rebuild(fx, log_pop, n, listed, start, length, pool, where):
    """Every list afresh (after every ``log_pop`` changed): items ``0 .. n - 1`` that
    are ``listed``, inserted again."""
    for f in range(length.shape[0]):
        length[f] = 0
    for i in range(n):
        if listed[i]:
            feature_lists_insert(i, fx, log_pop, start, length, pool, where)


@njit(cache=True)
def recent_features_ordered(recent, n_recent, fx, n_items, mark, log_pop, excluded, flags, k,
                            start, length, pool, feats, visited, lead_rows, lead_state,
                            out_idx, out_score):  # fmt: skip
    """:func:`recent_features_top_k` from the ordered feature lists.

    Every item sharing a feature with the recent items is in that feature's list, which
    runs by ``log_pop`` descending, newest first on ties; an item further down a list
    shares at most ``fx.shape[1]`` features, so its key is at most
    ``fx.shape[1] * 1e3 + log_pop`` of the item reached (rounding is monotone): once
    that ranks below the k-th best candidate, the rest of the list cannot make it.  When
    a list was cut short, the items sharing nothing (keys ``log_pop`` only) are not
    needed unless the best of them reaches the k-th candidate: then -1 (the caller scans),
    as when the leader list runs out.
    """
    nf = 0
    for t in range(n_recent):
        j = recent[t]
        for c in range(n_listed(fx, j)):
            f = fx[j, c]
            if mark[f] == 0:
                mark[f] = 1
                feats[nf] = f
                nf += 1
    flag_rows(flags, excluded, n_items, 1)
    cand_idx = np.zeros(k, dtype=np.int64)
    cand_key = np.zeros(k, dtype=np.float64)
    most = np.float64(fx.shape[1]) * 1e3
    nv = 0
    mc = 0
    cut = False
    for q in range(nf):
        f = feats[q]
        for p in range(start[f], start[f] + length[f]):
            i = pool[p]
            if mc == k and not ranks_before(most + log_pop[i], n_items, cand_key[k - 1],
                                            cand_idx[k - 1], True):  # fmt: skip
                cut = True
                break
            if i >= n_items or flags[i] != 0:  # excluded, or visited already
                continue
            visited[nv] = i
            nv += 1
            s = _shared_count(i, fx, mark)
            flags[i] = 2
            key = np.float64(s) * 1e3 + log_pop[i]
            mc = offer(key, i, k, mc, cand_idx, cand_key, True)
    mr = 0
    rest_idx = np.zeros(k, dtype=np.int64)
    if not cut:  # the best of the rest: leaders not excluded and not visited
        for p in range(lead_state[0]):
            if mr == k:
                break
            r = lead_rows[p]
            if r < n_items and flags[r] == 0:
                rest_idx[mr] = r
                mr += 1
    for t in range(nv):
        flags[visited[t]] = 0
    flag_rows(flags, excluded, n_items, 0)
    for q in range(nf):
        mark[feats[q]] = 0
    if cut:
        # every item outside the lists keys log_pop, at most the best leader's
        if lead_state[0] > 0 and lead_state[1] >= n_items:  # rows[0]: the best of all
            r = lead_rows[0]
            if not ranks_before(cand_key[k - 1], cand_idx[k - 1], log_pop[r], n_items, True):
                return -1
        else:
            return -1
        for t in range(k):
            out_idx[t] = cand_idx[t]
            out_score[t] = cand_key[t]
        return k
    if mr < k and not (lead_state[0] == lead_state[1] and lead_state[1] >= n_items):
        return -1
    a = 0
    b = 0
    m = 0
    while m < k and (a < mc or b < mr):
        if b >= mr or (a < mc and ranks_before(cand_key[a], cand_idx[a], log_pop[rest_idx[b]],
                                               rest_idx[b], True)):  # fmt: skip
            out_idx[m] = cand_idx[a]
            out_score[m] = cand_key[a]
            a += 1
        else:
            out_idx[m] = rest_idx[b]
            out_score[m] = log_pop[rest_idx[b]]
            b += 1
        m += 1
    return m
