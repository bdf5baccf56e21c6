"""The MQTT side of the aggregator: the fact subscriber and the alert publisher.

:class:`MqttIngest` holds one paho-mqtt 2 client (``CallbackAPIVersion.VERSION2``):

- subscribes :data:`~hallwatch.contract.FACTS_FILTER` (as an MQTT 5 shared subscription
  when a share group is set) and :data:`~hallwatch.contract.EDGE_STATUS_FILTER` (always a
  plain subscription: brokers do not send retained messages to shared subscriptions, and
  every replica wants the edges' retained status), QoS 1;
- keeps a persistent session (MQTT 5: ``clean_start=False`` + session expiry; 3.1.1:
  ``clean_session=False``) under a fixed client id, so the broker queues facts while the
  aggregator restarts;
- acknowledges manually: paho's callbacks only enqueue; one worker thread takes what is
  queued (up to ``ingest_batch_max`` messages), runs :meth:`Ingestor.handle_batch` on it
  and sends the PUBACKs *after* the batch is stored (in order). A crash before that
  leaves the messages unacknowledged and the broker redelivers them; the ingestor's dedup
  drops what was in fact stored. A batch that keeps failing is retried message by
  message, so one message the database refuses is dead-lettered alone;
- reconnects with backoff (``reconnect_delay_set``). Credentials are never logged.

:class:`MqttAlertPublisher` is the :class:`~aggregator.alerts.AlertSink` publishing
:class:`~hallwatch.contract.AlertMessage` JSON on ``alerts_topic(hall)`` at QoS 1 over the
same connection.
"""

from __future__ import annotations

import logging
import queue
import ssl
import threading
from dataclasses import dataclass
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode
from prometheus_client import Gauge

from aggregator.ingest import Ingestor, Message
from aggregator.settings import AggregatorSettings
from hallwatch.contract import (
    EDGE_STATUS_FILTER,
    FACTS_FILTER,
    AlertMessage,
    alerts_topic,
    encode,
    shared_subscription,
)

logger = logging.getLogger(__name__)

CONNECTED = Gauge("hallwatch_mqtt_connected", "1 while the aggregator's MQTT client is connected.")
QUEUE_DEPTH = Gauge("hallwatch_ingest_queue_depth", "Messages received, not yet ingested.")

_RETRY_DELAYS_S = (0.2, 0.5, 1.0, 2.0, 5.0)


@dataclass(frozen=True, slots=True)
class _Received:
    topic: str
    payload: bytes
    mid: int
    qos: int


