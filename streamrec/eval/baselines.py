"""Baselines that run in the same prequential pass as the model, on the same exclusions.

Each baseline is one small class with the :class:`Baseline` interface: the replay tells
it about item features (``add_item``, when an item is onboarded or its features change),
asks it for the user's top ``k`` rows (``top_k``, with the user's seen items excluded),
then tells it about the event (``learn``, positives and seen-only events alike).  Rows
are the model's item and user rows: an item is a candidate from its first event.
A new baseline is one more class and one entry in :func:`default_baselines`.

* ``popularity``: all-time positive counts (ties: lower item row).
* ``decayed_popularity``: counts with a half-life in positive events.
* ``item_knn``: cosine similarity of items' co-occurrence in users' positive histories,
  recomputed every ``refit_every`` positives (co-occurrence counts themselves are kept
  up to date per event), scored as the sum of similarities to the user's live history
  of positive items; users with no similar item left fall back to all-time popularity.
* ``recent_features``: each item scored by how many of its features occur among the
  features of the user's last ``window`` items (of any event type); ties by
  ``log1p`` of the decayed popularity, then newest item first.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable, Mapping
from typing import ClassVar

import numpy as np

from streamrec.model import DecayedPopularity, TopK
from streamrec.model import baseline_kernels as kernels

__all__ = [
    "Baseline",
    "DecayedPopularityBaseline",
    "ItemKNN",
    "Popularity",
    "RecentFeatures",
    "default_baselines",
]


def capacity_for(n: int, current: int) -> int:
    """The next power-of-two multiple of ``current`` (at least 64) that holds ``n``."""
    cap = max(current, 64)
    while cap < n:
        cap *= 2
    return cap


def grown(a: np.ndarray, rows: int, fill: float | int = 0) -> np.ndarray:
    """A copy of ``a`` with ``rows`` rows (first axis), new rows set to ``fill``."""
    out = np.full((rows, *a.shape[1:]), fill, dtype=a.dtype)
    out[: a.shape[0]] = a
    return out


class Baseline(ABC):
    """One system scored beside the model; see the module docstring for the protocol."""

    #: Key in reports and JSON; a short label for tables and plots.
    name: ClassVar[str]
    label: ClassVar[str]

    def add_item(self, item: int, features: Iterable[str]) -> None:  # noqa: B027
        """Item ``item`` was onboarded, or its features replaced (default: ignored)."""

    @abstractmethod
    def top_k(self, user: int, n_items: int, k: int, excluded: np.ndarray) -> np.ndarray:
        """The user's ``k`` best item rows among ``0 .. n_items - 1`` minus ``excluded``."""

    @abstractmethod
    def learn(self, user: int, item: int, positive: bool) -> None:
        """The event ``(user, item)``; ``positive`` False for seen-only events."""


