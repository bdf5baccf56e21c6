"""Alert routing (issue 6): routed alerts and their escalation state, the notifications
sent, and people's actions on alerts (acknowledge, resolve, comment).

Written by hand to match :mod:`aggregator.notify.records`.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-22 14:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | Sequence[str] | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Apply this revision."""
    op.create_table(
        "routed_alerts",
        sa.Column("alert_id", sa.String(length=40), nullable=False),
        sa.Column("hall", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("subject", sa.String(length=80), nullable=True),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("level", sa.Integer(), nullable=False),
        sa.Column("level_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("stage", sa.String(length=16), nullable=False),
        sa.Column("flapping", sa.Boolean(), nullable=False),
        sa.Column("payload", sa.Text(), nullable=False),
        sa.Column("opened_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("resolved_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("alert_id", name=op.f("pk_routed_alerts")),
    )
    op.create_index("routed_alerts_open", "routed_alerts", ["state", "hall"], unique=False)
    op.create_index(
        "routed_alerts_by_subject", "routed_alerts", ["hall", "kind", "subject"], unique=False
    )

    op.create_table(
        "alert_notifications",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("alert_id", sa.String(length=40), nullable=False),
        sa.Column("hall", sa.String(length=64), nullable=False),
        sa.Column("recipient", sa.String(length=64), nullable=False),
        sa.Column("level", sa.Integer(), nullable=False),
        sa.Column("channel", sa.String(length=8), nullable=False),
        sa.Column("event", sa.String(length=16), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("outcome", sa.String(length=16), nullable=False),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("detail", sa.String(length=200), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_alert_notifications")),
        sa.UniqueConstraint(
            "alert_id",
            "recipient",
            "level",
            "channel",
            "event",
            name="uq_alert_notifications_once",
        ),
    )
    op.create_index(
        "alert_notifications_by_recipient",
        "alert_notifications",
        ["hall", "recipient", "channel", "sent_at"],
        unique=False,
    )
    op.create_index(
        "alert_notifications_by_outcome", "alert_notifications", ["outcome", "hall"], unique=False
    )

    op.create_table(
        "alert_actions",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("alert_id", sa.String(length=40), nullable=False),
        sa.Column("hall", sa.String(length=64), nullable=False),
        sa.Column("action", sa.String(length=16), nullable=False),
        sa.Column("actor", sa.String(length=64), nullable=False),
        sa.Column("role", sa.String(length=32), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("note", sa.String(length=500), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_alert_actions")),
    )
    op.create_index("alert_actions_by_alert", "alert_actions", ["alert_id", "at"], unique=False)
    op.create_index(
        "alert_actions_one_acknowledge",
        "alert_actions",
        ["alert_id"],
        unique=True,
        sqlite_where=sa.text("action = 'acknowledge'"),
        postgresql_where=sa.text("action = 'acknowledge'"),
    )


def downgrade() -> None:
    """Revert this revision."""
    op.drop_index("alert_actions_one_acknowledge", table_name="alert_actions")
    op.drop_index("alert_actions_by_alert", table_name="alert_actions")
    op.drop_table("alert_actions")
    op.drop_index("alert_notifications_by_outcome", table_name="alert_notifications")
    op.drop_index("alert_notifications_by_recipient", table_name="alert_notifications")
    op.drop_table("alert_notifications")
    op.drop_index("routed_alerts_by_subject", table_name="routed_alerts")
    op.drop_index("routed_alerts_open", table_name="routed_alerts")
    op.drop_table("routed_alerts")
