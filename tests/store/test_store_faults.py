"""The store writer under bad records and outages, on SQLite and PostgreSQL.

Bad records are isolated from their batch (validated one by one; a batch the database
refuses is split until the refused record is alone) and come back as rejections with
the reason; an outage keeps the batch queued and is retried with backoff, ``flush``
does not wait for writes that cannot happen meanwhile, and the writer thread survives
every exception.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from sqlalchemy import create_engine

from streamrec.errors import InvalidRecordError
from streamrec.store import EntityRecord, FeatureStore
from streamrec.store.adapters import StoreEntitySink
from streamrec.workers.training.sinks import EntityUpsert
from tests.databases import libpq
from tests.store.helpers import items, users


def _upsert(kind: str, entity_id: str, features: Any = None, **attributes: Any) -> EntityUpsert:
    return EntityUpsert(kind, entity_id, features, attributes)  # type: ignore[arg-type]


@pytest.fixture
def sink(store: FeatureStore) -> Iterator[StoreEntitySink]:
    s = StoreEntitySink(store, retry_s=0.05, max_retry_s=0.2).start()
    yield s
    s.close(timeout=5)


def _drain(sink: StoreEntitySink) -> list[tuple[Any, str]]:
    """Every rejection once the queue is written (after an outage: once a retry succeeds;
    flush does not wait while the last attempt failed)."""
    rejected = sink.flush(wait=60)
    pause = threading.Event()
    while sink.pending():
        pause.wait(0.02)
        rejected += sink.flush(wait=60)
    return rejected + sink.flush(wait=60)


@pytest.mark.parametrize("bad_id", ["a\x00b", "tab\there", "\x7f", "sur\ud800rogate"])
def test_control_characters_in_ids_are_rejected_before_any_sql(
    store: FeatureStore, bad_id: str
) -> None:
    with pytest.raises(InvalidRecordError, match="control character"):
        store.upsert_entities([EntityRecord("user", "ok"), EntityRecord("user", bad_id)])
    with pytest.raises(InvalidRecordError, match="control character"):
        store.upsert_entities([EntityRecord("item", "ok", [f"genre{bad_id}"])])
    assert store.count("user") == 0


def test_a_nul_id_is_dead_lettered_and_its_batch_written(
    store: FeatureStore, sink: StoreEntitySink
) -> None:
    sink.upsert(_upsert("user", "u1", ["a"]), source="m1")
    sink.upsert(_upsert("user", "evil\x00id", ["a"]), source="m2")
    sink.upsert(_upsert("item", "i1", ["b"], available=True), source="m3")
    rejected = _drain(sink)
    assert [source for source, _ in rejected] == ["m2"]
    assert "control character" in rejected[0][1] and "evil" in rejected[0][1]
    assert store.features("user", "u1") == {"a": 1.0} and store.count("item") == 1
    # the writer goes on: the next batch is written
    sink.upsert(_upsert("user", "u2", ["c"]), source="m4")
    assert _drain(sink) == [] and store.count("user") == 2


def test_5000_invalid_records_in_one_batch_are_isolated(
    store: FeatureStore, sink: StoreEntitySink
) -> None:
    good = users(50) + items(50)
    for n, record in enumerate(good):
        sink.upsert(_upsert(record.kind, record.id, record.features), source=f"good{n}")
        for k in range(50):  # 5,000 bad ones, interleaved
            bad = ("user", f"nul\x00{n}-{k}", None, {}) if k % 2 else ("item", f"i{n}", None,
                                                                        {"available": "maybe"})  # fmt: skip
            sink.upsert(_upsert(bad[0], bad[1], bad[2], **bad[3]), source=f"bad{n}-{k}")
    rejected = _drain(sink)
    assert len(rejected) == 5000
    assert {source for source, _ in rejected} == {f"bad{n}-{k}" for n in range(100)
                                                  for k in range(50)}  # fmt: skip
    assert store.count("user") == 50 and store.count("item") == 50
    assert sink.batches_written == 1


@pytest.fixture
def poison(store: FeatureStore, db_url: str) -> str:
    """A database that refuses (in a trigger) any user whose id starts with 'poison'."""
    if db_url.startswith("sqlite"):
        with store.engine.begin() as conn:
            conn.exec_driver_sql(
                "CREATE TRIGGER refuse_poison BEFORE INSERT ON users "
                "WHEN NEW.id LIKE 'poison%' BEGIN SELECT RAISE(ABORT, 'poisoned id'); END"
            )
        return "sqlite"
    with store.engine.begin() as conn:
        conn.exec_driver_sql(
            "CREATE FUNCTION refuse_poison() RETURNS trigger AS $$ BEGIN "
            "IF starts_with(NEW.id, 'poison') THEN RAISE EXCEPTION 'poisoned id' USING ERRCODE = '22000'; "
            "END IF; RETURN NEW; END $$ LANGUAGE plpgsql"
        )
        conn.exec_driver_sql(
            "CREATE TRIGGER refuse_poison BEFORE INSERT ON users "
            "FOR EACH ROW EXECUTE FUNCTION refuse_poison()"
        )
    return "postgresql"


def test_records_the_database_refuses_are_bisected_out_of_their_batch(
    store: FeatureStore, sink: StoreEntitySink, poison: str
) -> None:
    ids = [f"poison{k}" if k in (3, 64, 65, 199) else f"u{k}" for k in range(200)]
    for k, entity_id in enumerate(ids):
        sink.upsert(_upsert("user", entity_id, [f"f{k % 7}"]), source=k)
    rejected = _drain(sink)
    assert sorted(source for source, _ in rejected) == [3, 64, 65, 199]
    assert all("poisoned id" in reason for _, reason in rejected)
    assert store.count("user") == 196
    assert store.features("user", "u198") == {"f2": 1.0}


def test_the_writer_survives_any_exception(
    store: FeatureStore, sink: StoreEntitySink, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = store.upsert_entities

    def upsert(records: list[EntityRecord]) -> Any:
        if any(r.id == "boom" for r in records):
            raise RuntimeError("driver exploded")
        return real(records)

    real_clean = store.upsert_clean

    def upsert_clean(records: list[Any]) -> Any:  # the sink's path for a validated batch
        if any(r.id == "boom" for r in records):
            raise RuntimeError("driver exploded")
        return real_clean(records)

    monkeypatch.setattr(store, "upsert_entities", upsert)
    monkeypatch.setattr(store, "upsert_clean", upsert_clean)
    for entity_id in ("a", "boom", "b"):
        sink.upsert(_upsert("user", entity_id), source=entity_id)
    rejected = _drain(sink)
    assert rejected == [("boom", "rejected by the feature store: user 'boom': driver exploded")]
    assert store.count("user") == 2
    assert sink._thread is not None and sink._thread.is_alive() and not sink._busy


def _dead_engine(db_url: str) -> Any:
    if db_url.startswith("sqlite"):  # a file in a directory that does not exist
        return create_engine("sqlite:////nonexistent-streamrec-dir/none/store.db")
    import socket

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return create_engine(f"postgresql+psycopg://nobody@127.0.0.1:{port}/none",
                         connect_args={"connect_timeout": 2})  # fmt: skip


def test_an_outage_is_retried_with_backoff_and_the_backlog_drains(
    store: FeatureStore, sink: StoreEntitySink, db_url: str
) -> None:
    live = store.engine
    store.engine = _dead_engine(db_url)
    try:
        for n in range(5):  # five trainer batches during the outage
            sink.upsert(_upsert("user", f"u{n}", [f"f{n}"]), source=n)
            sink.upsert(_upsert("user", f"bad\x00{n}"), source=f"bad{n}")
            # returns once the write failed: nothing can be written meanwhile (a wait for
            # the writes would run into the test's timeout)
            assert sink.flush(wait=3600) == []
            assert sink.last_error is not None
        pause = threading.Event()
        while sink.failures < 3:  # retried, with growing delays
            pause.wait(0.05)
        assert sink.pending() == 10 and sink._thread is not None and sink._thread.is_alive()
    finally:
        store.engine.dispose()
        store.engine = live
    rejected = _drain(sink)  # back: the backlog drains, bad records still isolated
    assert sorted(map(str, (s for s, _ in rejected))) == [f"bad{n}" for n in range(5)]
    assert store.count("user") == 5 and sink.last_error is None and sink.failures == 0


@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)  # SQLite text holds NUL
def test_postgresql_nul_without_validation_is_a_data_error_not_an_outage(
    db_url: str, store: FeatureStore, sink: StoreEntitySink, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The original bug: PostgreSQL refuses NUL in text (DataError) and the batch was
    retried forever.  With validation out of the way, the database's own refusal is
    isolated too (SQLite stores NUL, so this is PostgreSQL's)."""
    assert db_url.startswith("postgresql")
    import streamrec.store.records as records

    monkeypatch.setattr(records, "check_id", lambda kind, value: value)
    sink.upsert(_upsert("user", "ok"), source="ok")
    sink.upsert(_upsert("user", "a\x00b"), source="nul")
    rejected = _drain(sink)
    assert [s for s, _ in rejected] == ["nul"] and "NUL" in rejected[0][1]
    assert store.count("user") == 1
    with psycopg.connect(libpq(db_url)) as conn:  # the server is fine
        assert conn.execute("select 1").fetchone() == (1,)
