"""The aggregator's MQTT subscriber: its packet codec, and the subscriber on a real Mosquitto
(persistent session, late acknowledgement, MQTT 5 receive maximum, keepalive, TLS)."""

from __future__ import annotations

import socket
import ssl
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from aggregator.mqtt_wire.codec import (
    ConnAck,
    Disconnect,
    PacketReader,
    PingResp,
    ProtocolError,
    Publish,
    SubAck,
    connect_packet,
    publish_packet,
)
from aggregator.mqtt_wire.subscriber import FactSubscriber, Received, WireOptions
from hallwatch.broker import free_port
from hallwatch.contract import FACTS_FILTER
from tests.support.mosquitto import Mosquitto, find_mosquitto
from tests.support.running import wait_until
from tests.support.server import port_open

TOPIC = "hallwatch/v1/h1/facts/presence"
FILTERS = [(FACTS_FILTER, 1)]


# -- codec ---------------------------------------------------------------------------------


def _stream() -> tuple[bytes, list[Publish]]:
    big = bytes(range(256)) * 80  # 20 KiB: a three-byte remaining length
    sent = [
        Publish(TOPIC, b'{"id": 1}', 1, 1, False),
        Publish("hallwatch/v1/h1/edge/status", b"online", 0, 0, True),
        Publish(TOPIC, big, 65535, 1, False),
        Publish("hallwatch/v1/中文/facts/queue", b"", 2, 1, False),
    ]
    wire = b"".join(publish_packet(p.topic, p.payload, mid=p.mid, retain=p.retain) for p in sent)
    return wire, sent


@pytest.mark.parametrize("chunk", [1, 2, 3, 7, 100, 4096, 1 << 20])
def test_packets_split_anywhere_across_reads_come_out_whole(chunk: int) -> None:
    wire, sent = _stream()
    reader = PacketReader(v5=False)
    got = []
    for start in range(0, len(wire), chunk):
        got += reader.feed(wire[start : start + chunk])
    assert got == sent


def test_mqtt5_publish_properties_are_skipped() -> None:
    content_type = b"\x03" + len(b"application/json").to_bytes(2, "big") + b"application/json"
    props = bytes([len(content_type)]) + content_type
    body = len(TOPIC).to_bytes(2, "big") + TOPIC.encode() + b"\x00\x09" + props + b"{}"
    packet = bytes([0x32, len(body)]) + body
    assert PacketReader(v5=True).feed(packet) == [Publish(TOPIC, b"{}", 9, 1, False)]


@pytest.mark.parametrize(
    ("v5", "packet", "expected"),
    [
        (False, b"\x20\x02\x01\x00", ConnAck(True, 0)),
        (False, b"\x20\x02\x00\x05", ConnAck(False, 5)),
        (True, b"\x20\x03\x00\x87\x00", ConnAck(False, 0x87)),
        (True, b"\x20\x06\x00\x00\x03\x13\x00\x00", ConnAck(False, 0, 0)),
        # MQTT 5 CONNACK with an assigned client id, a server keepalive, a user property
        (
            True,
            b"\x20\x14\x00\x00\x11\x12\x00\x02id\x13\x00\x0a\x26\x00\x01k\x00\x01v\x24\x01",
            ConnAck(False, 0, 10),
        ),
        (False, b"\x90\x04\x00\x01\x01\x80", SubAck(1, (1, 0x80))),
        (True, b"\x90\x05\x00\x01\x00\x01\x01", SubAck(1, (1, 1))),
        (False, b"\xd0\x00", PingResp()),
        (True, b"\xe0\x01\x8e", Disconnect(0x8E)),
    ],
)
def test_control_packets(v5: bool, packet: bytes, expected: object) -> None:
    assert PacketReader(v5=v5).feed(packet) == [expected]


