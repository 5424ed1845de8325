"""Schema migrations, run programmatically: alembic scripts ship inside the package.

``upgrade(engine)`` brings a database (empty or older) to the head revision;
``current(engine)`` and ``head()`` name the revisions; ``check(engine)`` lists any
difference between the live schema and the SQLAlchemy models (``alembic check``).
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine

from streamrec.errors import StoreSchemaError
from streamrec.store._engine import write_transaction
from streamrec.store.schema import Base

MIGRATIONS = Path(__file__).with_name("migrations")
#: alembic's ``context`` is a process-global proxy: one migration command at a time per
#: process.  Across processes, the database serialises them (see migrations/env.py).
_ALEMBIC = threading.Lock()


def alembic_config(connection: Connection | None = None) -> Config:
    """An alembic Config pointing at the packaged scripts (no alembic.ini)."""
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    if connection is not None:
        cfg.attributes["connection"] = connection
    return cfg


def head() -> str:
    """The newest revision the code knows."""
    revision = ScriptDirectory.from_config(alembic_config()).get_current_head()
    if revision is None:
        raise StoreSchemaError(f"no migration scripts found under {MIGRATIONS}")
    return revision


def current(engine: Engine) -> str | None:
    """The database's revision, or None for a database never migrated."""
    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def upgrade(engine: Engine, revision: str = "head") -> str | None:
    """Apply migrations up to ``revision`` in one transaction; returns the new revision."""
    with _ALEMBIC, write_transaction(engine) as conn:
        command.upgrade(alembic_config(conn), revision)
    return current(engine)


def downgrade(engine: Engine, revision: str) -> str | None:
    """Revert migrations down to ``revision`` ("base" empties the schema)."""
    with _ALEMBIC, write_transaction(engine) as conn:
        command.downgrade(alembic_config(conn), revision)
    return current(engine)


def differences(engine: Engine) -> list[Any]:
    """Differences between the live schema and the models ([] when they match)."""
    with engine.connect() as conn:
        ctx = MigrationContext.configure(conn, opts={"compare_type": True})
        return list(compare_metadata(ctx, Base.metadata))


def check(engine: Engine) -> None:
    """Raise :class:`StoreSchemaError` unless the database is at head and matches the models."""
    at, want = current(engine), head()
    if at != want:
        raise StoreSchemaError(
            f"database schema is at revision {at or '<empty>'}, the code expects {want}; "
            "run `streamrec db upgrade`"
        )
    diffs = differences(engine)
    if diffs:
        raise StoreSchemaError(f"database schema differs from the models: {diffs}")
