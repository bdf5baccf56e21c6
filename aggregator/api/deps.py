"""FastAPI dependencies, as ``Annotated`` aliases (FastAPI full-stack template style).

Routes never reach into ``app.state`` themselves; they declare what they need:
``StateDep`` (the state database), ``HallsDep`` (the halls the caller may see),
``HallDep`` (one of them, from the ``{hall}`` path parameter, 404 otherwise), ``BusDep``
(the live bus) and ``ServicesDep`` (everything).

Access control plugs in here, in one place: a ``current_user`` dependency (token →
user with role and halls) goes into :func:`get_visible_halls`, which then returns only the
user's halls; every route already scopes its data by ``HallsDep``, and the ``/api/v1``
router in :mod:`aggregator.api.routes` is where a router-wide authentication dependency
is added.

Roles (``Role``, ``Caller``, ``CallerDep``, :func:`require_roles`): every route of the
异常办件 register declares the roles it admits. Until the access-control issue lands,
:func:`get_caller` returns the embedded single-user caller (``local``, role ``admin``).
Login plugs in by replacing :func:`get_caller` (e.g. ``app.dependency_overrides`` or a
token → user lookup here); :func:`require_roles` and the routes stay as they are.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING, Annotated

from fastapi import Depends, HTTPException, Request, status

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


def get_services(request: Request) -> ApiServices:
    """The services the app was created with."""
    services: ApiServices = request.app.state.services
    return services


ServicesDep = Annotated[ApiServices, Depends(get_services)]


def get_state(services: ServicesDep) -> StateStore:
    """The state database."""
    return services.state


def get_bus(services: ServicesDep) -> LiveBus:
    """The live bus."""
    return services.bus


class Role(StrEnum):
    """Roles of API callers."""

    SUPERVISION_OFFICER = "supervision_officer"
    """电子监察 officer: enters and decides anomalies."""
    HALL_MANAGER = "hall_manager"
    """Hall manager: appeals and rectifies the hall's anomalies."""
    AUDITOR = "auditor"
    """Reads everything, changes nothing."""
    ADMIN = "admin"
    """Everything."""


@dataclass(frozen=True, slots=True)
class Caller:
    """Who is calling: a name (recorded as the actor of changes), a role, and the halls
    they may see (``None``: every hall, e.g. a provincial supervision officer)."""

    name: str
    role: Role
    halls: frozenset[str] | None = None

    def may_see(self, hall: str) -> bool:
        """Whether this caller may see (and act on) a hall."""
        return self.halls is None or hall in self.halls


LOCAL_CALLER = Caller(name="local", role=Role.ADMIN)
"""The embedded single-user caller, until access control arrives."""


def get_caller() -> Caller:
    """The caller of this request (the embedded ``local`` admin for now; login replaces
    this dependency)."""
    return LOCAL_CALLER


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
