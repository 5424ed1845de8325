"""Read queries: item attributes for filters, entity features for re-onboarding."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from sqlalchemy import Connection, Engine, func, select

from streamrec.store._writer import load_features
from streamrec.store.records import EntityKind, ItemAttributes, to_utc
from streamrec.store.schema import FEATURE_DEFINITIONS, ITEMS, TABLES

#: Rows fetched per round trip when streaming a whole table.
YIELD_PER = 2000


def attributes_version(conn: Connection) -> int:
    """The change marker of item attributes: the sequence of the newest attribute change."""
    newest = select(func.coalesce(func.max(ITEMS.c.attributes_seq), 0))
    return int(conn.execute(newest).scalar_one())


def item_attributes(conn: Connection, since: int = 0) -> tuple[int, dict[str, ItemAttributes]]:
    """``(version, {item_id: attributes})`` of the items whose attributes changed after ``since``.

    The version is read first: rows changed by a concurrent commit may come back too,
    and will again next time, which is harmless; a change is never skipped.
    """
    version = attributes_version(conn)
    c = ITEMS.c
    stmt = select(c.id, c.category, c.available, c.created_at, c.tags)
    if since:
        stmt = stmt.where(c.attributes_seq > since)
    out = {row.id: _attributes(row._mapping) for row in conn.execute(stmt)}
    return version, out


def _attributes(row: Any) -> ItemAttributes:
    created = row["created_at"]
    return ItemAttributes(
        item_id=row["id"],
        category=row["category"],
        available=bool(row["available"]),
        created_at=None if created is None else to_utc(created),
        tags=frozenset(row["tags"] or ()),
    )


def iter_entity_features(
    engine: Engine, kind: EntityKind
) -> Iterator[tuple[str, dict[str, float]]]:
    """Every entity of ``kind`` with its features, ordered by id (streamed, not loaded)."""
    tables = TABLES[kind]
    ids, fdef, values = tables.entity.c.id, FEATURE_DEFINITIONS.c, tables.features.c
    stmt = (
        select(ids, fdef.name, values.weight)
        .select_from(tables.entity)
        .outerjoin(tables.features, tables.owner == ids)
        .outerjoin(FEATURE_DEFINITIONS, fdef.id == values.feature_id)
        .order_by(ids)
    )
    with engine.connect() as conn:
        conn = conn.execution_options(stream_results=True, yield_per=YIELD_PER)
        current: str | None = None
        features: dict[str, float] = {}
        for eid, name, weight in conn.execute(stmt):
            if eid != current:
                if current is not None:
                    yield current, features
                current, features = eid, {}
            if name is not None:
                features[name] = weight
        if current is not None:
            yield current, features


def entity_features(conn: Connection, kind: EntityKind, entity_id: str) -> dict[str, float] | None:
    """One entity's features, or None if the store has never seen it."""
    ids = TABLES[kind].entity.c.id
    if conn.execute(select(ids).where(ids == entity_id)).first() is None:
        return None
    return load_features(conn, kind, [entity_id]).get(entity_id, {})


def entity_version(conn: Connection, kind: EntityKind, entity_id: str) -> int | None:
    c = TABLES[kind].entity.c
    return conn.execute(select(c.version).where(c.id == entity_id)).scalar_one_or_none()


def count(conn: Connection, kind: EntityKind) -> int:
    return int(conn.execute(select(func.count()).select_from(TABLES[kind].entity)).scalar_one())
