"""Where the trainer sends the features of onboarded entities: the :class:`EntitySink` seam.

The SQL store implements it (:class:`streamrec.store.adapters.StoreEntitySink`); the
defaults here drop everything or keep it in memory (library use, tests).
"""

from __future__ import annotations

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
