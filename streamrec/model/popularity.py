"""Item popularity counts, all-time or exponentially decayed, for baselines and fallbacks."""

from __future__ import annotations

import math

import numpy as np

from streamrec.model.tables import capacity_for, grown


class DecayedPopularity:
    """Counts of positive events per item row, halving every ``half_life`` events.

    ``half_life=None`` keeps all-time counts.  Decay is lazy: each event adds a weight
    that grows by ``2 ** (1 / half_life)`` per event, and the whole vector is rescaled
    before the weights overflow, so an update is O(1).
    """

    def __init__(self, half_life: float | None = None) -> None:
        if half_life is not None and not half_life > 0:
            raise ValueError(f"half_life must be > 0 or None, got {half_life!r}")
        self.half_life = half_life
        self._growth = 1.0 if half_life is None else 2.0 ** (1.0 / half_life)
        self._weight = 1.0
        self.counts = np.zeros(64, dtype=np.float64)
        self.n = 0

    def _ensure(self, n: int) -> None:
        if n > self.counts.shape[0]:
            self.counts = grown(self.counts, capacity_for(n, self.counts.shape[0]))
        self.n = max(self.n, n)

    def add(self, item: int, weight: float = 1.0) -> None:
        self._ensure(item + 1)
        self._weight *= self._growth
        self.counts[item] += weight * self._weight
        if self._weight > 1e200 or not math.isfinite(self._weight):
            self.counts[: self.n] /= self._weight
            self._weight = 1.0

    def scores(self, n_items: int) -> np.ndarray:
        """Relative popularity of the first ``n_items`` rows (a view, same order as counts)."""
        self._ensure(n_items)
        return self.counts[:n_items]
