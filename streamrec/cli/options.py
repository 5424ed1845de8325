"""Shared CLI plumbing of the offline commands (evaluate, tune): model hyperparameters
from a TOML file and from flags, the protocol's options, output files, the progress bar."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    TextColumn,
    TimeElapsedColumn,
)

from streamrec.errors import ConfigError
from streamrec.model import ModelConfig


def read_toml(path: Path | None) -> dict[str, Any]:
    if path is None:
        return {}
    try:
        return tomllib.loads(path.read_text())
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config file {path} is not valid TOML: {exc}") from exc


def parse_set(pairs: tuple[str, ...]) -> dict[str, Any]:
    """``--set name=value`` pairs; values are parsed as TOML scalars (1, 0.5, true, "x")."""
    out: dict[str, Any] = {}
    for pair in pairs:
        name, sep, raw = pair.partition("=")
        if not sep or not name.strip():
            raise ConfigError(f"--set expects name=value, got {pair!r}")
        try:
            out[name.strip()] = tomllib.loads(f"v = {raw}")["v"]
        except tomllib.TOMLDecodeError:
            out[name.strip()] = raw
    return out


def model_config(
    file_values: dict[str, Any], flag_values: dict[str, Any], sets: tuple[str, ...]
) -> ModelConfig:
    """Defaults < the file's [model] table < explicit flags < --set pairs."""
    values: dict[str, Any] = dict(file_values.get("model", {}))
    values.update({k: v for k, v in flag_values.items() if v is not None})
    values.update(parse_set(sets))
    return ModelConfig.from_dict(values)


def model_options(f: Any) -> Any:
    """The common hyperparameter flags (all default to the config file / built-in value)."""
    opts = [
        click.option("--set", "sets", multiple=True, metavar="NAME=VALUE",
                     help="Any model setting, e.g. --set recent_items=20 (repeatable)."),
        click.option("--seed", type=int, default=None, help="Random seed; same seed, same run."),
        click.option("--l2", type=float, default=None, help="L2 penalty per update."),
        click.option("--bias-lr", type=float, default=None, help="Adagrad step of the biases."),
        click.option("--lr", type=float, default=None, help="Adagrad step of the embeddings."),
        click.option("--dim", type=int, default=None, help="Embedding dimension."),
        click.option("--loss", type=click.Choice(["warp", "bpr", "logistic"]), default=None,
                     help="Training loss."),
        click.option("--config", "config_file", type=click.Path(exists=True, dir_okay=False,
                     path_type=Path), default=None,
                     help="TOML file with a [model] table (and [evaluate] for evaluate)."),
    ]  # fmt: skip
    for opt in opts:
        f = opt(f)
    return f


def output_file(flag: str, dest: str, help: str, default: Path | None = None) -> Any:
    """An option naming a file the command writes (``--json``, ``--plot``, ``--out``)."""
    return click.option(flag, dest, type=click.Path(dir_okay=False, path_type=Path),
                        default=default, help=help)  # fmt: skip


def progress_bar(
    title: str, unit: str, console: Console, hidden: bool, *extra: ProgressColumn
) -> Progress:
    """A long run's progress: title, bar, done of total ``unit``, time elapsed, ``extra``."""
    return Progress(TextColumn(f"[bold]{title}[/]"), BarColumn(), MofNCompleteColumn(),
                    TextColumn(unit), TimeElapsedColumn(), *extra, console=console,
                    disable=hidden, transient=True)  # fmt: skip


def protocol_options(burn_in_help: str, limit_help: str, defaults: bool = True) -> Any:
    """--k, --burn-in, --limit and --no-progress: the prequential protocol's options.

    ``defaults``: the options default to the built-in values (k 10, burn-in 0.2); without,
    to None, and the command resolves them from --config's [evaluate] table, which also
    sets the decayed-popularity baseline's half-life (then a --half-life option too).
    """
    k_help = "Cut-off of HR/MRR/NDCG." + ("" if defaults else "  [default: 10]")
    half_life = click.option("--half-life", type=float, default=None,
                             help="Half-life (positive events) of the decayed-popularity "
                                  "baseline.  [default: 2000]")  # fmt: skip
    opts = [
        click.option("--no-progress", is_flag=True, help="No progress bar."),
        click.option("--limit", type=int, default=None, help=limit_help),
        *([] if defaults else [half_life]),
        click.option("--burn-in", type=float, default=0.2 if defaults else None,
                     help=burn_in_help),
        click.option("--k", type=int, default=10 if defaults else None, help=k_help),
    ]  # fmt: skip

    def decorate(f: Any) -> Any:
        for opt in opts:
            f = opt(f)
        return f

    return decorate


def dataset_option(help: str) -> Any:
    """``--dataset``: the log a command reads (MovieLens directory, .csv or .jsonl)."""
    return click.option("--dataset", required=True, help=help,
                        type=click.Path(exists=True, path_type=Path))  # fmt: skip
