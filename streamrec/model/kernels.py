"""Numba SGD kernels: one event at a time, BPR / WARP / logistic, row-wise Adagrad.

Every kernel is a plain ``@njit`` function over arrays and scalars; its pure-Python twin
is ``kernel.py_func`` (the parity tests run both on the same inputs).

The arrays travel in four named tuples (:mod:`streamrec.model.state`), built by
:mod:`streamrec.model.hybrid`: ``users`` and ``items`` (:class:`SideTables`: a side's
feature embeddings, biases, Adagrad accumulators, each entity's feature rows and weights,
and the users' activity counts and activity-bucket rows), ``context`` (:class:`ContextTables`:
context embeddings of items in a user's recent history, and each user's ring of recent
items) and ``popularity`` (:class:`PopularityTables`: the ring of recent positives for
popularity-aware negatives, and exponentially decayed positive counts per item).  The
score adds ``affinity(user) * log1p(decayed count)``: a recency-popularity prior that
the embeddings learn around, where the user's trend affinity is ``trend_weight`` plus
the sum of its features' (otherwise unused) user biases, learned like any bias.

``rng`` is a one-element int64 array holding the state of a xorshift32 generator: the
kernels draw their negatives from it, so a run is deterministic for a given seed, the
state is checkpointed with the model, and the Python twins draw exactly the same numbers
(xorshift32 needs only shifts and xors, which never overflow an int64).  ``hp`` holds the float64
hyperparameters, indexed by the ``HP_*`` constants.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from streamrec.model.config import ModelConfig
from streamrec.model.dirty import mark, mark_feature_rows
from streamrec.model.prefetch import prefetch_draw_rows
from streamrec.model.vectors import (
    FASTMATH,
    activity_row,
    continuity_affinity,
    continuity_signal,
    item_score,
    next_uniform,
    push_positive,
    push_recent,
    recent_features,
    sigmoid,
    trend_affinity,
    trend_signal,
    user_representation,
)

LOSS_WARP = 0
LOSS_BPR = 1
LOSS_LOGISTIC = 2
LOSS_CODES = {"warp": LOSS_WARP, "bpr": LOSS_BPR, "logistic": LOSS_LOGISTIC}

HP_LR = 0
HP_BIAS_LR = 1
HP_DECAY = 2
HP_L2 = 3
HP_MAX_SAMPLED = 4
HP_N_NEG = 5
HP_POP = 6
HP_RECENT_W = 7
HP_LOSS = 8
HP_SGD = 9  # 1.0: plain SGD with a constant step (the gradient check uses it)
HP_BIAS_DECAY = 10
HP_TREND_W = 11
HP_TREND_GROWTH = 12  # 2 ** (1 / half-life): growth of the weight of each new positive
HP_RECENT_SEEN = 13  # 1.0: seen-only events join the user's recent items
HP_CONT_W = 14  # weight of the content-continuity signal (0: off)
HP_TREND_SEEN = 15  # weight of a seen-only event in the decayed counts
HP_CONT_LR = 16  # Adagrad step of the continuity weights
HP_CTX_K = 17  # an item's context: its first HP_CTX_K features (1: identity only)
HP_CONT_SAMPLED = 18  # the most negatives the continuity weights' WARP samples
HP_SHARED_LATER = 19  # 1.0: leave the popularity ring and counts to learn_shared (threads)
HP_CONT_SHARED = 20  # 1.0: with WARP, the continuity weights' WARP shares its draws
HP_SIZE = 21

STAT_EVENTS = 0  # events with weight > 0 that were learned
STAT_PAIRS = 1  # (positive, negative) updates applied
STAT_NO_VIOLATOR = 2  # WARP events where no sampled negative violated the margin
STAT_LOSS = 3  # summed loss of the applied updates
STAT_SIZE = 4


def hyperparameters(config: ModelConfig) -> np.ndarray:
    """The ``hp`` array the kernels read, from a model config."""
    hp = np.zeros(HP_SIZE, dtype=np.float64)
    hp[HP_LR] = config.lr
    hp[HP_BIAS_LR] = config.bias_lr
    hp[HP_DECAY] = config.accum_decay
    hp[HP_BIAS_DECAY] = config.bias_decay
    hp[HP_L2] = config.l2
    hp[HP_MAX_SAMPLED] = config.max_sampled
    hp[HP_N_NEG] = config.n_negatives
    hp[HP_POP] = config.pop_sampling
    hp[HP_RECENT_W] = config.recent_weight
    hp[HP_LOSS] = LOSS_CODES[config.loss]
    hp[HP_SGD] = 1.0 if config.optimizer == "sgd" else 0.0
    hp[HP_TREND_W] = config.trend_weight
    hp[HP_TREND_GROWTH] = 2.0 ** (1.0 / config.trend_half_life)
    hp[HP_RECENT_SEEN] = 1.0 if config.recent_include_seen else 0.0
    hp[HP_CONT_W] = config.continuity_weight
    hp[HP_TREND_SEEN] = config.trend_seen_weight
    hp[HP_CONT_LR] = config.continuity_lr
    hp[HP_CTX_K] = 1 << 30 if config.context_features else 1
    hp[HP_CONT_SAMPLED] = config.continuity_max_sampled
    hp[HP_CONT_SHARED] = 1.0 if config.continuity_shared_draws else 0.0
    return hp


#: Scores beyond this are taken as divergence (float32 overflows near 3.4e38).
_SCORE_LIMIT = 1e12
#: The largest finite float32: a value computed in float64 beyond it would be stored as
#: infinity in a float32 table.
_F32_MAX = 3.4028234663852886e38


@njit(cache=True, fastmath=FASTMATH, error_model="numpy", inline="always")
def _adagrad_row(E, A, r, direction, scale, lr, decay, l2, tmp):
    """E[r] -= lr / sqrt(acc) * (scale * direction + l2 * E[r]); False if non-finite.

    Row-wise Adagrad: one accumulator per row (the mean squared gradient), so a step
    costs one square root instead of one per coordinate.  ``decay < 0`` selects plain
    SGD (constant step ``lr``, accumulator untouched).  The new row is built in ``tmp``
    and written only if every value is finite, so a diverging step never reaches the
    table.
    """
    d = E.shape[1]
    sc = np.float32(scale)
    reg = np.float32(l2)
    g2 = np.float32(0.0)
    for c in range(d):
        g = sc * direction[c] + reg * E[r, c]
        tmp[c] = g
        g2 += g * g
    if decay < 0.0:
        acc = A[r]
        step = np.float32(lr)
    else:
        acc = decay * A[r] + g2 / d
        step = np.float32(lr / math.sqrt(acc + 1e-12))
    # each new value as the table will hold it (float32), compared: a sum of them was
    # the check, and compiled it passed infinities of both signs (their sum is NaN)
    finite = acc <= _F32_MAX
    for c in range(d):
        tmp[c] = E[r, c] - step * tmp[c]
        finite &= abs(tmp[c]) <= _F32_MAX  # (False for NaN too)
    if not finite:
        return False
    for c in range(d):
        E[r, c] = tmp[c]
    A[r] = acc
    return True


@njit(cache=True, fastmath=FASTMATH, error_model="numpy", inline="always")
def _adagrad_scalar(B, A, r, g, lr, decay, l2):
    g = g + l2 * B[r]
    if decay < 0.0:
        acc = A[r]
        value = B[r] - lr * g
    else:
        acc = decay * A[r] + g * g
        value = B[r] - lr / math.sqrt(acc + 1e-12) * g
    if not (abs(value) <= _F32_MAX and acc <= _F32_MAX):  # (False for NaN too)
        return False
    B[r] = value
    A[r] = acc
    return True


@njit(cache=True, fastmath=FASTMATH, error_model="numpy")
def _apply_grads(
    user, i, dsi, j, dsj, u, vi, vj, users, items, context, popularity, hp, grad_u, tmp
):
    """Apply dL/ds_i = dsi (item i) and dL/ds_j = dsj (item j, skipped when j < 0).

    Gradients are taken at the vectors ``u``, ``vi``, ``vj`` from before the update;
    the caller marks what it wrote (:func:`_mark_update`).
    """
    U, Ub, Ua, Uba = users.emb, users.bias, users.emb_acc, users.bias_acc
    ufx, ufw = users.feature_rows, users.feature_weights
    V, Vb, Va, Vba = items.emb, items.bias, items.emb_acc, items.bias_acc
    ifx, ifw = items.feature_rows, items.feature_weights
    C, Ca, recent, recent_n = context.emb, context.emb_acc, context.recent, context.recent_count
    lr = hp[HP_LR]
    blr = hp[HP_BIAS_LR]
    sgd = hp[HP_SGD] != 0.0
    decay = -1.0 if sgd else hp[HP_DECAY]
    bdecay = -1.0 if sgd else hp[HP_BIAS_DECAY]
    l2 = hp[HP_L2]
    for c in range(U.shape[1]):
        grad_u[c] = dsi * vi[c]
        if j >= 0:
            grad_u[c] += dsj * vj[c]
    ok = True
    learn_affinity = hp[HP_TREND_W] != 0.0
    if learn_affinity:  # d s / d affinity = the item's trend signal
        g_aff = dsi * trend_signal(i, popularity)
        if j >= 0:
            g_aff += dsj * trend_signal(j, popularity)
    for k in range(ufx.shape[1]):
        f = ufx[user, k]
        if f < 0:
            break
        ok &= _adagrad_row(U, Ua, f, grad_u, ufw[user, k], lr, decay, l2, tmp)
        if learn_affinity:
            ok &= _adagrad_scalar(Ub, Uba, f, ufw[user, k] * g_aff, blr, bdecay, l2)
    r = activity_row(user, users)
    if r >= 0:
        ok &= _adagrad_row(U, Ua, r, grad_u, 1.0, lr, decay, l2, tmp)
        if learn_affinity:
            ok &= _adagrad_scalar(Ub, Uba, r, g_aff, blr, bdecay, l2)
    width = recent.shape[1]
    if width > 0 and hp[HP_RECENT_W] != 0.0:
        n = min(recent_n[user], width)
        if n > 0:
            scale = hp[HP_RECENT_W] / n
            for t in range(n):
                jr = recent[user, t]
                for k in range(min(int(hp[HP_CTX_K]), ifx.shape[1])):
                    f = ifx[jr, k]
                    if f < 0:
                        break
                    ok &= _adagrad_row(C, Ca, f, grad_u, scale * ifw[jr, k], lr, decay, l2, tmp)
    for side in range(2):
        item = i if side == 0 else j
        ds = dsi if side == 0 else dsj
        if item < 0:
            continue
        for k in range(ifx.shape[1]):
            f = ifx[item, k]
            if f < 0:
                break
            w = ifw[item, k]
            ok &= _adagrad_row(V, Va, f, u, w * ds, lr, decay, l2, tmp)
            ok &= _adagrad_scalar(Vb, Vba, f, w * ds, blr, bdecay, l2)
    return ok


@njit(cache=True, fastmath=FASTMATH, error_model="numpy")
def _learn_continuity(
    user, i, w, si, u, aff, rng, users, items, popularity, hp, n_items, rfeat, m, vj
):
    """WARP on the full score ``base + caff * continuity``, stepping only the user's
    continuity weights (its features' and activity bucket's ``cont`` scalars), with
    draws of its own (the BPR and logistic losses; WARP shares its draws, see
    :func:`learn_batch`).

    The embeddings learn from the base score alone, so they still learn everything the
    features explain (cold start needs it) and the continuity weight learns how much the
    user's recent features add on top.  ``si`` is the positive's base score.  Returns
    ``(ok, wrote)``: ``wrote`` when the weights of the user's feature rows (and activity
    row) were stepped, for the change log.
    """
    caff = continuity_affinity(user, users, hp[HP_CONT_W])
    ci = continuity_signal(i, items, rfeat, m, n_items)
    full_i = si + caff * ci
    for sampled in range(1, int(hp[HP_CONT_SAMPLED]) + 1):
        jj = _sample_negative(rng, n_items, popularity, hp[HP_POP])
        if jj == i:
            continue
        cj = continuity_signal(jj, items, rfeat, m, n_items)
        if cj == ci:  # no gradient for the weight from this pair
            continue
        sj = item_score(jj, u, aff, items, popularity, vj) + caff * cj
        if sj > full_i - 1.0:
            return _step_continuity(user, w, sampled, cj - ci, users, hp, n_items), True
    return True, False


@njit(cache=True, fastmath=FASTMATH, error_model="numpy", inline="always")
def _step_continuity(user, w, sampled, dc, users, hp, n_items):
    """The continuity weights' WARP step for a violator found at draw ``sampled`` whose
    continuity signal exceeds the positive's by ``dc``; False if non-finite."""
    g = w * math.log(max(1.0, math.floor((n_items - 1) / sampled))) * dc
    sgd = hp[HP_SGD] != 0.0
    blr, bdecay, l2 = hp[HP_CONT_LR], -1.0 if sgd else hp[HP_BIAS_DECAY], hp[HP_L2]
    ok = True
    for k in range(users.feature_rows.shape[1]):
        f = users.feature_rows[user, k]
        if f < 0:
            break
        g_f = users.feature_weights[user, k] * g
        ok &= _adagrad_scalar(users.cont, users.cont_acc, f, g_f, blr, bdecay, l2)
    r = activity_row(user, users)
    if r >= 0:
        ok &= _adagrad_scalar(users.cont, users.cont_acc, r, g, blr, bdecay, l2)
    return ok


