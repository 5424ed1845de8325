"""Initial schema: users, items, features, values, checkpoints, change counter.

Revision ID: 0001
Revises:
Create Date: 2026-11-22
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    counters = op.create_table(
        "store_counters",
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("value", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_store_counters")),
    )
    op.bulk_insert(counters, [{"name": "change_seq", "value": 0}])
    op.create_table(
        "users",
        sa.Column("id", sa.String(length=512), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_users")),
    )
    op.create_table(
        "items",
        sa.Column("id", sa.String(length=512), nullable=False),
        sa.Column("category", sa.String(length=512), nullable=True),
        sa.Column("available", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("tags", sa.JSON(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("attributes_seq", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_items")),
    )
    op.create_index("ix_items_attributes_seq", "items", ["attributes_seq"], unique=False)
    op.create_table(
        "feature_definitions",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("kind", sa.String(length=8), nullable=False),
        sa.Column("name", sa.String(length=512), nullable=False),
        sa.Column("first_seq", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_feature_definitions")),
        sa.UniqueConstraint("kind", "name", name="uq_feature_definitions_kind_name"),
    )
    for kind, owner in (("user", "users"), ("item", "items")):
        table = f"{kind}_features"
        op.create_table(
            table,
            sa.Column(f"{kind}_id", sa.String(length=512), nullable=False),
            sa.Column("feature_id", sa.Integer(), nullable=False),
            sa.Column("weight", sa.Float(), nullable=False),
            sa.ForeignKeyConstraint(
                ["feature_id"],
                ["feature_definitions.id"],
                name=op.f(f"fk_{table}_feature_id_feature_definitions"),
            ),
            sa.ForeignKeyConstraint(
                [f"{kind}_id"],
                [f"{owner}.id"],
                name=op.f(f"fk_{table}_{kind}_id_{owner}"),
                ondelete="CASCADE",
            ),
            sa.PrimaryKeyConstraint(f"{kind}_id", "feature_id", name=op.f(f"pk_{table}")),
        )
    op.create_table(
        "checkpoints",
        sa.Column("version", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("path", sa.String(length=4096), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("offsets", sa.JSON(), nullable=False),
        sa.Column("metrics", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("version", name=op.f("pk_checkpoints")),
    )


def downgrade() -> None:
    op.drop_table("checkpoints")
    op.drop_table("user_features")
    op.drop_table("item_features")
    op.drop_table("feature_definitions")
    op.drop_index("ix_items_attributes_seq", table_name="items")
    op.drop_table("items")
    op.drop_table("users")
    op.drop_table("store_counters")