class Leaders:
    """The best ``cap`` rows of a key vector whose entries only grow, kept in order.

    Best first by key, ties to the lower row (the higher with ``newest_first``): the
    order of :meth:`TopK.top`.  Rows join with :meth:`track` (in row order), a row whose
    key rose goes through :meth:`raise_`; after any key fell (a rescale), :meth:`reset`.  Every
    row outside the list ranks below its last row, so :meth:`top` walks the list past
    the exclusions, O(excluded + k) unless they swallow the list (then ``None``: scan).
    """

    def __init__(self, cap: int = 2048, newest_first: bool = False) -> None:
        self.newest_first = newest_first
        self.rows = np.zeros(cap, dtype=np.int64)
        self.pos = np.full(64, -1, dtype=np.int64)
        self.state = np.zeros(2, dtype=np.int64)  # rows listed, rows tracked
        self.flags = np.zeros(64, dtype=np.uint8)

    def reset(self) -> None:
        """Forget every row (keys fell): they are offered again by the next :meth:`track`."""
        self.pos[:] = -1
        self.state[:] = 0

    def track(self, keys: np.ndarray, n: int) -> None:
        """Offer the rows up to ``n - 1`` not offered yet (``keys`` covers them)."""
        if n > self.pos.shape[0]:
            self.pos = grown(self.pos, capacity_for(n, self.pos.shape[0]), -1)
            self.flags = np.zeros(self.pos.shape[0], dtype=np.uint8)
        if n > int(self.state[1]):
            kernels.leaders_track(keys, self.rows, self.pos, self.state, n, self.newest_first)

    def raise_(self, keys: np.ndarray, row: int) -> None:
        """Row ``row``'s key rose (a row not tracked yet waits for :meth:`track`)."""
        if row < int(self.state[1]):
            kernels.leaders_raise(keys, self.rows, self.pos, self.state, row, self.newest_first)

    def top(self, n_items: int, k: int, excluded: np.ndarray) -> np.ndarray | None:
        """The ``k`` best tracked rows below ``n_items`` not in ``excluded``, or None."""
        if n_items > self.flags.shape[0]:
            self.flags = np.zeros(capacity_for(n_items, self.flags.shape[0]), dtype=np.uint8)
        idx = np.zeros(k, dtype=np.int64)
        m = kernels.leaders_top(self.rows, self.state, n_items, np.asarray(excluded, dtype=np.int64),
                        self.flags, k, idx)  # fmt: skip
        return None if m < 0 else idx[:m]


class RankedCounts:
    """:class:`DecayedPopularity` with its :class:`Leaders` (ties to the lower row)."""

    def __init__(self, half_life: float | None, cap: int = 2048) -> None:
        self.counts = DecayedPopularity(half_life)
        self.leaders = Leaders(cap)
        self.ranker = TopK()

    def add(self, item: int) -> None:
        counts = self.counts
        weight = counts._weight
        counts.add(item)
        if counts._weight < weight:  # rescaled: every count changed
            self.leaders.reset()
        else:
            self.leaders.raise_(counts.counts, item)

    def top(self, n_items: int, k: int, excluded: np.ndarray) -> np.ndarray:
        """``TopK().top(counts.scores(n_items), k, excluded)``, from the leaders."""
        scores = self.counts.scores(n_items)
        self.leaders.track(self.counts.counts, n_items)
        rows = self.leaders.top(n_items, k, excluded)
        return self.ranker.top(scores, k, excluded) if rows is None else rows


class Popularity(Baseline):
    """All-time positive counts per item."""

    name = "popularity"
    label = "popularity (all-time)"

    def __init__(self) -> None:
        self.ranked = RankedCounts(None)

    @property
    def counts(self) -> DecayedPopularity:
        return self.ranked.counts

    def top_k(self, user: int, n_items: int, k: int, excluded: np.ndarray) -> np.ndarray:
        return self.ranked.top(n_items, k, excluded)

    def learn(self, user: int, item: int, positive: bool) -> None:
        if positive:
            self.ranked.add(item)


class DecayedPopularityBaseline(Popularity):
    """Positive counts halving every ``half_life`` positive events."""

    name = "decayed_popularity"
    label = "popularity (decayed)"

    def __init__(self, half_life: float = 2000.0) -> None:
        self.ranked = RankedCounts(half_life)


# ---------------------------------------------------------------- item-kNN


