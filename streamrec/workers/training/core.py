"""Applying decoded trainer input to the model, without a broker.

:func:`decode_batch` decodes a fetched batch into one list ordered by producer time
across partitions; :class:`TrainerCore` applies it: runs of interactions become one
``learn_rows`` call each, entity events onboard or re-feature users and items (and go
to the feature store's sink), and bad records come back as dead letters.

Every record is checked whole (size, schema, :class:`~streamrec.stream.limits.InputLimits`,
the model's own rules) before anything of it is applied, so a rejected record leaves no
trace and never affects its neighbours; an event the kernel cannot learn (a diverging
update) is dead-lettered and the rest of its run is learned; any other failure of one
record is dead-lettered with the error instead of escaping the worker.
"""

from __future__ import annotations

import heapq
import logging
import math
import time
from collections.abc import Mapping
from typing import Any, NamedTuple

import numpy as np

from streamrec.errors import InvalidInputError, ModelDivergedError
from streamrec.model import HybridModel
from streamrec.model.config import MAX_ID_LENGTH
from streamrec.model.features import check_id, forbidden_character
from streamrec.stream.codec import Rejected, decode, decode_many
from streamrec.stream.dead_letters import dead_letter
from streamrec.stream.limits import MAX_TS, InputLimits
from streamrec.stream.records import Record
from streamrec.stream.schemas import (
    DeadLetter,
    Interaction,
    ItemMeta,
    ItemUpdate,
    NewItem,
    NewUser,
    TrainerInput,
    UserUpdate,
)
from streamrec.workers.attributes import CheckpointedAttributes
from streamrec.workers.checkpoints import StoredItem
from streamrec.workers.deltas import DeltaTracker
from streamrec.workers.state import ModelState
from streamrec.workers.training.sinks import EntitySink, EntityUpsert

log = logging.getLogger(__name__)
WORKER = "trainer"
#: Shortest run of interactions checked and queued as a whole (shorter: one by one).
MIN_RUN = 8


