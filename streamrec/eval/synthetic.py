"""A synthetic world with planted structure, for the demo and the end-to-end tests.

Items belong to topic clusters (feature ``topic=<c>``, attribute ``category=<c>``);
users have a favourite cluster (feature ``likes=<c>``) and click mostly inside it, so
the features decide the preferences and a right answer is known.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

CLUSTERS = ("books", "music", "games", "films")


@dataclass
class World:
    clusters: tuple[str, ...]
    items: dict[str, str]  # item -> cluster
    users: dict[str, str]  # user -> favourite cluster
    available: dict[str, bool]
    events: list[tuple[str, str, str]] = field(default_factory=list)  # user, item, type

    def item_features(self, item: str) -> list[str]:
        return [f"topic={self.items[item]}"]

    def user_features(self, user: str) -> list[str]:
        return [f"likes={self.users[user]}"]

    def attributes(self, item: str) -> dict[str, str | bool]:
        return {"category": self.items[item], "available": self.available[item]}

    def cluster_of(self, items: list[str]) -> list[str]:
        return [self.items.get(i, "?") for i in items]


def make_world(
    n_users: int = 60,
    items_per_cluster: int = 25,
    events_per_user: int = 15,
    loyalty: float = 0.9,
    clusters: tuple[str, ...] = CLUSTERS,
    seed: int = 7,
    prefix: str = "",
) -> World:
    rng = np.random.default_rng(seed)
    items = {f"{prefix}{c}-{k:03d}": c for c in clusters for k in range(items_per_cluster)}
    by_cluster = {c: [i for i, ic in items.items() if ic == c] for c in clusters}
    available = {i: bool(rng.random() > 0.1) for i in items}
    users = {f"{prefix}user-{u:03d}": clusters[u % len(clusters)] for u in range(n_users)}
    world = World(clusters, items, users, available)
    # popularity inside a cluster is skewed (Zipf-like) so there is something to learn
    weights = 1.0 / np.arange(1, items_per_cluster + 1) ** 0.7
    weights /= weights.sum()
    for _ in range(events_per_user):
        for user, fav in users.items():
            cluster = fav if rng.random() < loyalty else clusters[rng.integers(len(clusters))]
            item = by_cluster[cluster][int(rng.choice(items_per_cluster, p=weights))]
            kind = "purchase" if rng.random() < 0.1 else "click"
            world.events.append((user, item, kind))
    return world
