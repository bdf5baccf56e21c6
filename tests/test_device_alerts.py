"""Device health on the aggregator (issue 4): ``device_offline`` alerts and device status.

Facts go through the real ingestor over a SQLite file, with a fake clock; alerts are
collected by a :class:`~aggregator.alerts.ListSink`. Times are Shanghai wall-clock times
on Monday 2026-11-02 (the test hall serves 09:00–17:00, 10-minute off-post threshold).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from fastapi.testclient import TestClient

from aggregator.alerts import ListSink
from aggregator.api.deps import ApiServices
from aggregator.bus import LiveBus
from aggregator.ingest import Ingestor, IngestOutcome
from aggregator.rules.device_offline import DeviceOfflineRule
from aggregator.rules.off_post import OffPostRule
from aggregator.service import AggregatorService
from aggregator.settings import AggregatorSettings
from aggregator.store.state import Alert, StateStore
from aggregator.store.timeseries import SqliteTimeSeriesStore
from hallwatch.config.models import HallConfig
from hallwatch.contract import (
    AlertKind,
    AlertState,
    DeviceBody,
    DeviceFact,
    DeviceKind,
    DeviceState,
    PostState,
    PresenceBody,
    PresenceFact,
    encode,
    fact_topic,
)
from tests.conftest import build_hall
from tests.support.api import signed_in_app

SH = ZoneInfo("Asia/Shanghai")
HALL = "h-dev"
SOURCE = "edge-h-dev"


def t(hhmm: str, day: int = 2) -> datetime:
    """``"10:00"`` Shanghai on 2026-11-``day`` (Monday the 2nd) → aware UTC."""
    h, m = (int(p) for p in hhmm.split(":"))
    return datetime(2026, 11, day, h, m, tzinfo=SH).astimezone(UTC)


def hall_with_devices() -> HallConfig:
    """The conftest hall plus a named camera and two other devices."""
    data: dict[str, Any] = build_hall(HALL).model_dump(mode="json", exclude_unset=True)
    data["cameras"][0]["name"] = "一楼东区"
    data["devices"] = [
        {"id": "k1", "name": "1号自助终端", "kind": "kiosk", "probe": {"tcp": "10.0.0.5:80"}},
        {
            "id": "q1",
            "name": "取号机",
            "kind": "queue_machine",
            "probe": {"http_url": "http://10.0.0.6/health"},
        },
    ]
    return HallConfig.model_validate(data)


class Harness:
    """Real stores, ingestor, off-post rule and device rule, with a settable clock."""

    def __init__(self, tmp_path: Path) -> None:
        self.hall = hall_with_devices()
        self.halls = {HALL: self.hall}
        self.state = StateStore(f"sqlite:///{tmp_path / 'state.sqlite'}")
        self.state.create_all()
        self.series = SqliteTimeSeriesStore(":memory:")
        self.sink = ListSink()
        self.rule = OffPostRule(self.state, self.halls, self.sink)
        self.devices = DeviceOfflineRule(self.halls, self.sink)
        self.now = t("09:00")
        self.ingestor = Ingestor(
            self.state,
            self.series,
            self.halls,
            LiveBus(),
            rule=self.rule,
            devices=self.devices,
            clock=lambda: self.now,
        )

    def close(self) -> None:
        self.series.close()
        self.state.dispose()

    def device_payload(
        self,
        device: str,
        state: DeviceState,
        at: datetime,
        kind: DeviceKind = DeviceKind.KIOSK,
        reason: str = "",
    ) -> bytes:
        body = DeviceBody(device=device, device_kind=kind, state=state, reason=reason)
        return encode(DeviceFact(hall=HALL, source=SOURCE, ts=at, body=body))

    def handle(self, payload: bytes, kind: str = "device") -> IngestOutcome:
        return self.ingestor.handle(fact_topic(HALL, kind), payload)

    def device(
        self,
        device: str,
        state: DeviceState,
        at: datetime,
        kind: DeviceKind = DeviceKind.KIOSK,
        reason: str = "",
    ) -> bytes:
        self.now = at
        payload = self.device_payload(device, state, at, kind, reason)
        assert self.handle(payload) is IngestOutcome.STORED
        return payload

    def presence(self, post: str, state: PostState, at: datetime) -> None:
        self.now = at
        body = PresenceBody(camera="c1", post=post, state=state, since=at)
        fact = PresenceFact(hall=HALL, source=SOURCE, ts=at, body=body)
        assert self.handle(encode(fact), "presence") is IngestOutcome.STORED

    def alerts(self, kind: AlertKind | None = None) -> list[Alert]:
        rows, _ = self.state.list_alerts(hall=HALL, kind=kind.value if kind else None, limit=100)
        return rows


@pytest.fixture
def h(tmp_path: Path) -> Iterator[Harness]:
    harness = Harness(tmp_path)
    yield harness
    harness.close()


OFF, ON = DeviceState.OFFLINE, DeviceState.ONLINE


def test_offline_opens_one_alert_naming_the_device_and_reason(h: Harness) -> None:
    h.device("k1", OFF, t("10:00"), reason="TCP 10.0.0.5:80 refused")
    (alert,) = h.alerts()
    assert (alert.kind, alert.state, alert.device, alert.post) == (
        "device_offline",
        "open",
        "k1",
        None,
    )
    assert alert.start == t("10:00") and alert.end is None
    assert "设备离线" in alert.message and "1号自助终端" in alert.message
    assert "TCP 10.0.0.5:80 refused" in alert.message
    (msg,) = h.sink.alerts
    assert (msg.id, msg.kind, msg.state, msg.device) == (
        alert.id,
        AlertKind.DEVICE_OFFLINE,
        AlertState.OPEN,
        "k1",
    )


def test_camera_offline_alert_uses_the_camera_name(h: Harness) -> None:
    h.device("c1", OFF, t("10:00"), kind=DeviceKind.CAMERA, reason="no frame for 10 s")
    (alert,) = h.alerts()
    assert alert.device == "c1"
    assert "一楼东区" in alert.message and "摄像头" in alert.message
    assert "no frame for 10 s" in alert.message


def test_online_resolves_the_same_alert(h: Harness) -> None:
    h.device("k1", OFF, t("10:00"))
    h.device("k1", ON, t("10:20"))
    (alert,) = h.alerts()
    assert (alert.state, alert.start, alert.end) == ("resolved", t("10:00"), t("10:20"))
    opened, resolved = h.sink.alerts
    assert opened.id == resolved.id == alert.id
    assert (opened.state, resolved.state) == (AlertState.OPEN, AlertState.RESOLVED)
    assert resolved.end == t("10:20") and resolved.device == "k1"
    # a later outage is a new alert
    h.device("k1", OFF, t("11:00"))
    assert [(a.state, a.start) for a in h.alerts()] == [
        ("open", t("11:00")),
        ("resolved", t("10:00")),
    ]


def test_first_report_online_raises_nothing(h: Harness) -> None:
    h.device("k1", ON, t("10:00"))
    assert h.alerts() == [] and h.sink.alerts == []


def test_repeat_and_redelivery_change_nothing(h: Harness) -> None:
    payload = h.device("k1", OFF, t("10:00"), reason="down")
    h.device("k1", OFF, t("10:05"), reason="still down")  # a repeat (new fact id)
    assert h.handle(payload) is IngestOutcome.DUPLICATE  # redelivery (same fact id)
    (alert,) = h.alerts()
    assert alert.start == t("10:00")
    assert len(h.sink.alerts) == 1
    (status,) = [d for d in h.state.device_statuses(HALL) if d.device == "k1"]
    assert (status.state, status.since, status.reason) == ("offline", t("10:00"), "still down")
    # resolving twice resolves once
    online = h.device("k1", ON, t("10:30"))
    assert h.handle(online) is IngestOutcome.DUPLICATE
    h.device("k1", ON, t("10:35"))
    (alert,) = h.alerts()
    assert (alert.state, alert.end) == ("resolved", t("10:30"))
    assert len(h.sink.alerts) == 2


def test_stale_fact_is_ignored(h: Harness) -> None:
    h.device("k1", OFF, t("10:00"))
    h.device("k1", ON, t("10:10"))
    h.now = t("10:20")
    late = h.device_payload("k1", OFF, t("10:05"))  # older than the stored state
    assert h.handle(late) is IngestOutcome.STORED  # kept as series, state unchanged
    (alert,) = h.alerts()
    assert alert.state == "resolved"
    (status,) = [d for d in h.state.device_statuses(HALL) if d.device == "k1"]
    assert (status.state, status.since) == ("online", t("10:10"))
    assert len(h.sink.alerts) == 2


def test_offline_outside_service_hours_still_alerts(h: Harness) -> None:
    h.device("q1", OFF, t("22:00"), kind=DeviceKind.QUEUE_MACHINE)  # after closing
    h.device("k1", OFF, t("10:00", day=8), reason="断电")  # a Sunday
    assert sorted(a.device or "" for a in h.alerts()) == ["k1", "q1"]
    assert all(a.state == "open" for a in h.alerts())


def test_kiosk_offline_does_not_pause_off_post(h: Harness) -> None:
    h.presence("w1", PostState.OFF_POST, t("10:00"))
    h.device("k1", OFF, t("10:02"))
    h.rule.evaluate(t("10:11"))
    off_post = h.alerts(AlertKind.OFF_POST)
    assert [(a.post, a.state, a.start) for a in off_post] == [("w1", "open", t("10:00"))]


def test_kiosk_reported_under_a_camera_id_does_not_pause_off_post(h: Harness) -> None:
    # Only a device of kind camera hides a post, whatever its id.
    h.presence("w1", PostState.OFF_POST, t("10:00"))
    h.device("c1", OFF, t("10:02"), kind=DeviceKind.KIOSK)
    h.rule.evaluate(t("10:11"))
    assert [a.post for a in h.alerts(AlertKind.OFF_POST)] == ["w1"]


def test_camera_offline_still_pauses_off_post(h: Harness) -> None:
    h.presence("w1", PostState.OFF_POST, t("10:00"))
    h.device("c1", OFF, t("10:02"), kind=DeviceKind.CAMERA)
    h.rule.evaluate(t("10:11"))
    assert h.alerts(AlertKind.OFF_POST) == []
    assert [a.device for a in h.alerts(AlertKind.DEVICE_OFFLINE)] == ["c1"]


def test_api_lists_devices_and_alerts_carry_device(h: Harness) -> None:
    h.device("c1", ON, t("09:00"), kind=DeviceKind.CAMERA)
    h.device("k1", OFF, t("10:00"), reason="HTTP 503")
    h.device("x9", OFF, t("10:01"), kind=DeviceKind.SCREEN)  # not in the config
    services = ApiServices(state=h.state, halls=h.halls)
    with TestClient(signed_in_app(services)) as client:
        r = client.get(f"/api/v1/halls/{HALL}/devices")
        assert r.status_code == 200
        devices = {d["id"]: d for d in r.json()}
        assert [d["id"] for d in r.json()] == ["c1", "k1", "q1", "x9"]
        (k1_alert,) = [a for a in h.alerts() if a.device == "k1"]
        assert devices["c1"] == {
            "id": "c1",
            "name": "一楼东区",
            "kind": "camera",
            "configured": True,
            "state": "online",
            "since": "2026-11-02T01:00:00Z",
            "reason": "",
            "last_report": "2026-11-02T01:00:00Z",
            "open_alert": None,
        }
        k1 = devices["k1"]
        assert (k1["name"], k1["kind"], k1["state"], k1["reason"], k1["open_alert"]) == (
            "1号自助终端",
            "kiosk",
            "offline",
            "HTTP 503",
            k1_alert.id,
        )
        assert k1["since"] == "2026-11-02T02:00:00Z"
        q1 = devices["q1"]
        assert (q1["kind"], q1["state"], q1["since"], q1["configured"]) == (
            "queue_machine",
            None,
            None,
            True,
        )
        assert (devices["x9"]["kind"], devices["x9"]["configured"]) == ("screen", False)

        page = client.get("/api/v1/alerts", params={"kind": "device_offline"}).json()
        assert page["total"] == 2
        assert {a["device"] for a in page["items"]} == {"k1", "x9"}
        one = client.get(f"/api/v1/alerts/{k1_alert.id}").json()
        assert (one["kind"], one["device"], one["post"]) == ("device_offline", "k1", None)

        counts = client.get(f"/api/v1/halls/{HALL}").json()["counts"]
        assert counts["cameras_offline"] == 0  # kiosks and screens are not cameras
        assert client.get("/api/v1/halls/nope/devices").status_code == 404


def test_service_wires_the_device_rule_to_the_alert_sinks(tmp_path: Path) -> None:
    state = StateStore(f"sqlite:///{tmp_path / 's.sqlite'}")
    state.create_all()
    series = SqliteTimeSeriesStore(":memory:")
    halls = {HALL: hall_with_devices()}
    settings = AggregatorSettings(halls=[], http_port=0)
    service = AggregatorService(settings, halls, state=state, series=series, mqtt=False,
                                clock=lambda: t("10:01"))  # fmt: skip
    try:
        assert service.ingestor.devices is service.device_rule
        assert service.device_rule.sink is service.sink
        collected = ListSink()
        service.sink.sinks.append(collected)
        body = DeviceBody(device="k1", device_kind=DeviceKind.KIOSK, state=OFF)
        fact = DeviceFact(hall=HALL, source=SOURCE, ts=t("10:00"), body=body)
        assert service.ingestor.handle(fact_topic(HALL, "device"), encode(fact)) is (
            IngestOutcome.STORED
        )
        assert [(a.kind, a.device) for a in collected.alerts] == [(AlertKind.DEVICE_OFFLINE, "k1")]
    finally:
        series.close()
        state.dispose()
