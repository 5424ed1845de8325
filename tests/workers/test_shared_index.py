"""One index build shared through a file: the indexer publishes, another process's
follower maps it; both serve the same retrieval.  No broker: the workers' index checks
are called directly."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from streamrec.eval.synthetic import make_world
from streamrec.model import HybridModel, ModelConfig
from streamrec.settings import Settings
from streamrec.workers.serving import indexer as indexer_module
from streamrec.workers.serving.indexer import Indexer, IndexFollower, index_folder
from streamrec.workers.state import ModelState

pytestmark = pytest.mark.asyncio


def _state() -> ModelState:
    world = make_world(n_users=30, items_per_cluster=20, events_per_user=10)
    model = HybridModel(ModelConfig(dim=8))
    for item in world.items:
        model.add_item(item, world.item_features(item))
    for user in world.users:
        model.add_user(user, world.user_features(user))
    users, items, types = zip(*world.events, strict=True)
    model.learn(users, items, types)
    return ModelState(model)


@pytest.mark.parametrize("build", ["process", "thread"])
async def test_a_follower_maps_the_index_the_indexer_published(
    tmp_path: Path, build: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(indexer_module, "PROCESS_BUILD_MIN_ITEMS", 0)  # a child even here
    settings = Settings.load({"data_dir": tmp_path, "index_build": build}, environ={})
    builder_state, replica_state = _state(), _state()  # same world: same rows
    indexer = Indexer(settings, builder_state)
    follower = IndexFollower(settings, replica_state)
    await follower.check_once()
    assert follower.index.snapshot is None  # nothing published yet
    await indexer.rebuild()
    files = sorted(p.name for p in index_folder(settings).iterdir())
    assert files == ["current.json", "index-00000001.ann"]  # no temporary file left
    await follower.check_once()
    snap = follower.index.snapshot
    assert snap is not None and snap.path.endswith("index-00000001.ann")
    assert snap.size == builder_state.model.n_items
    assert follower.stats()["recall_at_10"] is not None
    q = builder_state.model.user_query_row(0)
    n = builder_state.model.n_items
    mine = indexer.index.candidates(q, 20, n)
    theirs = follower.index.candidates(q, 20, n)
    assert mine is not None and theirs is not None
    np.testing.assert_array_equal(mine, theirs)  # one build, the same answers
    # a newer build replaces it atomically for the follower
    await indexer.rebuild()
    await follower.check_once()
    assert follower.index.snapshot is not snap and follower.index.builds == 2
    await indexer.stop()


async def test_an_indexer_serving_no_requests_counts_changes_without_embedding_them(
    tmp_path: Path,
) -> None:
    """``streamrec up``'s trainer process: changed items still count towards the next
    rebuild, but nothing computes their representations, pins rows or samples recall."""
    settings = Settings.load({"data_dir": tmp_path, "index_build": "thread",
                              "index_rebuild_changes": 3}, environ={})  # fmt: skip
    state = _state()
    indexer = Indexer(settings, state, serving=False)
    await indexer.rebuild()
    assert not indexer.due()
    embedded: list[object] = []  # the rows of each call (None: the whole catalogue)
    model = state.model
    reps = model.item_representations
    model.item_representations = lambda rows=None: embedded.append(rows) or reps(rows)  # type: ignore[method-assign]
    state.items_changed([0, 1, 2])
    assert len(indexer.index.fresh) == 3 and indexer.due()
    await indexer.check_once()  # starts the rebuild they made due
    assert indexer._building is not None
    await indexer._building
    assert embedded == [None]  # the build's read of the catalogue, nothing per item
    assert indexer.index.builds == 2 and indexer.stats()["recall_samples"] == 0


async def test_items_kept_fresh_after_a_build_do_not_make_the_next_one_due(
    tmp_path: Path,
) -> None:
    """A bulk onboarding leaves up to ``index_fresh_keep_max`` items in the fresh buffer
    for ``index_fresh_keep_s`` after the build that holds them: they are not waiting for
    a rebuild, so they must not start one after another."""
    settings = Settings.load({"data_dir": tmp_path, "index_build": "thread",
                              "index_rebuild_changes": 3, "index_fresh_keep_s": 600.0,
                              "index_rebuild_s": 600.0}, environ={})  # fmt: skip
    state = _state()
    indexer = Indexer(settings, state, serving=False)
    state.items_changed(list(range(state.model.n_items)))
    await indexer.rebuild()
    assert len(indexer.index.fresh) >= 3 and not indexer.due()
    state.items_changed([0, 1])
    assert not indexer.due()
    state.items_changed([2])
    assert indexer.due()


@pytest.mark.parametrize(("at_build", "more"), [(100_000, 50_000), (1_000, 10_000)])
async def test_a_model_grown_by_index_rebuild_growth_since_the_build_makes_one_due(
    tmp_path: Path, at_build: int, more: int
) -> None:
    """Half as many events again as the build read (0.5), and at least 10,000: then a
    rebuild is due though the index is young and no item waits."""
    values = {"data_dir": tmp_path, "index_build": "thread", "index_rebuild_s": 600.0,
              "index_rebuild_changes": 10**6, "index_rebuild_growth": 0.5}  # fmt: skip
    state = _state()
    state.model.n_events = at_build  # as if it had learned that many
    indexer = Indexer(Settings.load(values, environ={}), state, serving=False)
    await indexer.rebuild()
    state.model.n_events += more - 1
    assert not indexer.due()
    state.model.n_events += 1
    assert indexer.due()
    off = Indexer(Settings.load({**values, "index_rebuild_growth": 0.0}, environ={}), state,
                  serving=False)  # fmt: skip
    await off.rebuild()
    state.model.n_events += 10**7
    assert not off.due()


async def test_the_build_process_runs_at_the_configured_niceness(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The child build lowers its own priority (so it takes the CPU time serving and
    learning leave idle); 0 leaves it alone; the setting is bounded like ``nice``."""
    from streamrec.errors import ConfigError
    from streamrec.index import build

    reps = np.random.default_rng(0).normal(size=(50, 10)).astype(np.float32)
    np.save(tmp_path / "reps.npy", reps)
    calls: list[int] = []
    monkeypatch.setattr(build.os, "nice", calls.append)
    build.main([str(tmp_path / "reps.npy"), str(tmp_path / "a.ann"), "2", "10"])
    build.main([str(tmp_path / "reps.npy"), str(tmp_path / "b.ann"), "2", "0"])
    build.main([str(tmp_path / "reps.npy"), str(tmp_path / "c.ann"), "2"])
    assert calls == [10]
    assert (tmp_path / "a.ann").exists() and (tmp_path / "c.ann").exists()
    assert Settings.load({}, environ={}).index_build_nice == 10
    with pytest.raises(ConfigError, match="index_build_nice=20"):
        Settings.load({"index_build_nice": 20}, environ={})
