"""Shared builders of the store suite: a planted onboarding log and a full-state dump."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from streamrec.store import EntityRecord, FeatureStore
from streamrec.store.schema import (
    COUNTERS,
    FEATURE_DEFINITIONS,
    ITEM_FEATURES,
    ITEMS,
    USER_FEATURES,
    USERS,
)

CATEGORIES = ("comedy", "drama", "horror")


def users(n: int, start: int = 0, variant: int = 0) -> list[EntityRecord]:
    """Users with 4 features each; ``variant`` changes the weights."""
    return [
        EntityRecord(
            "user",
            f"u{i}",
            {
                f"age={20 + i % 5}": 1.0,
                f"country={i % 7}": 1.0,
                f"device={i % 3}": 0.5 + variant,
                f"plan={i % 2}": 1.0,
            },
        )
        for i in range(start, start + n)
    ]


def items(n: int, start: int = 0, variant: int = 0) -> list[EntityRecord]:
    """Items with 5 features and all four attributes."""
    return [
        EntityRecord(
            "item",
            f"i{i}",
            [
                f"genre={i % 11}",
                f"year={1990 + i % 30}",
                f"studio={i % 13}",
                f"lang={i % 4}",
                f"v={variant}",
            ],
            {
                "category": CATEGORIES[i % 3],
                "available": i % 10 != 0,
                "created_at": 1_700_000_000 + i,
                "tags": [f"t{i % 4}", "all"],
            },
        )
        for i in range(start, start + n)
    ]


def dump(store: FeatureStore) -> dict[str, Any]:
    """Every row of every table (bar checkpoints), sorted, as plain tuples."""
    out: dict[str, Any] = {}
    with store.engine.connect() as conn:
        for table in (USERS, ITEMS, FEATURE_DEFINITIONS, USER_FEATURES, ITEM_FEATURES, COUNTERS):
            rows = conn.execute(select(table)).all()
            out[table.name] = sorted((tuple(r) for r in rows), key=repr)
    return out


def write_overlapping(url: str, start: int, n: int, batch: int, reverse: bool) -> None:
    """Process target: open the store (migrating if needed) and write a range in batches."""
    records = users(n, start) + items(n, start)
    if reverse:
        records.reverse()
    with FeatureStore.open(url) as store:
        for lo in range(0, len(records), batch):
            store.upsert_entities(records[lo : lo + batch])
