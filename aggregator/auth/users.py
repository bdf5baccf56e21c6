"""The user store: users, password login, tokens, and the caller a token stands for.

Tokens are random (``hw_`` + 32 bytes, URL-safe base64), shown once and stored as their
SHA-256 only, so a copy of the database grants nothing. A dashboard login issues a
``session`` token (sent back as an HttpOnly cookie) that expires after
``session_ttl``; ``api`` tokens (people's scripts, machine clients such as a big-screen
kiosk or an exporter) expire when their ``expires_at`` says, or never. Disabling a user
ends all their tokens at once (each use checks the user).

Example:
    >>> from aggregator.store.state import StateStore
    >>> from aggregator.auth.models import User  # noqa: F401  (registers the tables)
    >>> state = StateStore("sqlite://"); state.create_all()
    >>> users = UserStore(state)
    >>> _ = users.add("wang", role=Role.HALL_MANAGER, halls=["h1"], password="西湖 hall 2026!")
    >>> users.login("wang", "西湖 hall 2026!", client="test") is not None
    True
    >>> users.login("wang", "guess", client="test") is None
    True
"""

from __future__ import annotations

import hashlib
import logging
import re
import secrets
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from aggregator.auth.models import ApiToken, AuthEvent, User
from aggregator.auth.passwords import hash_password, verify_password, weak_password_reason
from aggregator.auth.roles import Caller, Role
from aggregator.store.state import StateStore
from hallwatch.config.models import HallConfig
from hallwatch.contract import new_id, utcnow

logger = logging.getLogger(__name__)

TOKEN_PREFIX = "hw_"
USERNAME_PATTERN = r"^[a-z0-9][a-z0-9._-]{1,63}$"
_LAST_USED_EVERY = timedelta(minutes=1)


class UserError(ValueError):
    """A user operation that cannot be done (unknown user, weak password, bad scope…)."""


@dataclass(frozen=True, slots=True)
class UserInfo:
    """A user as listed (never with the password hash)."""

    username: str
    display_name: str
    role: Role
    halls: tuple[str, ...]
    regions: tuple[str, ...]
    disabled: bool
    has_password: bool
    created_at: datetime

    @classmethod
    def of(cls, row: User) -> UserInfo:
        """From a row."""
        return cls(row.username, row.display_name, Role(row.role), tuple(row.halls),
                   tuple(row.regions), row.disabled, row.password_hash is not None,
                   row.created_at)  # fmt: skip


@dataclass(frozen=True, slots=True)
class IssuedToken:
    """A token just issued: ``secret`` is shown this once and never stored."""

    id: str
    secret: str
    expires_at: datetime | None
    created_at: datetime


def token_digest(secret: str) -> str:
    """SHA-256 (hex) of a token, as stored."""
    return hashlib.sha256(secret.encode()).hexdigest()


def halls_of(
    role: Role, halls: Iterable[str], regions: Iterable[str], configs: Mapping[str, HallConfig]
) -> frozenset[str] | None:
    """The hall ids a scope admits (None: every hall).

    A hall manager is always limited to the halls listed. Others see every hall when
    neither halls nor regions are given, else the listed halls plus the halls whose
    ``region`` code starts with one of ``regions``.
    """
    listed, prefixes = frozenset(halls), tuple(regions)
    if role is Role.HALL_MANAGER:
        return listed
    if not listed and not prefixes:
        return None
    by_region = {
        hid
        for hid, config in configs.items()
        if prefixes and config.hall.region is not None and config.hall.region.startswith(prefixes)
    }
    return listed | by_region


