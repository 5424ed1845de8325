"""The arrays the numba kernels read and write, as named tuples.

numba compiles ``NamedTuple`` arguments into plain structs, so a kernel reads
``users.activity[user]`` instead of ``users[6][user]`` at no cost.  The tables
themselves are owned by :class:`streamrec.model.hybrid.HybridModel`, which builds these
tuples (views, not copies) before each kernel call.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np


class SideTables(NamedTuple):
    """One side's (users' or items') feature embeddings and what builds an entity's vector.

    ``emb`` (rows x d, float32) and ``bias`` are the feature embeddings and biases,
    ``emb_acc``/``bias_acc`` their row-wise Adagrad accumulators.  An entity's vector is
    ``sum_k feature_weights[e, k] * emb[feature_rows[e, k]]`` (rows padded with -1).
    ``feature_count[f]``: how many entities have feature ``f`` (on the item side, the
    continuity signal weighs a shared feature by its idf, ``log(n_items / count)``).

    User side only (empty arrays on the item side): ``activity[u]`` counts the user's
    positive events and ``activity_rows[b]`` is the feature row of bucket
    ``b = bit_length(count)`` (capped), added to the user vector.  The user biases are
    the trend affinities of the features; ``cont`` (with its accumulator ``cont_acc``)
    their continuity weights.
    """

    emb: np.ndarray
    bias: np.ndarray
    emb_acc: np.ndarray
    bias_acc: np.ndarray
    feature_rows: np.ndarray
    feature_weights: np.ndarray
    feature_count: np.ndarray
    activity: np.ndarray
    activity_rows: np.ndarray
    cont: np.ndarray
    cont_acc: np.ndarray


class ContextTables(NamedTuple):
    """Item embeddings as context of a user's recent history.

    ``recent[u]`` is a ring of the user's last items, ``recent_count[u]`` how many were
    pushed; the user vector adds ``recent_weight / n * sum emb[recent items]``.
    ``last``/``last_count``: the same ring, ``continuity_items`` wide, that the
    content-continuity signal reads.
    """

    emb: np.ndarray
    emb_acc: np.ndarray
    recent: np.ndarray
    recent_count: np.ndarray
    last: np.ndarray
    last_count: np.ndarray


class PopularityTables(NamedTuple):
    """Recent positives and decayed positive counts.

    ``ring`` holds the last positive items (for popularity-aware negatives),
    ``ring_count[0]`` how many were pushed.  ``trend[i] / trend_scale[0]`` is item i's
    exponentially decayed positive count.
    """

    ring: np.ndarray
    ring_count: np.ndarray
    trend: np.ndarray
    trend_scale: np.ndarray
    #: ``(prior, rate, n_items)``: item i's new-item pseudo-count is
    #: ``prior * exp(-rate * (n_items - 1 - i))``, halving with every ``new_item_half_life``
    #: items onboarded after it (item rows are in order of first appearance, so every copy
    #: of the model, replicas included, derives it from its item count alone); the trend
    #: signal is ``log1p(decayed count + pseudo-count)``.
    newness: np.ndarray


class KernelTables(NamedTuple):
    """Every table a learning or scoring kernel takes, by group."""

    users: SideTables
    items: SideTables
    context: ContextTables
    popularity: PopularityTables


class DirtyMarks(NamedTuple):
    """Rows of one table written since the last export, recorded in O(1) per write.

    ``flags[r]`` is 1 once row ``r`` is marked; ``rows[: n_rows[0]]`` lists the marked
    rows in marking order.  Both are sized to the table's capacity before each kernel
    call, so a kernel never allocates.
    """

    flags: np.ndarray
    rows: np.ndarray
    n_rows: np.ndarray


class ChangeMarks(NamedTuple):
    """The rows the kernels wrote, per table group (see :mod:`streamrec.model.replica`).

    ``user_features``/``item_features``: feature rows (embedding, bias, continuity
    weight, accumulators), every feature row of each user and item an update trained,
    and the activity rows; ``trained_items``: the items an update trained, for readers
    of item vectors (``topk.ModelTopK``), not part of change sets; ``context``: context rows (one per item feature); ``users``: per-user state (recent
    ring, continuity ring, activity); ``items``: per-item decayed counts (positives and
    seen-only events); ``ring``: slots of the popularity ring.
    """

    user_features: DirtyMarks
    item_features: DirtyMarks
    trained_items: DirtyMarks
    context: DirtyMarks
    users: DirtyMarks
    items: DirtyMarks
    ring: DirtyMarks


#: Former names of :class:`SideTables`: numba's on-disk cache indexes written before it
#: replaced them refer to them, and fail to load (not just miss) if they cannot resolve.
UserTables = ItemTables = SideTables
