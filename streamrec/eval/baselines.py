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

from streamrec.model import (
    DecayedPopularity,
    cooccurrence_similarities,
    shared_feature_counts,
    top_rows,
)

__all__ = [
    "Baseline",
    "DecayedPopularityBaseline",
    "ItemKNN",
    "Popularity",
    "RecentFeatures",
    "default_baselines",
    "top_rows",
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


class Popularity(Baseline):
    """All-time positive counts per item."""

    name = "popularity"
    label = "popularity (all-time)"

    def __init__(self) -> None:
        self.counts = DecayedPopularity(None)

    def top_k(self, user: int, n_items: int, k: int, excluded: np.ndarray) -> np.ndarray:
        return top_rows(self.counts.scores(n_items), k, excluded)

    def learn(self, user: int, item: int, positive: bool) -> None:
        if positive:
            self.counts.add(item)


class DecayedPopularityBaseline(Popularity):
    """Positive counts halving every ``half_life`` positive events."""

    name = "decayed_popularity"
    label = "popularity (decayed)"

    def __init__(self, half_life: float = 2000.0) -> None:
        self.counts = DecayedPopularity(half_life)


# ---------------------------------------------------------------- item-kNN


class ItemKNN(Baseline):
    """Item-based kNN on positive co-occurrence, similarities refit every ``refit_every``.

    Memory is dense in the number of items (co-occurrence and similarity matrices of
    items x items float32): fine for evaluation logs up to a few ten thousand items.
    """

    name = "item_knn"
    label = "item-kNN"

    def __init__(self, refit_every: int = 2000) -> None:
        self.refit_every = refit_every
        self.co = np.zeros((64, 64), dtype=np.float32)
        self.sim = np.zeros((0, 0), dtype=np.float32)
        self.history: dict[int, np.ndarray] = {}  # user -> distinct positive items (growing)
        self.history_n: dict[int, int] = {}
        self.pairs: set[tuple[int, int]] = set()
        self.profiles: dict[int, np.ndarray] = {}  # user -> sum of sim rows, this fit only
        self.popularity = DecayedPopularity(None)
        self.n_positive = 0

    def _ensure(self, n: int) -> None:
        if n > self.co.shape[0]:
            cap = capacity_for(n, self.co.shape[0])
            co = np.zeros((cap, cap), dtype=np.float32)
            co[: self.co.shape[0], : self.co.shape[1]] = self.co
            self.co = co

    def _hist(self, user: int) -> np.ndarray:
        h = self.history.get(user)
        return h[: self.history_n[user]] if h is not None else np.zeros(0, dtype=np.int64)

    def top_k(self, user: int, n_items: int, k: int, excluded: np.ndarray) -> np.ndarray:
        m = self.sim.shape[0]
        scores = np.zeros(n_items, dtype=np.float32)
        if m and user in self.history:
            profile = self.profiles.get(user)
            if profile is None:
                hist = self._hist(user)
                profile = self.sim[hist[hist < m]].sum(axis=0)
                self.profiles[user] = profile
            scores[:m] = profile
        rows = top_rows(scores, k, excluded)
        rows = rows[scores[rows] > 0]  # similar items first, then popularity fills up
        if rows.shape[0] < k:
            more = top_rows(
                self.popularity.scores(n_items), k - rows.shape[0],
                np.concatenate([excluded, rows]),
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
            self._ensure(item + 1)
            self.co[item, hist] += 1.0
            self.co[hist, item] += 1.0
            self.co[item, item] += 1.0
            buf = self.history.get(user)
            n = self.history_n.get(user, 0)
            if buf is None:
                buf = np.zeros(8, dtype=np.int64)
            elif n == buf.shape[0]:
                buf = grown(buf, 2 * n)
            buf[n] = item
            self.history[user] = buf
            self.history_n[user] = n + 1
            profile = self.profiles.get(user)
            if profile is not None and item < self.sim.shape[0]:
                profile += self.sim[item]
        if self.n_positive % self.refit_every == 0:
            n = self.popularity.n
            self._ensure(n)
            self.sim = cooccurrence_similarities(self.co, n)
            self.profiles.clear()


# ------------------------------------------------------- recent features


class RecentFeatures(Baseline):
    """Items sharing features with the user's last ``window`` items (of any event type)."""

    name = "recent_features"
    label = "recent features"

    def __init__(self, window: int = 20, half_life: float = 2000.0) -> None:
        self.window = window
        self.features: dict[str, int] = {}
        self.item_features = np.full((64, 1), -1, dtype=np.int32)
        self.recent: dict[int, list[int]] = {}
        self.popularity = DecayedPopularity(half_life)
        self.mark = np.zeros(64, dtype=np.int32)

    def add_item(self, item: int, features: Iterable[str]) -> None:
        names = list(features.keys()) if isinstance(features, Mapping) else list(features)
        rows = [self.features.setdefault(name, len(self.features)) for name in dict.fromkeys(names)]
        if item >= self.item_features.shape[0]:
            self.item_features = grown(
                self.item_features, capacity_for(item + 1, self.item_features.shape[0]), -1
            )
        if len(rows) > self.item_features.shape[1]:
            wider = np.full((self.item_features.shape[0], len(rows)), -1, dtype=np.int32)
            wider[:, : self.item_features.shape[1]] = self.item_features
            self.item_features = wider
        self.item_features[item] = -1
        self.item_features[item, : len(rows)] = rows
        if len(self.features) > self.mark.shape[0]:
            self.mark = np.zeros(capacity_for(len(self.features), self.mark.shape[0]), np.int32)

    def top_k(self, user: int, n_items: int, k: int, excluded: np.ndarray) -> np.ndarray:
        if n_items > self.item_features.shape[0]:
            self.item_features = grown(
                self.item_features, capacity_for(n_items, self.item_features.shape[0]), -1
            )
        recent = np.asarray(self.recent.get(user, ()), dtype=np.int64)
        shared = np.zeros(n_items, dtype=np.float64)
        shared_feature_counts(
            recent, recent.shape[0], self.item_features, n_items, self.mark, shared
        )
        # lexicographic (shared, log1p(decayed popularity)): log1p of a decayed count is far
        # below the step of one shared feature
        key = shared * 1e3 + np.log1p(self.popularity.scores(n_items))
        return top_rows(key, k, excluded, newest_first=True)

    def learn(self, user: int, item: int, positive: bool) -> None:
        ring = self.recent.setdefault(user, [])
        ring.append(item)
        if len(ring) > self.window:
            del ring[0]
        if positive:
            self.popularity.add(item)


def default_baselines(half_life: float = 2000.0) -> list[Baseline]:
    """The baselines ``streamrec evaluate`` runs beside the model, in report order."""
    return [
        Popularity(),
        DecayedPopularityBaseline(half_life),
        ItemKNN(refit_every=2000),
        RecentFeatures(window=20, half_life=half_life),
    ]