class UserStore:
    """Users and tokens in the state database.

    Args:
        state: The state database (tables from :mod:`aggregator.auth.models`).
        halls: Hall configurations (regions resolve to halls through them).
        session_ttl: Lifetime of a dashboard session.
    """

    def __init__(
        self,
        state: StateStore,
        halls: Mapping[str, HallConfig] | None = None,
        *,
        session_ttl: timedelta = timedelta(hours=12),
    ) -> None:
        self.state = state
        self.halls = dict(halls or {})
        self.session_ttl = session_ttl

    # -- users --------------------------------------------------------------------------

    def add(
        self,
        username: str,
        *,
        role: Role,
        halls: Iterable[str] = (),
        regions: Iterable[str] = (),
        password: str | None = None,
        display_name: str | None = None,
        actor: str = "system",
        check_password: bool = True,
    ) -> UserInfo:
        """Add a user.

        Raises:
            UserError: The name is taken or malformed, the password weak, a hall manager
                without halls, or a hall unknown.
        """
        if not re.match(USERNAME_PATTERN, username):
            raise UserError(f"username {username!r}: lowercase letters, digits, . _ - (2-64)")
        halls, regions = sorted(set(halls)), sorted(set(regions))
        if role is Role.HALL_MANAGER and not halls:
            raise UserError("a hall manager needs at least one hall")
        unknown = [h for h in halls if self.halls and h not in self.halls]
        if unknown:
            raise UserError(f"unknown hall(s): {', '.join(unknown)}")
        if password is not None and check_password and (why := weak_password_reason(password)):
            raise UserError(f"password refused: {why}")
        now = utcnow()
        with self.state.session() as session:
            if session.get(User, username) is not None:
                raise UserError(f"user {username!r} exists")
            row = User(
                username=username, display_name=display_name or username, role=role.value,
                halls=halls, regions=regions,
                password_hash=hash_password(password) if password is not None else None,
                disabled=False, created_at=now, created_by=actor,
            )  # fmt: skip
            session.add(row)
            self._event(session, "user_added", username, actor, "", f"role {role.value}")
            session.flush()
            return UserInfo.of(row)

    def get(self, username: str) -> UserInfo | None:
        """One user (None: unknown)."""
        with self.state.read_session() as session:
            row = session.get(User, username)
            return UserInfo.of(row) if row is not None else None

    def all(self) -> list[UserInfo]:
        """Every user, by name."""
        with self.state.read_session() as session:
            return [UserInfo.of(r) for r in session.scalars(select(User).order_by(User.username))]

    def count(self, role: Role | None = None) -> int:
        """Users (of one role), enabled ones only."""
        with self.state.read_session() as session:
            query = select(User).where(User.disabled.is_(False))
            if role is not None:
                query = query.where(User.role == role.value)
            return len(session.scalars(query).all())

    def set_password(self, username: str, password: str, *, actor: str = "system") -> None:
        """Set a user's password; their dashboard sessions end.

        Raises:
            UserError: Unknown user or weak password.
        """
        if why := weak_password_reason(password):
            raise UserError(f"password refused: {why}")
        with self.state.session() as session:
            row = self._user(session, username)
            row.password_hash = hash_password(password)
            self._revoke_where(session, username, kind="session")
            self._event(session, "password_set", username, actor, "", "")

    def set_disabled(self, username: str, disabled: bool, *, actor: str = "system") -> None:
        """Disable (every token stops working) or enable a user.

        Raises:
            UserError: Unknown user.
        """
        with self.state.session() as session:
            row = self._user(session, username)
            row.disabled = disabled
            if disabled:
                self._revoke_where(session, username, kind=None)
            self._event(session, "disabled" if disabled else "enabled", username, actor, "", "")

    # -- login and tokens -----------------------------------------------------------------

    def login(self, username: str, password: str, *, client: str) -> IssuedToken | None:
        """Check a password; a dashboard session token, or None (recorded either way)."""
        with self.state.session() as session:
            row = session.get(User, username)
            ok = verify_password(row.password_hash if row else None, password)
            if row is None or not ok or row.disabled:
                why = (
                    "unknown user"
                    if row is None
                    else "disabled"
                    if row.disabled
                    else "bad password"
                )
                self._event(session, "login_failed", username[:64], username[:64], client, why)
                logger.warning("failed login for %r from %s (%s)", username[:64], client, why)
                return None
            issued = self._issue(session, row.username, "session", "dashboard",
                                 utcnow() + self.session_ttl)  # fmt: skip
            self._event(session, "login", row.username, row.username, client, issued.id)
            return issued

    def issue_token(
        self,
        username: str,
        name: str,
        *,
        expires_at: datetime | None = None,
        actor: str = "system",
    ) -> IssuedToken:
        """A new API token for a user (shown once).

        Raises:
            UserError: Unknown or disabled user.
        """
        with self.state.session() as session:
            row = self._user(session, username)
            if row.disabled:
                raise UserError(f"user {username!r} is disabled")
            issued = self._issue(session, username, "api", name[:100], expires_at)
            self._event(session, "token_issued", username, actor, "", f"{issued.id} {name}")
            return issued

    def revoke(self, token_id: str, *, actor: str = "system") -> bool:
        """Revoke a token by id; False if unknown or already revoked."""
        with self.state.session() as session:
            row = session.get(ApiToken, token_id)
            if row is None or row.revoked_at is not None:
                return False
            row.revoked_at = utcnow()
            self._event(session, "token_revoked", row.username, actor, "", token_id)
            return True

    def logout(self, secret: str) -> None:
        """End the dashboard session a token secret stands for (nothing for an unknown
        secret or an API token: those are revoked by id, by an admin)."""
        with self.state.session() as session:
            row = session.scalar(
                select(ApiToken).where(ApiToken.token_sha256 == token_digest(secret))
            )
            if row is not None and row.kind == "session" and row.revoked_at is None:
                row.revoked_at = utcnow()
                self._event(session, "logout", row.username, row.username, "", row.id)

    def caller(self, secret: str, *, kinds: Iterable[str] = ("api", "session")) -> Caller | None:
        """The caller a token stands for (None: unknown, expired, revoked, user disabled)."""
        if not secret.startswith(TOKEN_PREFIX):
            return None
        now = utcnow()
        with self.state.read_session() as session:
            found = session.execute(
                select(ApiToken, User)
                .join(User, User.username == ApiToken.username)
                .where(ApiToken.token_sha256 == token_digest(secret))
            ).first()
            if found is None:
                return None
            token, user = found
            if (
                token.kind not in set(kinds)
                or token.revoked_at is not None
                or (token.expires_at is not None and token.expires_at <= now)
                or user.disabled
            ):
                return None
            stale = token.last_used_at is None or now - token.last_used_at > _LAST_USED_EVERY
            token_id = token.id
            role = Role(user.role)
            halls = halls_of(role, user.halls, user.regions, self.halls)
            caller = Caller(name=user.username, role=role, halls=halls, token_id=token_id)
        if stale:  # at most once a minute per token: reads stay reads
            with self.state.session() as session:
                session.execute(
                    update(ApiToken).where(ApiToken.id == token_id).values(last_used_at=now)
                )
        return caller

    def tokens(self, username: str) -> list[ApiToken]:
        """A user's tokens that are still valid (newest first)."""
        now = utcnow()
        with self.state.read_session() as session:
            rows = session.scalars(
                select(ApiToken)
                .where(ApiToken.username == username, ApiToken.revoked_at.is_(None))
                .order_by(ApiToken.created_at.desc())
            ).all()
            session.expunge_all()
        return [r for r in rows if r.expires_at is None or r.expires_at > now]

    def events(self, limit: int = 100) -> list[AuthEvent]:
        """The newest access-control events."""
        with self.state.read_session() as session:
            rows = session.scalars(
                select(AuthEvent).order_by(AuthEvent.id.desc()).limit(limit)
            ).all()
            session.expunge_all()
            return list(rows)

    # -- helpers -----------------------------------------------------------------------

    @staticmethod
    def _user(session: Session, username: str) -> User:
        row = session.get(User, username)
        if row is None:
            raise UserError(f"unknown user {username!r}")
        return row

    @staticmethod
    def _issue(
        session: Session, username: str, kind: str, name: str, expires_at: datetime | None
    ) -> IssuedToken:
        secret = TOKEN_PREFIX + secrets.token_urlsafe(32)
        row = ApiToken(
            id=new_id(), username=username, kind=kind, name=name,
            token_sha256=token_digest(secret), created_at=utcnow(), expires_at=expires_at,
            last_used_at=None, revoked_at=None,
        )  # fmt: skip
        session.add(row)
        return IssuedToken(row.id, secret, expires_at, row.created_at)

    @staticmethod
    def _revoke_where(session: Session, username: str, *, kind: str | None) -> None:
        query = update(ApiToken).where(ApiToken.username == username, ApiToken.revoked_at.is_(None))
        if kind is not None:
            query = query.where(ApiToken.kind == kind)
        session.execute(query.values(revoked_at=utcnow()))

    @staticmethod
    def _event(
        session: Session, event: str, username: str, actor: str, client: str, detail: str
    ) -> None:
        session.add(AuthEvent(at=utcnow(), event=event, username=username, actor=actor,
                              client=client[:64], detail=detail[:500]))  # fmt: skip
