"""``streamrec evaluate``: prequential replay of a log, with baselines, JSON and plot."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import click
from rich.console import Console

from streamrec.cli import options
from streamrec.errors import ConfigError


@click.command()
@options.dataset_option(
    "MovieLens 100K directory, or a .csv / .jsonl log (see docs/evaluation.md)."
)
@options.output_file("--json", "json_path", "Write the report as JSON here.")
@options.output_file("--plot", "plot_path", "Write a PNG of HR@k over the stream here.")
@options.protocol_options(
    "Fraction of positive events learned, not scored.  [default: 0.2]",
    "Replay only the first N events.",
    defaults=False,
)
@click.option(
    "--jobs",
    type=click.IntRange(min=1),
    default=None,
    help="Processes for the replay: the model in one, the baselines spread over "
    "the others (same figures).  [default: 2, or 1 on one CPU]",
)
@options.model_options
def evaluate(
    dataset: Path,
    json_path: Path | None,
    plot_path: Path | None,
    k: int | None,
    burn_in: float | None,
    half_life: float | None,
    limit: int | None,
    no_progress: bool,
    jobs: int | None,
    config_file: Path | None,
    sets: tuple[str, ...],
    **flags: Any,
) -> None:
    """Replay a log test-then-train and compare the model with popularity baselines."""
    wall_start = time.perf_counter()
    from streamrec.eval.datasets import load_dataset
    from streamrec.eval.prequential import replay
    from streamrec.eval.report import plot, print_table, write_json

    file_values = options.read_toml(config_file)
    config = options.model_config(file_values, flags, sets)
    ev: dict[str, Any] = dict(file_values.get("evaluate", {}))
    unknown = set(ev) - {"k", "burn_in", "half_life", "jobs"}
    if unknown:
        raise ConfigError(f"unknown [evaluate] setting(s): {', '.join(sorted(unknown))}")
    k = k if k is not None else int(ev.get("k", 10))
    burn_in = burn_in if burn_in is not None else float(ev.get("burn_in", 0.2))
    half_life = half_life if half_life is not None else float(ev.get("half_life", 2000.0))
    jobs = jobs if jobs is not None else int(ev.get("jobs", min(2, len(os.sched_getaffinity(0)))))
    if jobs < 1:
        raise ConfigError(f"[evaluate] jobs must be at least 1, got {jobs}")
    console = Console(stderr=False)
    log = load_dataset(dataset)
    if limit is not None:
        log = log.head(limit)
    with options.progress_bar("replay", "events", console, no_progress) as bar:
        task = bar.add_task("replay", total=len(log))
        result = replay(
            log, config, k=k, burn_in=burn_in, half_life=half_life,
            jobs=jobs, progress=lambda n: bar.update(task, completed=n),
        )  # fmt: skip
    wall = time.perf_counter() - wall_start
    print_table(result, console, wall)
    if json_path is not None:
        write_json(result, json_path, {"wall_seconds": round(wall, 3)})
        console.print(f"report written to {json_path}")
    if plot_path is not None:
        plot(result, plot_path)
        console.print(f"plot written to {plot_path}")
