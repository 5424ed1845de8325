"""Record validation and the attribute view filters see: pure Python, no database."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from streamrec.errors import InvalidFilterError, InvalidRecordError
from streamrec.store import EntityRecord, ItemAttributes
from streamrec.store.records import parse_attributes, validate_batch
from streamrec.stream.filters import parse_filters


def test_attributes_are_normalised() -> None:
    plus2 = timezone(timedelta(hours=2))
    attrs = parse_attributes(
        {"tags": ["b", "a", "b"], "created_at": datetime(2024, 1, 1, 2, tzinfo=plus2)}
    )
    assert attrs == {"tags": ["a", "b"], "created_at": datetime(2024, 1, 1, tzinfo=UTC)}
    assert parse_attributes({"created_at": "2024-01-01T00:00:00"})["created_at"] == datetime(
        2024, 1, 1, tzinfo=UTC
    )
    assert parse_attributes({"created_at": 0})["created_at"] == datetime(1970, 1, 1, tzinfo=UTC)


def test_feature_names_without_weights_weigh_one() -> None:
    (clean,) = validate_batch([EntityRecord("item", "i", ["a", "b"])])
    assert clean.features == {"a": 1.0, "b": 1.0}
    (clean,) = validate_batch([EntityRecord("user", "u")])
    assert clean.features is None  # features left out: keep the stored ones


def test_the_error_names_the_record() -> None:
    with pytest.raises(InvalidRecordError) as info:
        validate_batch([EntityRecord("user", "ok"), EntityRecord("user", "u2", {"#id:x": 1.0})])
    assert (info.value.index, info.value.entity_id) == (1, "u2")
    assert "record #1 (id='u2')" in str(info.value)
    with pytest.raises(InvalidRecordError, match="expected an EntityRecord"):
        validate_batch([{"kind": "user", "id": "u"}])  # type: ignore[list-item]


ITEM = ItemAttributes(
    "i1", category="comedy", available=True, created_at=datetime(2024, 6, 1, tzinfo=UTC),
    tags=frozenset({"family", "new"}),
)  # fmt: skip
MAY_1 = datetime(2024, 5, 1, tzinfo=UTC).timestamp()


def test_the_view_has_the_keys_requests_see() -> None:
    assert ITEM.view() == {
        "category": "comedy",
        "available": True,
        "created_at": datetime(2024, 6, 1, tzinfo=UTC).timestamp(),
        "tags": ["family", "new"],
    }
    assert ItemAttributes("i2").view() == {"available": True, "tags": []}


@pytest.mark.parametrize(
    ("filters", "expected"),
    [
        ({}, True),
        ({"category": "comedy"}, True),
        ({"category": ["drama", "comedy"]}, True),
        ({"category": "drama"}, False),
        ({"available": False}, False),
        ({"tags": ["family"]}, True),
        ({"tags": "family"}, True),
        ({"tags": {"all": ["family", "old"]}}, False),
        ({"tags": {"any": ["old", "new"]}}, True),
        ({"tags": {"any": ["old"]}}, False),
        ({"created_at": {"min": MAY_1}}, True),
        ({"created_at": {"max": MAY_1}}, False),
        ({"colour": "red"}, False),  # an attribute the store does not keep: missing
    ],
)
def test_the_view_under_the_filter_language(filters: dict[str, object], expected: bool) -> None:
    assert parse_filters(filters).matches(ITEM.view()) is expected


@pytest.mark.parametrize(
    ("filters", "message"),
    [
        ({"available": "yes"}, "available holds booleans"),
        ({"category": 3}, "category holds strings"),
        ({"created_at": "tomorrow"}, "created_at holds numbers"),
        (["category"], "must be an object"),
    ],
)
def test_bad_filters_are_typed_errors(filters: object, message: str) -> None:
    with pytest.raises(InvalidFilterError, match=message):
        parse_filters(filters)  # type: ignore[arg-type]
