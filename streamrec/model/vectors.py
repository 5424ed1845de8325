"""Numba helpers that build representations: entity vectors, trend, activity, context.

The named tables they take are described in :mod:`streamrec.model.state`.  Also the
xorshift32 generator the kernels draw negatives from: it needs only shifts and xors,
which never overflow an int64, so the Python twins draw exactly the same numbers.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

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
    """log1p(decayed positive count of ``item``)."""
    return math.log1p(popularity.trend[item] / popularity.trend_scale[0])


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
def trend_affinity(user, users, trend_w):
    """How much the user follows the trend: trend_w plus its features' learned biases."""
    if trend_w == 0.0:
        return 0.0
    a = trend_w + entity_bias(user, users.bias, users.feature_rows, users.feature_weights)
    r = activity_row(user, users)
    if r >= 0:
        a += users.bias[r]
    return a


@njit(cache=True, fastmath=FASTMATH, error_model="numpy", inline="always")
def add_recent_context(user, C, recent, recent_n, recent_w, out):
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


@njit(cache=True, fastmath=FASTMATH, error_model="numpy")
def push_recent(user, item, recent, recent_n):
    """Append ``item`` to the user's ring of recent items."""
    width = recent.shape[1]
    if width == 0:
        return
    recent[user, recent_n[user] % width] = item
    recent_n[user] += 1


@njit(cache=True, fastmath=FASTMATH, error_model="numpy")
def push_positive(item, popularity, growth):
    """Record a positive event of ``item`` in the popularity ring and decayed counts."""
    pop_ring, pop_state, trend, trend_state = (
        popularity.ring,
        popularity.ring_count,
        popularity.trend,
        popularity.trend_scale,
    )
    pop_ring[pop_state[0] % pop_ring.shape[0]] = item
    pop_state[0] += 1
    trend_state[0] *= growth
    trend[item] += trend_state[0]
    if trend_state[0] > _TREND_RESCALE:
        trend /= trend_state[0]
        trend_state[0] = 1.0


@njit(cache=True, fastmath=FASTMATH, error_model="numpy", inline="always")
def dot(a, b):
    s = np.float32(0.0)
    for c in range(a.shape[0]):
        s += a[c] * b[c]
    return s


@njit(cache=True, fastmath=FASTMATH, error_model="numpy", inline="always")
def user_representation(user, users, context, recent_w, out):
    U, ufx, ufw = users.emb, users.feature_rows, users.feature_weights
    C, recent, recent_n = context.emb, context.recent, context.recent_count
    entity_vector(user, U, ufx, ufw, out)
    r = activity_row(user, users)
    if r >= 0:
        for c in range(U.shape[1]):
            out[c] += U[r, c]
    add_recent_context(user, C, recent, recent_n, recent_w, out)


@njit(cache=True, fastmath=FASTMATH, error_model="numpy", inline="always")
def item_score(item, u, affinity, items, popularity, out):
    """Score of ``item`` for user vector ``u`` and trend affinity; its vector goes to ``out``."""
    V, Vb, ifx, ifw = items.emb, items.bias, items.feature_rows, items.feature_weights
    entity_vector(item, V, ifx, ifw, out)
    s = dot(u, out) + entity_bias(item, Vb, ifx, ifw)
    if affinity != 0.0:
        s += affinity * trend_signal(item, popularity)
    return s