@njit(cache=True, fastmath=FASTMATH, error_model="numpy", inline="always")
def _mark_continuity(user, users, uf_f, uf_r, uf_n):
    """Mark the rows a continuity step wrote: the user's feature rows and activity row."""
    mark_feature_rows(uf_f, uf_r, uf_n, users.feature_rows, user)
    act = activity_row(user, users)
    if act >= 0:
        mark(uf_f, uf_r, uf_n, act)


@njit(cache=True, fastmath=FASTMATH, error_model="numpy", inline="always")
def _mark_update(user, i, j, act_row, recent, recent_n, ctx_on, ufx, ifx, ctx_k, if_f, if_r, if_n,
                 ti_f, ti_r, ti_n, uf_f, uf_r, uf_n, cx_f, cx_r, cx_n):  # fmt: skip
    """Mark what :func:`_apply_grads` wrote: every feature row of the user and of the
    items (``ufx``/``ifx``: feature rows padded with -1), the items themselves (in
    ``trained_items``, for readers of item vectors), the activity row and the
    context rows of the user's recent items (the rows of their first ``ctx_k``
    features).  The marks come as the
    ``(flags, rows, n_rows)`` arrays of each :class:`DirtyMarks`, unpacked once by
    :func:`learn_batch`: unpacking named tuples per update costs reference counting.
    """
    mark_feature_rows(uf_f, uf_r, uf_n, ufx, user)
    mark_feature_rows(if_f, if_r, if_n, ifx, i)
    mark(ti_f, ti_r, ti_n, i)
    if j >= 0:
        mark_feature_rows(if_f, if_r, if_n, ifx, j)
        mark(ti_f, ti_r, ti_n, j)
    if act_row >= 0:
        mark(uf_f, uf_r, uf_n, act_row)
    if ctx_on:
        for t in range(min(recent_n[user], recent.shape[1])):
            jr = recent[user, t]
            for k in range(min(ctx_k, ifx.shape[1])):
                f = ifx[jr, k]
                if f < 0:
                    break
                mark(cx_f, cx_r, cx_n, f)


