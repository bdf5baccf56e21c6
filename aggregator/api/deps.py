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
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Annotated

from fastapi import Depends, HTTPException, Request, status

from aggregator.bus import LiveBus
from aggregator.store.state import StateStore
from hallwatch.config.models import HallConfig


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
    """

    state: StateStore
    halls: Mapping[str, HallConfig]
    bus: LiveBus = field(default_factory=LiveBus)
    mqtt_connected: Callable[[], bool] | None = None
    sse_heartbeat_s: float = 15.0


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


def get_visible_halls(services: ServicesDep) -> Mapping[str, HallConfig]:
    """The halls the caller may see (all of them until access control arrives)."""
    return services.halls


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
