"""The :class:`FeatureStore` facade: one engine, validated batch writes, typed reads."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any, TypeVar

from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError

from streamrec.errors import InvalidInputError, StoreError, StreamrecError
from streamrec.store import _reader, _writer, checkpoints, migrate
from streamrec.store._engine import make_engine, read_transaction, store_error, write_transaction
from streamrec.store.records import (
    KINDS,
    CheckpointInfo,
    CleanRecord,
    EntityKind,
    EntityRecord,
    ItemAttributes,
    WriteResult,
    validate_batch,
)

T = TypeVar("T")


class FeatureStore:
    """Users, items, their features and attributes, and the checkpoint registry, in SQL.

    Open with :meth:`open`; every method is safe to call from several threads (each
    call takes a pooled connection) and several processes (see ``_writer``).
    """

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.url = engine.url.render_as_string(hide_password=True)

    @classmethod
    def open(cls, url: str, *, upgrade: bool = True, **engine_kwargs: Any) -> FeatureStore:
        """Connect to ``url``; migrate to head if ``upgrade``, else require the schema at head."""
        store = cls(make_engine(url, **engine_kwargs))
        try:
            if upgrade:
                store._run(lambda: migrate.upgrade(store.engine))
            else:
                store._run(lambda: migrate.check(store.engine))
        except BaseException:
            store.close()
            raise
        return store

    def close(self) -> None:
        self.engine.dispose()

    def __enter__(self) -> FeatureStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- writes ---------------------------------------------------------------

    def upsert_entities(self, records: Sequence[EntityRecord]) -> WriteResult:
        """Write a batch of onboarding records in ONE transaction, skipping unchanged ones.

        Raises :class:`~streamrec.errors.InvalidRecordError` naming the first bad record;
        then nothing of the batch is written.
        """
        return self.upsert_clean(validate_batch(records))

    def upsert_clean(self, clean: Sequence[CleanRecord]) -> WriteResult:
        """:meth:`upsert_entities` of records ``validate_batch`` already returned."""
        if not clean:
            return WriteResult()

        def write() -> WriteResult:
            with write_transaction(self.engine) as conn:
                return _writer.write_batch(conn, clean)

        return self._run(write)

    # -- reads ----------------------------------------------------------------

    def attributes_version(self) -> int:
        """Cheap change marker of item attributes: grows whenever one changes."""
        return self._read(_reader.attributes_version)

    def item_attributes(self, since: int = 0) -> tuple[int, dict[str, ItemAttributes]]:
        """``(version, {item_id: attributes})``, only items changed after ``since`` if given."""
        return self._read(lambda conn: _reader.item_attributes(conn, since))

    def iter_entity_features(self, kind: str) -> Iterator[tuple[str, dict[str, float]]]:
        """Every user's or item's ``(id, {feature: weight})``, by id, streamed."""
        return self._stream(_kind(kind))

    def _stream(self, kind: EntityKind) -> Iterator[tuple[str, dict[str, float]]]:
        try:
            yield from _reader.iter_entity_features(self.engine, kind)
        except SQLAlchemyError as exc:
            raise self._error(exc) from exc

    def features(self, kind: str, entity_id: str) -> dict[str, float] | None:
        """One entity's stored features, or None if it was never written."""
        k = _kind(kind)
        return self._read(lambda conn: _reader.entity_features(conn, k, entity_id))

    def version(self, kind: str, entity_id: str) -> int | None:
        """How many times the entity was written with a change (None: never written)."""
        k = _kind(kind)
        return self._read(lambda conn: _reader.entity_version(conn, k, entity_id))

    def count(self, kind: str) -> int:
        k = _kind(kind)
        return self._read(lambda conn: _reader.count(conn, k))

    # -- checkpoints ----------------------------------------------------------

    def register_checkpoint(
        self,
        path: str,
        offsets: Mapping[str, Any],
        metrics: Mapping[str, Any] | None = None,
        version: int | None = None,
    ) -> CheckpointInfo:
        """Record a written checkpoint; ``version`` defaults to the latest + 1."""

        def write() -> CheckpointInfo:
            with write_transaction(self.engine) as conn:
                return checkpoints.register(conn, path, offsets, metrics, version)

        return self._run(write)

    def latest_checkpoint(self) -> CheckpointInfo | None:
        return self._read(checkpoints.latest)

    def list_checkpoints(self, limit: int | None = None) -> list[CheckpointInfo]:
        """Registered checkpoints, newest first."""
        return self._read(lambda conn: checkpoints.list_all(conn, limit))

    # -- plumbing -------------------------------------------------------------

    def _read(self, query: Callable[[Any], T]) -> T:
        def run() -> T:
            with read_transaction(self.engine) as conn:
                return query(conn)

        return self._run(run)

    def _run(self, action: Callable[[], T]) -> T:
        try:
            return action()
        except StreamrecError:
            raise
        except SQLAlchemyError as exc:
            raise self._error(exc) from exc

    def _error(self, exc: SQLAlchemyError) -> StoreError:
        return store_error(self.url, exc)


def _kind(kind: str) -> EntityKind:
    if kind not in KINDS:
        raise InvalidInputError(f"unknown entity kind {kind!r}; expected 'user' or 'item'")
    return kind
