"""Re-ranking: freshness, MMR, and the recommender core with filters, without a broker.

The filter language itself is tested in tests/stream/test_filters.py.
"""

from __future__ import annotations

import numpy as np
import pytest

from streamrec.eval.synthetic import make_world
from streamrec.model import HybridModel, ModelConfig
from streamrec.settings import Settings
from streamrec.stream.schemas import RecRequest
from streamrec.workers.serving.recommender import RecommenderCore
from streamrec.workers.serving.rerank import freshness_bonus, mmr
from streamrec.workers.state import ModelState


def test_freshness_bonus_decays_with_age() -> None:
    created = np.array([100.0, 90.0, np.nan])
    bonus = freshness_bonus(created, now=100.0, boost=2.0, half_life_s=10.0)
    assert bonus.tolist() == pytest.approx([2.0, 1.0, 0.0])
    assert freshness_bonus(created, 100.0, 0.0, 10.0).tolist() == [0.0, 0.0, 0.0]
    # in units of the candidates' score range
    scaled = freshness_bonus(created, now=100.0, boost=1.0, half_life_s=10.0, scale=8.0)
    assert scaled.tolist() == pytest.approx([8.0, 4.0, 0.0])


def test_mmr_trades_relevance_for_diversity() -> None:
    # three near-duplicates on top, one different item just below
    scores = np.array([1.0, 0.99, 0.98, 0.9])
    vectors = np.array([[1, 0], [1, 0.01], [1, 0.02], [0, 1]], dtype=np.float64)
    assert mmr(scores, vectors, 2, 0.0).tolist() == [0, 1]
    assert mmr(scores, vectors, 2, 0.5).tolist() == [0, 3]


@pytest.fixture(scope="module")
def trained() -> tuple[RecommenderCore, object]:
    world = make_world(n_users=40, items_per_cluster=15, events_per_user=20)
    model = HybridModel(ModelConfig(dim=16))
    state = ModelState(model)
    for item in world.items:
        model.add_item(item, world.item_features(item))
        state.attributes.update(item, world.attributes(item), 0.0)
    for user in world.users:
        model.add_user(user, world.user_features(user))
    users, items, types = zip(*world.events, strict=True)
    for _ in range(3):
        model.learn(users, items, types)
    return RecommenderCore(Settings(), state), world


def test_core_filters_excludes_seen_and_falls_back(trained: tuple) -> None:
    core, world = trained
    r = core.answer(RecRequest(request_id="a", user="user-000", k=5,
                               filters={"category": "music", "available": True}))  # fmt: skip
    assert r.strategy == "personalised" and len(r.items) == 5
    assert all(world.items[s.item] == "music" and world.available[s.item] for s in r.items)
    m = core.state.model
    seen = {m.items.ids.name(int(i)) for i in m.seen.items(m.users.ids.get("user-000"))}
    plain = core.answer(RecRequest(request_id="b", user="user-000", k=10))
    assert not seen & {s.item for s in plain.items}
    assert core.answer(RecRequest(request_id="c", user="ghost")).strategy == "popular"
    cold = core.answer(RecRequest(request_id="d", user="ghost", features=["likes=games"]))
    assert cold.strategy == "cold-start"
    assert sum(world.items[s.item] == "games" for s in cold.items) >= 8
    bad = core.answer(RecRequest(request_id="e", user="user-000", filters={"x": {"bad": 1}}))
    assert bad.error and not bad.items


@pytest.mark.parametrize(
    ("filters", "message"),
    [
        ({"available": {"in": 1}}, "'available': {'in': 1}: in needs a list of values"),
        ({"tags": {"all": "x"}}, "all needs a list"),
        ({"price": {"min": True}}, "min needs a finite number"),
        ({"category": {"eq": {"a": 1}}}, "nested object"),
    ],
)
def test_core_answers_a_bad_filter_with_an_error(
    trained: tuple, filters: dict[str, object], message: str
) -> None:
    core, _ = trained
    r = core.answer(RecRequest(request_id="f", user="user-000", k=5, filters=filters))
    assert r.error is not None and message in r.error
    assert r.items == [] and r.strategy == "none"


def test_core_filters_on_list_attributes(trained: tuple) -> None:
    core, world = trained
    tagged = sorted(world.items)[:30:3]  # ten items, a known set
    for n, item in enumerate(tagged):
        core.state.attributes.update(item, {"tags": ["tagged", f"n{n % 2}"]}, 0.0)
    try:
        for filters, want in [
            ({"tags": "tagged"}, set(tagged)),
            ({"tags": ["n0"]}, set(tagged[0::2])),
            ({"tags": {"all": ["tagged", "n1"]}}, set(tagged[1::2])),
            ({"tags": {"any": ["x", "n1"]}}, set(tagged[1::2])),
            ({"tags": {"all": ["tagged", "x"]}}, set()),
        ]:
            r = core.answer(RecRequest(request_id="t", user="ghost", k=50, filters=filters))
            assert r.error is None and {s.item for s in r.items} == want, filters
    finally:
        for item in tagged:
            core.state.attributes.update(item, {"tags": []}, 0.0)


def test_core_diversity_spreads_categories(trained: tuple) -> None:
    core, world = trained
    plain = core.answer(RecRequest(request_id="a", user="user-001", k=8))
    diverse = core.answer(RecRequest(request_id="b", user="user-001", k=8, diversity=0.9))
    cats = lambda r: len({world.items[s.item] for s in r.items})  # noqa: E731
    assert cats(diverse) > cats(plain)


@pytest.mark.parametrize("retrieval", ["exact", "ann"])
def test_the_core_answers_the_models_own_top_k_continuity_included(
    trained: tuple, retrieval: str
) -> None:
    """What a recommender serves is what evaluation measures (HybridModel.top_k_rows):
    the continuity signal (items sharing features with the user's last items) counts in
    both, through exact scoring and through the index's candidates (every item here)."""
    from streamrec.index.ann import build_snapshot
    from streamrec.index.live import LiveIndex

    core, _ = trained
    m = core.state.model
    index = None
    if retrieval == "ann":
        index = LiveIndex()
        index.swap(build_snapshot(m.item_representations(), 10, 42, m.version))
    settings = Settings(exact_below=0, index_candidates=m.n_items)
    served = RecommenderCore(settings, core.state, index)
    differs = 0
    for user in list(m.users.ids)[:40]:
        row = m.user_row(user)
        r = served.answer(RecRequest(request_id=user, user=user, k=10))
        assert r.retrieval == retrieval
        want = m.item_ids(m.top_k_rows(row, 10)[0])
        assert [s.item for s in r.items] == want
        plain = m.scores_for_vector(m.user_vector_row(row), m.trend_affinity_row(row)).copy()
        differs += m.item_ids(m.top_k_scores(plain, 10, m.seen.items(row))[0]) != want
    assert differs > 0  # the signal changes some users' lists: the test can tell
