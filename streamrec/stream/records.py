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