@pytest.mark.parametrize(
    ("packet", "message"),
    [
        (publish_packet(TOPIC, b"x", mid=1).replace(b"\x32", b"\x34", 1), "QoS 2"),
        (b"\x30\xff\xff\xff\xff\x01", "longer than 4 bytes"),
        (b"\x50\x02\x00\x01", "unexpected packet type 0x50"),
        (b"\x30\x05\x00\x02\xff\xfe\x00", "not UTF-8"),
        (b"\x30\x82\x01", "over 100"),
        (b"\x32\x01\x00", "shorter than its topic length"),
        (b"\x32\x04\x00\x05ab", "shorter than its topic"),
        (b"\x32\x04\x00\x01a\x00", "shorter than its packet id"),
        (b"\x32\x05\x00\x01a\x00\x00", "packet id 0"),
    ],
)
def test_malformed_packets_are_refused(packet: bytes, message: str) -> None:
    with pytest.raises(ProtocolError, match=message):
        PacketReader(v5=False, max_packet=100).feed(packet)


def test_a_cut_short_connack_property_is_a_protocol_error() -> None:
    with pytest.raises(ProtocolError, match="CONNACK properties cut short"):
        PacketReader(v5=True).feed(b"\x20\x05\x00\x00\x02\x1f\x00")


def test_connect_carries_credentials_and_mqtt5_properties() -> None:
    packet = connect_packet("agg-1", protocol=5, keepalive_s=30, clean=False, username="u",
                            password="p", session_expiry_s=3600, receive_maximum=1000,
                            max_packet=1 << 20)  # fmt: skip
    props = b"\x0d\x11\x00\x00\x0e\x10\x21\x03\xe8\x27\x00\x10\x00\x00"
    body = b"\x00\x04MQTT\x05\xc0\x00\x1e" + props + b"\x00\x05agg-1\x00\x01u\x00\x01p"
    assert packet == bytes([0x10, len(body)]) + body


def test_publishes_with_the_suback_are_kept() -> None:
    """Retained messages may come in the same read as the SUBACK: none is dropped."""
    ours, brokers = socket.socketpair()
    sub = FactSubscriber(WireOptions(host="x", port=1, client_id="c"), FILTERS, Inbox())

    def broker() -> None:
        brokers.sendall(b"\x20\x02\x00\x00")
        brokers.recv(1024)  # SUBSCRIBE
        retained = publish_packet("hallwatch/v1/h1/edge/status", b"online", mid=3, retain=True)
        brokers.sendall(b"\x90\x03\x00\x01\x01" + retained)

    thread = threading.Thread(target=broker)
    thread.start()
    try:
        connack, early = sub._handshake(ours, PacketReader(v5=False))
    finally:
        thread.join(5)
        ours.close()
        brokers.close()
    assert connack == ConnAck(False, 0)
    assert early == [Publish("hallwatch/v1/h1/edge/status", b"online", 3, 1, True)]


# -- the subscriber on a real broker -------------------------------------------------------


class Inbox:
    """What a subscriber delivered, with a way to wait for a count."""

    def __init__(self) -> None:
        self.items: list[Received] = []
        self._lock = threading.Lock()

    def __call__(self, items: list[Received]) -> None:
        with self._lock:
            self.items += items

    def wait(self, count: int, timeout: float = 10) -> list[Received]:
        wait_until(lambda: len(self.items) >= count, timeout, f"{count} messages")
        with self._lock:
            return list(self.items)


def publish(port: int, payloads: list[bytes], *, topic: str = TOPIC) -> None:
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="wire-test-edge")
    client.connect("127.0.0.1", port)
    client.loop_start()
    try:
        for info in [client.publish(topic, p, qos=1) for p in payloads]:
            info.wait_for_publish(5)
    finally:
        client.loop_stop()
        client.disconnect()


@pytest.fixture
def broker() -> Iterator[Mosquitto]:
    if find_mosquitto() is None:
        pytest.skip("mosquitto is not installed")
    with Mosquitto() as b:
        yield b


def subscriber(options: WireOptions, inbox: Inbox) -> FactSubscriber:
    sub = FactSubscriber(options, FILTERS, inbox)
    sub.start()
    assert sub.wait_connected(10)
    return sub


