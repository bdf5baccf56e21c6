"""The MQTT side of the aggregator: the fact subscriber and the alert publisher.

:class:`MqttIngest` holds two connections to the broker:

- the fact subscription, a :class:`~aggregator.mqtt_wire.subscriber.FactSubscriber`
  (paho-mqtt's read path, ~60 µs of Python per message, was the ceiling of ingest): it
  subscribes :data:`~hallwatch.contract.FACTS_FILTER` (as an MQTT 5 shared subscription
  when a share group is set) and :data:`~hallwatch.contract.EDGE_STATUS_FILTER` (always a
  plain subscription: brokers do not send retained messages to shared subscriptions, and
  every replica wants the edges' retained status), QoS 1, with a persistent session
  (MQTT 5: clean start off + session expiry; 3.1.1: clean session off) under the fixed
  client id, so the broker queues facts while the aggregator restarts;
- :attr:`MqttIngest.client`, a paho-mqtt 2 client (client id ``<id>-out``) that only
  publishes: alerts (:class:`MqttAlertPublisher`) and the routed notifications.

Messages are acknowledged manually: the subscriber's thread only enqueues what each read
brought; one worker thread takes what is queued (up to ``ingest_batch_max`` messages),
runs :meth:`Ingestor.handle_batch` on it and sends the PUBACKs *after* the batch is stored:
its state committed and, with ``series_ack_when_written`` and a time-series server fed
through a queue (:class:`~aggregator.store.points.QueuedSeriesStore`), its points on that
server — then a process that stops while that server is down loses no point (the broker
delivers those facts again, the ledger drops them as duplicates, their points are written
again), at the price of ingest, and alerts, stopping with the server.
A crash before that leaves the messages unacknowledged and the broker redelivers them; the
ingestor's dedup drops what was in fact stored. A batch that keeps failing is retried
message by message, so one message the database refuses is dead-lettered alone. The
largest batch is bounded by the messages the broker lets be unacknowledged: MQTT 5's
receive maximum (``HALLWATCH_MQTT_RECEIVE_MAXIMUM``), 3.1.1's ``max_inflight_messages``
in the broker's config (``deploy/mosquitto/hallwatch.conf`` sets 8000; Mosquitto's
default, 20, makes batches of 20 and ingest several times slower).

Both connections reconnect with backoff. Credentials are never logged.

:class:`MqttAlertPublisher` is the :class:`~aggregator.alerts.AlertSink` publishing
:class:`~hallwatch.contract.AlertMessage` JSON on ``alerts_topic(hall)`` at QoS 1.
"""

from __future__ import annotations

import logging
import ssl
import threading
import time
from collections import deque
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode
from prometheus_client import Gauge

