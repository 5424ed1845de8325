"""MemoryItemAttributes: what a checkpoint gets from :meth:`frozen`, and its JSON cache."""

from __future__ import annotations

import json

from streamrec.workers.attributes import MemoryItemAttributes


def _decoded(value: object) -> object:
    return json.loads(bytes(value).decode())  # type: ignore[call-overload]


def test_frozen_encodes_the_state_of_its_moment_not_a_later_one() -> None:
    attrs = MemoryItemAttributes()
    attrs.update("i1", {"category": "a"}, 10.0)
    before = attrs.to_dict()
    encode = attrs.frozen()
    attrs.update("i1", {"category": "b"}, 20.0)  # replaced after the copy
    attrs.update("i2", {"tags": ["x"]}, 30.0)
    assert _decoded(encode()) == before
    assert _decoded(attrs.frozen()()) == attrs.to_dict() != before


def test_a_checkpoint_with_no_update_since_the_last_reuses_its_json() -> None:
    attrs = MemoryItemAttributes()
    attrs.update("i1", {"category": "a"}, 10.0)
    first = attrs.frozen()()
    assert attrs.frozen()() is first  # nothing changed: the same bytes, not encoded again
    attrs.update("i1", {"available": False}, 10.0)
    second = attrs.frozen()()
    assert second is not first
    assert _decoded(second) == {"i1": {"attributes": {"category": "a", "available": False},
                                       "created": 10.0}}  # fmt: skip


def test_a_frozen_copy_encoded_late_does_not_pass_for_the_newer_state() -> None:
    attrs = MemoryItemAttributes()
    attrs.update("i1", {"category": "a"}, 10.0)
    old = attrs.frozen()
    attrs.update("i2", {"category": "b"}, 20.0)
    old()  # encodes (and caches) the state before i2
    assert "i2" in _decoded(attrs.frozen()())  # type: ignore[operator]
