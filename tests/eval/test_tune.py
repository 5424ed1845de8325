"""``streamrec tune``: a small search on a planted log writes a TOML that evaluate loads."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

from streamrec.cli import main
from streamrec.eval.datasets import load_log, save_log
from streamrec.eval.planted import ChurnWorld, churn_world
from streamrec.eval.tune import SPACE, draw_trials, toml_text
from streamrec.model import ModelConfig


def test_draws_start_from_the_base_and_stay_in_the_space() -> None:
    draws = draw_trials(6, seed=3)
    assert draws[0] == {} and len(draws) == 6
    assert len({tuple(sorted(d.items())) for d in draws}) == 6, "distinct trials"
    for d in draws[1:]:
        assert set(d) == set(SPACE) and all(d[n] in SPACE[n] for n in d)
        ModelConfig.from_dict(d)  # every draw is a valid configuration
    assert draw_trials(6, seed=3) == draws


def test_toml_round_trips_through_the_config_loader() -> None:
    values = {"lr": 0.1, "context_features": False, "loss": "bpr", "dim": 32,
              "event_weights": {"click": 1.0, "add_to_cart": 2.5}}  # fmt: skip
    doc = tomllib.loads(toml_text(values, comment="a comment\nover two lines"))
    config = ModelConfig.from_dict(doc["model"])
    assert config.lr == 0.1 and config.context_features is False and config.dim == 32
    assert dict(config.event_weights) == {"click": 1.0, "add_to_cart": 2.5}


def test_tune_command_writes_a_loadable_toml_and_the_held_out_report(tmp_path: Path) -> None:
    log_file = tmp_path / "world.jsonl"
    save_log(churn_world(ChurnWorld(n_users=80, n_sessions=300, seed=1)), log_file)
    assert (
        load_log(log_file).items
        == churn_world(ChurnWorld(n_users=80, n_sessions=300, seed=1)).items
    )
    out, report = tmp_path / "tuned.toml", tmp_path / "tune.json"
    main(["tune", str(log_file), "--trials", "3", "--jobs", "2", "--out", str(out),
          "--json", str(report), "--no-progress", "--l2", "0.0001"])  # fmt: skip
    doc = json.loads(report.read_text())
    assert [t["number"] for t in doc["trials"]] == [0, 1, 2]
    best = doc["trials"][doc["best"]]
    assert best["metrics"]["hr"] == max(t["metrics"]["hr"] for t in doc["trials"])
    n_events = doc["held_out"]["events"]
    assert doc["prefix_events"] == int(0.7 * n_events)
    # the held-out report scores only positives after the prefix, with every baseline
    positives_after = sum(
        e["event"] != "view"
        for e in map(json.loads, log_file.read_text().splitlines()[doc["prefix_events"] :])
    )
    assert doc["held_out"]["scored_events"] == positives_after
    assert set(doc["held_out"]["metrics"]) >= {"model", "recent_features", "item_knn"}
    # the TOML holds the base's own settings plus the chosen ones, and evaluate loads it
    chosen = tomllib.loads(out.read_text())["model"]
    assert chosen["l2"] == 0.0001 and chosen == doc["chosen"]
    evaluated = tmp_path / "eval.json"
    main(["evaluate", "--dataset", str(log_file), "--config", str(out), "--json", str(evaluated),
          "--no-progress"])  # fmt: skip
    config = json.loads(evaluated.read_text())["model_config"]
    assert all(config[name] == value for name, value in chosen.items())
