"""The filter language of recommendation requests (and of the store's attribute cache).

A filter is a JSON object, ``{attribute: condition, ...}``; an item passes when it meets
every condition.  Parse it once with :func:`parse_filters` (a bad filter raises
:class:`~streamrec.errors.InvalidFilterError` naming the attribute, the value and what
is allowed), then test many items cheaply with :meth:`Filter.matches`::

    flt = parse_filters({"category": ["films", "books"], "available": True,
                         "tags": {"all": ["family", "new"]}, "price": {"max": 20}})
    flt.matches({"category": "films", "available": True, "tags": ["family", "new"]})

Conditions.  A scalar ``x`` is short for ``{"eq": x}``, a list ``[a, b]`` for
``{"in": [a, b]}``; an object applies operators, all of which must hold:

============  =====================  ==========================  ====================
operator      scalar attribute       list attribute (``tags``)   attribute missing
============  =====================  ==========================  ====================
``x``, eq x   equals x               has x                       fails
ne x          differs from x         has not x                   passes
in [..]       is one of them         has at least one of them    fails
any [..]      (same as ``in``)       has at least one of them    fails
all [..]      equals every one       has all of them             fails
min n         is a number >= n       fails (not a number)        fails
max n         is a number <= n       fails (not a number)        fails
============  =====================  ==========================  ====================

``ne`` is exactly the negation of ``eq``.  An attribute whose value is ``null`` counts
as missing.  Equality is typed as in JSON: ``true`` is not ``1``, ``"1"`` is not ``1``
(``1`` and ``1.0`` are equal).  A list attribute is a JSON list (in Python a list,
tuple, set or frozenset); its elements are compared like scalars.  An attribute holding
anything else (an object) equals nothing and is no number.

Any attribute name may be filtered on.  The attributes the store keeps are typed, and
a filter on them must use values of that type: ``category`` (string), ``available``
(true/false), ``tags`` (list of strings: values are strings), ``created_at`` (epoch
seconds: values are numbers, e.g. ``{"created_at": {"min": 1717200000}}`` for items
created at or after that time).  ``min`` and ``max`` are inclusive.

Validation (all :class:`~streamrec.errors.InvalidFilterError`): the filter must be an
object with string keys; at most :data:`MAX_ATTRIBUTES` attributes and
:data:`MAX_VALUES` values in all; strings (names and values) at most
:data:`MAX_STRING` characters; values are strings, finite numbers or booleans (no
``null``, no nested objects or lists); an operator object has at least one known
operator; ``in``/``any``/``all`` and the list shorthand take a non-empty list;
``min``/``max`` take a finite number (a boolean is not a number) and ``min <= max``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from streamrec.errors import InvalidFilterError

__all__ = [
    "MAX_ATTRIBUTES",
    "MAX_STRING",
    "MAX_VALUES",
    "OPERATORS",
    "TYPED_ATTRIBUTES",
    "Clause",
    "Filter",
    "parse_filters",
]

#: At most this many attributes in one filter.
MAX_ATTRIBUTES: Final = 64
#: At most this many values in one filter (list elements count one each).
MAX_VALUES: Final = 1000
#: Longest attribute name or string value, in characters (the store's name length).
MAX_STRING: Final = 512
#: Operators of a condition given as an object, e.g. ``{"price": {"max": 20}}``.
OPERATORS: Final = ("eq", "ne", "in", "any", "all", "min", "max")
_LIST_OPS: Final = ("in", "any", "all")
_NUMBER_OPS: Final = ("min", "max")

#: The attributes the store keeps, and the type of the values a filter on them takes.
TYPED_ATTRIBUTES: Final[Mapping[str, str]] = {
    "category": "string",
    "available": "boolean",
    "tags": "string",
    "created_at": "number",
}

# A value reduced to a typed, hashable key: (0, bool), (1, number) or (2, str), so that
# equality is JSON's (True is not 1).  None for anything that equals nothing.
_Key = tuple[int, Any]
_MISSING: Final = object()


def _key(value: Any) -> _Key | None:
    if isinstance(value, bool):
        return (0, value)
    if isinstance(value, int):
        return (1, value)  # any size: never converted to float
    if isinstance(value, float):
        return (1, value) if math.isfinite(value) else None
    if isinstance(value, str):
        return (2, value)
    return None


def _is_list(value: Any) -> bool:
    return isinstance(value, list | tuple | set | frozenset)


@dataclass(frozen=True, slots=True)
class Clause:
    """One operator applied to one attribute (``{"tags": {"all": [...]}}`` -> one clause)."""

    attribute: str
    op: str
    #: eq/ne: one key; in/any/all: a frozenset of keys; min/max: a number.
    value: Any

    def test(self, have: Any) -> bool:
        """Whether an attribute value (``_MISSING`` when absent) meets this clause."""
        op = self.op
        if have is _MISSING or have is None:
            return op == "ne"
        if op == "eq" or op == "ne":
            if _is_list(have):
                found = any(_key(e) == self.value for e in have)
            else:
                found = _key(have) == self.value
            return found if op == "eq" else not found
        if op == "min" or op == "max":
            key = None if _is_list(have) else _key(have)
            if key is None or key[0] != 1:
                return False
            return key[1] >= self.value if op == "min" else key[1] <= self.value
        wanted: frozenset[_Key] = self.value
        if _is_list(have):
            keys = {_key(e) for e in have}
            return wanted <= keys if op == "all" else not wanted.isdisjoint(keys)
        key = _key(have)
        if op == "all":
            return wanted == {key}
        return key in wanted  # in, any


@dataclass(frozen=True, slots=True)
class Filter:
    """A parsed, validated filter; the empty filter passes every item."""

    clauses: tuple[Clause, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.clauses)

    def matches(self, attributes: Mapping[str, Any] | None) -> bool:
        """Whether an item with these attributes passes (None: an item with none)."""
        attrs: Mapping[str, Any] = attributes if attributes is not None else {}
        get = attrs.get
        return all(c.test(get(c.attribute, _MISSING)) for c in self.clauses)


def parse_filters(filters: Mapping[str, Any] | Filter | None) -> Filter:
    """A :class:`Filter` from a request's mapping, or :class:`InvalidFilterError`."""
    if filters is None:
        return Filter()
    if isinstance(filters, Filter):
        return filters
    if not isinstance(filters, Mapping):
        raise InvalidFilterError(
            f"filters must be an object {{attribute: condition}}, got {_show(filters)}"
        )
    if len(filters) > MAX_ATTRIBUTES:
        raise InvalidFilterError(
            f"filters name {len(filters)} attributes; at most {MAX_ATTRIBUTES} are allowed"
        )
    budget = _Budget()
    clauses: list[Clause] = []
    for name, condition in filters.items():
        _check_name(name)
        clauses.extend(_conditions(name, condition, budget))
    return Filter(tuple(clauses))


