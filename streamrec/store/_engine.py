"""Engines from one URL, with the per-dialect settings the store relies on.

SQLite: WAL journal (readers never wait for the writer), a 30 s busy timeout, foreign
keys on, and ``BEGIN IMMEDIATE`` for write transactions so two writers queue on the
lock instead of failing on a read-to-write upgrade.  PostgreSQL: pre-ping pooled
connections; the schema comes from the URL (``?options=-csearch_path%3Dname``).
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, NoSuchModuleError, SQLAlchemyError

from streamrec.errors import ConfigError, StoreError

_WRITE = "streamrec_write"
SQLITE_BUSY_TIMEOUT_S = 30.0


def safe_url(url: str) -> str:
    """``url`` with any password masked, for messages."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return "<unparseable URL>"


def make_engine(url: str, **kwargs: Any) -> Engine:
    """An engine for ``url`` (``sqlite:///path`` or ``postgresql+psycopg://...``)."""
    try:
        parsed = make_url(url)
    except ArgumentError as exc:
        raise ConfigError(
            f"database URL {url!r} is not a SQLAlchemy URL (set STREAMREC_DATABASE_URL, "
            "e.g. sqlite:///data/streamrec.db or postgresql+psycopg://user@host/db)"
        ) from exc
    backend = parsed.get_backend_name()
    if backend not in ("sqlite", "postgresql"):
        raise ConfigError(f"database URL {safe_url(url)}: only sqlite and postgresql are supported")
    if backend == "sqlite" and parsed.database in (None, "", ":memory:"):
        raise ConfigError(
            f"database URL {url!r}: the store needs a SQLite file (sqlite:///path/to.db), "
            "an in-memory database is private to one connection"
        )
    if backend == "sqlite":
        Path(str(parsed.database)).parent.mkdir(parents=True, exist_ok=True)
    try:
        if backend == "sqlite":
            kwargs.setdefault("connect_args", {"timeout": SQLITE_BUSY_TIMEOUT_S})
            engine = create_engine(parsed, **kwargs)
            _configure_sqlite(engine)
        else:
            kwargs.setdefault("pool_pre_ping", True)
            engine = create_engine(parsed, **kwargs)
    except (ArgumentError, NoSuchModuleError, ImportError) as exc:
        raise ConfigError(f"cannot create an engine for {safe_url(url)}: {exc}") from exc
    return engine


def _configure_sqlite(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        # Take transaction control from the sqlite3 module; "begin" below emits BEGIN.
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        _set_wal(cur)
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        immediate = conn.get_execution_options().get(_WRITE, False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


def _set_wal(cur: Any) -> None:
    """``PRAGMA journal_mode=WAL``, retried: switching a new file's journal mode needs an
    exclusive lock and SQLite answers "database is locked" at once, without the busy
    timeout, while another process (two workers starting together) holds one."""
    deadline = time.monotonic() + SQLITE_BUSY_TIMEOUT_S
    delay = 0.01
    while True:
        try:
            cur.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() + delay > deadline:
                raise
            time.sleep(delay)
            delay = min(delay * 2, 0.5)


@contextmanager
def write_transaction(engine: Engine) -> Iterator[Connection]:
    """One write transaction: committed on success, rolled back on any exception."""
    with engine.connect() as conn:
        conn.execution_options(**{_WRITE: True})
        with conn.begin():
            yield conn


@contextmanager
def read_transaction(engine: Engine) -> Iterator[Connection]:
    """One read transaction (a consistent snapshot on SQLite; statement-level on PG)."""
    with engine.connect() as conn, conn.begin():
        yield conn


def store_error(url: str, exc: SQLAlchemyError) -> StoreError:
    """A :class:`StoreError` saying which database failed and how."""
    detail = str(exc.orig) if isinstance(exc, DBAPIError) else str(exc)
    return StoreError(
        f"feature store {safe_url(url)}: {type(exc).__name__}: {detail.strip()} "
        "(check STREAMREC_DATABASE_URL and that the database is reachable)"
    )


@contextmanager
def engine_for(url: str) -> Iterator[Engine]:
    """An engine disposed on exit; SQLAlchemy errors inside become :class:`StoreError`."""
    engine = make_engine(url)
    try:
        yield engine
    except SQLAlchemyError as exc:
        raise store_error(url, exc) from exc
    finally:
        engine.dispose()
