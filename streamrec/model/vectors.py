"""Numba helpers that build representations: entity vectors, trend, activity, context.

The named tables they take are described in :mod:`streamrec.model.state`.  Also the
xorshift32 generator the kernels draw negatives from: it needs only shifts and xors,
which never overflow an int64, so the Python twins draw exactly the same numbers.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from streamrec.model.dirty import mark

#: The decayed counts are rescaled before their weights overflow.
_TREND_RESCALE = 1e100
#: Reassociation and contraction let LLVM vectorise the float32 reductions; no-NaN and
#: no-Inf assumptions stay off, so the divergence checks keep working.
FASTMATH = {"reassoc", "contract", "nsz", "arcp"}
_MASK32 = 0xFFFFFFFF


@njit(cache=True, fastmath=FASTMATH, error_model="numpy", inline="always")
def next_uniform(rng):
    """Advance the xorshift32 state in ``rng[0]``; a uniform in [0, 1)."""
    x = rng[0]
    x ^= (x << 13) & _MASK32
    x ^= x >> 17
    x ^= (x << 5) & _MASK32
    rng[0] = x
    return (x - 1) / 4294967295.0


def seed_state(seed: int) -> int:
    """A valid non-zero xorshift32 state from any integer seed."""
    x = (seed * 2654435761 + 0x9E3779B9) & _MASK32
    return x or 1


@njit(cache=True, fastmath=FASTMATH, error_model="numpy", inline="always")
def sigmoid(x: float) -> float:
    if x >= 0:
        return 1.0 / (1.0 + math.exp(-x))
    z = math.exp(x)
    return z / (1.0 + z)


@njit(cache=True, fastmath=FASTMATH, error_model="numpy", inline="always")
def entity_vector(row, E, fx, fw, out):
    """out = sum of the weighted feature embeddings of entity ``row``."""
    out[:] = 0.0
    for k in range(fx.shape[1]):
        f = fx[row, k]
        if f < 0:
            break
        w = fw[row, k]
        for c in range(out.shape[0]):
            out[c] += w * E[f, c]


@njit(cache=True, fastmath=FASTMATH, error_model="numpy", inline="always")
def entity_bias(row, B, fx, fw):
    b = 0.0
    for k in range(fx.shape[1]):
        f = fx[row, k]
        if f < 0:
            break
        b += fw[row, k] * B[f]
    return b


@njit(cache=True, fastmath=FASTMATH, error_model="numpy", inline="always")
def trend_signal(item, popularity):
    """log1p(decayed positive count of ``item`` + its new-item pseudo-count)."""
    return math.log1p(
        popularity.trend[item] / popularity.trend_scale[0] + newness(item, popularity)
    )


@njit(cache=True, fastmath=FASTMATH, error_model="numpy", inline="always")
def newness(item, popularity):
    """The new-item pseudo-count of ``item`` (see :class:`PopularityTables`)."""
    prior, rate, n = popularity.newness[0], popularity.newness[1], popularity.newness[2]
    if prior == 0.0:
        return 0.0
    return prior * math.exp(-rate * (n - 1.0 - item))


@njit(cache=True, fastmath=FASTMATH, error_model="numpy", inline="always")
def activity_row(user, users):
    """Feature row of the user's activity bucket, or -1 when buckets are off."""
    activity, rows = users.activity, users.activity_rows
    if rows.shape[0] == 0:
        return -1
    n = activity[user]
    b = 0
    while n > 0 and b < rows.shape[0] - 1:
        n >>= 1
        b += 1
    return rows[b]


@njit(cache=True, fastmath=FASTMATH, error_model="numpy", inline="always")
def learned_affinity(user, users, table, base):
    """``base`` plus the user's learned values in ``table`` (its features', its activity
    bucket's); 0 when ``base`` is 0 (the signal is off)."""
    if base == 0.0:
        return 0.0
    a = base + entity_bias(user, table, users.feature_rows, users.feature_weights)
    r = activity_row(user, users)
    if r >= 0:
        a += table[r]
    return a


@njit(cache=True, fastmath=FASTMATH, error_model="numpy", inline="always")
def trend_affinity(user, users, trend_w):
    """How much the user follows the trend: trend_w plus its features' learned biases."""
    return learned_affinity(user, users, users.bias, trend_w)


@njit(cache=True, fastmath=FASTMATH, error_model="numpy", inline="always")
def continuity_affinity(user, users, cont_w):
    """Weight of the continuity signal for the user: cont_w plus its learned biases."""
    return learned_affinity(user, users, users.cont, cont_w)


@njit(cache=True, fastmath=FASTMATH, error_model="numpy", inline="always")
def recent_features(user, items, context, skip, out):
    """The shared (non-identity) feature rows of the user's recent items, into ``out``.

    Column 0 of an item's features is its identity: skipped, so the signal only carries
    what items have in common.  Item ``skip`` (the positive being learned, often viewed
    just before) is left out, so an item never supports itself.  Returns the count.
    """
    recent, ifx = context.last, items.feature_rows
    n = min(context.last_count[user], recent.shape[1])
    m = 0
    for t in range(n):
        j = recent[user, t]
        if j == skip:
            continue
        for k in range(1, ifx.shape[1]):
            f = ifx[j, k]
            if f < 0:
                break
            out[m] = f
            m += 1
    return m


