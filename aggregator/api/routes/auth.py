"""Sign in and out of the dashboard, and who am I.

``POST /api/v1/auth/login`` checks a password and sets the session cookie (HttpOnly,
SameSite=Strict, Secure on HTTPS deployments); the answer also carries the session token
for clients that prefer a header. ``POST /api/v1/auth/logout`` ends the session.
``GET /api/v1/auth/me`` says who the caller is and which halls they see.
"""

from __future__ import annotations

from fastapi import APIRouter, HTTPException, Request, Response, status
from pydantic import BaseModel, Field

from aggregator.api.deps import SESSION_COOKIE, CallerDep, HallsDep, ServicesDep, credentials
from hallwatch.contract import utcnow

public = APIRouter(prefix="/auth", tags=["auth"])
"""Routes without a caller: sign in and out."""
router = APIRouter(prefix="/auth", tags=["auth"])


class LoginIn(BaseModel):
    """Username and password."""

    username: str = Field(min_length=1, max_length=64, description="Username.")
    password: str = Field(min_length=1, max_length=256, description="Password.")


class SessionOut(BaseModel):
    """A dashboard session."""

    username: str = Field(description="Who signed in.")
    role: str = Field(description="Their role.")
    token: str = Field(description="The session token (also set as the session cookie).")
    expires_at: str | None = Field(description="When the session ends (UTC, ISO 8601).")


class MeOut(BaseModel):
    """The caller."""

    username: str = Field(description="Username.")
    role: str = Field(description="Role.")
    halls: list[str] = Field(description="Halls the caller sees.")
    all_halls: bool = Field(description="Whether the caller sees every hall, present and future.")


@public.post("/login", response_model=SessionOut, summary="Sign in (dashboard session)")
def login(body: LoginIn, request: Request, response: Response, services: ServicesDep) -> SessionOut:
    """Check the password; 401 (the same answer for an unknown user) if it is wrong."""
    if services.users is None:
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, "no user store")
    client = request.client.host if request.client else ""
    issued = services.users.login(body.username, body.password, client=client)
    if issued is None:
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, "wrong username or password")
    caller = services.users.caller(issued.secret)
    assert caller is not None
    max_age = int((issued.expires_at - utcnow()).total_seconds()) if issued.expires_at else None
    response.set_cookie(
        SESSION_COOKIE, issued.secret, max_age=max_age, httponly=True, samesite="strict",
        secure=services.cookie_secure, path="/",
    )  # fmt: skip
    expires = issued.expires_at.isoformat() if issued.expires_at else None
    return SessionOut(username=caller.name, role=caller.role.value, token=issued.secret,
                      expires_at=expires)  # fmt: skip


@public.post("/logout", status_code=status.HTTP_204_NO_CONTENT, summary="Sign out")
def logout(request: Request, response: Response, services: ServicesDep) -> None:
    """End the session of the cookie (or bearer session token) sent; always 204."""
    given = credentials(request)
    if given is not None and services.users is not None:
        services.users.logout(given.secret)
    response.delete_cookie(SESSION_COOKIE, path="/")


@router.get("/me", response_model=MeOut, summary="Who am I")
def me(caller: CallerDep, halls: HallsDep) -> MeOut:
    """The caller's name, role and visible halls."""
    return MeOut(username=caller.name, role=caller.role.value, halls=sorted(halls),
                 all_halls=caller.halls is None)  # fmt: skip
