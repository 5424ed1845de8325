"""The one filter language: every operator on scalar, list and missing attributes, and
every validation error, with the expected answer written out per case."""

from __future__ import annotations

from typing import Any

import pytest

from streamrec.errors import InvalidFilterError, InvalidInputError
from streamrec.stream.filters import MAX_ATTRIBUTES, MAX_STRING, MAX_VALUES, parse_filters

#: One item: scalar attributes of each JSON type, a list attribute, and odd values.
ITEM: dict[str, Any] = {
    "category": "films",
    "label": "12",
    "available": True,
    "price": 12,
    "rating": 4.5,
    "tags": ["family", "new"],
    "created_at": 1_717_200_000.0,
    "nothing": None,  # null counts as missing
    "blob": {"a": 1},  # an object equals nothing and is no number
    "mixed": ["x", 3, True],
}

CASES: list[tuple[dict[str, Any], bool]] = [
    ({}, True),
    # -- scalar shorthand: equality on scalars, "has x" on lists, fails on missing
    ({"category": "films"}, True),
    ({"category": "books"}, False),
    ({"available": True}, True),
    ({"available": False}, False),
    ({"price": 12}, True),
    ({"price": 12.0}, True),  # 12 == 12.0
    ({"price": 13}, False),
    ({"tags": "family"}, True),
    ({"tags": "old"}, False),
    ({"colour": "red"}, False),
    ({"nothing": "x"}, False),
    ({"blob": "x"}, False),
    # JSON equality is typed: true is not 1, "12" is not 12
    ({"mixed": 1}, False),
    ({"mixed": True}, True),
    ({"mixed": 3}, True),
    ({"mixed": "3"}, False),
    ({"price": "12"}, False),
    ({"flag": True}, False),
    # -- list shorthand: "any of"
    ({"category": ["books", "films"]}, True),
    ({"category": ["books", "music"]}, False),
    ({"tags": ["family"]}, True),
    ({"tags": ["old", "new"]}, True),
    ({"tags": ["old", "older"]}, False),
    ({"colour": ["red", "blue"]}, False),
    # -- eq / ne (ne is exactly not eq; on a list: has / has not)
    ({"category": {"eq": "films"}}, True),
    ({"category": {"eq": "books"}}, False),
    ({"category": {"ne": "books"}}, True),
    ({"category": {"ne": "films"}}, False),
    ({"tags": {"eq": "new"}}, True),
    ({"tags": {"eq": "old"}}, False),
    ({"tags": {"ne": "old"}}, True),
    ({"tags": {"ne": "new"}}, False),
    ({"colour": {"eq": "red"}}, False),
    ({"colour": {"ne": "red"}}, True),
    ({"nothing": {"ne": "x"}}, True),
    ({"blob": {"ne": "x"}}, True),
    ({"available": {"ne": False}}, True),
    # -- in / any: one of them; on a list, at least one shared
    ({"category": {"in": ["films", "music"]}}, True),
    ({"category": {"in": ["music"]}}, False),
    ({"category": {"any": ["films"]}}, True),
    ({"tags": {"in": ["x", "new"]}}, True),
    ({"tags": {"any": ["x", "new"]}}, True),
    ({"tags": {"any": ["x", "y"]}}, False),
    ({"colour": {"in": ["red"]}}, False),
    ({"colour": {"any": ["red"]}}, False),
    # -- all: a list has every one; a scalar equals every one
    ({"tags": {"all": ["family", "new"]}}, True),
    ({"tags": {"all": ["new"]}}, True),
    ({"tags": {"all": ["family", "x"]}}, False),
    ({"category": {"all": ["films"]}}, True),
    ({"category": {"all": ["films", "films"]}}, True),
    ({"category": {"all": ["films", "books"]}}, False),
    ({"colour": {"all": ["red"]}}, False),
    # -- min / max: inclusive, numbers only
    ({"price": {"min": 12}}, True),
    ({"price": {"min": 12.5}}, False),
    ({"price": {"max": 12}}, True),
    ({"price": {"max": 11.9}}, False),
    ({"price": {"min": 10, "max": 20}}, True),
    ({"rating": {"min": 4, "max": 5}}, True),
    ({"created_at": {"min": 1_717_200_000}}, True),
    ({"created_at": {"min": 1_717_200_001}}, False),
    ({"created_at": {"max": 1_717_199_999}}, False),
    ({"label": {"min": 0}}, False),  # a string is not a number
    ({"label": {"max": 100}}, False),
    ({"tags": {"all": ["new"]}, "mixed": {"min": 0}}, False),  # a list is not a number
    ({"colour": {"min": 0}}, False),
    ({"colour": {"max": 0}}, False),
    ({"blob": {"min": 0}}, False),
    ({"price": {"min": 10**400}}, False),  # an int too big for a float
    # -- several operators / attributes: all must hold
    ({"price": {"min": 10, "ne": 12}}, False),
    ({"category": "films", "tags": "new", "available": True}, True),
    ({"category": "films", "tags": "old"}, False),
]


