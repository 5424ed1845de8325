"""Dead letters: a record a worker could not use, kept with its original bytes and why."""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from typing import Any

import msgspec

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
    """Publish ``dead`` on the dead-letter ``topic`` (logged) and wait until the broker has
    them; returns how many.

    A letter too large for the producer or the broker (its original is carried whole,
    base64) is sent again with the original cut to :data:`CUT_BYTES` (``truncated`` set,
    ``original_size`` says how long it was), so one huge message never blocks the letters
    behind it.
    """
    too_large = _too_large()
    sent = []
    for d in dead:
        log.warning("dead letter from %s[%s]@%s: %s", d.source_topic, d.source_partition,
                    d.source_offset, d.reason[:500])  # fmt: skip
        sent.append((d, await _send(producer, topic, d)))
    for d, fut in sent:
        try:
            await fut
        except too_large:
            await (await _send(producer, topic, cut(d)))
    return len(dead)


#: A letter too large to send carries this many bytes of its original.
CUT_BYTES = 64 * 1024


def cut(letter: DeadLetter) -> DeadLetter:
    """``letter`` with its original cut to :data:`CUT_BYTES`."""
    return msgspec.structs.replace(letter, original=letter.original[:CUT_BYTES],
                                   original_size=len(letter.original), truncated=True)  # fmt: skip


async def _send(producer: Any, topic: str, letter: DeadLetter) -> Any:
    """The delivery future of ``letter`` (cut first if the producer refuses its size)."""
    try:
        return await producer.send(topic, encode(letter), key=letter.key)
    except _too_large():
        return await producer.send(topic, encode(cut(letter)), key=letter.key)


def _too_large() -> tuple[type[Exception], ...]:
    """What a producer or a broker answers for a message over its size limit."""
    from aiokafka.errors import MessageSizeTooLargeError, RecordTooLargeError

    return (MessageSizeTooLargeError, RecordTooLargeError)
