"""The planted e-commerce world: its structure, and the known answers the model must give."""

from __future__ import annotations

import numpy as np
import pytest

from streamrec.eval.datasets import Log
from streamrec.eval.planted import ChurnWorld, churn_world
from streamrec.eval.prequential import replay
from streamrec.model import HybridModel

WORLD = ChurnWorld(n_users=300, n_sessions=2000, seed=0)


@pytest.fixture(scope="module")
def log() -> Log:
    return churn_world(WORLD)


def test_the_world_has_churn_sessions_and_category_features(log: Log) -> None:
    assert churn_world(WORLD).items == log.items, "seeded: same world every time"
    assert all(f[0].startswith("cat=") and len(f) == 1 for f in log.item_features.values())
    first_seen: dict[str, int] = {}
    ages = []
    for e, item in enumerate(log.items):
        first_seen.setdefault(item, e)
        if log.event_types[e] == "click":
            ages.append(e - first_seen[item])
    # most clicks land on items that appeared a few minutes (events are 1 s apart) ago
    assert np.median(ages) < 300
    assert len(first_seen) > 0.2 * len(log), "heavy churn: many items"
    # every user has informative features on its first event
    assert len(log.user_features) == len(set(log.users))


def test_model_beats_the_recent_features_heuristic(log: Log) -> None:
    result = replay(log)
    m = result.metrics()
    assert m["model"]["hr"] >= 1.2 * m["recent_features"]["hr"], m
    # and a cold user with informative features beats popularity
    assert m["model"]["cold_hr"] > max(
        m["popularity"]["cold_hr"], m["decayed_popularity"]["cold_hr"]
    )


def test_cold_user_with_informative_features_gets_its_categories(log: Log) -> None:
    model = HybridModel()
    for e, (user, item, event) in enumerate(
        zip(log.users, log.items, log.event_types, strict=True)
    ):
        if e in log.user_features:
            model.add_user(user, log.user_features[e])
        if e in log.item_features or not model.has_item(item):
            model.add_item(item, log.item_features.get(e))
        model.learn([user], [item], [event])
    category = {i: model.items.fx.features_of(model.items.row(i))[0] for i in set(log.items)}
    names = model.items.feature_names
    hits, pop_hits = 0, 0
    pop_top = np.argsort(-model.popularity(), kind="stable")[:10]
    for a in range(WORLD.n_categories):
        b = (a + 1) % WORLD.n_categories
        wanted = {names.get(f"cat={a}"), names.get(f"cat={b}")}
        top = model.recommend(f"new-{a}", 10, features=[f"pref={a}", f"pref={b}"])
        hits += sum(bool(wanted & set(category[i].tolist())) for i, _ in top)
        pop_hits += sum(
            bool(wanted & set(category[model.items.ids.name(int(r))].tolist())) for r in pop_top
        )
    n = 10 * WORLD.n_categories
    # 2 of 12 categories: chance is 1/6; at least three times chance (the rest are the
    # newest items of any category, which the new-item prior lifts for everyone)
    assert hits / n >= 0.5, hits / n
    assert hits > 2 * pop_hits
