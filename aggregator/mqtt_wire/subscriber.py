"""A lean MQTT subscriber for the fact stream: many messages per read, acknowledged late.

paho-mqtt reads a packet with three or more ``recv`` calls and a ``select`` and spends
~60 µs of Python per message: on a 2-core box it tops out near 15,000 messages/s, below
the aggregator's ingest. :class:`FactSubscriber` reads up to 256 KiB at a time, splits it
with :class:`~aggregator.mqtt_wire.codec.PacketReader`, and hands the publishes over as
one list per read. The alert publisher keeps its own paho connection: this client only
subscribes.

- persistent session (3.1.1: clean session off; 5: clean start off + session expiry), so
  the broker queues facts while the aggregator is down;
- QoS 1 acknowledged only when the owner says so (:meth:`FactSubscriber.ack`, after the
  facts are stored); a message of an earlier connection is not acknowledged (the broker
  sends it again on the new one, the ingestor's dedup drops it);
- MQTT 5: ``receive_maximum`` bounds the unacknowledged messages (3.1.1: the broker's
  ``max_inflight_messages``): the largest batch the aggregator can see;
- keepalive pings; a broker that stops answering is dropped; reconnects with backoff
  (1 s doubling to 30 s, with jitter); TLS with certificate checks; user and password;
- one thread owns the socket (OpenSSL objects are not for two threads): acknowledgements
  are queued and the thread woken through a socket pair.

Example:
    >>> sub = FactSubscriber(WireOptions(host="127.0.0.1", port=1883, client_id="agg-1"),
    ...                      [("hallwatch/v1/+/facts/+", 1)], deliver=print)
    >>> sub.start()  # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import logging
import random
import selectors
import socket
import ssl
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from aggregator.mqtt_wire.codec import (
    MAX_PACKET_BYTES,
    PINGREQ,
    PROTOCOL_5,
    PROTOCOL_311,
    ConnAck,
    Disconnect,
    PacketReader,
    PingResp,
    ProtocolError,
    Publish,
    SubAck,
    connect_packet,
    disconnect_packet,
    pubacks,
    subscribe_packet,
)

logger = logging.getLogger(__name__)

_READ_BYTES = 256 * 1024
_CONNECT_TIMEOUT_S = 10.0
_STEP_S = 0.25
"""How long a blocking step of the handshakes lasts before stop() is checked."""
_BACKOFF_MIN_S, _BACKOFF_MAX_S = 1.0, 30.0
_CONNACK_REASONS = {
    1: "unacceptable protocol version",
    2: "client id rejected",
    3: "server unavailable",
    4: "bad user name or password",
    5: "not authorised",
    0x84: "unsupported protocol version",
    0x85: "client id not valid",
    0x86: "bad user name or password",
    0x87: "not authorised",
    0x88: "server unavailable",
    0x89: "server busy",
    0x8A: "banned",
}


@dataclass(frozen=True, slots=True)
class WireOptions:
    """Where and how to connect.

    Attributes:
        host: Broker host.
        port: Broker port.
        client_id: Fixed client id (the persistent session is keyed by it).
        v5: MQTT 5 (else 3.1.1).
        username: User name (None: anonymous).
        password: Password (never logged).
        tls: A TLS context (None: plain TCP).
        keepalive_s: Keepalive interval.
        session_expiry_s: MQTT 5 session expiry.
        receive_maximum: MQTT 5 receive maximum (unacknowledged messages in flight).
    """

    host: str
    port: int
    client_id: str
    v5: bool = False
    username: str | None = None
    password: str | None = None
    tls: ssl.SSLContext | None = None
    keepalive_s: int = 30
    session_expiry_s: int = 0
    receive_maximum: int = 8000


@dataclass(slots=True)
class Received:
    """A message as handed to the owner: what to acknowledge it with, and when it came
    (not frozen, read-only by convention: see :class:`~aggregator.mqtt_wire.codec.Publish`).
    """

    topic: str
    payload: bytes
    mid: int
    qos: int
    connection: int
    """Which connection it came on (acknowledgements of an earlier one are not sent)."""


class _DroppedError(Exception):
    """The connection is to be dropped and made again."""


class _RefusedError(_DroppedError):
    """The broker refused the connection or a subscription (credentials, ACL, client id):
    a configuration error, logged as one, and retried (it may be fixed on the broker)."""


class FactSubscriber:
    """Subscribes and hands over what arrives, one list per network read.

    Args:
        options: Broker, identity, protocol, TLS.
        filters: Topic filters and their maximum QoS, subscribed on every connection.
        deliver: Called on the network thread with each read's messages, in order. It
            must only enqueue.
        on_connected: Called on the network thread with ``True`` once subscribed and with
            ``False`` when a connection is lost.
    """

    def __init__(
        self,
        options: WireOptions,
        filters: Sequence[tuple[str, int]],
        deliver: Callable[[list[Received]], None],
        on_connected: Callable[[bool], None] | None = None,
    ) -> None:
        self.options = options
        self.filters = list(filters)
        self.deliver = deliver
        self.on_connected = on_connected
        self._protocol = PROTOCOL_5 if options.v5 else PROTOCOL_311
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._out_lock = threading.Lock()
        self._out: list[tuple[int, bytes]] = []
        """PUBACKs to send, with the connection their messages came on."""
        self._wake_r, self._wake_w = _wake_pair()
        self._wake_r.close()  # a pair per run, made by start()
        self._wake_w.close()
        self._connection = 0
        self._subscribed = threading.Event()

    # -- the owner's side -----------------------------------------------------------------

    @property
    def connected(self) -> bool:
        """Connected and subscribed now."""
        return self._subscribed.is_set()

    def wait_connected(self, timeout: float) -> bool:
        """Block until connected and subscribed, or ``timeout`` passes."""
        return self._subscribed.wait(timeout)

    def start(self) -> None:
        """Connect in the background (retrying for ever until :meth:`stop`).

        Raises:
            RuntimeError: It is running, or the network thread of an earlier :meth:`stop`
                has not ended yet (it was still connecting): two would share one session.
        """
        if self._thread is not None:
            if not self._stop.is_set():
                raise RuntimeError("the MQTT subscriber is already running")
            self._thread.join(_STEP_S * 4)
            if self._thread.is_alive():
                raise RuntimeError("the MQTT subscriber is still stopping")
        self._stop.clear()
        self._wake_r, self._wake_w = _wake_pair()
        self._thread = threading.Thread(
            target=self._run,
            args=(self._wake_r, self._wake_w),
            name="hallwatch-mqtt-in",
            daemon=True,
        )
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> bool:
        """Disconnect cleanly (the session and what is unacknowledged stay with the
        broker); whether the network thread ended within ``timeout`` (a TCP connect to an
        unreachable broker can hold it for up to 10 s)."""
        self._stop.set()
        self._wake()
        if self._thread is None:
            return True
        self._thread.join(timeout)
        if self._thread.is_alive():
            logger.warning("the MQTT subscriber did not stop within %.0f s", timeout)
            return False
        self._thread = None
        return True

    def ack(self, messages: Sequence[Received]) -> None:
        """Acknowledge QoS 1 messages (any thread). Only those of the connection in use
        when the network thread sends them go out."""
        connections = {m.connection for m in messages if m.qos}
        if not connections:
            return
        out = [
            (c, pubacks([m.mid for m in messages if m.qos and m.connection == c]))
            for c in connections
        ]  # one connection, but for a batch that spans a reconnection
        with self._out_lock:
            self._out.extend(out)
        self._wake()

    def _wake(self) -> None:
        with contextlib.suppress(OSError):  # already woken (buffer full), or closed
            self._wake_w.send(b"\0")

    def _take_out(self, connection: int) -> bytes:
        """The queued PUBACKs of ``connection`` (others are dropped: a packet id names a
        message of one connection; the broker sends an unacknowledged message again)."""
        with self._out_lock:
            out = b"".join(packets for c, packets in self._out if c == connection)
            self._out.clear()
        return out

    # -- the network thread ---------------------------------------------------------------

    def _run(self, wake_r: socket.socket, wake_w: socket.socket) -> None:
        delay = _BACKOFF_MIN_S
        try:
            while not self._stop.is_set():
                try:
                    self._connect_and_serve()
                    delay = _BACKOFF_MIN_S
                except (OSError, ProtocolError, _DroppedError) as exc:
                    if not self._stop.is_set():
                        logger.log(
                            logging.ERROR if isinstance(exc, _RefusedError) else logging.WARNING,
                            "MQTT connection to %s:%d lost (%s); reconnecting in %.0f s",
                            self.options.host, self.options.port, exc, delay,
                        )  # fmt: skip
                except Exception:  # a bug must not end the subscription for good
                    if not self._stop.is_set():
                        logger.exception("MQTT subscriber failed; reconnecting in %.0f s", delay)
                if self._stop.wait(delay * random.uniform(0.8, 1.2)):
                    break
                delay = min(delay * 2, _BACKOFF_MAX_S)
        finally:
            wake_r.close()
            wake_w.close()

    def _connect_and_serve(self) -> None:
        o = self.options
        raw = socket.create_connection((o.host, o.port), timeout=_CONNECT_TIMEOUT_S)
        sock: socket.socket = raw
        try:
            try:
                raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                if o.tls is not None:
                    sock = o.tls.wrap_socket(
                        raw, server_hostname=o.host, do_handshake_on_connect=False
                    )
                    self._tls_handshake(sock)
                self._stopping()
                sock.settimeout(_CONNECT_TIMEOUT_S)
                sock.sendall(
                    connect_packet(
                        o.client_id, protocol=self._protocol, keepalive_s=o.keepalive_s,
                        clean=False, username=o.username, password=o.password,
                        session_expiry_s=o.session_expiry_s if o.v5 else 0,
                        receive_maximum=o.receive_maximum if o.v5 else 0,
                        max_packet=MAX_PACKET_BYTES if o.v5 else 0,
                    )
                )  # fmt: skip
                reader = PacketReader(v5=o.v5)
                connack, early = self._handshake(sock, reader)
                if self._stop.is_set():
                    self._goodbye(sock, b"")
                    return
                self._connection += 1
                keepalive = o.keepalive_s
                if connack.server_keepalive_s is not None:
                    keepalive = connack.server_keepalive_s
                logger.info(
                    "MQTT connected to %s:%d as %s (MQTT %s%s; session present: %s; "
                    "keepalive %d s); subscribed %s",
                    o.host, o.port, o.client_id, "5" if o.v5 else "3.1.1",
                    ", TLS" if o.tls else "", connack.session_present, keepalive,
                    ", ".join(f for f, _ in self.filters),
                )  # fmt: skip
                self._subscribed.set()
                if self.on_connected is not None:
                    self.on_connected(True)
                self._serve(sock, reader, early, keepalive)
            finally:
                with self._out_lock:
                    self._out.clear()  # acknowledgements of this connection cannot go now
                if self._subscribed.is_set():
                    self._subscribed.clear()
                    if self.on_connected is not None:
                        self.on_connected(False)
        finally:
            sock.close()

    def _stopping(self) -> None:
        if self._stop.is_set():
            raise _DroppedError("stopping")

    def _tls_handshake(self, sock: ssl.SSLSocket) -> None:
        """The TLS handshake in steps, so that :meth:`stop` is not held up by it."""
        sock.settimeout(_STEP_S)
        deadline = time.monotonic() + _CONNECT_TIMEOUT_S
        while True:
            self._stopping()
            try:
                sock.do_handshake()
                return
            except (TimeoutError, ssl.SSLWantReadError, ssl.SSLWantWriteError):
                if time.monotonic() > deadline:
                    raise _DroppedError(
                        f"no TLS handshake within {_CONNECT_TIMEOUT_S:.0f} s"
                    ) from None

    def _handshake(
        self, sock: socket.socket, reader: PacketReader
    ) -> tuple[ConnAck, list[Publish]]:
        """Wait for CONNACK, subscribe, wait for SUBACK; the publishes that came meanwhile
        and with the SUBACK (a kept session's queued messages, retained messages)."""
        early: list[Publish] = []
        deadline = time.monotonic() + _CONNECT_TIMEOUT_S
        connack: ConnAck | None = None
        subscribed = False
        sock.settimeout(_STEP_S)  # short steps: stop() is not held up by a silent broker
        while not subscribed:
            self._stopping()
            if time.monotonic() > deadline:
                raise _DroppedError(f"no CONNACK/SUBACK within {_CONNECT_TIMEOUT_S:.0f} s")
            try:
                data = sock.recv(_READ_BYTES)
            except TimeoutError:
                continue
            if not data:
                raise _DroppedError("closed by the broker during the handshake")
            for packet in reader.feed(data):
                if isinstance(packet, Publish):
                    early.append(packet)
                elif isinstance(packet, ConnAck) and connack is None:
                    connack = packet
                    if packet.code:
                        reason = _CONNACK_REASONS.get(packet.code, f"code 0x{packet.code:02x}")
                        raise _RefusedError(f"connection refused: {reason}")
                    sock.sendall(subscribe_packet(1, self.filters, protocol=self._protocol))
                elif isinstance(packet, SubAck) and connack is not None and not subscribed:
                    self._check_granted(packet)
                    subscribed = True
                elif isinstance(packet, Disconnect):
                    raise _DroppedError(f"broker disconnected (reason 0x{packet.code:02x})")
        assert connack is not None
        return connack, early

    def _check_granted(self, suback: SubAck) -> None:
        if suback.mid != 1 or len(suback.codes) != len(self.filters):
            raise ProtocolError(
                f"SUBACK {suback.mid} with {len(suback.codes)} codes for {len(self.filters)} "
                "filters"
            )
        codes = list(zip(self.filters, suback.codes, strict=True))
        refused = [f for (f, _), c in codes if c >= 0x80]
        if refused:
            raise _RefusedError(f"subscription refused: {', '.join(refused)}")
        for (topic, asked), granted in codes:
            if granted < asked:
                logger.warning(
                    "the broker granted %s at QoS %d, not %d: facts may be lost",
                    topic, granted, asked,
                )  # fmt: skip

    def _serve(
        self, sock: socket.socket, reader: PacketReader, early: list[Publish], keepalive: int
    ) -> None:
        sock.setblocking(False)
        connection = self._connection
        self._hand_over(early, connection)
        last_sent = time.monotonic()
        ping_sent: float | None = None
        pending = b""
        with selectors.DefaultSelector() as selector:
            selector.register(self._wake_r, selectors.EVENT_READ)
            selector.register(sock, selectors.EVENT_READ)
            writing = False
            while True:
                if self._stop.is_set():
                    self._goodbye(sock, pending + self._take_out(connection))
                    return
                pending += self._take_out(connection)
                now = time.monotonic()
                if keepalive and ping_sent is None and now - last_sent >= keepalive:
                    pending += PINGREQ
                    ping_sent = now
                elif ping_sent is not None and now - ping_sent > keepalive:
                    raise _DroppedError(f"no answer to a ping within {keepalive} s")
                if bool(pending) != writing:
                    writing = bool(pending)
                    events = selectors.EVENT_READ | (selectors.EVENT_WRITE if writing else 0)
                    selector.modify(sock, events)
                ready = selector.select(0 if _tls_pending(sock) else 1.0)
                readable = False
                for key, mask in ready:
                    if key.fileobj is self._wake_r:
                        with contextlib.suppress(BlockingIOError):
                            self._wake_r.recv(4096)
                    elif mask & selectors.EVENT_WRITE and pending:
                        pending = pending[_send_some(sock, pending) :]
                        last_sent = time.monotonic()
                    if key.fileobj is sock and mask & selectors.EVENT_READ:
                        readable = True
                if readable or _tls_pending(sock):
                    publishes = []
                    for packet in reader.feed(_recv_all(sock)):
                        if isinstance(packet, Publish):
                            publishes.append(packet)
                        elif isinstance(packet, PingResp):
                            ping_sent = None
                        elif isinstance(packet, Disconnect):
                            self._hand_over(publishes, connection)
                            raise _DroppedError(f"broker disconnected (reason 0x{packet.code:02x})")
                    self._hand_over(publishes, connection)

    def _hand_over(self, publishes: list[Publish], connection: int) -> None:
        if publishes:
            self.deliver(
                [Received(p.topic, p.payload, p.mid, p.qos, connection) for p in publishes]
            )

    def _goodbye(self, sock: socket.socket, pending: bytes) -> None:
        """Send what is queued (acknowledgements) and DISCONNECT; best effort."""
        try:
            sock.setblocking(True)
            sock.settimeout(2.0)
            sock.sendall(pending + disconnect_packet(protocol=self._protocol))
        except OSError:
            pass


def _recv_all(sock: socket.socket) -> bytes:
    """What can be read now without blocking, up to ``_READ_BYTES`` (a TLS read returns
    one record, ≤ 16 KiB: those are read until none is complete)."""
    chunks: list[bytes] = []
    size = 0
    tls = isinstance(sock, ssl.SSLSocket)
    while size < _READ_BYTES:
        try:
            data = sock.recv(_READ_BYTES - size)
        except (BlockingIOError, ssl.SSLWantReadError, ssl.SSLWantWriteError):
            break
        if not data:
            if chunks:
                break  # hand over what came; the next read sees the close
            raise _DroppedError("closed by the broker")
        chunks.append(data)
        size += len(data)
        if not tls:
            break
    return b"".join(chunks)


def _send_some(sock: socket.socket, data: bytes) -> int:
    try:
        return sock.send(data)
    except (BlockingIOError, ssl.SSLWantReadError, ssl.SSLWantWriteError):
        return 0


def _wake_pair() -> tuple[socket.socket, socket.socket]:
    r, w = socket.socketpair()
    r.setblocking(False)
    w.setblocking(False)
    return r, w


def _tls_pending(sock: socket.socket) -> bool:
    return isinstance(sock, ssl.SSLSocket) and sock.pending() > 0
