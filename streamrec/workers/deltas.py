"""Embedding deltas: what the trainer changed since the last publish, and how replicas apply it.

The tracker keeps a copy of every feature table and compares it at publish time, so the
delta holds exactly the rows that moved (WARP touches sampled negatives too, which the
kernel does not report).  New entities and feature names travel in trainer row order,
so a replica applying deltas in order holds the very same rows; applying a delta twice
is harmless (row contents are absolute, seen sets are sets).

A replica is a :class:`HybridModel` whose tables are written directly: this module
reads and writes model internals (``EntitySide.ids / feature_names / table / fx``, the
recent-items, activity and trend arrays) and is the one place to update if the model's
layout changes.
"""

from __future__ import annotations

import numpy as np

from streamrec.model import HybridModel
from streamrec.model.features import IDENTITY_PREFIX
from streamrec.model.hybrid import EntitySide
from streamrec.model.tables import FeatureTable
from streamrec.stream.schemas import Delta, EntityFx, ItemMeta, Rows, Watermark
from streamrec.workers.state import ModelState

#: Most table rows per delta message (keeps messages well under Kafka's 1 MB default).
MAX_ROWS = 1500


def _f32(a: np.ndarray) -> bytes:
    return np.ascontiguousarray(a, dtype=np.float32).tobytes()


def _i32(a: np.ndarray) -> bytes:
    return np.ascontiguousarray(a, dtype=np.int32).tobytes()


class _TableWatch:
    """A copy of a table's live rows, to find the rows that changed since."""

    def __init__(self) -> None:
        self.emb = np.zeros((0, 0), dtype=np.float32)
        self.bias = np.zeros(0, dtype=np.float32)

    def changed(self, emb: np.ndarray, bias: np.ndarray | None) -> np.ndarray:
        n, m = emb.shape[0], self.emb.shape[0]
        if m and self.emb.shape[1] == emb.shape[1]:
            moved = np.any(emb[:m] != self.emb, axis=1)
            if bias is not None:
                moved |= bias[:m] != self.bias
            rows = np.concatenate([np.flatnonzero(moved), np.arange(m, n)])
        else:
            rows = np.arange(n)
        self.emb = emb.copy()
        self.bias = bias.copy() if bias is not None else self.bias
        return rows.astype(np.int32)


