"""The PostgreSQL server of the test session.

In this order: ``STREAMREC_TEST_PG_URL``; testcontainers' PostgreSQL module when a Docker
daemon answers; a server on 127.0.0.1:5432; else ``pgserver`` (a PyPI wheel with the
PostgreSQL 16 binaries, started in a temporary directory; as root it runs the server as a
``pgserver`` system user it creates).  When none answers, the PostgreSQL tests fail in CI
(``CI`` set) and are skipped elsewhere.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator

import psycopg
from sqlalchemy.engine import make_url

from tests.brokers import docker_reachable, unavailable

LOCAL_PG = "postgresql+psycopg://root@127.0.0.1:5432/test"


def libpq(url: str) -> str:
    """The psycopg conninfo of a SQLAlchemy URL."""
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def answers(url: str) -> str | None:
    """None when a connection to ``url`` succeeds, else the reason."""
    try:
        psycopg.connect(libpq(url), connect_timeout=3).close()
    except psycopg.OperationalError as exc:
        return str(exc).strip()
    return None


@contextlib.contextmanager
def postgres_server() -> Iterator[str]:
    """A SQLAlchemy URL (``postgresql+psycopg://``) of a reachable PostgreSQL server."""
    explicit = os.environ.get("STREAMREC_TEST_PG_URL")
    if explicit:
        reason = answers(explicit)
        if reason:
            unavailable("PostgreSQL", f"STREAMREC_TEST_PG_URL={explicit} does not answer: {reason}")
        yield explicit
        return
    if docker_reachable():
        from testcontainers.community.postgres import PostgresContainer

        with PostgresContainer("postgres:16-alpine", driver="psycopg") as pg:
            yield pg.get_connection_url()
        return
    if answers(LOCAL_PG) is None:
        yield LOCAL_PG
        return
    with pgserver_url() as url:
        yield url


@contextlib.contextmanager
def pgserver_url() -> Iterator[str]:
    try:
        import pgserver
    except ImportError:
        unavailable("PostgreSQL", "no Docker, nothing on 127.0.0.1:5432, pgserver not installed")
    # not under pytest's tmp dirs: as root, pgserver hands the directory to its own user,
    # who must be able to reach it
    root = tempfile.mkdtemp(prefix="streamrec-pg-")
    try:
        server = pgserver.get_server(root, cleanup_mode="stop")
    except Exception as exc:
        shutil.rmtree(root, ignore_errors=True)
        unavailable("PostgreSQL", f"pgserver did not start: {exc!r}")
    try:
        uri = make_url(server.get_uri())  # postgresql://postgres:@/postgres?host=<socket dir>
        yield uri.set(drivername="postgresql+psycopg").render_as_string(hide_password=False)
    finally:
        server.cleanup()
        shutil.rmtree(root, ignore_errors=True)
