"""The LightFM-style hybrid model, learning one event at a time.

A user is the weighted sum of its feature embeddings (its identity feature included),
plus the embedding of its activity bucket and the context embeddings of its most recent
items; an item is the sum of its feature embeddings, and its bias the sum of its
feature biases.  Scores are ``user . item + item_bias + affinity * trend`` where trend
is the log of the item's decayed positive count and affinity a learned per-user weight
(see :mod:`streamrec.model.kernels`).  Identity embeddings start at zero, so a new
entity's first representation is exactly its cold-start vector from features.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from streamrec.errors import (
    InvalidFeatureError,
    InvalidWeightError,
    ModelDivergedError,
    UnknownEntityError,
    UnknownEventTypeError,
)
from streamrec.model import kernels, replica, representations, scoring, vectors
from streamrec.model.config import MAX_FEATURE_WEIGHT, ModelConfig
from streamrec.model.dirty import ChangeLog
from streamrec.model.features import IDENTITY_PREFIX, FeatureInput, check_id, parse_features
from streamrec.model.replica import ChangeSet
from streamrec.model.seen import SeenSets
from streamrec.model.state import (
    ChangeMarks,
    ContextTables,
    KernelTables,
    PopularityTables,
    SideTables,
)
from streamrec.model.tables import EntityFeatures, FeatureTable, capacity_for, grown
from streamrec.model.threads import ThreadMarks, learn_in_order, learn_split, threads_for
from streamrec.model.vocab import Vocabulary


@dataclass(frozen=True)
class LearnStats:
    """What one call to :meth:`HybridModel.learn` did."""

    events: int
    learned: int
    pairs: int
    no_violator: int
    loss: float


class EntitySide:
    """One side of the model (users or items): ids, features and their embeddings."""

    def __init__(
        self,
        kind: str,
        config: ModelConfig,
        rng: np.random.Generator,
        changes: ChangeLog,
    ) -> None:
        self.kind = kind
        self.changes = changes
        user = kind == "user"
        self.feature_marks = changes.user_features if user else changes.item_features
        self.entity_marks = changes.user_entities if user else changes.item_entities
        self.identity_weight = config.identity_weight
        self.normalize = config.normalize_features
        self.ids = Vocabulary()
        self.feature_names = Vocabulary()
        self.table = FeatureTable(config.dim, config.init_scale, rng)
        self.fx = EntityFeatures()

    def __len__(self) -> int:
        return len(self.ids)

    def feature_row(self, name: str, identity: bool = False) -> int:
        """The table row of feature ``name``, added (and initialised) when new."""
        row, new = self.feature_names.add(name)
        if new:
            appended = self.table.append(identity=identity)
            assert appended == row, "feature vocabulary and table out of step"
            self.feature_marks.mark(row)
        return row

    def upsert(self, entity_id: str, features: FeatureInput) -> tuple[int, bool]:
        """Add the entity or, when ``features`` is given, replace its features.

        Returns ``(row, new)``.  An existing entity keeps its identity embedding.
        """
        check_id(self.kind, entity_id)
        parsed = parse_features(self.kind, features)
        if self.normalize and parsed:  # negative weights may leave a tiny sum
            total = self.identity_weight + sum(parsed.values())
            top = max(self.identity_weight, *map(abs, parsed.values()))
            if total > 0 and top / total > MAX_FEATURE_WEIGHT:
                raise InvalidFeatureError(
                    f"{self.kind} {entity_id!r}: normalised feature weights reach "
                    f"{top / total:g}; the limit is {MAX_FEATURE_WEIGHT:g}"
                )
        row, new = self.ids.add(entity_id)
        if not new and features is None:
            return row, False
        if not new:  # its old features lose one entity
            self.table.count[self.fx.features_of(row)[0]] -= 1.0
        rows = [self.feature_row(IDENTITY_PREFIX + entity_id, identity=True)]
        weights = [self.identity_weight]
        for name, weight in parsed.items():
            rows.append(self.feature_row(name, identity=False))
            weights.append(weight)
        self.table.count[rows] += 1.0
        w = np.asarray(weights, dtype=np.float64)
        if self.normalize and w.sum() > 0:
            w = w / w.sum()
        self.fx.set(row, np.asarray(rows, dtype=np.int32), w.astype(np.float32))
        self.entity_marks.mark(row)
        return row, new

    def row(self, entity_id: str) -> int:
        row = self.ids.get(entity_id)
        if row < 0:
            raise UnknownEntityError(
                f"unknown {self.kind} {entity_id!r}: onboard it first (add_{self.kind})"
            )
        return row

    def cold_vector(self, features: FeatureInput) -> tuple[np.ndarray, float]:
        """The vector and bias of a not-onboarded entity from its known features."""
        parsed = parse_features(self.kind, features)
        rows = [self.feature_names.get(n) for n in parsed]
        pairs = [(r, w) for r, w in zip(rows, parsed.values(), strict=True) if r >= 0]
        vec = np.zeros(self.table.dim, dtype=np.float32)
        bias = 0.0
        total = sum(w for _, w in pairs) + self.identity_weight
        scale = 1.0 / total if self.normalize and total > 0 else 1.0
        for r, w in pairs:
            vec += np.float32(w * scale) * self.table.emb[r]
            bias += w * scale * float(self.table.bias[r])
        return vec, bias

    def vectors(self, rows: np.ndarray | None = None) -> np.ndarray:
        """(n, d) representations of the entities in ``rows`` (default: all), from features.

        Summed one feature column at a time: memory stays (n, d) however long the
        longest feature list is (a gather of every padded list was n x width x d).
        """
        idx, w = self._feature_lists(rows)
        out = np.zeros((idx.shape[0], self.table.dim), dtype=np.float32)
        for k in range(idx.shape[1]):
            col = idx[:, k]
            live = np.flatnonzero(col >= 0)
            if not live.size:
                break
            out[live] += w[live, k, None] * self.table.emb[col[live]]
        return out

    def _feature_lists(self, rows: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
        """The padded feature rows and weights of ``rows`` (all: views, no copy)."""
        if rows is None:
            n = len(self.ids)
            return self.fx.idx[:n], self.fx.w[:n]
        return self.fx.idx[rows], self.fx.w[rows]

    def biases(self, rows: np.ndarray | None = None) -> np.ndarray:
        """Biases of the entities in ``rows`` (default: all): the sum of their features'."""
        idx, w = self._feature_lists(rows)
        out = np.zeros(idx.shape[0], dtype=np.float64)
        for k in range(idx.shape[1]):  # column by column, as vectors()
            col = idx[:, k]
            live = np.flatnonzero(col >= 0)
            if not live.size:
                break
            out[live] += w[live, k].astype(np.float64) * self.table.bias[col[live]]
        return out.astype(np.float32)

    def kernel_tables(self, activity: np.ndarray, activity_rows: np.ndarray) -> SideTables:
        """This side's tables as the kernels take them (views; ``activity``: users only)."""
        t = self.table
        return SideTables(t.emb, t.bias, t.emb_acc, t.bias_acc, self.fx.idx, self.fx.w, t.count,
                          activity, activity_rows, t.cont, t.cont_acc)  # fmt: skip


