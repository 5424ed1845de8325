"""A consumer past the end of a recreated partition starts it again from 0."""

from __future__ import annotations

import asyncio
import time
import uuid

import pytest

from streamrec.stream import topics as topics_module
from streamrec.stream.broker import ensure_topics, recreate_topic
from streamrec.stream.kafka_clients import FetchPosition
from streamrec.stream.recreated import PastTheEnd, rewind_recreated


async def _send(bootstrap: str, topic: str, values: list[bytes]) -> None:
    from aiokafka import AIOKafkaProducer

    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=0)
    await producer.start()
    try:
        for v in values:
            await producer.send_and_wait(topic, v, partition=0)
    finally:
        await producer.stop()


async def _after_recreation(bootstrap: str, rewind: bool, seconds: float) -> list[bytes]:
    """Read a topic's 5 records, recreate it, send 3 new ones: what the consumer reads."""
    from aiokafka import AIOKafkaConsumer, TopicPartition

    topic = f"t{uuid.uuid4().hex[:10]}.slot"
    await ensure_topics(bootstrap, {topic: 1})
    await _send(bootstrap, topic, [b"old"] * 5)
    tp = TopicPartition(topic, 0)
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False,
                                auto_offset_reset="earliest", fetch_max_wait_ms=20)  # fmt: skip
    await consumer.start()
    try:
        consumer.assign([tp])
        consumer.seek(tp, 0)
        old: list[bytes] = []
        while len(old) < 5:
            batch = await consumer.getmany(timeout_ms=200)
            old += [r.value for records in batch.values() for r in records]
        await recreate_topic(bootstrap, topic, 1)
        await _send(bootstrap, topic, [b"new-0", b"new-1", b"new-2"])
        got: list[bytes] = []
        ends = PastTheEnd()
        deadline = time.monotonic() + seconds
        while len(got) < 3 and time.monotonic() < deadline:
            batch = await consumer.getmany(timeout_ms=100)
            got += [r.value for records in batch.values() for r in records]
            if rewind:
                rewind_recreated(consumer, ends)
        return got
    finally:
        await consumer.stop()


@pytest.mark.asyncio
async def test_a_consumer_reads_a_recreated_partition_from_its_start(bootstrap: str) -> None:
    assert await _after_recreation(bootstrap, rewind=True, seconds=15) == [
        b"new-0", b"new-1", b"new-2"
    ]  # fmt: skip


@pytest.mark.asyncio
async def test_without_the_rewind_the_embedded_broker_strands_the_consumer(
    embedded_bootstrap: str,
) -> None:
    """The embedded broker answers a fetch past the end empty, not out of range."""
    assert await _after_recreation(embedded_bootstrap, rewind=False, seconds=2) == []


async def _read_while_two_producers_send(bootstrap: str, n: int) -> tuple[list[int], int]:
    """The offsets a consumer reads of a partition while two producers send ``n`` records
    each, a record every 0.5 ms (calling :func:`rewind_recreated` after each poll), and
    how many polls left its position past the high watermark of the last answer."""
    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

    from streamrec.stream.kafka_clients import fetch_positions

    topic = f"t{uuid.uuid4().hex[:10]}.race"
    await ensure_topics(bootstrap, {topic: 1})
    producers = [AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=0) for _ in range(2)]
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False,
                                auto_offset_reset="earliest", fetch_max_wait_ms=5)  # fmt: skip

    async def send(producer: AIOKafkaProducer) -> None:
        for _ in range(n):
            await producer.send(topic, b"x" * 50, partition=0)
            await asyncio.sleep(0.0005)
        await producer.flush()

    for producer in producers:
        await producer.start()
    await consumer.start()
    try:
        consumer.assign([TopicPartition(topic, 0)])
        sending = [asyncio.create_task(send(p)) for p in producers]
        offsets: list[int] = []
        ends, past = PastTheEnd(), 0
        deadline = time.monotonic() + 60
        while len(offsets) < 2 * n and time.monotonic() < deadline:
            batch = await consumer.getmany(timeout_ms=20)
            offsets += [r.offset for records in batch.values() for r in records]
            past += sum(f.position > f.highwater for f in fetch_positions(consumer))
            rewind_recreated(consumer, ends)
        await asyncio.gather(*sending)
        return offsets, past
    finally:
        await consumer.stop()
        for producer in producers:
            await producer.stop()


@pytest.mark.asyncio
async def test_records_past_an_answers_high_watermark_do_not_send_the_consumer_back(
    kafka_bootstrap: str,
) -> None:
    """Apache Kafka can answer a fetch with records past the high watermark it reports
    (a produce lands between its reading the watermark and the records): about 5 polls
    in 6,000 records here.  Taken for a recreation, each sent the consumer back to 0."""
    offsets, past = await _read_while_two_producers_send(kafka_bootstrap, 3000)
    print(f"{past} polls left the position past the answer's high watermark")
    assert offsets == list(range(6000))