class MqttIngest:
    """Subscribes to facts and edge status and feeds them to an :class:`Ingestor`.

    Args:
        settings: Broker address, credentials, client id, protocol, share group.
        ingestor: Handles each message (in the worker thread).
    """

    def __init__(self, settings: AggregatorSettings, ingestor: Ingestor) -> None:
        self.settings = settings
        self.ingestor = ingestor
        self.v5 = settings.mqtt_protocol == "5"
        self._queue: queue.Queue[_Received] = queue.Queue()
        self._stop = threading.Event()
        self._connected = threading.Event()
        self._worker: threading.Thread | None = None
        self.handled = 0
        """Messages this client has passed to the ingestor (and acknowledged)."""
        kwargs: dict[str, Any] = {
            "callback_api_version": CallbackAPIVersion.VERSION2,
            "client_id": settings.mqtt_client_id,
            "protocol": mqtt.MQTTv5 if self.v5 else mqtt.MQTTv311,
            "manual_ack": True,
        }
        if not self.v5:
            kwargs["clean_session"] = False
        self.client = mqtt.Client(**kwargs)
        if settings.mqtt_username is not None:
            password = settings.mqtt_password
            self.client.username_pw_set(
                settings.mqtt_username, password.get_secret_value() if password else None
            )
        if settings.mqtt_tls:
            ca = str(settings.mqtt_ca_file) if settings.mqtt_ca_file else None
            self.client.tls_set(ca_certs=ca, cert_reqs=ssl.CERT_REQUIRED)
        self.client.reconnect_delay_set(min_delay=1, max_delay=30)
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.on_message = self._on_message

    @property
    def connected(self) -> bool:
        """Whether the client is connected to the broker now."""
        return self._connected.is_set()

    def wait_connected(self, timeout: float) -> bool:
        """Block until connected (and subscribed) or the timeout passes."""
        return self._connected.wait(timeout)

    def start(self) -> None:
        """Start the worker thread and connect (in the background, retrying for ever)."""
        self._stop.clear()
        self._worker = threading.Thread(target=self._work, name="hallwatch-ingest", daemon=True)
        self._worker.start()
        properties = None
        if self.v5:
            properties = Properties(PacketTypes.CONNECT)
            properties.SessionExpiryInterval = self.settings.mqtt_session_expiry_s
        logger.info(
            "connecting to MQTT broker %s:%d as %s (MQTT %s%s)",
            self.settings.mqtt_host,
            self.settings.mqtt_port,
            self.settings.mqtt_client_id,
            self.settings.mqtt_protocol,
            ", TLS" if self.settings.mqtt_tls else "",
        )
        self.client.connect_async(
            self.settings.mqtt_host,
            self.settings.mqtt_port,
            keepalive=self.settings.mqtt_keepalive_s,
            clean_start=False if self.v5 else mqtt.MQTT_CLEAN_START_FIRST_ONLY,
            properties=properties,
        )
        self.client.loop_start()

    def stop(self, timeout: float = 5.0) -> None:
        """Disconnect and stop the worker (messages not yet ingested stay unacknowledged:
        the broker redelivers them to the persistent session)."""
        self._stop.set()
        try:
            self.client.disconnect()
        finally:
            self.client.loop_stop()
        if self._worker is not None:
            self._worker.join(timeout)
            self._worker = None
        self._connected.clear()
        CONNECTED.set(0)

    # -- paho callbacks (network thread: only enqueue) ---------------------------------

    def _subscriptions(self) -> list[tuple[str, int]]:
        facts = FACTS_FILTER
        group = self.settings.share_group
        if group is not None:
            if self.v5:
                facts = shared_subscription(FACTS_FILTER, group)
            else:
                logger.warning("share_group %r ignored: shared subscriptions need MQTT 5", group)
        return [(facts, 1), (EDGE_STATUS_FILTER, 1)]

    def _on_connect(
        self,
        client: mqtt.Client,
        _userdata: Any,
        flags: mqtt.ConnectFlags,
        reason_code: ReasonCode,
        _properties: Properties | None,
    ) -> None:
        if reason_code.is_failure:
            logger.error("MQTT connection refused: %s", reason_code)
            return
        subs = self._subscriptions()
        client.subscribe(subs)
        logger.info(
            "MQTT connected (session present: %s); subscribed %s",
            flags.session_present,
            ", ".join(t for t, _ in subs),
        )
        self._connected.set()
        CONNECTED.set(1)

    def _on_disconnect(
        self,
        _client: mqtt.Client,
        _userdata: Any,
        _flags: mqtt.DisconnectFlags,
        reason_code: ReasonCode,
        _properties: Properties | None,
    ) -> None:
        self._connected.clear()
        CONNECTED.set(0)
        if not self._stop.is_set():
            logger.warning("MQTT disconnected (%s); reconnecting with backoff", reason_code)

    def _on_message(self, _client: mqtt.Client, _userdata: Any, msg: mqtt.MQTTMessage) -> None:
        self._queue.put(_Received(msg.topic, bytes(msg.payload), msg.mid, msg.qos))
        QUEUE_DEPTH.set(self._queue.qsize())

    # -- worker ---------------------------------------------------------------------------

    def _work(self) -> None:
        limit = self.settings.ingest_batch_max
        while not self._stop.is_set():
            try:
                batch = [self._queue.get(timeout=0.2)]
            except queue.Empty:
                continue
            while len(batch) < limit:
                try:
                    batch.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            QUEUE_DEPTH.set(self._queue.qsize())
            if self._ingest_batch(batch):
                done = batch
            else:  # the batch as a whole keeps failing: one message at a time
                done = []
                for item in batch:
                    if not self._ingest(item):
                        break  # stopping: the rest stays unacknowledged
                    done.append(item)
            for item in done:
                self.client.ack(item.mid, item.qos)
            self.handled += len(done)

    def _ingest_batch(self, batch: list[_Received]) -> bool:
        """Ingest a batch, retrying twice; True when all of it may be acknowledged."""
        if len(batch) == 1:
            return False  # the single-message path has the full retry schedule
        messages = [Message(item.topic, item.payload) for item in batch]
        for delay in _RETRY_DELAYS_S[:2]:
            try:
                self.ingestor.handle_batch(messages)
                return True
            except Exception:
                logger.exception("ingest of a batch of %d messages failed; retrying", len(batch))
                if self._stop.wait(delay):
                    return False
        return False

    def _ingest(self, item: _Received) -> bool:
        """Ingest one message until it is stored or dead-lettered; False only when the
        worker stops first (the message stays unacknowledged: the broker redelivers it).

        After the retry schedule the message is dead-lettered; while the database is down
        that fails too, and the worker keeps trying, every ``_RETRY_DELAYS_S[-1]`` seconds,
        rather than let go of a message it took from the queue.
        """
        attempt = 0
        while True:
            try:
                self.ingestor.handle(item.topic, item.payload)
                return True
            except Exception:
                logger.exception("ingest of a message on %s failed; retrying", item.topic)
            attempt += 1
            if attempt >= len(_RETRY_DELAYS_S):
                try:
                    self.ingestor.dead_letter(
                        item.topic, item.payload, "ingest failed repeatedly (see logs)", "error"
                    )
                    return True
                except Exception:
                    logger.exception("dead-lettering failed too; the message is kept and retried")
            delay = _RETRY_DELAYS_S[min(attempt, len(_RETRY_DELAYS_S)) - 1]
            if self._stop.wait(delay):
                return False


class MqttAlertPublisher:
    """Publishes alerts on the hall's alerts topic (QoS 1) for hall managers.

    While disconnected, paho keeps QoS 1 messages in memory and sends them on reconnect.

    Args:
        client: A paho client (usually :attr:`MqttIngest.client`).
    """

    def __init__(self, client: mqtt.Client) -> None:
        self.client = client

    def publish(self, alert: AlertMessage) -> None:
        """Publish one alert message."""
        info = self.client.publish(alerts_topic(alert.hall), encode(alert), qos=1)
        if info.rc not in (mqtt.MQTT_ERR_SUCCESS, mqtt.MQTT_ERR_NO_CONN):
            logger.error("alert %s not queued for MQTT: %s", alert.id, mqtt.error_string(info.rc))
        else:
            logger.debug("alert %s (%s) queued on MQTT", alert.id, alert.state.value)
