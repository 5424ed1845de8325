"""Backends of the store suite: every test using ``db_url`` runs on SQLite and PostgreSQL.

PostgreSQL (``pg_base_url`` in tests/conftest.py, from tests/databases.py): STREAMREC_TEST_PG_URL, else a testcontainers server when
a Docker daemon answers, else the server on 127.0.0.1:5432, else pgserver; unreachable ->
a failure in CI, skipped with the reason elsewhere.  Each test gets its own schema
(``search_path`` set in the URL), dropped after, so concurrent runs against the same
database do not meet.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from sqlalchemy.engine import make_url

from streamrec.store import FeatureStore
from tests.databases import libpq as _libpq


def pg_schema_url(base: str, schema: str) -> str:
    return (
        make_url(base)
        .update_query_dict({"options": f"-csearch_path={schema}"})
        .render_as_string(hide_password=False)
    )


@pytest.fixture
def pg_url(pg_base_url: str) -> Iterator[str]:
    """A URL whose connections live in a fresh schema, dropped after the test."""
    schema = f"streamrec_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(_libpq(pg_base_url), autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    try:
        yield pg_schema_url(pg_base_url, schema)
    finally:
        with psycopg.connect(_libpq(pg_base_url), autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An empty database: a SQLite file under tmp_path, or a fresh PostgreSQL schema."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'store.db'}"
    url: str = request.getfixturevalue("pg_url")
    return url


@pytest.fixture
def store(db_url: str) -> Iterator[FeatureStore]:
    with FeatureStore.open(db_url) as s:
        yield s