class CooccurrenceGraph:
    """Item co-occurrence counts in users' positive histories, sparse (O(pairs) memory).

    ``co[a, b]`` (a != b) lives in paired entries (see
    :mod:`streamrec.model.baseline_kernels`), ``co[a, a]`` in ``diag``; :meth:`fit`
    turns the counts into sparse rows of cosine similarities (the values
    :func:`cooccurrence_similarities` computes densely), :meth:`add_row` adds one up.
    """

    def __init__(self) -> None:
        self.slots = np.full(1024, -1, dtype=np.int64)  # hash of pairs -> first entry
        self.nbr = np.zeros(1024, dtype=np.int32)
        self.cnt = np.zeros(1024, dtype=np.float32)
        self.diag = np.zeros(64, dtype=np.float32)
        self.norm = np.zeros(64, dtype=np.float32)
        # the last fit's similarity rows
        self.indptr = np.zeros(1, dtype=np.int64)
        self.indices = np.zeros(0, dtype=np.int32)
        self.values = np.zeros(0, dtype=np.float32)
        self.state = np.zeros(2, dtype=np.int64)  # entries used, pairs used
        self.m = 0  # items of the last fit

    def _ensure(self, n_items: int, more: int) -> None:
        if n_items > self.diag.shape[0]:
            cap = capacity_for(n_items, self.diag.shape[0])
            self.diag = grown(self.diag, cap)
            self.norm = grown(self.norm, cap)
        entries = int(self.state[0]) + 2 * more
        if entries > self.nbr.shape[0]:
            cap = capacity_for(entries, self.nbr.shape[0])
            self.nbr = grown(self.nbr, cap)
            self.cnt = grown(self.cnt, cap)
        if 2 * (int(self.state[1]) + more) > self.slots.shape[0]:
            cap = capacity_for(2 * (int(self.state[1]) + more), self.slots.shape[0])
            self.slots = np.full(cap, -1, dtype=np.int64)
            kernels.rehash_pairs(self.nbr, int(self.state[0]), self.slots)

    def add(self, item: int, hist: np.ndarray) -> None:
        """co[item, h] += 1 and co[h, item] += 1 for each h in ``hist``, co[item, item] += 1."""
        self._ensure(item + 1, hist.shape[0])
        kernels.cooccurrence_add(item, hist, hist.shape[0], self.slots, self.nbr, self.cnt,
                                 self.diag, self.state)  # fmt: skip

    def fit(self, n: int) -> None:
        """Freeze the counts: similarities among items ``0 .. n - 1`` from now on."""
        self._ensure(n, 0)
        entries = int(self.state[0])
        self.indptr = np.zeros(n + 1, dtype=np.int64)
        if self.indices.shape[0] < entries:  # (rows are read within indptr only)
            cap = capacity_for(entries, self.indices.shape[0])
            self.indices = np.empty(cap, dtype=np.int32)
            self.values = np.empty(cap, dtype=np.float32)
        kernels.cooccurrence_fit(self.cnt, self.nbr, entries, self.diag, n, self.norm, self.indptr,
                         self.indices, self.values)  # fmt: skip
        self.m = n

    def add_row(self, a: int, out: np.ndarray) -> None:
        """out += row ``a`` of the fitted similarities (``out`` has ``m`` entries)."""
        kernels.add_similarity_row(a, self.m, self.indptr, self.indices, self.values, out)


