"""Every route of the OpenAPI document, for every role, in and out of the caller's halls.

Real users and real tokens (no overridden caller): for each operation the policy table
below says which roles may call it. For each role the test calls it

- without credentials → 401;
- on a hall in the caller's scope → 403 when the role may not, anything but 401/403 (and
  never a server error) when it may;
- on a hall outside the caller's scope → 403 or 404, never data.

A route added without an entry in the table fails the test, so the table stays the
product's access policy in one readable place (also in ``docs/access.md``).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from aggregator.auth.roles import Role
from aggregator.service import AggregatorService
from aggregator.settings import AggregatorSettings
from tests.conftest import build_hall

OFFICER, MANAGER, AUDITOR, ADMIN = (
    Role.SUPERVISION_OFFICER,
    Role.HALL_MANAGER,
    Role.AUDITOR,
    Role.ADMIN,
)
ALL = frozenset(Role)
OWN, OTHER = "h-own", "h-other"

POLICY: dict[tuple[str, str], frozenset[Role]] = {
    ("GET", "/api/v1/auth/me"): ALL,
    ("GET", "/api/v1/users"): frozenset({ADMIN}),
    ("POST", "/api/v1/users"): frozenset({ADMIN}),
    ("POST", "/api/v1/users/{username}/password"): frozenset({ADMIN}),
    ("POST", "/api/v1/users/{username}/disable"): frozenset({ADMIN}),
    ("POST", "/api/v1/users/{username}/enable"): frozenset({ADMIN}),
    ("GET", "/api/v1/users/{username}/tokens"): frozenset({ADMIN}),
    ("POST", "/api/v1/users/{username}/tokens"): frozenset({ADMIN}),
    ("DELETE", "/api/v1/tokens/{token_id}"): frozenset({ADMIN}),
    ("GET", "/api/v1/auth-events"): frozenset({ADMIN}),
    ("GET", "/api/v1/halls"): ALL,
    ("GET", "/api/v1/halls/{hall}"): ALL,
    ("GET", "/api/v1/halls/{hall}/posts"): ALL,
    ("GET", "/api/v1/halls/{hall}/devices"): ALL,
    ("GET", "/api/v1/alerts"): ALL,
    ("GET", "/api/v1/alerts/{alert_id}"): ALL,
    ("POST", "/api/v1/alerts/{alert_id}/acknowledge"): frozenset({OFFICER, MANAGER, ADMIN}),
    ("POST", "/api/v1/alerts/{alert_id}/comment"): frozenset({OFFICER, MANAGER, ADMIN}),
    ("POST", "/api/v1/alerts/{alert_id}/resolve"): frozenset({OFFICER, ADMIN}),
    ("GET", "/api/v1/alerts/{alert_id}/actions"): ALL,
    ("GET", "/api/v1/halls/{hall}/charts/{chart}"): ALL,
    ("GET", "/api/v1/halls/{hall}/anomalies"): ALL,
    ("POST", "/api/v1/halls/{hall}/anomalies"): frozenset({OFFICER, ADMIN}),
    ("GET", "/api/v1/halls/{hall}/anomalies/{anomaly_id}"): ALL,
    ("POST", "/api/v1/halls/{hall}/anomalies/{anomaly_id}/appeal"): frozenset({MANAGER, ADMIN}),
    ("POST", "/api/v1/halls/{hall}/anomalies/{anomaly_id}/second-evaluation"): frozenset(
        {OFFICER, ADMIN}
    ),
    ("POST", "/api/v1/halls/{hall}/anomalies/{anomaly_id}/decision"): frozenset({OFFICER, ADMIN}),
    ("POST", "/api/v1/halls/{hall}/anomalies/{anomaly_id}/rectify"): frozenset({MANAGER, ADMIN}),
    ("POST", "/api/v1/halls/{hall}/anomalies/{anomaly_id}/close"): frozenset({OFFICER, ADMIN}),
    ("GET", "/api/v1/halls/{hall}/queue"): ALL,
    ("GET", "/api/v1/halls/{hall}/alerts/{alert_id}/evidence"): frozenset(
        {OFFICER, MANAGER, ADMIN}  # faces of the public: not for auditors
    ),
    ("GET", "/api/v1/halls/{hall}/zones"): ALL,
    ("GET", "/api/v1/halls/{hall}/occupancy"): ALL,
    ("GET", "/api/v1/halls/{hall}/flow"): ALL,
    ("GET", "/api/v1/live"): ALL,
    ("GET", "/api/v1/halls/{hall}/scores"): ALL,
    ("GET", "/api/v1/halls/{hall}/exports/{dataset}"): frozenset({AUDITOR, OFFICER, ADMIN}),
    ("GET", "/api/v1/exports/audit"): frozenset({AUDITOR, ADMIN}),
    ("GET", "/api/v1/halls/{hall}/reports"): ALL,
    ("GET", "/api/v1/halls/{hall}/reports/{kind}/{period}"): ALL,
    ("POST", "/api/v1/halls/{hall}/reports/{kind}/{period}"): frozenset({OFFICER, ADMIN}),
    ("GET", "/api/v1/reports/bulletin/{month}"): ALL,
    ("POST", "/api/v1/reports/bulletin/{month}"): frozenset({OFFICER, ADMIN}),
    ("POST", "/api/v1/halls/{hall}/daily-data"): frozenset({MANAGER, OFFICER, ADMIN}),
    ("GET", "/api/v1/halls/{hall}/daily-data"): ALL,
    ("POST", "/api/v1/halls/{hall}/daily-data/import"): frozenset({MANAGER, OFFICER, ADMIN}),
    ("GET", "/api/v1/daily-data/template.csv"): ALL,
    ("GET", "/api/v1/daily-data/template.xlsx"): ALL,
}
"""Who may call what (within their halls)."""

WHOLE_SYSTEM = {
    ("GET", "/api/v1/reports/bulletin/{month}"),
    ("POST", "/api/v1/reports/bulletin/{month}"),
    ("GET", "/api/v1/users"),
    ("POST", "/api/v1/users"),
    ("POST", "/api/v1/users/{username}/password"),
    ("POST", "/api/v1/users/{username}/disable"),
    ("POST", "/api/v1/users/{username}/enable"),
    ("GET", "/api/v1/users/{username}/tokens"),
    ("POST", "/api/v1/users/{username}/tokens"),
    ("DELETE", "/api/v1/tokens/{token_id}"),
    ("GET", "/api/v1/auth-events"),
}
"""Routes only for callers who see every hall, whatever their role: the monthly bulletin
(it ranks every hall) and users and tokens (an admin scoped to some halls could otherwise
make a global admin)."""

PUBLIC = {
    ("POST", "/api/v1/auth/login"),
    ("POST", "/api/v1/auth/logout"),
    ("GET", "/healthz"),
    ("GET", "/metrics"),
}
"""Routes without a caller: signing in and out, and the probes of the orchestrator."""

SAMPLE_PATH = {
    "username": "nobody-here",
    "token_id": "01JNOTATOKEN0000000000000",
    "alert_id": "01JNOTANALERT000000000000",
    "anomaly_id": "01JNOTANANOMALY0000000000",
    "dataset": "alerts",
    "kind": "daily",
    "period": "2026-11-02",
    "month": "2026-10",
    "chart": "waits",
}


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[TestClient, dict[Any, str]]]:
    folder: Path = tmp_path_factory.mktemp("access")
    settings = AggregatorSettings(
        database_url=f"sqlite:///{folder / 'state.sqlite'}", http_port=0,
        report_dir=folder / "reports",
    )  # fmt: skip
    halls = {h: build_hall(h) for h in (OWN, OTHER)}
    service = AggregatorService(settings, halls, mqtt=False)
    service.state.create_all()
    tokens = {}
    for role in Role:
        name = f"u-{role.value.replace('_', '-')}"
        scope = [OWN]  # every role scoped to one hall, so "other hall" means something
        service.users.add(name, role=role, halls=scope)
        tokens[role] = service.users.issue_token(name, "route walk").secret
    for name, role in (("province", OFFICER), ("root", ADMIN)):  # every hall
        service.users.add(name, role=role)
        tokens[name] = service.users.issue_token(name, "route walk").secret
    with TestClient(service.app) as client:
        yield client, tokens
    service.series.close()
    service.state.dispose()


def operations(client: TestClient) -> list[tuple[str, str]]:
    return [
        (method.upper(), path)
        for path, ops in client.app.openapi()["paths"].items()  # type: ignore[attr-defined]
        for method in ops
    ]


def url(path: str, hall: str) -> str:
    return path.format(hall=hall, **SAMPLE_PATH)


def call(client: TestClient, method: str, path: str, token: str | None) -> int:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    if path.endswith("/live"):  # a stream: ask for another hall's (refused before it starts)
        return client.request(method, path, headers=headers, params={"hall": OTHER}).status_code
    body = b"{}" if method in ("POST", "PUT", "PATCH") else None
    headers["content-type"] = "application/json"
    return client.request(method, path, headers=headers, content=body).status_code


def test_the_policy_names_every_route(site: tuple[TestClient, dict[Any, str]]) -> None:
    client, _ = site
    listed = set(operations(client))
    assert listed - set(POLICY) - PUBLIC == set(), "routes without an access policy"
    assert set(POLICY) - listed == set(), "policy entries for routes that do not exist"


def test_no_credentials_no_data(site: tuple[TestClient, dict[Any, str]]) -> None:
    client, _ = site
    for method, path in operations(client):
        if (method, path) in PUBLIC:
            continue
        assert call(client, method, url(path, OWN), None) == 401, (method, path)
        assert call(client, method, url(path, OWN), "hw_forged") == 401, (method, path)


@pytest.mark.parametrize("role", list(Role), ids=[r.value for r in Role])
def test_role_within_its_halls(site: tuple[TestClient, dict[Any, str]], role: Role) -> None:
    client, tokens = site
    wrong = []
    for (method, path), allowed in sorted(POLICY.items()):
        if path.endswith("/live"):
            continue  # below
        status = call(client, method, url(path, OWN), tokens[role])
        assert status < 500, (method, path, status)
        may = role in allowed and (method, path) not in WHOLE_SYSTEM  # callers are scoped
        if may == (status in (401, 403)):
            wrong.append(f"{method} {path}: {status} ({'allowed' if may else 'denied'})")
    assert wrong == []


@pytest.mark.parametrize("role", list(Role), ids=[r.value for r in Role])
def test_role_outside_its_halls(site: tuple[TestClient, dict[Any, str]], role: Role) -> None:
    client, tokens = site
    leaked = []
    for (method, path), _allowed in sorted(POLICY.items()):
        if "{hall}" not in path and not path.endswith("/live"):
            continue
        status = call(client, method, url(path, OTHER), tokens[role])
        if status not in (403, 404):
            leaked.append(f"{method} {path}: {status}")
    assert leaked == []


def test_lists_show_only_the_callers_halls(site: tuple[TestClient, dict[Any, str]]) -> None:
    client, tokens = site
    for role in Role:
        headers = {"Authorization": f"Bearer {tokens[role]}"}
        halls = client.get("/api/v1/halls", headers=headers).json()
        assert [h["id"] for h in halls] == [OWN], role
        me = client.get("/api/v1/auth/me", headers=headers).json()
        assert (me["role"], me["halls"], me["all_halls"]) == (role.value, [OWN], False)


def test_whole_system_routes_for_callers_who_see_every_hall(
    site: tuple[TestClient, dict[Any, str]],
) -> None:
    client, tokens = site
    for method, path in sorted(WHOLE_SYSTEM):
        allowed = POLICY[(method, path)]
        for name, role in (("province", OFFICER), ("root", ADMIN)):
            status = call(client, method, url(path, OWN), tokens[name])
            assert (role in allowed) == (status not in (401, 403)), (name, path, status)
            assert status < 500, (name, path, status)
    halls = client.get("/api/v1/halls", headers={"Authorization": f"Bearer {tokens['province']}"})
    assert sorted(h["id"] for h in halls.json()) == [OTHER, OWN]
