"""Change sets: what a model wrote since its last export, and how a replica applies it.

The one module that knows the model's layout on both ends.  :func:`export` reads the
model's change log (rows the kernels and onboarding marked, see
:mod:`streamrec.model.dirty`) at a cost of O(rows touched); :func:`apply` writes a
change set into another model built with the same config.  New entities and feature
names travel in row order from ``*_base``, so a replica applying change sets in order
holds the very same rows, and every other content is absolute: applying a change set
twice is harmless.  :meth:`ChangeSet.split` cuts one into parts below a byte budget;
applying the parts in order equals applying the whole.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING, Any, Self

import numpy as np

from streamrec.errors import ReplicaError
from streamrec.model.features import IDENTITY_PREFIX
from streamrec.model.tables import FeatureTable
from streamrec.model.vocab import Vocabulary

if TYPE_CHECKING:
    from streamrec.model.hybrid import EntitySide, HybridModel

_I32 = np.int32
_F32 = np.float32


def _i32(n: int = 0, width: int | None = None) -> np.ndarray:
    return np.zeros((n, width) if width is not None else n, dtype=_I32)


def _f32(n: int = 0, width: int | None = None) -> np.ndarray:
    return np.zeros((n, width) if width is not None else n, dtype=_F32)


class _RowArrays:
    """Arrays of one entry per row, the first field naming the rows; sliced together.

    Reads the fields through ``__dict__``, which a dataclass fills in field order (this
    runs once per section and part of every change set: ``getattr`` by name cost a
    tenth of an export).
    """

    def __len__(self) -> int:
        return int(next(iter(self.__dict__.values())).shape[0])

    def slice(self, a: int, b: int) -> Self:
        """Entries ``a .. b - 1`` (an empty array field stays empty)."""
        part = object.__new__(type(self))
        part.__dict__.update({name: v[a:b] for name, v in self.__dict__.items()})
        return part


@dataclass
class FeatureRows(_RowArrays):
    """Absolute contents of some rows of a feature table (context rows have no bias;
    only user rows carry the continuity weights ``cont``/``cont_acc``)."""

    rows: np.ndarray = field(default_factory=_i32)
    emb: np.ndarray = field(default_factory=lambda: _f32(0, 0))
    emb_acc: np.ndarray = field(default_factory=_f32)
    bias: np.ndarray = field(default_factory=_f32)
    bias_acc: np.ndarray = field(default_factory=_f32)
    cont: np.ndarray = field(default_factory=_f32)
    cont_acc: np.ndarray = field(default_factory=_f32)

    def row_bytes(self) -> int:
        extra = (2 if self.bias.shape[0] else 0) + (2 if self.cont.shape[0] else 0)
        return 4 * (2 + self.emb.shape[1] + extra)


@dataclass
class FeatureLists:
    """Entities' feature rows and weights as the model holds them, one list after the
    other: entity ``rows[i]`` has the ``counts[i]`` entries of ``features``/``weights``
    that follow those of ``rows[i - 1]``."""

    rows: np.ndarray = field(default_factory=_i32)
    counts: np.ndarray = field(default_factory=_i32)
    features: np.ndarray = field(default_factory=_i32)
    weights: np.ndarray = field(default_factory=_f32)

    def __len__(self) -> int:
        return int(self.rows.shape[0])

    @cached_property
    def starts(self) -> np.ndarray:
        """Where each entity's entries start (and, last, the end of the lists)."""
        starts = np.zeros(len(self) + 1, dtype=np.int64)
        np.cumsum(self.counts, out=starts[1:])
        return starts

    def slice(self, a: int, b: int) -> FeatureLists:
        """Entities ``a .. b - 1`` and their lists."""
        lo, hi = int(self.starts[a]), int(self.starts[b])
        return FeatureLists(self.rows[a:b], self.counts[a:b], self.features[lo:hi],
                            self.weights[lo:hi])  # fmt: skip

    def entry_bytes(self) -> np.ndarray:
        """The bytes of each entity's entry (row, count, its features and weights)."""
        return 8 + 8 * self.counts.astype(np.int64)

    def of(self, i: int) -> tuple[int, np.ndarray, np.ndarray]:
        """Entity ``i``'s row, feature rows and weights."""
        lo, hi = int(self.starts[i]), int(self.starts[i + 1])
        return int(self.rows[i]), self.features[lo:hi], self.weights[lo:hi]