class _Budget:
    """Counts the values of one filter against :data:`MAX_VALUES`."""

    def __init__(self) -> None:
        self.used = 0

    def take(self, name: str, n: int) -> None:
        self.used += n
        if self.used > MAX_VALUES:
            raise InvalidFilterError(
                f"filter {name!r}: the filter holds more than {MAX_VALUES} values in all; "
                "split the request or narrow the lists"
            )


def _check_name(name: object) -> None:
    if not isinstance(name, str) or not name:
        raise InvalidFilterError(
            f"filter attribute names must be non-empty strings, got {_show(name)}"
        )
    if len(name) > MAX_STRING:
        raise InvalidFilterError(
            f"filter attribute name {_show(name)} has {len(name)} characters; "
            f"at most {MAX_STRING} are allowed"
        )


def _conditions(name: str, condition: object, budget: _Budget) -> list[Clause]:
    if isinstance(condition, Mapping):
        if not condition:
            raise InvalidFilterError(
                f"filter {name!r}: an empty object has no operator; use one of {OPERATORS}"
            )
        for op in condition:
            if op not in OPERATORS:
                raise InvalidFilterError(
                    f"filter {name!r}: unknown operator {_show(op)}; use one of {OPERATORS}"
                )
        clauses = [_clause(name, op, value, budget) for op, value in condition.items()]
        low, high = condition.get("min"), condition.get("max")
        if low is not None and high is not None and low > high:
            raise InvalidFilterError(f"filter {name!r}: min {low!r} > max {high!r} matches nothing")
        return clauses
    if _is_list(condition):
        return [_clause(name, "in", condition, budget, shorthand=True)]
    return [_clause(name, "eq", condition, budget, shorthand=True)]


def _clause(
    name: str, op: str, value: object, budget: _Budget, *, shorthand: bool = False
) -> Clause:
    typed = TYPED_ATTRIBUTES.get(name)
    shown = _show(value) if shorthand else f"{{{op!r}: {_show(value)}}}"
    if op in _NUMBER_OPS:
        if typed is not None and typed != "number":
            raise InvalidFilterError(
                f"filter {name!r}: {shown}: {name} holds {typed}s, min/max do not apply; "
                f"use eq, ne, in, any or all"
            )
        key = _key(value)
        if key is None or key[0] != 1:
            raise InvalidFilterError(
                f"filter {name!r}: {shown}: {op} needs a finite number (a boolean is not one)"
            )
        budget.take(name, 1)
        return Clause(name, op, key[1])
    if op in _LIST_OPS:
        if not _is_list(value):
            raise InvalidFilterError(
                f"filter {name!r}: {shown}: {op} needs a list of values, e.g. "
                f'{{"{op}": ["a", "b"]}}'
            )
        assert isinstance(value, list | tuple | set | frozenset)
        if not value:
            raise InvalidFilterError(
                f"filter {name!r}: {shown}: an empty list matches nothing; give at least one value"
            )
        budget.take(name, len(value))
        return Clause(name, op, frozenset(_scalar(name, v, shown, typed) for v in value))
    budget.take(name, 1)
    return Clause(name, op, _scalar(name, value, shown, typed))  # eq, ne


_KINDS: Final = {0: "boolean", 1: "number", 2: "string"}


def _scalar(name: str, value: object, shown: str, typed: str | None) -> _Key:
    if isinstance(value, str) and len(value) > MAX_STRING:
        raise InvalidFilterError(
            f"filter {name!r}: a value of {len(value)} characters; at most {MAX_STRING} are allowed"
        )
    key = _key(value)
    if key is None:
        what = "null" if value is None else type(value).__name__
        if isinstance(value, Mapping) or _is_list(value):
            what = "a nested object or list"
        raise InvalidFilterError(
            f"filter {name!r}: {shown}: {what} is not a filter value; values are strings, "
            "finite numbers or booleans"
        )
    if typed is not None and _KINDS[key[0]] != typed:
        raise InvalidFilterError(
            f"filter {name!r}: {shown}: {name} holds {typed}s, got the {_KINDS[key[0]]} "
            f"{_show(value)}"
        )
    return key


def _show(value: object, limit: int = 80) -> str:
    text = repr(value)
    return text if len(text) <= limit else f"{text[: limit - 3]}..."
