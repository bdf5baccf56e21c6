"""The aggregator against a real Mosquitto: facts in, alerts out, sessions survive."""

from __future__ import annotations

import queue
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from prometheus_client import REGISTRY

from aggregator.service import AggregatorService
from aggregator.settings import AggregatorSettings
from hallwatch.contract import (
    AlertMessage,
    AlertState,
    DeviceBody,
    DeviceFact,
    DeviceKind,
    DeviceState,
    EdgeStatus,
    PostState,
    PresenceBody,
    PresenceFact,
    alerts_topic,
    edge_status_topic,
    encode,
    fact_topic,
    parse_alert,
)
from tests.conftest import build_hall
from tests.support.api import admin_token
from tests.support.mosquitto import Mosquitto, find_mosquitto, publish
from tests.support.running import wait_until

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(find_mosquitto() is None, reason="mosquitto is not installed"),
]

NOW = datetime(2026, 11, 2, 2, 30, tzinfo=UTC)  # Monday 10:30 in Shanghai: in service


class Subscriber:
    """Collects messages of one topic filter."""

    def __init__(self, port: int, topic: str) -> None:
        self.messages: queue.Queue[bytes] = queue.Queue()
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
        subscribed = queue.Queue[bool]()
        self.client.on_message = lambda _c, _u, m: self.messages.put(bytes(m.payload))
        self.client.on_subscribe = lambda *_a: subscribed.put(True)
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()
        self.client.subscribe(topic, qos=1)
        subscribed.get(timeout=5)

    def get(self, timeout: float = 10.0) -> bytes:
        return self.messages.get(timeout=timeout)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def presence(hall: str, post: str, state: PostState, since: datetime) -> tuple[str, bytes]:
    body = PresenceBody(camera="c1", post=post, window=post[-1], state=state, since=since)
    fact = PresenceFact(hall=hall, source="edge-1", ts=since, body=body)
    return fact_topic(hall, "presence"), encode(fact)


ServiceFactory = Callable[..., AggregatorService]


@pytest.fixture
def make_service(tmp_path: Path, unique_id: Callable[[str], str]) -> Iterator[ServiceFactory]:
    started: list[AggregatorService] = []

    def make(port: int, hall: str, *, db: str = "state", **overrides: Any) -> AggregatorService:
        settings = AggregatorSettings(
            database_url=f"sqlite:///{tmp_path / db}.sqlite",
            mqtt_host="127.0.0.1",
            mqtt_port=port,
            mqtt_client_id=overrides.pop("mqtt_client_id", unique_id("agg")),
            http_port=0,
            rule_tick_s=0.2,
            **overrides,
        )
        service = AggregatorService(settings, {hall: build_hall(hall)}, clock=lambda: NOW)
        service.start()
        started.append(service)
        assert service.wait_mqtt_connected(10), "aggregator did not connect"
        return service

    yield make
    for service in started:
        service.stop()


def test_facts_over_mqtt_are_stored(
    mosquitto: Mosquitto, make_service: ServiceFactory, unique_id: Callable[[str], str]
) -> None:
    hall = unique_id("h")
    service = make_service(mosquitto.port, hall)
    camera = DeviceFact(
        hall=hall,
        source="edge-1",
        body=DeviceBody(device="c1", device_kind=DeviceKind.CAMERA, state=DeviceState.ONLINE),
    )
    status = EdgeStatus(hall=hall, source="edge-1", state=DeviceState.ONLINE)
    on = presence(hall, "w1", PostState.ON_POST, NOW - timedelta(minutes=1))
    publish(
        mosquitto.port,
        [
            on,
            on,  # a redelivery: stored once
            (fact_topic(hall, "device"), encode(camera)),
            (fact_topic(hall, "presence"), b"{broken"),
            (edge_status_topic(hall), encode(status)),
        ],
    )
    wait_until(lambda: len(service.state.edge_statuses(hall)) == 1, 10, "the edge status")
    # a batch's dead letters are written last (after its facts and edge status)
    wait_until(lambda: len(service.state.dead_letters()) >= 1, 10, "the dead letter")
    assert service.state.seen_count(hall) == 2
    (letter,) = service.state.dead_letters()
    assert letter.reason.startswith("invalid fact")
    url = f"{service.url}/api/v1/halls/{hall}/posts"
    posts = httpx.get(url, headers=admin_token(service), timeout=5).json()
    assert (posts[0]["id"], posts[0]["state"], posts[0]["camera_online"]) == ("w1", "on_post", True)
    health = httpx.get(f"{service.url}/healthz", timeout=5)
    assert health.status_code == 200, health.text