def test_only_an_answer_at_the_position_tells_that_the_log_ends_before_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from streamrec.stream import recreated

    answers: list[FetchPosition] = []
    monkeypatch.setattr(recreated, "fetch_positions", lambda c: answers)
    ends = PastTheEnd()

    def after(position: int, highwater: int, answered: int) -> list[object]:
        answers[:] = [FetchPosition("tp", position, highwater, False, answered)]
        return ends.find(None)

    assert after(4, 3, answered=1) == []  # the answer that brought the position there
    assert after(4, 3, answered=1) == []  # no answer since
    assert after(4, 6, answered=2) == []  # the next one: the log goes on
    assert after(9, 2, answered=3) == []  # the log is new: first seen...
    assert after(9, 2, answered=4) == ["tp"]  # ...and an answer at 9 says so again
    assert after(10, 2, answered=5) == []  # another position: its first answer again
    assert after(10, 2, answered=6) == ["tp"]


class _Assigned:
    """The two calls SlotTurns makes of a consumer: its assignment, and seek."""

    def __init__(self, tps: list[object]) -> None:
        self.tps, self.seeks = tps, []  # type: ignore[var-annotated]
        self._subscription = type("S", (), {"subscription": None})()

    def assignment(self) -> set[object]:
        return set(self.tps)

    def seek(self, tp: object, offset: int) -> None:
        self.seeks.append((tp, offset))


def test_a_slot_is_rewound_when_its_turn_begins_unless_rewound_since_its_recreation(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from aiokafka import TopicPartition

    from streamrec.stream.recreated import SlotTurns

    names = ["s.0", "s.1", "s.2", "s.3"]
    tps = [TopicPartition(n, p) for n in names for p in (0, 1)]
    consumer = _Assigned(tps)
    turns = SlotTurns(names)
    now = [10 * topics_module.SLOT_S + 0.1]  # period 10: slot 2's turn
    monkeypatch.setattr(topics_module.time, "time", lambda: now[0])

    assert turns.after_poll(consumer) == 0  # the first call only notes the period
    now[0] += topics_module.SLOT_S  # period 11: slot 3's turn begins
    assert turns.after_poll(consumer) == 2
    assert sorted(consumer.seeks) == [(TopicPartition("s.3", 0), 0), (TopicPartition("s.3", 1), 0)]
    consumer.seeks.clear()
    assert turns.after_poll(consumer) == 0  # same period: nothing more

    turns._rewound[TopicPartition("s.0", 1)] = 11  # seen recreated half way through 11
    now[0] += 2 * topics_module.SLOT_S  # periods 12 and 13 began: slots 0 and 1
    assert turns.after_poll(consumer) == 3
    assert sorted(consumer.seeks) == [
        (TopicPartition("s.0", 0), 0), (TopicPartition("s.1", 0), 0), (TopicPartition("s.1", 1), 0)
    ]  # fmt: skip


class _Pausable(_Assigned):
    """A consumer whose partitions' positions and ends are known, and can be paused."""

    def __init__(self, tps: list[object], positions: dict[object, tuple[int, int]]) -> None:
        super().__init__(tps)
        self.positions, self._paused = positions, set()  # type: ignore[var-annotated]

    def paused(self) -> set[object]:
        return set(self._paused)

    def pause(self, *tps: object) -> None:
        self._paused |= set(tps)

    def resume(self, *tps: object) -> None:
        self._paused -= set(tps)


def test_a_past_slot_read_to_its_end_is_paused_and_resumed_when_its_turn_begins(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from aiokafka import TopicPartition

    from streamrec.stream import recreated
    from streamrec.stream.recreated import SlotTurns

    names = ["s.0", "s.1", "s.2", "s.3"]
    plain = TopicPartition("plain", 0)
    tps = [plain, *(TopicPartition(n, 0) for n in names)]
    # every partition read to its end, but slot 0's, which still holds 3 records
    positions = {tp: (5, 5) for tp in tps}
    positions[TopicPartition("s.0", 0)] = (2, 5)
    consumer = _Pausable(tps, positions)
    monkeypatch.setattr(recreated, "fetch_positions",
                        lambda c: [FetchPosition(tp, p, e, False, 0)
                                   for tp, (p, e) in c.positions.items()])  # fmt: skip
    now = [10 * topics_module.SLOT_S + 0.1]  # period 10: slot 2's turn, slot 1's before it
    monkeypatch.setattr(topics_module.time, "time", lambda: now[0])
    turns = SlotTurns(names, live_periods=2)

    turns.after_poll(consumer)
    # slot 0 still has records to read; the plain topic is never paused
    assert consumer.paused() == {TopicPartition("s.3", 0)}
    positions[TopicPartition("s.0", 0)] = (5, 5)
    turns.after_poll(consumer)
    assert consumer.paused() == {TopicPartition("s.3", 0), TopicPartition("s.0", 0)}

    now[0] += topics_module.SLOT_S  # period 11: slot 3's turn begins, slot 1's has passed
    turns.after_poll(consumer)
    assert consumer.paused() == {TopicPartition("s.0", 0), TopicPartition("s.1", 0)}
    assert (TopicPartition("s.3", 0), 0) in consumer.seeks  # rewound for its turn
    turns.after_poll(consumer, keep={"s.0"})  # a request sent on it still awaits its answer
    assert consumer.paused() == {TopicPartition("s.1", 0)}

    unpausing = SlotTurns(names)  # live_periods 0: the SDK's response readers
    consumer._paused.clear()
    unpausing.after_poll(consumer)
    assert consumer.paused() == set()