class DeltaTracker:
    """Collects what changed in the trainer's model and builds the next delta messages."""

    def __init__(self, model: HybridModel) -> None:
        self.model = model
        self.seq = 0
        self._users = _TableWatch()
        self._items = _TableWatch()
        self._ctx = _TableWatch()
        self.reset_bases()
        self._user_fx: set[int] = set()
        self._item_fx: set[int] = set()
        self._touched_users: set[int] = set()
        self._seen: list[np.ndarray] = []
        self._positive_items: set[int] = set()
        self._meta: dict[str, ItemMeta] = {}
        self.dirty = False

    def reset_bases(self) -> None:
        """Start tracking from the model as it is (after loading a checkpoint)."""
        m = self.model
        self.user_base, self.item_base = m.n_users, m.n_items
        self.user_feat_base = len(m.users.feature_names)
        self.item_feat_base = len(m.items.feature_names)
        self._users.changed(
            m.users.table.emb[: m.users.table.n], m.users.table.bias[: m.users.table.n]
        )
        self._items.changed(
            m.items.table.emb[: m.items.table.n], m.items.table.bias[: m.items.table.n]
        )
        self._ctx.changed(m.context.emb[: m.context.n], None)
        self._trend_scale = float(m.trend_state[0])

    # ------------------------------------------------------------- recording
    def user_defined(self, row: int) -> None:
        self._user_fx.add(row)
        self.dirty = True

    def item_defined(self, row: int, item_id: str, meta: ItemMeta | None) -> None:
        self._item_fx.add(row)
        if meta is not None:
            old = self._meta.get(item_id)
            if old is not None:
                meta = ItemMeta({**old.attributes, **meta.attributes}, old.created or meta.created)
            self._meta[item_id] = meta
        self.dirty = True

    def learned(self, users: np.ndarray, items: np.ndarray, weights: np.ndarray) -> None:
        self._seen.append(np.stack([users, items], axis=1).astype(np.int32))
        self._positive_items.update(items[weights > 0].tolist())
        self._touched_users.update(users.tolist())
        self.dirty = True

    # ---------------------------------------------------------------- build
    def build(self, offsets: list[Watermark]) -> list[Delta]:
        """The delta messages for everything since the last build (last one ``final``)."""
        m = self.model
        ut, it = m.users.table, m.items.table
        user_rows = self._users.changed(ut.emb[: ut.n], ut.bias[: ut.n])
        item_rows = self._items.changed(it.emb[: it.n], it.bias[: it.n])
        ctx_rows = (
            self._ctx.changed(m.context.emb[: m.context.n], None)
            if m.config.recent_items
            else np.zeros(0, dtype=np.int32)
        )
        head = Delta(
            seq=self.seq,
            version=m.version,
            n_events=m.n_events,
            user_base=self.user_base,
            new_users=[m.users.ids.name(r) for r in range(self.user_base, m.n_users)],
            item_base=self.item_base,
            new_items=[m.items.ids.name(r) for r in range(self.item_base, m.n_items)],
            user_feat_base=self.user_feat_base,
            new_user_feats=[
                m.users.feature_names.name(r)
                for r in range(self.user_feat_base, len(m.users.feature_names))
            ],
            item_feat_base=self.item_feat_base,
            new_item_feats=[
                m.items.feature_names.name(r)
                for r in range(self.item_feat_base, len(m.items.feature_names))
            ],
            user_fx=[_fx(m.users, r) for r in sorted(self._user_fx)],
            item_fx=[_fx(m.items, r) for r in sorted(self._item_fx)],
            seen=_i32(np.concatenate(self._seen)) if self._seen else b"",
            item_meta=dict(self._meta),
        )
        scale = float(m.trend_state[0])
        if scale < self._trend_scale:  # the trainer renormalised its counts: ship them all
            self._positive_items.update(range(m.n_items))
        if self._positive_items:
            rows = np.array(sorted(self._positive_items), dtype=np.int32)
            head.trend = Rows(idx=_i32(rows), emb=m.trend[rows].astype(np.float64).tobytes())
        head.trend_scale = self._trend_scale = scale
        if self._touched_users:
            rows = np.array(sorted(self._touched_users), dtype=np.int32)
            head.recent = Rows(
                idx=_i32(rows), emb=_i32(m.recent[rows]), bias=_i32(m.recent_n[rows])
            )
            head.activity = Rows(idx=_i32(rows), emb=_i32(m.activity[rows]))
        messages = [head]
        chunks: list[tuple[str, np.ndarray]] = [
            ("user_rows", user_rows), ("item_rows", item_rows), ("ctx_rows", ctx_rows),
        ]  # fmt: skip
        for name, rows in chunks:
            for start in range(0, len(rows), MAX_ROWS):
                part = rows[start : start + MAX_ROWS]
                if name == "ctx_rows":
                    payload = Rows(idx=_i32(part), emb=_f32(m.context.emb[part]))
                else:
                    table = ut if name == "user_rows" else it
                    payload = Rows(
                        idx=_i32(part), emb=_f32(table.emb[part]), bias=_f32(table.bias[part])
                    )
                target = messages[-1]
                if getattr(target, name) is not None:
                    target = Delta(seq=0, version=m.version, n_events=m.n_events,
                                   user_base=m.n_users, item_base=m.n_items,
                                   user_feat_base=len(m.users.feature_names),
                                   item_feat_base=len(m.items.feature_names))  # fmt: skip
                    messages.append(target)
                setattr(target, name, payload)
        for msg in messages:
            msg.seq = self.seq
            msg.final = False
            self.seq += 1
        messages[-1].final = True
        messages[-1].offsets = offsets
        # reset
        self.user_base, self.item_base = m.n_users, m.n_items
        self.user_feat_base = len(m.users.feature_names)
        self.item_feat_base = len(m.items.feature_names)
        self._user_fx.clear()
        self._item_fx.clear()
        self._touched_users.clear()
        self._seen.clear()
        self._positive_items.clear()
        self._meta.clear()
        self.dirty = False
        return messages


def _fx(side: EntitySide, row: int) -> EntityFx:
    idx, w = side.fx.features_of(row)
    return EntityFx(row, idx.tolist(), w.tolist())


