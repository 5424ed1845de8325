"""Embedding deltas: the model's change sets as wire messages, and back.

The trainer's model records what it writes; at each publish :class:`DeltaTracker` exports
the change set (cost O(rows touched)), splits it below a byte budget (half the broker's
largest message: :func:`part_bytes`) and turns each
part into a :class:`~streamrec.stream.schemas.Delta`, numbered by ``seq``; the last one
is ``final`` and carries the consumed ``offsets``.  :func:`apply_delta` turns a message
back into a change set part and applies it to a replica.  What the model's layout is,
only :mod:`streamrec.model.replica` knows; this module only translates.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from streamrec.model import HybridModel
from streamrec.model.replica import (
    ChangeSet,
    FeatureLists,
    FeatureRows,
    ItemTrend,
    RingSlots,
    UserHistory,
)
from streamrec.stream import schemas
from streamrec.stream.codec import encode_binary
from streamrec.stream.schemas import Delta, ItemMeta, Watermark
from streamrec.stream.topics import Topics
from streamrec.workers.state import ModelState

#: Change-set bytes per delta message by default (sent as MessagePack, see
#: ``codec.encode_binary``); the trainer uses :func:`part_bytes` of its settings.
MAX_BYTES = 500_000


def part_bytes(max_message_bytes: int) -> int:
    """The change-set budget of one delta message for a broker that accepts messages of
    ``max_message_bytes``: half of it, the rest for MessagePack framing, the item
    metadata of the first part and the final part's offsets."""
    return max(1024, max_message_bytes // 2)


class DeltaTracker:
    """Builds the next delta messages from the trainer model's change log."""

    def __init__(self, model: HybridModel, epoch: str = "", max_bytes: int | None = None) -> None:
        self.model = model
        #: change-set bytes per message (None: :data:`MAX_BYTES`)
        self.max_bytes = max_bytes
        self.epoch = epoch
        self.seq = 0
        self._meta: dict[str, ItemMeta] = {}

    @property
    def dirty(self) -> bool:
        """Whether there is anything to publish."""
        return bool(self._meta) or self.model.has_changes()

    def reset_bases(self) -> None:
        """Start tracking from the model as it is (after loading a checkpoint)."""
        self.model.forget_changes()
        self._meta.clear()

    def item_meta(self, item_id: str, meta: ItemMeta) -> None:
        """Item attributes (not model state) for the replicas' request filters."""
        old = self._meta.get(item_id)
        if old is not None:
            meta = ItemMeta({**old.attributes, **meta.attributes}, old.created or meta.created)
        self._meta[item_id] = meta

    def build(self, offsets: list[Watermark], events_retired_before: int = 0) -> list[Delta]:
        """The delta messages for everything since the last build (last one ``final``,
        with the applied ``offsets`` and the trainer's ``events_retired_before``).

        There is always at least one message, empty when nothing changed.
        """
        budget = self.max_bytes or MAX_BYTES
        taken = time.time()  # every change in them was made by now (see FreshBuffer.add)
        parts = self.model.export_changes().split(budget)
        metas = _meta_chunks(self._meta, budget // 2)
        self._meta = {}
        while len(parts) < len(metas):  # item metadata alone over the budget: more parts,
            parts.append(self.model.export_changes())  # empty change sets (counters only)
        messages = [to_delta(part) for part in parts]
        for msg, meta in zip(messages, metas, strict=False):
            msg.item_meta = meta
        for msg in messages:
            msg.epoch = self.epoch
            msg.ts = taken
            msg.seq = self.seq
            msg.final = False
            self.seq += 1
        messages[-1].final = True
        messages[-1].offsets = offsets
        messages[-1].events_retired_before = events_retired_before
        return messages


def _meta_chunks(meta: dict[str, ItemMeta], max_bytes: int) -> list[dict[str, ItemMeta]]:
    """Item metadata in chunks of about ``max_bytes`` encoded (one per message)."""
    chunks: list[dict[str, ItemMeta]] = [{}]
    used = 0
    for item, m in meta.items():
        size = len(item) + len(encode_binary(m)) + 8
        if used + size > max_bytes and chunks[-1]:
            chunks.append({})
            used = 0
        chunks[-1][item] = m
        used += size
    return chunks


def apply_delta(state: ModelState, delta: Delta, topics: Topics | None = None) -> None:
    """Bring a replica's model up to ``delta`` (applying one twice is harmless);
    ``topics`` names the event-period topics its ``events_retired_before`` is about."""
    changes = from_delta(delta)
    state.model.apply_changes(changes)
    if delta.ts:
        state.changes_taken_at = delta.ts
    for item, meta in delta.item_meta.items():
        state.attributes.update(item, meta.attributes, meta.created)
    defined = changes.defined_items()
    if defined:
        state.items_changed(sorted(set(defined)), delta.ts or None)
    if delta.final:
        state.set_applied({(w.topic, w.partition): w.offset for w in delta.offsets})
        if topics is not None and delta.events_retired_before:
            state.retire_events(topics, delta.events_retired_before)


# ------------------------------------------------------------------ translation
def _b(a: np.ndarray, dtype: type) -> Any:
    """The array's bytes without a copy when it is contiguous (msgspec encodes views)."""
    if a.dtype != dtype or not a.flags.c_contiguous:
        a = np.ascontiguousarray(a, dtype=dtype)
    return a.data.cast("B")


def _rows_out(part: FeatureRows) -> schemas.FeatureRows | None:
    if not len(part):
        return None
    return schemas.FeatureRows(rows=_b(part.rows, np.int32), emb=_b(part.emb, np.float32),
                               emb_acc=_b(part.emb_acc, np.float32),
                               bias=_b(part.bias, np.float32),
                               bias_acc=_b(part.bias_acc, np.float32),
                               cont=_b(part.cont, np.float32),
                               cont_acc=_b(part.cont_acc, np.float32))  # fmt: skip


def _rows_in(wire: schemas.FeatureRows | None) -> FeatureRows:
    if wire is None:
        return FeatureRows()
    rows = np.frombuffer(wire.rows, dtype=np.int32)
    emb = np.frombuffer(wire.emb, dtype=np.float32).reshape(len(rows), -1)
    return FeatureRows(rows, emb, np.frombuffer(wire.emb_acc, dtype=np.float32),
                       np.frombuffer(wire.bias, dtype=np.float32),
                       np.frombuffer(wire.bias_acc, dtype=np.float32),
                       np.frombuffer(wire.cont, dtype=np.float32),
                       np.frombuffer(wire.cont_acc, dtype=np.float32))  # fmt: skip


def _lists_out(lists: FeatureLists) -> schemas.FeatureLists | None:
    if not len(lists):
        return None
    return schemas.FeatureLists(_b(lists.rows, np.int32), _b(lists.counts, np.int32),
                                _b(lists.features, np.int32),
                                _b(lists.weights, np.float32))  # fmt: skip


def _lists_in(wire: schemas.FeatureLists | None) -> FeatureLists:
    if wire is None:
        return FeatureLists()
    return FeatureLists(np.frombuffer(wire.rows, dtype=np.int32),
                        np.frombuffer(wire.counts, dtype=np.int32),
                        np.frombuffer(wire.features, dtype=np.int32),
                        np.frombuffer(wire.weights, dtype=np.float32))  # fmt: skip


def to_delta(cs: ChangeSet) -> Delta:
    """One change set (part) as a wire message (``seq`` and ``final`` set by the caller)."""
    h, t, r = cs.users, cs.items, cs.ring
    return Delta(
        seq=0, version=cs.version, n_events=cs.n_events,
        user_base=cs.user_base, new_users=cs.new_users,
        item_base=cs.item_base, new_items=cs.new_items,
        user_feature_base=cs.user_feature_base, new_user_features=cs.new_user_features,
        item_feature_base=cs.item_feature_base, new_item_features=cs.new_item_features,
        user_feature_lists=_lists_out(cs.user_feature_lists),
        item_feature_lists=_lists_out(cs.item_feature_lists),
        user_rows=_rows_out(cs.user_rows), item_rows=_rows_out(cs.item_rows),
        context_rows=_rows_out(cs.context_rows),
        users=schemas.UserHistory(_b(h.rows, np.int32), _b(h.recent, np.int32),
                                  _b(h.recent_count, np.int32), _b(h.activity, np.int32),
                                  _b(h.last, np.int32), _b(h.last_count, np.int32))
        if len(h) else None,
        item_trend=schemas.ItemTrend(_b(t.rows, np.int32), _b(t.counts, np.float64))
        if len(t) else None,
        ring=schemas.RingSlots(_b(r.slots, np.int32), _b(r.items, np.int32)) if len(r) else None,
        seen=_b(cs.seen, np.int32) if cs.seen.shape[0] else b"",
        trend_scale=cs.trend_scale, ring_count=cs.ring_count, rng_state=cs.rng_state,
        stats=cs.stats.tolist(),
    )  # fmt: skip


def from_delta(d: Delta) -> ChangeSet:
    """The change set (part) a wire message carries."""
    cs = ChangeSet(
        version=d.version, n_events=d.n_events,
        user_base=d.user_base, new_users=d.new_users, item_base=d.item_base,
        new_items=d.new_items, user_feature_base=d.user_feature_base,
        new_user_features=d.new_user_features, item_feature_base=d.item_feature_base,
        new_item_features=d.new_item_features,
        user_feature_lists=_lists_in(d.user_feature_lists),
        item_feature_lists=_lists_in(d.item_feature_lists),
        user_rows=_rows_in(d.user_rows), item_rows=_rows_in(d.item_rows),
        context_rows=_rows_in(d.context_rows),
        seen=np.frombuffer(d.seen, dtype=np.int32).reshape(-1, 2),
        trend_scale=d.trend_scale, ring_count=d.ring_count, rng_state=d.rng_state,
        stats=np.array(d.stats, dtype=np.float64),
    )  # fmt: skip
    if d.users is not None:
        rows = np.frombuffer(d.users.rows, dtype=np.int32)
        recent = np.frombuffer(d.users.recent, dtype=np.int32).reshape(len(rows), -1)
        last = np.frombuffer(d.users.last, dtype=np.int32).reshape(len(rows), -1)
        cs.users = UserHistory(rows, recent, np.frombuffer(d.users.recent_count, dtype=np.int32),
                               np.frombuffer(d.users.activity, dtype=np.int32), last,
                               np.frombuffer(d.users.last_count, dtype=np.int32))  # fmt: skip
    if d.item_trend is not None:
        cs.items = ItemTrend(np.frombuffer(d.item_trend.rows, dtype=np.int32),
                             np.frombuffer(d.item_trend.counts, dtype=np.float64))  # fmt: skip
    if d.ring is not None:
        cs.ring = RingSlots(np.frombuffer(d.ring.slots, dtype=np.int32),
                            np.frombuffer(d.ring.items, dtype=np.int32))  # fmt: skip
    return cs
