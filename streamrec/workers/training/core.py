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
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from streamrec.errors import InvalidInputError, ModelDivergedError
from streamrec.model import HybridModel
from streamrec.model.features import check_id
from streamrec.stream.codec import Rejected, decode
from streamrec.stream.dead_letters import dead_letter
from streamrec.stream.limits import InputLimits
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


class TrainerCore:
    """The broker-free part: apply decoded records to the model, collect dead letters."""

    def __init__(
        self,
        state: ModelState,
        sink: EntitySink,
        tracker: DeltaTracker,
        limits: InputLimits | None = None,
    ) -> None:
        self.state = state
        self.sink = sink
        self.tracker = tracker
        self.limits = limits or InputLimits()
        self._u: list[int] = []
        self._i: list[int] = []
        self._w: list[float] = []
        self._src: list[Record] = []  # the record behind each pending interaction
        self._dead: list[DeadLetter] = []

    @property
    def model(self) -> HybridModel:
        return self.state.model

    def apply(self, records: list[Decoded]) -> list[DeadLetter]:
        """Apply decoded records (see :func:`decode_batch`) in the given order."""
        for decoded in records:
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
                reason = (
                    exc.reason if isinstance(exc, Rejected) else f"rejected by the model: {exc}"
                )
                self._dead.append(dead_letter(reason, decoded.record, WORKER))
            except Exception as exc:  # a bug must not stop the worker nor lose the record
                log.exception("applying %s@%s failed", decoded.record.topic, decoded.record.offset)
                self._dead.append(dead_letter(f"internal error while applying it: "
                                              f"{type(exc).__name__}: {exc}", decoded.record,
                                              WORKER))  # fmt: skip
        self._flush()
        dead, self._dead = self._dead, []
        return dead

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
            self.state.items_changed([row])
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
        """Learn the pending run of interactions; an event the kernel refuses is
        dead-lettered and the events after it are learned."""
        users = np.array(self._u, dtype=np.int32)
        items = np.array(self._i, dtype=np.int32)
        weights = np.array(self._w, dtype=np.float32)
        sources = self._src
        self._u, self._i, self._w, self._src = [], [], [], []
        start = 0
        while start < len(sources):
            try:
                self.model.learn_rows(users[start:], items[start:], weights[start:])
                return
            except ModelDivergedError as exc:
                bad = start + exc.event if exc.event is not None else len(sources) - 1
                log.error("event not learned: %s", exc)
                self._dead.append(dead_letter(f"the model diverged on it (not learned): {exc}",
                                              sources[bad], WORKER))  # fmt: skip
                start = bad + 1
            except Exception as exc:  # a bug: the run is not learned, and says so
                log.exception("learning %d events failed", len(sources) - start)
                reason = f"internal error while learning it: {type(exc).__name__}: {exc}"
                self._dead += [dead_letter(reason, r, WORKER) for r in sources[start:]]
                return

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
            self.state.items_changed([row])

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


@dataclass(frozen=True, slots=True)
class Decoded:
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


def decode_batch(partitions: list[list[Record]]) -> list[Decoded]:
    """Decode a whole batch into one list ordered by producer time across partitions.

    Each partition keeps its own order (``heapq.merge`` never reorders within an input),
    so a user's events stay in order while a new item's event lands before the clicks
    published after it on other partitions.
    """
    streams = [[decode_record(r) for r in records] for records in partitions]
    if len(streams) == 1:
        return streams[0]
    return list(heapq.merge(*streams, key=lambda d: d.ts))