class TrainerCore:
    """The broker-free part: apply decoded records to the model, collect dead letters."""

    def __init__(
        self,
        state: ModelState,
        sink: EntitySink,
        tracker: DeltaTracker,
        limits: InputLimits | None = None,
        threads: int = 1,
    ) -> None:
        self.state = state
        self.sink = sink
        self.tracker = tracker
        self.limits = limits or InputLimits.from_settings()
        #: threads a large run of interactions is learned on (``learn_threads``)
        self.threads = threads
        self._u: list[int] = []
        self._i: list[int] = []
        self._w: list[float] = []
        self._src: list[Record] = []  # the record behind each pending interaction
        #: items created or re-featured since the last notice: the indexer learns of them
        #: in one call (their representations computed at once), before anything is learned
        self._changed: list[int] = []
        self._dead: list[DeadLetter] = []

    @property
    def model(self) -> HybridModel:
        return self.state.model

    def apply(self, records: list[Decoded]) -> list[DeadLetter]:
        """Apply decoded records (see :func:`decode_batch`) in the given order.

        Runs of interactions that pass every check at once (:meth:`_valid_run`) are
        applied together; any other record (or a run holding a doubtful one) takes the
        record-by-record path, which gives each record its own verdict.  Both paths leave
        the same model, the same upserts and the same dead letters.
        """
        start = 0
        n = len(records)
        while start < n:
            end = start
            while end < n and type(records[end].message) is Interaction:
                end += 1
            if end - start >= MIN_RUN and self._interaction_run(records[start:end]):
                start = end
                continue
            end = max(end, start + 1)
            for decoded in records[start:end]:
                self._one(decoded)
            start = end
        self._flush()
        self._tell_changed()
        dead, self._dead = self._dead, []
        return dead

    def _tell_changed(self) -> None:
        """The items created or re-featured since the last notice, in one notice (their
        representations are read now: nothing was learned meanwhile, so they are the
        ones a notice per item gave)."""
        if self._changed:
            changed, self._changed = self._changed, []
            self.state.items_changed(changed)

    def _one(self, decoded: Decoded) -> None:
        """Check and apply one record; a refused one becomes a dead letter."""
        msg = decoded.message
        try:
            if isinstance(msg, Rejected):
                raise msg
            self.limits.check_size(decoded.record.value)
            self.limits.check_trainer_input(msg)
            if isinstance(msg, Interaction):
                self._interaction(msg, decoded.record)
            else:
                self._flush()
                self._entity(msg, decoded.record)
        except (Rejected, InvalidInputError) as exc:
            reason = exc.reason if isinstance(exc, Rejected) else f"rejected by the model: {exc}"
            self._dead.append(dead_letter(reason, decoded.record, WORKER))
        except Exception as exc:  # a bug must not stop the worker nor lose the record
            log.exception("applying %s@%s failed", decoded.record.topic, decoded.record.offset)
            self._dead.append(dead_letter(f"internal error while applying it: "
                                          f"{type(exc).__name__}: {exc}", decoded.record,
                                          WORKER))  # fmt: skip

    def _interaction_run(self, run: list[Decoded]) -> bool:
        """Queue a run of interactions for learning at once, if every one of them passes
        every check (False, and nothing done, when one might not)."""
        msgs: list[Interaction] = [d.message for d in run]  # type: ignore[misc]
        users = [m.user for m in msgs]
        items = [m.item for m in msgs]
        weights = self._valid_run(run, msgs, users, items)
        if weights is None:
            return False
        model = self.model
        urows = model.user_rows_of(users)
        irows = model.item_rows_of(items)
        if -1 in urows or -1 in irows:  # onboard new ones in event order, as one by one
            for k in range(len(msgs)):
                if urows[k] < 0:
                    urows[k] = self._row("user", users[k])
                if irows[k] < 0:
                    irows[k] = self._row("item", items[k])
        self._u += urows
        self._i += irows
        self._w += weights
        self._src += [d.record for d in run]
        return True

    def _valid_run(self, run: list[Decoded], msgs: list[Interaction], users: list[str],
                   items: list[str]) -> list[float] | None:  # fmt: skip
        """The weights of a run of interactions when none of them can be refused (by the
        input limits or the model), else None.  Whole-run checks, each implying the
        record-by-record ones."""
        limits = self.limits
        if max([len(d.record.value or b"") for d in run]) > limits.max_message_bytes:
            return None
        stamps = [m.ts for m in msgs]
        if not all(map(math.isfinite, stamps)) or min(stamps) < 0.0 or max(stamps) > MAX_TS:
            return None
        longest = min(limits.max_id_length, MAX_ID_LENGTH)
        for ids in (users, items):
            lengths = list(map(len, ids))
            if min(lengths) == 0 or max(lengths) > longest or any(map(str.isspace, ids)):
                return None
            if forbidden_character("".join(ids)) is not None:
                return None
        known: dict[str, float] = {}
        for kind in {m.type for m in msgs}:
            try:
                limits.check_event_type(kind)
                known[kind] = self.model.event_weight(kind)
            except (Rejected, InvalidInputError):
                return None
        return [known[m.type] for m in msgs]

    def _row(self, kind: str, entity_id: str) -> int:
        m = self.model
        row = m.user_row(entity_id) if kind == "user" else m.item_row(entity_id)
        if row >= 0:
            return row
        if kind == "user":
            row = m.add_user(entity_id)
            self.sink.upsert(EntityUpsert("user", entity_id, ts=time.time()))
        else:
            row = m.add_item(entity_id)
            now = time.time()
            self.state.attributes.update(entity_id, {}, now)
            self.tracker.item_meta(entity_id, ItemMeta({}, now))
            self.sink.upsert(EntityUpsert("item", entity_id, None, {"created_at": now}, now))
            self._changed.append(row)
        return row

    def _interaction(self, msg: Interaction, source: Record) -> None:
        # everything that can refuse the event first: nothing is onboarded for a bad one
        weight = self.model.event_weight(msg.type)
        check_id("user", msg.user)
        check_id("item", msg.item)
        user = self._row("user", msg.user)
        item = self._row("item", msg.item)
        self._u.append(user)
        self._i.append(item)
        self._w.append(weight)
        self._src.append(source)

    def _flush(self) -> None:
        """Learn the pending run of interactions (telling of the changed items first); an
        event the kernel refuses is dead-lettered, and every other one learned."""
        if not self._src:
            return
        self._tell_changed()
        users = np.array(self._u, dtype=np.int32)
        items = np.array(self._i, dtype=np.int32)
        weights = np.array(self._w, dtype=np.float32)
        sources = self._src
        self._u, self._i, self._w, self._src = [], [], [], []
        try:
            self.model.learn_rows(users, items, weights, threads=self.threads)
        except ModelDivergedError as exc:
            log.error("events not learned: %s", exc)
            for bad in exc.events or range(len(sources)):
                self._dead.append(dead_letter(f"the model diverged on it (not learned): {exc}",
                                              sources[bad], WORKER))  # fmt: skip
        except Exception as exc:  # a bug: the run is not learned, and says so
            log.exception("learning %d events failed", len(sources))
            reason = f"internal error while learning it: {type(exc).__name__}: {exc}"
            self._dead += [dead_letter(reason, r, WORKER) for r in sources]

    def _entity(self, msg: Any, source: Record) -> None:
        m = self.model
        ts = msg.ts or time.time()
        if isinstance(msg, NewUser | UserUpdate):
            m.add_user(msg.user, msg.features)
            self.sink.upsert(EntityUpsert("user", msg.user, msg.features, ts=ts), source)
        elif isinstance(msg, NewItem | ItemUpdate):
            new = not m.has_item(msg.item)
            row = m.add_item(msg.item, msg.features)
            self.state.attributes.update(msg.item, msg.attributes, ts)
            created = self.state.attributes.created(msg.item) or ts
            self.tracker.item_meta(msg.item, ItemMeta(dict(msg.attributes), created))
            # the store learns the creation time once, from the event that created the item
            stored = {"created_at": ts, **msg.attributes} if new else msg.attributes
            self.sink.upsert(EntityUpsert("item", msg.item, msg.features, stored, ts), source)
            self._changed.append(row)

    # -- re-onboarding from the entity catalog (no checkpoint; see workers.checkpoints) --
    def restore_user(self, user_id: str, features: Mapping[str, float]) -> None:
        self.model.add_user(user_id, features)

    def restore_item(self, item: StoredItem) -> None:
        item_id, features, attributes, created = item
        self.model.add_item(item_id, features)
        when = created or time.time()
        self.tracker.item_meta(item_id, ItemMeta(attributes, when))
        attrs = self.state.attributes
        if isinstance(attrs, CheckpointedAttributes):  # as from a checkpoint: no news
            attrs.load_dict({item_id: {"attributes": attributes, "created": when}})
        else:
            attrs.update(item_id, attributes, when)


