"""Re-ranking filters over item attributes.

A filter is a mapping, as it arrives in a recommendation request::

    {"category": "comedy",            # or a list: any of these categories
     "available": True,
     "tags": ["family", "new"],       # the item has all of these tags
     "tags_any": ["a", "b"],          # the item has at least one of these
     "created_after": "2024-01-01T00:00:00+00:00",   # datetime, ISO-8601 or epoch s
     "created_before": 1735689600}

Parse it once with :meth:`ItemFilter.parse`, then test many items with :meth:`matches`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from streamrec.errors import InvalidFilterError, InvalidInputError
from streamrec.store.records import ItemAttributes, to_utc

FILTER_KEYS = ("category", "available", "tags", "tags_any", "created_after", "created_before")


@dataclass(frozen=True, slots=True)
class ItemFilter:
    """A parsed filter; unset fields accept every item."""

    categories: frozenset[str] | None = None
    available: bool | None = None
    tags_all: frozenset[str] = frozenset()
    tags_any: frozenset[str] | None = None
    created_after: datetime | None = None
    created_before: datetime | None = None

    @classmethod
    def parse(cls, filters: Mapping[str, Any] | ItemFilter | None) -> ItemFilter:
        """An ItemFilter from a request's mapping, or :class:`InvalidFilterError`."""
        if filters is None:
            return cls()
        if isinstance(filters, ItemFilter):
            return filters
        if not isinstance(filters, Mapping):
            raise InvalidFilterError(f"filters must be a mapping, got {filters!r}")
        unknown = sorted(set(filters) - set(FILTER_KEYS))
        if unknown:
            raise InvalidFilterError(f"unknown filter {unknown}; known: {', '.join(FILTER_KEYS)}")
        available = filters.get("available")
        if available is not None and not isinstance(available, bool):
            raise InvalidFilterError(f"filter available must be true or false, got {available!r}")
        tags_any = filters.get("tags_any")
        return cls(
            categories=_strings("category", filters["category"]) if "category" in filters else None,
            available=available,
            tags_all=_strings("tags", filters.get("tags", ())),
            tags_any=None if tags_any is None else _strings("tags_any", tags_any),
            created_after=_time("created_after", filters.get("created_after")),
            created_before=_time("created_before", filters.get("created_before")),
        )

    def matches(self, attrs: ItemAttributes | None) -> bool:
        """Whether an item passes; an item unknown to the store passes only an empty filter."""
        if attrs is None:
            return self == _EMPTY
        if self.categories is not None and attrs.category not in self.categories:
            return False
        if self.available is not None and attrs.available != self.available:
            return False
        if self.tags_all and not self.tags_all <= attrs.tags:
            return False
        if self.tags_any is not None and not self.tags_any & attrs.tags:
            return False
        if self.created_after is not None and (
            attrs.created_at is None or attrs.created_at <= self.created_after
        ):
            return False
        return not (
            self.created_before is not None
            and (attrs.created_at is None or attrs.created_at >= self.created_before)
        )


_EMPTY = ItemFilter()


def _strings(key: str, value: object) -> frozenset[str]:
    values = [value] if isinstance(value, str) else value
    if not isinstance(values, list | tuple | set | frozenset) or not all(
        isinstance(v, str) for v in values
    ):
        raise InvalidFilterError(
            f"filter {key} must be a string or a list of strings, got {value!r}"
        )
    return frozenset(values)


def _time(key: str, value: object) -> datetime | None:
    if value is None:
        return None
    try:
        return to_utc(value)
    except InvalidInputError as exc:
        raise InvalidFilterError(f"filter {key}: {exc}") from None
