"""Schemas, codecs, edge validation and dead letters, without a broker."""

from __future__ import annotations

from dataclasses import dataclass

import msgspec
import numpy as np
import pytest

from streamrec.model import HybridModel, ModelConfig
from streamrec.stream.codec import Rejected, decode, encode
from streamrec.stream.records import Record
from streamrec.stream.schemas import (
    SCHEMA_VERSION,
    DeadLetter,
    Interaction,
    NewItem,
    NewUser,
    RecRequest,
    RecResponse,
    ScoredItem,
    TrainerInput,
    Watermark,
)
from streamrec.stream.topics import Topics
from streamrec.workers.deltas import DeltaTracker
from streamrec.workers.state import ModelState
from streamrec.workers.training.core import TrainerCore, decode_batch
from streamrec.workers.training.sinks import MemoryEntitySink


def test_messages_round_trip() -> None:
    msgs = [
        Interaction(user="u1", item="i1", type="purchase", ts=1.5),
        NewUser(user="u1", features=["age=3", "sex=F"]),
        NewItem(item="i1", features={"genre=1": 0.5}, attributes={"category": "books", "available": True}),
        RecRequest(request_id="r1", user="u1", k=5, filters={"category": ["books"]},
                   after=[Watermark("p.interactions", 0, 41)]),
        RecResponse(request_id="r1", user="u1", items=[ScoredItem("i1", 0.5)], strategy="personalised",
                    model_version=3, n_events=10),
    ]  # fmt: skip
    for msg in msgs:
        data = encode(msg)
        assert b'"kind"' in data
        assert decode(data, type(msg)) == msg
    assert isinstance(decode(encode(msgs[1]), TrainerInput), NewUser)


@pytest.mark.parametrize(
    ("raw", "why"),
    [
        (b"not json", "not valid JSON"),
        (b'{"kind":"interaction","user":"","item":"i"}', "invalid message"),
        (b'{"kind":"interaction","item":"i"}', "missing required field `user`"),
        (b'{"kind":"bogus","user":"u"}', "invalid message"),
        (b'{"kind":"new_user","user":"u","features":3}', "invalid message"),
        (b'{"kind":"interaction","user":"u","item":"i","v":99}', "schema version 99"),
        (None, "empty message"),
    ],
)
def test_bad_messages_are_rejected_with_a_reason(raw: bytes | None, why: str) -> None:
    with pytest.raises(Rejected) as err:
        decode(raw, TrainerInput)
    assert why in err.value.reason


def test_item_attributes_are_scalars_or_lists_of_strings() -> None:
    tagged = NewItem(item="i1", attributes={"tags": ["family", "new"], "available": True})
    assert decode(encode(tagged), TrainerInput) == tagged
    for bad in (b'{"tags": [1]}', b'{"tags": [["x"]]}', b'{"meta": {"a": 1}}'):
        with pytest.raises(Rejected, match="invalid message"):
            decode(b'{"kind":"new_item","item":"i","attributes":' + bad + b"}", TrainerInput)


def test_request_limits() -> None:
    with pytest.raises(Rejected, match="k"):
        decode(b'{"kind":"rec_request","request_id":"r","k":0}', RecRequest)
    assert decode(b'{"kind":"rec_request","request_id":"r","zzz":1}', RecRequest).k == 10
    assert SCHEMA_VERSION == 1


def test_topics_share_a_prefix_and_deltas_have_one_partition() -> None:
    t = Topics("shop")
    assert all(name.startswith("shop.") for name in t.all())
    assert len(set(t.all())) == 6
    parts = t.partitions(4)
    assert parts[t.deltas] == 1 and parts[t.interactions] == 4


@dataclass
class FakeRecord:
    value: bytes | None
    offset: int
    timestamp: int = 0
    key: bytes | None = None


@dataclass(frozen=True)
class FakeTP:
    topic: str
    partition: int


def test_batch_is_merged_by_producer_time_keeping_partition_order() -> None:
    t = Topics("x")
    batch = {
        FakeTP(t.interactions, 0): [FakeRecord(encode(Interaction(user="u", item="i", ts=3.0)), 0),
                                    FakeRecord(encode(Interaction(user="u", item="j", ts=5.0)), 1)],
        FakeTP(t.entities, 1): [FakeRecord(encode(NewItem(item="i", ts=1.0)), 0),
                                FakeRecord(encode(NewItem(item="j", ts=4.0)), 1)],
    }  # fmt: skip
    order = [(d.record.topic, d.record.offset) for d in decode_batch(Record.batch(batch))]
    assert order == [(t.entities, 0), (t.interactions, 0), (t.entities, 1), (t.interactions, 1)]


def test_trainer_core_dead_letters_bad_records_and_keeps_going() -> None:
    model = HybridModel(ModelConfig(dim=8))
    state = ModelState(model)
    sink = MemoryEntitySink()
    core = TrainerCore(state, sink, DeltaTracker(model))
    t = Topics("x")
    records = [
        encode(NewUser(user="u1", features=["likes=a"], ts=1.0)),
        b"{broken",
        encode(Interaction(user="u1", item="i1", type="teleport", ts=2.0)),
        encode(NewUser(user="u2", features=["#id:evil"], ts=2.5)),
        encode(Interaction(user="u1", item="i1", type="click", ts=3.0)),
    ]
    batch = {FakeTP(t.interactions, 0): [FakeRecord(v, n, key=b"k") for n, v in enumerate(records)]}
    dead = core.apply(decode_batch(Record.batch(batch)))
    assert [d.source_offset for d in dead] == [1, 2, 3]
    assert "not valid JSON" in dead[0].reason
    assert "teleport" in dead[1].reason
    assert "reserved" in dead[2].reason
    assert dead[0].original == b"{broken" and dead[0].source_topic == t.interactions
    assert isinstance(decode(encode(dead[0]), DeadLetter), DeadLetter)
    assert model.n_events == 1 and model.has_item("i1")
    assert sink.users["u1"] == ["likes=a"]


def test_dead_letter_carries_original_bytes_as_base64() -> None:
    from streamrec.stream.dead_letters import dead_letter

    d = dead_letter("bad", Record("t", 2, 7, None, b"\xff\x00"), worker="w")
    obj = msgspec.json.decode(encode(d))
    assert obj["source_partition"] == 2 and obj["original"] == "/wA="
    assert np.frombuffer(decode(encode(d), DeadLetter).original, dtype=np.uint8).tolist() == [
        255,
        0,
    ]