# --------------------------------------------------------------------- replica
def _add_names(side: EntitySide, base: int, names: list[str], feats: bool, where: str) -> list[int]:
    vocab = side.feature_names if feats else side.ids
    added = []
    for k, name in enumerate(names):
        row = base + k
        if row < len(vocab):
            if vocab.name(row) != name:
                raise ValueError(f"delta {where}: row {row} is {vocab.name(row)!r}, not {name!r}")
            continue
        if row != len(vocab):
            raise ValueError(f"delta {where}: gap before row {row} (replica has {len(vocab)})")
        vocab.add(name)
        if feats:  # the trainer's values arrive in the same delta's rows
            side.table.append(identity=name.startswith(IDENTITY_PREFIX))
        added.append(row)
    return added


def _write_rows(table: FeatureTable, rows: Rows | None, dim: int) -> None:
    if rows is None:
        return
    idx = np.frombuffer(rows.idx, dtype=np.int32)
    table.emb[idx] = np.frombuffer(rows.emb, dtype=np.float32).reshape(len(idx), dim)
    if rows.bias:
        table.bias[idx] = np.frombuffer(rows.bias, dtype=np.float32)


def apply_delta(state: ModelState, delta: Delta) -> None:
    """Bring a replica's model up to ``delta`` (see the module docstring)."""
    m = state.model
    _add_names(m.users, delta.user_feat_base, delta.new_user_feats, True, "user features")
    _add_names(m.items, delta.item_feat_base, delta.new_item_feats, True, "item features")
    for row in _add_names(m.users, delta.user_base, delta.new_users, False, "users"):
        m.users.fx.set(row, np.zeros(0, dtype=np.int32), np.zeros(0, dtype=np.float32))
        m.ensure_user_capacity(row + 1)
    new_items = _add_names(m.items, delta.item_base, delta.new_items, False, "items")
    for row in new_items:
        m.items.fx.set(row, np.zeros(0, dtype=np.int32), np.zeros(0, dtype=np.float32))
        m.ensure_item_capacity(row + 1)
    for fx in delta.user_fx:
        m.users.fx.set(fx.row, np.array(fx.idx, dtype=np.int32), np.array(fx.w, dtype=np.float32))
    for fx in delta.item_fx:
        m.items.fx.set(fx.row, np.array(fx.idx, dtype=np.int32), np.array(fx.w, dtype=np.float32))
    _write_rows(m.users.table, delta.user_rows, m.dim)
    _write_rows(m.items.table, delta.item_rows, m.dim)
    _write_rows(m.context, delta.ctx_rows, m.dim)
    if delta.recent is not None:
        rows = np.frombuffer(delta.recent.idx, dtype=np.int32)
        m.recent[rows] = np.frombuffer(delta.recent.emb, dtype=np.int32).reshape(len(rows), -1)
        m.recent_n[rows] = np.frombuffer(delta.recent.bias, dtype=np.int32)
    if delta.activity is not None:
        rows = np.frombuffer(delta.activity.idx, dtype=np.int32)
        m.activity[rows] = np.frombuffer(delta.activity.emb, dtype=np.int32)
    if delta.trend_scale:
        # decayed counts are raw / scale: the scale grows with every positive, raw counts
        # change only for items with new positives (shipped) or all at once when the
        # trainer renormalises (then every row is shipped)
        m.trend_state[0] = delta.trend_scale
        if delta.trend is not None:
            rows = np.frombuffer(delta.trend.idx, dtype=np.int32)
            m.trend[rows] = np.frombuffer(delta.trend.emb, dtype=np.float64)
    if delta.seen:
        pairs = np.frombuffer(delta.seen, dtype=np.int32).reshape(-1, 2)
        m.seen.add_many(pairs[:, 0], pairs[:, 1])
    for item, meta in delta.item_meta.items():
        state.attributes.update(item, meta.attributes, meta.created)
    m.version = max(m.version, delta.version)
    m.n_events = max(m.n_events, delta.n_events)
    changed = set(new_items) | {fx.row for fx in delta.item_fx}
    if changed:
        state.items_changed(sorted(changed))
    if delta.final:
        state.advance({(w.topic, w.partition): w.offset for w in delta.offsets})