@pytest.mark.parametrize(("filters", "expected"), CASES, ids=[repr(f) for f, _ in CASES])
def test_operator_table(filters: dict[str, Any], expected: bool) -> None:
    assert parse_filters(filters).matches(ITEM) is expected


def test_the_tags_bug_list_attributes_match() -> None:
    item = {"tags": ["family", "new"]}
    assert parse_filters({"tags": "family"}).matches(item)
    assert parse_filters({"tags": ["family"]}).matches(item)
    assert parse_filters({"tags": {"all": ["family", "new"]}}).matches(item)
    assert parse_filters({"tags": {"any": ["x", "new"]}}).matches(item)
    assert not parse_filters({"tags": {"all": ["family", "x"]}}).matches(item)
    # a tuple or a set is a list attribute too (the store's frozenset of tags, say)
    assert parse_filters({"tags": {"all": ["family", "new"]}}).matches({"tags": ("new", "family")})
    assert parse_filters({"tags": "new"}).matches({"tags": frozenset({"new"})})


def test_an_item_without_attributes_passes_only_ne() -> None:
    assert parse_filters({}).matches(None)
    assert parse_filters({"category": {"ne": "films"}}).matches(None)
    assert not parse_filters({"category": "films"}).matches(None)
    assert not parse_filters({"category": {"ne": "films"}, "available": True}).matches({})


def test_parsing_is_idempotent_and_empty_is_falsy() -> None:
    flt = parse_filters({"tags": "new"})
    assert parse_filters(flt) is flt
    assert not parse_filters(None) and not parse_filters({}) and flt
    assert parse_filters({"p": {"min": 1, "max": 2}}).clauses[0].op == "min"


