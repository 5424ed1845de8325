"""Reports of a replay: a rich table, a JSON document, and a PNG of HR@k over the stream."""

from __future__ import annotations

import json
import math
import platform
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console
from rich.table import Table

from streamrec.eval.prequential import ReplayResult


def to_dict(result: ReplayResult, extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """The JSON report: protocol, counters, per-system metrics and the model config."""
    return {
        "log": result.log_name,
        "protocol": {
            "k": result.k,
            "burn_in": result.burn_in,
            "decayed_popularity_half_life": result.half_life,
        },
        "events": result.n_events,
        "positive_events": result.n_positive,
        "burn_in_events": result.n_burn_in,
        "scored_events": result.n_scored,
        "cold_user_events": int(result.cold.sum()),
        "new_item_target_events": int(result.new_item.sum()) if result.new_item is not None else 0,
        "users": result.n_users,
        "items": result.n_items,
        "replay_seconds": round(result.seconds, 3),
        "events_per_second": round(result.events_per_second, 1),
        "metrics": {
            name: {key: (None if math.isnan(v) else round(v, 6)) for key, v in m.items()}
            for name, m in result.metrics().items()
        },
        "model_config": result.config.to_dict(),
        "machine": {"python": platform.python_version(), "platform": platform.platform()},
        **(extra or {}),
    }


def write_json(result: ReplayResult, path: str | Path, extra: dict[str, Any] | None = None) -> None:
    Path(path).write_text(json.dumps(to_dict(result, extra), indent=2) + "\n")


def print_table(result: ReplayResult, console: Console, wall_seconds: float | None = None) -> None:
    k = result.k
    table = Table(title=f"Prequential replay of {result.log_name} (test-then-train)")
    table.add_column("system")
    for col in (f"HR@{k}", f"MRR@{k}", f"NDCG@{k}", f"cold-user HR@{k}", f"known-item HR@{k}",
                "coverage"):  # fmt: skip
        table.add_column(col, justify="right")
    metrics = result.metrics()
    best = max(m["hr"] for m in metrics.values())
    for name, m in metrics.items():
        hr = f"{m['hr']:.4f}"
        table.add_row(
            result.labels.get(name, name),
            f"[bold]{hr}[/]" if m["hr"] == best else hr,
            f"{m['mrr']:.4f}",
            f"{m['ndcg']:.4f}",
            "n/a" if math.isnan(m["cold_hr"]) else f"{m['cold_hr']:.4f}",
            "n/a" if math.isnan(m["known_item_hr"]) else f"{m['known_item_hr']:.4f}",
            f"{m['coverage']:.3f}",
        )
    console.print(table)
    lines = [
        f"events {result.n_events:,} (positive {result.n_positive:,}, burn-in {result.n_burn_in:,})",
        f"scored {result.n_scored:,}, cold-user {int(result.cold.sum()):,}, "
        f"target at its first appearance {int(result.new_item.sum()) if result.new_item is not None else 0:,}",
        f"users {result.n_users:,}, items {result.n_items:,}",
        f"replay {result.seconds:.2f} s, {result.events_per_second:,.0f} events/s",
    ]
    if wall_seconds is not None:
        lines.append(f"wall (load + compile + replay) {wall_seconds:.2f} s")
    console.print("  ".join(lines[:2]))
    console.print("  ".join(lines[2:]))


def plot(result: ReplayResult, path: str | Path, window: int = 2000) -> None:
    """PNG of HR@k over the stream: a moving average over ``window`` scored events."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(9, 4.5), dpi=120)
    n = result.n_scored
    w = max(1, min(window, n))
    x = np.arange(w, n + 1) + result.n_burn_in
    metrics = result.metrics()
    for name, sys_result in result.systems.items():
        hits = sys_result.hits.astype(np.float64)
        csum = np.concatenate([[0.0], np.cumsum(hits)])
        moving = (csum[w:] - csum[:-w]) / w
        ax.plot(x, moving, label=f"{result.labels.get(name, name)} (HR@{result.k} {metrics[name]['hr']:.4f})",
                linewidth=2.0 if name == "model" else 1.2)  # fmt: skip
    ax.set_xlabel("positive events in the stream")
    ax.set_ylabel(f"HR@{result.k}, moving average over {w:,} scored events")
    ax.set_title(f"Prequential HR@{result.k} on {result.log_name}")
    ax.grid(alpha=0.3)
    ax.legend(loc="best")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
