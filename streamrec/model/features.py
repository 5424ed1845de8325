"""Validation of ids, feature names and feature weights at the model's edge."""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping

from streamrec.errors import InvalidFeatureError, InvalidIdError
from streamrec.model.config import MAX_FEATURE_WEIGHT, MAX_FEATURES, MAX_ID_LENGTH, MAX_NAME_LENGTH

#: Identity features are named ``#id:<entity id>``; user feature names may not start with '#'.
IDENTITY_PREFIX = "#id:"
#: Control characters (C0, DEL, C1) and lone surrogates: no id or name may hold one (a NUL
#: breaks PostgreSQL text, a surrogate any UTF-8 encoder).
_FORBIDDEN = re.compile("[\x00-\x1f\x7f-\x9f\ud800-\udfff]")


def forbidden_character(value: str) -> str | None:
    """The first control character or lone surrogate of ``value`` (repr), or None."""
    found = _FORBIDDEN.search(value)
    return None if found is None else repr(found.group())


FeatureInput = Mapping[str, float] | Iterable[str] | None


def check_id(kind: str, value: object) -> str:
    """``value`` as a valid entity id, or :class:`InvalidIdError` saying why not."""
    if not isinstance(value, str):
        raise InvalidIdError(f"{kind} id must be a string, got {type(value).__name__} {value!r}")
    if not value or value.isspace():
        raise InvalidIdError(f"{kind} id must be a non-empty string, got {value!r}")
    if len(value) > MAX_ID_LENGTH:
        raise InvalidIdError(
            f"{kind} id is {len(value)} characters long; the limit is {MAX_ID_LENGTH}"
        )
    bad = forbidden_character(value)
    if bad is not None:
        raise InvalidIdError(f"{kind} id {value[:80]!r} holds the control character {bad}")
    return value


def parse_features(kind: str, features: FeatureInput) -> dict[str, float]:
    """Features as ``{name: weight}`` from a mapping or from names (weight 1 each).

    Names look like ``genre=comedy``; repeated names add up their weights.  Bounds:
    :data:`MAX_FEATURES` names, :data:`MAX_NAME_LENGTH` characters each (no control
    character), weights finite and at most :data:`MAX_FEATURE_WEIGHT` in absolute value.
    """
    if features is None:
        return {}
    if isinstance(features, str):
        raise InvalidFeatureError(
            f"{kind} features must be a list of names or a name->weight mapping, "
            f"not the single string {features!r}"
        )
    pairs: Iterable[tuple[object, object]]
    if isinstance(features, Mapping):
        pairs = features.items()
    else:
        pairs = ((name, 1.0) for name in features)
    out: dict[str, float] = {}
    for name, weight in pairs:
        if not isinstance(name, str) or not name.strip():
            raise InvalidFeatureError(
                f"{kind} feature name must be a non-empty string, got {name!r}"
            )
        if len(name) > MAX_NAME_LENGTH:
            raise InvalidFeatureError(
                f"{kind} feature name of {len(name)} characters; the limit is {MAX_NAME_LENGTH}"
            )
        bad = forbidden_character(name)
        if bad is not None:
            raise InvalidFeatureError(
                f"{kind} feature {name[:80]!r} holds the control character {bad}"
            )
        if name.startswith("#"):
            raise InvalidFeatureError(
                f"{kind} feature {name!r}: names starting with '#' are reserved for identities"
            )
        if isinstance(weight, bool) or not isinstance(weight, int | float):
            raise InvalidFeatureError(f"{kind} feature {name!r} has non-numeric weight {weight!r}")
        if not math.isfinite(weight):
            raise InvalidFeatureError(f"{kind} feature {name!r} has non-finite weight {weight!r}")
        total = out.get(name, 0.0) + float(weight)
        if abs(total) > MAX_FEATURE_WEIGHT:
            raise InvalidFeatureError(
                f"{kind} feature {name!r} has weight {total!r}; the limit is "
                f"{MAX_FEATURE_WEIGHT:g} in absolute value"
            )
        out[name] = total
        if len(out) > MAX_FEATURES:
            raise InvalidFeatureError(f"{kind} has more than {MAX_FEATURES} features")
    return out
