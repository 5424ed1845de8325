"""ItemAttributeCache: background refresh on the change marker, readers never blocked."""

from __future__ import annotations

import random
import threading
import time

import pytest
from helpers import items
from sqlalchemy import text

from streamrec.errors import InvalidFilterError, StoreError
from streamrec.store import EntityRecord, FeatureStore, ItemAttributeCache
from streamrec.store._engine import write_transaction
from streamrec.store._writer import write_batch
from streamrec.store.cache import FOLD_MIN, Layered
from streamrec.store.records import validate_batch

COMEDY_AVAILABLE = {"category": "comedy", "available": True}


def test_snapshot_and_filters(store: FeatureStore) -> None:
    store.upsert_entities(items(12))
    with ItemAttributeCache(store, interval=0.05) as cache:
        assert len(cache.snapshot) == 12
        assert cache.version == store.attributes_version()
        # comedy = i % 3 == 0; unavailable = i % 10 == 0; tags t{i % 4} and "all"
        assert cache.filter([f"i{i}" for i in range(12)], COMEDY_AVAILABLE) == ["i3", "i6", "i9"]
        both = {**COMEDY_AVAILABLE, "tags": {"all": ["t1", "all"]}}
        assert cache.filter(["i3", "i6", "i9"], both) == ["i9"]
        # a list means any of; a scalar on a list attribute means "has it"
        assert cache.filter(["i3", "i6", "i9"], {"tags": ["t1", "t2"]}) == ["i6", "i9"]
        assert cache.filter([f"i{i}" for i in range(12)], {"tags": "t3"}) == ["i3", "i7", "i11"]
        assert cache.matches(
            "i4", {"tags": {"any": ["t0", "t2"]}, "created_at": {"min": 1_700_000_004}}
        )
        assert not cache.matches("i4", {"created_at": {"max": 1_700_000_003}})
        assert cache.view("i4") == {
            "category": "drama", "available": True, "tags": ["all", "t0"], "created_at": 1_700_000_004.0,
        }  # fmt: skip
        assert cache.matches("unknown", {})
        assert not cache.matches("unknown", {"available": True})
        assert cache.matches("unknown", {"category": {"ne": "comedy"}})
        with pytest.raises(InvalidFilterError, match="in needs a list"):
            cache.filter(["i1"], {"available": {"in": 1}})


def test_marking_an_item_unavailable_reaches_the_cache(store: FeatureStore) -> None:
    store.upsert_entities(items(6))
    with ItemAttributeCache(store, interval=0.05) as cache:
        assert cache.matches("i3", COMEDY_AVAILABLE)
        before = cache.snapshot

        result = store.upsert_entities(
            [EntityRecord("item", "i3", attributes={"available": False})]
        )

        assert result.seq is not None
        assert cache.wait_for_version(result.seq, timeout=1.0)
        assert not cache.matches("i3", COMEDY_AVAILABLE)
        assert before["i3"].available is True  # an old snapshot never changes under a reader
        assert cache.get("i1") == before["i1"]
        assert len(cache.snapshot) == 6


def test_readers_are_not_blocked_by_a_writer_holding_the_lock(store: FeatureStore) -> None:
    store.upsert_entities(items(6))
    cache = ItemAttributeCache(store, interval=0.05).start()
    holding, release = threading.Event(), threading.Event()
    done: list[int | None] = []

    def slow_writer() -> None:
        batch = validate_batch([EntityRecord("item", "i3", attributes={"available": False})])
        with write_transaction(store.engine) as conn:
            done.append(write_batch(conn, batch).seq)
            holding.set()
            release.wait(30)

    writer = threading.Thread(target=slow_writer)
    writer.start()
    try:
        assert holding.wait(10)
        # The write lock is held and the change is uncommitted: readers see the last snapshot,
        # and even a refresh (a database read) goes through without waiting for the writer.
        assert cache.matches("i3", COMEDY_AVAILABLE)
        assert cache.refresh() is False
        assert cache.matches("i3", COMEDY_AVAILABLE)
    finally:
        release.set()
        writer.join()
    try:
        assert done[0] is not None
        assert cache.wait_for_version(done[0], timeout=1.0)
        assert not cache.matches("i3", COMEDY_AVAILABLE)
    finally:
        cache.stop()


def test_a_failing_database_keeps_the_last_snapshot(store: FeatureStore) -> None:
    store.upsert_entities(items(4))
    cache = ItemAttributeCache(store, interval=0.05).start()
    try:
        with store.engine.begin() as conn:
            conn.execute(text("DROP TABLE item_features"))
            conn.execute(text("DROP TABLE items"))
        with pytest.raises(StoreError):
            cache.refresh()
        deadline = time.monotonic() + 10
        while cache.last_error is None and time.monotonic() < deadline:
            time.sleep(0.01)
        assert isinstance(cache.last_error, StoreError)  # the background thread kept going
        assert len(cache.snapshot) == 4
        assert cache.matches("i1", {"category": "drama"})
    finally:
        cache.stop()


def test_interval_must_be_positive(store: FeatureStore) -> None:
    with pytest.raises(ValueError, match="interval"):
        ItemAttributeCache(store, interval=0)


def test_layered_snapshots_equal_a_plain_merge_and_never_change() -> None:
    """The changed items' layer over the rest reads as one dict merged in order, folds
    into the rest once large, and an older snapshot keeps its values."""
    rng = random.Random(3)
    plain: dict[str, int] = {f"i{k}": k for k in range(5000)}
    snap = Layered({}, dict(plain))
    kept: list[tuple[Layered, dict[str, int]]] = []
    folds = 0
    for step in range(300):
        changed = {f"i{rng.randrange(7000)}": step for _ in range(rng.randrange(1, 40))}
        plain.update(changed)
        before = snap
        snap = snap.layered(changed)
        folds += not snap.top and bool(before.top)
        if step % 50 == 0:
            kept.append((snap, dict(plain)))
    assert dict(snap) == plain and len(snap) == len(plain)
    assert snap.get("missing") is None and "i4999" in snap
    assert folds >= 2 and len(snap.top) <= max(FOLD_MIN, len(snap.base) // 8)
    for old, expected in kept:
        assert dict(old) == expected and len(old) == len(expected)
