"""Checkpoints of the workers: save, register, restore, rebuild from the store, replica bootstrap.

The one place that knows where checkpoint files live and what rides in them besides
the model (:mod:`streamrec.model.checkpoint` writes the model itself, atomically):

- the consumed offsets of the trainer's input topics, so a restart resumes there;
- the offset of the deltas topic at that moment, so a replica that loads the file
  follows the deltas from exactly there;
- the item attributes no other source can give back (:class:`CheckpointedAttributes`).

Without a registry there is one file, ``<data dir>/checkpoints/<prefix>.npz``, replaced
atomically.  With a :class:`CheckpointRegistry` (the SQL store implements it) each
checkpoint is a new versioned file ``<prefix>-v<NNNNNN>.npz`` registered there,
``<prefix>.npz`` is a symlink to the newest (replicas read it), and only the newest
:data:`KEEP_CHECKPOINTS` files are kept.  Without any checkpoint, an
:class:`EntityCatalog` (the store again) gives back every stored user and item so the
trainer can re-onboard them (:func:`rebuild`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from streamrec.errors import StreamrecError
from streamrec.model import HybridModel, load, read_header
from streamrec.model.checkpoint import Snapshot, snapshot
from streamrec.settings import Settings

log = logging.getLogger(__name__)

#: Versioned checkpoint files kept (with a registry).
KEEP_CHECKPOINTS = 3

#: (topic, partition) -> next offset to read.
Offsets = dict[tuple[str, int], int]


class RegisteredCheckpoint(Protocol):
    """A checkpoint as a registry lists it."""

    @property
    def version(self) -> int: ...

    @property
    def path(self) -> str: ...


class CheckpointRegistry(Protocol):
    """Where written checkpoints are recorded (:class:`streamrec.store.FeatureStore`)."""

    def register_checkpoint(self, path: str, offsets: Any, metrics: Any, version: int) -> Any: ...

    def latest_checkpoint(self) -> RegisteredCheckpoint | None: ...

    def list_checkpoints(self, limit: int | None = None) -> Sequence[RegisteredCheckpoint]: ...


#: An item as a catalog holds it: id, features, attributes, creation time (epoch s).
StoredItem = tuple[str, dict[str, float], dict[str, Any], float | None]


class EntityCatalog(Protocol):
    """Every stored user and item (:class:`streamrec.store.adapters.StoreCatalog`)."""

    def users(self) -> Iterator[tuple[str, dict[str, float]]]:
        """``(user id, features)`` of every stored user."""
        ...

    def items(self) -> Iterator[StoredItem]:
        """``(item id, features, attributes, created)`` of every stored item."""
        ...


@dataclass(frozen=True)
class PendingCheckpoint:
    """A checkpoint taken (:meth:`Checkpoints.prepare`) but not yet written."""

    checkpoints: Checkpoints
    snapshot: Snapshot
    offsets: dict[str, dict[str, int]]
    deltas_offset: int
    #: The item attributes as of the copy, built (or their JSON encoded) when written
    #: (None: not checkpointed).
    attributes: Callable[[], dict[str, Any] | np.ndarray] | None = None

    def write(self) -> Path:
        """Write the file (atomic), register it, and point ``checkpoints.path`` at it."""
        return self.checkpoints._write(self)


@dataclass
class Restored:
    """What a checkpoint gives back."""

    model: HybridModel
    path: Path
    offsets: Offsets = field(default_factory=dict)
    deltas_offset: int = 0
    attributes: dict[str, Any] = field(default_factory=dict)
    #: The trainer incarnation that wrote it, and the ``seq`` of its next delta message.
    epoch: str = ""
    next_seq: int = 0
    #: (topic, partition) -> fingerprint of the last consumed record (at offset - 1), so a
    #: restart can tell its topic from a recreated one (``kafka_clients.fingerprint``).
    fingerprints: Offsets = field(default_factory=dict)
    #: (epoch, seq) of the delta just before ``deltas_offset`` (None: unknown), so a
    #: replica can tell the deltas topic from a recreated one.
    last_delta: tuple[str, int] | None = None


class Checkpoints:
    """The checkpoint files of one deployment (settings' data dir and topic prefix)."""

    def __init__(
        self, settings: Settings, deltas_topic: str, registry: CheckpointRegistry | None = None
    ) -> None:
        self.settings = settings
        self.deltas_topic = deltas_topic
        self.registry = registry
        self.folder = settings.data_dir / "checkpoints"
        self.prefix = settings.topic_prefix

    @property
    def path(self) -> Path:
        """The newest checkpoint (with a registry: a link to the newest versioned file)."""
        return self.folder / f"{self.prefix}.npz"

    # ------------------------------------------------------------------ save
    def prepare(
        self,
        model: HybridModel,
        offsets: Mapping[tuple[str, int], int],
        deltas_offset: int,
        attributes: Callable[[], dict[str, Any] | np.ndarray] | None = None,
        epoch: str = "",
        next_seq: int = 0,
        fingerprints: Mapping[tuple[str, int], int] | None = None,
        last_delta: tuple[str, int] | None = None,
    ) -> PendingCheckpoint:
        """A checkpoint of everything as of now: copies (the model may move on once this
        returns), written, registered and made :attr:`path` by
        :meth:`PendingCheckpoint.write` (``checkpoints.prepare(...).write()`` saves at once).

        ``deltas_offset`` is where the deltas after this model start, ``epoch`` and
        ``next_seq`` name the first of them (see :class:`~streamrec.workers.serving.
        follower.DeltaFollower`).  ``attributes`` gives the item attributes as of now
        when called (:meth:`~streamrec.workers.attributes.CheckpointedAttributes.frozen`):
        it is called by the write, so building and encoding them (a third of a second at
        100,000 items) stays off the caller's lock.
        """
        by_topic: dict[str, dict[str, int]] = {}
        for (topic, partition), offset in sorted(offsets.items()):
            by_topic.setdefault(topic, {})[str(partition)] = offset
        extra: dict[str, Any] = {"offsets": by_topic, "deltas": {self.deltas_topic: deltas_offset},
                                 "epoch": epoch, "next_seq": next_seq}  # fmt: skip
        if fingerprints:
            prints: dict[str, dict[str, int]] = {}
            for (topic, partition), value in sorted(fingerprints.items()):
                prints.setdefault(topic, {})[str(partition)] = value
            extra["fingerprints"] = prints
        if last_delta is not None:
            extra["last_delta"] = list(last_delta)
        return PendingCheckpoint(self, snapshot(model, extra), by_topic, deltas_offset, attributes)

    def _write(self, pending: PendingCheckpoint) -> Path:
        snap = pending.snapshot
        more = None if pending.attributes is None else {"attributes": pending.attributes()}
        if self.registry is None:
            return snap.write(self.path, more)
        # the next version of the registry, never overwriting a file of another registry's
        latest = self.registry.latest_checkpoint()
        version = self._next_version(0 if latest is None else latest.version)
        path = snap.write(self._versioned(version), more)
        metrics = {"model_version": snap.version, "events": snap.n_events,
                   "users": snap.n_users, "items": snap.n_items,
                   "deltas_offset": pending.deltas_offset}  # fmt: skip
        self.registry.register_checkpoint(str(path.resolve()), pending.offsets, metrics, version)
        self._link_newest(path)
        return path

    def _versioned(self, version: int) -> Path:
        return self.folder / f"{self.prefix}-v{version:06d}.npz"

    def _versioned_files(self) -> list[Path]:
        """This prefix's versioned checkpoint files, oldest first."""
        return sorted(self.folder.glob(f"{self.prefix}-v[0-9][0-9][0-9][0-9][0-9][0-9].npz"))

    def _next_version(self, registered: int) -> int:
        """The version after ``registered`` and after every file on disk.

        A data directory reused with another database (another registry) keeps its files.
        """
        files = self._versioned_files()
        on_disk = int(files[-1].stem.rsplit("-v", 1)[1]) if files else 0
        return max(registered, on_disk) + 1

    def _link_newest(self, target: Path) -> None:
        """Point :attr:`path` at ``target`` atomically; drop all but the newest files."""
        tmp = self.path.with_name(self.path.name + ".tmp-link")
        tmp.unlink(missing_ok=True)
        tmp.symlink_to(target.name)
        tmp.replace(self.path)
        for old in self._versioned_files()[:-KEEP_CHECKPOINTS]:
            old.unlink(missing_ok=True)

    # --------------------------------------------------------------- restore
    def restore(self) -> Restored | None:
        """The newest readable checkpoint: registered ones first (newest first), then :attr:`path`.

        An unreadable file is logged and skipped; None when there is none.
        """
        candidates: list[Path] = []
        if self.registry is not None:
            listed = self.registry.list_checkpoints(limit=KEEP_CHECKPOINTS + 2)
            candidates = [Path(c.path) for c in listed]
        for path in [*candidates, self.path]:
            if path.exists():
                restored = self.read(path)
                if restored is not None:
                    return restored
        return None

    def latest(self, attributes: bool = True) -> Restored | None:
        """Replica bootstrap: the newest checkpoint the trainer pointed :attr:`path` at
        (``attributes`` False: without the item attributes, left unparsed)."""
        return self.read(self.path, attributes) if self.path.exists() else None

    def stamp(self) -> tuple[int, int] | None:
        """What changes when the trainer points :attr:`path` at a new checkpoint (inode and
        modification time), or None when there is none: a cheap test for a new one."""
        try:
            st = self.path.stat()
        except OSError:
            return None
        return st.st_ino, st.st_mtime_ns

    def latest_position(self) -> tuple[str, int, int] | None:
        """``(epoch, next_seq, deltas offset)`` of the newest checkpoint, from its header
        alone: the delta of seq ``next_seq`` and every later one are at that offset or
        after it, the earlier ones before it."""
        try:
            extra = read_header(self.path).get("extra", {}) if self.path.exists() else None
        except StreamrecError as exc:
            log.error("ignoring checkpoint %s: %s", self.path, exc)
            return None
        if not isinstance(extra, dict):
            return None
        deltas = extra.get("deltas", {})
        offset = int(deltas.get(self.deltas_topic, 0)) if isinstance(deltas, dict) else 0
        return str(extra.get("epoch", "")), int(extra.get("next_seq", 0)), offset

    def read(self, path: Path, attributes: bool = True) -> Restored | None:
        """One checkpoint file, or None (logged) when it cannot be read (``attributes``
        False: without the item attributes, a member parsed only when asked for)."""
        try:
            model = load(path)
            extra = read_header(path, with_members=attributes).get("extra", {})
        except StreamrecError as exc:
            log.error("ignoring checkpoint %s: %s", path, exc)
            return None
        if not isinstance(extra, dict):
            extra = {}
        offsets = {(topic, int(p)): int(o) for topic, parts in extra.get("offsets", {}).items()
                   for p, o in parts.items()}  # fmt: skip
        prints = {(topic, int(p)): int(v) for topic, parts in extra.get("fingerprints", {}).items()
                  for p, v in parts.items()}  # fmt: skip
        deltas = int(extra.get("deltas", {}).get(self.deltas_topic, 0))
        last = extra.get("last_delta")
        last_delta = (
            (str(last[0]), int(last[1])) if isinstance(last, list) and len(last) == 2 else None
        )
        return Restored(model, path, offsets, deltas, dict(extra.get("attributes", {})),
                        str(extra.get("epoch", "")), int(extra.get("next_seq", 0)),
                        prints, last_delta)  # fmt: skip

    def clean(self) -> int:
        """Remove the temporary files a process killed while saving left behind; their count.

        Only the trainer calls it, at start, before it writes (it is the single writer).
        """
        if not self.folder.is_dir():
            return 0
        stale = [*self.folder.glob(f".{self.prefix}.npz.*.tmp"),
                 *self.folder.glob(f".{self.prefix}-v[0-9][0-9][0-9][0-9][0-9][0-9].npz.*.tmp"),
                 *self.folder.glob(f"{self.prefix}.npz.tmp-link")]  # fmt: skip
        for path in stale:
            path.unlink(missing_ok=True)
        if stale:
            log.warning("removed %d temporary checkpoint files left by a killed save: %s",
                        len(stale), ", ".join(p.name for p in stale))  # fmt: skip
        return len(stale)


class Onboarding(Protocol):
    """What re-onboards stored entities (the trainer's core)."""

    def restore_user(self, user_id: str, features: Mapping[str, float]) -> None: ...

    def restore_item(self, item: StoredItem) -> None: ...


def rebuild(catalog: EntityCatalog, target: Onboarding) -> tuple[int, int]:
    """Re-onboard every stored user and item (no checkpoint); returns their counts.

    Known entities keep their cold-start vectors from their stored features; what they
    learned is gone, and the topics are read again from the start.
    """
    users = items = 0
    for user_id, features in catalog.users():
        target.restore_user(user_id, features)
        users += 1
    for item in catalog.items():
        target.restore_item(item)
        items += 1
    return users, items