#: the item side's (absent) activity arrays
_NO_ROWS = np.zeros(0, dtype=np.int32)


class HybridModel:
    """Incremental hybrid matrix factorisation over string ids and features."""

    def __init__(self, config: ModelConfig | None = None) -> None:
        self.config = config or ModelConfig()
        cfg = self.config
        self.rng = np.random.Generator(np.random.PCG64(cfg.seed))
        self.changes = ChangeLog()
        self.users = EntitySide("user", cfg, self.rng, self.changes)
        self.items = EntitySide("item", cfg, self.rng, self.changes)
        # Items as context of the user's recent history (random start: they are not identities).
        # context rows draw from their own generator: the feature tables get the same
        # initial values whichever items (and item features) arrive in between
        self.context = FeatureTable(
            cfg.dim, cfg.init_scale, np.random.Generator(np.random.PCG64([cfg.seed, 1]))
        )
        self.activity = np.zeros(64, dtype=np.int32)
        self.activity_rows = np.array(
            [self.users.feature_row(f"#activity:{b}") for b in range(cfg.activity_buckets)],
            dtype=np.int32,
        )
        self.recent = np.zeros((64, cfg.recent_items), dtype=np.int32)
        self.recent_n = np.zeros(64, dtype=np.int32)
        self.last = np.zeros((64, cfg.continuity_items), dtype=np.int32)
        self.last_n = np.zeros(64, dtype=np.int32)
        self.pop_ring = np.zeros(cfg.pop_window, dtype=np.int32)
        self.pop_state = np.zeros(1, dtype=np.int64)
        self.trend = np.zeros(64, dtype=np.float64)
        self.trend_state = np.ones(1, dtype=np.float64)
        # new-item pseudo-count: (prior, decay per newer item, item count at the last call)
        self.newness = np.array([cfg.new_item_prior, math.log(2.0) / cfg.new_item_half_life, 0])
        self.seen = SeenSets()
        self.stats = np.zeros(kernels.STAT_SIZE, dtype=np.float64)
        self.n_events = 0
        self.version = 0
        self.hp = kernels.hyperparameters(cfg)
        self.rng_state = np.array([vectors.seed_state(cfg.seed)], dtype=np.int64)
        self._thread_marks = ThreadMarks()
        self._weights = dict(cfg.event_weights)
        self._u = np.zeros(cfg.dim, dtype=np.float32)
        self._proj = np.zeros(64, dtype=np.float32)
        self._scores = np.zeros(64, dtype=np.float32)
        self._marks = np.zeros(64, dtype=np.float32)
        self._no_items = np.zeros(0, dtype=np.int32)

    # ------------------------------------------------------------------ sizes
    @property
    def n_users(self) -> int:
        return len(self.users)

    @property
    def n_items(self) -> int:
        return len(self.items)

    @property
    def dim(self) -> int:
        return self.config.dim

    # ------------------------------------------------------------- onboarding
    def add_user(self, user_id: str, features: FeatureInput = None) -> int:
        """Onboard a user (or replace its features); returns its row."""
        row, new = self.users.upsert(user_id, features)
        if new:
            self.ensure_user_capacity(row + 1)
        return row

    def add_item(self, item_id: str, features: FeatureInput = None) -> int:
        """Onboard an item (or replace its features); returns its row."""
        row, _ = self.items.upsert(item_id, features)
        self.ensure_item_capacity(row + 1)  # new features need context rows too
        return row

    def ensure_user_capacity(self, n: int) -> None:
        """Size the per-user state (recent items, activity, seen sets) for users 0 .. n-1."""
        if n > self.recent_n.shape[0]:
            cap = capacity_for(n, self.recent_n.shape[0])
            self.recent = grown(self.recent, cap)
            self.last = grown(self.last, cap)
            self.last_n = grown(self.last_n, cap)
            self.recent_n = grown(self.recent_n, cap)
            self.activity = grown(self.activity, cap)
        self.seen.ensure(n)

    def ensure_item_capacity(self, n: int) -> None:
        """Size the per-item state (context embeddings of the item features, trend counts)
        for items 0 .. n-1."""
        missing = len(self.items.feature_names) - self.context.n
        if missing > 0:
            first = self.context.append_many(np.zeros(missing, dtype=bool))
            self.changes.context.mark_many(np.arange(first, first + missing, dtype=np.int32))
        if n > self.trend.shape[0]:
            self.trend = grown(self.trend, capacity_for(n, self.trend.shape[0]))

    def has_user(self, user_id: str) -> bool:
        return user_id in self.users.ids

    def has_item(self, item_id: str) -> bool:
        return item_id in self.items.ids

    # ------------------------------------------------------- ids and history
    def user_row(self, user_id: str) -> int:
        """The row of a known user, -1 for an unknown one."""
        return self.users.ids.get(user_id)

    def item_row(self, item_id: str) -> int:
        """The row of a known item, -1 for an unknown one."""
        return self.items.ids.get(item_id)

    def user_rows_of(self, user_ids: Iterable[str]) -> list[int]:
        """The row of every user of ``user_ids``, in order; -1 for an unknown one."""
        return self.users.ids.rows(user_ids)

    def item_rows_of(self, item_ids: Iterable[str]) -> list[int]:
        """The row of every item of ``item_ids``, in order; -1 for an unknown one."""
        return self.items.ids.rows(item_ids)

    def item_rows(self, item_ids: Iterable[str]) -> np.ndarray:
        """The rows (int32) of the known items among ``item_ids``; unknown ones are left out."""
        rows = np.array([self.items.ids.get(i) for i in item_ids], dtype=np.int32)
        return rows[rows >= 0]

    def user_id(self, row: int) -> str:
        return self.users.ids.name(row)

    def item_id(self, row: int) -> str:
        return self.items.ids.name(row)

    def item_ids(self, rows: Iterable[int]) -> list[str]:
        return self.items.ids.names(int(r) for r in rows)

    def seen_count(self, user: int) -> int:
        """How many distinct items user row ``user`` has an event for (0 if none)."""
        return self.seen.count(user)

    def seen_items(self, user: int) -> np.ndarray:
        """The item rows user row ``user`` has an event for, most recent first (a new array)."""
        return self.seen.items(user)

    def user_feature_count(self, user: int) -> int:
        """How many features user row ``user`` has, its identity feature included."""
        return int(np.count_nonzero(self.users.fx.idx[user] >= 0))

    # --------------------------------------------------------------- learning
    def event_weight(self, event_type: str) -> float:
        """The configured weight of ``event_type``; 0 means 'seen only'."""
        try:
            return self._weights[event_type]
        except (KeyError, TypeError):
            known = ", ".join(sorted(self._weights))
            raise UnknownEventTypeError(
                f"unknown event type {event_type!r}; configured types: {known}"
            ) from None

    def learn(
        self,
        users: Sequence[str],
        items: Sequence[str],
        event_types: Sequence[str],
    ) -> LearnStats:
        """Learn a batch of events in order; unseen users and items are onboarded bare.

        The whole batch is validated before anything is learned.
        """
        if not (len(users) == len(items) == len(event_types)):
            raise ValueError("users, items and event_types must have the same length")
        weights = np.array([self.event_weight(t) for t in event_types], dtype=np.float32)
        for u in users:
            check_id("user", u)
        for i in items:
            check_id("item", i)
        urows = np.array(
            [self.add_user(u) if not self.has_user(u) else self.users.row(u) for u in users],
            dtype=np.int32,
        )
        irows = np.array(
            [self.add_item(i) if not self.has_item(i) else self.items.row(i) for i in items],
            dtype=np.int32,
        )
        return self.learn_rows(urows, irows, weights)

    def learn_rows(
        self, users: np.ndarray, items: np.ndarray, weights: np.ndarray, *, threads: int = 1
    ) -> LearnStats:
        """Learn events given as rows: the batch path the trainer and the replay share.

        ``threads`` > 1 learns a large batch on that many threads (see
        :mod:`streamrec.model.threads`: faster on as many cores, not reproducible).

        An event whose update would write NaN or infinity is refused (nothing of it is
        applied, and it is not marked seen); every other event is learned, and then
        :class:`ModelDivergedError` names the refused ones.
        """
        users = np.ascontiguousarray(users, dtype=np.int32)
        items = np.ascontiguousarray(items, dtype=np.int32)
        weights = np.ascontiguousarray(weights, dtype=np.float32)
        n = users.shape[0]
        if not (items.shape[0] == n and weights.shape[0] == n):
            raise ValueError("users, items and weights must have the same length")
        if threads < 1:
            raise ValueError(f"threads must be at least 1, got {threads}")
        if n == 1:  # one event (the replay): the same checks on scalars
            self._check_one(users, items, float(weights[0]))
        elif n and not np.all(np.isfinite(weights)):
            bad = int(np.flatnonzero(~np.isfinite(weights))[0])
            raise InvalidWeightError(f"event {bad} has non-finite weight {float(weights[bad])}")
        elif n > 1 and weights.min() < 0:
            bad = int(np.argmin(weights))
            raise InvalidWeightError(f"event {bad} has negative weight {float(weights[bad])}")
        if n > 1 and (users.min() < 0 or users.max() >= self.n_users):
            raise UnknownEntityError(f"user rows must be in [0, {self.n_users}), got {users}")
        if n > 1 and (items.min() < 0 or items.max() >= self.n_items):
            raise UnknownEntityError(f"item rows must be in [0, {self.n_items}), got {items}")
        before = self.stats.copy()
        refused = self._kernel_call(users, items, weights, threads_for(n, threads))
        learned = users, items
        if refused:
            keep = np.ones(n, dtype=bool)
            keep[refused] = False
            learned = users[keep], items[keep]
        self.seen.add_many(*learned)
        if len(learned[0]) == 1:
            self.changes.seen.append(np.array([[learned[0][0], learned[1][0]]], dtype=np.int32))
        elif len(learned[0]):
            self.changes.seen.append(np.stack(learned, axis=1))
        self.n_events += len(learned[0])
        self.version += 1
        if refused:
            first = refused[0]
            raise ModelDivergedError(
                f"the update for event {first} (user {self.users.ids.name(int(users[first]))!r}, "
                f"item {self.items.ids.name(int(items[first]))!r}) would have written a "
                f"non-finite value; it was not applied. Lower lr (now {self.config.lr}) or "
                f"bias_lr (now {self.config.bias_lr}), or raise l2 (now {self.config.l2}). "
                f"{len(refused)} of the batch's {n} events were refused (events {refused[:10]}"
                f"{' ...' if len(refused) > 10 else ''}); the others were learned.",
                events=refused,
            )
        delta = self.stats - before
        return LearnStats(
            events=n,
            learned=int(delta[kernels.STAT_EVENTS]),
            pairs=int(delta[kernels.STAT_PAIRS]),
            no_violator=int(delta[kernels.STAT_NO_VIOLATOR]),
            loss=float(delta[kernels.STAT_LOSS]),
        )

    def _check_one(self, users: np.ndarray, items: np.ndarray, weight: float) -> None:
        """The checks of :meth:`learn_rows` for a single event, with the same errors."""
        if not math.isfinite(weight):
            raise InvalidWeightError(f"event 0 has non-finite weight {weight}")
        if weight < 0:
            raise InvalidWeightError(f"event 0 has negative weight {weight}")
        if not 0 <= int(users[0]) < self.n_users:
            raise UnknownEntityError(f"user rows must be in [0, {self.n_users}), got {users}")
        if not 0 <= int(items[0]) < self.n_items:
            raise UnknownEntityError(f"item rows must be in [0, {self.n_items}), got {items}")

    def _kernel_call(
        self, users: np.ndarray, items: np.ndarray, weights: np.ndarray, threads: int
    ) -> list[int]:
        """Learn the events (on ``threads`` threads); the indices of the refused ones."""
        tables, marks = self.kernel_tables(), self.kernel_changes()
        if threads == 1:
            return learn_in_order(users, items, weights, self.rng_state, tables, self.n_items,
                                  self.hp, self.stats, marks)  # fmt: skip
        return learn_split(users, items, weights, threads=threads, tables=tables,
                           n_items=self.n_items, hp=self.hp, rng=self.rng_state,
                           stats=self.stats, changes=self.changes, marks=marks,
                           thread_marks=self._thread_marks)  # fmt: skip

    def kernel_tables(self) -> KernelTables:
        """The named tables the kernels take (views of the model's arrays)."""
        u, i, c = self.users, self.items, self.context
        return KernelTables(
            u.kernel_tables(self.activity, self.activity_rows),
            i.kernel_tables(_NO_ROWS, _NO_ROWS),
            ContextTables(c.emb, c.emb_acc, self.recent, self.recent_n, self.last, self.last_n),
            PopularityTables(
                self.pop_ring,
                self.pop_state,
                self.trend,
                self.trend_state,
                self._newness(),
            ),
        )

    def _newness(self) -> np.ndarray:
        self.newness[2] = self.n_items
        return self.newness

    def kernel_changes(self) -> ChangeMarks:
        """Where the kernels mark the rows they write, sized to the current tables."""
        log = self.changes
        return ChangeMarks(
            log.user_features.marks(self.users.table.emb.shape[0]),
            log.item_features.marks(self.items.table.emb.shape[0]),
            log.trained_items.marks(self.trend.shape[0]),
            log.context.marks(self.context.emb.shape[0]),
            log.users.marks(self.recent_n.shape[0]),
            log.items.marks(self.trend.shape[0]),
            log.ring.marks(self.pop_ring.shape[0]),
        )

    def forget_changes(self) -> None:
        """Start the change log afresh: the next change set holds only later changes."""
        self.changes.clear(
            self.n_users, self.n_items, len(self.users.feature_names), len(self.items.feature_names)
        )

    def has_changes(self) -> bool:
        """Whether anything was written since the last :meth:`export_changes` (O(1))."""
        log = self.changes
        return log.pending()

    def export_changes(self) -> ChangeSet:
        """What changed since the previous export, as a :class:`ChangeSet` (O(rows touched))."""
        return replica.export(self)

    def apply_changes(self, changes: ChangeSet) -> None:
        """Bring this replica up to another model's exported ``changes`` (same config)."""
        replica.apply(self, changes)

    def mark_seen(self, user: int, item: int) -> None:
        """Record that ``user`` has an event for ``item`` without learning it."""
        self.seen.add(user, item)
        self.changes.seen.append(np.array([[user, item]], dtype=np.int32))

    # ---------------------------------------------------------------- scoring
    def user_vector_row(self, user: int, out: np.ndarray | None = None) -> np.ndarray:
        out = np.zeros(self.dim, dtype=np.float32) if out is None else out
        tables = self.kernel_tables()
        ctx_k = int(self.hp[kernels.HP_CTX_K])
        vectors.user_representation(
            user, tables.users, tables.items, tables.context, self.config.recent_weight, ctx_k, out
        )
        return out

    def continuity_row(self, user: int) -> tuple[float, np.ndarray]:
        """(continuity weight, marks): marks[f] = idf of f for the shared features of the
        user's last items, the continuity signal :func:`scoring.score_items` folds in."""
        tables = self.kernel_tables()
        nf = len(self.items.feature_names)
        if self._marks.shape[0] < nf:
            self._marks = np.zeros(capacity_for(nf, self._marks.shape[0]), dtype=np.float32)
        self._marks[:] = 0.0
        weight = float(
            vectors.continuity_affinity(user, tables.users, self.config.continuity_weight)
        )
        if weight != 0.0:
            rf = np.empty(self.last.shape[1] * tables.items.feature_rows.shape[1], np.int32)
            m = vectors.recent_features(user, tables.items, tables.context, -1, rf)
            self._marks[rf[:m]] = np.log(
                self.n_items / np.maximum(self.items.table.count[rf[:m]], 1.0)
            )
        return weight, self._marks

    def continuity_scores(self, user: int, rows: np.ndarray) -> np.ndarray | None:
        """The continuity signal of items ``rows`` for user row ``user``: what
        :meth:`top_k_rows` adds to their :meth:`item_representations` products (float64);
        None when it is 0 for every item (the user's weight is 0, or it has no recent
        items).  Costs O(len(rows)), where :meth:`continuity_row` costs O(features)."""
        tables = self.kernel_tables()
        out = np.empty(len(rows), dtype=np.float64)
        some = scoring.continuity_for(
            user, tables.users, tables.items, tables.context, self.config.continuity_weight,
            float(self.n_items), np.asarray(rows, dtype=np.int64), out,
        )  # fmt: skip
        if not some:
            return None
        return out

    def trend_affinity_row(self, user: int) -> float:
        """How strongly the user's scores follow the recency-popularity prior."""
        users = self.kernel_tables().users
        return float(vectors.trend_affinity(user, users, self.config.trend_weight))

    def user_state(
        self, user_id: str | None = None, features: FeatureInput = None
    ) -> tuple[np.ndarray, float]:
        """(vector, trend affinity) of a known user, or the cold start of unknown features."""
        if user_id is not None and self.has_user(user_id):
            row = self.users.row(user_id)
            return self.user_vector_row(row), self.trend_affinity_row(row)
        if features is None:
            raise UnknownEntityError(
                f"unknown user {user_id!r} and no features given to build a cold-start vector"
            )
        vec, bias = self.users.cold_vector(features)
        if self.activity_rows.shape[0]:  # a user with no events sits in bucket 0
            r = int(self.activity_rows[0])
            vec += self.users.table.emb[r]
            bias += float(self.users.table.bias[r])
        tw = self.config.trend_weight
        return vec, (tw + bias if tw != 0.0 else 0.0)

    def user_vector(self, user_id: str | None = None, features: FeatureInput = None) -> np.ndarray:
        """A known user's representation, or the cold-start vector of unknown features."""
        return self.user_state(user_id, features)[0]

    def scores_for_vector(
        self,
        u: np.ndarray,
        affinity: float = 0.0,
        continuity: tuple[float, np.ndarray] | None = None,
    ) -> np.ndarray:
        """Scores of every item for a user vector (a view into a scratch buffer).

        ``continuity``: a known user's :meth:`continuity_row` (without it, the
        continuity signal is left out: a user with no recent items has none).
        """
        it = self.items
        n, nf = self.n_items, len(it.feature_names)
        if self._proj.shape[0] < nf:
            self._proj = np.zeros(capacity_for(nf, self._proj.shape[0]), dtype=np.float32)
        if self._scores.shape[0] < n:
            self._scores = np.zeros(capacity_for(n, self._scores.shape[0]), dtype=np.float32)
        tables = self.kernel_tables()
        cont_aff, marks = continuity if continuity is not None else (0.0, self._marks)
        scoring.score_items(
            u, affinity, tables.items, tables.popularity, n, nf, self._proj, self._scores,
            cont_aff, marks,
        )  # fmt: skip
        return self._scores[:n]

    def scores_for_query(self, query: np.ndarray, user: int = -1) -> np.ndarray:
        """Scores of every item for a :meth:`user_query` vector (a scratch-buffer view);
        with a known ``user`` row, its continuity signal too, so the scores are those of
        :meth:`top_k_rows` (the query cannot carry it: it depends on each item's
        features and the user's last items)."""
        cont = self.continuity_row(user) if user >= 0 else None
        return self.scores_for_vector(query[: self.dim], float(query[self.dim + 1]), cont)

    def scores(self, user_id: str | None = None, features: FeatureInput = None) -> np.ndarray:
        """A copy of the scores of every item (in row order) for a user."""
        vec, affinity = self.user_state(user_id, features)
        known = user_id is not None and self.has_user(user_id)
        cont = self.continuity_row(self.users.row(user_id)) if known else None  # type: ignore[arg-type]
        return self.scores_for_vector(vec, affinity, cont).copy()

    def top_k_rows(
        self,
        user: int,
        k: int,
        exclude_seen: bool = True,
        exclude: np.ndarray | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Rows and scores of the user's ``k`` best items, best first."""
        vec = self.user_vector_row(user, self._u)
        scores = self.scores_for_vector(
            vec, self.trend_affinity_row(user), self.continuity_row(user)
        )
        excluded = self.seen.items(user) if exclude_seen else self._no_items
        if exclude is not None and len(exclude):
            excluded = np.concatenate([excluded, np.asarray(exclude, dtype=np.int32)])
        return self.top_k_scores(scores, k, excluded)

    @staticmethod
    def top_k_scores(
        scores: np.ndarray, k: int, excluded: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        idx = np.zeros(k, dtype=np.int64)
        val = np.zeros(k, dtype=np.float32)
        m = scoring.top_k(scores, scores.shape[0], k, excluded, idx, val)
        return idx[:m], val[:m]

    def recommend(
        self,
        user_id: str,
        k: int = 10,
        *,
        features: FeatureInput = None,
        exclude_seen: bool = True,
        exclude: Iterable[str] = (),
    ) -> list[tuple[str, float]]:
        """The ``k`` best ``(item_id, score)`` for a user; unknown users need ``features``."""
        if k < 1:
            raise ValueError(f"k must be >= 1, got {k}")
        excl = self.item_rows(exclude)
        if self.has_user(user_id):
            rows, vals = self.top_k_rows(self.users.row(user_id), k, exclude_seen, excl)
        else:
            scores = self.scores_for_vector(*self.user_state(user_id, features))
            rows, vals = self.top_k_scores(scores, k, excl)
        return [(self.items.ids.name(int(r)), float(v)) for r, v in zip(rows, vals, strict=True)]

    # -------------------------------------------------------- representations
    @property
    def query_dim(self) -> int:
        """Width of :meth:`item_representations` and :meth:`user_query`."""
        return self.dim + 2

    def item_representations(self, rows: np.ndarray | None = None) -> np.ndarray:
        """(n, d + 2): item vectors, then the item bias, then the trend signal.

        Paired with :meth:`user_query` (the user vector, 1, the user's trend affinity), the
        whole score is one inner product, which an ANN index searches directly.  ``rows``
        selects some items (default: all).
        """
        sel = np.arange(self.n_items) if rows is None else np.asarray(rows, dtype=np.int64)
        prior, rate, _ = self._newness()
        new = prior * np.exp(-rate * (self.n_items - 1.0 - sel)) if prior else 0.0
        trend = np.log1p(self.trend[sel] / self.trend_state[0] + new)
        out = np.empty((len(sel), self.dim + 2), dtype=np.float32)
        it = self.items  # vectors and biases as EntitySide.vectors and .biases, in one pass
        representations.vectors_and_biases(sel, it.fx.idx, it.fx.w, it.table.emb, it.table.bias,
                                           out)  # fmt: skip
        out[:, self.dim + 1] = trend
        return out

    def user_query(self, user_id: str | None = None, features: FeatureInput = None) -> np.ndarray:
        """(d + 2,): the user's side of the inner product with :meth:`item_representations`."""
        vec, affinity = self.user_state(user_id, features)
        return np.concatenate([vec, [1.0, affinity]]).astype(np.float32)

    def user_query_row(self, user: int) -> np.ndarray:
        """:meth:`user_query` of a known user's row."""
        vec = self.user_vector_row(user)
        return np.concatenate([vec, [1.0, self.trend_affinity_row(user)]]).astype(np.float32)

    def popularity(self) -> np.ndarray:
        """Decayed positive counts per item (half-life ``trend_half_life`` positives)."""
        return self.trend[: self.n_items] / self.trend_state[0]

    def check_finite(self) -> None:
        """Raise :class:`ModelDivergedError` if any table holds NaN or infinity."""
        for name, arr in self.arrays().items():
            if arr.dtype.kind == "f" and not np.all(np.isfinite(arr)):
                raise ModelDivergedError(f"model table {name} holds non-finite values")

    def arrays(self) -> dict[str, np.ndarray]:
        """Every numeric array of the model state (live rows only), by name."""
        u, i, c = self.users, self.items, self.context
        nu, ni = self.n_users, self.n_items
        nuf, nif = len(u.feature_names), len(i.feature_names)
        return {
            "user_emb": u.table.emb[:nuf], "user_bias": u.table.bias[:nuf],
            "user_emb_acc": u.table.emb_acc[:nuf], "user_bias_acc": u.table.bias_acc[:nuf],
            "user_cont": u.table.cont[:nuf], "user_cont_acc": u.table.cont_acc[:nuf],
            "user_fx": u.fx.idx[:nu], "user_fw": u.fx.w[:nu],
            "item_emb": i.table.emb[:nif], "item_bias": i.table.bias[:nif],
            "item_emb_acc": i.table.emb_acc[:nif], "item_bias_acc": i.table.bias_acc[:nif],
            "item_fx": i.fx.idx[:ni], "item_fw": i.fx.w[:ni],
            "item_feature_count": i.table.count[:nif],
            "ctx_emb": c.emb[:nif], "ctx_acc": c.emb_acc[:nif],
            "recent": self.recent[:nu], "recent_n": self.recent_n[:nu],
            "last": self.last[:nu], "last_n": self.last_n[:nu],
            "activity": self.activity[:nu], "activity_rows": self.activity_rows,
            "pop_ring": self.pop_ring, "pop_state": self.pop_state,
            "trend": self.trend[:ni], "trend_state": self.trend_state,
            "rng_state": self.rng_state, "stats": self.stats,
        }  # fmt: skip

    def __repr__(self) -> str:
        return (
            f"HybridModel(users={self.n_users}, items={self.n_items}, dim={self.dim}, "
            f"loss={self.config.loss!r}, events={self.n_events})"
        )
