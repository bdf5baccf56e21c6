"""How far the dedup ledger was purged: ``ledger_horizon``, one row.

The ingest refuses facts observed before it as well as those older than
``ledger_retention_days``, so a retention raised after a purge (or a replica set to a
longer one) does not accept again the facts whose ledger rows are gone.

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-22 20:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | Sequence[str] | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Apply this revision."""
    op.create_table(
        "ledger_horizon",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("forgotten_before", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ledger_horizon")),
    )


def downgrade() -> None:
    """Undo this revision."""
    op.drop_table("ledger_horizon")
