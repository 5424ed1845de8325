"""``streamrec db``: migrate and inspect the SQL feature store."""

from __future__ import annotations

import click

from streamrec.settings import Settings

_URL_HELP = (
    "SQLAlchemy URL of the feature store [env: STREAMREC_DATABASE_URL; "
    "default: sqlite:///<data dir>/streamrec.db]."
)
_DATA_HELP = "Directory of the default SQLite file [env: STREAMREC_DATA_DIR; default: ./data]."


def _url(database_url: str | None, data_dir: str | None) -> str:
    return Settings.load({"database_url": database_url, "data_dir": data_dir}).db_url


def _url_options(f: click.decorators.FC) -> click.decorators.FC:
    f = click.option("--data-dir", default=None, help=_DATA_HELP)(f)
    return click.option("--database-url", "database_url", default=None, help=_URL_HELP)(f)


@click.group()
def db() -> None:
    """Schema migrations of the SQL feature store."""


@db.command()
@_url_options
@click.option("--revision", default="head", help="Target revision.")
def upgrade(database_url: str | None, data_dir: str | None, revision: str) -> None:
    """Create or migrate the schema (to the newest revision by default)."""
    from streamrec.store import migrate
    from streamrec.store._engine import engine_for, safe_url

    url = _url(database_url, data_dir)
    with engine_for(url) as engine:
        before = migrate.current(engine)
        after = migrate.upgrade(engine, revision)
    click.echo(f"{safe_url(url)}: {before or '<empty>'} -> {after}")


@db.command()
@_url_options
def current(database_url: str | None, data_dir: str | None) -> None:
    """Print the schema revision of the database and the newest one the code knows."""
    from streamrec.store import migrate
    from streamrec.store._engine import engine_for

    with engine_for(_url(database_url, data_dir)) as engine:
        at = migrate.current(engine)
    head = migrate.head()
    state = "up to date" if at == head else "run `streamrec db upgrade`"
    click.echo(f"current: {at or '<empty>'}  head: {head}  ({state})")


@db.command()
@_url_options
def check(database_url: str | None, data_dir: str | None) -> None:
    """Exit non-zero unless the schema is at head and matches the models."""
    from streamrec.store import migrate
    from streamrec.store._engine import engine_for

    with engine_for(_url(database_url, data_dir)) as engine:
        migrate.check(engine)
    click.echo("schema matches the models")