@pytest.mark.integration
@pytest.mark.parametrize("v5", [False, True], ids=["3.1.1", "5"])
def test_only_acknowledged_messages_leave_the_session(broker: Mosquitto, v5: bool) -> None:
    """Messages not acknowledged come again on the next connection (the aggregator
    acknowledges after storing); acknowledged ones never do."""
    options = WireOptions(host=broker.host, port=broker.port, client_id=f"wire-ack-{v5}",
                          v5=v5, session_expiry_s=3600)  # fmt: skip
    first = Inbox()
    sub = subscriber(options, first)
    publish(broker.port, [b"m%d" % i for i in range(5)])
    got = first.wait(5)
    assert [m.payload for m in got] == [b"m0", b"m1", b"m2", b"m3", b"m4"]
    sub.ack(got[:3])
    time.sleep(0.3)  # the PUBACKs leave before the goodbye
    sub.stop()
    again = Inbox()
    sub = subscriber(options, again)
    try:
        redelivered = again.wait(2)
        time.sleep(0.5)
        assert [m.payload for m in again.items] == [b"m3", b"m4"]
        assert {m.connection for m in redelivered} == {1}  # this subscriber's first
    finally:
        sub.stop()


@pytest.mark.integration
def test_acknowledgements_of_an_earlier_connection_are_not_sent(tmp_path: Path) -> None:
    """A packet id names a message of one connection: acknowledged on the next one it
    could acknowledge another message. The worker finishing a batch while the broker is
    away (or after it came back) sends nothing; the broker sends the message again."""
    if find_mosquitto() is None:
        pytest.skip("mosquitto is not installed")
    with Mosquitto(persistence=True) as broker:
        options = WireOptions(host=broker.host, port=broker.port, client_id="wire-stale")
        inbox = Inbox()
        sub = subscriber(options, inbox)
        try:
            publish(broker.port, [b"a"])
            (old,) = inbox.wait(1)
            broker.stop()
            wait_until(lambda: not sub.connected, 5, "the subscriber to see the broker go")
            sub.ack([old])  # stored meanwhile: the acknowledgement waits for a connection
            broker.start()
            assert sub.wait_connected(15)
            redelivered = inbox.wait(2)[1]
            assert (redelivered.payload, redelivered.connection) == (b"a", 2)
            sub.ack([old])  # late, from the first connection: dropped too
            time.sleep(0.3)
        finally:
            sub.stop()
        again = Inbox()
        sub = subscriber(options, again)
        try:
            assert [m.payload for m in again.wait(1)] == [b"a"]
        finally:
            sub.stop()


@pytest.mark.integration
def test_mqtt5_receive_maximum_bounds_what_is_unacknowledged(broker: Mosquitto) -> None:
    options = WireOptions(host=broker.host, port=broker.port, client_id="wire-rm", v5=True,
                          session_expiry_s=3600, receive_maximum=10)  # fmt: skip
    inbox = Inbox()
    sub = subscriber(options, inbox)
    try:
        publish(broker.port, [b"%d" % i for i in range(50)])
        first = inbox.wait(10)
        time.sleep(0.5)
        assert len(inbox.items) == 10  # no more until some are acknowledged
        sub.ack(first)
        assert len(inbox.wait(50)) == 50  # the rest, as acknowledgements make room
    finally:
        sub.stop()


@pytest.mark.integration
def test_keepalive_pings_hold_an_idle_connection(broker: Mosquitto) -> None:
    """Mosquitto drops a client silent for 1.5 keepalives: pings keep this one."""
    options = WireOptions(host=broker.host, port=broker.port, client_id="wire-idle",
                          keepalive_s=1)  # fmt: skip
    inbox = Inbox()
    sub = subscriber(options, inbox)
    try:
        time.sleep(3.5)
        publish(broker.port, [b"still here"])
        assert [(m.payload, m.connection) for m in inbox.wait(1)] == [(b"still here", 1)]
    finally:
        sub.stop()


