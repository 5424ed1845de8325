"""Validation of ids, feature names and feature weights at the model's edge."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping

from streamrec.errors import InvalidFeatureError, InvalidIdError

#: Identity features are named ``#id:<entity id>``; user feature names may not start with '#'.
IDENTITY_PREFIX = "#id:"
MAX_ID_LENGTH = 512

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
    return value


def parse_features(kind: str, features: FeatureInput) -> dict[str, float]:
    """Features as ``{name: weight}`` from a mapping or from names (weight 1 each).

    Names look like ``genre=comedy``; repeated names add up their weights.
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
        if name.startswith("#"):
            raise InvalidFeatureError(
                f"{kind} feature {name!r}: names starting with '#' are reserved for identities"
            )
        if isinstance(weight, bool) or not isinstance(weight, int | float):
            raise InvalidFeatureError(f"{kind} feature {name!r} has non-numeric weight {weight!r}")
        if not math.isfinite(weight):
            raise InvalidFeatureError(f"{kind} feature {name!r} has non-finite weight {weight!r}")
        out[name] = out.get(name, 0.0) + float(weight)
    return out