class ItemKNN(Baseline):
    """Item-based kNN on positive co-occurrence, similarities refit every ``refit_every``.

    Co-occurrence counts are sparse (:class:`CooccurrenceGraph`): memory grows with the
    co-occurring pairs, not with the square of the catalogue; a profile costs the sum of
    its history's similarity rows.
    """

    name = "item_knn"
    label = "item-kNN"

    def __init__(self, refit_every: int = 2000, leaders: int = 2048) -> None:
        self.refit_every = refit_every
        self.co = CooccurrenceGraph()
        self.history: dict[int, np.ndarray] = {}  # user -> distinct positive items (growing)
        self.history_n: dict[int, int] = {}
        self.pairs: set[tuple[int, int]] = set()
        #: user -> (sum of sim rows, its non-zero entries, how many), this fit only
        self.profiles: dict[int, tuple[np.ndarray, np.ndarray, int]] = {}
        self.popularity = RankedCounts(None, leaders)
        self.n_positive = 0
        self.ranker = TopK()

    def _hist(self, user: int) -> np.ndarray:
        h = self.history.get(user)
        return h[: self.history_n[user]] if h is not None else np.zeros(0, dtype=np.int64)

    def _profile(self, user: int) -> tuple[np.ndarray, np.ndarray, int]:
        """The user's profile for this fit, with the list of its non-zero entries."""
        got = self.profiles.get(user)
        if got is None:
            co = self.co
            profile = np.zeros(co.m, dtype=np.float32)
            listed, n = kernels.similarity_profile(self._hist(user), co.m, co.indptr, co.indices,
                                                   co.values, profile)  # fmt: skip
            got = (profile, listed, int(n))
            self.profiles[user] = got
        return got

    def _add_row(self, user: int, a: int) -> None:
        """profile += similarity row ``a``, listing the entries that become non-zero."""
        co = self.co
        profile, listed, n = self.profiles[user]
        if a >= co.m:
            return
        need = n + int(co.indptr[a + 1] - co.indptr[a])
        if need > listed.shape[0]:
            listed = grown(listed, capacity_for(need, listed.shape[0]))
        n = kernels.add_similarity_row_listed(a, co.m, co.indptr, co.indices, co.values, profile,
                                      listed, n)  # fmt: skip
        self.profiles[user] = (profile, listed, n)

    def top_k(self, user: int, n_items: int, k: int, excluded: np.ndarray) -> np.ndarray:
        m = self.co.m
        rows = np.zeros(0, dtype=np.int64)
        if m and user in self.history:
            profile, listed, n = self._profile(user)
            # the best positive similarities (zeros and items past the fit rank below them)
            if self.ranker.flags.shape[0] < m:
                self.ranker.flags = np.zeros(capacity_for(m, self.ranker.flags.shape[0]),
                                             dtype=np.uint8)  # fmt: skip
            idx = np.zeros(k, dtype=np.int64)
            val = np.zeros(k, dtype=np.float32)
            got = kernels.listed_top_k(profile, listed, n, np.asarray(excluded, dtype=np.int64),
                               self.ranker.flags, k, True, idx, val)  # fmt: skip
            rows = idx[:got]
        if rows.shape[0] < k:  # popularity fills up
            more = self.popularity.top(
                n_items, k - rows.shape[0],
                np.concatenate([np.asarray(excluded, dtype=np.int64), rows]),
            )  # fmt: skip
            rows = np.concatenate([rows, more])
        return rows

    def learn(self, user: int, item: int, positive: bool) -> None:
        if not positive:
            return
        self.popularity.add(item)
        self.n_positive += 1
        if (user, item) not in self.pairs:
            self.pairs.add((user, item))
            hist = self._hist(user)
            self.co.add(item, hist)
            buf = self.history.get(user)
            n = self.history_n.get(user, 0)
            if buf is None:
                buf = np.zeros(8, dtype=np.int64)
            elif n == buf.shape[0]:
                buf = grown(buf, 2 * n)
            buf[n] = item
            self.history[user] = buf
            self.history_n[user] = n + 1
            if user in self.profiles and item < self.co.m:
                self._add_row(user, item)
        if self.n_positive % self.refit_every == 0:
            self.co.fit(self.popularity.counts.n)
            self.profiles.clear()


# ------------------------------------------------------- recent features


