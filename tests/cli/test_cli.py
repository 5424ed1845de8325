"""The CLI: every command is registered and documents its environment variables."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from streamrec.cli import _register, cli


@pytest.fixture(scope="module")
def runner() -> CliRunner:
    _register()
    return CliRunner()


def test_commands_are_registered(runner: CliRunner) -> None:
    out = runner.invoke(cli, ["--help"]).output
    for name in ("up", "worker", "publish", "recommend", "replay", "demo", "evaluate"):
        assert name in out


@pytest.mark.parametrize(
    "args", [["up"], ["worker"], ["publish", "item"], ["recommend"], ["replay"]]
)
def test_help_names_environment_variables(runner: CliRunner, args: list[str]) -> None:
    result = runner.invoke(cli, [*args, "--help"])
    assert result.exit_code == 0
    assert "STREAMREC_BOOTSTRAP" in result.output


def test_recommend_without_a_broker_says_what_to_do(runner: CliRunner, tmp_path: object) -> None:
    from streamrec.errors import BrokerError

    result = runner.invoke(cli, ["recommend", "u1", "--data-dir", str(tmp_path)],
                           env={"STREAMREC_BOOTSTRAP": ""})  # fmt: skip
    assert isinstance(result.exception, BrokerError)
    assert "streamrec up" in str(result.exception)


@pytest.mark.parametrize("args", [["up"], ["worker"]])
def test_workers_take_the_feature_store_url(runner: CliRunner, args: list[str]) -> None:
    result = runner.invoke(cli, [*args, "--help"])
    assert "--database-url" in result.output and "STREAMREC_DATABASE_URL" in result.output


@pytest.mark.parametrize("args", [["up"], ["worker"]])
def test_workers_take_the_runtime(runner: CliRunner, args: list[str]) -> None:
    result = runner.invoke(cli, [*args, "--help"])
    assert "--runtime [faust|asyncio]" in result.output and "STREAMREC_RUNTIME" in result.output


def test_a_worker_process_names_its_roles_in_each_log_line(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """``streamrec up`` writes every process's lines to one file: each says whose."""
    import io
    import logging

    from streamrec.cli.common import label_logs

    handler = logging.StreamHandler(io.StringIO())
    monkeypatch.setattr(logging.getLogger(), "handlers", [handler])
    label_logs("trainer+indexer")
    logging.getLogger("streamrec.test").warning("rotated")
    line = handler.stream.getvalue()
    assert line.endswith(" WARNING [trainer+indexer] streamrec.test: rotated\n"), line
