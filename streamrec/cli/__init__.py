"""The ``streamrec`` command: one module per command group."""

from __future__ import annotations

import sys

import click

from streamrec import __version__
from streamrec.errors import StreamrecError


@click.group(context_settings={"help_option_names": ["-h", "--help"], "show_default": True})
@click.version_option(__version__, prog_name="streamrec")
def cli() -> None:
    """streamrec: an event-driven streaming recommender with incremental updates."""


def _register() -> None:
    from streamrec.cli.db import db
    from streamrec.cli.demo import demo
    from streamrec.cli.evaluate import evaluate
    from streamrec.cli.kafka import kafka
    from streamrec.cli.publish import publish, recommend
    from streamrec.cli.replay import replay
    from streamrec.cli.tune import tune
    from streamrec.cli.up import up, worker

    for command in (evaluate, tune, up, worker, publish, recommend, replay, demo, db, kafka):
        cli.add_command(command)


def main(argv: list[str] | None = None) -> None:
    """Entry point: runs the CLI, printing streamrec errors without a traceback."""
    _register()
    try:
        cli.main(args=argv, prog_name="streamrec", standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except StreamrecError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(2)
