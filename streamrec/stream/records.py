"""A consumed record as a named object, independent of the Kafka client library."""

from __future__ import annotations

from typing import Any, NamedTuple


class Record(NamedTuple):
    """One record of a topic partition: where it sits, its key and value, producer time.

    A named tuple, not a dataclass: the trainer builds one per consumed record, and a
    tuple is built several times faster than a frozen dataclass.
    """

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    timestamp_ms: int = 0

    @classmethod
    def of(cls, topic: str, partition: int, rec: Any) -> Record:
        """From an aiokafka ``ConsumerRecord`` (or anything with its attributes)."""
        return cls(topic, partition, rec.offset, rec.key, rec.value, rec.timestamp or 0)

    @classmethod
    def batch(cls, fetched: dict[Any, list[Any]]) -> list[list[Record]]:
        """An aiokafka ``getmany`` result as one list of records per partition."""
        return [cls.partition_of(tp.topic, tp.partition, recs) for tp, recs in fetched.items()]

    @classmethod
    def partition_of(cls, topic: str, partition: int, recs: list[Any]) -> list[Record]:
        """The records of one partition of a ``getmany`` result."""
        new = tuple.__new__
        return [new(cls, (topic, partition, r.offset, r.key, r.value, r.timestamp or 0))
                for r in recs]  # fmt: skip


class OffsetGaps:
    """Records a consumer was never given: the offsets between where it read a partition
    from (or the last record it got there) and the next record the broker returned.

    The input topics are neither compacted nor transactional, so their offsets have no
    holes: a gap is records the broker no longer holds (deleted by retention, or lost by
    the broker) that were never learned.  :meth:`seen` returns the gap, if any, that a
    fetched run of records of one partition opens.
    """

    def __init__(self) -> None:
        self._next: dict[tuple[str, int], int] = {}
        self.missing = 0  # records skipped over, in all partitions, since the start

    def expect(self, key: tuple[str, int], offset: int) -> None:
        """The partition was positioned at ``offset`` (a seek): its next record is there."""
        self._next[key] = offset

    def seen(self, key: tuple[str, int], first: int, last: int) -> tuple[int, int] | None:
        """A fetched run of records at offsets ``first`` to ``last``: the offsets skipped
        before it, ``(from, to)`` inclusive, or None."""
        expected = self._next.get(key)
        self._next[key] = last + 1
        if expected is None or first <= expected:
            return None
        self.missing += first - expected
        return expected, first - 1
