"""Users and tokens (admins only), and the access-control event log.

- ``GET /api/v1/users``, ``POST /api/v1/users``: list, add (role, halls, regions,
  optional password — machine clients have none and use tokens);
- ``POST /api/v1/users/{username}/password``, ``…/disable``, ``…/enable``;
- ``GET/POST /api/v1/users/{username}/tokens``: a user's valid tokens (never their
  secrets), issue one (its secret is in the answer, once);
- ``DELETE /api/v1/tokens/{token_id}``: revoke;
- ``GET /api/v1/auth-events``: logins, failures, tokens issued and revoked, user changes.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Query, status
from pydantic import BaseModel, Field

from aggregator.api.deps import Caller, Role, ServicesDep, require_roles
from aggregator.api.params import ApiTime
from aggregator.auth.users import USERNAME_PATTERN, UserError, UserInfo, UserStore
from hallwatch.contract import utcnow

router = APIRouter(tags=["users"])


def _global_admin(caller: Annotated[Caller, Depends(require_roles(Role.ADMIN))]) -> Caller:
    """An admin who sees every hall: only they manage users and tokens (an admin scoped to
    halls could otherwise make themselves a global one)."""
    if caller.halls is not None:
        raise HTTPException(
            status.HTTP_403_FORBIDDEN, "only an admin of every hall manages users and tokens"
        )
    return caller


AdminDep = Annotated[Caller, Depends(_global_admin)]


class UserIn(BaseModel):
    """A new user."""

    username: str = Field(pattern=USERNAME_PATTERN, description="Login name.")
    display_name: str | None = Field(default=None, max_length=100, description="Shown name.")
    role: Role = Field(description="Role.")
    halls: list[str] = Field(
        default=[], max_length=500, description="Halls (hall managers: required)."
    )
    regions: list[str] = Field(
        default=[], max_length=50, description="行政区划代码 prefixes (officers, auditors)."
    )
    password: str | None = Field(
        default=None, max_length=256, description="Password (none: token-only machine client)."
    )


class UserOut(BaseModel):
    """A user (never the password)."""

    username: str
    display_name: str
    role: Role
    halls: list[str]
    regions: list[str]
    disabled: bool
    has_password: bool
    created_at: datetime

    @classmethod
    def of(cls, info: UserInfo) -> UserOut:
        """From the store's record."""
        return cls(username=info.username, display_name=info.display_name, role=info.role,
                   halls=list(info.halls), regions=list(info.regions), disabled=info.disabled,
                   has_password=info.has_password, created_at=info.created_at)  # fmt: skip


class PasswordIn(BaseModel):
    """A new password."""

    password: str = Field(min_length=1, max_length=256, description="The new password.")


class TokenIn(BaseModel):
    """A token to issue."""

    name: str = Field(min_length=1, max_length=100, description="What it is for.")
    expires_at: ApiTime | None = Field(
        default=None, description="Expiry, in the future (UTC if naive; none: never)."
    )


class TokenOut(BaseModel):
    """A token (its secret only when just issued)."""

    id: str
    name: str
    kind: str
    created_at: datetime
    expires_at: datetime | None
    last_used_at: datetime | None
    secret: str | None = Field(default=None, description="Shown once, at issue.")


class AuthEventOut(BaseModel):
    """An access-control event."""

    at: datetime
    event: str
    username: str
    actor: str
    client: str
    detail: str


def _users(services: ServicesDep) -> UserStore:
    if services.users is None:
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, "no user store")
    return services.users


UsersDep = Annotated[UserStore, Depends(_users)]


def _known(users: UserStore, username: str) -> None:
    if users.get(username) is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"unknown user {username!r}")


@router.get("/users", response_model=list[UserOut], summary="Users")
def list_users(_admin: AdminDep, users: UsersDep) -> list[UserOut]:
    """Every user."""
    return [UserOut.of(u) for u in users.all()]


