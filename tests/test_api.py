"""The HTTP API over a real SQLite file: halls, posts, alerts, health, metrics, SSE."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.exc import OperationalError

from aggregator.api.deps import ApiServices
from aggregator.bus import LiveBus
from aggregator.ingest import Ingestor
from aggregator.store.state import Alert, StateStore
from aggregator.store.timeseries import SqliteTimeSeriesStore
from hallwatch.contract import (
    DeviceBody,
    DeviceFact,
    DeviceKind,
    DeviceState,
    EdgeStatus,
    PostState,
    PresenceBody,
    PresenceFact,
    edge_status_topic,
    encode,
    fact_topic,
)
from tests.conftest import build_hall
from tests.support.api import signed_in_app

A, B = "h-api-a", "h-api-b"
T0 = datetime(2026, 11, 2, 2, 0, tzinfo=UTC)  # Monday 10:00 in Shanghai


@dataclass
class Api:
    client: TestClient
    services: ApiServices
    ingestor: Ingestor
    mqtt_up: list[bool]

    def presence(self, hall: str, post: str, state: PostState, at: datetime) -> None:
        body = PresenceBody(camera="c1", post=post, window=post[-1], state=state, since=at)
        fact = PresenceFact(hall=hall, source=f"edge-{hall}", ts=at, body=body)
        self.ingestor.handle(fact_topic(hall, "presence"), encode(fact))


def _alert(aid: str, hall: str, post: str, start: str, end: str | None) -> Alert:
    def hm(text: str) -> datetime:
        h, m = text.split(":")
        return T0.replace(hour=int(h) - 8, minute=int(m))

    return Alert(
        id=aid,
        hall=hall,
        kind="off_post",
        post=post,
        window=post[-1],
        state="resolved" if end else "open",
        start=hm(start),
        end=hm(end) if end else None,
        opened_at=hm(start) + timedelta(minutes=5),
        resolved_at=hm(end) if end else None,
        message=f"离岗告警：{post}",
    )


@pytest.fixture
def api(tmp_path: Path) -> Iterator[Api]:
    state = StateStore(f"sqlite:///{tmp_path / 'api.sqlite'}")
    state.create_all()
    series = SqliteTimeSeriesStore(tmp_path / "series.sqlite")
    halls = {A: build_hall(A, name="甲大厅"), B: build_hall(B, name="乙大厅")}
    bus = LiveBus()
    mqtt_up = [True]
    services = ApiServices(
        state=state, halls=halls, bus=bus, mqtt_connected=lambda: mqtt_up[0], sse_heartbeat_s=0.2
    )
    ingestor = Ingestor(state, series, halls, bus, clock=lambda: T0)
    with state.session() as session:
        session.add_all(
            [
                _alert("a1", A, "w1", "10:00", None),
                _alert("a2", A, "w2", "09:00", "09:30"),
                _alert("a3", B, "w1", "11:00", "11:20"),
            ]
        )
    with TestClient(signed_in_app(services)) as client:
        yield Api(client, services, ingestor, mqtt_up)
    series.close()
    state.dispose()


def test_halls(api: Api) -> None:
    api.presence(A, "w1", PostState.OFF_POST, T0)
    api.presence(A, "w2", PostState.ON_POST, T0)
    status = EdgeStatus(hall=A, source=f"edge-{A}", state=DeviceState.ONLINE, ts=T0)
    api.ingestor.handle(edge_status_topic(A), encode(status))
    r = api.client.get("/api/v1/halls")
    assert r.status_code == 200
    halls = {h["id"]: h for h in r.json()}
    assert set(halls) == {A, B}
    a = halls[A]
    assert (a["name"], a["timezone"], a["edge_online"]) == ("甲大厅", "Asia/Shanghai", True)
    assert a["edges"] == [{"source": f"edge-{A}", "state": "online", "ts": "2026-11-02T02:00:00Z"}]
    assert a["counts"] == {
        "posts": 2,
        "on_post": 1,
        "off_post": 1,
        "unknown": 0,
        "cameras_offline": 0,
        "open_alerts": 1,
    }
    assert halls[B]["edge_online"] is None and halls[B]["counts"]["unknown"] == 2
    assert api.client.get(f"/api/v1/halls/{A}").json()["id"] == A


def test_posts(api: Api) -> None:
    api.presence(A, "w1", PostState.OFF_POST, T0)
    cam = DeviceFact(
        hall=A,
        source=f"edge-{A}",
        ts=T0,
        body=DeviceBody(device="c1", device_kind=DeviceKind.CAMERA, state=DeviceState.OFFLINE),
    )
    api.ingestor.handle(fact_topic(A, "device"), encode(cam))
    r = api.client.get(f"/api/v1/halls/{A}/posts")
    assert r.status_code == 200
    posts = {p["id"]: p for p in r.json()}
    assert list(posts) == ["w1", "w2"]
    w1 = posts["w1"]
    assert (w1["name"], w1["window"], w1["state"], w1["camera"]) == (
        "1号窗口",
        "1",
        "off_post",
        "c1",
    )
    assert w1["since"] == "2026-11-02T02:00:00Z"
    assert w1["camera_online"] is False
    assert w1["open_alert"] == "a1"
    assert w1["off_post_after_s"] == 600
    assert posts["w2"]["state"] is None and posts["w2"]["since"] is None


def test_unknown_hall_is_404(api: Api) -> None:
    assert api.client.get("/api/v1/halls/nowhere/posts").status_code == 404
    assert api.client.get("/api/v1/halls/nowhere").status_code == 404


@pytest.mark.parametrize(
    ("query", "ids", "total"),
    [
        pytest.param({}, ["a3", "a1", "a2"], 3, id="all-newest-first"),
        pytest.param({"hall": A}, ["a1", "a2"], 2, id="hall"),
        pytest.param({"state": "open"}, ["a1"], 1, id="open"),
        pytest.param({"state": "resolved", "hall": A}, ["a2"], 1, id="resolved-in-hall"),
        pytest.param({"post": "w2"}, ["a2"], 1, id="post"),
        pytest.param({"kind": "off_post"}, ["a3", "a1", "a2"], 3, id="kind"),
        pytest.param({"since": "2026-11-02T02:00:00Z"}, ["a3", "a1"], 2, id="since"),
        pytest.param({"until": "2026-11-02T10:00:00+08:00"}, ["a2"], 1, id="until-with-offset"),
        pytest.param({"since": "2026-11-02T01:30:00"}, ["a3", "a1"], 2, id="naive-is-utc"),
        pytest.param({"limit": 1, "offset": 1}, ["a1"], 3, id="page"),
        pytest.param({"offset": 5}, [], 3, id="past-the-end"),
    ],
)
def test_alert_filters(api: Api, query: dict[str, Any], ids: list[str], total: int) -> None:
    r = api.client.get("/api/v1/alerts", params=query)
    assert r.status_code == 200, r.text
    page = r.json()
    assert [a["id"] for a in page["items"]] == ids
    assert page["total"] == total


@pytest.mark.parametrize(
    ("query", "status"),
    [
        ({"hall": "nowhere"}, 404),
        ({"state": "sleepy"}, 422),
        ({"kind": "bogus"}, 422),
        ({"limit": 0}, 422),
        ({"limit": 501}, 422),
        ({"since": "yesterday"}, 422),
    ],
)
def test_alert_filter_errors(api: Api, query: dict[str, Any], status: int) -> None:
    assert api.client.get("/api/v1/alerts", params=query).status_code == status


def test_alert_by_id(api: Api) -> None:
    r = api.client.get("/api/v1/alerts/a2")
    assert r.status_code == 200
    alert = r.json()
    assert alert["state"] == "resolved" and alert["kind"] == "off_post"
    assert (alert["start"], alert["end"]) == ("2026-11-02T01:00:00Z", "2026-11-02T01:30:00Z")
    assert alert["message"] == "离岗告警：w2"
    assert api.client.get("/api/v1/alerts/nope").status_code == 404


def test_healthz(api: Api, monkeypatch: pytest.MonkeyPatch) -> None:
    r = api.client.get("/healthz")
    assert (r.status_code, r.json()) == (
        200,
        {"status": "ok", "checks": {"database": "ok", "mqtt": "ok"}},
    )
    api.mqtt_up[0] = False
    r = api.client.get("/healthz")
    assert r.status_code == 503
    assert r.json()["checks"]["mqtt"] == "disconnected"

    def broken() -> None:
        raise OperationalError("SELECT 1", {}, Exception("unable to open database file"))

    api.mqtt_up[0] = True
    monkeypatch.setattr(api.services.state, "ping", broken)
    r = api.client.get("/healthz")
    assert r.status_code == 503
    assert r.json()["checks"]["database"].startswith("unreachable")


def test_metrics(api: Api) -> None:
    api.presence(A, "w1", PostState.ON_POST, T0)
    r = api.client.get("/metrics")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/plain")
    assert 'hallwatch_ingest_messages_total{outcome="stored"}' in r.text
    assert "hallwatch_ingest_latency_seconds_bucket" in r.text


def test_openapi_and_web_page(api: Api) -> None:
    spec = api.client.get("/openapi.json").json()
    for path in ("/api/v1/halls", "/api/v1/halls/{hall}/posts", "/api/v1/alerts",
                 "/api/v1/alerts/{alert_id}", "/api/v1/live", "/healthz", "/metrics"):  # fmt: skip
        assert path in spec["paths"], path
    assert spec["components"]["schemas"]["PostOut"]["properties"]["state"]["description"]
    page = api.client.get("/")
    assert page.status_code == 200 and "电子监察" in page.text
    assert "EventSource" in api.client.get("/static/live.js").text
    assert api.client.get("/static/style.css").status_code == 200


def _read_sse(api: Api, url: str, until: str, timeout: float = 5.0) -> list[str]:
    """Lines of an SSE stream until one starts with ``until`` (heartbeats keep it moving)."""
    lines: list[str] = []
    deadline = time.monotonic() + timeout
    with api.client.stream("GET", url) as r:
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("text/event-stream")
        for line in r.iter_lines():
            lines.append(line)
            if line == ": connected":
                api.presence(A, "w1", PostState.OFF_POST, T0)
                api.presence(B, "w2", PostState.ON_POST, T0)
            if line.startswith(until) or time.monotonic() > deadline:
                break
    return lines


def test_sse_delivers_events_and_heartbeats(api: Api) -> None:
    lines = _read_sse(api, "/api/v1/live", ": heartbeat")
    assert lines[:2] == ["retry: 3000", ": connected"]
    events = [(lines[i], json.loads(lines[i + 1][len("data: ") :]))
              for i, line in enumerate(lines) if line.startswith("event: ")]  # fmt: skip
    assert [(e, d["hall"], d["post"], d["state"]) for e, d in events] == [
        ("event: presence", A, "w1", "off_post"),
        ("event: presence", B, "w2", "on_post"),
    ]
    assert events[0][1]["since"] == "2026-11-02T02:00:00+00:00"
    assert ": heartbeat" in lines


def test_sse_hall_filter(api: Api) -> None:
    lines = _read_sse(api, f"/api/v1/live?hall={B}", "data: ")
    data = json.loads(lines[-1][len("data: ") :])
    assert (data["hall"], data["post"]) == (B, "w2")
    assert api.client.get("/api/v1/live?hall=nowhere").status_code == 404
