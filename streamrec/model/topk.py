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

from streamrec.model.tables import capacity_for, grown

if TYPE_CHECKING:
    from streamrec.model.hybrid import HybridModel


@njit(cache=True)
def insert_best(s, i, k, m, out_idx, out_score):
    """Offer (s, i) to the best-first arrays holding ``m`` entries; the new ``m``.

    Candidates come in row order and only a strictly better score moves ahead, so ties
    go to the row offered first.
    """
    if m == k and not (s > out_score[m - 1]):
        return m
    pos = m if m < k else k - 1
    while pos > 0 and s > out_score[pos - 1]:
        out_score[pos] = out_score[pos - 1]
        out_idx[pos] = out_idx[pos - 1]
        pos -= 1
    out_score[pos] = s
    out_idx[pos] = i
    return m + 1 if m < k else m


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
def _exact(i, u, affinity, items, trend, inv, prior, newness, top, cont_aff, marks, proj, stamp,
           epoch):  # fmt: skip
    """Item ``i``'s float32 score, the value :func:`score_items` writes for it."""
    V, Vb, ifx, ifw = items.emb, items.bias, items.feature_rows, items.feature_weights
    s = 0.0
    for c in range(ifx.shape[1]):
        f = ifx[i, c]
        if f < 0:
            break
        s += ifw[i, c] * _projection(u, V, Vb, f, cont_aff, marks, proj, stamp, epoch)
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
    width = ifx.shape[1]
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
            b += a
            size += a
            for c in range(1, width):
                f = ifx[i, c]
                if f < 0:
                    break
                if stamp[f] != epoch:  # (a call per item costs more than the whole test)
                    _projection(u, V, Vb, f, cont_aff, marks, proj, stamp, epoch)
                x = ifw[i, c] * proj[f]
                b += x
                size += abs(x)
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


class ModelTopK:
    """The model's top k for a known user, bit for bit :meth:`HybridModel.top_k_rows`.

    Meant for a replay that asks for every user's top k between learning steps: it keeps
    per-item bounds (norms of the item feature rows, trend signals) up to date from the
    model's change log (:mod:`streamrec.model.dirty`), so a query costs one cheap pass
    over the catalogue plus a few exact scores (:func:`bounded_top_k`).  It takes the
    log's ``trained_items`` marks, which change sets do not use.
    """

    def __init__(self, model: HybridModel, pool: int = 32, full_scan_below: int = 2048) -> None:
        self.model = model
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

    def _refresh_norms(self, nf: int) -> None:
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

    def top_k(self, user: int, k: int, excluded: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Rows and float32 scores of the user's ``k`` best items not in ``excluded``."""
        model = self.model
        n, nf = model.n_items, len(model.items.feature_names)
        if n < self.full_scan_below:  # (the bounds start from scratch when they take over)
            return model.top_k_rows(user, k, exclude_seen=False, exclude=excluded)
        self._grow(n, nf)
        self._refresh_norms(nf)
        vec = model.user_vector_row(user, self.u)
        affinity = model.trend_affinity_row(user)
        cont_aff, marks = model.continuity_row(user)
        tables = model.kernel_tables()
        prior, rate = float(tables.popularity.newness[0]), float(tables.popularity.newness[1])
        newness = self.newness.get(prior, rate, n)
        self.epoch += 1
        idx = np.zeros(k, dtype=np.int64)
        val = np.zeros(k, dtype=np.float32)
        pool = np.zeros(max(self.pool_size, k), dtype=np.int64)
        m = bounded_top_k(vec, affinity, tables.items, tables.popularity, n, cont_aff, marks,
                          self.proj, self.stamp, self.epoch, self.norms, self.trend_bound,
                          self.trend_seen, newness, np.asarray(excluded, dtype=np.int32),
                          self.flags, self.bound, k, pool, np.zeros(pool.shape[0]), idx,
                          val)  # fmt: skip
        return idx[:m], val[:m]
