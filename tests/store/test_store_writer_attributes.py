"""Attributes the trainer just applied (``StoreItemAttributes.update``) under a bulk
onboarding: thousands of entries live at once are kept and served, and forgetting the
finished ones costs amortised O(1) per update (a sweep once per doubling), not a scan
of every live entry on every update."""

from __future__ import annotations

from pathlib import Path

import pytest

from streamrec.store import FeatureStore, adapters
from streamrec.store.adapters import StoreItemAttributes
from streamrec.workers.attributes import MemoryItemAttributes


def test_a_bulk_onboarding_keeps_every_live_entry_and_sweeps_rarely(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = FeatureStore.open(f"sqlite:///{tmp_path / 's.db'}")
    attrs = StoreItemAttributes(store, MemoryItemAttributes(), hold_s=3600.0)  # all live
    checks = 0
    live = StoreItemAttributes._live

    def counted(self: StoreItemAttributes, entry: object, now: float) -> bool:
        nonlocal checks
        checks += 1
        return live(self, entry, now)  # type: ignore[arg-type]

    monkeypatch.setattr(StoreItemAttributes, "_live", counted)
    n = 5 * adapters.SWEEP_AT
    for i in range(n):
        attrs.update(f"i{i}", {"category": f"c{i % 7}", "colour": "red"}, 1.0)
    # every entry is still live (the store has not confirmed any): all kept
    assert len(attrs._recent) == n
    assert all(attrs._recent[f"i{i}"].attributes == {"category": f"c{i % 7}"}
               for i in range(n))  # fmt: skip
    # sweeps at 4096, 8192, 16384 entries: under 2n checks in all (one sweep per update
    # beyond 4096 entries made ~(n - 4096) * n / 2 of them)
    assert checks < 2 * n
    store.engine.dispose()
