"""The site's Mosquitto users and ACL, rendered from ``deploy/mosquitto/hallwatch.acl.in`` and
proven against a real Mosquitto running ``deploy/mosquitto/hallwatch.conf``.

Absence is shown with a marker: a denied message is sent first, an allowed one after it on
the same path; once the allowed one arrived, the denied one would have arrived before it.
"""

from __future__ import annotations

import queue
import socket
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.reasoncodes import ReasonCode

from hallwatch.config.loader import read_hall_config
from hallwatch.contract import (
    EDGE_STATUS_FILTER,
    FACTS_FILTER,
    FactKind,
    alerts_topic,
    edge_status_topic,
    fact_topic,
    shared_subscription,
)
from hallwatch.deploy_mqtt import (
    HallTopics,
    SiteFiles,
    build_site,
    find_mosquitto_passwd,
    render_acl,
)
from tests.conftest import build_hall
from tests.support.mosquitto import Mosquitto, find_mosquitto

DEPLOY = Path(__file__).resolve().parents[1] / "deploy"
SHIPPED_CONF = DEPLOY / "mosquitto" / "hallwatch.conf"
TEMPLATE = DEPLOY / "mosquitto" / "hallwatch.acl.in"
HALLS = [HallTopics.conventional("h1"), HallTopics.conventional("h2")]
GRANTED, NOT_AUTHORIZED = {0, 1}, 0x87
ACCEPTED = {0, 0x10}  # PUBACK "success" or "no matching subscribers"
# Mosquitto 2's acl_file grants every SUBSCRIBE and filters on delivery; a broker that
# refuses the subscription instead is as good: either way nothing may arrive.
PRYING_OK = GRANTED | {NOT_AUTHORIZED}

needs_passwd = pytest.mark.skipif(
    find_mosquitto_passwd() is None, reason="mosquitto_passwd is not installed"
)


# --- rendering and credentials (no broker) -----------------------------------------------


def test_every_hall_gets_its_users_and_only_its_topics() -> None:
    acl = render_acl(TEMPLATE.read_text(), HALLS)
    per_hall = ("edge", "manager", "queue", "evaluators", "devices")
    assert acl.users == ("aggregator", *(f"{r}-{h}" for h in ("h1", "h2") for r in per_hall))
    block = acl.text.split("user edge-h1\n")[1].split("\n\n")[0].splitlines()
    assert block == [
        "topic write hallwatch/v1/h1/facts/+",
        "topic write hallwatch/v1/h1/edge/status",
        "topic read qms/h1/#",
        "topic read evaluators/h1/#",
        "topic read devices/h1/#",
    ]
    assert "pattern" not in acl.text and "{" not in acl.text


def test_topics_come_from_the_hall_yaml() -> None:
    example, _warnings = read_hall_config(DEPLOY / "examples" / "hall.yaml", require_env=False)
    bare = build_hall("bare-hall")  # no queue, no evaluators, no MQTT devices
    acl = render_acl(
        TEMPLATE.read_text(), [HallTopics.from_config(example), HallTopics.from_config(bare)]
    )
    assert "topic write devices/demo-county-hall/kiosk-1/heartbeat" in acl.text
    assert "topic read qms/demo-county-hall/#" in acl.text
    assert [u for u in acl.users if u.endswith("bare-hall")] == [
        "edge-bare-hall",
        "manager-bare-hall",
    ]


@pytest.mark.parametrize(
    ("topic", "why"),
    [
        ("qms/#", "overlaps"),  # the queue machine of h1 could write for h2
        ("qms/+/ticket", "overlaps"),
        ("hallwatch/v1/h1/facts/ticket", "HallWatch"),  # a device forging facts
        ("#", "HallWatch"),
        ("qms/h1/#\nuser aggregator", "usable"),  # a line break would inject ACL lines
        ("qms/#/x", "last level"),
        ("$SYS/#", "usable"),
    ],
)
def test_topics_that_reach_beyond_the_hall_are_refused(topic: str, why: str) -> None:
    hall = HallTopics("h1", queue=(topic,))
    with pytest.raises(ValueError, match=why):
        render_acl(TEMPLATE.read_text(), [hall, HallTopics.conventional("h2")])


