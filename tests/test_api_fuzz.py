"""Fuzz the API from its OpenAPI document (schemathesis): no input makes a server error.

Every operation of ``/openapi.json`` (except the endless live stream) gets generated
requests — valid and invalid path, query and body values — as an admin, on a hall that
exists (so requests reach past the hall lookup) with a few alerts, anomalies and points
stored. Any 5xx fails. ``HALLWATCH_FUZZ_EXAMPLES`` sets the examples per operation
(default 8 here; more in a nightly run).
"""

from __future__ import annotations

import os
import tempfile
from datetime import UTC, datetime
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, settings

from aggregator.auth.roles import Role
from aggregator.ingest import IngestOutcome
from aggregator.service import AggregatorService
from aggregator.settings import AggregatorSettings
from hallwatch.contract import PostState, PresenceBody, PresenceFact, encode, fact_topic
from tests.conftest import build_hall

HALL = "h-fuzz"
EXAMPLES = int(os.environ.get("HALLWATCH_FUZZ_EXAMPLES", "8"))


def _service() -> tuple[AggregatorService, str]:
    folder = Path(tempfile.mkdtemp(prefix="hallwatch-fuzz-"))
    # ledger_retention_days: the facts below are dated 2026-11-02, accepted for years
    settings = AggregatorSettings(database_url=f"sqlite:///{folder / 'state.sqlite'}",
                                  http_port=0, report_dir=folder / "reports",
                                  ledger_retention_days=3650)  # fmt: skip
    service = AggregatorService(settings, {HALL: build_hall(HALL)}, mqtt=False)
    service.state.create_all()
    service.users.add("fuzz-admin", role=Role.ADMIN)
    t0 = datetime(2026, 11, 2, 1, 0, tzinfo=UTC)
    for i, state in enumerate([PostState.OFF_POST, PostState.ON_POST]):
        at = t0.replace(minute=20 * i)
        body = PresenceBody(camera="c1", post="w1", window="1", state=state, since=at)
        fact = PresenceFact(hall=HALL, source="edge-1", ts=at, body=body)
        stored = service.ingestor.handle(fact_topic(HALL, "presence"), encode(fact))
        assert stored is IngestOutcome.STORED  # the routes are fuzzed with data behind them
    return service, service.users.issue_token("fuzz-admin", "fuzz").secret


SERVICE, TOKEN = _service()
schema = schemathesis.openapi.from_asgi("/openapi.json", SERVICE.app).exclude(path="/api/v1/live")


@schema.hook
def map_path_parameters(_ctx: schemathesis.HookContext, params: dict[str, str]) -> dict[str, str]:
    """The hall that exists, so requests get past the hall lookup (unknown halls are
    tested in tests/test_access_routes.py)."""
    if params and "hall" in params:
        params["hall"] = HALL
    return params


@pytest.mark.filterwarnings("ignore")
@schema.parametrize()
@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))
def test_no_input_makes_a_server_error(case: schemathesis.Case) -> None:
    response = case.call(headers={"Authorization": f"Bearer {TOKEN}"})
    assert response.status_code < 500, (
        f"{case.method} {case.formatted_path} → {response.status_code}: {response.text[:300]}"
    )
