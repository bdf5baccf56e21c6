"""The device monitor (issue 4): silence makes a device offline, a sign of life brings it
back, one fact per change; HTTP, TCP, MQTT-heartbeat and feed-traffic probes."""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from edge.comms.mqtt_publisher import BrokerSettings
from edge.feeds.base import FeedMessage, FeedStore
from edge.feeds.queue_feed import QueueFeed
from edge.feeds.runner import FeedRunner
from edge.health import DeviceMonitor, DeviceProber, heartbeat_feeds, http_alive, tcp_alive
from edge.worker import EdgeWorker
from hallwatch.config.models import HallConfig
from hallwatch.contract import DeviceFact, DeviceKind, DeviceState, Fact, fact_topic, parse_fact
from tests.conftest import build_hall
from tests.support.clock import SettableClock
from tests.support.mosquitto import Mosquitto
from tests.support.running import wait_until
from tests.test_wait_clock import SALT

T0 = datetime(2026, 11, 2, 1, 0, tzinfo=UTC)


def hall_with(devices: list[dict[str, Any]], **extra: Any) -> HallConfig:
    """build_hall("h1") with these devices (and other sections, e.g. ``queue``)."""
    data = build_hall("h1").model_dump(mode="json", context={"reveal_secrets": True})
    return HallConfig.model_validate({**data, "devices": devices, **extra})


def device(dev_id: str, period: float = 60, kind: str = "kiosk", **probe: Any) -> dict[str, Any]:
    return {"id": dev_id, "name": dev_id, "kind": kind, "probe": probe, "offline_after_s": period}


def at(s: float) -> datetime:
    return T0 + timedelta(seconds=s)


def changes(facts: list[DeviceFact]) -> list[tuple[str, str, float]]:
    return [(f.body.device, f.body.state.value, (f.ts - T0).total_seconds()) for f in facts]


# (seconds after start, devices seen then, changes expected at that tick)
TIMELINE: list[tuple[float, list[str], list[tuple[str, str, float]]]] = [
    (0, [], []),
    (10, ["kiosk"], [("kiosk", "online", 10)]),
    (40, ["kiosk"], []),  # heartbeats keep it online: nothing repeated
    (59, [], []),
    (60, [], [("never", "offline", 60)]),  # never seen: offline at start + period
    (61, [], []),
    (99, [], []),
    (100, [], [("kiosk", "offline", 100)]),  # silent since 40: offline at 40 + 60
    (130, [], []),
    (140, ["kiosk", "never"], [("kiosk", "online", 140), ("never", "online", 140)]),
    (141, ["kiosk"], []),
    (200, ["kiosk"], [("never", "offline", 200)]),  # silent since 140
    (259, [], []),
    (260, [], [("kiosk", "offline", 260)]),
    (300, [], []),
]


def test_timeline_one_fact_per_change() -> None:
    clock = SettableClock(T0)
    config = hall_with([device("kiosk", tcp="10.0.0.9:80"), device("never", mqtt_topic="hb/n")])
    monitor = DeviceMonitor(config, now=clock)
    for seconds, seen, expected in TIMELINE:
        clock.now = at(seconds)
        for dev_id in seen:
            monitor.seen(dev_id)
        facts = monitor.tick()
        assert changes(facts) == expected, seconds
        assert monitor.tick() == []  # a second tick at the same moment repeats nothing
    assert monitor.state("kiosk") is DeviceState.OFFLINE


def test_facts_carry_hall_source_kind_and_reason() -> None:
    clock = SettableClock(T0)
    config = hall_with(
        [
            device("lift-1", 120, kind="lift", tcp="10.0.0.30:502"),
            device("screen", 30, kind="screen", http_url="http://u:pw@10.0.0.20/s?token=x"),
        ]
    )
    monitor = DeviceMonitor(config, now=clock)
    clock.now = at(30)
    [screen] = monitor.tick()
    assert (screen.hall, screen.source, screen.body.device_kind) == (
        "h1",
        config.edge.source,
        DeviceKind.SCREEN,
    )
    assert screen.body.reason == (
        "no sign of life for 30 s since the edge started (http GET http://10.0.0.20/s)"
    )
    monitor.seen("lift-1", at(50))
    clock.now = at(200)
    online, offline = monitor.tick()
    assert (online.body.state, online.ts) == (DeviceState.ONLINE, at(50))
    assert (offline.body.state, offline.ts) == (DeviceState.OFFLINE, at(170))  # came and went
    assert offline.body.reason == "no sign of life for 120 s (tcp 10.0.0.30:502)"
    assert offline.body.device_kind is DeviceKind.LIFT