@njit(cache=True, fastmath=FASTMATH, error_model="numpy", inline="always")
def continuity_signal(item, items, rfeat, m, n_items):
    """Sum of weight x idf of the item's shared features found among ``rfeat[:m]``.

    A feature most items share (a decade, a broad genre) says little: its idf
    ``log(n_items / count)`` is near zero; a brand or a narrow category says much.
    """
    ifx, ifw = items.feature_rows, items.feature_weights
    s = 0.0
    for k in range(1, ifx.shape[1]):
        f = ifx[item, k]
        if f < 0:
            break
        for t in range(m):
            if rfeat[t] == f:
                s += ifw[item, k] * math.log(n_items / max(items.feature_count[f], 1.0))
                break
    return s


@njit(cache=True, fastmath=FASTMATH, error_model="numpy", inline="always")
def add_recent_context(user, C, recent, recent_n, recent_w, ifx, ifw, ctx_k, out):
    """out += recent_w / n * sum of the context embeddings of the user's last n items.

    An item's context embedding is the weighted sum of the context rows of its first
    ``ctx_k`` features (1: its identity only; all: a new item's category or brand
    carries context from its first event).
    """
    width = recent.shape[1]
    if width == 0 or recent_w == 0.0:
        return
    n = min(recent_n[user], width)
    if n == 0:
        return
    scale = recent_w / n
    for t in range(n):
        j = recent[user, t]
        for k in range(min(ctx_k, ifx.shape[1])):
            f = ifx[j, k]
            if f < 0:
                break
            w = scale * ifw[j, k]
            for c in range(C.shape[1]):
                out[c] += w * C[f, c]


@njit(cache=True, fastmath=FASTMATH, error_model="numpy", inline="always")
def push_recent(user, item, recent, recent_n, u_flags, u_rows, u_n):
    """Append ``item`` to the user's ring of recent items (marking the user changed)."""
    width = recent.shape[1]
    if width == 0:
        return
    recent[user, recent_n[user] % width] = item
    recent_n[user] += 1
    mark(u_flags, u_rows, u_n, user)


@njit(cache=True, fastmath=FASTMATH, error_model="numpy", inline="always")
def push_positive(item, popularity, growth, ring_flags, ring_rows, ring_n, item_flags, item_rows,
                  item_n):  # fmt: skip
    """Record a positive event of ``item`` in the popularity ring and decayed counts.

    A rescale changes every non-zero count: those items are all marked.
    """
    pop_ring, pop_state, trend, trend_state = (
        popularity.ring,
        popularity.ring_count,
        popularity.trend,
        popularity.trend_scale,
    )
    slot = pop_state[0] % pop_ring.shape[0]
    if pop_ring[slot] != item:
        pop_ring[slot] = item
        mark(ring_flags, ring_rows, ring_n, slot)
    pop_state[0] += 1
    trend_state[0] *= growth
    trend[item] += trend_state[0]
    mark(item_flags, item_rows, item_n, item)
    if trend_state[0] > _TREND_RESCALE:
        trend /= trend_state[0]
        trend_state[0] = 1.0
        for r in range(trend.shape[0]):
            if trend[r] != 0.0:
                mark(item_flags, item_rows, item_n, r)


@njit(cache=True, fastmath=FASTMATH, error_model="numpy", inline="always")
def dot(a, b):
    s = np.float32(0.0)
    for c in range(a.shape[0]):
        s += a[c] * b[c]
    return s


@njit(cache=True, fastmath=FASTMATH, error_model="numpy", inline="always")
def user_representation(user, users, items, context, recent_w, ctx_k, out):
    U, ufx, ufw = users.emb, users.feature_rows, users.feature_weights
    C, recent, recent_n = context.emb, context.recent, context.recent_count
    entity_vector(user, U, ufx, ufw, out)
    r = activity_row(user, users)
    if r >= 0:
        for c in range(U.shape[1]):
            out[c] += U[r, c]
    ifx, ifw = items.feature_rows, items.feature_weights
    add_recent_context(user, C, recent, recent_n, recent_w, ifx, ifw, ctx_k, out)


@njit(cache=True, fastmath=FASTMATH, error_model="numpy", inline="always")
def item_score(item, u, affinity, items, popularity, out):
    """Score of ``item`` for user vector ``u`` and trend affinity; its vector goes to ``out``."""
    V, Vb, ifx, ifw = items.emb, items.bias, items.feature_rows, items.feature_weights
    entity_vector(item, V, ifx, ifw, out)
    s = dot(u, out) + entity_bias(item, Vb, ifx, ifw)
    if affinity != 0.0:
        s += affinity * trend_signal(item, popularity)
    return s