@njit(cache=True, fastmath=FASTMATH, error_model="numpy", inline="always")
def _step(user, i, dsi, j, dsj, u, vi, vj, users, items, context, popularity, hp, grad_u, tmp,
          ctx_on, ctx_k, if_f, if_r, if_n, ti_f, ti_r, ti_n, uf_f, uf_r, uf_n, cx_f, cx_r,
          cx_n):  # fmt: skip
    """One update: :func:`_apply_grads`, then :func:`_mark_update` of what it wrote.

    Returns whether every value written was finite.
    """
    ok = _apply_grads(user, i, dsi, j, dsj, u, vi, vj, users, items, context, popularity, hp,
                      grad_u, tmp)  # fmt: skip
    _mark_update(user, i, j, activity_row(user, users), context.recent, context.recent_count,
                 ctx_on, users.feature_rows, items.feature_rows, ctx_k, if_f, if_r, if_n, ti_f,
                 ti_r, ti_n, uf_f, uf_r, uf_n, cx_f, cx_r, cx_n)  # fmt: skip
    return ok


@njit(cache=True, fastmath=FASTMATH, error_model="numpy", inline="always")
def _fresh_score(user, item, users, items, context, popularity, recent_w, ctx_k, trend_w, u, v):
    """Rebuild the user's vector into ``u``; return its trend affinity and ``item``'s score
    (``v``: the item's vector, as :func:`item_score` leaves it)."""
    user_representation(user, users, items, context, recent_w, ctx_k, u)
    aff = trend_affinity(user, users, trend_w)
    return aff, item_score(item, u, aff, items, popularity, v)