@pytest.mark.integration
def test_a_wrong_password_is_refused_and_named_in_the_log(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    if find_mosquitto() is None:
        pytest.skip("mosquitto is not installed")
    passwd = tmp_path / "passwd"
    passwd.write_text("")
    subprocess.run(["mosquitto_passwd", "-b", str(passwd), "agg", "right-password-1234"],
                   check=True)  # fmt: skip
    passwd.chmod(0o600)
    with Mosquitto(allow_anonymous=False, extra_config=[f"password_file {passwd}"]) as secured:

        def options(client_id: str, password: str) -> WireOptions:
            return WireOptions(host=secured.host, port=secured.port, client_id=client_id,
                               username="agg", password=password)  # fmt: skip

        wrong = FactSubscriber(options("wire-pw-1", "wrong-password-1234"), FILTERS, Inbox())
        wrong.start()
        try:
            assert not wrong.wait_connected(1.5)
        finally:
            wrong.stop()
        assert "connection refused: not authorised" in caplog.text  # Mosquitto's 3.1.1 code
        assert "wrong-password-1234" not in caplog.text
        sub = subscriber(options("wire-pw-2", "right-password-1234"), Inbox())
        sub.stop()


def _certificates(folder: Path) -> dict[str, Path]:
    """A CA and a server certificate for 127.0.0.1, made with the openssl command."""
    paths = {n: folder / f"{n}" for n in ("ca.key", "ca.crt", "srv.key", "srv.csr", "srv.crt")}
    ext = folder / "san.ext"
    ext.write_text("subjectAltName=IP:127.0.0.1\n")

    def openssl(*args: str) -> None:
        subprocess.run(["openssl", *args], check=True, capture_output=True)

    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
            "-subj", "/CN=HallWatch test CA", "-keyout", str(paths["ca.key"]),
            "-out", str(paths["ca.crt"]))  # fmt: skip
    openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=127.0.0.1",
            "-keyout", str(paths["srv.key"]), "-out", str(paths["srv.csr"]))  # fmt: skip
    openssl("x509", "-req", "-in", str(paths["srv.csr"]), "-CA", str(paths["ca.crt"]),
            "-CAkey", str(paths["ca.key"]), "-CAcreateserial", "-days", "2",
            "-extfile", str(ext), "-out", str(paths["srv.crt"]))  # fmt: skip
    return paths


@pytest.mark.integration
def test_tls_with_certificate_checks(tmp_path: Path) -> None:
    if find_mosquitto() is None:
        pytest.skip("mosquitto is not installed")
    certs = _certificates(tmp_path)
    tls_port = free_port("127.0.0.1")
    tls_listener = [
        f"listener {tls_port} 127.0.0.1",
        f"cafile {certs['ca.crt']}",
        f"certfile {certs['srv.crt']}",
        f"keyfile {certs['srv.key']}",
        "max_inflight_messages 1000",  # all 300 before the first acknowledgement
    ]
    with Mosquitto(extra_config=tls_listener) as broker:
        wait_until(lambda: port_open("127.0.0.1", tls_port), 5, "the TLS listener")
        untrusted = FactSubscriber(
            WireOptions(host="127.0.0.1", port=tls_port, client_id="wire-tls-0",
                        tls=ssl.create_default_context()),
            FILTERS, Inbox(),
        )  # fmt: skip
        untrusted.start()
        try:
            assert not untrusted.wait_connected(1.5)  # the test CA is not in the system store
        finally:
            untrusted.stop()
        inbox = Inbox()
        tls = ssl.create_default_context(cafile=str(certs["ca.crt"]))
        options = WireOptions(host="127.0.0.1", port=tls_port, client_id="wire-tls", tls=tls)
        sub = subscriber(options, inbox)
        try:
            payloads = [b"%05d" % i + b"x" * 3000 for i in range(300)]  # many TLS records
            publish(broker.port, payloads)
            got = inbox.wait(300)
            assert [m.payload for m in got] == payloads
            sub.ack(got)
        finally:
            sub.stop()


@pytest.mark.parametrize("tls", [False, True], ids=["tcp", "tls"])
def test_stop_is_not_held_up_by_a_silent_broker(tls: bool) -> None:
    """A broker that accepts and never answers (the TLS or the MQTT handshake waits):
    stop() still ends the network thread within a second, and start() works again."""
    silent = socket.create_server(("127.0.0.1", 0))
    port = silent.getsockname()[1]
    context = ssl.create_default_context() if tls else None
    sub = FactSubscriber(WireOptions(host="127.0.0.1", port=port, client_id="c", tls=context),
                         FILTERS, Inbox())  # fmt: skip
    try:
        sub.start()
        time.sleep(0.5)  # connected at TCP level, inside the handshake
        started = time.monotonic()
        assert sub.stop(timeout=3)
        assert time.monotonic() - started < 1.0
        sub.start()
        assert sub.stop(timeout=3)
    finally:
        silent.close()