class Decoded(NamedTuple):
    """A consumed record, its message (or why it was rejected) and its producer time."""

    ts: float
    record: Record
    message: TrainerInput | Rejected


def decode_record(record: Record) -> Decoded:
    """One record decoded, with its producer time (or the reason it was rejected)."""
    try:
        msg = decode(record.value, TrainerInput)
    except Rejected as exc:
        return Decoded(record.timestamp_ms / 1000.0, record, exc)
    return Decoded(msg.ts or record.timestamp_ms / 1000.0, record, msg)


def decode_records(records: list[Record]) -> list[Decoded]:
    """:func:`decode_record` of every record, the values decoded as one batch."""
    messages = decode_many([r.value for r in records], TrainerInput)
    new = tuple.__new__
    return [new(Decoded, ((m.ts if type(m) is not Rejected else 0.0) or r.timestamp_ms / 1000.0,
                          r, m))
            for r, m in zip(records, messages, strict=True)]  # fmt: skip


def decode_batch(partitions: list[list[Record]]) -> list[Decoded]:
    """Decode a whole batch into one list ordered by producer time across partitions.

    Each partition keeps its own order (``heapq.merge`` never reorders within an input),
    so a user's events stay in order while a new item's event lands before the clicks
    published after it on other partitions.
    """
    streams = [decode_records(records) for records in partitions]
    if len(streams) == 1:
        return streams[0]
    return list(heapq.merge(*streams, key=lambda d: d.ts))


def merge_by_time(streams: list[list[Decoded]]) -> list[Decoded] | None:
    """The records of ``streams`` in the order :meth:`Trainer._release` gives them (the
    head with the smallest producer time first, ties to the earlier stream), computed
    with one stable sort; None when a stream is not in producer-time order itself (then
    the sort would not be that order)."""
    stamps = [np.fromiter((d.ts for d in s), dtype=np.float64, count=len(s)) for s in streams]
    for ts in stamps:
        if np.isnan(ts).any() or not bool(np.all(ts[1:] >= ts[:-1])):
            return None
    flat = [d for s in streams for d in s]
    order = np.argsort(np.concatenate(stamps), kind="stable")
    return [flat[k] for k in order.tolist()]