def test_off_post_alert_is_published(
    mosquitto: Mosquitto, make_service: ServiceFactory, unique_id: Callable[[str], str]
) -> None:
    hall = unique_id("h")
    manager = Subscriber(mosquitto.port, alerts_topic(hall))
    try:
        service = make_service(mosquitto.port, hall)
        publish(
            mosquitto.port, [presence(hall, "w1", PostState.OFF_POST, NOW - timedelta(minutes=20))]
        )
        wait_until(lambda: service.state.seen_count(hall) == 1, 10, "the fact to be stored")
        service.rule.evaluate(NOW)
        opened = parse_alert(manager.get())
        assert isinstance(opened, AlertMessage)
        assert (opened.hall, opened.post, opened.state) == (hall, "w1", AlertState.OPEN)
        assert opened.start == NOW - timedelta(minutes=20)
        back = NOW - timedelta(minutes=1)
        publish(mosquitto.port, [presence(hall, "w1", PostState.ON_POST, back)])
        resolved = parse_alert(manager.get())
        assert (resolved.id, resolved.state, resolved.end) == (opened.id, AlertState.RESOLVED, back)
        assert manager.messages.empty()
    finally:
        manager.close()


@pytest.mark.parametrize("protocol", ["5", "3.1.1"])
def test_persistent_session_keeps_facts_while_down(
    mosquitto: Mosquitto,
    make_service: ServiceFactory,
    unique_id: Callable[[str], str],
    protocol: str,
) -> None:
    hall, client_id = unique_id("h"), unique_id("agg")
    first = make_service(mosquitto.port, hall, mqtt_client_id=client_id, mqtt_protocol=protocol)
    first.stop()
    t0 = NOW - timedelta(minutes=30)
    facts = [presence(hall, "w1", s, t0 + timedelta(minutes=i))
             for i, s in enumerate([PostState.ON_POST, PostState.OFF_POST] * 5)]  # fmt: skip
    publish(mosquitto.port, facts)  # nobody is connected: the broker queues them
    second = make_service(mosquitto.port, hall, mqtt_client_id=client_id, mqtt_protocol=protocol)
    wait_until(lambda: second.state.seen_count(hall) == 10, 10, "all 10 facts")
    (status,) = second.state.post_statuses(hall)
    assert (status.state, status.since) == ("off_post", t0 + timedelta(minutes=9))


def batches_ingested() -> float:
    return REGISTRY.get_sample_value("hallwatch_ingest_batch_messages_count") or 0.0


def test_backlog_drains_in_batches_each_fact_once(
    mosquitto: Mosquitto, make_service: ServiceFactory, unique_id: Callable[[str], str]
) -> None:
    hall, client_id = unique_id("h"), unique_id("agg")
    make_service(mosquitto.port, hall, mqtt_client_id=client_id, ingest_batch_max=100).stop()
    t0 = NOW - timedelta(hours=1)
    facts = [presence(hall, f"w{1 + i % 4}", PostState.ON_POST, t0 + timedelta(seconds=i))
             for i in range(600)]  # fmt: skip
    facts[300] = (fact_topic(hall, "presence"), b"{broken")
    publish(mosquitto.port, facts + facts[:50])  # the broker queues them; 50 come twice
    before = batches_ingested()
    second = make_service(mosquitto.port, hall, mqtt_client_id=client_id, ingest_batch_max=100)
    wait_until(lambda: second.mqtt is not None and second.mqtt.handled >= 650, 30, "650 messages")
    assert second.state.seen_count(hall) == 599
    assert len(second.state.dead_letters()) == 1
    batches = batches_ingested() - before
    assert 6 <= batches < 650 / 2, batches  # batches of up to 100, not one by one
    second.stop()
    # a third start stores the next fact; anything redelivered (a PUBACK still queued at
    # the disconnect) is dropped as a duplicate, never stored twice
    third = make_service(mosquitto.port, hall, mqtt_client_id=client_id)
    publish(mosquitto.port, [presence(hall, "w1", PostState.OFF_POST, NOW)])
    wait_until(lambda: third.state.seen_count(hall) == 600, 10, "the new fact")
    assert len(third.state.dead_letters()) == 1


def test_reconnects_after_broker_restart(
    make_service: ServiceFactory, unique_id: Callable[[str], str]
) -> None:
    hall = unique_id("h")
    with Mosquitto() as broker:
        service = make_service(broker.port, hall)
        broker.restart()
        wait_until(lambda: not service.wait_mqtt_connected(0), 5, "the disconnect")
        assert service.wait_mqtt_connected(15), "no reconnect"
        publish(broker.port, [presence(hall, "w1", PostState.ON_POST, NOW)])
        wait_until(lambda: service.state.seen_count(hall) == 1, 10, "the fact to be stored")


def test_shared_subscription_splits_facts_between_replicas(
    mosquitto: Mosquitto, make_service: ServiceFactory, unique_id: Callable[[str], str]
) -> None:
    hall, group = unique_id("h"), unique_id("g")
    replicas = [make_service(mosquitto.port, hall, share_group=group) for _ in range(2)]
    facts = [presence(hall, f"w{1 + i % 2}", PostState.ON_POST, NOW - timedelta(seconds=i))
             for i in range(20)]  # fmt: skip
    publish(mosquitto.port, facts)
    state = replicas[0].state  # both replicas share one database

    def handled() -> list[int]:  # counted once a batch is acknowledged, after its commit
        return [r.mqtt.handled if r.mqtt else 0 for r in replicas]

    wait_until(lambda: sum(handled()) >= 20, 10, "all 20 facts acknowledged")
    assert state.seen_count(hall) == 20
    assert sum(handled()) == 20, handled()  # each fact went to one replica only
    assert all(handled()), handled()
    assert not state.dead_letters()
