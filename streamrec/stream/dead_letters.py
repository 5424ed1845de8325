"""Dead letters: a record a worker could not use, kept with its original bytes and why."""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from typing import Any

from streamrec.stream.codec import encode
from streamrec.stream.records import Record
from streamrec.stream.schemas import DeadLetter

log = logging.getLogger(__name__)


def dead_letter(reason: str, record: Record, worker: str) -> DeadLetter:
    """The dead letter of ``record``, rejected by ``worker`` for ``reason``."""
    return DeadLetter(
        reason=reason,
        source_topic=record.topic,
        source_partition=record.partition,
        source_offset=record.offset,
        worker=worker,
        original=record.value or b"",
        key=record.key,
        ts=time.time(),
    )


async def send_dead_letters(producer: Any, topic: str, dead: Sequence[DeadLetter]) -> int:
    """Publish ``dead`` on the dead-letter ``topic`` (logged); returns how many."""
    for d in dead:
        log.warning("dead letter from %s[%s]@%s: %s", d.source_topic, d.source_partition,
                    d.source_offset, d.reason)  # fmt: skip
        await producer.send(topic, encode(d), key=d.key)
    return len(dead)
