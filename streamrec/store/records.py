"""What the store reads and writes: entity records in, item attributes and checkpoints out.

:func:`validate_batch` checks a whole batch before any SQL runs and names the first bad
record (its index and id), so a rejected batch writes nothing.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

from streamrec.errors import InvalidInputError, InvalidRecordError
from streamrec.model.features import check_id, parse_features
from streamrec.store.schema import NAME_LENGTH

EntityKind = Literal["user", "item"]
KINDS: tuple[EntityKind, ...] = ("user", "item")
#: Item attributes a record may set; anything else rejects the batch.
ATTRIBUTES = ("category", "available", "created_at", "tags")


@dataclass(frozen=True, slots=True)
class EntityRecord:
    """One onboarding event for the store: a user or an item, its features and attributes.

    ``features`` is the entity's whole feature set (``{name: weight}`` or names with
    weight 1) and replaces the stored one; ``None`` keeps the stored features.
    ``attributes`` (items only) sets the given keys of ``category`` (str or None),
    ``available`` (bool), ``created_at`` (datetime, ISO-8601 string or epoch seconds)
    and ``tags`` (list of strings); keys left out keep their stored value.
    """

    kind: str
    id: str
    features: Mapping[str, float] | Iterable[str] | None = None
    attributes: Mapping[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class ItemAttributes:
    """The filterable attributes of one item, as the store holds them."""

    item_id: str
    category: str | None = None
    available: bool = True
    created_at: datetime | None = None
    tags: frozenset[str] = field(default_factory=frozenset)

    def view(self) -> dict[str, Any]:
        """The attributes as request filters see them (:mod:`streamrec.stream.filters`).

        ``available``, ``tags`` (a sorted list), and ``category`` and ``created_at``
        (epoch seconds) when set; an unset one is left out, i.e. missing.
        """
        out: dict[str, Any] = {"available": self.available, "tags": sorted(self.tags)}
        if self.category is not None:
            out["category"] = self.category
        if self.created_at is not None:
            out["created_at"] = self.created_at.timestamp()
        return out


@dataclass(frozen=True, slots=True)
class CheckpointInfo:
    """One registered model checkpoint."""

    version: int
    path: str
    created_at: datetime
    offsets: dict[str, Any]
    metrics: dict[str, Any]


@dataclass(frozen=True, slots=True)
class CleanRecord:
    """A validated record: features parsed, attributes typed (only the keys given)."""

    kind: EntityKind
    id: str
    features: dict[str, float] | None
    attributes: dict[str, Any]


@dataclass(frozen=True, slots=True)
class WriteResult:
    """What one batch did: how many entities it inserted, changed, or left as they were."""

    inserted: int = 0
    updated: int = 0
    unchanged: int = 0
    #: Change sequence stamped on the rows written, or None if nothing changed.
    seq: int | None = None

    @property
    def written(self) -> int:
        return self.inserted + self.updated


def validate_batch(records: Sequence[EntityRecord]) -> list[CleanRecord]:
    """Validated records, the last one winning when a batch repeats an entity."""
    latest: dict[tuple[str, str], CleanRecord] = {}
    for index, record in enumerate(records):
        try:
            clean = _validate(record)
        except InvalidInputError as exc:
            rid = getattr(record, "id", None)
            raise InvalidRecordError(
                f"batch rejected, nothing written: record #{index} (id={rid!r}): {exc}",
                index=index,
                entity_id=rid,
            ) from exc
        key = (clean.kind, clean.id)
        merged = _merge(latest.pop(key, None), clean)  # popped: keep the last one's place
        latest[key] = merged
    return list(latest.values())


def _merge(previous: CleanRecord | None, clean: CleanRecord) -> CleanRecord:
    if previous is None:
        return clean
    features = clean.features if clean.features is not None else previous.features
    return CleanRecord(clean.kind, clean.id, features, {**previous.attributes, **clean.attributes})


def _validate(record: object) -> CleanRecord:
    if not isinstance(record, EntityRecord):
        raise InvalidInputError(f"expected an EntityRecord, got {type(record).__name__}")
    kind = record.kind
    if kind not in KINDS:
        raise InvalidInputError(f"unknown entity kind {kind!r}; expected 'user' or 'item'")
    entity_id = check_id(kind, record.id)
    features = None if record.features is None else parse_features(kind, record.features)
    for name in features or ():
        if len(name) > NAME_LENGTH:
            raise InvalidInputError(
                f"{kind} feature name of {len(name)} characters; the limit is {NAME_LENGTH}"
            )
    attributes: dict[str, Any] = {}
    if record.attributes:
        if kind != "item":
            raise InvalidInputError(
                f"only items have attributes, got {sorted(record.attributes)} for a {kind}"
            )
        attributes = parse_attributes(record.attributes)
    return CleanRecord(kind, entity_id, features, attributes)


def parse_attributes(raw: Mapping[str, Any]) -> dict[str, Any]:
    """Typed item attributes (only the keys given), or :class:`InvalidInputError`."""
    out: dict[str, Any] = {}
    for key, value in raw.items():
        if key == "category":
            if value is not None and (
                not isinstance(value, str) or not value.strip() or len(value) > NAME_LENGTH
            ):
                raise InvalidInputError(
                    f"attribute category must be a non-empty string or None, got {value!r}"
                )
            out[key] = value
        elif key == "available":
            if not isinstance(value, bool):
                raise InvalidInputError(f"attribute available must be true or false, got {value!r}")
            out[key] = value
        elif key == "created_at":
            out[key] = None if value is None else to_utc(value)
        elif key == "tags":
            out[key] = parse_tags(value)
        else:
            raise InvalidInputError(
                f"unknown item attribute {key!r}; known: {', '.join(ATTRIBUTES)}"
            )
    return out


def parse_tags(value: object) -> list[str]:
    if isinstance(value, str) or not isinstance(value, Iterable):
        raise InvalidInputError(f"attribute tags must be a list of strings, got {value!r}")
    tags = list(value)
    for tag in tags:
        if not isinstance(tag, str) or not tag.strip():
            raise InvalidInputError(f"attribute tags: {tag!r} is not a non-empty string")
    return sorted(set(tags))


def to_utc(value: object) -> datetime:
    """A timezone-aware UTC datetime from a datetime, ISO-8601 string or epoch seconds."""
    if isinstance(value, datetime):
        dt = value
    elif isinstance(value, str):
        try:
            dt = datetime.fromisoformat(value)
        except ValueError:
            raise InvalidInputError(f"time {value!r} is not ISO-8601") from None
    elif isinstance(value, int | float) and not isinstance(value, bool):
        if not math.isfinite(value):
            raise InvalidInputError(f"time {value!r} is not a finite number of epoch seconds")
        try:
            dt = datetime.fromtimestamp(value, UTC)
        except (OverflowError, OSError, ValueError):
            raise InvalidInputError(f"time {value!r} epoch seconds is out of range") from None
    else:
        raise InvalidInputError(
            f"time must be a datetime, ISO-8601 string or epoch seconds, got {value!r}"
        )
    # Naive datetimes are taken as UTC (SQLite hands them back naive).
    return dt.replace(tzinfo=UTC) if dt.tzinfo is None else dt.astimezone(UTC)
