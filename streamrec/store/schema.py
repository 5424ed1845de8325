"""The tables of the feature store (SQLAlchemy 2 declarative, typed ``Mapped`` columns).

Every change the store makes is stamped with a *change sequence*: one counter row
(``store_counters``) that each writing transaction increments first.  Taking that row
lock serialises writers, so sequences commit in order and ``max(items.attributes_seq)``
is a safe change marker: when a reader sees N, every change numbered below N is visible.

The migrations in ``streamrec/store/migrations`` create exactly these tables; a test
compares them (``alembic check`` style).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

#: Change-sequence counter name in ``store_counters``.
CHANGE_SEQ = "change_seq"

ID_LENGTH = 512
NAME_LENGTH = 512

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class Counter(Base):
    """Named monotonic counters; ``change_seq`` stamps every write batch."""

    __tablename__ = "store_counters"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[int] = mapped_column(BigInteger, nullable=False)


class User(Base):
    __tablename__ = "users"

    id: Mapped[str] = mapped_column(String(ID_LENGTH), primary_key=True)
    #: 1 on insert, +1 on every change that altered the row or its features.
    version: Mapped[int] = mapped_column(Integer, nullable=False)
    #: Change sequence of the last change.
    seq: Mapped[int] = mapped_column(BigInteger, nullable=False)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)


class Item(Base):
    __tablename__ = "items"
    __table_args__ = (Index("ix_items_attributes_seq", "attributes_seq"),)

    id: Mapped[str] = mapped_column(String(ID_LENGTH), primary_key=True)
    category: Mapped[str | None] = mapped_column(String(NAME_LENGTH), nullable=True)
    available: Mapped[bool] = mapped_column(Boolean, nullable=False)
    #: The item's own creation time (an attribute for filters, not the row's).
    created_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    #: Sorted list of distinct tags.
    tags: Mapped[list[str]] = mapped_column(JSON, nullable=False)
    version: Mapped[int] = mapped_column(Integer, nullable=False)
    seq: Mapped[int] = mapped_column(BigInteger, nullable=False)
    #: Change sequence of the last change to the filter attributes (the cache marker).
    attributes_seq: Mapped[int] = mapped_column(BigInteger, nullable=False)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)


class FeatureDefinition(Base):
    """Every feature name ever seen, per entity kind ('user' or 'item')."""

    __tablename__ = "feature_definitions"
    __table_args__ = (UniqueConstraint("kind", "name", name="uq_feature_definitions_kind_name"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    kind: Mapped[str] = mapped_column(String(8), nullable=False)
    name: Mapped[str] = mapped_column(String(NAME_LENGTH), nullable=False)
    first_seq: Mapped[int] = mapped_column(BigInteger, nullable=False)


class _FeatureWeight:
    """A feature of an entity and its weight (the entity's key is the subclass's)."""

    feature_id: Mapped[int] = mapped_column(ForeignKey("feature_definitions.id"), primary_key=True)
    weight: Mapped[float] = mapped_column(Float, nullable=False)


class UserFeature(Base, _FeatureWeight):
    __tablename__ = "user_features"

    user_id: Mapped[str] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )


class ItemFeature(Base, _FeatureWeight):
    __tablename__ = "item_features"

    item_id: Mapped[str] = mapped_column(
        ForeignKey("items.id", ondelete="CASCADE"), primary_key=True
    )


class Checkpoint(Base):
    """Registry of model checkpoints: where they are and what they had consumed."""

    __tablename__ = "checkpoints"

    version: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    path: Mapped[str] = mapped_column(String(4096), nullable=False)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    #: Consumed offsets, e.g. ``{"interactions": {"0": 1234}}``.
    offsets: Mapped[dict[str, Any]] = mapped_column(JSON, nullable=False)
    metrics: Mapped[dict[str, Any]] = mapped_column(JSON, nullable=False)


def _table(model: type[Base]) -> Table:
    return cast(Table, model.__table__)


@dataclass(frozen=True, slots=True)
class KindTables:
    """The Core tables of one entity kind, and the column naming the owner of a value."""

    entity: Table
    features: Table
    owner: Column[Any]


USERS, ITEMS = _table(User), _table(Item)
USER_FEATURES, ITEM_FEATURES = _table(UserFeature), _table(ItemFeature)
FEATURE_DEFINITIONS, CHECKPOINTS, COUNTERS = (
    _table(FeatureDefinition),
    _table(Checkpoint),
    _table(Counter),
)
TABLES = {
    "user": KindTables(USERS, USER_FEATURES, USER_FEATURES.c.user_id),
    "item": KindTables(ITEMS, ITEM_FEATURES, ITEM_FEATURES.c.item_id),
}