@needs_passwd
def test_passwords_are_random_private_and_kept_on_a_second_run(tmp_path: Path) -> None:
    first = build_site(tmp_path, [HallTopics.conventional("h1")])
    passwords = {c.user: c.password for c in first.created}
    assert len(set(passwords.values())) == len(passwords) == 6
    assert all(len(p) >= 32 for p in passwords.values())
    edge_env = (tmp_path / "secrets" / "edge-h1.env").read_text()
    assert edge_env == f"HALL_MQTT_USER=edge-h1\nHALL_MQTT_PASSWORD={passwords['edge-h1']}\n"
    for private in [first.passwd_path, *(tmp_path / "secrets").iterdir()]:
        assert private.stat().st_mode & 0o077 == 0, private
    assert (tmp_path / "secrets").stat().st_mode & 0o077 == 0
    written = first.passwd_path.read_text() + first.acl_path.read_text()
    assert not any(p in written for p in passwords.values())
    hashes = dict(line.split(":", 1) for line in first.passwd_path.read_text().splitlines())

    second = build_site(tmp_path, [HallTopics.conventional("h2")])  # h1 leaves, h2 comes
    assert set(second.kept) == {"aggregator"}
    assert {c.user for c in second.created} == {
        f"{r}-h2" for r in ("edge", "manager", "queue", "evaluators", "devices")
    }
    assert "edge-h1" in second.removed and not (tmp_path / "secrets" / "edge-h1.env").exists()
    after = dict(line.split(":", 1) for line in second.passwd_path.read_text().splitlines())
    assert after["aggregator"] == hashes["aggregator"] and "edge-h1" not in after

    third = build_site(tmp_path, [HallTopics.conventional("h2")], rotate=True)
    assert not third.kept and len(third.created) == 6
    rotated = dict(line.split(":", 1) for line in third.passwd_path.read_text().splitlines())
    assert rotated["aggregator"] != hashes["aggregator"]


# --- against a real Mosquitto ------------------------------------------------------------


def site_config(acl: Path, passwd: Path) -> list[str]:
    """The shipped hallwatch.conf's lines, its files pointed at the rendered ones.

    The launcher owns the listener (a free loopback port) and persistence (its temp folder).
    """
    owned = {"listener", "persistence", "persistence_location", "autosave_interval"}
    lines: list[str] = []
    seen: dict[str, str] = {}
    for raw in SHIPPED_CONF.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        key, _, value = line.partition(" ")
        seen[key] = value
        if key in owned:
            continue
        lines.append(
            {"password_file": f"password_file {passwd}", "acl_file": f"acl_file {acl}"}.get(
                key, line
            )
        )
    assert seen.get("allow_anonymous") == "false"
    assert "password_file" in seen and "acl_file" in seen
    return lines


class Site:
    """The broker running the shipped config and the users' passwords."""

    def __init__(self, broker: Mosquitto, files: SiteFiles) -> None:
        self.broker = broker
        self.passwords = {c.user: c.password for c in files.created}


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    if find_mosquitto() is None or find_mosquitto_passwd() is None:
        pytest.skip("mosquitto is not installed")
    files = build_site(tmp_path_factory.mktemp("site"), HALLS)
    broker = Mosquitto(
        allow_anonymous=False, extra_config=site_config(files.acl_path, files.passwd_path)
    )
    with broker:
        yield Site(broker, files)


