"""FastAPI dependencies, as ``Annotated`` aliases (FastAPI full-stack template style).

Routes never reach into ``app.state`` themselves; they declare what they need:
``StateDep`` (the state database), ``HallsDep`` (the halls the caller may see),
``HallDep`` (one of them, from the ``{hall}`` path parameter, 404 otherwise), ``BusDep``
(the live bus) and ``ServicesDep`` (everything).

Access control (:func:`get_caller`, ``CallerDep``, :func:`require_roles`): every
``/api/v1`` route needs a caller — a bearer token or the dashboard's session cookie, looked
up in the user store (:mod:`aggregator.auth`) — and sees only the caller's halls through
``HallsDep``; routes that change something declare the roles they admit. Tests stand in a
caller with ``app.dependency_overrides[get_caller]``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Annotated

from fastapi import Depends, HTTPException, Request, status

from aggregator.alerts import AlertSink
from aggregator.auth.roles import Caller, Role
from aggregator.auth.users import UserStore
from aggregator.bus import LiveBus
from aggregator.cases.register import CaseRegister
from aggregator.store.state import StateStore
from aggregator.store.timeseries import TimeSeriesStore
from hallwatch.config.models import HallConfig

if TYPE_CHECKING:
    from aggregator.reports.runs import ReportRunner


@dataclass
class ApiServices:
    """What the API serves from.

    Attributes:
        state: The state database.
        halls: Hall configurations by id.
        bus: Live bus (SSE).
        mqtt_connected: Reports whether ingest is connected to the broker (None: no MQTT,
            e.g. in tests; health then reports ``mqtt: not configured`` and stays ok).
        sse_heartbeat_s: Period of the heartbeat comment on ``/api/v1/live``.
        cases: The 异常办件 register (None: one over ``state`` and ``halls`` is made on
            first use, without notifications).
        series: The time-series store (occupancy and flow ranges; None: those routes
            answer 503).
        evidence_retention_days: Days snapshots are kept (named when a purged one is asked
            for).
        reports: The report runner (None: the report routes answer 503).
        users: The user store (None: nobody can sign in; tests override the caller).
        cookie_secure: Whether the session cookie is marked Secure (HTTPS deployments).
        alert_sink: Where alerts changed through the API go out (hall topic, live bus,
            router); None: nowhere.
    """

    state: StateStore
    halls: Mapping[str, HallConfig]
    bus: LiveBus = field(default_factory=LiveBus)
    cases: CaseRegister | None = None
    mqtt_connected: Callable[[], bool] | None = None
    sse_heartbeat_s: float = 15.0
    series: TimeSeriesStore | None = None
    evidence_retention_days: int = 180
    reports: ReportRunner | None = None
    users: UserStore | None = None
    cookie_secure: bool = False
    alert_sink: AlertSink | None = None


def get_services(request: Request) -> ApiServices:
    """The services the app was created with."""
    services: ApiServices = request.app.state.services
    return services


ServicesDep = Annotated[ApiServices, Depends(get_services)]

__all__ = ["Caller", "Role"]  # re-exported: routes import them from here


def get_state(services: ServicesDep) -> StateStore:
    """The state database."""
    return services.state


def get_bus(services: ServicesDep) -> LiveBus:
    """The live bus."""
    return services.bus


SESSION_COOKIE = "hallwatch_session"
"""The dashboard's session cookie (HttpOnly, SameSite=Strict): a session token."""
CSRF_HEADER = "X-HallWatch-Request"
"""Header a cookie-authenticated request must carry to change anything (any value): a
page of another site cannot set it, so it cannot act with the user's cookie."""
_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


@dataclass(frozen=True, slots=True)
class Credentials:
    """What a request authenticates with: a token secret, the token kinds it may be, and
    whether it came in the session cookie."""

    secret: str
    kinds: tuple[str, ...]
    from_cookie: bool


def credentials(request: Request) -> Credentials | None:
    """The request's bearer token, else its session cookie (None: neither)."""
    scheme, _, value = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return Credentials(value.strip(), ("api", "session"), from_cookie=False)
    cookie = request.cookies.get(SESSION_COOKIE)
    if cookie is not None:
        return Credentials(cookie, ("session",), from_cookie=True)
    return None


def get_caller(request: Request, services: ServicesDep) -> Caller:
    """The caller of this request, from ``Authorization: Bearer <token>`` (API and machine
    clients) or the dashboard's session cookie.

    Raises:
        HTTPException: 401 without valid credentials; 403 for a cookie-authenticated
            change without :data:`CSRF_HEADER`.
    """
    given = credentials(request)
    if given is None:
        raise _unauthorized("sign in, or send Authorization: Bearer <token>")
    users = services.users
    caller = users.caller(given.secret, kinds=given.kinds) if users is not None else None
    if caller is None:
        raise _unauthorized("the token or session is unknown, expired or revoked")
    if (
        given.from_cookie
        and request.method not in _SAFE_METHODS
        and CSRF_HEADER not in request.headers
    ):
        raise HTTPException(status.HTTP_403_FORBIDDEN, f"missing {CSRF_HEADER} header")
    return caller


def _unauthorized(detail: str) -> HTTPException:
    return HTTPException(
        status.HTTP_401_UNAUTHORIZED, detail, headers={"WWW-Authenticate": "Bearer"}
    )


CallerDep = Annotated[Caller, Depends(get_caller)]


def get_visible_halls(services: ServicesDep, caller: CallerDep) -> Mapping[str, HallConfig]:
    """The halls the caller may see: every route's hall scope comes from here."""
    if caller.halls is None:
        return services.halls
    return {hid: hall for hid, hall in services.halls.items() if caller.may_see(hid)}


StateDep = Annotated[StateStore, Depends(get_state)]
BusDep = Annotated[LiveBus, Depends(get_bus)]
HallsDep = Annotated[Mapping[str, HallConfig], Depends(get_visible_halls)]


def get_hall(hall: str, halls: HallsDep) -> HallConfig:
    """The hall named by the ``{hall}`` path parameter.

    Raises:
        HTTPException: 404 if the hall is unknown (or not visible to the caller).
    """
    config = halls.get(hall)
    if config is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"unknown hall {hall!r}")
    return config


HallDep = Annotated[HallConfig, Depends(get_hall)]


def get_cases(services: ServicesDep) -> CaseRegister:
    """The 异常办件 register."""
    if services.cases is None:
        services.cases = CaseRegister(services.state, services.halls, bus=services.bus)
    return services.cases


CasesDep = Annotated[CaseRegister, Depends(get_cases)]


def get_series(services: ServicesDep) -> TimeSeriesStore:
    """The time-series store (503 if the app was not given one)."""
    series = services.series
    if series is None:
        raise HTTPException(
            status.HTTP_503_SERVICE_UNAVAILABLE, "no time-series store attached to this API"
        )
    return series


SeriesDep = Annotated[TimeSeriesStore, Depends(get_series)]


def require_roles(*roles: Role) -> Callable[[Caller], Caller]:
    """A dependency admitting only callers with one of ``roles``.

    Example:
        ``caller: Annotated[Caller, Depends(require_roles(Role.ADMIN))]``

    Returns:
        A dependency returning the caller, raising HTTP 403 for another role.
    """
    allowed = frozenset(roles)

    def dependency(caller: CallerDep) -> Caller:
        if caller.role not in allowed:
            names = ", ".join(sorted(r.value for r in allowed))
            raise HTTPException(
                status.HTTP_403_FORBIDDEN, f"role {caller.role.value} may not do this ({names})"
            )
        return caller

    return dependency
