"""The export audit log (issue 5): one row per export of data for auditors.

Written by hand to match :class:`aggregator.export.audit.ExportAudit`.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22 10:40:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Apply this revision."""
    op.create_table(
        "export_audit",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("actor", sa.String(length=64), nullable=False),
        sa.Column("via", sa.String(length=16), nullable=False),
        sa.Column("hall", sa.String(length=64), nullable=True),
        sa.Column("dataset", sa.String(length=80), nullable=False),
        sa.Column("format", sa.String(length=16), nullable=False),
        sa.Column("filters", sa.Text(), nullable=False),
        sa.Column("rows", sa.Integer(), nullable=False),
        sa.Column("completed", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_export_audit")),
    )
    op.create_index("export_audit_by_at", "export_audit", ["at"], unique=False)


def downgrade() -> None:
    """Revert this revision."""
    op.drop_index("export_audit_by_at", table_name="export_audit")
    op.drop_table("export_audit")
