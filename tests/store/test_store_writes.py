"""Batch upserts: idempotent replay, updates, atomic rejection (SQLite and PostgreSQL)."""

from __future__ import annotations

import math

import pytest
from helpers import dump, items, users
from sqlalchemy import text

from streamrec.errors import InvalidRecordError, StoreError
from streamrec.store import EntityRecord, FeatureStore


def test_replaying_a_log_rewrites_nothing(store: FeatureStore) -> None:
    log = users(40) + items(30)
    first = store.upsert_entities(log)
    assert (first.inserted, first.updated, first.unchanged) == (70, 0, 0)
    before = dump(store)
    marker = store.attributes_version()

    again = store.upsert_entities(log)

    assert (again.inserted, again.updated, again.unchanged, again.seq) == (0, 0, 70, None)
    assert dump(store) == before  # same rows, same versions, same updated_at, same counter
    assert store.attributes_version() == marker
    assert store.version("user", "u3") == 1


def test_repeated_new_user_with_new_features_updates_them(store: FeatureStore) -> None:
    store.upsert_entities([EntityRecord("user", "ann", {"age=30": 1.0, "city=rome": 1.0})])
    result = store.upsert_entities([EntityRecord("user", "ann", {"age=31": 1.0, "city=rome": 2.0})])

    assert (result.inserted, result.updated) == (0, 1)
    assert store.features("user", "ann") == {"age=31": 1.0, "city=rome": 2.0}
    assert store.version("user", "ann") == 2
    assert dict(store.iter_entity_features("user")) == {"ann": {"age=31": 1.0, "city=rome": 2.0}}


def test_features_none_keeps_them_and_attributes_merge(store: FeatureStore) -> None:
    store.upsert_entities(items(1))
    marker = store.attributes_version()
    same = store.upsert_entities([EntityRecord("item", "i0", attributes={"category": "comedy"})])
    assert (same.unchanged, store.attributes_version()) == (1, marker)  # already comedy

    result = store.upsert_entities([EntityRecord("item", "i0", attributes={"category": "drama"})])

    assert result.updated == 1
    _, attrs = store.item_attributes()
    assert attrs["i0"].category == "drama"
    assert attrs["i0"].available is False  # i0 % 10 == 0 was planted unavailable, kept
    assert attrs["i0"].tags == frozenset({"t0", "all"})
    assert store.features("item", "i0") == dict.fromkeys(
        ["genre=0", "year=1990", "studio=0", "lang=0", "v=0"], 1.0
    )
    assert store.attributes_version() == result.seq > marker


def test_feature_only_change_does_not_move_the_attribute_marker(store: FeatureStore) -> None:
    store.upsert_entities(items(5))
    marker = store.attributes_version()
    result = store.upsert_entities(items(5, variant=1))
    assert result.updated == 5
    assert store.attributes_version() == marker


def test_a_batch_repeating_an_entity_keeps_the_last_record(store: FeatureStore) -> None:
    store.upsert_entities(
        [
            EntityRecord("user", "bob", {"a": 1.0}),
            EntityRecord("user", "bob", {"b": 1.0}),
            EntityRecord("item", "x", attributes={"category": "c1"}),
            EntityRecord("item", "x", attributes={"available": False}),
        ]
    )
    assert store.features("user", "bob") == {"b": 1.0}
    _, attrs = store.item_attributes()
    assert (attrs["x"].category, attrs["x"].available) == ("c1", False)
    assert store.version("user", "bob") == 1


BAD_RECORDS = [
    pytest.param(EntityRecord("user", ""), "non-empty", id="empty-id"),
    pytest.param(EntityRecord("user", "u", {"a": math.nan}), "non-finite", id="nan-weight"),
    pytest.param(EntityRecord("user", "u", {"a": math.inf}), "non-finite", id="inf-weight"),
    pytest.param(EntityRecord("shop", "s1"), "unknown entity kind", id="unknown-kind"),
    pytest.param(
        EntityRecord("item", "i", attributes={"available": "yes"}),
        "true or false",
        id="bad-available",
    ),
    pytest.param(
        EntityRecord("item", "i", attributes={"tags": "solo"}), "list of strings", id="tags-str"
    ),
    pytest.param(
        EntityRecord("item", "i", attributes={"created_at": "soon"}), "ISO-8601", id="bad-time"
    ),
    pytest.param(
        EntityRecord("item", "i", attributes={"colour": "red"}),
        "unknown item attribute",
        id="unknown-attr",
    ),
    pytest.param(
        EntityRecord("user", "u", attributes={"category": "x"}), "only items", id="user-attrs"
    ),
    pytest.param(EntityRecord("user", "u", {"f" * 600: 1.0}), "limit is 512", id="long-feature"),
]


@pytest.mark.parametrize(("bad", "reason"), BAD_RECORDS)
def test_a_bad_record_rejects_the_whole_batch(
    store: FeatureStore, bad: EntityRecord, reason: str
) -> None:
    store.upsert_entities(users(2))
    before = dump(store)
    batch = [*users(3, start=10), *items(3), bad, *users(2, start=20)]

    with pytest.raises(InvalidRecordError, match=reason) as info:
        store.upsert_entities(batch)

    assert info.value.index == 6
    assert info.value.entity_id == bad.id
    assert f"record #6 (id={bad.id!r})" in str(info.value)
    assert dump(store) == before


def test_a_database_failure_mid_batch_rolls_everything_back(store: FeatureStore) -> None:
    """A real trigger fails the last statement of the batch (item features)."""
    with store.engine.begin() as conn:
        if conn.dialect.name == "sqlite":
            conn.execute(
                text(
                    "CREATE TRIGGER no_666 BEFORE INSERT ON item_features WHEN NEW.weight = 666 "
                    "BEGIN SELECT RAISE(ABORT, 'weight 666 refused'); END"
                )
            )
        else:
            conn.execute(
                text(
                    "CREATE FUNCTION no_666() RETURNS trigger AS $$ BEGIN "
                    "IF NEW.weight = 666 THEN RAISE EXCEPTION 'weight 666 refused'; END IF; "
                    "RETURN NEW; END $$ LANGUAGE plpgsql"
                )
            )
            conn.execute(
                text(
                    "CREATE TRIGGER no_666 BEFORE INSERT ON item_features "
                    "FOR EACH ROW EXECUTE FUNCTION no_666()"
                )
            )
    store.upsert_entities(users(2))
    before = dump(store)

    with pytest.raises(StoreError, match="weight 666 refused"):
        store.upsert_entities(
            [*users(5, start=10), *items(4), EntityRecord("item", "evil", {"x": 666})]
        )

    assert dump(store) == before
    store.upsert_entities(items(4))  # the store is still usable
    assert store.count("item") == 4


def test_iter_entity_features_returns_every_entity(store: FeatureStore) -> None:
    store.upsert_entities([*users(30), EntityRecord("user", "plain"), *items(7)])
    got = dict(store.iter_entity_features("user"))
    assert len(got) == 31
    assert got["plain"] == {}
    assert got["u7"] == {"age=22": 1.0, "country=0": 1.0, "device=1": 0.5, "plan=1": 1.0}
    assert [i for i, _ in store.iter_entity_features("item")] == sorted(f"i{i}" for i in range(7))
    assert store.features("user", "nobody") is None
