"""Drains the outbox to the MQTT broker with QoS 1, in order, with flow control.

- Paho's callbacks only enqueue; one publisher thread owns all the state.
- At most ``max_inflight`` messages wait for a PUBACK at a time (publishing faster than
  acknowledgements arrive would make paho overwrite in-flight messages).
- A message leaves the outbox only when its PUBACK arrives. After a reconnect everything
  still in the outbox is published again from the oldest: the aggregator drops duplicates
  by fact id, so "at least once" here becomes "exactly once" in the store.
- The MQTT will marks the edge ``offline`` (retained); on every connect it publishes
  ``online`` (retained).
"""

from __future__ import annotations

import logging
import queue
import ssl
import threading
import time
from dataclasses import dataclass
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from edge.outbox import Outbox
from hallwatch.contract import DeviceState, EdgeStatus, edge_status_topic, encode

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class BrokerSettings:
    """Where and how to reach the broker."""

    host: str = "127.0.0.1"
    port: int = 1883
    username: str | None = None
    password: str | None = None
    tls: bool = False
    keepalive_s: int = 30
    client_id: str = ""


@dataclass(frozen=True, slots=True)
class _Connected:
    ok: bool


@dataclass(frozen=True, slots=True)
class _Acked:
    mid: int


class OutboxPublisher:
    """Publishes an :class:`Outbox` to a broker until stopped.

    Args:
        outbox: Durable queue of facts.
        broker: Broker address and credentials.
        hall: Hall id (for the status topic).
        source: This edge's id.
        max_inflight: Messages published but not yet acknowledged, at most.
    """

    def __init__(
        self,
        outbox: Outbox,
        broker: BrokerSettings,
        *,
        hall: str,
        source: str,
        max_inflight: int = 64,
    ) -> None:
        self._outbox = outbox
        self._broker = broker
        self._hall = hall
        self._source = source
        self._max_inflight = max_inflight
        self._events: queue.Queue[_Connected | _Acked] = queue.Queue()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"publisher-{hall}", daemon=True)
        self.connected = False
        self.published = 0
        self.acknowledged = 0
        self._drain_s = 2.0
        self._client = self._make_client()

    def _make_client(self) -> mqtt.Client:
        client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=self._broker.client_id or f"{self._source}-pub",
            protocol=mqtt.MQTTv311,
            clean_session=True,
        )
        if self._broker.username:
            client.username_pw_set(self._broker.username, self._broker.password)
        if self._broker.tls:
            client.tls_set(cert_reqs=ssl.CERT_REQUIRED)
        client.will_set(
            edge_status_topic(self._hall),
            encode(EdgeStatus(hall=self._hall, source=self._source, state=DeviceState.OFFLINE)),
            qos=1,
            retain=True,
        )
        client.max_inflight_messages_set(self._max_inflight)
        client.reconnect_delay_set(min_delay=1, max_delay=30)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_publish = self._on_publish
        return client

    # Paho callbacks: enqueue only.
    def _on_connect(self, _c: mqtt.Client, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
        self._events.put(_Connected(not reason.is_failure))

    def _on_disconnect(self, _c: mqtt.Client, _u: Any, _f: Any, _r: Any, _p: Any) -> None:
        self._events.put(_Connected(False))

    def _on_publish(self, _c: mqtt.Client, _u: Any, mid: int, _r: Any, _p: Any) -> None:
        self._events.put(_Acked(mid))

    def start(self) -> None:
        """Connect (asynchronously; retried with backoff) and start publishing."""
        logger.info(
            "publishing hall %s to mqtt://%s:%d", self._hall, self._broker.host, self._broker.port
        )
        self._client.connect_async(
            self._broker.host, self._broker.port, keepalive=self._broker.keepalive_s
        )
        self._client.loop_start()
        self._thread.start()

    def stop(self, *, drain_s: float = 2.0) -> None:
        """Stop publishing; waits up to ``drain_s`` for in-flight acknowledgements."""
        self._drain_s = drain_s
        self._stop.set()
        self._thread.join(timeout=drain_s + 5)
        if self.connected:
            status = EdgeStatus(hall=self._hall, source=self._source, state=DeviceState.OFFLINE)
            self._client.publish(edge_status_topic(self._hall), encode(status), 1, True)
        self._client.disconnect()
        self._client.loop_stop()

    def _run(self) -> None:
        inflight: dict[int, int] = {}
        last_seq = 0
        while not self._stop.is_set():
            try:
                event = self._events.get(timeout=0.05 if self.connected else 0.5)
            except queue.Empty:
                event = None
            while event is not None:
                if isinstance(event, _Connected):
                    if event.ok and not self.connected:
                        self._announce_online()
                    if event.ok != self.connected:
                        logger.info("broker %s", "connected" if event.ok else "disconnected")
                    self.connected = event.ok
                    inflight.clear()
                    last_seq = 0  # republish everything unacknowledged, oldest first
                elif (seq := inflight.pop(event.mid, None)) is not None:
                    self._outbox.acknowledge([seq])
                    self.acknowledged += 1
                event = self._events.get_nowait() if not self._events.empty() else None
            if self.connected:
                last_seq = self._fill_window(inflight, last_seq)
        self._drain(inflight)

    def _fill_window(self, inflight: dict[int, int], last_seq: int) -> int:
        room = self._max_inflight - len(inflight)
        if room <= 0:
            return last_seq
        for message in self._outbox.pending(after_seq=last_seq, limit=room):
            info = self._client.publish(message.topic, message.payload, 1, message.retain)
            if info.rc != mqtt.MQTT_ERR_SUCCESS:
                logger.debug("publish refused (rc=%s); waiting for reconnect", info.rc)
                break
            inflight[info.mid] = message.seq
            last_seq = message.seq
            self.published += 1
        return last_seq

    def _drain(self, inflight: dict[int, int]) -> None:
        """Collect the acknowledgements still in flight, for at most ``drain_s``."""
        deadline = time.monotonic() + self._drain_s
        while inflight and self.connected and time.monotonic() < deadline:
            try:
                event = self._events.get(timeout=0.05)
            except queue.Empty:
                continue
            if isinstance(event, _Acked) and (seq := inflight.pop(event.mid, None)) is not None:
                self._outbox.acknowledge([seq])
                self.acknowledged += 1

    def _announce_online(self) -> None:
        status = EdgeStatus(hall=self._hall, source=self._source, state=DeviceState.ONLINE)
        self._client.publish(edge_status_topic(self._hall), encode(status), 1, True)