@dataclass
class UserHistory(_RowArrays):
    """Per-user state: the ring of recent items, how many were pushed, positive counts,
    and the continuity ring of the last items (``last``/``last_count``)."""

    rows: np.ndarray = field(default_factory=_i32)
    recent: np.ndarray = field(default_factory=lambda: _i32(0, 0))
    recent_count: np.ndarray = field(default_factory=_i32)
    activity: np.ndarray = field(default_factory=_i32)
    last: np.ndarray = field(default_factory=lambda: _i32(0, 0))
    last_count: np.ndarray = field(default_factory=_i32)


@dataclass
class ItemTrend(_RowArrays):
    """Items' raw decayed positive counts (divide by ``ChangeSet.trend_scale``)."""

    rows: np.ndarray = field(default_factory=_i32)
    counts: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.float64))


@dataclass
class RingSlots(_RowArrays):
    """Slots of the ring of recent positives and the items now in them."""

    slots: np.ndarray = field(default_factory=_i32)
    items: np.ndarray = field(default_factory=_i32)


@dataclass
class ChangeSet:
    """Everything a model wrote since its previous export, with absolute contents.

    Counters (``version``, ``n_events``, ``trend_scale``, ``ring_count``, ``rng_state``,
    ``stats``) are the model's values at export time and ride in every part.
    """

    version: int = 0
    n_events: int = 0
    user_base: int = 0
    new_users: list[str] = field(default_factory=list)
    item_base: int = 0
    new_items: list[str] = field(default_factory=list)
    user_feature_base: int = 0
    new_user_features: list[str] = field(default_factory=list)
    item_feature_base: int = 0
    new_item_features: list[str] = field(default_factory=list)
    user_feature_lists: FeatureLists = field(default_factory=FeatureLists)
    item_feature_lists: FeatureLists = field(default_factory=FeatureLists)
    user_rows: FeatureRows = field(default_factory=FeatureRows)
    item_rows: FeatureRows = field(default_factory=FeatureRows)
    context_rows: FeatureRows = field(default_factory=FeatureRows)
    users: UserHistory = field(default_factory=UserHistory)
    items: ItemTrend = field(default_factory=ItemTrend)
    ring: RingSlots = field(default_factory=RingSlots)
    seen: np.ndarray = field(default_factory=lambda: _i32(0, 2))
    trend_scale: float = 1.0
    ring_count: int = 0
    rng_state: int = 0
    stats: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.float64))

    def is_empty(self) -> bool:
        """True when nothing but counters would change on a replica."""
        return not any(section.length(self) for section in _SECTIONS)

    def defined_items(self) -> list[int]:
        """Item rows created or given new features (the fresh-item buffer's input)."""
        return self.item_feature_lists.rows.tolist()

    def nbytes(self) -> int:
        """About how many bytes the contents take (the measure :meth:`split` budgets)."""
        return _HEADER_BYTES + sum(s.sizes(self).between(0, s.length(self)) for s in _SECTIONS)

    def split(self, max_bytes: int) -> list[ChangeSet]:
        """Parts of at most about ``max_bytes`` each; applying them in order = applying self.

        Order: feature names, entities, feature lists, seen pairs, per-user and per-item
        state, then table rows, so no part refers to a row an earlier part did not
        create.  A single item larger than the budget travels alone.  Costs O(parts) for
        the fixed-size sections (rows, state, seen pairs), O(entries) for names and lists.
        """
        blank = self._counters_only()
        parts: list[ChangeSet] = []
        current, used = blank.fresh(), _HEADER_BYTES
        for section in _SECTIONS:
            n = section.length(self)
            if not n:
                continue
            sizes = section.sizes(self)
            start = 0
            while start < n:
                take = min(sizes.fitting(start, max_bytes - used), n - start)
                if take <= 0:
                    if used > _HEADER_BYTES:
                        parts.append(current)
                        current, used = blank.fresh(), _HEADER_BYTES
                        continue
                    take = 1
                section.copy(self, current, start, start + take)
                used += sizes.between(start, start + take)
                start += take
        parts.append(current)
        return parts

    def fresh(self) -> ChangeSet:
        """A shallow copy with lists of its own (array sections are replaced, never edited)."""
        part = copy.copy(self)  # ``dataclasses.replace`` costs ten times more
        for name in _LIST_FIELDS:
            setattr(part, name, list(getattr(self, name)))
        return part

    def _counters_only(self) -> ChangeSet:
        return ChangeSet(
            version=self.version, n_events=self.n_events, user_base=self.user_base,
            item_base=self.item_base, user_feature_base=self.user_feature_base,
            item_feature_base=self.item_feature_base, trend_scale=self.trend_scale,
            ring_count=self.ring_count, rng_state=self.rng_state, stats=self.stats,
            users=UserHistory(recent=_i32(0, self.users.recent.shape[1]),
                              last=_i32(0, self.users.last.shape[1])),
        )  # fmt: skip