class Peer:
    """One MQTT client of the site; records its CONNACK, SUBACKs, PUBACKs and messages."""

    def __init__(
        self,
        port: int,
        client_id: str,
        user: str | None,
        password: str | None,
        *,
        v5: bool = True,
        will: tuple[str, bytes] | None = None,
    ) -> None:
        protocol = mqtt.MQTTv5 if v5 else mqtt.MQTTv311
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id, protocol=protocol)
        if user is not None:
            self.client.username_pw_set(user, password)
        if will is not None:
            self.client.will_set(will[0], will[1], qos=1, retain=True)
        self.connack: queue.Queue[ReasonCode] = queue.Queue()
        self.subacks: queue.Queue[list[ReasonCode]] = queue.Queue()
        self.messages: queue.Queue[tuple[str, bytes]] = queue.Queue()
        self._acks: dict[int, ReasonCode] = {}
        self._cond = threading.Condition()
        self.client.on_connect = lambda _c, _u, _f, rc, _p: self.connack.put(rc)
        self.client.on_subscribe = lambda _c, _u, _m, rcs, _p: self.subacks.put(list(rcs))
        self.client.on_message = lambda _c, _u, m: self.messages.put((m.topic, bytes(m.payload)))
        self.client.on_publish = self._on_publish
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()
        self.reason = self.connack.get(timeout=10)

    def _on_publish(
        self, _c: mqtt.Client, _u: object, mid: int, rc: ReasonCode, _p: object
    ) -> None:
        with self._cond:
            self._acks[mid] = rc
            self._cond.notify_all()

    def subscribe(self, *filters: str) -> list[int]:
        """Subscribe at QoS 1; the SUBACK's reason code of each filter."""
        self.client.subscribe([(f, 1) for f in filters])
        return [rc.value for rc in self.subacks.get(timeout=10)]

    def publish(self, topic: str, payload: bytes, *, retain: bool = False) -> int:
        """Publish at QoS 1 and return the PUBACK's reason code."""
        info = self.client.publish(topic, payload, qos=1, retain=retain)
        with self._cond:
            assert self._cond.wait_for(lambda: info.mid in self._acks, 10), "no PUBACK"
            return self._acks.pop(info.mid).value

    def until(self, *markers: bytes, timeout: float = 10.0) -> dict[bytes, str]:
        """Everything received until every marker has arrived: payload → topic."""
        seen: dict[bytes, str] = {}
        while not all(m in seen for m in markers):
            try:
                topic, payload = self.messages.get(timeout=timeout)
            except queue.Empty:
                raise AssertionError(f"markers {markers} did not all arrive; got {seen}") from None
            seen[payload] = topic
        return seen

    def drop(self) -> None:
        """Vanish without DISCONNECT: the broker sends the will."""
        self.client.loop_stop()
        sock = self.client.socket()
        assert isinstance(sock, socket.socket)
        sock.shutdown(socket.SHUT_RDWR)
        sock.close()

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


Connect = Callable[..., Peer]


@pytest.fixture
def connect(site: Site, unique_id: Callable[[str], str]) -> Iterator[Connect]:
    """``connect(user, password=None, v5=True, will=None)``: a peer, logged in as asked."""
    peers: list[Peer] = []

    def make(
        user: str | None,
        password: str | None = None,
        *,
        v5: bool = True,
        will: tuple[str, bytes] | None = None,
        refused: bool = False,
    ) -> Peer:
        if password is None and user is not None:
            password = site.passwords[user]
        peer = Peer(site.broker.port, unique_id(user or "anon"), user, password, v5=v5, will=will)
        peers.append(peer)
        assert peer.reason.is_failure == refused, (user, str(peer.reason))
        return peer

    yield make
    for peer in peers:
        peer.close()


@pytest.fixture
def token(unique_id: Callable[[str], str]) -> Callable[[str], bytes]:
    """A payload unique to this test."""
    return lambda what: unique_id(what).encode()


def aggregator(connect: Connect, group: str) -> Peer:
    """The aggregator's subscriptions: shared facts, plain edge status."""
    peer = connect("aggregator")
    assert peer.subscribe(shared_subscription(FACTS_FILTER, group), EDGE_STATUS_FILTER) == [1, 1]
    return peer


