"""Edge limits of consumed messages: sizes, ids, features, weights and attributes.

The schemas (:mod:`streamrec.stream.schemas`) check types and the hard bounds every
worker shares; :class:`InputLimits` adds the configured ones (``Settings.max_*``).  A
message that breaks one raises :class:`~streamrec.stream.codec.Rejected` with the
reason, and its worker dead-letters it before anything of it is applied: a bad record
never leaves a trace in the model or the store, and never affects its neighbours.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from streamrec.settings import Settings
from streamrec.stream.codec import Rejected
from streamrec.stream.schemas import (
    Interaction,
    ItemUpdate,
    NewItem,
    NewUser,
    RecRequest,
    TrainerInput,
    UserUpdate,
)

#: Control characters (C0, DEL, C1) and lone surrogates: never in an id or a name (a NUL
#: breaks PostgreSQL text, a lone surrogate any UTF-8 encoder).
_FORBIDDEN = re.compile("[\\x00-\\x1f\\x7f-\\x9f\\ud800-\\udfff]")
#: Producer times beyond the year 9999 cannot be stored.
MAX_TS = 253_402_300_799.0
#: The item attributes the feature store keeps, with the type it requires.
_STORE_TYPES = {
    "category": "a non-empty string or null",
    "available": "true or false",
    "created_at": "epoch seconds or an ISO-8601 time",
    "tags": "a list of non-empty strings",
}


@dataclass(frozen=True)
class InputLimits:
    """The configured edge limits: :meth:`from_settings`, whose defaults are the
    :class:`~streamrec.settings.Settings` defaults (the one place that holds them)."""

    max_message_bytes: int
    max_id_length: int
    max_feature_name_length: int
    max_features: int
    max_feature_weight: float
    max_attributes: int
    max_attribute_values: int

    @classmethod
    def from_settings(cls, settings: Settings | None = None) -> InputLimits:
        s = settings or Settings()
        return cls(s.max_message_bytes, s.max_id_length, s.max_feature_name_length,
                   s.max_features, s.max_feature_weight, s.max_attributes,
                   s.max_attribute_values)  # fmt: skip

    # -- whole messages ------------------------------------------------------------
    def check_size(self, value: bytes | None) -> None:
        """Reject a message over ``max_message_bytes`` (before it is decoded)."""
        if value is not None and len(value) > self.max_message_bytes:
            raise Rejected(
                f"message of {len(value)} bytes; the limit is {self.max_message_bytes} "
                "(STREAMREC_MAX_MESSAGE_BYTES)"
            )

    def check_trainer_input(self, msg: TrainerInput) -> None:
        """Reject an interaction or entity event that breaks a limit (reason in Rejected)."""
        self._check_ts(msg.ts)
        if isinstance(msg, Interaction):
            self.check_id("user", msg.user)
            self.check_id("item", msg.item)
            self.check_event_type(msg.type)
        elif isinstance(msg, NewUser | UserUpdate):
            self.check_id("user", msg.user)
            self.check_features("user", msg.features)
        elif isinstance(msg, NewItem | ItemUpdate):
            self.check_id("item", msg.item)
            self.check_features("item", msg.features)
            self.check_attributes(msg.item, msg.attributes)

    def check_request(self, req: RecRequest) -> None:
        """Reject a recommendation request whose ids or inline features break a limit."""
        self._check_ts(req.ts)
        self._check_name("request id", req.request_id)
        if req.user is not None:
            self.check_id("user", req.user)
        self.check_features("request", req.features)
        if len(req.exclude) > self.max_attribute_values:
            raise Rejected(
                f"exclude lists {len(req.exclude)} items; the limit is {self.max_attribute_values}"
            )
        for item in req.exclude:
            self.check_id("item", item)

    # -- parts -----------------------------------------------------------------------
    def check_event_type(self, value: str) -> None:
        self._check_name("event type", value)

    def check_id(self, kind: str, value: str) -> None:
        if not value or value.isspace():
            raise Rejected(f"{kind} id {value!r} is empty or blank")
        if len(value) > self.max_id_length:
            raise Rejected(
                f"{kind} id of {len(value)} characters; the limit is {self.max_id_length} "
                "(STREAMREC_MAX_ID_LENGTH)"
            )
        _check_characters(f"{kind} id", value)

    def check_features(self, kind: str, features: Any) -> None:
        if not features:
            return
        if len(features) > self.max_features:
            raise Rejected(
                f"{kind} has {len(features)} features; the limit is {self.max_features} "
                "(STREAMREC_MAX_FEATURES)"
            )
        weights = features.items() if isinstance(features, Mapping) else ()
        for name in features:
            self._check_name(f"{kind} feature name", name)
            if name.startswith("#"):
                raise Rejected(
                    f"{kind} feature {name[:80]!r}: names starting with '#' are reserved"
                )
        for name, weight in weights:
            if not math.isfinite(weight) or abs(weight) > self.max_feature_weight:
                raise Rejected(
                    f"{kind} feature {name[:80]!r} has weight {weight!r}; weights are finite "
                    f"and at most {self.max_feature_weight:g} in absolute value "
                    "(STREAMREC_MAX_FEATURE_WEIGHT)"
                )

    def check_attributes(self, item: str, attributes: Mapping[str, Any]) -> None:
        if len(attributes) > self.max_attributes:
            raise Rejected(
                f"item {item[:80]!r} has {len(attributes)} attributes; the limit is "
                f"{self.max_attributes} (STREAMREC_MAX_ATTRIBUTES)"
            )
        for key, value in attributes.items():
            self._check_name("attribute name", key)
            if isinstance(value, list):
                if len(value) > self.max_attribute_values:
                    raise Rejected(
                        f"item {item[:80]!r}: attribute {key[:80]!r} lists {len(value)} values; "
                        f"the limit is {self.max_attribute_values} "
                        "(STREAMREC_MAX_ATTRIBUTE_VALUES)"
                    )
                for element in value:
                    self._check_name(f"attribute {key[:80]!r} value", element)
            elif isinstance(value, str):
                self._check_name(f"attribute {key[:80]!r} value", value, blank_ok=True)
            elif isinstance(value, float) and not math.isfinite(value):
                raise Rejected(f"item {item[:80]!r}: attribute {key[:80]!r} is {value!r}")
            if key in _STORE_TYPES and not _store_typed(key, value):
                raise Rejected(
                    f"item {item[:80]!r}: attribute {key!r} must be {_STORE_TYPES[key]} "
                    f"(the feature store's type), got {_show(value)}"
                )

    def _check_name(self, what: str, value: str, blank_ok: bool = False) -> None:
        if not blank_ok and (not value or value.isspace()):
            raise Rejected(f"{what} {value!r} is empty or blank")
        if len(value) > self.max_feature_name_length:
            raise Rejected(
                f"{what} of {len(value)} characters; the limit is "
                f"{self.max_feature_name_length} (STREAMREC_MAX_FEATURE_NAME_LENGTH)"
            )
        _check_characters(what, value)

    @staticmethod
    def _check_ts(ts: float) -> None:
        if not (math.isfinite(ts) and 0.0 <= ts <= MAX_TS):
            raise Rejected(f"producer time ts={ts!r} is not epoch seconds in [0, {MAX_TS:.0f}]")


def _check_characters(what: str, value: str) -> None:
    found = _FORBIDDEN.search(value)
    if found is not None:
        raise Rejected(f"{what} {value[:80]!r} holds the control character {found.group()!r}")


def _store_typed(key: str, value: Any) -> bool:
    if key == "category":
        return value is None or (isinstance(value, str) and bool(value.strip()))
    if key == "available":
        return isinstance(value, bool)
    if key == "tags":
        return isinstance(value, list) and all(isinstance(t, str) and t.strip() for t in value)
    # created_at
    if value is None:
        return True
    if isinstance(value, str):
        try:
            datetime.fromisoformat(value)
        except ValueError:
            return False
        return True
    if isinstance(value, int | float) and not isinstance(value, bool):
        try:
            datetime.fromtimestamp(value, UTC)
        except (OverflowError, OSError, ValueError):
            return False
        return True
    return False


def _show(value: object, limit: int = 80) -> str:
    text = repr(value)
    return text if len(text) <= limit else f"{text[: limit - 3]}..."