_HEADER_BYTES = 256
_LIST_FIELDS = ("new_users", "new_items", "new_user_features", "new_item_features")


class _Sizes:
    """The byte sizes of a section's entries: ``each`` apiece, or as listed in ``sizes``."""

    def __init__(self, each: int = 0, sizes: Sequence[int] | np.ndarray = ()) -> None:
        self.each = each
        self.cum = None
        if not each:
            self.cum = np.zeros(len(sizes) + 1, dtype=np.int64)
            np.cumsum(sizes, out=self.cum[1:])

    def fitting(self, start: int, room: int) -> int:
        """How many entries from ``start`` fit in ``room`` bytes (<= 0: none)."""
        if self.cum is None:
            return room // self.each
        return int(np.searchsorted(self.cum, self.cum[start] + room, side="right")) - 1 - start

    def between(self, a: int, b: int) -> int:
        """The bytes of entries ``a .. b - 1``."""
        return (b - a) * self.each if self.cum is None else int(self.cum[b] - self.cum[a])


@dataclass(frozen=True)
class _Section:
    """One slicable part of a change set, for :meth:`ChangeSet.split`."""

    length: Callable[[ChangeSet], int]
    sizes: Callable[[ChangeSet], _Sizes]
    copy: Callable[[ChangeSet, ChangeSet, int, int], None]


def _names(base: str, names: str) -> _Section:
    def copy(src: ChangeSet, dst: ChangeSet, a: int, b: int) -> None:
        setattr(dst, base, getattr(src, base) + a)
        setattr(dst, names, getattr(src, names)[a:b])

    return _Section(
        lambda cs: len(getattr(cs, names)),
        lambda cs: _Sizes(sizes=[len(n.encode()) + 4 for n in getattr(cs, names)]),
        copy,
    )


def _lists(name: str) -> _Section:
    def copy(src: ChangeSet, dst: ChangeSet, a: int, b: int) -> None:
        setattr(dst, name, getattr(src, name).slice(a, b))

    return _Section(
        lambda cs: len(getattr(cs, name)),
        lambda cs: _Sizes(sizes=getattr(cs, name).entry_bytes()),
        copy,
    )


def _rows(name: str, row_bytes: Callable[[Any], int]) -> _Section:
    def copy(src: ChangeSet, dst: ChangeSet, a: int, b: int) -> None:
        setattr(dst, name, getattr(src, name).slice(a, b))

    return _Section(
        lambda cs: len(getattr(cs, name)), lambda cs: _Sizes(row_bytes(getattr(cs, name))), copy
    )


def _seen_copy(src: ChangeSet, dst: ChangeSet, a: int, b: int) -> None:
    dst.seen = src.seen[a:b]


_SECTIONS: Sequence[_Section] = (
    _names("user_feature_base", "new_user_features"),
    _names("item_feature_base", "new_item_features"),
    _names("user_base", "new_users"),
    _names("item_base", "new_items"),
    _lists("user_feature_lists"),
    _lists("item_feature_lists"),
    _Section(lambda cs: cs.seen.shape[0], lambda cs: _Sizes(8), _seen_copy),
    _rows("users", lambda p: 4 * (4 + p.recent.shape[1] + p.last.shape[1])),
    _rows("items", lambda p: 12),
    _rows("ring", lambda p: 8),
    _rows("user_rows", FeatureRows.row_bytes),
    _rows("item_rows", FeatureRows.row_bytes),
    _rows("context_rows", FeatureRows.row_bytes),
)


