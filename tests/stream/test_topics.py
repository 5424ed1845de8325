"""Topic names: the request slots, their pairing and their discovery."""

from __future__ import annotations

from streamrec.stream import topics as topics_module
from streamrec.stream.topics import Topics, current_slot


def test_a_request_slot_is_answered_on_its_paired_response_slot() -> None:
    t = Topics("p")
    assert t.response_for("p.rec-requests") == "p.rec-responses"
    assert t.response_for("p.rec-requests.3") == "p.rec-responses.3"
    assert t.request_topics(2) == ["p.rec-requests", "p.rec-requests.0", "p.rec-requests.1"]


def test_slots_are_counted_from_0_while_either_topic_of_a_pair_exists() -> None:
    t = Topics("p")
    names = {"p.rec-requests", "p.rec-responses", "p.rec-requests.0", "p.rec-responses.0",
             "p.rec-requests.1", "p.rec-responses.1", "p.rec-requests.2"}  # fmt: skip
    # slot 2's response topic is being recycled (recreated a moment after its request's)
    assert t.slots_in(names) == 3
    assert not t.slots_whole(names, 3) and t.slots_whole(names, 2)
    assert t.slots_in({"p.rec-requests.1", "p.rec-responses.1"}) == 0  # no slot 0
    assert Topics("q").slots_in(names) == 0


def test_the_slots_are_created_with_the_other_topics() -> None:
    t = Topics("p")
    assert t.partitions(3) == t.partitions(3, slots=0)
    with_slots = t.partitions(3, slots=4)
    assert len(with_slots) == len(t.all()) + 8
    assert with_slots["p.rec-responses.3"] == 3 and with_slots["p.deltas"] == 1


def test_the_current_slot_turns_every_period() -> None:
    s = topics_module.SLOT_S
    assert [current_slot(4, now=k * s + 0.1) for k in range(6)] == [0, 1, 2, 3, 0, 1]
    assert current_slot(4, now=5 * s - 1e-6) == 0