@pytest.mark.integration
@pytest.mark.parametrize(
    ("user", "password", "v5"),
    [
        ("edge-h1", "wrong-password", True),
        ("edge-h1", "wrong-password", False),
        ("edge-h3", "any-password", True),  # no such user
        (None, None, True),  # anonymous
        (None, None, False),
    ],
)
def test_unknown_users_wrong_passwords_and_anonymous_are_refused(
    connect: Connect, user: str | None, password: str | None, v5: bool
) -> None:
    peer = connect(user, password, v5=v5, refused=True)
    assert peer.reason.value in (0x86, 0x87)  # bad user name or password / not authorized


@pytest.mark.integration
def test_another_users_password_is_refused(connect: Connect, site: Site) -> None:
    connect("edge-h1", site.passwords["edge-h2"], refused=True)


@pytest.mark.integration
def test_edge_publishes_only_its_own_halls_facts_and_status(
    connect: Connect, token: Callable[[str], bytes]
) -> None:
    agg = aggregator(connect, "g-edge")
    edge = connect("edge-h1")
    denied = [
        fact_topic("h2", "presence"),
        edge_status_topic("h2"),
        alerts_topic("h1"),  # alerts come from the aggregator only
        "qms/h1/ticket",  # the edge reads its queue machine, never writes for it
    ]
    forged = {t: token("forged") for t in denied}
    for topic, payload in forged.items():
        assert edge.publish(topic, payload) == NOT_AUTHORIZED, topic  # MQTT 5: PUBACK 0x87
    allowed = {fact_topic("h1", kind): token(kind) for kind in FactKind}
    allowed[edge_status_topic("h1")] = token("status")
    for topic, payload in allowed.items():
        assert edge.publish(topic, payload, retain=topic.endswith("status")) in ACCEPTED, topic
    seen = agg.until(*allowed.values())
    assert {payload: seen[payload] for payload in allowed.values()} == {
        payload: topic for topic, payload in allowed.items()
    }
    assert not set(forged.values()) & set(seen)


@pytest.mark.integration
def test_mqtt_311_edge_gets_an_ack_but_its_other_halls_fact_is_dropped(
    connect: Connect, token: Callable[[str], bytes]
) -> None:
    agg = aggregator(connect, "g-311")
    edge = connect("edge-h1", v5=False)
    forged, marker = token("forged"), token("marker")
    # MQTT 3.1.1 has no way to say "not authorized" in a PUBACK: Mosquitto acks and drops.
    assert edge.publish(fact_topic("h2", "presence"), forged) == 0
    assert edge.publish(fact_topic("h1", "presence"), marker) in ACCEPTED
    assert forged not in agg.until(marker)


@pytest.mark.integration
def test_edge_will_on_another_halls_status_is_dropped(
    connect: Connect, token: Callable[[str], bytes]
) -> None:
    agg = aggregator(connect, "g-will")
    forged, marker = token("offline-h2"), token("offline-h1")
    # Mosquitto accepts the CONNECT and drops the will when it would be sent.
    connect("edge-h1", will=(edge_status_topic("h2"), forged)).drop()
    connect("edge-h1", will=(edge_status_topic("h1"), marker)).drop()
    seen = agg.until(marker)
    assert seen[marker] == edge_status_topic("h1") and forged not in seen


@pytest.mark.integration
def test_aggregator_shared_subscription_gets_every_halls_facts_and_writes_alerts(
    connect: Connect, token: Callable[[str], bytes]
) -> None:
    agg = aggregator(connect, "g-both")
    sent = {}
    for hall in ("h1", "h2"):
        edge = connect(f"edge-{hall}")
        sent[fact_topic(hall, "presence")] = token(f"fact-{hall}")
        sent[edge_status_topic(hall)] = token(f"status-{hall}")
        for topic in (fact_topic(hall, "presence"), edge_status_topic(hall)):
            assert edge.publish(topic, sent[topic], retain=topic.endswith("status")) in ACCEPTED
    seen = agg.until(*sent.values())
    assert {seen[p]: p for p in sent.values()} == sent
    for hall in ("h1", "h2"):
        assert agg.publish(alerts_topic(hall), token("alert")) in ACCEPTED
    assert agg.publish(fact_topic("h1", "presence"), token("forged")) == NOT_AUTHORIZED