# ---------------------------------------------------------------------- export
def _take_rows(a: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """``a[rows]`` for a C-contiguous 2-D ``a``, each row gathered as one opaque record
    (a fifth faster than ``np.take(a, rows, axis=0)``, which copies element by element)."""
    record = np.dtype((np.void, a.shape[1] * a.itemsize))
    return np.take(a.view(record).ravel(), rows).view(a.dtype).reshape(len(rows), a.shape[1])


def _table_rows(
    table: FeatureTable, rows: np.ndarray, with_bias: bool, with_cont: bool = False
) -> FeatureRows:
    """Copies of the rows' contents (``np.take`` gathers rows faster than fancy indexing;
    given ``intp`` indices, it does not convert them again for every array)."""
    at = rows.astype(np.intp)
    emb, emb_acc = _take_rows(table.emb, at), np.take(table.emb_acc, at)
    rows = rows.astype(_I32, copy=False)
    if not with_bias:
        return FeatureRows(rows, emb, emb_acc)
    bias, bias_acc = np.take(table.bias, at), np.take(table.bias_acc, at)
    if not with_cont:
        return FeatureRows(rows, emb, emb_acc, bias, bias_acc)
    cont, cont_acc = np.take(table.cont, at), np.take(table.cont_acc, at)
    return FeatureRows(rows, emb, emb_acc, bias, bias_acc, cont, cont_acc)


def _feature_lists(side: EntitySide, rows: np.ndarray) -> FeatureLists:
    """The entities' lists, cut from the padded table in one pass (every list is a
    prefix of its padded row)."""
    rows = rows.astype(_I32, copy=False)
    idx, w = side.fx.idx[rows], side.fx.w[rows]
    live = idx >= 0
    counts = np.count_nonzero(live, axis=1).astype(_I32)
    return FeatureLists(rows, counts, idx[live], w[live])


def export(model: HybridModel) -> ChangeSet:
    """The model's changes since its previous export; clears its change log."""
    log = model.changes
    users, items = model.users, model.items
    user_rows = log.users.take()
    at_users = user_rows.astype(np.intp)
    item_rows = log.items.take()
    ring = log.ring.take()
    cs = ChangeSet(
        version=model.version,
        n_events=model.n_events,
        user_base=log.user_base,
        new_users=[users.ids.name(r) for r in range(log.user_base, len(users.ids))],
        item_base=log.item_base,
        new_items=[items.ids.name(r) for r in range(log.item_base, len(items.ids))],
        user_feature_base=log.user_feature_base,
        new_user_features=[users.feature_names.name(r)
                           for r in range(log.user_feature_base, len(users.feature_names))],
        item_feature_base=log.item_feature_base,
        new_item_features=[items.feature_names.name(r)
                           for r in range(log.item_feature_base, len(items.feature_names))],
        user_feature_lists=_feature_lists(users, log.user_entities.take()),
        item_feature_lists=_feature_lists(items, log.item_entities.take()),
        user_rows=_table_rows(users.table, log.user_features.take(), True, with_cont=True),
        item_rows=_table_rows(items.table, log.item_features.take(), with_bias=True),
        context_rows=_table_rows(model.context, log.context.take(), with_bias=False),
        users=UserHistory(user_rows, _take_rows(model.recent, at_users),
                          np.take(model.recent_n, at_users), np.take(model.activity, at_users),
                          _take_rows(model.last, at_users), np.take(model.last_n, at_users)),
        items=ItemTrend(item_rows, np.take(model.trend, item_rows)),
        ring=RingSlots(ring, np.take(model.pop_ring, ring)),
        seen=np.concatenate(log.seen).astype(_I32, copy=False) if log.seen else _i32(0, 2),
        trend_scale=float(model.trend_state[0]),
        ring_count=int(model.pop_state[0]),
        rng_state=int(model.rng_state[0]),
        stats=model.stats.copy(),
    )  # fmt: skip
    log.clear(len(users.ids), len(items.ids), len(users.feature_names), len(items.feature_names))
    return cs


# ----------------------------------------------------------------------- apply
def _count_entities(count: np.ndarray, features: np.ndarray, step: float) -> None:
    """Add ``step`` to ``count`` once per occurrence in ``features`` (repeats add up)."""
    np.add.at(count, features, count.dtype.type(step))


def _add_names(vocab: Vocabulary, base: int, names: list[str], where: str) -> list[int]:
    """Append ``names`` at rows ``base ...``; rows already there must hold the same names."""
    have = len(vocab)
    if base > have:
        raise ReplicaError(f"change set {where}: gap before row {base} (replica has "
                           f"{have}); a change set was lost")  # fmt: skip
    for k, name in enumerate(names[: have - base]):  # rows already there (a repeat)
        if vocab.name(base + k) != name:
            raise ReplicaError(f"change set {where}: row {base + k} is "
                               f"{vocab.name(base + k)!r}, not {name!r}; the replica does "
                               "not follow this model")  # fmt: skip
    added = list(range(max(have, base), base + len(names)))
    for name in names[max(have - base, 0) :]:
        row, new = vocab.add(name)
        if not new:
            raise ReplicaError(f"change set {where}: {name!r} is already row {row}; the "
                               "replica does not follow this model")  # fmt: skip
    return added


def _write_rows(table: FeatureTable, part: FeatureRows) -> None:
    if not len(part):
        return
    rows = part.rows
    if rows.max() >= table.n:
        raise ReplicaError(f"change set writes feature row {int(rows.max())} of {table.n}")
    table.emb[rows] = part.emb
    table.emb_acc[rows] = part.emb_acc
    if part.bias.shape[0]:
        table.bias[rows] = part.bias
        table.bias_acc[rows] = part.bias_acc
    if part.cont.shape[0]:
        table.cont[rows] = part.cont
        table.cont_acc[rows] = part.cont_acc


def apply(model: HybridModel, cs: ChangeSet) -> None:
    """Bring ``model`` (a replica with the exporter's config) up to ``cs``.

    The replica's own change log is cleared afterwards: it records nothing of its own.
    """
    for side, base, names, what in ((model.users, cs.user_feature_base, cs.new_user_features,
                                     "user features"),
                                    (model.items, cs.item_feature_base, cs.new_item_features,
                                     "item features")):  # fmt: skip
        added = _add_names(side.feature_names, base, names, what)
        if added:
            identity = [names[row - base].startswith(IDENTITY_PREFIX) for row in added]
            first = side.table.append_many(np.array(identity, dtype=bool))
            assert first == added[0], "feature vocabulary and table out of step"
    for side, base, names, what in ((model.users, cs.user_base, cs.new_users, "users"),
                                    (model.items, cs.item_base, cs.new_items, "items")):  # fmt: skip
        added = _add_names(side.ids, base, names, what)
        if added:  # no features until their lists arrive
            none = np.zeros(len(added), dtype=_I32)
            side.fx.set_many(np.array(added, dtype=_I32), none, none[:0], _f32())
    model.ensure_user_capacity(model.n_users)
    model.ensure_item_capacity(model.n_items)  # and context rows for new item features
    for side, lists in ((model.users, cs.user_feature_lists),
                        (model.items, cs.item_feature_lists)):  # fmt: skip
        if not len(lists):
            continue
        # entities per feature (the continuity idf), kept as the exporter's upsert does:
        # the entities' old features lose one entity each, their new ones gain one
        old = side.fx.idx[lists.rows]
        _count_entities(side.table.count, old[old >= 0], -1.0)
        side.fx.set_many(lists.rows, lists.counts, lists.features, lists.weights)
        _count_entities(side.table.count, lists.features, 1.0)
    _write_rows(model.users.table, cs.user_rows)
    _write_rows(model.items.table, cs.item_rows)
    _write_rows(model.context, cs.context_rows)
    h = cs.users
    if len(h):
        model.recent[h.rows] = h.recent
        model.recent_n[h.rows] = h.recent_count
        model.activity[h.rows] = h.activity
        model.last[h.rows] = h.last
        model.last_n[h.rows] = h.last_count
    model.trend[cs.items.rows] = cs.items.counts
    model.trend_state[0] = cs.trend_scale
    model.pop_ring[cs.ring.slots] = cs.ring.items
    model.pop_state[0] = cs.ring_count
    if cs.seen.shape[0]:
        model.seen.add_many(cs.seen[:, 0], cs.seen[:, 1])
    model.rng_state[0] = cs.rng_state
    if cs.stats.shape[0]:
        model.stats[:] = cs.stats
    model.version = max(model.version, cs.version)
    model.n_events = max(model.n_events, cs.n_events)
    model.forget_changes()


__all__ = [
    "ChangeSet",
    "FeatureLists",
    "FeatureRows",
    "ItemTrend",
    "RingSlots",
    "UserHistory",
    "apply",
    "export",
]
