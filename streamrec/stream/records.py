"""A consumed record as a named object, independent of the Kafka client library."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class Record:
    """One record of a topic partition: where it sits, its key and value, producer time."""

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
        return [[cls.of(tp.topic, tp.partition, r) for r in recs] for tp, recs in fetched.items()]
