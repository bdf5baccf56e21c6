"""Signing tests in to the API.

- :func:`signed_in_app` — the app with a fixed caller (``get_caller`` overridden): for
  tests of what a route does; what access control does is tested with real users and
  tokens (``tests/test_access_*.py``).
- :func:`admin_token` — a real admin user and API token in a running aggregator, for
  tests that talk HTTP to it.
"""

from __future__ import annotations

from fastapi import FastAPI

from aggregator.api.deps import ApiServices, Caller, Role, get_caller
from aggregator.api.main import create_app
from aggregator.service import AggregatorService

TEST_ADMIN = Caller("test-admin", Role.ADMIN)


def signed_in_app(services: ApiServices, caller: Caller = TEST_ADMIN) -> FastAPI:
    """``create_app(services)`` with every request made as ``caller``."""
    app = create_app(services)
    app.dependency_overrides[get_caller] = lambda: caller
    return app


def admin_token(service: AggregatorService, username: str = "test-admin") -> dict[str, str]:
    """Headers with a fresh admin's API token (the user is made on first use)."""
    service.state.create_all()
    if service.users.get(username) is None:
        service.users.add(username, role=Role.ADMIN, actor="tests")
    issued = service.users.issue_token(username, "tests")
    return {"Authorization": f"Bearer {issued.secret}"}
