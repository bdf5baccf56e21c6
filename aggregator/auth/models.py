"""Tables of access control: users, their tokens, and the record of what happened.

A user has one role and a scope: ``halls`` (hall ids) and/or ``regions`` (行政区划代码
prefixes); both empty means every hall (a provincial officer, an auditor of the whole
system, an admin). Tokens are never stored, only their SHA-256: an API token for a person
or a machine client (an exporter, a big-screen kiosk), or a dashboard session made at
login. ``auth_events`` records logins (and failures), tokens issued and revoked, and user
changes.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, Boolean, ForeignKey, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from aggregator.store.state import Base


class User(Base):
    """A person or machine client of the API."""

    __tablename__ = "users"

    username: Mapped[str] = mapped_column(String(64), primary_key=True)
    display_name: Mapped[str] = mapped_column(String(100))
    role: Mapped[str] = mapped_column(String(32))
    halls: Mapped[list[str]] = mapped_column(JSON)
    regions: Mapped[list[str]] = mapped_column(JSON)
    password_hash: Mapped[str | None] = mapped_column(String(255))
    disabled: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime]
    created_by: Mapped[str] = mapped_column(String(64))


class ApiToken(Base):
    """A bearer token (API or machine client) or a dashboard session."""

    __tablename__ = "api_tokens"

    id: Mapped[str] = mapped_column(String(26), primary_key=True)
    username: Mapped[str] = mapped_column(
        String(64), ForeignKey("users.username", ondelete="CASCADE"), index=True
    )
    kind: Mapped[str] = mapped_column(String(16))  # "api" or "session"
    name: Mapped[str] = mapped_column(String(100))
    token_sha256: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime]
    expires_at: Mapped[datetime | None]
    last_used_at: Mapped[datetime | None]
    revoked_at: Mapped[datetime | None]


class AuthEvent(Base):
    """One access-control event: login, failed login, logout, token issued or revoked,
    user added or changed."""

    __tablename__ = "auth_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(index=True)
    event: Mapped[str] = mapped_column(String(32))
    username: Mapped[str] = mapped_column(String(64), index=True)
    actor: Mapped[str] = mapped_column(String(64))
    client: Mapped[str] = mapped_column(String(64))
    detail: Mapped[str] = mapped_column(Text)
