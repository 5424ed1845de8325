"""The SQL feature store: the only part of streamrec that speaks SQL.

Users, items, their features (``name -> weight``), the item attributes used by
re-ranking filters, and the registry of model checkpoints, in SQLite (default) or
PostgreSQL, through SQLAlchemy 2 with alembic migrations shipped in this package.

Interface (everything else here is private)::

    store = FeatureStore.open(url, upgrade=True)     # url: Settings.load().db_url

    # trainer: onboarding events, one transaction per batch, idempotent
    store.upsert_entities([EntityRecord("user", "u1", {"age=30": 1.0}),
                           EntityRecord("item", "i9", ["genre=comedy"],
                                        {"category": "comedy", "available": True,
                                         "created_at": "2024-05-01T12:00:00+00:00",
                                         "tags": ["family"]})])  -> WriteResult
    store.iter_entity_features("user")  -> Iterator[(id, {name: weight})]  # after a restart
    store.register_checkpoint(path, offsets, metrics) -> CheckpointInfo
    store.latest_checkpoint() / store.list_checkpoints()

    # recommender: filters over a snapshot refreshed in the background
    with ItemAttributeCache(store, interval=0.2) as cache:
        cache.matches("i9", {"category": "comedy", "available": True, "tags": "family"})
        cache.filter(candidate_ids, filters)   # parse filters once for many items

Filters are the request filter language, :mod:`streamrec.stream.filters`.

A bad record rejects its whole batch with :class:`~streamrec.errors.InvalidRecordError`;
database failures raise :class:`~streamrec.errors.StoreError`.
"""

from streamrec.store.cache import ItemAttributeCache
from streamrec.store.feature_store import FeatureStore
from streamrec.store.records import (
    CheckpointInfo,
    EntityRecord,
    ItemAttributes,
    WriteResult,
)

__all__ = [
    "CheckpointInfo",
    "EntityRecord",
    "FeatureStore",
    "ItemAttributeCache",
    "ItemAttributes",
    "WriteResult",
]
