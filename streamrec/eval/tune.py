"""Fit the model's main hyperparameters to a log without overfitting it.

The search runs on a prefix of the log (``fraction`` of its events): each trial is a
prequential replay of the prefix (same protocol as ``streamrec evaluate``, model only),
ranked by HR@k.  The chosen configuration is then judged on the remainder: a replay of
the whole log that learns the prefix and scores only the held-out events (every
baseline beside it, and the default configuration for comparison).

Trials run in separate processes (each loads the log once).  The search space is small
and named in :data:`SPACE`; trial 0 is always the default configuration, the others are
drawn at random (seeded) from the space.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from streamrec.eval.datasets import Log, load_dataset
from streamrec.eval.prequential import ReplayResult, replay
from streamrec.model import ModelConfig

#: The hyperparameters the search draws from, and their candidate values.
SPACE: Mapping[str, tuple[Any, ...]] = {
    "lr": (0.025, 0.05, 0.1),
    "dim": (32, 64),
    "recent_items": (3, 5, 10),
    "recent_weight": (1.0, 2.0, 4.0),
    "continuity_weight": (0.0, 1.0, 3.0, 10.0),
    "continuity_items": (5, 20),
    "trend_half_life": (500.0, 2000.0, 8000.0),
    "trend_seen_weight": (0.0, 1.0),
    "context_features": (True, False),
}


@dataclass(frozen=True)
class Trial:
    """One configuration of the search (only the searched settings) and its figures."""

    number: int
    params: dict[str, Any]
    metrics: dict[str, float] = field(default_factory=dict)
    seconds: float = 0.0


@dataclass(frozen=True)
class TuneResult:
    trials: list[Trial]
    best: Trial
    prefix_events: int
    held_out: ReplayResult  # the chosen configuration on the held-out remainder
    held_out_default: ReplayResult  # the base configuration there, for comparison


def draw_trials(
    n: int, seed: int, space: Mapping[str, tuple[Any, ...]] = SPACE
) -> list[dict[str, Any]]:
    """``n`` distinct parameter sets: the base configuration (empty), then random draws."""
    rng = np.random.default_rng(seed)
    out: list[dict[str, Any]] = [{}]
    seen: set[tuple[tuple[str, Any], ...]] = {()}
    for _ in range(100 * n):
        if len(out) >= n:
            break
        params = {name: values[int(rng.integers(len(values)))] for name, values in space.items()}
        key = tuple(sorted(params.items()))
        if key not in seen:
            seen.add(key)
            out.append(params)
    return out


@lru_cache(maxsize=2)
def _load(path: str, n_events: int | None) -> Log:
    log = load_dataset(path)
    return log.head(n_events) if n_events is not None else log


def _run_trial(
    path: str,
    n_events: int,
    base: dict[str, Any],
    number: int,
    params: dict[str, Any],
    k: int,
    burn_in: float,
) -> Trial:
    """One trial in a worker process: a prequential replay of the prefix, model only."""
    log = _load(path, n_events)
    result = replay(
        log, ModelConfig.from_dict({**base, **params}), k=k, burn_in=burn_in, baselines=()
    )
    return Trial(number, params, result.metrics()["model"], result.seconds)


def _run_held_out(
    path: str, limit: int | None, base: dict[str, Any], params: dict[str, Any], prefix: int, k: int
) -> ReplayResult:
    log = _load(path, limit)
    return replay(
        log, ModelConfig.from_dict({**base, **params}), k=k, burn_in=0.0, score_from=prefix
    )


def _score(trial: Trial) -> tuple[float, float]:
    m = trial.metrics
    cold = m.get("cold_hr", math.nan)
    return (m["hr"], 0.0 if math.isnan(cold) else cold)


def tune(
    path: str | Path,
    *,
    base: ModelConfig | None = None,
    fraction: float = 0.7,
    trials: int = 12,
    jobs: int = 2,
    seed: int = 0,
    k: int = 10,
    burn_in: float = 0.2,
    limit: int | None = None,
    on_trial: Callable[[Trial], None] | None = None,
) -> TuneResult:
    """Search on the first ``fraction`` of the log's events, judge on the rest."""
    if not 0.0 < fraction < 1.0:
        raise ValueError(f"fraction must be in (0, 1), got {fraction}")
    if trials < 1 or jobs < 1:
        raise ValueError("trials and jobs must be >= 1")
    source = str(path)
    full = _load(source, limit)
    prefix = int(len(full) * fraction)
    base_values = (base or ModelConfig()).to_dict()
    done: list[Trial] = []
    draws = draw_trials(trials, seed)
    with ProcessPoolExecutor(max_workers=min(jobs, os.cpu_count() or 1)) as pool:
        futures = [
            pool.submit(_run_trial, source, prefix, base_values, n, p, k, burn_in)
            for n, p in enumerate(draws)
        ]
        for future in as_completed(futures):
            trial = future.result()
            done.append(trial)
            if on_trial is not None:
                on_trial(trial)
        done.sort(key=lambda t: t.number)
        best = max(done, key=lambda t: (*_score(t), -t.number))
        held = pool.submit(_run_held_out, source, limit, base_values, best.params, prefix, k)
        held_default = pool.submit(_run_held_out, source, limit, base_values, {}, prefix, k)
        return TuneResult(done, best, prefix, held.result(), held_default.result())


def toml_text(values: Mapping[str, Any], comment: str = "") -> str:
    """A TOML document with one ``[model]`` table that ``--config`` accepts."""
    lines = [f"# {line}" for line in comment.splitlines()]
    lines.append("[model]")
    nested: dict[str, Mapping[str, Any]] = {}
    for name, value in values.items():
        if isinstance(value, Mapping):
            nested[name] = value
        else:
            lines.append(f"{name} = {_toml_value(value)}")
    for name, table in nested.items():
        lines.append(f"\n[model.{name}]")
        lines.extend(f'"{key}" = {_toml_value(v)}' for key, v in table.items())
    return "\n".join(lines) + "\n"


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    return '"' + str(value).replace("\\", "\\\\").replace('"', '\\"') + '"'


def table_rows(result: TuneResult) -> Iterator[tuple[Trial, bool]]:
    """The trials in order, each with whether it is the chosen one."""
    for trial in result.trials:
        yield trial, trial.number == result.best.number