from aggregator.ingest import Ingestor
from aggregator.mqtt_wire.subscriber import FactSubscriber, Received, WireOptions
from aggregator.settings import AggregatorSettings
from aggregator.store.points import QueuedSeriesStore
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
        self._queue: deque[Received] = deque()
        self._arrived = threading.Condition()
        self._stop = threading.Event()
        self._worker: threading.Thread | None = None
        self.handled = 0
        """Messages this client has ingested and acknowledged."""
        self._queued_series: QueuedSeriesStore | None = None
        """The series store whose writes acknowledgements wait for (None: they do not)."""
        if settings.series_ack_when_written:
            if isinstance(ingestor.series, QueuedSeriesStore):
                self._queued_series = ingestor.series
            else:
                logger.warning(
                    "series_ack_when_written ignored: the %s series store writes before it returns",
                    settings.series_backend,
                )
        self._unwritten: deque[tuple[int, list[Received]]] = deque()
        """Ingested batches whose points the series store still holds, with its mark."""
        tls = None
        if settings.mqtt_tls:
            ca = str(settings.mqtt_ca_file) if settings.mqtt_ca_file else None
            tls = ssl.create_default_context(cafile=ca)
        password = settings.mqtt_password.get_secret_value() if settings.mqtt_password else None
        self.subscriber = FactSubscriber(
            WireOptions(
                host=settings.mqtt_host,
                port=settings.mqtt_port,
                client_id=settings.mqtt_client_id,
                v5=self.v5,
                username=settings.mqtt_username,
                password=password if settings.mqtt_username is not None else None,
                tls=tls,
                keepalive_s=settings.mqtt_keepalive_s,
                session_expiry_s=settings.mqtt_session_expiry_s,
                receive_maximum=settings.mqtt_receive_maximum,
            ),
            self._subscriptions(),
            self._received,
            self._on_connected,
        )
        self.client = self._publisher(settings, password)

    @staticmethod
    def _publisher(settings: AggregatorSettings, password: str | None) -> mqtt.Client:
        """The paho client that publishes alerts and notifications (no subscriptions)."""
        client = mqtt.Client(
            callback_api_version=CallbackAPIVersion.VERSION2,
            client_id=f"{settings.mqtt_client_id}-out",
            protocol=mqtt.MQTTv5 if settings.mqtt_protocol == "5" else mqtt.MQTTv311,
        )
        if settings.mqtt_username is not None:
            client.username_pw_set(settings.mqtt_username, password)
        if settings.mqtt_tls:
            ca = str(settings.mqtt_ca_file) if settings.mqtt_ca_file else None
            client.tls_set(ca_certs=ca, cert_reqs=ssl.CERT_REQUIRED)
        client.reconnect_delay_set(min_delay=1, max_delay=30)
        client.on_connect = _publisher_connected
        return client

    @property
    def connected(self) -> bool:
        """Whether the fact subscription is connected (and subscribed) and the alert
        publisher connected now (what ``/healthz`` reports)."""
        return self.subscriber.connected and self.client.is_connected()

    def wait_connected(self, timeout: float) -> bool:
        """Block until both connections are up (the subscription subscribed) or the
        timeout passes."""
        deadline = time.monotonic() + timeout
        if not self.subscriber.wait_connected(timeout):
            return False
        while not self.client.is_connected():
            if time.monotonic() > deadline:
                return False
            time.sleep(0.02)
        return True

    def start(self) -> None:
        """Start the worker thread and connect (in the background, retrying for ever)."""
        self._stop.clear()
        self._worker = threading.Thread(target=self._work, name="hallwatch-ingest", daemon=True)
        self._worker.start()
        self.subscriber.start()
        self.client.connect_async(
            self.settings.mqtt_host,
            self.settings.mqtt_port,
            keepalive=self.settings.mqtt_keepalive_s,
        )
        self.client.loop_start()

    def stop(self, timeout: float = 5.0) -> None:
        """Disconnect and stop the worker (messages not yet ingested stay unacknowledged:
        the broker redelivers them to the persistent session)."""
        self._stop.set()
        with self._arrived:
            self._arrived.notify_all()
        worker, self._worker = self._worker, None
        if worker is not None:
            worker.join(timeout)
        self.subscriber.stop(timeout)
        try:
            self.client.disconnect()
        finally:
            self.client.loop_stop()
        self._queue.clear()
        if worker is None or not worker.is_alive():  # else the worker still holds them
            self._unwritten.clear()  # unacknowledged: the broker delivers them again
        CONNECTED.set(0)

    # -- the subscriber's callbacks (network thread: only enqueue) -------------------------

    def _subscriptions(self) -> list[tuple[str, int]]:
        facts = FACTS_FILTER
        group = self.settings.share_group
        if group is not None:
            if self.v5:
                facts = shared_subscription(FACTS_FILTER, group)
            else:
                logger.warning("share_group %r ignored: shared subscriptions need MQTT 5", group)
        return [(facts, 1), (EDGE_STATUS_FILTER, 1)]

    def _on_connected(self, connected: bool) -> None:
        CONNECTED.set(1 if connected else 0)

    def _received(self, messages: list[Received]) -> None:
        with self._arrived:
            self._queue.extend(messages)
            self._arrived.notify()
        QUEUE_DEPTH.set(len(self._queue))

    # -- worker ---------------------------------------------------------------------------

    def _take(self, limit: int) -> list[Received]:
        """Up to ``limit`` queued messages, waiting up to 0.2 s for the first (10 ms while
        a batch waits for its points to reach the time-series server)."""
        with self._arrived:
            if not self._queue:
                self._arrived.wait(0.01 if self._unwritten else 0.2)
            queued = self._queue
            batch = [queued.popleft() for _ in range(min(limit, len(queued)))]
        QUEUE_DEPTH.set(len(self._queue))
        return batch

    def _work(self) -> None:
        self.ingestor.warm_up()  # what comes meanwhile is queued
        limit = self.settings.ingest_batch_max
        while not self._stop.is_set():
            batch = self._take(limit)
            self._ack_written()
            if not batch:
                continue
            if self._ingest_batch(batch):
                done = batch
            else:  # the batch as a whole keeps failing: one message at a time
                done = []
                for item in batch:
                    if not self._ingest(item):
                        break  # stopping: the rest stays unacknowledged
                    done.append(item)
            self._acknowledge(done)

    def _acknowledge(self, done: list[Received]) -> None:
        """Acknowledge ingested messages now, or once the series store has their points."""
        if self._queued_series is None:
            self.subscriber.ack(done)
            self.handled += len(done)
            return
        self._unwritten.append((self._queued_series.mark(), done))
        self._ack_written()

    def _ack_written(self) -> None:
        """Acknowledge the batches whose points are on the time-series server, in order."""
        series = self._queued_series
        while self._unwritten and series is not None and series.written(self._unwritten[0][0]):
            _, done = self._unwritten.popleft()
            self.subscriber.ack(done)
            self.handled += len(done)

    def _ingest_batch(self, batch: list[Received]) -> bool:
        """Ingest a batch, retrying twice; True when all of it may be acknowledged."""
        if len(batch) == 1:
            return False  # the single-message path has the full retry schedule
        for delay in _RETRY_DELAYS_S[:2]:
            try:
                self.ingestor.handle_batch(batch)
                return True
            except Exception:
                logger.exception("ingest of a batch of %d messages failed; retrying", len(batch))
                if self._stop.wait(delay):
                    return False
        return False

    def _ingest(self, item: Received) -> bool:
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


def _publisher_connected(
    _client: mqtt.Client,
    _userdata: Any,
    _flags: mqtt.ConnectFlags,
    reason_code: ReasonCode,
    _properties: Properties | None,
) -> None:
    if reason_code.is_failure:
        logger.error("MQTT connection (alert publisher) refused: %s", reason_code)


class MqttAlertPublisher:
    """Publishes alerts on the hall's alerts topic (QoS 1) for hall managers.

    While disconnected, paho keeps QoS 1 messages in memory and sends them on reconnect.

    Args:
        client: A paho client (usually :attr:`MqttIngest.client`, the publishing one).
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
