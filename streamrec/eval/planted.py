"""A planted e-commerce world with known structure, for tests and tuning examples.

* **Heavy item churn**: new items appear all the time, and a click picks an item of the
  session's category with probability proportional to ``exp(-age / freshness)``, so most
  clicks land on items a few minutes old.
* **Sessions in one category**: a user's session (a few views and clicks) stays within one
  category; sessions of different users interleave in time.
* **Categories are the only shared signal**: an item's only feature is ``cat=<c>``.
* **Cold users with informative features**: each user prefers ``prefs`` categories
  (features ``pref=<c>``) and most of its sessions are in one of them; users keep
  arriving, so there are first events of users with no history but their features.

Seeded: the same arguments give the same :class:`~streamrec.eval.datasets.Log`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from streamrec.eval.datasets import Features, Log


@dataclass(frozen=True)
class ChurnWorld:
    """Parameters of :func:`churn_world` (defaults: about 20k events in a second)."""

    n_users: int = 600
    n_categories: int = 12
    n_sessions: int = 5000
    #: Each user's preferred categories, and the chance a session is in one of them.
    prefs: int = 2
    pref_share: float = 0.9
    #: Events per session (uniform in this range), share of views among them.
    session_events: tuple[int, int] = (2, 6)
    view_share: float = 0.3
    #: Sessions open at the same time (interleaved), and new items per event.
    concurrent: int = 8
    new_item_rate: float = 0.3
    #: Age (in events) over which an item's attraction falls by e.
    freshness: float = 150.0
    seed: int = 0


def churn_world(world: ChurnWorld | None = None) -> Log:
    """The event log of a planted churn world (one event per second)."""
    w = world or ChurnWorld()
    rng = np.random.default_rng(w.seed)
    prefs = [rng.choice(w.n_categories, size=w.prefs, replace=False) for _ in range(w.n_users)]
    # users arrive over the first half of the stream: later users start cold
    arrival = np.sort(rng.integers(0, w.n_sessions // 2, size=w.n_users))
    arrival[: w.n_users // 10] = 0
    items_cat: list[int] = []
    items_born: list[int] = []
    by_cat: list[list[int]] = [[] for _ in range(w.n_categories)]
    users: list[str] = []
    items: list[str] = []
    types: list[str] = []
    ufeat: dict[int, Features] = {}
    ifeat: dict[int, Features] = {}
    seen_users: set[int] = set()
    seen_items: set[int] = set()

    def new_item(cat: int, now: int) -> None:
        by_cat[cat].append(len(items_cat))
        items_cat.append(cat)
        items_born.append(now)

    for c in range(w.n_categories):  # a few items per category to start with
        for _ in range(5):
            new_item(c, 0)
    open_sessions: list[list[int]] = []  # [user, category, events left]
    started = 0
    now = 0
    while started < w.n_sessions or open_sessions:
        while len(open_sessions) < w.concurrent and started < w.n_sessions:
            eligible = np.flatnonzero(arrival <= started)
            user = int(rng.choice(eligible))
            if rng.random() < w.pref_share:
                cat = int(rng.choice(prefs[user]))
            else:
                cat = int(rng.integers(w.n_categories))
            lo, hi = w.session_events
            open_sessions.append([user, cat, int(rng.integers(lo, hi + 1))])
            started += 1
        s = int(rng.integers(len(open_sessions)))
        user, cat, _ = open_sessions[s]
        if rng.random() < w.new_item_rate:
            new_item(int(rng.integers(w.n_categories)), now)
        live = np.asarray(by_cat[cat][-200:])
        age = now - np.asarray(items_born)[live]
        p = np.exp(-age / w.freshness)
        item = int(live[rng.choice(live.shape[0], p=p / p.sum())])
        e = len(users)
        users.append(f"u{user}")
        items.append(f"i{item}")
        types.append("view" if rng.random() < w.view_share else "click")
        if user not in seen_users:
            seen_users.add(user)
            ufeat[e] = tuple(f"pref={c}" for c in prefs[user])
        if item not in seen_items:
            seen_items.add(item)
            ifeat[e] = (f"cat={items_cat[item]}",)
        open_sessions[s][2] -= 1
        if open_sessions[s][2] == 0:
            open_sessions.pop(s)
        now += 1
    return Log(
        users=users,
        items=items,
        event_types=types,
        timestamps=np.arange(len(users), dtype=np.float64),
        user_features=ufeat,
        item_features=ifeat,
        name=f"churn-world(seed={w.seed})",
    )
