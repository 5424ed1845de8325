"""Where the trainer sends the features of onboarded entities: the :class:`EntitySink` seam.

The SQL store implements it (:class:`streamrec.store.adapters.StoreEntitySink`); the
defaults here drop everything or keep it in memory (library use, tests).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, runtime_checkable

FeatureValue = Sequence[str] | Mapping[str, float] | None
#: An upsert the sink could not store: the ``source`` given with it, and the reason.
SinkRejection = tuple[Any, str]


@dataclass(frozen=True, slots=True)
class EntityUpsert:
    """An onboarded or re-featured user or item, as the trainer applied it.

    ``features`` None keeps the entity's stored features (a bare onboarding by an
    interaction); ``attributes`` are an item's, merged into the stored ones.
    """

    kind: Literal["user", "item"]
    id: str
    features: FeatureValue = None
    attributes: Mapping[str, Any] = field(default_factory=dict)
    ts: float = 0.0


@runtime_checkable
class EntitySink(Protocol):
    """Receives the features (and item attributes) of onboarded and updated entities.

    The trainer calls :meth:`upsert` per entity (``source`` is the record behind it,
    handed back if the upsert is rejected, None for an implicit onboarding) and
    :meth:`flush` once per processed batch.
    """

    def upsert(self, entity: EntityUpsert, source: Any = None) -> None: ...

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

    def upsert(self, entity: EntityUpsert, source: Any = None) -> None:
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

    def upsert(self, entity: EntityUpsert, source: Any = None) -> None:
        if entity.kind == "user":
            if entity.features is not None or entity.id not in self.users:
                self.users[entity.id] = entity.features
            return
        old_f, old_a = self.items.get(entity.id, (None, {}))
        features = entity.features if entity.features is not None else old_f
        self.items[entity.id] = (features, {**old_a, **entity.attributes})
