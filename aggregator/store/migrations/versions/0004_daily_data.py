"""Daily data entered by hand or imported (issue 5): one row per hall, day, source, item
and window.

Written by hand to match :class:`aggregator.reports.daily_data.DailyData`.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-22 11:10:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | Sequence[str] | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Apply this revision."""
    op.create_table(
        "daily_data",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("hall", sa.String(length=64), nullable=False),
        sa.Column("day", sa.String(length=10), nullable=False),
        sa.Column("source", sa.String(length=64), nullable=False),
        sa.Column("item", sa.String(length=32), nullable=False),
        sa.Column("window", sa.String(length=32), nullable=False),
        sa.Column("value", sa.Float(), nullable=False),
        sa.Column("note", sa.String(length=500), nullable=False),
        sa.Column("entered_by", sa.String(length=64), nullable=False),
        sa.Column("entered_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_daily_data")),
        sa.UniqueConstraint(
            "hall", "day", "source", "item", "window", name="uq_daily_data_hall_day_source_item"
        ),
    )


def downgrade() -> None:
    """Revert this revision."""
    op.drop_table("daily_data")
