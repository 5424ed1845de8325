"""What moves the figures: the default model with one component off at a time.

    python bench/ablation.py [--dataset ../shared/datasets/ml-100k] [--seeds 42 7]
    python bench/ablation.py --dataset ../shared/datasets/jd-jdata/events.csv
    python bench/ablation.py --dataset planted   # the planted churn world (seed 0)

Each row is a full prequential replay (EVALUATION.md protocol, model only), so the table
takes about a minute per seed on MovieLens.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console
from rich.table import Table

from streamrec.eval.datasets import load_dataset
from streamrec.eval.prequential import replay
from streamrec.model import ModelConfig

DEFAULT_DATASET = Path(__file__).resolve().parents[1].parent / "shared" / "datasets" / "ml-100k"

VARIANTS: dict[str, dict[str, Any]] = {
    "default": {},
    "no continuity signal (continuity_weight=0)": {"continuity_weight": 0.0},
    "item context from identities only (context_features=false)": {"context_features": False},
    "views not in the trend (trend_seen_weight=0)": {"trend_seen_weight": 0.0},
    "no new-item pseudo-count (new_item_prior=0)": {"new_item_prior": 0.0},
    "continuity over the last 20 items": {"continuity_items": 20},
    "streamrec 0.1.0 (the four new pieces off)": {
        "continuity_weight": 0.0,
        "context_features": False,
        "trend_seen_weight": 0.0,
        "new_item_prior": 0.0,
    },
    "no trend prior (trend_weight=0)": {"trend_weight": 0.0},
    "no activity buckets": {"activity_buckets": 0},
    "no recent items": {"recent_items": 0},
    "recent items: positives only": {"recent_include_seen": False},
    "max_sampled=10 (LightFM's default)": {"max_sampled": 10},
    "continuity WARP up to 50 negatives (continuity_max_sampled=50)": {
        "continuity_max_sampled": 50
    },
    "continuity WARP drawing its own negatives (continuity_shared_draws=false)": {
        "continuity_shared_draws": False
    },
    "BPR instead of WARP": {"loss": "bpr"},
    "popularity-aware negatives (pop_sampling=0.5)": {"pop_sampling": 0.5},
    "RMSprop-style accumulators (accum_decay=0.999)": {"accum_decay": 0.999},
    "longer history (recent_items=20)": {"recent_items": 20},
    "plain LightFM-style (all three off)": {
        "trend_weight": 0.0,
        "activity_buckets": 0,
        "recent_items": 0,
    },
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", type=Path, default=DEFAULT_DATASET)
    parser.add_argument("--seeds", type=int, nargs="+", default=[42])
    parser.add_argument("--markdown", action="store_true", help="print a Markdown table")
    args = parser.parse_args()
    if str(args.dataset) == "planted":
        from streamrec.eval.planted import churn_world

        log = churn_world()
    else:
        log = load_dataset(args.dataset)
    table = Table(title=f"Ablation on {log.name} (mean over seeds {args.seeds})")
    for col in ("variant", "HR@10", "MRR@10", "cold-user HR@10", "known-item HR@10", "coverage"):
        table.add_column(col, justify="right" if col != "variant" else "left")
    console = Console()
    markdown = [
        "| variant | HR@10 | MRR@10 | cold-user HR@10 | known-item HR@10 | coverage |",
        "|---|---|---|---|---|---|",
    ]
    for name, changes in VARIANTS.items():
        rows = []
        for seed in args.seeds:
            m = replay(log, ModelConfig(seed=seed, **changes), baselines=()).metrics()["model"]
            rows.append([m["hr"], m["mrr"], m["cold_hr"], m["known_item_hr"], m["coverage"]])
        hr, mrr, cold, known, cov = np.mean(rows, axis=0)
        table.add_row(name, f"{hr:.4f}", f"{mrr:.4f}", f"{cold:.4f}", f"{known:.4f}", f"{cov:.3f}")
        markdown.append(f"| {name} | {hr:.4f} | {mrr:.4f} | {cold:.4f} | {known:.4f} | {cov:.3f} |")
        console.print(f"done: {name}", style="dim")
    console.print(table)
    if args.markdown:
        print("\n".join(markdown))


if __name__ == "__main__":
    main()
