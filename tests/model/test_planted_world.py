"""Known answers on a planted world: cold start by features, convergence of BPR and WARP."""

from __future__ import annotations

import numpy as np
import pytest

from streamrec.model import HybridModel, ModelConfig
from tests.model.world import World, planted_world


def train(world: World, config: ModelConfig, batch: int = 64) -> tuple[HybridModel, list[float]]:
    """Stream the world's events through a new model; returns it and each batch's loss."""
    model = HybridModel(config)
    for user in world.user_taste:
        model.add_user(user, world.user_features(user))
    for item in world.item_genre:
        model.add_item(item, world.item_features(item))
    losses = []
    for start in range(0, len(world.events), batch):
        chunk = world.events[start : start + batch]
        stats = model.learn([u for u, _ in chunk], [i for _, i in chunk], ["click"] * len(chunk))
        losses.append(stats.loss / max(stats.events, 1))
    return model, losses


def cold_start_precision(model: HybridModel, world: World) -> float:
    """Share of genre-matched items in the top 10 of brand-new users, one per taste."""
    matched = 0
    total = 0
    for taste in range(world.n_clusters):
        user = f"new-{taste}"
        model.add_user(user, [f"taste={taste}"])
        for item, _ in model.recommend(user, 10):
            matched += world.item_genre[item] == taste
            total += 1
    return matched / total


@pytest.mark.parametrize("loss", ["warp", "bpr", "logistic"])
def test_cold_start_users_get_feature_matched_items(loss: str) -> None:
    world = planted_world()
    model, _ = train(world, ModelConfig(loss=loss, dim=16, seed=1))
    precision = cold_start_precision(model, world)
    chance = 1 / world.n_clusters
    assert precision >= 0.9, f"{loss}: cold-start precision {precision:.2f} (chance {chance:.2f})"


def test_new_user_first_vector_is_its_feature_vector() -> None:
    world = planted_world(n_users=50)
    model, _ = train(world, ModelConfig(dim=8, seed=3))
    row = model.add_user("fresh", ["taste=2"])
    table, names = model.users.table.emb, model.users.feature_names
    # its features plus the learned row of users with no history yet (activity bucket 0)
    expected = table[names.get("taste=2")] + table[names.get("#activity:0")]
    np.testing.assert_allclose(model.user_vector("fresh"), expected, rtol=1e-6)
    # exactly what an unknown user with the same features gets as a cold start
    np.testing.assert_array_equal(model.user_vector("fresh"), model.user_vector(None, ["taste=2"]))
    identity = model.users.feature_names.get("#id:fresh")
    assert not model.users.table.emb[identity].any(), "identity embedding must start at zero"
    assert model.users.fx.idx[row, 0] == identity


@pytest.mark.parametrize("loss", ["warp", "bpr"])
def test_bpr_and_warp_converge(loss: str) -> None:
    """Test-then-train on the world's stream: the hit rate climbs from chance to the ceiling.

    A user's positive is one of the 20 items of its genre, so a perfect top 10 (seen items
    not excluded) hits half the time; chance is 10 %.
    """
    world = planted_world(events_per_user=30, seed=5)
    model = HybridModel(ModelConfig(loss=loss, dim=16, seed=2))
    for user in world.user_taste:
        model.add_user(user, world.user_features(user))
    for item in world.item_genre:
        model.add_item(item, world.item_features(item))
    hits = []
    for user, item in world.events:
        top = [i for i, _ in model.recommend(user, 10, exclude_seen=False)]
        hits.append(item in top)
        model.learn([user], [item], ["click"])
    early, late = np.mean(hits[:200]), np.mean(hits[-2000:])
    assert late > 0.45, f"{loss}: hit rate went {early:.2f} -> {late:.2f} (ceiling 0.5)"
    assert late > early + 0.1, f"{loss}: no learning visible ({early:.2f} -> {late:.2f})"


def test_recent_items_and_activity_and_trend_learn_the_world() -> None:
    world = planted_world(seed=7)
    config = ModelConfig(dim=16, seed=4, recent_items=5, activity_buckets=4, trend_weight=1.0)
    model, _ = train(world, config)
    assert cold_start_precision(model, world) >= 0.8