def test_late_or_stale_signs_do_not_bring_a_device_back() -> None:
    clock = SettableClock(T0)
    monitor = DeviceMonitor(hall_with([device("k", 60, tcp="10.0.0.9:80")]), now=clock)
    monitor.seen("k", at(5))
    monitor.seen("nobody", at(5))  # unknown ids are ignored
    clock.now = at(70)
    assert changes(monitor.tick()) == [("k", "online", 5), ("k", "offline", 65)]
    monitor.seen("k", at(64))  # recorded late, from before the offline moment
    assert monitor.tick() == []
    stale = FeedMessage("hb/k", b"", at(80), live=False)  # a backlog the broker held
    monitor.observe("heartbeat", stale)
    assert monitor.tick() == []


def test_mqtt_devices_are_not_judged_while_the_edge_does_not_listen() -> None:
    clock = SettableClock(T0)
    config = hall_with([device("hb", 60, mqtt_topic="hb/x"), device("tcp", 60, tcp="10.0.0.9:80")])
    monitor = DeviceMonitor(config, now=clock)
    # (seconds, listening, changes): the feed client is not caught up for the first 50 s
    for seconds, listening, expected in [
        (0, False, []),
        (59, False, []),
        (60, False, [("tcp", "offline", 60)]),  # polled devices are judged all the same
        (70, True, []),  # listening from 70: the heartbeat device's silence counts from it
        (129, True, []),
        (130, True, [("hb", "offline", 130)]),
        (200, False, []),  # the link drops again: nothing more is judged over MQTT
    ]:
        clock.now = at(seconds)
        facts = monitor.tick(listening=listening)
        assert changes(facts) == expected, seconds
        if seconds == 130:
            assert "since the edge began listening" in facts[0].body.reason


# --- HTTP and TCP probes -------------------------------------------------------------


class _Handler(BaseHTTPRequestHandler):
    paths: ClassVar[list[str]] = []

    def do_GET(self) -> None:
        self.paths.append(self.path)
        status = {"/ok": 200, "/moved": 302, "/fail": 500}.get(self.path, 404)
        self.send_response(status)
        if status == 302:
            self.send_header("Location", "/elsewhere")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def http_server() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    _Handler.paths = []
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_http_probe(http_server: str) -> None:
    assert http_alive(f"{http_server}/ok", 2)
    assert http_alive(f"{http_server}/moved", 2)  # 3xx is alive; the redirect not followed
    assert not http_alive(f"{http_server}/fail", 2)
    assert not http_alive(f"{http_server}/missing", 2)
    assert not http_alive(f"http://127.0.0.1:{closed_port()}/ok", 2)
    assert "/elsewhere" not in _Handler.paths


def test_tcp_probe() -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        assert tcp_alive(f"127.0.0.1:{listener.getsockname()[1]}", 2)
    assert not tcp_alive(f"127.0.0.1:{closed_port()}", 2)


def test_prober_thread_records_live_devices(http_server: str) -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        config = hall_with(
            [
                device("web", http_url=f"{http_server}/ok"),
                device("broken", http_url=f"{http_server}/fail"),
                device("port", tcp=f"127.0.0.1:{listener.getsockname()[1]}"),
                device("shut", tcp=f"127.0.0.1:{closed_port()}"),
                device("hb", mqtt_topic="hb/x"),  # not the prober's
            ]
        )
        monitor = DeviceMonitor(config)
        prober = DeviceProber(monitor, timeout_s=2)
        assert [p[0] for p in prober.probes] == ["web", "broken", "port", "shut"]
        prober.start()
        try:
            wait_until(lambda: prober.rounds >= 4, 10, "one round of probes")
        finally:
            prober.stop()
    assert {d.id for d in monitor.devices if monitor.last_seen(d.id)} == {"web", "port"}
    assert [(d, s) for d, s, _ in changes(monitor.tick())] == [
        ("web", "online"),
        ("port", "online"),
    ]


# --- MQTT heartbeats and feed traffic through the feed runner -----------------------


@pytest.fixture
def publish(mosquitto: Mosquitto) -> Iterator[Callable[..., None]]:
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"devices-{id(mosquitto)}")
    client.connect(mosquitto.host, mosquitto.port)
    client.loop_start()

    def send(topic: str, payload: bytes, retain: bool = False) -> None:
        client.publish(topic, payload, qos=1, retain=retain).wait_for_publish(5)

    yield send
    client.loop_stop()
    client.disconnect()


