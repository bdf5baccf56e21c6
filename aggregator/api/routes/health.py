"""Operations: readiness (``/healthz``) and Prometheus metrics (``/metrics``)."""

from __future__ import annotations

import logging

from fastapi import APIRouter, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest
from sqlalchemy.exc import SQLAlchemyError

from aggregator.api.deps import ServicesDep
from aggregator.api.models import HealthOut

logger = logging.getLogger(__name__)

router = APIRouter(tags=["operations"])


@router.get(
    "/healthz",
    response_model=HealthOut,
    summary="Readiness",
    responses={503: {"model": HealthOut, "description": "A check failed."}},
)
def healthz(services: ServicesDep) -> JSONResponse:
    """200 when the database answers and the MQTT client is connected; 503 with the
    reasons otherwise."""
    checks: dict[str, str] = {}
    try:
        services.state.ping()
        checks["database"] = "ok"
    except SQLAlchemyError as exc:
        logger.warning("health: database unreachable: %s", type(exc).__name__)
        checks["database"] = f"unreachable: {type(exc).__name__}"
    if services.mqtt_connected is None:
        checks["mqtt"] = "not configured"
    else:
        checks["mqtt"] = "ok" if services.mqtt_connected() else "disconnected"
    ok = checks["database"] == "ok" and checks["mqtt"] in ("ok", "not configured")
    body = HealthOut(status="ok" if ok else "unavailable", checks=checks)
    return JSONResponse(body.model_dump(), status_code=200 if ok else 503)


@router.get("/metrics", summary="Prometheus metrics", response_class=Response)
def metrics() -> Response:
    """Metrics in the Prometheus text format."""
    return Response(generate_latest(REGISTRY), media_type=CONTENT_TYPE_LATEST)
