"""Migrations from empty to head, models == migrations, and the ``streamrec db`` commands."""

from __future__ import annotations

import threading

import pytest
from click.testing import CliRunner
from sqlalchemy import inspect

from streamrec.cli import _register, cli
from streamrec.errors import StoreSchemaError
from streamrec.store import FeatureStore, migrate
from streamrec.store._engine import engine_for
from streamrec.store.schema import Base

TABLES = {
    "checkpoints",
    "feature_definitions",
    "item_features",
    "items",
    "store_counters",
    "user_features",
    "users",
}


def test_empty_to_head_matches_the_models(db_url: str) -> None:
    with engine_for(db_url) as engine:
        assert migrate.current(engine) is None
        assert migrate.upgrade(engine) == migrate.head()
        assert set(inspect(engine).get_table_names()) >= TABLES
        assert set(Base.metadata.tables) == TABLES
        assert migrate.differences(engine) == []  # `alembic check`: nothing to autogenerate
        migrate.check(engine)


def test_downgrade_to_base_and_back(db_url: str) -> None:
    with engine_for(db_url) as engine:
        migrate.upgrade(engine)
        assert migrate.downgrade(engine, "base") is None
        assert not TABLES & set(inspect(engine).get_table_names())
        assert migrate.upgrade(engine) == migrate.head()
        assert migrate.differences(engine) == []


def test_open_without_upgrade_requires_the_schema(db_url: str) -> None:
    with pytest.raises(StoreSchemaError, match="streamrec db upgrade"):
        FeatureStore.open(db_url, upgrade=False)
    FeatureStore.open(db_url).close()
    FeatureStore.open(db_url, upgrade=False).close()


def test_concurrent_start_ups_migrate_once(db_url: str) -> None:
    errors: list[BaseException] = []
    barrier = threading.Barrier(3)

    def start() -> None:
        try:
            barrier.wait()
            FeatureStore.open(db_url).close()
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=start) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    with engine_for(db_url) as engine:
        migrate.check(engine)


def test_db_commands(db_url: str) -> None:
    _register()
    runner = CliRunner()
    env = {"STREAMREC_DATABASE_URL": db_url}

    out = runner.invoke(cli, ["db", "current"], env=env)
    assert out.exit_code == 0, out.output
    assert "current: <empty>" in out.output

    out = runner.invoke(cli, ["db", "upgrade"], env=env)
    assert out.exit_code == 0, out.output
    assert f"<empty> -> {migrate.head()}" in out.output

    out = runner.invoke(cli, ["db", "check", "--database-url", db_url])
    assert out.exit_code == 0, out.output
    assert "up to date" in runner.invoke(cli, ["db", "current"], env=env).output


def test_db_help_names_the_environment_variable() -> None:
    _register()
    out = CliRunner().invoke(cli, ["db", "upgrade", "--help"])
    assert "STREAMREC_DATABASE_URL" in out.output