@pytest.mark.integration
def test_manager_reads_only_its_halls_alerts(
    connect: Connect, token: Callable[[str], bytes]
) -> None:
    edge = connect("edge-h1")
    status = token("status")
    assert edge.publish(edge_status_topic("h1"), status, retain=True) in ACCEPTED
    manager = connect("manager-h1")
    assert manager.subscribe(alerts_topic("h1")) == [1]
    prying = [
        alerts_topic("h2"),
        f"{alerts_topic('h2')}/+",  # h2's per-recipient alert topics
        FACTS_FILTER,
        "hallwatch/v1/h1/facts/#",
        EDGE_STATUS_FILTER,
    ]
    assert set(manager.subscribe(*prying)) <= PRYING_OK
    agg = connect("aggregator")
    unseen = [token("alert-h2"), token("recipient-h2"), token("fact-h1")]
    assert agg.publish(alerts_topic("h2"), unseen[0]) in ACCEPTED
    assert agg.publish(f"{alerts_topic('h2')}/zhang", unseen[1]) in ACCEPTED
    assert edge.publish(fact_topic("h1", "presence"), unseen[2]) in ACCEPTED
    own = {alerts_topic("h1"): token("alert-h1"), f"{alerts_topic('h1')}/li": token("li")}
    assert manager.subscribe(f"{alerts_topic('h1')}/+") == [1]
    for topic, payload in own.items():
        assert agg.publish(topic, payload) in ACCEPTED
    seen = manager.until(*own.values())  # no h2 alert, no fact, no retained status
    assert seen == {payload: topic for topic, payload in own.items()}
    assert manager.publish(alerts_topic("h1"), token("forged")) == NOT_AUTHORIZED
    assert manager.publish(fact_topic("h1", "presence"), token("forged")) == NOT_AUTHORIZED


@pytest.mark.integration
def test_devices_publish_only_their_halls_feed_and_the_edge_reads_only_its_own(
    connect: Connect, token: Callable[[str], bytes]
) -> None:
    edge = connect("edge-h1")
    assert edge.subscribe("qms/h1/#", "evaluators/h1/#", "devices/h1/#") == [1, 1, 1]
    assert set(edge.subscribe("qms/h2/#", "evaluators/h2/#")) <= PRYING_OK
    queue_h1, queue_h2 = connect("queue-h1"), connect("queue-h2")
    evaluators_h1, devices_h1 = connect("evaluators-h1"), connect("devices-h1")
    for peer, topic in [
        (queue_h1, fact_topic("h1", "ticket")),  # a vendor device cannot forge facts
        (queue_h1, "qms/h2/ticket"),
        (queue_h1, "evaluators/h1/rating"),  # nor speak for another device of the hall
        (evaluators_h1, "qms/h1/ticket"),
        (devices_h1, "evaluators/h1/rating"),
    ]:
        assert peer.publish(topic, token("forged")) == NOT_AUTHORIZED, topic
    other_hall = token("ticket-h2")
    assert queue_h2.publish("qms/h2/ticket", other_hall) in ACCEPTED
    own = {
        "qms/h1/ticket": (queue_h1, token("ticket")),
        "evaluators/h1/rating": (evaluators_h1, token("rating")),
        "devices/h1/kiosk-1/heartbeat": (devices_h1, token("beat")),
    }
    for topic, (peer, payload) in own.items():
        assert peer.publish(topic, payload) in ACCEPTED, topic
    seen = edge.until(*(payload for _peer, payload in own.values()))
    assert seen == {payload: topic for topic, (_peer, payload) in own.items()}
    assert other_hall not in seen
