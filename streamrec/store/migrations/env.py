"""Alembic environment of the feature store, driven by :mod:`streamrec.store.migrate`.

The caller passes an open connection in ``config.attributes["connection"]``; no
alembic.ini is read.  On PostgreSQL a transaction-scoped advisory lock serialises
concurrent upgrades (several workers starting at once).
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import text

from streamrec.store.schema import Base

#: Arbitrary constant key of the advisory lock taken around migrations.
MIGRATION_LOCK_KEY = 0x5752_4543  # "SREC"


def run_migrations_online() -> None:
    connection = context.config.attributes["connection"]
    context.configure(
        connection=connection,
        target_metadata=Base.metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        if connection.dialect.name == "postgresql":
            connection.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": MIGRATION_LOCK_KEY})
        context.run_migrations()


if context.is_offline_mode():
    raise RuntimeError("streamrec migrations run online only (streamrec db upgrade)")
run_migrations_online()