@njit(cache=True, fastmath=FASTMATH, error_model="numpy", inline="always")
def _sample_negative(rng, n_items, popularity, pop_frac):
    """A uniform item, or with probability ``pop_frac`` a recent positive."""
    ring = popularity.ring
    m = min(popularity.ring_count[0], ring.shape[0])
    if pop_frac > 0.0 and m > 0 and next_uniform(rng) < pop_frac:
        return ring[min(int(next_uniform(rng) * m), m - 1)]
    return min(int(next_uniform(rng) * n_items), n_items - 1)


@njit(cache=True, fastmath=FASTMATH, error_model="numpy", nogil=True)
def learn_batch(
    users_, items_, weights, rng, users, items, context, popularity, n_items, hp, stats, changes
):
    """Learn events ``(users_[e], items_[e], weights[e])`` in order.

    Every row written is marked in ``changes`` (:class:`streamrec.model.state.ChangeMarks`).

    Events of weight <= 0 are not learned (the caller marks them seen); with
    ``HP_RECENT_SEEN`` they join the user's recent items.  Returns -1 on
    success, or the index of the event whose update would have written a non-finite
    value: that event is left partly applied, never with NaN or infinity in a table.
    """
    d = users.emb.shape[1]
    u = np.empty(d, dtype=np.float32)
    vi = np.empty(d, dtype=np.float32)
    vj = np.empty(d, dtype=np.float32)
    grad_u = np.empty(d, dtype=np.float32)
    tmp = np.empty(d, dtype=np.float32)
    vf = np.empty(d, dtype=np.float32)  # the WARP violator's vector
    u_flags, u_rows, u_n = changes.users
    if_f, if_r, if_n = changes.item_features
    ti_f, ti_r, ti_n = changes.trained_items
    uf_f, uf_r, uf_n = changes.user_features
    cx_f, cx_r, cx_n = changes.context
    rg_f, rg_r, rg_n = changes.ring
    it_f, it_r, it_n = changes.items
    recent, recent_n = context.recent, context.recent_count
    ctx_on = recent.shape[1] > 0 and hp[HP_RECENT_W] != 0.0
    loss_code = int(hp[HP_LOSS])
    max_sampled = int(hp[HP_MAX_SAMPLED])
    n_neg = int(hp[HP_N_NEG])
    pop_frac = hp[HP_POP]
    recent_w = hp[HP_RECENT_W]
    trend_w = hp[HP_TREND_W]
    cont_w = hp[HP_CONT_W]
    ctx_k = int(hp[HP_CTX_K])
    trend_seen = hp[HP_TREND_SEEN]
    shared_now = hp[HP_SHARED_LATER] == 0.0
    cont_shared = hp[HP_CONT_SHARED] != 0.0
    c_budget = int(hp[HP_CONT_SAMPLED])
    # shared features of the user's last items (continuity signal), rebuilt per event
    rfeat = np.empty(context.last.shape[1] * items.feature_rows.shape[1], dtype=np.int32)
    # WARP's draws, made ahead on a copy of the generator so their rows can be prefetched
    ahead = rng.copy()
    drawn = np.empty(max(max_sampled, c_budget, 1), dtype=np.int64)
    for e in range(users_.shape[0]):
        user = users_[e]
        i = items_[e]
        w = weights[e]
        if w <= 0.0:  # seen only: no training, but it may enter the recent items
            if hp[HP_RECENT_SEEN] != 0.0:
                push_recent(user, i, recent, recent_n, u_flags, u_rows, u_n)
            # any event type joins the continuity ring
            push_recent(user, i, context.last, context.last_count, u_flags, u_rows, u_n)
            if trend_seen != 0.0:  # it counts in the trend, at the current decay
                popularity.trend[i] += trend_seen * popularity.trend_scale[0]
                if shared_now:  # (else provisional: see learn_shared)
                    mark(it_f, it_r, it_n, i)
            continue
        aff, si = _fresh_score(user, i, users, items, context, popularity, recent_w, ctx_k,
                               trend_w, u, vi)  # fmt: skip
        if not (abs(si) < _SCORE_LIMIT):
            return e
        ok = True
        m = 0
        if cont_w != 0.0:  # before the base update: si and u are the same event's
            m = recent_features(user, items, context, i, rfeat)
            if m > 0 and not (loss_code == LOSS_WARP and cont_shared):
                c_ok, c_wrote = _learn_continuity(user, i, w, si, u, aff, rng, users, items,
                                                  popularity, hp, n_items, rfeat, m, vj)  # fmt: skip
                ok &= c_ok
                if c_wrote:
                    _mark_continuity(user, users, uf_f, uf_r, uf_n)
        if loss_code == LOSS_WARP:
            # one series of draws for both WARPs: the base score's (the embeddings), and
            # among its first c_budget draws the full score's (the continuity weights)
            c_todo = m > 0 and cont_shared
            caff = ci = full_i = 0.0
            if c_todo:
                caff = continuity_affinity(user, users, cont_w)
                ci = continuity_signal(i, items, rfeat, m, n_items)
                full_i = si + caff * ci
            draws = max(max_sampled, c_budget) if c_todo else max_sampled
            ahead[0] = rng[0]  # the loop below draws the same items from rng
            for t in range(draws):
                drawn[t] = _sample_negative(ahead, n_items, popularity, pop_frac)
            prefetch_draw_rows(drawn, draws, items, popularity, aff != 0.0)
            found = -1
            found_at = 0
            sj = 0.0
            for sampled in range(1, draws + 1):
                jj = _sample_negative(rng, n_items, popularity, pop_frac)
                if jj == i:
                    continue
                base = found < 0 and sampled <= max_sampled
                cont = c_todo and sampled <= c_budget
                cj = 0.0
                if cont:
                    cj = continuity_signal(jj, items, rfeat, m, n_items)
                    cont = cj != ci  # (equal: no gradient for the weights from this pair)
                if not (base or cont):
                    continue
                s_j = item_score(jj, u, aff, items, popularity, vj)
                if not (abs(s_j) < _SCORE_LIMIT):
                    return e
                if cont and s_j + caff * cj > full_i - 1.0:
                    c_todo = False
                    ok &= _step_continuity(user, w, sampled, cj - ci, users, hp, n_items)
                    _mark_continuity(user, users, uf_f, uf_r, uf_n)
                if base and s_j > si - 1.0:
                    found, found_at, sj = jj, sampled, s_j
                    vf[:] = vj  # later draws reuse vj
                if found >= 0 and (not c_todo or sampled >= c_budget):
                    break
            if found >= 0:
                # LightFM's rank estimate: log(floor((n - 1) / samples needed))
                g = w * math.log(max(1.0, math.floor((n_items - 1) / found_at)))
                ok &= _step(user, i, -g, found, g, u, vi, vf, users, items, context, popularity,
                            hp, grad_u, tmp, ctx_on, ctx_k, if_f, if_r, if_n, ti_f, ti_r, ti_n,
                            uf_f, uf_r, uf_n, cx_f, cx_r, cx_n)  # fmt: skip
                stats[STAT_PAIRS] += 1
                stats[STAT_LOSS] += g * (1.0 - si + sj)
            else:
                stats[STAT_NO_VIOLATOR] += 1
        elif loss_code == LOSS_BPR:
            for t in range(n_neg):
                jj = _sample_negative(rng, n_items, popularity, pop_frac)
                if jj == i:
                    continue
                if t > 0:  # earlier negatives moved the vectors
                    aff, si = _fresh_score(user, i, users, items, context, popularity, recent_w,
                                           ctx_k, trend_w, u, vi)  # fmt: skip
                sj = item_score(jj, u, aff, items, popularity, vj)
                if not (abs(sj) < _SCORE_LIMIT):
                    return e
                x = si - sj
                g = w * sigmoid(-x)
                ok &= _step(user, i, -g, jj, g, u, vi, vj, users, items, context, popularity, hp,
                            grad_u, tmp, ctx_on, ctx_k, if_f, if_r, if_n, ti_f, ti_r, ti_n, uf_f,
                            uf_r, uf_n, cx_f, cx_r, cx_n)  # fmt: skip
                stats[STAT_PAIRS] += 1
                stats[STAT_LOSS] += w * -math.log(max(sigmoid(x), 1e-30))
        else:  # logistic: the positive with label 1, sampled negatives with label 0
            g = w * (sigmoid(si) - 1.0)
            ok &= _step(user, i, g, -1, 0.0, u, vi, vj, users, items, context, popularity, hp,
                        grad_u, tmp, ctx_on, ctx_k, if_f, if_r, if_n, ti_f, ti_r, ti_n, uf_f, uf_r,
                        uf_n, cx_f, cx_r, cx_n)  # fmt: skip
            stats[STAT_LOSS] += w * -math.log(max(sigmoid(si), 1e-30))
            for _t in range(n_neg):
                jj = _sample_negative(rng, n_items, popularity, pop_frac)
                if jj == i:
                    continue
                aff, sj = _fresh_score(user, jj, users, items, context, popularity, recent_w,
                                       ctx_k, trend_w, u, vj)  # fmt: skip
                if not (abs(sj) < _SCORE_LIMIT):
                    return e
                gj = w * sigmoid(sj)
                ok &= _step(user, jj, gj, -1, 0.0, u, vj, vi, users, items, context, popularity,
                            hp, grad_u, tmp, ctx_on, ctx_k, if_f, if_r, if_n, ti_f, ti_r, ti_n,
                            uf_f, uf_r, uf_n, cx_f, cx_r, cx_n)  # fmt: skip
                stats[STAT_PAIRS] += 1
                stats[STAT_LOSS] += w * -math.log(max(1.0 - sigmoid(sj), 1e-30))
        if not ok:
            return e
        stats[STAT_EVENTS] += 1
        users.activity[user] += 1
        mark(u_flags, u_rows, u_n, user)
        push_recent(user, i, recent, recent_n, u_flags, u_rows, u_n)
        push_recent(user, i, context.last, context.last_count, u_flags, u_rows, u_n)
        if shared_now:
            push_positive(i, popularity, hp[HP_TREND_GROWTH], rg_f, rg_r, rg_n, it_f, it_r, it_n)
        else:  # provisional, at the batch's scale: see learn_shared
            popularity.trend[i] += popularity.trend_scale[0]
    return -1


