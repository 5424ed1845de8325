"""Numba SGD kernels: one event at a time, BPR / WARP / logistic, row-wise Adagrad.

Every kernel is a plain ``@njit`` function over arrays and scalars; its pure-Python twin
is ``kernel.py_func`` (the parity tests run both on the same inputs).

Layout shared with :mod:`streamrec.model.hybrid`:

* ``U, Ub, Ua, Uba``: user-feature embeddings (rows x d, float32), biases, and the
  row-wise Adagrad accumulators of both.  ``V, Vb, Va, Vba``: the same for item features.
* ``ufx, ufw`` / ``ifx, ifw``: each entity's feature rows (padded with -1) and weights.
  A user vector is ``sum_k ufw[u, k] * U[ufx[u, k]]``, an item's likewise; the item bias
  is ``sum_k ifw[i, k] * Vb[ifx[i, k]]``.
* ``C, Ca``: context embeddings of items as they appear in a user's recent history;
  ``recent[u]`` is a ring of the user's last items and ``recent_n[u]`` how many were
  pushed.  The user representation adds ``recent_weight / n * sum C[recent items]``.
* ``pop_ring``/``pop_count``: the last positive items, for popularity-aware negatives.
* ``rand``: uniforms drawn by the caller (two per negative draw), so that the kernels
  are deterministic and the Python twins see the same draws.
* ``hp``: float64 hyperparameters, indexed by the ``HP_*`` constants below.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

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
HP_SIZE = 10

STAT_EVENTS = 0  # events with weight > 0 that were learned
STAT_PAIRS = 1  # (positive, negative) updates applied
STAT_NO_VIOLATOR = 2  # WARP events where no sampled negative violated the margin
STAT_LOSS = 3  # summed loss of the applied updates
STAT_SIZE = 4

#: Values above this in a score are taken as divergence (float32 overflows near 3.4e38).
_SCORE_LIMIT = 1e12


@njit(cache=True, fastmath=False)
def sigmoid(x: float) -> float:
    if x >= 0:
        return 1.0 / (1.0 + math.exp(-x))
    z = math.exp(x)
    return z / (1.0 + z)


@njit(cache=True)
def entity_vector(row, E, fx, fw, out):  # type: ignore[no-untyped-def]
    """out = sum of the weighted feature embeddings of entity ``row``."""
    out[:] = 0.0
    for k in range(fx.shape[1]):
        f = fx[row, k]
        if f < 0:
            break
        w = fw[row, k]
        for c in range(E.shape[1]):
            out[c] += w * E[f, c]


@njit(cache=True)
def entity_bias(row, B, fx, fw):  # type: ignore[no-untyped-def]
    b = 0.0
    for k in range(fx.shape[1]):
        f = fx[row, k]
        if f < 0:
            break
        b += fw[row, k] * B[f]
    return b


@njit(cache=True)
def add_recent_context(user, C, recent, recent_n, recent_w, out):  # type: ignore[no-untyped-def]
    """out += recent_w / n * sum of the context embeddings of the user's last n items."""
    width = recent.shape[1]
    if width == 0 or recent_w == 0.0:
        return
    n = min(recent_n[user], width)
    if n == 0:
        return
    scale = recent_w / n
    for t in range(n):
        j = recent[user, t]
        for c in range(C.shape[1]):
            out[c] += scale * C[j, c]


@njit(cache=True)
def push_recent(user, item, recent, recent_n):  # type: ignore[no-untyped-def]
    """Append ``item`` to the user's ring of recent items."""
    width = recent.shape[1]
    if width == 0:
        return
    recent[user, recent_n[user] % width] = item
    recent_n[user] += 1


@njit(cache=True)
def _dot(a, b):  # type: ignore[no-untyped-def]
    s = 0.0
    for c in range(a.shape[0]):
        s += a[c] * b[c]
    return s


