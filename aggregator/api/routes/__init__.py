"""The ``/api/v1`` router: every versioned route, assembled in one place.

A router-wide dependency (authentication) is added here, on ``api_router``.
"""

from fastapi import APIRouter

from aggregator.api.routes import alerts, anomalies, environment, halls, live
from aggregator.api.routes.exports import router as exports_router
from aggregator.api.routes.reports import router as reports_router
from aggregator.api.routes.scores import router as scores_router

api_router = APIRouter(prefix="/api/v1")
api_router.include_router(halls.router)
api_router.include_router(alerts.router)
api_router.include_router(anomalies.router)
api_router.include_router(environment.router)
api_router.include_router(live.router)
api_router.include_router(scores_router)
api_router.include_router(exports_router)
api_router.include_router(reports_router)

__all__ = ["api_router"]