def test_mqtt_heartbeats_through_the_feed_runner(
    mosquitto: Mosquitto, publish: Callable[..., None], unique_id: Callable[[str], str]
) -> None:
    base = f"hb/{unique_id('d')}"
    config = hall_with(
        [
            device("kiosk", mqtt_topic=f"{base}/kiosk"),
            device("screen", mqtt_topic=f"{base}/screen/+"),
            device("stale", mqtt_topic=f"{base}/stale"),
        ]
    )
    publish(f"{base}/stale", b"old", retain=True)  # retained: says nothing about now
    monitor = DeviceMonitor(config)
    feeds = heartbeat_feeds(monitor)
    runner = FeedRunner(
        feeds,
        BrokerSettings(port=mosquitto.port),
        lambda f: None,
        client_id=unique_id("hb"),
        tick_interval_s=0.05,
        settle_s=0.5,
        on_message=monitor.observe,
    )
    runner.start()
    try:
        wait_until(lambda: runner.settled, 10, "the runner to settle")
        publish(f"{base}/kiosk", b"")
        publish(f"{base}/screen/1", b"{}")
        wait_until(lambda: runner.handled >= 3, 10, "the heartbeats handled")
    finally:
        runner.stop()
        publish(f"{base}/stale", b"", retain=True)  # clear the retained message
    assert [f.topic_filter for f in feeds] == [f"{base}/kiosk", f"{base}/screen/+", f"{base}/stale"]
    assert [(d, s) for d, s, _ in changes(monitor.tick())] == [
        ("kiosk", "online"),
        ("screen", "online"),
    ]
    assert monitor.last_seen("stale") is None


def test_queue_feed_traffic_marks_the_queue_machine_alive(
    mosquitto: Mosquitto,
    publish: Callable[..., None],
    unique_id: Callable[[str], str],
) -> None:
    topic = f"vendor/{unique_id('q')}/queue"
    config = hall_with(
        [device("qm", kind="queue_machine", feed="queue"), device("ev", feed="evaluators")],
        queue={"topic": topic, "applicant_salt": SALT, "clock": "events"},
        evaluators={"topic": f"{topic}-evaluators"},
    )
    monitor = DeviceMonitor(config)
    store = FeedStore(":memory:")
    runner = FeedRunner(
        [QueueFeed(config, store), *heartbeat_feeds(monitor)],
        BrokerSettings(port=mosquitto.port),
        lambda f: None,
        client_id=unique_id("qfeed"),
        tick_interval_s=0.05,
        store=store,
        settle_s=0.1,
        on_message=monitor.observe,
    )
    runner.start()
    try:
        wait_until(lambda: runner.settled, 10, "the runner to settle")
        publish(topic, b"not even json")  # dead-lettered, but the machine is talking
        wait_until(lambda: monitor.last_seen("qm") is not None, 10, "the queue machine seen")
    finally:
        runner.stop()
        store.close()
    [fact] = monitor.tick()
    assert (fact.body.device, fact.body.device_kind, fact.body.state) == (
        "qm",
        DeviceKind.QUEUE_MACHINE,
        DeviceState.ONLINE,
    )
    assert monitor.last_seen("ev") is None


def test_edge_worker_reports_devices(
    mosquitto: Mosquitto,
    publish: Callable[..., None],
    unique_id: Callable[[str], str],
    tmp_path: Path,
) -> None:
    hall_id = unique_id("hw")
    data = build_hall(hall_id).model_dump(mode="json", context={"reveal_secrets": True})
    data["mqtt"] = {"port": mosquitto.port}
    data["edge"] = {
        "outbox_path": str(tmp_path / "outbox.sqlite"),
        "feed_state_path": str(tmp_path / "feeds.sqlite"),
    }
    listener_socket = socket.socket()
    listener_socket.bind(("127.0.0.1", 0))
    listener_socket.listen()
    data["devices"] = [
        device("kiosk", mqtt_topic="hb/{hall}/kiosk"),
        device("lift", kind="lift", tcp=f"127.0.0.1:{listener_socket.getsockname()[1]}"),
    ]
    hall = HallConfig.model_validate(data)
    facts: list[Fact] = []
    listener = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=unique_id("listener"))
    subscribed = threading.Event()
    listener.on_subscribe = lambda *_: subscribed.set()
    listener.on_message = lambda _c, _u, m: facts.append(parse_fact(bytes(m.payload)))
    listener.connect(mosquitto.host, mosquitto.port)
    listener.subscribe(fact_topic(hall_id, "device"), 1)
    listener.loop_start()
    edge = EdgeWorker(hall, detector=_Nobody())  # type: ignore[arg-type]
    assert edge.feeds is not None and edge.feed_store is None  # heartbeats alone
    try:
        assert subscribed.wait(5)
        edge.start()
        wait_until(lambda: edge.feeds is not None and edge.feeds.settled, 10, "feeds settled")
        publish(f"hb/{hall_id}/kiosk", b"")

        def online() -> set[str]:
            return {
                f.body.device
                for f in facts
                if isinstance(f, DeviceFact) and f.body.state is DeviceState.ONLINE
            }

        wait_until(lambda: {"kiosk", "lift"} <= online(), 10, "both devices online")
    finally:
        edge.stop()
        listener.loop_stop()
        listener.disconnect()
        listener_socket.close()
    assert edge.prober is not None and not edge.prober.running


class _Nobody:
    name = "nobody"

    def detect(self, image: object) -> object:  # pragma: no cover - cameras stay offline
        raise AssertionError("no camera should deliver a frame in this test")