@njit(cache=True)
def _adagrad_row(E, A, r, direction, scale, lr, decay, l2, tmp):  # type: ignore[no-untyped-def]
    """E[r] -= lr / sqrt(acc) * (scale * direction + l2 * E[r]); False if non-finite.

    ``decay < 0`` selects plain SGD (constant step ``lr``, accumulator untouched).
    """
    d = E.shape[1]
    g2 = 0.0
    for c in range(d):
        g = scale * direction[c] + l2 * E[r, c]
        tmp[c] = g
        g2 += g * g
    if decay < 0.0:
        acc = A[r]
        step = lr
    else:
        acc = decay * A[r] + g2 / d
        step = lr / math.sqrt(acc + 1e-12)
    for c in range(d):
        tmp[c] = E[r, c] - step * tmp[c]
        if not math.isfinite(tmp[c]):
            return False
    for c in range(d):
        E[r, c] = tmp[c]
    A[r] = acc
    return True


@njit(cache=True)
def _adagrad_scalar(B, A, r, g, lr, decay, l2):  # type: ignore[no-untyped-def]
    g = g + l2 * B[r]
    if decay < 0.0:
        acc = A[r]
        value = B[r] - lr * g
    else:
        acc = decay * A[r] + g * g
        value = B[r] - lr / math.sqrt(acc + 1e-12) * g
    if not math.isfinite(value):
        return False
    B[r] = value
    A[r] = acc
    return True


@njit(cache=True)
def _apply_grads(  # type: ignore[no-untyped-def]
    user,
    i,
    dsi,
    j,
    dsj,
    u,
    vi,
    vj,
    U,
    Ua,
    ufx,
    ufw,
    V,
    Vb,
    Va,
    Vba,
    ifx,
    ifw,
    C,
    Ca,
    recent,
    recent_n,
    hp,
    grad_u,
    tmp,
):
    """Apply dL/ds_i = dsi (item i) and dL/ds_j = dsj (item j, skipped when j < 0)."""
    lr = hp[HP_LR]
    blr = hp[HP_BIAS_LR]
    decay = -1.0 if hp[HP_SGD] != 0.0 else hp[HP_DECAY]
    l2 = hp[HP_L2]
    d = U.shape[1]
    for c in range(d):
        grad_u[c] = dsi * vi[c]
        if j >= 0:
            grad_u[c] += dsj * vj[c]
    ok = True
    for k in range(ufx.shape[1]):
        f = ufx[user, k]
        if f < 0:
            break
        ok &= _adagrad_row(U, Ua, f, grad_u, ufw[user, k], lr, decay, l2, tmp)
    width = recent.shape[1]
    if width > 0 and hp[HP_RECENT_W] != 0.0:
        n = min(recent_n[user], width)
        if n > 0:
            scale = hp[HP_RECENT_W] / n
            for t in range(n):
                ok &= _adagrad_row(C, Ca, recent[user, t], grad_u, scale, lr, decay, l2, tmp)
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
            ok &= _adagrad_scalar(Vb, Vba, f, w * ds, blr, decay, l2)
    return ok


@njit(cache=True)
def _sample_negative(r1, r2, n_items, pop_ring, pop_count, pop_frac):  # type: ignore[no-untyped-def]
    m = min(pop_count, pop_ring.shape[0])
    if m > 0 and r1 < pop_frac:
        return pop_ring[min(int(r2 * m), m - 1)]
    return min(int(r2 * n_items), n_items - 1)


