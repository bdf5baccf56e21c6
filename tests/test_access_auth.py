"""Signing in, tokens, sessions, scopes and the refusal of default secrets."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from pydantic import ValidationError

from aggregator.api.deps import CSRF_HEADER, SESSION_COOKIE
from aggregator.auth.passwords import hash_password, verify_password, weak_password_reason
from aggregator.auth.roles import Role
from aggregator.auth.users import UserError, halls_of
from aggregator.service import AggregatorService, NoUsersError
from aggregator.settings import AggregatorSettings
from hallwatch.config.models import HallConfig
from hallwatch.contract import utcnow
from tests.conftest import build_hall

PASSWORD = "西湖 window 2026!"


def hall(hall_id: str, region: str | None) -> HallConfig:
    config = build_hall(hall_id)
    return config.model_copy(update={"hall": config.hall.model_copy(update={"region": region})})


@pytest.fixture
def service(tmp_path: Path) -> Iterator[AggregatorService]:
    settings = AggregatorSettings(database_url=f"sqlite:///{tmp_path / 'state.sqlite'}",
                                  http_port=0, report_dir=tmp_path / "reports")  # fmt: skip
    halls = {"hz-xihu": hall("hz-xihu", "330106"), "hz-binjiang": hall("hz-binjiang", "330108"),
             "nb-haishu": hall("nb-haishu", "330203")}  # fmt: skip
    svc = AggregatorService(settings, halls, mqtt=False)
    svc.state.create_all()
    yield svc
    svc.series.close()
    svc.state.dispose()


@pytest.fixture
def client(service: AggregatorService) -> Iterator[TestClient]:
    with TestClient(service.app) as c:
        yield c


def test_passwords_are_argon2_and_weak_ones_refused() -> None:
    stored = hash_password(PASSWORD)
    assert stored.startswith("$argon2id$") and PASSWORD not in stored
    assert verify_password(stored, PASSWORD) and not verify_password(stored, PASSWORD + " ")
    assert not verify_password(None, "")
    for weak in ("admin", "Password", "short", "aaaaaaaaaaaaaaa", "hallwatch123"):
        assert weak_password_reason(weak) is not None, weak


def test_login_sets_a_session_cookie_that_works_until_logout(
    service: AggregatorService, client: TestClient
) -> None:
    service.users.add("li", role=Role.SUPERVISION_OFFICER, password=PASSWORD)
    assert client.get("/api/v1/halls").status_code == 401
    bad = client.post("/api/v1/auth/login", json={"username": "li", "password": "nope"})
    unknown = client.post("/api/v1/auth/login", json={"username": "who", "password": "x"})
    assert bad.status_code == unknown.status_code == 401
    assert bad.json() == unknown.json()  # the answer does not say which users exist
    ok = client.post("/api/v1/auth/login", json={"username": "li", "password": PASSWORD})
    assert ok.status_code == 200
    cookie = ok.headers["set-cookie"]
    assert SESSION_COOKIE in cookie and "HttpOnly" in cookie and "SameSite=strict" in cookie
    assert client.get("/api/v1/halls").status_code == 200  # the cookie now
    assert client.get("/api/v1/auth/me").json()["all_halls"] is True
    assert client.post("/api/v1/auth/logout").status_code == 204
    client.cookies.set(SESSION_COOKIE, ok.json()["token"])  # a copy of the old cookie
    assert client.get("/api/v1/halls").status_code == 401
    events = [e.event for e in service.users.events()]
    assert events[:4] == ["logout", "login", "login_failed", "login_failed"]


def test_a_cookie_alone_cannot_change_anything(
    service: AggregatorService, client: TestClient
) -> None:
    service.users.add("admin-1", role=Role.ADMIN, password=PASSWORD)
    client.post("/api/v1/auth/login", json={"username": "admin-1", "password": PASSWORD})
    body = {"username": "zhao", "role": "auditor"}
    assert client.post("/api/v1/users", json=body).status_code == 403  # a cross-site form
    made = client.post("/api/v1/users", json=body, headers={CSRF_HEADER: "1"})
    assert made.status_code == 201, made.text


def test_tokens_end_when_revoked_expired_or_the_user_is_disabled(
    service: AggregatorService, client: TestClient
) -> None:
    service.users.add("kiosk", role=Role.AUDITOR)  # a machine client: no password
    kept = service.users.issue_token("kiosk", "big screen")
    revoked = service.users.issue_token("kiosk", "old")
    expired = service.users.issue_token("kiosk", "short", expires_at=utcnow() - timedelta(1))

    def status(secret: str) -> int:
        headers = {"Authorization": f"Bearer {secret}"}
        return client.get("/api/v1/halls", headers=headers).status_code

    assert service.users.revoke(revoked.id)
    assert [status(t.secret) for t in (kept, revoked, expired)] == [200, 401, 401]
    assert (
        client.post("/api/v1/auth/login", json={"username": "kiosk", "password": ""}).status_code
        == 422
    )
    service.users.set_disabled("kiosk", True)
    assert status(kept.secret) == 401
    service.users.set_disabled("kiosk", False)
    assert status(kept.secret) == 401  # revoked with the disabling, not revived
    with service.state.read_session() as session:
        from sqlalchemy import text

        stored = session.execute(text("SELECT token_sha256 FROM api_tokens")).scalars().all()
    assert kept.secret not in " ".join(stored)  # only digests are stored


@pytest.mark.parametrize(
    ("role", "halls", "regions", "expected"),
    [
        (Role.SUPERVISION_OFFICER, [], [], None),
        (Role.SUPERVISION_OFFICER, [], ["3301"], {"hz-xihu", "hz-binjiang"}),
        (Role.SUPERVISION_OFFICER, ["nb-haishu"], ["330106"], {"hz-xihu", "nb-haishu"}),
        (Role.AUDITOR, [], [], None),
        (Role.HALL_MANAGER, ["hz-xihu"], [], {"hz-xihu"}),
        (Role.HALL_MANAGER, ["hz-xihu"], ["33"], {"hz-xihu"}),  # managers: listed halls only
        (Role.ADMIN, [], [], None),
    ],
)
def test_scopes(
    service: AggregatorService,
    role: Role,
    halls: list[str],
    regions: list[str],
    expected: set[str] | None,
) -> None:
    got = halls_of(role, halls, regions, service.halls)
    assert got == (frozenset(expected) if expected is not None else None)


def test_region_officer_sees_the_region_through_the_api(
    service: AggregatorService, client: TestClient
) -> None:
    service.users.add("hz", role=Role.SUPERVISION_OFFICER, regions=["3301"])
    headers = {"Authorization": f"Bearer {service.users.issue_token('hz', 't').secret}"}
    assert sorted(h["id"] for h in client.get("/api/v1/halls", headers=headers).json()) == [
        "hz-binjiang",
        "hz-xihu",
    ]
    assert client.get("/api/v1/halls/nb-haishu", headers=headers).status_code == 404


def test_user_rules(service: AggregatorService) -> None:
    with pytest.raises(UserError, match="needs at least one hall"):
        service.users.add("mm", role=Role.HALL_MANAGER)
    with pytest.raises(UserError, match="unknown hall"):
        service.users.add("mm", role=Role.HALL_MANAGER, halls=["nowhere"])
    with pytest.raises(UserError, match="password refused"):
        service.users.add("mm", role=Role.AUDITOR, password="password")
    with pytest.raises(UserError, match="username"):
        service.users.add("Bad Name", role=Role.AUDITOR)
    service.users.add("mm", role=Role.AUDITOR)
    with pytest.raises(UserError, match="exists"):
        service.users.add("mm", role=Role.AUDITOR)


def test_the_aggregator_refuses_to_start_without_a_way_in(
    service: AggregatorService, tmp_path: Path
) -> None:
    with pytest.raises(NoUsersError, match="HALLWATCH_ADMIN_PASSWORD"):
        service.ensure_users()
    settings = service.settings.model_copy(
        update={"admin_password": AggregatorSettings(admin_password=PASSWORD).admin_password}
    )
    first = AggregatorService(settings, service.halls, state=service.state, mqtt=False)
    first.ensure_users()
    assert first.users.login("admin", PASSWORD, client="test") is not None
    first.ensure_users()  # an admin exists: nothing more
    assert [u.username for u in first.users.all()] == ["admin"]


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("admin_password", "admin"),
        ("admin_password", "changethis"),
        ("admin_password", "short1!"),
        ("mqtt_password", "changeme"),
        ("report_push_token", "secret"),
        ("sms_gateway_token", "Password"),
    ],
)
def test_settings_refuse_default_secrets(field: str, value: str) -> None:
    with pytest.raises(ValidationError, match=field):
        AggregatorSettings(**{field: value})  # type: ignore[arg-type]


def test_logout_ends_sessions_not_api_tokens(
    service: AggregatorService, client: TestClient
) -> None:
    service.users.add("script", role=Role.AUDITOR)
    token = service.users.issue_token("script", "nightly export").secret
    headers = {"Authorization": f"Bearer {token}"}
    assert client.post("/api/v1/auth/logout", headers=headers).status_code == 204
    assert client.get("/api/v1/halls", headers=headers).status_code == 200


def test_a_live_stream_ends_at_the_next_heartbeat_after_the_user_is_disabled(
    service: AggregatorService,
) -> None:
    from starlette.requests import Request

    from aggregator.api.deps import get_visible_halls
    from aggregator.api.routes.live import live

    service.users.add("wang", role=Role.HALL_MANAGER, halls=["hz-xihu"], password=PASSWORD)
    session = service.users.login("wang", PASSWORD, client="t")
    assert session is not None
    caller = service.users.caller(session.secret)
    assert caller is not None
    services = service.app.state.services
    services.sse_heartbeat_s = 0.05
    bearer = f"Bearer {session.secret}".encode()
    request = Request({"type": "http", "method": "GET", "path": "/api/v1/live",
                       "headers": [(b"authorization", bearer)]})  # fmt: skip

    async def stream() -> list[str]:
        response = await live(request, services.bus, get_visible_halls(services, caller),
                              services)  # fmt: skip
        chunks = response.body_iterator.__aiter__()
        got = [str(await chunks.__anext__())]
        assert "connected" in got[0]
        got.append(str(await asyncio.wait_for(chunks.__anext__(), 2)))  # a heartbeat
        service.users.set_disabled("wang", True)
        async for chunk in chunks:  # ends at the next heartbeat
            got.append(str(chunk))
        return got

    got = asyncio.run(asyncio.wait_for(stream(), 5))
    assert got[1] == ": heartbeat\n\n" and len(got) <= 3


def test_only_an_admin_of_every_hall_manages_users(
    service: AggregatorService, client: TestClient
) -> None:
    service.users.add("root", role=Role.ADMIN)
    service.users.add("xihu-admin", role=Role.ADMIN, halls=["hz-xihu"])
    scoped = {"Authorization": f"Bearer {service.users.issue_token('xihu-admin', 't').secret}"}
    root = {"Authorization": f"Bearer {service.users.issue_token('root', 't').secret}"}
    evil = {"username": "evil", "role": "admin", "password": PASSWORD}
    assert client.post("/api/v1/users", json=evil, headers=scoped).status_code == 403
    assert client.post("/api/v1/users/root/tokens", json={"name": "x"},
                       headers=scoped).status_code == 403  # fmt: skip
    assert client.get("/api/v1/auth-events", headers=scoped).status_code == 403
    past = client.post("/api/v1/users/root/tokens", headers=root,
                       json={"name": "x", "expires_at": "2020-01-01T00:00:00Z"})  # fmt: skip
    naive = client.post("/api/v1/users/root/tokens", headers=root,
                        json={"name": "x", "expires_at": "2099-01-01T00:00:00"})  # fmt: skip
    assert past.status_code == 422 and naive.status_code == 201, (past.text, naive.text)
    assert naive.json()["secret"].startswith("hw_")


def test_a_leftover_admin_password_does_not_stop_a_start(service: AggregatorService) -> None:
    service.users.add("admin", role=Role.AUDITOR)  # someone turned admin into an auditor
    settings = service.settings.model_copy(
        update={"admin_password": AggregatorSettings(admin_password=PASSWORD).admin_password}
    )
    again = AggregatorService(settings, service.halls, state=service.state, mqtt=False)
    again.ensure_users()  # warns, creates nothing
    assert [(u.username, u.role) for u in again.users.all()] == [("admin", Role.AUDITOR)]