class RecentFeatures(Baseline):
    """Items sharing features with the user's last ``window`` items (of any event type)."""

    name = "recent_features"
    label = "recent features"

    def __init__(self, window: int = 20, half_life: float = 2000.0, leaders: int = 2048) -> None:
        self.window = window
        self.features: dict[str, int] = {}
        self.item_features = np.full((64, 1), -1, dtype=np.int32)
        self.recent: dict[int, list[int]] = {}
        self.popularity = DecayedPopularity(half_life)
        self.mark = np.zeros(64, dtype=np.int32)
        self.flags = np.zeros(64, dtype=np.uint8)
        self.log_pop = np.zeros(64, dtype=np.float64)
        self.log_pop_n = 0  # items whose log_pop is current
        self.leaders = Leaders(leaders, newest_first=True)  # of log_pop
        # ordered feature lists (``feature_lists_insert``): each feature's items by log_pop
        self.list_start = np.zeros(64, dtype=np.int64)
        self.list_len = np.zeros(64, dtype=np.int64)
        self.list_cap = np.zeros(64, dtype=np.int64)
        self.list_pool = np.zeros(1024, dtype=np.int64)
        self.list_end = 0  # pool entries handed out
        self.where = np.full((64, 1), -1, dtype=np.int64)  # per item and feature column
        self.listed = np.zeros(64, dtype=np.uint8)  # items in the lists
        self.lists_stale = False  # every log_pop changed (a rescale): rebuilt at the next query
        self.visited = np.zeros(64, dtype=np.int64)

    def _fit_items(self, n: int, width: int) -> None:
        """Room for item rows ``0 .. n - 1`` with ``width`` features each."""
        if n > self.item_features.shape[0]:
            cap = capacity_for(n, self.item_features.shape[0])
            self.item_features = grown(self.item_features, cap, -1)
            self.where = grown(self.where, cap, -1)
            self.listed = grown(self.listed, cap)
        if width > self.item_features.shape[1]:
            rows = self.item_features.shape[0]
            wider = np.full((rows, width), -1, dtype=np.int32)
            wider[:, : self.item_features.shape[1]] = self.item_features
            self.item_features = wider
            where = np.full((rows, width), -1, dtype=np.int64)
            where[:, : self.where.shape[1]] = self.where
            self.where = where

    def _room(self, rows: list[int]) -> None:
        """Room for one more item in the list of each feature of ``rows``."""
        if len(self.features) > self.list_start.shape[0]:
            cap = capacity_for(len(self.features), self.list_start.shape[0])
            self.list_start = grown(self.list_start, cap)
            self.list_len = grown(self.list_len, cap)
            self.list_cap = grown(self.list_cap, cap)
        for f in rows:
            if self.list_len[f] < self.list_cap[f]:
                continue
            size = max(8, 2 * int(self.list_cap[f]))
            if self.list_end + size > self.list_pool.shape[0]:
                self.list_pool = grown(
                    self.list_pool, capacity_for(self.list_end + size, self.list_pool.shape[0])
                )
            kernels.feature_list_move(f, self.list_end, self.list_start, self.list_len, self.list_pool,
                              self.item_features, self.where)  # fmt: skip
            self.list_cap[f] = size
            self.list_end += size

    def _rebuild_lists(self, log_pop: np.ndarray) -> None:
        """Every list afresh, in the order of ``log_pop`` (after a rescale)."""
        fx = self.item_features[self.listed.astype(bool)]
        need = np.bincount(fx[fx >= 0], minlength=self.list_cap.shape[0])
        for f in np.flatnonzero(need > self.list_cap).tolist():
            size = capacity_for(int(need[f]), max(8, int(self.list_cap[f])))
            if self.list_end + size > self.list_pool.shape[0]:
                self.list_pool = grown(
                    self.list_pool, capacity_for(self.list_end + size, self.list_pool.shape[0])
                )
            self.list_start[f], self.list_cap[f] = self.list_end, size
            self.list_end += size
        self.where[:] = -1
        kernels.feature_lists_rebuild(self.item_features, log_pop, self.item_features.shape[0],
                              self.listed, self.list_start, self.list_len, self.list_pool,
                              self.where)  # fmt: skip
        self.lists_stale = False

    def add_item(self, item: int, features: Iterable[str]) -> None:
        names = list(features.keys()) if isinstance(features, Mapping) else list(features)
        rows = [self.features.setdefault(name, len(self.features)) for name in dict.fromkeys(names)]
        self._fit_items(item + 1, len(rows))
        live = not self.lists_stale
        if live and self.listed[item]:
            kernels.feature_lists_remove(item, self.item_features, self.list_start, self.list_len,
                                 self.list_pool, self.where)  # fmt: skip
        self.item_features[item] = -1
        self.item_features[item, : len(rows)] = rows
        self.where[item] = -1
        if len(self.features) > self.mark.shape[0]:
            self.mark = np.zeros(capacity_for(len(self.features), self.mark.shape[0]), np.int32)
        self._room(rows)
        self.listed[item] = 1
        if live:
            log_pop = self._log_popularity(max(item + 1, self.log_pop_n))
            kernels.feature_lists_insert(item, self.item_features, log_pop, self.list_start,
                                 self.list_len, self.list_pool, self.where)  # fmt: skip

    def _log_popularity(self, n_items: int) -> np.ndarray:
        """log1p of the decayed counts of items ``0 .. n_items - 1``, kept up to date.

        The values of ``np.log1p(popularity.scores(n_items))``: numpy's log1p gives an
        element the same value in any slice, so only changed counts are recomputed.
        """
        counts = self.popularity.scores(n_items)
        if self.log_pop.shape[0] < counts.shape[0]:
            self.log_pop = grown(self.log_pop, capacity_for(n_items, self.log_pop.shape[0]))
        if self.log_pop_n < n_items:
            self.log_pop[self.log_pop_n : n_items] = np.log1p(counts[self.log_pop_n :])
            self.log_pop_n = n_items
        return self.log_pop

    def top_k(self, user: int, n_items: int, k: int, excluded: np.ndarray) -> np.ndarray:
        self._fit_items(n_items, 1)
        if self.flags.shape[0] < n_items:
            self.flags = np.zeros(capacity_for(n_items, self.flags.shape[0]), dtype=np.uint8)
        recent = np.asarray(self.recent.get(user, ()), dtype=np.int64)
        # lexicographic (shared, log1p(decayed popularity)): log1p of a decayed count is far
        # below the step of one shared feature
        idx = np.zeros(k, dtype=np.int64)
        val = np.zeros(k, dtype=np.float64)
        log_pop = self._log_popularity(max(n_items, self.log_pop_n))
        if self.lists_stale:
            self._rebuild_lists(log_pop)
        self.leaders.track(log_pop, n_items)
        if self.visited.shape[0] < n_items:
            self.visited = np.zeros(capacity_for(n_items, self.visited.shape[0]), np.int64)
        feats = np.zeros(max(recent.shape[0] * self.item_features.shape[1], 1), dtype=np.int64)
        excl = np.asarray(excluded, dtype=np.int64)
        m = kernels.recent_features_ordered(
            recent, recent.shape[0], self.item_features, n_items, self.mark, log_pop, excl,
            self.flags, k, self.list_start, self.list_len, self.list_pool, feats, self.visited,
            self.leaders.rows, self.leaders.state, idx, val,
        )  # fmt: skip
        if m < 0:  # the leaders ran out: the full pass
            m = kernels.recent_features_top_k(
                recent, recent.shape[0], self.item_features, n_items, self.mark, log_pop, excl,
                self.flags, k, idx, val,
            )  # fmt: skip
        return idx[:m]

    def learn(self, user: int, item: int, positive: bool) -> None:
        ring = self.recent.setdefault(user, [])
        ring.append(item)
        if len(ring) > self.window:
            del ring[0]
        if positive:
            weight = self.popularity._weight
            self.popularity.add(item)
            if self.popularity._weight < weight:  # rescaled: every count changed
                self.log_pop_n = 0
                self.leaders.reset()
                self.lists_stale = True
            elif item < self.log_pop_n:
                self.log_pop[item : item + 1] = np.log1p(self.popularity.counts[item : item + 1])
                self.leaders.raise_(self.log_pop, item)
                if not self.lists_stale and self.listed[item]:
                    kernels.feature_lists_raise(item, self.item_features, self.log_pop, self.list_start,
                                        self.list_pool, self.where)  # fmt: skip


def default_baselines(half_life: float = 2000.0) -> list[Baseline]:
    """The baselines ``streamrec evaluate`` runs beside the model, in report order."""
    return [
        Popularity(),
        DecayedPopularityBaseline(half_life),
        ItemKNN(refit_every=2000),
        RecentFeatures(window=20, half_life=half_life),
    ]
