"""``streamrec tune LOG``: search the main hyperparameters on a prefix, judge on the rest."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.progress import TextColumn
from rich.table import Table

from streamrec.cli import options


def _fmt(value: float) -> str:
    return "n/a" if math.isnan(value) else f"{value:.4f}"


@click.command()
@click.argument("log_path", metavar="LOG", type=click.Path(exists=True, path_type=Path))
@click.option(
    "--fraction",
    type=float,
    default=0.7,
    help="Share of the log's events the search runs on; the rest is held out.",
)
@click.option("--trials", type=int, default=12, help="Configurations tried (the first: defaults).")
@click.option("--jobs", type=int, default=2, help="Trials run in parallel processes.")
@click.option("--search-seed", type=int, default=0, help="Seed of the random draws of the search.")
@options.protocol_options(
    "Fraction of the prefix's positives learned, not scored, in each trial.",
    "Use only the first N events of the log.",
)
@options.output_file(
    "--out",
    "out_path",
    "TOML file for --config with the chosen settings.",
    default=Path("tuned.toml"),
)
@options.output_file(
    "--json", "json_path", "Write the trials and the held-out report as JSON here."
)
@options.model_options
def tune(
    log_path: Path,
    fraction: float,
    trials: int,
    jobs: int,
    search_seed: int,
    k: int,
    burn_in: float,
    limit: int | None,
    out_path: Path,
    json_path: Path | None,
    no_progress: bool,
    config_file: Path | None,
    sets: tuple[str, ...],
    **flags: Any,
) -> None:
    """Tune the model on the first part of LOG (prequential HR@k), report on the rest.

    The model settings given (--config, flags, --set) are the base every trial starts
    from; the search varies the settings in streamrec.eval.tune.SPACE.  Writes the
    chosen settings as a TOML file that `streamrec evaluate --config` accepts.
    """
    from streamrec.eval.report import to_dict
    from streamrec.eval.tune import Trial, toml_text
    from streamrec.eval.tune import tune as run_tune
    from streamrec.model import ModelConfig

    base = options.model_config(options.read_toml(config_file), flags, sets)
    console = Console()
    status = TextColumn("{task.description}")
    with options.progress_bar("tune", "trials", console, no_progress, status) as bar:
        task = bar.add_task("", total=trials)
        best_hr = [0.0]

        def done(trial: Trial) -> None:
            best_hr[0] = max(best_hr[0], trial.metrics["hr"])
            bar.update(task, advance=1, description=f"best HR@{k} {best_hr[0]:.4f}")

        result = run_tune(
            log_path, base=base, fraction=fraction, trials=trials, jobs=jobs, seed=search_seed,
            k=k, burn_in=burn_in, limit=limit, on_trial=done,
        )  # fmt: skip
    table = Table(title=f"Search on the first {result.prefix_events:,} events of {log_path.name}")
    table.add_column("#", justify="right")
    table.add_column("settings (base where not shown)")
    for col in (f"HR@{k}", f"MRR@{k}", f"cold HR@{k}", "s"):
        table.add_column(col, justify="right")
    defaults = base.to_dict()
    for trial in result.trials:
        style = "bold green" if trial.number == result.best.number else None
        changed = {n: v for n, v in trial.params.items() if v != defaults[n]}
        settings = " ".join(f"{n}={v}" for n, v in changed.items()) or "(base)"
        m = trial.metrics
        table.add_row(str(trial.number), settings, _fmt(m["hr"]), _fmt(m["mrr"]),
                      _fmt(m["cold_hr"]), f"{trial.seconds:.1f}", style=style)  # fmt: skip
    console.print(table)
    held = result.held_out
    report = Table(
        title=f"Held out: the last {held.n_events - result.prefix_events:,} events "
        f"({held.n_scored:,} scored, {int(held.cold.sum()):,} cold-user), after learning the prefix"
    )
    for col in ("system", f"HR@{k}", f"MRR@{k}", f"cold-user HR@{k}"):
        report.add_column(col, justify="right" if col != "system" else "left")
    default_model = result.held_out_default.metrics()["model"]
    for name, m in held.metrics().items():
        label = "streamrec (tuned)" if name == "model" else held.labels.get(name, name)
        report.add_row(label, _fmt(m["hr"]), _fmt(m["mrr"]), _fmt(m["cold_hr"]))
        if name == "model":
            report.add_row("streamrec (base settings)", _fmt(default_model["hr"]),
                           _fmt(default_model["mrr"]), _fmt(default_model["cold_hr"]))  # fmt: skip
    console.print(report)
    plain = ModelConfig().to_dict()
    chosen = {n: v for n, v in defaults.items() if v != plain[n]}  # the base's own settings
    chosen.update(result.best.params)
    tm = result.best.metrics
    held_m = held.metrics()["model"]
    out_path.write_text(toml_text(chosen, comment=(
        f"streamrec tune {log_path.name}: trial {result.best.number} of {len(result.trials)}\n"
        f"search (first {result.prefix_events} events): HR@{k} {tm['hr']:.4f}\n"
        f"held out (the rest): HR@{k} {held_m['hr']:.4f}, "
        f"cold-user HR@{k} {_fmt(held_m['cold_hr'])}"
    )))  # fmt: skip
    console.print(
        f"chosen settings written to {out_path} (use: streamrec evaluate --config {out_path})"
    )
    if json_path is not None:
        doc = {
            "log": str(log_path),
            "prefix_events": result.prefix_events,
            "trials": [
                {
                    "number": t.number,
                    "params": t.params,
                    "metrics": {n: None if math.isnan(v) else v for n, v in t.metrics.items()},
                    "seconds": round(t.seconds, 3),
                }
                for t in result.trials
            ],
            "best": result.best.number,
            "chosen": chosen,
            "held_out": to_dict(held),
            "held_out_base_settings": to_dict(result.held_out_default),
        }
        json_path.write_text(json.dumps(doc, indent=2) + "\n")
        console.print(f"report written to {json_path}")
