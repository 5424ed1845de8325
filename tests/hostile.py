"""Hostile payloads for every consumed topic (hypothesis strategies) and a clean world.

Every payload :func:`hostile` draws breaks the wire schema or an edge limit of the
default :class:`~streamrec.settings.Settings`: NUL and other control characters in ids,
1 MB strings, weights of +-1e300, 10,000 features, wrong types, unknown kinds, malformed
JSON.  So a worker must dead-letter each one, with its original bytes, and learn every
clean event around it.  Shared by the tests and ``bench/fault_input.py``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from hypothesis import strategies as st

from streamrec.stream.codec import encode
from streamrec.stream.schemas import Interaction, NewItem, NewUser, RecRequest

#: The topics a payload goes to: the trainer's two and the recommender's requests.
TOPICS = ("interactions", "entities", "requests")
MB = 1024 * 1024


@dataclass(frozen=True)
class Payload:
    """Bytes for one topic (a role of :class:`~streamrec.stream.topics.Topics`)."""

    topic: str
    value: bytes
    what: str


def _json(obj: Any) -> bytes:
    return json.dumps(obj).encode()


_controls = st.sampled_from(["\x00", "\x01", "\n", "\t", "\x1b", "\x7f", "\x85"])
_weights = st.sampled_from([1e300, -1e300, 1e20, -1e6, 1e5, 10_001.0])
_wrong = st.sampled_from([1, 2.5, True, None, [], {}, ["a"], {"a": 1}])


@st.composite
def _bad_id(draw: st.DrawFn) -> tuple[str, str]:
    """An id the limits refuse, and what is wrong with it."""
    kind = draw(st.sampled_from(["control", "long", "blank"]))
    base = draw(st.text(alphabet="abcxyz019", min_size=1, max_size=8))
    if kind == "control":
        return base + draw(_controls) + base, "control character in an id"
    if kind == "long":
        return "u" * draw(st.sampled_from([513, 4096, MB])), "too long an id"
    return draw(st.sampled_from([" ", "   ", "\u3000"])), "blank id"


@st.composite
def _bad_features(draw: st.DrawFn) -> tuple[Any, str]:
    kind = draw(st.sampled_from(["weight", "many", "long-name", "control-name", "reserved",
                                 "wrong-type", "string"]))  # fmt: skip
    if kind == "weight":
        return {"genre=a": 1.0, "heavy": draw(_weights)}, "out-of-range weight"
    if kind == "many":
        n = draw(st.sampled_from([257, 10_000]))
        return [f"f{k}" for k in range(n)], "too many features"
    if kind == "long-name":
        return ["n" * draw(st.sampled_from([257, 100_000, MB]))], "too long a feature name"
    if kind == "control-name":
        return ["genre" + draw(_controls) + "x"], "control character in a name"
    if kind == "reserved":
        return ["#id:evil"], "reserved feature name"
    if kind == "wrong-type":
        return {"a": draw(st.sampled_from(["1", "NaN", None, [1]]))}, "non-numeric weight"
    return "genre=a", "features as one string"


@st.composite
def _bad_attributes(draw: st.DrawFn) -> tuple[Any, str]:
    kind = draw(st.sampled_from(["type", "nested", "many", "long", "list"]))
    if kind == "type":
        key = draw(st.sampled_from(["available", "category", "tags", "created_at"]))
        bad = {"available": "maybe", "category": 3, "tags": "a", "created_at": "yesterday"}
        return {key: bad[key]}, f"wrong type of {key}"
    if kind == "nested":
        return {"meta": {"a": 1}}, "nested attribute"
    if kind == "many":
        return {f"a{k}": k for k in range(65)}, "too many attributes"
    if kind == "long":
        return {"category": "c" * MB}, "1 MB attribute"
    return {"tags": [f"t{k}" for k in range(257)]}, "too long a list"


@st.composite
def hostile(draw: st.DrawFn) -> Payload:
    """One bad payload for one consumed topic."""
    topic = draw(st.sampled_from(TOPICS))
    family = draw(st.sampled_from(["id", "features", "attributes", "type", "kind", "json",
                                   "huge", "ts"]))  # fmt: skip
    if topic == "interactions":
        msg: dict[str, Any] = {"kind": "interaction", "user": "u0", "item": "i0"}
        if family == "id":
            bad, why = draw(_bad_id())
            msg[draw(st.sampled_from(["user", "item"]))] = bad
        elif family in ("type", "features", "attributes"):
            msg[draw(st.sampled_from(["user", "item", "type"]))] = draw(_wrong)
            why = "wrong type"
        else:
            return _generic(draw, topic, family, msg)
        return Payload(topic, _json(msg), why)
    if topic == "entities":
        user = draw(st.booleans())
        kind = draw(st.sampled_from(["new_user", "user_update"] if user
                                    else ["new_item", "item_update"]))  # fmt: skip
        key = "user" if user else "item"
        msg = {"kind": kind, key: "i0" if not user else "u0"}
        if family == "id":
            msg[key], why = draw(_bad_id())
        elif family == "features":
            msg["features"], why = draw(_bad_features())
        elif family == "attributes" and not user:
            msg["attributes"], why = draw(_bad_attributes())
        elif family == "type":
            wrong: dict[str, list[Any]] = {
                key: [1, [1], {"a": "b"}, 1e300, None],
                "features": ["x", [1], {"a": "b"}, 1e300],
                "ts": ["x", [1], 1e300],
                "v": ["x", 1e300, 99],
            }
            if not user:
                wrong["attributes"] = ["x", [1], 1e300, {"a": {"b": 1}}, {"a": [1]}]
            field = draw(st.sampled_from(sorted(wrong)))
            msg[field] = draw(st.sampled_from(wrong[field]))
            why = f"wrong type or range of {field}"
        else:
            return _generic(draw, topic, family, msg)
        return Payload(topic, _json(msg), why)
    req: dict[str, Any] = {"kind": "rec_request", "request_id": "r", "user": "u0"}
    if family == "features":  # what the schema refuses (the recommender decodes only)
        req["features"], why = draw(st.sampled_from([
            ({"a": 1e300}, "weight 1e300"), ({"a": -1e20}, "weight -1e20"),
            ([f"f{k}" for k in range(10_001)], "10,001 features"),
            (["n" * 513], "a 513-character name"), ({"a": "NaN"}, "a string weight"),
        ]))  # fmt: skip
    elif family == "type":
        req[draw(st.sampled_from(["k", "filters", "after", "exact"]))] = draw(
            st.sampled_from(["x", -1, 10**9, [{"topic": 1}]])
        )
        why = "wrong type or range"
    elif family in ("kind", "json"):
        return _generic(draw, topic, family, req)
    else:
        req["k"], why = 0, "k of 0"
    return Payload(topic, _json(req), why)


def _generic(draw: st.DrawFn, topic: str, family: str, msg: dict[str, Any]) -> Payload:
    if family == "kind":
        msg["kind"] = draw(st.sampled_from(["bogus", "delta", "rec_response", "", "INTERACTION"]))
        return Payload(topic, _json(msg), "unknown kind")
    if family == "json":
        text = draw(st.sampled_from([b"{broken", b"", b"null", b"[]", b"\xff\xfe", b"1e999"]))
        return Payload(topic, text, "not a JSON object")
    if family == "huge":
        msg["padding"] = "p" * (MB + 10)  # an unknown field: over the size limit
        return Payload(topic, _json(msg), "over 1 MiB")
    msg["ts"] = draw(st.sampled_from([-1.0, 1e300, 1e12]))
    return Payload(topic, _json(msg), "producer time out of range")


@dataclass(frozen=True)
class CleanWorld:
    """Clean events: items and users onboarded with features, then interactions."""

    entities: list[bytes]
    interactions: list[bytes]
    requests: list[bytes]

    @property
    def n_events(self) -> int:
        return len(self.interactions)


def clean_world(n_interactions: int, n_users: int = 40, n_items: int = 30) -> CleanWorld:
    """A small world whose every message is valid (deterministic)."""
    entities = [
        encode(
            NewItem(
                item=f"i{i}",
                features={f"genre={i % 5}": 1.0, f"year={i % 7}": 0.5},
                attributes={"category": f"c{i % 3}", "available": True, "tags": [f"t{i % 4}"]},
                ts=1.0,
            )
        )
        for i in range(n_items)
    ]
    entities += [
        encode(NewUser(user=f"u{u}", features=[f"age={u % 6}"], ts=1.0)) for u in range(n_users)
    ]
    interactions = [
        encode(
            Interaction(
                user=f"u{k % n_users}",
                item=f"i{(k * 7 + k // n_users) % n_items}",
                type="purchase" if k % 5 == 0 else "click",
                ts=2.0,
            )
        )
        for k in range(n_interactions)
    ]
    requests = [
        encode(RecRequest(request_id=f"r{k}", user=f"u{k % n_users}", k=5, ts=3.0))
        for k in range(max(1, n_interactions // 50))
    ]
    return CleanWorld(entities, interactions, requests)


def draw_payloads(n: int) -> list[Payload]:
    """``n`` hostile payloads drawn by hypothesis, the same ones on every call."""
    from hypothesis import HealthCheck, Phase, given, settings

    out: list[Payload] = []

    @settings(max_examples=n, database=None, derandomize=True, phases=[Phase.generate],
              suppress_health_check=list(HealthCheck), deadline=None)  # fmt: skip
    @given(hostile())
    def collect(payload: Payload) -> None:
        out.append(payload)

    collect()
    return out


def every_kind() -> list[Payload]:
    """One payload of each kind of trouble the issue names, on the topic it targets."""
    it = {"kind": "interaction", "user": "u0", "item": "i0"}
    item = {"kind": "new_item", "item": "i0"}
    user = {"kind": "new_user", "user": "u0"}
    req = {"kind": "rec_request", "request_id": "r", "user": "u0"}
    cases: list[tuple[str, dict[str, Any] | bytes, str]] = [
        ("interactions", b"{broken", "malformed JSON"),
        ("interactions", {**it, "item": " "}, "blank item id"),
        ("interactions", {**it, "user": "a\x00b"}, "NUL in an id"),
        ("interactions", {**it, "kind": "teleport"}, "unknown kind"),
        ("interactions", {**it, "type": "teleport"}, "unknown event type"),
        ("interactions", {**it, "item": "x" * MB}, "1 MB id"),
        ("interactions", {**it, "user": 7}, "wrong type"),
        ("entities", {**item, "features": {"a": 1e20}}, "weight 1e20"),
        ("entities", {**item, "features": {"a": -1e300}}, "weight -1e300"),
        ("entities", {**item, "features": {"a": "NaN"}}, "a 'NaN' weight"),
        ("entities", {**item, "features": [f"f{k}" for k in range(10_000)]}, "10,000 features"),
        ("entities", {**user, "features": [f"f{k}" for k in range(20_000)]}, "20,000 features"),
        ("entities", {**item, "features": ["n" * 100_000]}, "100 KB feature name"),
        ("entities", {**user, "features": ["a\x00b"]}, "NUL in a feature name"),
        ("entities", {**item, "attributes": {"available": "maybe"}}, "wrong attribute type"),
        ("entities", {**item, "attributes": {"category": "c" * MB}}, "1 MB attribute"),
        ("entities", {**item, "attributes": {"meta": {"a": 1}}}, "nested attribute"),
        ("entities", {**user, "user": "\ud800x"}, "lone surrogate in an id"),
        ("entities", {**user, "ts": 1e300}, "time 1e300"),
        ("entities", {**user, "v": 99}, "newer schema"),
        ("requests", {**req, "features": {"a": 1e300}}, "inline weight 1e300"),
        ("requests", {**req, "filters": "available"}, "filters not an object"),
        ("requests", {**req, "k": 0}, "k of 0"),
        ("requests", b"\xff\xfe", "not UTF-8"),
    ]
    return [
        Payload(topic, body if isinstance(body, bytes) else _json(body), what)
        for topic, body, what in cases
    ]