BAD: list[tuple[object, str]] = [
    (["category"], "must be an object"),
    ("available", "must be an object"),
    ({1: "x"}, "names must be non-empty strings, got 1"),
    ({"": "x"}, "names must be non-empty strings"),
    ({"a" * (MAX_STRING + 1): 1}, f"at most {MAX_STRING}"),
    ({f"a{i}": 1 for i in range(MAX_ATTRIBUTES + 1)}, f"at most {MAX_ATTRIBUTES} are allowed"),
    ({"x": list(range(MAX_VALUES + 1))}, f"more than {MAX_VALUES} values"),
    ({"x": list(range(600)), "y": {"in": list(range(401))}}, f"more than {MAX_VALUES} values"),
    ({"x": "v" * (MAX_STRING + 1)}, f"a value of {MAX_STRING + 1} characters"),
    ({"x": ["ok", "v" * (MAX_STRING + 1)]}, "characters"),
    ({"price": {"below": 3}}, "unknown operator 'below'"),
    ({"price": {}}, "empty object has no operator"),
    ({"available": {"in": 1}}, r"'available': \{'in': 1\}: in needs a list of values"),
    ({"tags": {"all": "family"}}, "all needs a list of values"),
    ({"tags": {"any": {"a": 1}}}, "any needs a list of values"),
    ({"tags": []}, "empty list matches nothing"),
    ({"tags": {"all": []}}, "empty list matches nothing"),
    ({"price": {"min": "3"}}, "min needs a finite number"),
    ({"price": {"max": True}}, "max needs a finite number"),
    ({"price": {"min": float("nan")}}, "min needs a finite number"),
    ({"price": {"max": float("inf")}}, "max needs a finite number"),
    ({"price": {"min": 5, "max": 3}}, "min 5 > max 3 matches nothing"),
    ({"x": {"eq": {"a": 1}}}, "nested object or list is not a filter value"),
    ({"x": {"ne": [1]}}, "nested object or list is not a filter value"),
    ({"x": [[1]]}, "nested object or list is not a filter value"),
    ({"x": None}, "null is not a filter value"),
    ({"x": {"in": [None]}}, "null is not a filter value"),
    ({"x": float("nan")}, "float is not a filter value"),
    # the store's attributes are typed
    ({"available": "yes"}, "available holds booleans, got the string 'yes'"),
    ({"available": 1}, "available holds booleans, got the number 1"),
    ({"category": 3}, "category holds strings, got the number 3"),
    ({"category": ["films", 3]}, "category holds strings"),
    ({"tags": {"all": ["a", True]}}, "tags holds strings"),
    ({"created_at": "2024-01-01"}, "created_at holds numbers"),
    ({"created_at": {"min": "2024-01-01"}}, "min needs a finite number"),
    ({"tags": {"min": 3}}, "tags holds strings, min/max do not apply"),
    ({"available": {"max": 1}}, "available holds booleans, min/max do not apply"),
]


@pytest.mark.parametrize(("filters", "message"), BAD, ids=[m for _, m in BAD])
def test_bad_filters_are_typed_errors(filters: object, message: str) -> None:
    with pytest.raises(InvalidFilterError, match=message) as info:
        parse_filters(filters)  # type: ignore[arg-type]
    assert isinstance(info.value, InvalidInputError)  # answered as a bad request
    assert len(str(info.value)) < 400  # an over-long value is cut short in the message


def test_limits_are_inclusive() -> None:
    parse_filters({f"a{i}": 1 for i in range(MAX_ATTRIBUTES)})
    parse_filters({"x": list(range(MAX_VALUES))})
    parse_filters({"a" * MAX_STRING: "v" * MAX_STRING})


def test_matching_never_raises_on_odd_attribute_values() -> None:
    odd: list[Any] = [None, {"a": 1}, [{"a": 1}], [[1]], float("nan"), object(), b"x", 10**400]
    filters = [
        {"x": "a"}, {"x": {"ne": 1}}, {"x": {"in": [1, "a"]}}, {"x": {"all": [1]}},
        {"x": {"any": [True]}}, {"x": {"min": 0}}, {"x": {"max": 0}},
    ]  # fmt: skip
    got = {
        (repr(f), i): parse_filters(f).matches({"x": v}) for f in filters for i, v in enumerate(odd)
    }
    # only ne passes, and 10**400 (a number) passes min 0
    assert {k for k, v in got.items() if v} == {
        *((repr({"x": {"ne": 1}}), i) for i in range(len(odd))),
        (repr({"x": {"min": 0}}), len(odd) - 1),
    }


def test_the_request_filters_of_before_keep_their_answers() -> None:
    item = {"category": "books", "available": True, "price": 12}
    assert parse_filters({"category": "books"}).matches(item)
    assert not parse_filters({"category": "music"}).matches(item)
    assert parse_filters({"category": ["music", "books"], "available": True}).matches(item)
    assert parse_filters({"price": {"min": 10, "max": 20}}).matches(item)
    assert not parse_filters({"price": {"max": 10}}).matches(item)
    assert not parse_filters({"category": "books"}).matches({})  # missing attribute fails
    assert parse_filters({"category": {"ne": "books"}}).matches({})
    with pytest.raises(InvalidInputError, match="unknown operator"):
        parse_filters({"price": {"below": 3}})
