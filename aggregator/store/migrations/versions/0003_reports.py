"""Report runs (issue 5): one row per produced daily report, monthly statistics, bulletin.

Written by hand to match :class:`aggregator.reports.runs.ReportRun`.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-22 11:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | Sequence[str] | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Apply this revision."""
    op.create_table(
        "report_runs",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("hall", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("period", sa.String(length=10), nullable=False),
        sa.Column("produced_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("digest", sa.String(length=64), nullable=False),
        sa.Column("push_state", sa.String(length=16), nullable=False),
        sa.Column("push_attempts", sa.Integer(), nullable=False),
        sa.Column("push_error", sa.String(length=500), nullable=False),
        sa.Column("pushed_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_report_runs")),
        sa.UniqueConstraint("hall", "kind", "period", name="uq_report_runs_hall_kind_period"),
    )
    op.create_index("report_runs_by_push_state", "report_runs", ["push_state"], unique=False)


def downgrade() -> None:
    """Revert this revision."""
    op.drop_index("report_runs_by_push_state", table_name="report_runs")
    op.drop_table("report_runs")
