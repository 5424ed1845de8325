"""Top k with exclusions in numba, and the model's exact top k without a full scan.

* :func:`top_k_excluding` / :func:`top_k_flagged` (:class:`TopK`): the ``k`` best of a
  score vector minus some rows, ties to the lower row (or the higher with
  ``newest_first``).  The exclusions are flags set and cleared in a persistent array:
  O(excluded), no mask of the catalogue per call.  :func:`insert_best` is the one
  insertion rule, shared with :func:`streamrec.model.scoring.top_k`.
* :func:`bounded_top_k` (:class:`ModelTopK`): the model's top k for a user, bit for bit
  what :meth:`HybridModel.top_k_rows` returns (same scores: same operations in the same
  order as :func:`streamrec.model.scoring.score_items`; same ties), scoring exactly only
  the items whose upper bound reaches the k-th best score.  The bounds use per-item
  state kept up to date from the model's change log (:mod:`streamrec.model.dirty`).
* :class:`NewnessTable`: the new-item pseudo-count ``prior * exp(-rate * j)`` of the item
  ``j`` rows below the newest, the same ``math.exp`` of the same argument as the score
  kernel, computed once per ``j``.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np
from numba import njit

from streamrec.model import kernels, vectors
from streamrec.model.tables import capacity_for, grown

if TYPE_CHECKING:
    from streamrec.model.hybrid import HybridModel
    from streamrec.model.state import KernelTables


#: ``ties`` of :func:`ranks_before`: an equal score goes to the lower row, to the higher
#: row, or never ahead of an entry already placed (the first offered keeps its place).
LOWER_ROW_FIRST, HIGHER_ROW_FIRST, FIRST_OFFERED_FIRST = 0, 1, 2


@njit(cache=True, inline="always")
def ranks_before(s, i, t, j, ties):
    """Whether (score s, row i) comes before (t, j) in a best-first list: a higher score,
    equal scores as ``ties`` says (``False``/``True`` mean lower/higher row first)."""
    if s > t:
        return True
    if s == t and ties != FIRST_OFFERED_FIRST:
        return i > j if ties else i < j
    return False


@njit(cache=True, inline="always")
def offer(s, i, k, m, out_idx, out_score, ties):
    """Offer (s, i) to the best-first arrays holding ``m`` entries (at most ``k``),
    ordered by :func:`ranks_before`; the new ``m``."""
    if m == k and not ranks_before(s, i, out_score[m - 1], out_idx[m - 1], ties):
        return m
    pos = m if m < k else k - 1
    while pos > 0 and ranks_before(s, i, out_score[pos - 1], out_idx[pos - 1], ties):
        out_score[pos] = out_score[pos - 1]
        out_idx[pos] = out_idx[pos - 1]
        pos -= 1
    out_score[pos] = s
    out_idx[pos] = i
    return m + 1 if m < k else m


@njit(cache=True)
def insert_best(s, i, k, m, out_idx, out_score):
    """:func:`offer` for candidates coming in row order: only a strictly better score
    moves ahead, so ties go to the row offered first."""
    return offer(s, i, k, m, out_idx, out_score, FIRST_OFFERED_FIRST)


@njit(cache=True)
def flag_rows(flags, excluded, n, value):
    for t in range(excluded.shape[0]):
        e = excluded[t]
        if 0 <= e < n:
            flags[e] = value


@njit(cache=True)
def top_k_excluding(scores, n, k, excluded, flags, out_idx, out_score):
    """The ``k`` best of ``scores[:n]`` not in ``excluded``, best first (ties: lower row).

    ``flags`` (zeros, at least
    ``n`` of them) marks the exclusions during the call and is left zero again.
    Returns how many were written.
    """
    flag_rows(flags, excluded, n, 1)
    m = 0
    for i in range(n):
        if flags[i]:
            continue
        m = insert_best(scores[i], i, k, m, out_idx, out_score)
    flag_rows(flags, excluded, n, 0)
    return m


@njit(cache=True)
def top_k_flagged(scores, n, k, excluded, flags, positive_only, newest_first, out_idx, out_score):
    """:func:`top_k_excluding` with options: only ``scores > 0`` (``positive_only``), or
    ties to the higher row (``newest_first``: rows are visited from the last down)."""
    flag_rows(flags, excluded, n, 1)
    m = 0
    for t in range(n):
        i = n - 1 - t if newest_first else t
        if flags[i]:
            continue
        s = scores[i]
        if positive_only and not (s > 0):
            continue
        m = insert_best(s, i, k, m, out_idx, out_score)
    flag_rows(flags, excluded, n, 0)
    return m


class TopK:
    """Top k with exclusions over score vectors, with a persistent exclusion array."""

    def __init__(self) -> None:
        self.flags = np.zeros(64, dtype=np.uint8)

    def top(
        self,
        scores: np.ndarray,
        k: int,
        excluded: np.ndarray,
        positive: bool = False,
        newest_first: bool = False,
    ) -> np.ndarray:
        """Rows of the ``k`` best ``scores`` not in ``excluded``, best first (ties: lower
        row, or higher with ``newest_first``); with ``positive`` only scores above 0."""
        n = scores.shape[0]
        if self.flags.shape[0] < n:
            self.flags = np.zeros(capacity_for(n, self.flags.shape[0]), dtype=np.uint8)
        idx = np.zeros(k, dtype=np.int64)
        val = np.zeros(k, dtype=scores.dtype)
        m = top_k_flagged(scores, n, k, np.asarray(excluded, dtype=np.int64), self.flags,
                          positive, newest_first, idx, val)  # fmt: skip
        return idx[:m]


@njit(cache=True)
def fill_newness(table, start, prior, rate):
    """table[j] = prior * exp(-rate * j) for j >= start (the score kernel's expression)."""
    for j in range(start, table.shape[0]):
        table[j] = prior * math.exp(-rate * (j + 0.0))


class NewnessTable:
    """``prior * exp(-rate * j)`` for j = 0, 1, ...: the new-item pseudo-count by age rank."""

    def __init__(self) -> None:
        self.key = (math.nan, math.nan)
        self.table = np.zeros(0, dtype=np.float64)

    def get(self, prior: float, rate: float, n: int) -> np.ndarray:
        """The table for ``(prior, rate)`` with at least ``n`` entries."""
        if (prior, rate) != self.key:
            self.key = (prior, rate)
            self.table = np.zeros(0, dtype=np.float64)
        have = self.table.shape[0]
        if have < n:
            table = np.zeros(capacity_for(n, max(have, 64)), dtype=np.float64)
            table[:have] = self.table
            fill_newness(table, have, prior, rate)
            self.table = table
        return self.table


@njit(cache=True, inline="always")
def _plus_features(b, size, fx, fw, row, start, u, V, Vb, cont_aff, marks, proj, stamp, epoch):
    """``b`` plus the weighted projections of ``row``'s features from column ``start`` on
    (each projection computed on first use), and ``size`` plus their absolute values:
    the sum and the scale of a bound."""
    for c in range(start, fx.shape[1]):
        f = fx[row, c]
        if f < 0:
            break
        if stamp[f] != epoch:  # (a call per item costs more than the whole test)
            _projection(u, V, Vb, f, cont_aff, marks, proj, stamp, epoch)
        x = fw[row, c] * proj[f]
        b += x
        size += abs(x)
    return b, size


@njit(cache=True)
def _projection(u, V, Vb, f, cont_aff, marks, proj, stamp, epoch):
    """proj[f] of this query (computed on first use), exactly as :func:`score_items` computes it."""
    if stamp[f] != epoch:
        s = 0.0
        for c in range(V.shape[1]):
            s += u[c] * V[f, c]
        p = np.float32(s + Vb[f])
        if cont_aff != 0.0:
            p = np.float32(p + cont_aff * marks[f])
        proj[f] = p
        stamp[f] = epoch
    return proj[f]


@njit(cache=True)
def project_many(u, V, Vb, rows, n_rows, cont_aff, marks, proj, stamp, epoch):
    """proj[f] for each f of ``rows[:n_rows]`` not computed yet in this query, with the
    values :func:`_projection` gives (each dot product summed in the same order), four
    rows at a time: independent sums keep the floating-point units busy."""
    d = V.shape[1]
    todo = np.empty(4, dtype=np.int64)
    t = 0
    while t < n_rows:
        m = 0
        while t < n_rows and m < 4:
            f = rows[t]
            t += 1
            if f >= 0 and stamp[f] != epoch:
                stamp[f] = epoch  # (a row listed twice is computed once)
                todo[m] = f
                m += 1
        if m == 4:
            project_four(u, V, Vb, todo[0], todo[1], todo[2], todo[3], cont_aff, marks, proj)
        else:
            for j in range(m):
                f = todo[j]
                s = 0.0
                for c in range(d):
                    s += u[c] * V[f, c]
                store_projection(f, s, Vb, cont_aff, marks, proj)


@njit(cache=True, inline="always")
def project_four(u, V, Vb, f0, f1, f2, f3, cont_aff, marks, proj):
    """proj[f] for four rows at once (independent sums keep the floating-point units
    busy), each summed in :func:`_projection`'s order."""
    s0 = 0.0
    s1 = 0.0
    s2 = 0.0
    s3 = 0.0
    for c in range(V.shape[1]):
        uc = u[c]
        s0 += uc * V[f0, c]
        s1 += uc * V[f1, c]
        s2 += uc * V[f2, c]
        s3 += uc * V[f3, c]
    store_projection(f0, s0, Vb, cont_aff, marks, proj)
    store_projection(f1, s1, Vb, cont_aff, marks, proj)
    store_projection(f2, s2, Vb, cont_aff, marks, proj)
    store_projection(f3, s3, Vb, cont_aff, marks, proj)


@njit(cache=True, inline="always")
def store_projection(f, s, Vb, cont_aff, marks, proj):
    """The tail of :func:`_projection`: bias and continuity added to the dot product."""
    p = np.float32(s + Vb[f])
    if cont_aff != 0.0:
        p = np.float32(p + cont_aff * marks[f])
    proj[f] = p


@njit(cache=True, inline="always")
def _exact(i, u, affinity, items, trend, inv, prior, newness, top, cont_aff, marks, proj, stamp,
           epoch):  # fmt: skip
    """Item ``i``'s float32 score, the value :func:`score_items` writes for it."""
    V, Vb, ifx, ifw = items.emb, items.bias, items.feature_rows, items.feature_weights
    s = 0.0
    for c in range(ifx.shape[1]):
        f = ifx[i, c]
        if f < 0:
            break
        if stamp[f] != epoch:  # (most are computed already: no call then)
            _projection(u, V, Vb, f, cont_aff, marks, proj, stamp, epoch)
        s += ifw[i, c] * proj[f]
    if affinity != 0.0:
        new = newness[top - i] if prior != 0.0 else 0.0
        s += affinity * math.log1p(trend[i] * inv + new)
    return np.float32(s)


@njit(cache=True)
def feature_norms(V, rows, norms):
    """norms[f] = the float64 Euclidean norm of V[f] for each f in ``rows``."""
    for t in range(rows.shape[0]):
        f = rows[t]
        s = 0.0
        for c in range(V.shape[1]):
            x = np.float64(V[f, c])
            s += x * x
        norms[f] = math.sqrt(s)


#: Relative slack added to every upper bound: float32 rounding of the scores is ~1e-7.
_SLACK = 1e-5


@njit(cache=True)
def bounded_top_k(u, affinity, items, popularity, n_items, cont_aff, marks, proj, stamp, epoch,
                  norms, trend_bound, trend_seen, newness, excluded, flags, bound, k, pool,
                  pool_bound, out_idx, out_score):  # fmt: skip
    """The model's top k (:func:`score_items` then :func:`top_k_excluding`), scoring
    exactly only the items that can make it.

    Each item's score is bounded from above without its first feature's ``d``-wide
    projection (Cauchy-Schwarz: ``|u . V[f]| <= |u| * norms[f]``) and without its trend
    ``log1p`` (``trend_bound[i]``: the value at the last change of ``trend[i]``; the
    decayed count and the new-item pseudo-count only shrink in between).  The best
    ``pool`` bounds are scored exactly, which gives a threshold (their ``k``-th best
    score); then every item whose bound reaches the threshold is scored exactly, in row
    order, with the tie rule of :func:`top_k_excluding`.  Items left out score below the
    threshold, so the answer is the full scan's, bit for bit.

    ``norms`` must be current for the first feature of every item; ``trend_seen`` starts
    as NaN (no tangent yet).
    """
    V, Vb, ifx, ifw = items.emb, items.bias, items.feature_rows, items.feature_weights
    trend = popularity.trend
    inv = 1.0 / popularity.trend_scale[0]
    prior = popularity.newness[0]
    top = int(popularity.newness[2]) - 1
    unorm = 0.0
    for c in range(u.shape[0]):
        x = np.float64(u[c])
        unorm += x * x
    unorm = math.sqrt(unorm)
    up = affinity if affinity > 0.0 else 0.0  # the trend term is >= 0 times the affinity
    flag_rows(flags, excluded, n_items, 1)
    for i in range(n_items):
        if flags[i]:
            bound[i] = -np.inf
            continue
        tb = 0.0
        if up != 0.0:
            x = trend[i] * inv + (newness[top - i] if prior != 0.0 else 0.0)
            xc = trend_seen[i]
            if not (0.5 * xc <= x <= xc):  # first use, a new positive, or halved since
                trend_bound[i] = math.log1p(x)
                trend_seen[i] = x
                xc = x
            # log1p is concave: its tangent at xc lies above it everywhere
            tb = trend_bound[i] + (x - xc) / (1.0 + xc)
        b = 0.0
        size = 0.0
        f = ifx[i, 0]
        if f >= 0:
            extra = abs(cont_aff * marks[f]) if cont_aff != 0.0 else 0.0
            a = abs(ifw[i, 0]) * (unorm * norms[f] + abs(Vb[f]) + extra)
            b, size = _plus_features(b + a, size + a, ifx, ifw, i, 1, u, V, Vb, cont_aff, marks,
                                     proj, stamp, epoch)  # fmt: skip
        if up != 0.0:
            b += up * tb
            size += up * (abs(trend_bound[i]) + abs(tb))
        bound[i] = b + _SLACK * size + 1e-30
    # the threshold: the k-th best exact score among the ``pool`` best bounds
    m = 0
    for i in range(n_items):
        if not flags[i]:
            m = insert_best(bound[i], i, pool.shape[0], m, pool, pool_bound)
    threshold = -np.inf
    if m >= k:
        best = np.full(k, -np.inf)
        for t in range(m):
            s = _exact(pool[t], u, affinity, items, trend, inv, prior, newness, top, cont_aff,
                       marks, proj, stamp, epoch)  # fmt: skip
            if s > best[k - 1]:
                pos = k - 1
                while pos > 0 and s > best[pos - 1]:
                    best[pos] = best[pos - 1]
                    pos -= 1
                best[pos] = s
        threshold = best[k - 1]
    m = 0
    for i in range(n_items):
        if flags[i] or bound[i] < threshold:
            continue
        s = _exact(i, u, affinity, items, trend, inv, prior, newness, top, cont_aff, marks, proj,
                   stamp, epoch)  # fmt: skip
        m = insert_best(s, i, k, m, out_idx, out_score)
    flag_rows(flags, excluded, n_items, 0)
    return m


@njit(cache=True)
def refresh_item_bounds(rows, items, popularity, norms, up_norm, up_bias, up_trend):
    """The user-independent parts of the bounds of items ``rows``, as of now.

    up_norm[i] = |w0| * |V[f0]| and up_bias[i] = |w0| * |Vb[f0]| (column 0: the item's
    identity); up_trend[i] = log1p(the item's decayed count now), which only falls until
    the item's next event.  (The new-item pseudo-count is bounded apart:
    log1p(a + b) <= log1p(a) + log1p(b) for a, b >= 0.)
    """
    Vb, ifx, ifw = items.bias, items.feature_rows, items.feature_weights
    trend = popularity.trend
    inv = 1.0 / popularity.trend_scale[0]
    for t in range(rows.shape[0]):
        i = rows[t]
        f = ifx[i, 0]
        if f >= 0:
            up_norm[i] = abs(ifw[i, 0]) * norms[f]
            up_bias[i] = abs(ifw[i, 0]) * abs(Vb[f])
        else:
            up_norm[i] = 0.0
            up_bias[i] = 0.0
        up_trend[i] = math.log1p(trend[i] * inv)


@njit(cache=True)
def refresh_groups(groups, g_head, i_next, up_norm, up_bias, up_trend, g_norm, g_bias, g_trend):
    """Each group's maxima of its members' bound parts, recomputed."""
    for t in range(groups.shape[0]):
        g = groups[t]
        a = 0.0
        b = 0.0
        c = 0.0
        i = g_head[g]
        while i >= 0:
            a = max(a, up_norm[i])
            b = max(b, up_bias[i])
            c = max(c, up_trend[i])
            i = i_next[i]
        g_norm[g] = a
        g_bias[g] = b
        g_trend[g] = c


@njit(cache=True)
def refresh_changed(rows, item_flags, group_flags, group_of, items, popularity, norms, up_norm,
                    up_bias, up_trend, g_head, i_next, g_norm, g_bias, g_trend):  # fmt: skip
    """:func:`refresh_item_bounds` for the distinct items of ``rows`` (repeats allowed, any
    order), then :func:`refresh_groups` for their distinct groups (``group_of``): what
    ``np.unique`` of both gave, in one call.  ``item_flags``/``group_flags``: zeros, left
    zero.  Each item's parts and each group's maxima are recomputed whole, so the order
    does not matter."""
    items_buf = np.empty(rows.shape[0], dtype=np.int64)
    groups_buf = np.empty(rows.shape[0], dtype=np.int64)
    m = 0
    ng = 0
    for t in range(rows.shape[0]):
        i = rows[t]
        if not item_flags[i]:
            item_flags[i] = 1
            items_buf[m] = i
            m += 1
            g = group_of[i]
            if not group_flags[g]:
                group_flags[g] = 1
                groups_buf[ng] = g
                ng += 1
    for t in range(m):
        item_flags[items_buf[t]] = 0
    for t in range(ng):
        group_flags[groups_buf[t]] = 0
    refresh_item_bounds(items_buf[:m], items, popularity, norms, up_norm, up_bias, up_trend)
    refresh_groups(groups_buf[:ng], g_head, i_next, up_norm, up_bias, up_trend, g_norm, g_bias,
                   g_trend)  # fmt: skip
    return m


@njit(cache=True)
def grouped_top_k(u, affinity, items, popularity, n_groups, cont_aff, marks, proj, stamp, epoch,
                  g_head, i_next, g_rows, g_weights, g_norm, g_bias, g_trend, up_norm, up_bias,
                  up_trend, newness, newest, excluded, flags, g_bound, g_done, k, pool, pool_bound,
                  out_idx, out_score, stats, shared, n_shared, shared_uses, norms):  # fmt: skip
    """:func:`bounded_top_k` by groups of items sharing their features past column 0.

    The items of a group share ``sum_c w_c proj[f_c]`` (c >= 1, ``g_rows``/``g_weights``),
    so a group is bounded from above by that sum plus its members' maxima of the
    identity bound ``|w0| (|u| |V[f0]| + |Vb[f0]|)`` and of the trend ``log1p``
    (continuity marks never touch column 0: :func:`vectors.recent_features` skips it),
    plus ``log1p`` of the new-item pseudo-count of the ``newest``-th newest item: the
    ``newest`` newest items are scored first, one by one.  The groups with the ``pool`` best bounds are scored first, which gives a threshold;
    then every group whose bound reaches the current k-th best score, item by item
    (each item's own bound first).  Items left out score strictly below the k-th best,
    so the answer is the full scan's, ties to the lower row, bit for bit.

    ``shared[:n_shared]``: the feature rows of the groups.  The projections of those
    used by several groups (``shared_uses``) and of the newest items' rows are computed
    up front by :func:`project_many`.  A row of a single group (a brand) is first
    bounded on norms (Cauchy-Schwarz, ``norms`` current for every feature row, as for the
    identity rows): a group whose bound on norms is already below the k-th best of the
    newest items is never scored, so its rows are not projected (``stats[3]`` counts
    those groups); the others get their rows projected and their exact bound.
    """
    V, Vb = items.emb, items.bias
    trend = popularity.trend
    inv = 1.0 / popularity.trend_scale[0]
    prior = popularity.newness[0]
    top = int(popularity.newness[2]) - 1
    n_items = int(popularity.newness[2])
    unorm = 0.0
    for c in range(u.shape[0]):
        x = np.float64(u[c])
        unorm += x * x
    unorm = math.sqrt(unorm)
    up = affinity if affinity > 0.0 else 0.0
    flag_rows(flags, excluded, n_items, 1)
    found = 0
    oldest_new = max(n_items - newest, 0)  # items from here on are scored one by one
    ifx = items.feature_rows
    fresh = np.empty((n_items - oldest_new) * ifx.shape[1], dtype=np.int64)
    nr = 0
    for i in range(oldest_new, n_items):
        if not flags[i]:
            for c in range(ifx.shape[1]):
                fresh[nr] = ifx[i, c]
                nr += 1
    project_many(u, V, Vb, fresh, nr, cont_aff, marks, proj, stamp, epoch)
    many = np.empty(n_shared, dtype=np.int64)
    n_many = 0
    for t in range(n_shared):
        if shared_uses[t] > 1:
            many[n_many] = shared[t]
            n_many += 1
    project_many(u, V, Vb, many, n_many, cont_aff, marks, proj, stamp, epoch)
    for i in range(oldest_new, n_items):
        if not flags[i]:
            s = _exact(i, u, affinity, items, trend, inv, prior, newness, top, cont_aff, marks,
                       proj, stamp, epoch)  # fmt: skip
            found = offer(s, i, k, found, out_idx, out_score, LOWER_ROW_FIRST)
            stats[2] += 1
    new_up = 0.0  # log1p of the pseudo-count of every older item, at most
    if prior != 0.0 and oldest_new > 0:
        new_up = math.log1p(newness[top - (oldest_new - 1)])
    # the k-th best of the newest items: it only rises from here
    threshold = out_score[k - 1] if found == k else -np.inf
    lazy = np.empty(n_groups * g_rows.shape[1], dtype=np.int64)  # rows to project
    n_lazy = 0
    # Sweep 0 bounds every group, exactly over the rows projected so far, on norms over
    # the others, and lists the rows of the groups whose bound on norms reaches the
    # threshold; those are projected, and sweep 1 gives those groups their exact bound.
    # (One loop for both: an inlined helper returning (b, size) made this loop ~17x
    # slower, and a helper writing ``g_bound[g]`` made the whole replay a quarter slower.)
    for sweep in range(2):
        for g in range(n_groups):
            if sweep == 1 and g_done[g] != 2:
                continue
            g_done[g] = 0
            if g_head[g] < 0:
                g_bound[g] = -np.inf
                continue
            a = unorm * g_norm[g] + g_bias[g]
            b = a
            size = a
            exact = True
            for c in range(g_rows.shape[1]):
                f = g_rows[g, c]
                if f < 0:
                    break
                if stamp[f] == epoch:
                    x = g_weights[g, c] * proj[f]
                    b += x
                    size += abs(x)
                else:  # |proj[f]| <= |u| |V[f]| + |Vb[f]| + |continuity|
                    extra = abs(cont_aff * marks[f]) if cont_aff != 0.0 else 0.0
                    x = abs(g_weights[g, c]) * (unorm * norms[f] + abs(Vb[f]) + extra)
                    b += x
                    size += x
                    exact = False
            if up != 0.0:
                b += up * (g_trend[g] + new_up)
                size += up * (g_trend[g] + new_up)
            g_bound[g] = b + _SLACK * size + 1e-30
            if exact:
                continue
            if g_bound[g] < threshold:
                stats[3] += 1  # a bound all the same: the group is never scored
                continue
            g_done[g] = 2  # its exact bound in sweep 1
            for c in range(g_rows.shape[1]):
                f = g_rows[g, c]
                if f < 0:
                    break
                if stamp[f] != epoch:
                    lazy[n_lazy] = f
                    n_lazy += 1
        if sweep == 0:
            project_many(u, V, Vb, lazy, n_lazy, cont_aff, marks, proj, stamp, epoch)
    m = 0
    for g in range(n_groups):
        if g_head[g] >= 0:
            m = insert_best(g_bound[g], g, pool.shape[0], m, pool, pool_bound)
    for t in range(m):  # the pool first, then every group still above the k-th best
        g = pool[t]
        found = _score_group(g, u, affinity, items, trend, inv, prior, newness, top, cont_aff,
                             marks, proj, stamp, epoch, g_head, i_next, up_norm, up_bias,
                             up_trend, unorm, up, new_up, oldest_new, flags, k, found, out_idx,
                             out_score, stats)  # fmt: skip
        g_done[g] = 1
    for g in range(n_groups):
        if g_done[g] or g_head[g] < 0:
            continue
        if found == k and g_bound[g] < out_score[k - 1]:
            continue
        found = _score_group(g, u, affinity, items, trend, inv, prior, newness, top, cont_aff,
                             marks, proj, stamp, epoch, g_head, i_next, up_norm, up_bias,
                             up_trend, unorm, up, new_up, oldest_new, flags, k, found, out_idx,
                             out_score, stats)  # fmt: skip
    flag_rows(flags, excluded, n_items, 0)
    return found


@njit(cache=True)
def _score_group(g, u, affinity, items, trend, inv, prior, newness, top, cont_aff, marks, proj,
                 stamp, epoch, g_head, i_next, up_norm, up_bias, up_trend, unorm, up, new_up,
                 oldest_new, flags, k, found, out_idx, out_score, stats):  # fmt: skip
    """Offer the group's items that can still make the top k (items from ``oldest_new``
    on were offered already); the new count."""
    V, Vb, ifx, ifw = items.emb, items.bias, items.feature_rows, items.feature_weights
    stats[0] += 1
    i = g_head[g]
    while i >= 0:
        if not flags[i] and i < oldest_new:
            stats[1] += 1
            if found == k:  # the item's own bound against the k-th best
                a = unorm * up_norm[i] + up_bias[i]
                b = a  # (:func:`_plus_features` written out, as in :func:`grouped_top_k`)
                size = a
                for c in range(1, ifx.shape[1]):
                    f = ifx[i, c]
                    if f < 0:
                        break
                    if stamp[f] != epoch:
                        _projection(u, V, Vb, f, cont_aff, marks, proj, stamp, epoch)
                    x = ifw[i, c] * proj[f]
                    b += x
                    size += abs(x)
                if up != 0.0:
                    b += up * (up_trend[i] + new_up)
                    size += up * (up_trend[i] + new_up)
                if b + _SLACK * size + 1e-30 < out_score[k - 1]:
                    i = i_next[i]
                    continue
            s = _exact(i, u, affinity, items, trend, inv, prior, newness, top, cont_aff, marks,
                       proj, stamp, epoch)  # fmt: skip
            found = offer(s, i, k, found, out_idx, out_score, LOWER_ROW_FIRST)
            stats[2] += 1
        i = i_next[i]
    return found


class ModelTopK:
    """The model's top k for a known user, bit for bit :meth:`HybridModel.top_k_rows`.

    Meant for a replay that asks for every user's top k between learning steps: it keeps
    per-item bounds (norms of the item feature rows, trend signals) up to date from the
    model's change log (:mod:`streamrec.model.dirty`), so a query costs one cheap pass
    over the catalogue plus a few exact scores (:func:`bounded_top_k`).  It takes the
    log's ``trained_items`` marks, which change sets do not use.
    """

    def __init__(
        self,
        model: HybridModel,
        pool: int = 32,
        full_scan_below: int = 2048,
        group_pool: int = 4,
        group_size: int = 256,
        refresh_every: int = 2048,
        newest: int = 128,
    ) -> None:
        self.model = model
        self.groups = ItemGroups(group_size)
        self.group_pool = group_pool
        #: The newest items are scored one by one (their new-item pseudo-count is large).
        self.newest = newest
        #: Groups scored, items bounded, items scored exactly, groups left out on their
        #: bound on norms (summed over queries).
        self.stats = np.zeros(4, dtype=np.int64)
        #: Every this many queries, every bound part is recomputed (maxima only go stale
        #: upwards in between: still bounds, less tight).
        self.refresh_every = refresh_every
        self.queries = 0
        self.full_refreshes = 0
        self.noted_events = 0  # events learned through :meth:`learned`
        self.synced_events = -1  # model.n_events at the last full refresh
        self.pending: list[int] = []  # items whose bound parts changed
        self.pool_size = pool
        #: Below this many items the model's own full scan is as fast: it answers.
        self.full_scan_below = full_scan_below
        self.newness = NewnessTable()
        self.flags = np.zeros(64, dtype=np.uint8)
        self.bound = np.zeros(64, dtype=np.float64)
        self.trend_bound = np.zeros(64, dtype=np.float64)
        self.trend_seen = np.full(64, np.nan, dtype=np.float64)
        self.proj = np.zeros(64, dtype=np.float32)
        self.stamp = np.zeros(64, dtype=np.int64)
        self.norms = np.zeros(64, dtype=np.float64)
        self.normed = 0  # feature rows 0 .. normed - 1 have norms (unless trained since)
        self.epoch = 0
        self.u = np.zeros(model.dim, dtype=np.float32)
        self.ctx_k = int(model.hp[kernels.HP_CTX_K])
        #: Continuity marks (:meth:`_user_state`) and the rows set in them.
        self.marks = np.zeros(64, dtype=np.float32)
        self.no_rows = np.zeros(0, dtype=np.int32)
        self.marked = self.no_rows
        self.gflags = np.zeros(64, dtype=np.uint8)  # per group, for :func:`refresh_changed`
        self.group_pool_rows = np.zeros(max(group_pool, 1), dtype=np.int64)
        self.group_pool_bounds = np.zeros(max(group_pool, 1), dtype=np.float64)

    def _grow(self, n: int, nf: int) -> None:
        if self.flags.shape[0] < n:
            cap = capacity_for(n, self.flags.shape[0])
            self.flags = np.zeros(cap, dtype=np.uint8)
            self.bound = np.zeros(cap, dtype=np.float64)
            self.trend_bound = grown(self.trend_bound, cap)
            self.trend_seen = grown(self.trend_seen, cap, np.nan)
        if self.proj.shape[0] < nf:
            cap = capacity_for(nf, self.proj.shape[0])
            self.proj = np.zeros(cap, dtype=np.float32)
            self.stamp = grown(self.stamp, cap)
            self.norms = grown(self.norms, cap)

    def learned(self, items: np.ndarray) -> None:
        """The model learned events of these item rows (a ``learn_rows`` call): their trend
        rose.  Events the ranker is not told about cost a full refresh of the bounds."""
        self.pending.extend(np.asarray(items).tolist())
        self.noted_events += len(items)

    def features_changed(self, item: int) -> None:
        """Item row ``item`` got new features (``add_item`` of a known item)."""
        self.groups.refeature(self.model, item)
        self.pending.append(item)

    def _refresh_norms(self, nf: int) -> np.ndarray:
        model = self.model
        changes = model.changes
        trained = changes.trained_items.take(ordered=False)
        stale = model.items.fx.idx[trained].ravel()
        stale = stale[stale >= 0]
        emb = model.items.table.emb
        if nf > self.normed:
            stale = np.concatenate([stale, np.arange(self.normed, nf, dtype=np.int32)])
            self.normed = nf
        if len(stale):
            feature_norms(emb, np.ascontiguousarray(stale, dtype=np.int64), self.norms)
        return trained

    def _user_state(self, user: int, tables: KernelTables) -> tuple[np.ndarray, float, float]:
        """(vector, trend affinity, continuity weight) of user row ``user``, and its
        continuity marks in ``self.marks``: the values of :meth:`HybridModel.user_vector_row`,
        :meth:`~HybridModel.trend_affinity_row` and :meth:`~HybridModel.continuity_row` (the
        same compiled functions, the same arguments), from one set of kernel tables, with
        only the marks set at the previous query cleared."""
        model = self.model
        cfg = model.config
        vec = self.u
        vectors.user_representation(user, tables.users, tables.items, tables.context,
                                    cfg.recent_weight, self.ctx_k, vec)  # fmt: skip
        affinity = float(vectors.trend_affinity(user, tables.users, cfg.trend_weight))
        nf = len(model.items.feature_names)
        if self.marks.shape[0] < nf:
            self.marks = np.zeros(capacity_for(nf, self.marks.shape[0]), dtype=np.float32)
        elif self.marked.shape[0]:
            self.marks[self.marked] = 0.0
        self.marked = self.no_rows
        weight = float(vectors.continuity_affinity(user, tables.users, cfg.continuity_weight))
        if weight != 0.0:
            rf = np.empty(model.last.shape[1] * tables.items.feature_rows.shape[1], np.int32)
            m = vectors.recent_features(user, tables.items, tables.context, -1, rf)
            self.marks[rf[:m]] = np.log(
                model.n_items / np.maximum(model.items.table.count[rf[:m]], 1.0)
            )
            self.marked = rf[:m]
        return vec, affinity, weight

    def top_k(self, user: int, k: int, excluded: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Rows and float32 scores of the user's ``k`` best items not in ``excluded``."""
        model = self.model
        n, nf = model.n_items, len(model.items.feature_names)
        if n < self.full_scan_below:  # (the bounds start from scratch when they take over)
            return model.top_k_rows(user, k, exclude_seen=False, exclude=excluded)
        self._grow(n, nf)
        trained = self._refresh_norms(nf)
        tables = model.kernel_tables()
        vec, affinity, cont_aff = self._user_state(user, tables)
        marks = self.marks
        prior, rate = float(tables.popularity.newness[0]), float(tables.popularity.newness[1])
        newness = self.newness.get(prior, rate, n)
        self.epoch += 1
        idx = np.zeros(k, dtype=np.int64)
        val = np.zeros(k, dtype=np.float32)
        excl = np.asarray(excluded, dtype=np.int32)
        if prior >= 0.0 and rate >= 0.0:  # the trend argument only falls between events
            groups = self.groups
            groups.assign(model, n)
            full = model.n_events != self.synced_events + self.noted_events or (
                self.queries % self.refresh_every == 0
            )
            self.queries += 1
            if full:
                self.full_refreshes += 1
                self.synced_events, self.noted_events = model.n_events, 0
                groups.take_new()
                groups.refresh(tables, newness, self.norms, np.arange(n, dtype=np.int64), True)
            else:
                rows = np.concatenate([
                    np.asarray(self.pending, dtype=np.int64), trained.astype(np.int64),
                    groups.take_new(),
                ])  # fmt: skip
                if rows.shape[0]:
                    if self.gflags.shape[0] < groups.n:
                        self.gflags = np.zeros(capacity_for(groups.n, self.gflags.shape[0]),
                                               dtype=np.uint8)  # fmt: skip
                    refresh_changed(rows, self.flags, self.gflags, groups.group, tables.items,
                                    tables.popularity, self.norms, groups.up_norm,
                                    groups.up_bias, groups.up_trend, groups.head, groups.next,
                                    groups.max_norm, groups.max_bias, groups.max_trend)  # fmt: skip
            self.pending.clear()
            m = grouped_top_k(vec, affinity, tables.items, tables.popularity, groups.n,
                              cont_aff, marks, self.proj, self.stamp, self.epoch, groups.head,
                              groups.next, groups.rows, groups.weights, groups.max_norm,
                              groups.max_bias, groups.max_trend, groups.up_norm, groups.up_bias,
                              groups.up_trend, newness, self.newest, excl, self.flags,
                              groups.bound, groups.done, k, self.group_pool_rows,
                              self.group_pool_bounds, idx, val, self.stats,
                              groups.shared, groups.n_shared, groups.shared_uses,
                              self.norms)  # fmt: skip
            return idx[:m], val[:m]
        pool = np.zeros(max(self.pool_size, k), dtype=np.int64)
        m = bounded_top_k(vec, affinity, tables.items, tables.popularity, n, cont_aff, marks,
                          self.proj, self.stamp, self.epoch, self.norms, self.trend_bound,
                          self.trend_seen, newness, excl, self.flags, self.bound, k, pool,
                          np.zeros(pool.shape[0]), idx, val)  # fmt: skip
        return idx[:m], val[:m]


class ItemGroups:
    """Items grouped by their features past column 0 (the identity), for
    :func:`grouped_top_k`: at most ``size`` items a group, members chained by ``next``.

    Per item the user-independent bound parts (``up_*``), per group their maxima
    (``max_*``), refreshed for the items whose parts changed (:meth:`refresh`).
    """

    def __init__(self, size: int = 256) -> None:
        self.size = size
        self.n = 0  # groups
        self.assigned = 0  # items 0 .. assigned - 1 have a group
        self.open: dict[bytes, int] = {}  # signature -> the group taking new members
        self.key: list[bytes] = []  # per item
        self.group = np.zeros(64, dtype=np.int64)  # per item
        self.next = np.full(64, -1, dtype=np.int64)
        self.prev = np.full(64, -1, dtype=np.int64)
        self.up_norm = np.zeros(64, dtype=np.float64)
        self.up_bias = np.zeros(64, dtype=np.float64)
        self.up_trend = np.zeros(64, dtype=np.float64)
        self.head = np.full(64, -1, dtype=np.int64)  # per group
        self.count = np.zeros(64, dtype=np.int64)
        self.rows = np.full((64, 1), -1, dtype=np.int64)
        self.weights = np.zeros((64, 1), dtype=np.float32)
        self.max_norm = np.zeros(64, dtype=np.float64)
        self.max_bias = np.zeros(64, dtype=np.float64)
        self.max_trend = np.zeros(64, dtype=np.float64)
        self.bound = np.zeros(64, dtype=np.float64)
        self.done = np.zeros(64, dtype=np.uint8)
        self.new: list[int] = []  # items (re)grouped since the last refresh
        #: The distinct feature rows of the groups (``rows``), in order of first use.
        self.shared = np.zeros(64, dtype=np.int64)
        self.n_shared = 0
        #: How many groups were made with each of them (a row of one group is projected
        #: only if the group's bound on norms reaches the k-th best: :func:`grouped_top_k`).
        self.shared_uses = np.zeros(64, dtype=np.int64)
        self._shared_index: dict[int, int] = {}

    def take_new(self) -> np.ndarray:
        new = np.asarray(self.new, dtype=np.int64)
        self.new = []
        return new

    def _signature(self, model: HybridModel, item: int) -> tuple[bytes, np.ndarray, np.ndarray]:
        idx, w = model.items.fx.idx[item, 1:], model.items.fx.w[item, 1:]
        keep = idx >= 0
        rows, weights = idx[keep].astype(np.int64), w[keep].astype(np.float32)
        return rows.tobytes() + b"|" + weights.tobytes(), rows, weights

    def _new_group(self, rows: np.ndarray, weights: np.ndarray) -> int:
        g = self.n
        if g >= self.head.shape[0]:
            cap = capacity_for(g + 1, self.head.shape[0])
            self.head = grown(self.head, cap, -1)
            self.count = grown(self.count, cap)
            self.rows = grown(self.rows, cap, -1)
            self.weights = grown(self.weights, cap)
            for name in ("max_norm", "max_bias", "max_trend", "bound"):
                setattr(self, name, grown(getattr(self, name), cap))
            self.done = grown(self.done, cap)
        if rows.shape[0] > self.rows.shape[1]:
            wider = np.full((self.rows.shape[0], rows.shape[0]), -1, dtype=np.int64)
            wider[:, : self.rows.shape[1]] = self.rows
            wide_w = np.zeros((self.rows.shape[0], rows.shape[0]), dtype=np.float32)
            wide_w[:, : self.weights.shape[1]] = self.weights
            self.rows, self.weights = wider, wide_w
        for r in rows.tolist():
            t = self._shared_index.get(r, -1)
            if t < 0:
                t = self._shared_index[r] = self.n_shared
                if self.n_shared == self.shared.shape[0]:
                    self.shared = grown(self.shared, 2 * self.n_shared)
                    self.shared_uses = grown(self.shared_uses, 2 * self.n_shared)
                self.shared[self.n_shared] = r
                self.n_shared += 1
            self.shared_uses[t] += 1
        self.rows[g] = -1
        self.weights[g] = 0.0
        self.rows[g, : rows.shape[0]] = rows
        self.weights[g, : rows.shape[0]] = weights
        self.n = g + 1
        return g

    def _join(self, model: HybridModel, item: int) -> None:
        key, rows, weights = self._signature(model, item)
        g = self.open.get(key, -1)
        if g < 0 or self.count[g] >= self.size:
            g = self._new_group(rows, weights)
            self.open[key] = g
        if item < len(self.key):
            self.key[item] = key
        else:
            self.key.append(key)
        self.group[item] = g
        self.prev[item] = -1
        self.next[item] = self.head[g]
        if self.head[g] >= 0:
            self.prev[self.head[g]] = item
        self.head[g] = item
        self.count[g] += 1
        self.new.append(item)

    def assign(self, model: HybridModel, n: int) -> None:
        """Give items ``assigned .. n - 1`` their groups."""
        if n > self.group.shape[0]:
            cap = capacity_for(n, self.group.shape[0])
            self.group = grown(self.group, cap)
            self.next, self.prev = grown(self.next, cap, -1), grown(self.prev, cap, -1)
            self.up_norm, self.up_bias = grown(self.up_norm, cap), grown(self.up_bias, cap)
            self.up_trend = grown(self.up_trend, cap)
        for item in range(self.assigned, n):
            self._join(model, item)
        self.assigned = max(self.assigned, n)

    def refeature(self, model: HybridModel, item: int) -> None:
        """Move the item to the group of its new features (if they changed)."""
        if item >= self.assigned or self._signature(model, item)[0] == self.key[item]:
            return
        g = int(self.group[item])
        p, q = int(self.prev[item]), int(self.next[item])
        if p >= 0:
            self.next[p] = q
        else:
            self.head[g] = q
        if q >= 0:
            self.prev[q] = p
        self.count[g] -= 1
        self.new.append(item)  # its old group's maxima stay valid (stale upwards)
        self._join(model, item)

    def refresh(
        self, tables: KernelTables, newness: np.ndarray, norms: np.ndarray, rows: np.ndarray,
        full: bool,
    ) -> None:  # fmt: skip
        """Recompute the bound parts of ``rows`` and the maxima of their groups (all with
        ``full``)."""
        if not len(rows):
            return
        refresh_item_bounds(rows, tables.items, tables.popularity, norms,
                            self.up_norm, self.up_bias, self.up_trend)  # fmt: skip
        groups = np.arange(self.n, dtype=np.int64) if full else np.unique(self.group[rows])
        refresh_groups(groups, self.head, self.next, self.up_norm, self.up_bias, self.up_trend,
                       self.max_norm, self.max_bias, self.max_trend)  # fmt: skip
