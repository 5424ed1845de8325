"""Seams to the feature store: where onboarding features go, where item attributes come from.

The SQL store (``streamrec.store``) plugs in here; the defaults keep everything in memory.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import Any, Protocol, runtime_checkable

FeatureValue = Sequence[str] | Mapping[str, float] | None
#: An upsert the sink could not store: the ``source`` given with it, and the reason.
SinkRejection = tuple[Any, str]


@runtime_checkable
class EntitySink(Protocol):
    """Receives the features (and item attributes) of onboarded and updated entities.

    The trainer calls ``upsert_*`` per entity message (``source`` is an opaque reference
    to that message, handed back if the upsert is rejected) and :meth:`flush` once per
    processed batch.
    """

    def upsert_user(
        self, user_id: str, features: FeatureValue, ts: float, *, source: Any = None
    ) -> None: ...

    def upsert_item(
        self,
        item_id: str,
        features: FeatureValue,
        attributes: Mapping[str, Any],
        ts: float,
        *,
        source: Any = None,
    ) -> None: ...

    def flush(self, wait: float = 0.0) -> list[SinkRejection]:
        """End of a batch: write what was buffered (possibly in the background).

        Waits up to ``wait`` seconds for every write to finish; returns the upserts
        rejected since the previous call.
        """
        ...

    def pending(self) -> int:
        """Upserts handed over but not written yet (0 once everything is durable)."""
        ...


class NullEntitySink:
    """Drops everything (the default: the model itself keeps the features)."""

    def upsert_user(
        self, user_id: str, features: FeatureValue, ts: float, *, source: Any = None
    ) -> None:
        return None

    def upsert_item(
        self,
        item_id: str,
        features: FeatureValue,
        attributes: Mapping[str, Any],
        ts: float,
        *,
        source: Any = None,
    ) -> None:
        return None

    def flush(self, wait: float = 0.0) -> list[SinkRejection]:
        return []

    def pending(self) -> int:
        return 0


class MemoryEntitySink(NullEntitySink):
    """Keeps the last features per entity (tests, inspection)."""

    def __init__(self) -> None:
        self.users: dict[str, FeatureValue] = {}
        self.items: dict[str, tuple[FeatureValue, dict[str, Any]]] = {}

    def upsert_user(
        self, user_id: str, features: FeatureValue, ts: float, *, source: Any = None
    ) -> None:
        if features is not None or user_id not in self.users:
            self.users[user_id] = features

    def upsert_item(
        self,
        item_id: str,
        features: FeatureValue,
        attributes: Mapping[str, Any],
        ts: float,
        *,
        source: Any = None,
    ) -> None:
        old_f, old_a = self.items.get(item_id, (None, {}))
        self.items[item_id] = (features if features is not None else old_f, {**old_a, **attributes})


@runtime_checkable
class ItemAttributes(Protocol):
    """Item attributes for request filters, and creation times for the freshness boost."""

    def update(self, item_id: str, attributes: Mapping[str, Any], created: float) -> None: ...

    def get(self, item_id: str) -> Mapping[str, Any]: ...

    def created(self, item_id: str) -> float | None: ...


@runtime_checkable
class CheckpointedAttributes(Protocol):
    """Attributes that travel in checkpoints (those no other source can give back)."""

    def to_dict(self) -> dict[str, Any]: ...

    def load_dict(self, values: Mapping[str, Any]) -> None: ...


class MemoryItemAttributes:
    """Attributes merged from new-item / item-update events (and from deltas in replicas)."""

    def __init__(self) -> None:
        self._attrs: dict[str, dict[str, Any]] = {}
        self._created: dict[str, float] = {}

    def update(self, item_id: str, attributes: Mapping[str, Any], created: float) -> None:
        self._attrs.setdefault(item_id, {}).update(attributes)
        self._created.setdefault(item_id, created or time.time())

    def get(self, item_id: str) -> Mapping[str, Any]:
        return self._attrs.get(item_id, {})

    def created(self, item_id: str) -> float | None:
        return self._created.get(item_id)

    def to_dict(self) -> dict[str, Any]:
        return {
            i: {"attributes": a, "created": self._created.get(i, 0.0)}
            for i, a in self._attrs.items()
        }

    def load_dict(self, values: Mapping[str, Any]) -> None:
        for item, meta in values.items():
            self.update(item, meta.get("attributes", {}), float(meta.get("created", 0.0)))
