"""A planted synthetic world where features decide preferences.

``n_clusters`` tastes; a user with feature ``taste=k`` only interacts with items of
feature ``genre=k``.  Known right answer: a cold-start user with ``taste=k`` should get
genre-k items in its top 10.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class World:
    n_clusters: int
    user_taste: dict[str, int]
    item_genre: dict[str, int]
    events: list[tuple[str, str]]

    def user_features(self, user: str) -> list[str]:
        return [f"taste={self.user_taste[user]}"]

    def item_features(self, item: str) -> list[str]:
        return [f"genre={self.item_genre[item]}"]


def planted_world(
    n_clusters: int = 5,
    n_users: int = 200,
    n_items: int = 100,
    events_per_user: int = 15,
    seed: int = 0,
) -> World:
    rng = np.random.default_rng(seed)
    users = {f"u{n}": int(rng.integers(n_clusters)) for n in range(n_users)}
    items = {f"i{n}": n % n_clusters for n in range(n_items)}
    by_genre: dict[int, list[str]] = {}
    for item, genre in items.items():
        by_genre.setdefault(genre, []).append(item)
    events = []
    for _ in range(events_per_user):
        for user, taste in users.items():
            events.append((user, str(rng.choice(by_genre[taste]))))
    order = rng.permutation(len(events))
    return World(n_clusters, users, items, [events[o] for o in order])