@njit(cache=True)
def learn_batch(  # type: ignore[no-untyped-def]
    users,
    items,
    weights,
    rand,
    U,
    Ub,
    Ua,
    Uba,
    ufx,
    ufw,
    V,
    Vb,
    Va,
    Vba,
    ifx,
    ifw,
    C,
    Ca,
    recent,
    recent_n,
    pop_ring,
    pop_state,
    n_items,
    hp,
    stats,
):
    """Learn events ``(users[e], items[e], weights[e])`` in order.

    Events of weight 0 only enter the recent-items ring and the popularity ring when
    they are positive.  Returns -1 on success, or the index of the event whose update
    would have written a non-finite value (that event is left partly applied, never
    with NaN or infinity in the tables).
    """
    d = U.shape[1]
    u = np.empty(d, dtype=np.float32)
    vi = np.empty(d, dtype=np.float32)
    vj = np.empty(d, dtype=np.float32)
    grad_u = np.empty(d, dtype=np.float32)
    tmp = np.empty(d, dtype=np.float32)
    loss_code = int(hp[HP_LOSS])
    max_sampled = int(hp[HP_MAX_SAMPLED])
    n_neg = int(hp[HP_N_NEG])
    pop_frac = hp[HP_POP]
    recent_w = hp[HP_RECENT_W]
    n_rand = rand.shape[1]
    for e in range(users.shape[0]):
        user = users[e]
        i = items[e]
        w = weights[e]
        if w <= 0.0:
            continue
        entity_vector(user, U, ufx, ufw, u)
        add_recent_context(user, C, recent, recent_n, recent_w, u)
        entity_vector(i, V, ifx, ifw, vi)
        si = _dot(u, vi) + entity_bias(i, Vb, ifx, ifw)
        if not (abs(si) < _SCORE_LIMIT):
            return e
        ok = True
        if loss_code == LOSS_WARP:
            sampled = 0
            found = -1
            sj = 0.0
            for t in range(max_sampled):
                if 2 * t + 1 >= n_rand:
                    break
                sampled += 1
                jj = _sample_negative(
                    rand[e, 2 * t], rand[e, 2 * t + 1], n_items, pop_ring, pop_state[0], pop_frac
                )
                if jj == i:
                    continue
                entity_vector(jj, V, ifx, ifw, vj)
                sj = _dot(u, vj) + entity_bias(jj, Vb, ifx, ifw)
                if not (abs(sj) < _SCORE_LIMIT):
                    return e
                if sj > si - 1.0:
                    found = jj
                    break
            if found >= 0:
                rank_w = math.log(max(1.0, math.floor((n_items - 1) / sampled)))
                g = w * rank_w
                ok = _apply_grads(
                    user,
                    i,
                    -g,
                    found,
                    g,
                    u,
                    vi,
                    vj,
                    U,
                    Ua,
                    ufx,
                    ufw,
                    V,
                    Vb,
                    Va,
                    Vba,
                    ifx,
                    ifw,
                    C,
                    Ca,
                    recent,
                    recent_n,
                    hp,
                    grad_u,
                    tmp,
                )
                stats[STAT_PAIRS] += 1
                stats[STAT_LOSS] += g * (1.0 - si + sj)
            else:
                stats[STAT_NO_VIOLATOR] += 1
        elif loss_code == LOSS_BPR:
            for t in range(n_neg):
                if 2 * t + 1 >= n_rand:
                    break
                jj = _sample_negative(
                    rand[e, 2 * t], rand[e, 2 * t + 1], n_items, pop_ring, pop_state[0], pop_frac
                )
                if jj == i:
                    continue
                if t > 0:  # earlier negatives moved the vectors
                    entity_vector(user, U, ufx, ufw, u)
                    add_recent_context(user, C, recent, recent_n, recent_w, u)
                    entity_vector(i, V, ifx, ifw, vi)
                    si = _dot(u, vi) + entity_bias(i, Vb, ifx, ifw)
                entity_vector(jj, V, ifx, ifw, vj)
                sj = _dot(u, vj) + entity_bias(jj, Vb, ifx, ifw)
                if not (abs(sj) < _SCORE_LIMIT):
                    return e
                x = si - sj
                g = w * sigmoid(-x)
                ok &= _apply_grads(
                    user,
                    i,
                    -g,
                    jj,
                    g,
                    u,
                    vi,
                    vj,
                    U,
                    Ua,
                    ufx,
                    ufw,
                    V,
                    Vb,
                    Va,
                    Vba,
                    ifx,
                    ifw,
                    C,
                    Ca,
                    recent,
                    recent_n,
                    hp,
                    grad_u,
                    tmp,
                )
                stats[STAT_PAIRS] += 1
                stats[STAT_LOSS] += w * -math.log(max(sigmoid(x), 1e-30))
        else:  # logistic: the positive with label 1, sampled negatives with label 0
            g = w * (sigmoid(si) - 1.0)
            ok &= _apply_grads(
                user,
                i,
                g,
                -1,
                0.0,
                u,
                vi,
                vj,
                U,
                Ua,
                ufx,
                ufw,
                V,
                Vb,
                Va,
                Vba,
                ifx,
                ifw,
                C,
                Ca,
                recent,
                recent_n,
                hp,
                grad_u,
                tmp,
            )
            stats[STAT_LOSS] += w * -math.log(max(sigmoid(si), 1e-30))
            for t in range(n_neg):
                if 2 * t + 1 >= n_rand:
                    break
                jj = _sample_negative(
                    rand[e, 2 * t], rand[e, 2 * t + 1], n_items, pop_ring, pop_state[0], pop_frac
                )
                if jj == i:
                    continue
                entity_vector(user, U, ufx, ufw, u)
                add_recent_context(user, C, recent, recent_n, recent_w, u)
                entity_vector(jj, V, ifx, ifw, vj)
                sj = _dot(u, vj) + entity_bias(jj, Vb, ifx, ifw)
                if not (abs(sj) < _SCORE_LIMIT):
                    return e
                ok &= _apply_grads(
                    user,
                    jj,
                    w * sigmoid(sj),
                    -1,
                    0.0,
                    u,
                    vj,
                    vi,
                    U,
                    Ua,
                    ufx,
                    ufw,
                    V,
                    Vb,
                    Va,
                    Vba,
                    ifx,
                    ifw,
                    C,
                    Ca,
                    recent,
                    recent_n,
                    hp,
                    grad_u,
                    tmp,
                )
                stats[STAT_PAIRS] += 1
                stats[STAT_LOSS] += w * -math.log(max(1.0 - sigmoid(sj), 1e-30))
        if not ok:
            return e
        stats[STAT_EVENTS] += 1
        push_recent(user, i, recent, recent_n)
        pop_ring[pop_state[0] % pop_ring.shape[0]] = i
        pop_state[0] += 1
    return -1


