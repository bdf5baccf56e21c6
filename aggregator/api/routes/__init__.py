"""The ``/api/v1`` router: every versioned route, assembled in one place.

Every route of ``api_router`` needs a caller (``get_caller``: a bearer token or the
dashboard's session cookie); only ``/api/v1/auth/login`` and ``…/logout`` do not.
"""

from fastapi import APIRouter, Depends

from aggregator.api.deps import get_caller
from aggregator.api.routes import alerts, anomalies, auth, environment, halls, live, users
from aggregator.api.routes.charts import router as charts_router
from aggregator.api.routes.exports import router as exports_router
from aggregator.api.routes.reports import router as reports_router
from aggregator.api.routes.scores import router as scores_router

public_router = APIRouter(prefix="/api/v1")
public_router.include_router(auth.public)

api_router = APIRouter(prefix="/api/v1", dependencies=[Depends(get_caller)])
api_router.include_router(auth.router)
api_router.include_router(users.router)
api_router.include_router(halls.router)
api_router.include_router(alerts.router)
api_router.include_router(anomalies.router)
api_router.include_router(environment.router)
api_router.include_router(live.router)
api_router.include_router(scores_router)
api_router.include_router(exports_router)
api_router.include_router(reports_router)
api_router.include_router(charts_router)

__all__ = ["api_router", "public_router"]