@njit(cache=True, fastmath=FASTMATH, error_model="numpy")
def learn_shared(items_, weights, refused, popularity, hp, changes):
    """The popularity ring and decayed counts of events ``(items_[e], weights[e])``, in
    order, skipping the events flagged in ``refused``: what :func:`learn_batch` leaves
    out under ``HP_SHARED_LATER``.

    Threads learning a batch's users apart share these (one ring position, one decay
    scale), so they are written after them, by one thread, exactly as :func:`learn_batch`
    alone writes them (they depend on the items and weights only).  Meanwhile the
    threads add each event to its item's count at the batch's scale, without decay or
    locks, so that the trend the batch learns against moves with it; the caller puts
    the counts back as they were before the batch, then calls this.
    """
    rg_f, rg_r, rg_n = changes.ring
    it_f, it_r, it_n = changes.items
    trend_seen = hp[HP_TREND_SEEN]
    for e in range(items_.shape[0]):
        if refused[e]:
            continue
        i = items_[e]
        if weights[e] > 0.0:
            push_positive(i, popularity, hp[HP_TREND_GROWTH], rg_f, rg_r, rg_n, it_f, it_r, it_n)
        elif trend_seen != 0.0:
            popularity.trend[i] += trend_seen * popularity.trend_scale[0]
            mark(it_f, it_r, it_n, i)


@njit(cache=True, fastmath=FASTMATH, error_model="numpy")
def pair_loss(user, i, j, loss_code, users, items, context, popularity, hp):
    """The loss of one (user, positive i, negative j) pair at the current parameters.

    WARP's is the hinge ``max(0, 1 - s_i + s_j)`` (rank weight 1); logistic's is the
    positive's plus the negative's log loss.  The gradient check differentiates it.
    """
    d = users.emb.shape[1]
    u = np.empty(d, dtype=np.float32)
    vbuf = np.empty(d, dtype=np.float32)
    aff, si = _fresh_score(user, i, users, items, context, popularity, hp[HP_RECENT_W],
                           int(hp[HP_CTX_K]), hp[HP_TREND_W], u, vbuf)  # fmt: skip
    sj = item_score(j, u, aff, items, popularity, vbuf)
    if loss_code == LOSS_WARP:
        return max(0.0, 1.0 - si + sj)
    if loss_code == LOSS_BPR:
        return -math.log(sigmoid(si - sj))
    return -math.log(sigmoid(si)) - math.log(1.0 - sigmoid(sj))