@njit(cache=True)
def pair_loss(  # type: ignore[no-untyped-def]
    user,
    i,
    j,
    loss_code,
    U,
    ufx,
    ufw,
    V,
    Vb,
    ifx,
    ifw,
    C,
    recent,
    recent_n,
    recent_w,
):
    """The loss of one (user, positive i, negative j) pair at the current parameters.

    WARP's loss is taken with rank weight 1 (the hinge ``max(0, 1 - s_i + s_j)``); logistic
    is the positive's plus the negative's log loss.  Used by the gradient check.
    """
    d = U.shape[1]
    u = np.empty(d, dtype=np.float32)
    vi = np.empty(d, dtype=np.float32)
    vj = np.empty(d, dtype=np.float32)
    entity_vector(user, U, ufx, ufw, u)
    add_recent_context(user, C, recent, recent_n, recent_w, u)
    entity_vector(i, V, ifx, ifw, vi)
    entity_vector(j, V, ifx, ifw, vj)
    si = _dot(u, vi) + entity_bias(i, Vb, ifx, ifw)
    sj = _dot(u, vj) + entity_bias(j, Vb, ifx, ifw)
    if loss_code == LOSS_WARP:
        return max(0.0, 1.0 - si + sj)
    if loss_code == LOSS_BPR:
        return -math.log(sigmoid(si - sj))
    return -math.log(sigmoid(si)) - math.log(1.0 - sigmoid(sj))
