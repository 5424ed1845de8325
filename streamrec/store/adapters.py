"""The seams backed by the SQL feature store: onboarding writes and filter attributes.

:class:`StoreEntitySink` buffers the trainer's upserts and writes each trainer batch as
ONE ``upsert_entities`` transaction on a writer thread, so the trainer never waits for
SQL.  Bad records are isolated from their batch: each record is validated on its own
(one pass), and a batch the database refuses for its data (``DataError``,
``IntegrityError``, or any error that is not an outage) is split in halves until the
records it refuses are alone; each rejected upsert comes back from
:meth:`~StoreEntitySink.flush` with the reason, so the trainer dead-letters its message.
An outage (the database unreachable, read-only, locked) keeps the batch queued and is
retried with exponential backoff (``retry_s`` doubling up to ``max_retry_s``); meanwhile
``flush(wait=...)`` returns at once instead of waiting for writes that cannot happen.
The writer thread survives every exception.  The queue is bounded by its user: the
trainer stops fetching while :meth:`~StoreEntitySink.pending` is at
``Settings.store_queue_max`` (backpressure).

:class:`StoreItemAttributes` serves request filters from an ``ItemAttributeCache``:
reads never block, and any writer's change (the trainer's sink, another process, a
hand-written UPDATE) shows within the cache's polling interval.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any, Protocol

import numpy as np
from sqlalchemy.exc import DataError, IntegrityError, ProgrammingError

from streamrec.errors import InvalidRecordError, StoreError
from streamrec.store import EntityRecord, FeatureStore, ItemAttributeCache
from streamrec.store.records import ATTRIBUTES, CleanRecord, validate_batch

log = logging.getLogger(__name__)

#: Features as the workers hand them over: names (weight 1) or ``{name: weight}``.
FeatureValue = Sequence[str] | Mapping[str, float] | None
#: An upsert the store rejected: the ``source`` given with it, and the reason.
SinkRejection = tuple[Any, str]


class Upserted(Protocol):
    """An entity the trainer onboarded or re-featured (the workers' ``EntityUpsert``)."""

    @property
    def kind(self) -> str: ...
    @property
    def id(self) -> str: ...
    @property
    def features(self) -> FeatureValue: ...
    @property
    def attributes(self) -> Mapping[str, Any]: ...


class EventAttributes(Protocol):
    """Item attributes kept from entity events (what the store does not hold)."""

    def update(self, item_id: str, attributes: Mapping[str, Any], created: float) -> None: ...

    def get(self, item_id: str) -> Mapping[str, Any]: ...

    def created(self, item_id: str) -> float | None: ...

    def to_dict(self) -> dict[str, Any]: ...

    def frozen(self) -> Callable[[], dict[str, Any] | np.ndarray]: ...

    def load_dict(self, values: Mapping[str, Any]) -> None: ...


#: Queued batches are merged into one write up to this many upserts.
MERGE_UPSERTS = 5000
#: Fewest recently applied attribute entries kept before finished ones are forgotten.
SWEEP_AT = 4096
#: Item attributes the store holds; other attributes of entity events stay in memory.
STORE_ATTRIBUTES = frozenset(ATTRIBUTES)

_Upsert = tuple[EntityRecord, Any]  # the record and the source of the message behind it
#: Called after a batch is written: (item ids, attributes_version that holds them,
#: monotonic time the batch was handed to the writer).
OnWritten = Callable[[Sequence[str], int, float], None]


class StoreEntitySink:
    """:class:`~streamrec.workers.training.sinks.EntitySink` writing to a :class:`FeatureStore`.

    Item attributes the store does not know (anything but category, available,
    created_at, tags) are left out of the store's record; the model's process keeps
    them (memory, deltas, checkpoints).
    """

    def __init__(
        self,
        store: FeatureStore,
        *,
        retry_s: float = 0.5,
        max_retry_s: float = 5.0,
        on_written: OnWritten | None = None,
    ) -> None:
        self.store = store
        self.retry_s = retry_s
        self.max_retry_s = max_retry_s
        self.failures = 0  # consecutive failed attempts (the backoff's exponent)
        self.on_written = on_written
        self.batches_written = 0
        self.last_error: StoreError | None = None
        self._buffer: list[_Upsert] = []
        # batches for the writer, oldest first, with the time they were handed over
        self._queue: deque[tuple[float, list[_Upsert]]] = deque()
        self._queued = 0  # upserts in the queue (pending() is called on every trainer poll)
        self._rejected: list[SinkRejection] = []
        self._busy = False  # the writer holds a batch it took from the queue
        self._closed = False
        self._cond = threading.Condition()
        self._thread: threading.Thread | None = None

    # -- the EntitySink seam (called on the trainer's event loop) -----------------

    def upsert(self, entity: Upserted, source: Any = None) -> None:
        stored = {k: v for k, v in entity.attributes.items() if k in STORE_ATTRIBUTES}
        with self._cond:
            self._buffer.append((EntityRecord(entity.kind, entity.id, entity.features, stored),
                                 source))  # fmt: skip

    def flush(self, wait: float = 0.0) -> list[SinkRejection]:
        with self._cond:
            if self._buffer:
                self._queue.append((time.monotonic(), self._buffer))
                self._queued += len(self._buffer)
                self._buffer = []
                self._cond.notify_all()
            if wait > 0 and self.last_error is None:  # during an outage nothing will come
                self._cond.wait_for(lambda: self._idle() or self.last_error is not None, wait)
            rejected, self._rejected = self._rejected, []
        return rejected

    def pending(self) -> int:
        with self._cond:
            return len(self._buffer) + self._queued

    def _idle(self) -> bool:
        return not self._queue and not self._busy

    # -- lifecycle -------------------------------------------------------------------

    def start(self) -> StoreEntitySink:
        if self._thread is None:
            self._closed = False
            self._thread = threading.Thread(
                target=self._run, name="streamrec-store-writer", daemon=True
            )
            self._thread.start()
        return self

    def close(self, timeout: float = 10.0) -> None:
        """Write what is queued (up to ``timeout`` s), then stop the writer thread."""
        self.flush(wait=timeout)
        with self._cond:
            self._closed = True
            self._cond.notify_all()
            left = self._queued
        if self._thread is not None:
            self._thread.join(timeout=max(self.retry_s, 1.0))
            self._thread = None
        if left:
            log.error("feature store: %d upserts not written at shutdown (%s)", left,
                      self.last_error)  # fmt: skip

    # -- the writer thread -----------------------------------------------------------

    def _run(self) -> None:
        while True:
            with self._cond:
                self._cond.wait_for(lambda: bool(self._queue) or self._closed)
                if not self._queue or (self._closed and self.last_error is not None):
                    return  # closed: drained, or the database is down and we give up
                # catching up (after an outage): the queued batches in one write
                taken, handed_at, batch = 0, 0.0, []
                for when, queued in self._queue:  # (a deque: never index it)
                    taken += 1
                    handed_at = when
                    batch += queued
                    if len(batch) >= MERGE_UPSERTS:
                        break
                self._busy = True
            try:
                if self.last_error is not None:  # down: a cheap probe before the real work
                    self.store.attributes_version()
                rejected = self._write(batch, handed_at)
            except Exception as exc:  # an outage (or a bug): keep the batch, retry later
                self._failed(exc)
                continue
            if self.last_error is not None:
                log.warning("feature store writes resumed after %d failed attempts",
                            self.failures)  # fmt: skip
                self.last_error = None
            self.failures = 0
            with self._cond:
                for _ in range(taken):
                    self._queued -= len(self._queue.popleft()[1])
                self._rejected.extend(rejected)
                self._busy = False
                self.batches_written += 1
                self._cond.notify_all()

    def _failed(self, exc: Exception) -> None:
        delay = min(self.max_retry_s, self.retry_s * 2.0**self.failures)
        if self.last_error is None:
            log.warning("feature store write failed, retrying with backoff up to %.1f s: %s",
                        self.max_retry_s, exc)  # fmt: skip
        if not isinstance(exc, StoreError):
            log.error("feature store writer: unexpected error", exc_info=exc)
        self.failures += 1
        self.last_error = exc if isinstance(exc, StoreError) else StoreError(repr(exc))
        with self._cond:
            self._busy = False
            self._cond.notify_all()  # wakes flush(wait=...): nothing comes for a while
            self._cond.wait(delay)  # woken early only by close()

    def _write(self, batch: list[_Upsert], handed_at: float) -> list[SinkRejection]:
        """The valid records of the batch in as few transactions as the data allows."""
        rejected: list[SinkRejection] = []
        clean: list[CleanRecord] | None = None
        try:  # the whole batch at once; only a batch holding a bad record goes one by one
            clean = validate_batch([record for record, _ in batch])
            valid = batch
        except InvalidRecordError:
            valid = []
            for record, source in batch:  # each record validated on its own
                try:
                    validate_batch([record])
                except InvalidRecordError as exc:
                    rejected.append((source, _reason(record, exc.__cause__ or exc)))
                    continue
                valid.append((record, source))
        written = self._isolated(valid, rejected, clean)
        items = [record.id for record, _ in written if record.kind == "item"]
        if items and self.on_written is not None:
            self.on_written(items, self.store.attributes_version(), handed_at)
        return rejected

    def _isolated(self, todo: list[_Upsert], rejected: list[SinkRejection],
                  clean: list[CleanRecord] | None = None) -> list[_Upsert]:  # fmt: skip
        """Write ``todo`` in one transaction; when the database refuses its data, write
        each half on its own (in order) until the refused records are alone.  Returns
        what was written; an outage propagates (the caller retries the whole batch).
        ``clean``: ``todo`` already validated (not validated again)."""
        if not todo:
            return []
        try:
            if clean is not None:
                self.store.upsert_clean(clean)
            else:
                self.store.upsert_entities([record for record, _ in todo])
        except Exception as exc:
            if is_outage(exc):
                raise
            if len(todo) == 1:
                record, source = todo[0]
                rejected.append((source, _reason(record, exc.__cause__ or exc)))
                return []
            half = len(todo) // 2
            return self._isolated(todo[:half], rejected) + self._isolated(todo[half:], rejected)
        return todo


def is_outage(exc: BaseException) -> bool:
    """Whether a write failed because of the database (retry later), not of the data.

    Data errors (the database refuses a value or a constraint) and errors that are not
    the store's (a driver refusing to encode a value) are about the data; every other
    store error (unreachable, read-only, locked, timed out) is an outage.
    """
    if not isinstance(exc, StoreError) or isinstance(exc, InvalidRecordError):
        return False
    return not isinstance(exc.__cause__, DataError | IntegrityError | ProgrammingError)


def _reason(record: EntityRecord, why: object) -> str:
    return f"rejected by the feature store: {record.kind} {record.id[:80]!r}: {why}"


class StoreItemAttributes:
    """:class:`~streamrec.workers.attributes.ItemAttributeSource` served from the SQL store.

    ``get`` returns the store's ``category``, ``available``, ``tags`` (list) and
    ``created_at`` (epoch seconds) over any other attributes the entity events carried
    (kept in memory).  Items the store does not hold yet fall back to the events.

    Attributes this process just applied from an event win until the cache holds the
    store write that carries them (:meth:`confirm`, called by the sink), so a request
    that waited for its own ``item_update`` sees it before the store caught up; then
    the store is the truth again.  Without a confirmation (a replica fed by deltas, a
    rejected record) they win for ``hold_s`` seconds at most.

    ``events`` keeps the attributes carried by entity events (the workers pass their
    in-memory source, which also travels in checkpoints).
    """

    def __init__(
        self,
        store: FeatureStore,
        events: EventAttributes,
        *,
        interval: float = 0.2,
        hold_s: float = 2.0,
    ) -> None:
        self.cache = ItemAttributeCache(store, interval=interval)
        self.hold_s = hold_s
        self._memory = events
        self._recent: dict[str, _Recent] = {}
        self._sweep_at = SWEEP_AT  # entries in _recent that trigger forgetting finished ones
        self._lock = threading.Lock()  # the sink's writer thread confirms entries

    def start(self) -> StoreItemAttributes:
        self.cache.start()
        return self

    def close(self) -> None:
        """Stop the cache's refresh thread."""
        self.cache.stop()

    def update(self, item_id: str, attributes: Mapping[str, Any], created: float) -> None:
        self._memory.update(item_id, attributes, created)
        held = {k: v for k, v in attributes.items() if k in STORE_ATTRIBUTES}
        if not held:
            return
        now = time.monotonic()
        with self._lock:
            old = self._recent.get(item_id)
            if old is not None and self._live(old, now):
                held = {**old.attributes, **held}
            self._recent[item_id] = _Recent(held, now, now + self.hold_s)
            if len(self._recent) > self._sweep_at:  # forget finished entries now and then
                self._recent = {i: e for i, e in self._recent.items() if self._live(e, now)}
                # twice what is left: a bulk onboarding (thousands live at once) sweeps
                # once per doubling, not on every update
                self._sweep_at = max(SWEEP_AT, 2 * len(self._recent))

    def confirm(self, item_ids: Sequence[str], version: int, handed_at: float) -> None:
        """The store holds, as of ``version``, what was applied to ``item_ids`` by ``handed_at``."""
        with self._lock:
            for item_id in item_ids:
                entry = self._recent.get(item_id)
                if entry is not None and entry.applied_at <= handed_at:
                    entry.version = version

    def _live(self, entry: _Recent, now: float) -> bool:
        if entry.version is not None and self.cache.version >= entry.version:
            return False
        return now < entry.expires

    def get(self, item_id: str) -> Mapping[str, Any]:
        stored = self.cache.view(item_id)
        events = self._memory.get(item_id)
        if stored is None:
            return events
        out = {k: v for k, v in events.items() if k not in STORE_ATTRIBUTES}
        out.update(stored)
        recent = self._recent.get(item_id)
        if recent is not None and self._live(recent, time.monotonic()):
            out.update(recent.attributes)
        return out

    def created(self, item_id: str) -> float | None:
        stored = self.cache.get(item_id)
        if stored is not None and stored.created_at is not None:
            return stored.created_at.timestamp()
        return self._memory.created(item_id)

    def to_dict(self) -> dict[str, Any]:
        return self._memory.to_dict()

    def frozen(self) -> Callable[[], dict[str, Any] | np.ndarray]:
        return self._memory.frozen()

    def load_dict(self, values: Mapping[str, Any]) -> None:
        self._memory.load_dict(values)


class _Recent:
    """Store-held attributes an event just set, not yet seen back from the store."""

    __slots__ = ("applied_at", "attributes", "expires", "version")

    def __init__(self, attributes: dict[str, Any], applied_at: float, expires: float) -> None:
        self.attributes = attributes
        self.applied_at = applied_at
        self.expires = expires
        self.version: int | None = None  # the store version that holds them, once written


class StoreCatalog:
    """:class:`~streamrec.workers.checkpoints.EntityCatalog` over the store's entities.

    Items carry the attributes the workers' filters use (``available``, ``category``,
    ``tags``) and their creation time.
    """

    def __init__(self, store: FeatureStore) -> None:
        self.store = store

    def users(self) -> Iterator[tuple[str, dict[str, float]]]:
        return self.store.iter_entity_features("user")

    def items(self) -> Iterator[tuple[str, dict[str, float], dict[str, Any], float | None]]:
        _, attributes = self.store.item_attributes()
        for item_id, features in self.store.iter_entity_features("item"):
            a = attributes.get(item_id)
            meta: dict[str, Any] = dict(a.view()) if a is not None else {}
            created = meta.pop("created_at", None)
            yield item_id, features, meta, created
