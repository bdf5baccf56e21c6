"""The FastAPI application: ``create_app(services)``.

Routes: ``/api/v1/halls``, ``/api/v1/halls/{hall}``, ``/api/v1/halls/{hall}/posts``,
``/api/v1/alerts``, ``/api/v1/alerts/{id}``, the hall environment (``…/zones``,
``…/occupancy``, ``…/flow``, ``…/alerts/{id}/evidence``), ``/api/v1/live`` (SSE), ``/healthz``,
``/metrics``, the OpenAPI document at ``/openapi.json`` (UI at ``/docs``), and the live
web page at ``/`` (static files under ``/static``).
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles

from aggregator.api.deps import ApiServices
from aggregator.api.routes import api_router, health, public_router

STATIC_DIR = Path(__file__).resolve().parent.parent / "web" / "static"


def create_app(services: ApiServices) -> FastAPI:
    """Build the API app over the given services.

    Args:
        services: State store, hall configs, live bus and the MQTT health probe.

    Returns:
        The FastAPI application (serve it with uvicorn, or wrap it in a TestClient).
    """
    app = FastAPI(
        title="HallWatch aggregator",
        summary="电子监察: live state of government service halls, off-post alerts.",
        version="1",
    )
    app.state.services = services
    app.include_router(public_router)
    app.include_router(api_router)
    app.include_router(health.router)
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")

    @app.get("/", include_in_schema=False)
    def index() -> FileResponse:
        return FileResponse(STATIC_DIR / "index.html", media_type="text/html; charset=utf-8")

    return app