@router.post("/users", response_model=UserOut, status_code=201, summary="Add a user")
def add_user(body: UserIn, admin: AdminDep, users: UsersDep) -> UserOut:
    """Add a user; 409 if the name is taken, 422 for a weak password or a bad scope."""
    if users.get(body.username) is not None:
        raise HTTPException(status.HTTP_409_CONFLICT, f"user {body.username!r} exists")
    try:
        info = users.add(body.username, role=body.role, halls=body.halls, regions=body.regions,
                         password=body.password, display_name=body.display_name,
                         actor=admin.name)  # fmt: skip
    except UserError as exc:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, str(exc)) from exc
    return UserOut.of(info)


@router.post("/users/{username}/password", status_code=204, summary="Set a password")
def set_password(username: str, body: PasswordIn, admin: AdminDep, users: UsersDep) -> None:
    """Set the password (the user's dashboard sessions end); 422 if weak."""
    _known(users, username)
    try:
        users.set_password(username, body.password, actor=admin.name)
    except UserError as exc:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, str(exc)) from exc


@router.post("/users/{username}/disable", status_code=204, summary="Disable a user")
def disable_user(username: str, admin: AdminDep, users: UsersDep) -> None:
    """Disable: every token and session of the user stops working."""
    _known(users, username)
    if username == admin.name:
        raise HTTPException(status.HTTP_409_CONFLICT, "you cannot disable yourself")
    users.set_disabled(username, True, actor=admin.name)


@router.post("/users/{username}/enable", status_code=204, summary="Enable a user")
def enable_user(username: str, admin: AdminDep, users: UsersDep) -> None:
    """Enable a disabled user (their old tokens stay revoked)."""
    _known(users, username)
    users.set_disabled(username, False, actor=admin.name)


@router.get("/users/{username}/tokens", response_model=list[TokenOut], summary="Tokens")
def list_tokens(username: str, _admin: AdminDep, users: UsersDep) -> list[TokenOut]:
    """A user's valid tokens and sessions (no secrets)."""
    _known(users, username)
    return [TokenOut(id=t.id, name=t.name, kind=t.kind, created_at=t.created_at,
                     expires_at=t.expires_at, last_used_at=t.last_used_at)
            for t in users.tokens(username)]  # fmt: skip


@router.post(
    "/users/{username}/tokens", response_model=TokenOut, status_code=201, summary="Issue a token"
)
def issue_token(username: str, body: TokenIn, admin: AdminDep, users: UsersDep) -> TokenOut:
    """Issue an API token; its secret is in this answer only."""
    _known(users, username)
    expires = body.expires_at
    if expires is not None and expires.tzinfo is None:
        expires = expires.replace(tzinfo=UTC)
    if expires is not None and expires <= utcnow():
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, "expires_at is in the past")
    try:
        issued = users.issue_token(username, body.name, expires_at=expires, actor=admin.name)
    except UserError as exc:
        raise HTTPException(status.HTTP_409_CONFLICT, str(exc)) from exc
    return TokenOut(id=issued.id, name=body.name, kind="api", created_at=issued.created_at,
                    expires_at=issued.expires_at, last_used_at=None,
                    secret=issued.secret)  # fmt: skip


@router.delete("/tokens/{token_id}", status_code=204, summary="Revoke a token")
def revoke_token(token_id: str, admin: AdminDep, users: UsersDep) -> None:
    """Revoke a token or session; 404 if unknown or already revoked."""
    if not users.revoke(token_id, actor=admin.name):
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no valid token {token_id!r}")


@router.get("/auth-events", response_model=list[AuthEventOut], summary="Access-control log")
def auth_events(
    _admin: AdminDep,
    users: UsersDep,
    limit: Annotated[int, Query(ge=1, le=1000, description="Newest N.")] = 100,
) -> list[AuthEventOut]:
    """Logins, failed logins, tokens issued and revoked, user changes; newest first."""
    return [AuthEventOut(at=e.at, event=e.event, username=e.username, actor=e.actor,
                         client=e.client, detail=e.detail)
            for e in users.events(limit)]  # fmt: skip
