"""Runs device feeds: one MQTT client in, one thread calling the feeds, facts out.

- One paho client subscribes (QoS 1) to every feed's topic filter; its callbacks only
  enqueue. Paho reconnects with backoff (1 s doubling to 30 s) and the session is kept
  (``clean_session=False``), so the broker holds QoS 1 messages during short outages.
- One thread takes messages in arrival order, routes each to the feed whose filter
  matches its topic, calls :meth:`Feed.handle`, and calls every feed's :meth:`Feed.tick`
  about every ``tick_interval_s``. Each returned fact is passed to ``write`` (the
  outbox) in order.
- **Acknowledgement.** Messages are acknowledged by hand (paho ``manual_ack``): a QoS 1
  message is acked only once its feed handled it and ``write`` returned for each of its
  facts. A message still in the in-memory inbox when the edge stops or crashes is not
  acked, and the broker delivers it again (same client id, kept session). A message
  received on an earlier connection is handled but not acked (its packet id belongs to
  that connection): the broker sends it again and the feed drops the duplicate.
- **Ticks wait for the backlog.** While disconnected, and after each (re)connect until
  the broker acknowledged the subscriptions, the inbox is empty and no message came for
  ``settle_s``, no feed is ticked: a wall-clock tick before the broker delivered the
  messages it held would report false waits and abandons. Messages received before
  that are marked not ``live``. A broker sends what it held at once; a steady trickle
  of live traffic (heartbeats every couple of seconds) must not hold ticks back for
  ever, so the wait ends anyway ``max_settle_s`` after the subscriptions, once the
  inbox is empty.
- **Staged facts.** Feeds stage their facts in the feed store in the transaction that
  commits the state they report (see :mod:`edge.feeds.base`). After ``write`` returns
  for a fact, the runner deletes it from the stage. On :meth:`FeedRunner.start`, before
  connecting, and after a failed write, before writing anything else, it writes every
  staged fact again, oldest first: a crash or an outbox error delays a fact, never loses
  it. A write that fails stops the batch (the rest stays staged, in order).
- A feed that raises does not stop the thread: the error is logged and the message is
  dead-lettered in the feed store (which masks ID numbers), when one is given.
- **Traffic.** Every message routed to a feed (used, dropped or dead-lettered) is passed,
  with the feed's name, to the optional ``on_message`` callback (the device monitor takes
  it as a sign of life of the device behind the feed).
"""

from __future__ import annotations

import logging
import queue
import ssl
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from edge.comms.mqtt_publisher import BrokerSettings
from edge.feeds.base import Feed, FeedMessage, FeedStore
from hallwatch.contract import Fact, parse_fact, utcnow

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class _Connected:
    ok: bool


@dataclass(frozen=True, slots=True)
class _Subscribed:
    mid: int


@dataclass(frozen=True, slots=True)
class _Delivery:
    """A received message and what is needed to acknowledge it."""

    message: FeedMessage
    mid: int
    qos: int
    connection: int
    """Which connection (counted from 1) it came on: only that one can ack it."""


class FeedRunner:
    """Feeds device messages from the broker to their feeds until stopped.

    Args:
        feeds: The feeds; their topic filters must be distinct.
        broker: Broker address and credentials.
        write: Where each fact goes (the edge's outbox).
        client_id: MQTT client id (kept session: make it stable and unique per edge).
        tick_interval_s: How often every feed's ``tick`` is called.
        now: The clock passed to ``tick`` and stamped on received messages.
        store: The feed store: staged facts are taken from it (written again on start and
            after a failed write, deleted once written), and a message whose handler
            raised is dead-lettered in it.
        settle_s: After each (re)connect, how long the inbox must stay empty (and the
            subscriptions acknowledged) before feeds are ticked again.
        max_settle_s: The longest that wait lasts after the subscriptions were
            acknowledged (then an empty inbox is enough).
        monotonic: The clock that schedules ticks and the settle period (for tests).
        on_message: Called on the feed thread with the feed's name and each message routed
            to it, after the feed handled it (whatever the outcome); it must be quick and
            an exception it raises is logged and ignored.

    Attributes:
        handled: Messages processed so far (used, dropped or dead-lettered).
        acked: QoS 1 messages acknowledged so far.
        connected: Whether the client is connected.
        ready: Whether it is connected and the broker acknowledged every subscription.
        settled: Whether it is ready and has caught up with the broker's backlog (feeds
            are ticked only then).

    Raises:
        ValueError: No feeds, or two feeds with the same topic filter.
    """

    def __init__(
        self,
        feeds: Sequence[Feed],
        broker: BrokerSettings,
        write: Callable[[Fact], None],
        *,
        client_id: str,
        tick_interval_s: float = 1.0,
        now: Callable[[], datetime] = utcnow,
        store: FeedStore | None = None,
        settle_s: float = 2.0,
        max_settle_s: float = 15.0,
        monotonic: Callable[[], float] = time.monotonic,
        on_message: Callable[[str, FeedMessage], None] | None = None,
    ) -> None:
        filters = [f.topic_filter for f in feeds]
        if not feeds or len(set(filters)) != len(filters):
            raise ValueError(f"need feeds with distinct topic filters, got {filters}")
        self._feeds = list(feeds)
        self._broker = broker
        self._write = write
        self._tick_s = tick_interval_s
        self._now = now
        self._store = store
        self._settle_s = settle_s
        self._max_settle_s = max(settle_s, max_settle_s)
        self._ready_since = 0.0
        self._mono = monotonic
        self._message_hook = on_message
        self._inbox: queue.Queue[_Delivery | _Connected | _Subscribed] = queue.Queue()
        self._pending_subs: set[int] = set()
        self.ready = False
        self.settled = False
        self._quiet_since = 0.0
        self._connection_no = 0  # written by paho's thread only (on connect)
        self._cond = threading.Condition()
        self._received = 0
        self.handled = 0
        self.acked = 0
        self.connected = False
        self._backlog = store is not None  # staged facts may wait: write them first
        self._unstaged_warned: set[str] = set()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"feeds-{client_id}", daemon=True)
        self._client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=client_id,
            protocol=mqtt.MQTTv311,
            clean_session=False,
            manual_ack=True,
        )
        if broker.username:
            self._client.username_pw_set(broker.username, broker.password)
        if broker.tls:
            self._client.tls_set(cert_reqs=ssl.CERT_REQUIRED)
        self._client.reconnect_delay_set(min_delay=1, max_delay=30)
        self._client.on_connect = self._on_connect
        self._client.on_disconnect = self._on_disconnect
        self._client.on_message = self._on_message
        self._client.on_subscribe = self._on_subscribe

    # Paho callbacks: enqueue only.
    def _on_connect(self, _c: mqtt.Client, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
        self._connection_no += 1
        self._inbox.put(_Connected(not reason.is_failure))

    def _on_disconnect(self, _c: mqtt.Client, _u: Any, _f: Any, _r: Any, _p: Any) -> None:
        self._inbox.put(_Connected(False))

    def _on_subscribe(self, _c: mqtt.Client, _u: Any, mid: int, _r: Any, _p: Any) -> None:
        self._inbox.put(_Subscribed(mid))

    def _on_message(self, _c: mqtt.Client, _u: Any, message: mqtt.MQTTMessage) -> None:
        with self._cond:
            self._received += 1
        received = FeedMessage(
            message.topic, bytes(message.payload), self._now(), live=self.settled
        )
        self._inbox.put(_Delivery(received, message.mid, message.qos, self._connection_no))

    def start(self) -> None:
        """Write the facts left staged, then connect (asynchronously, retried with backoff)
        and start the feed thread.

        A staged fact that cannot be written now is written by the feed thread before
        any other fact.
        """
        self._flush()
        logger.info(
            "feeds %s from mqtt://%s:%d",
            ", ".join(f"{f.name} ({f.topic_filter})" for f in self._feeds),
            self._broker.host,
            self._broker.port,
        )
        self._client.connect_async(
            self._broker.host, self._broker.port, keepalive=self._broker.keepalive_s
        )
        self._client.loop_start()
        self._thread.start()

    @property
    def running(self) -> bool:
        """Whether the feed thread is still alive (it may be using the feed store)."""
        return self._thread.is_alive()

    def stop(self, timeout: float = 10.0) -> bool:
        """Stop the thread (after the message in progress) and disconnect. Idempotent.

        Messages still queued are not acknowledged: the broker delivers them again.

        Args:
            timeout: How long to wait for the feed thread.

        Returns:
            True once the feed thread has ended; False if it is still running (stuck in
            a feed or a write) after ``timeout``, when the feed store must stay open.
        """
        if not self._stop.is_set():
            self._stop.set()
            if self._thread.is_alive():
                self._thread.join(timeout=timeout)
            self._client.disconnect()
            self._client.loop_stop()
        if self._thread.is_alive():
            logger.error("the feed thread did not stop within %.0f s", timeout)
            return False
        return True

    def wait_idle(self, timeout: float) -> bool:
        """Wait until every message received so far is processed.

        Returns:
            True once nothing is queued or in progress; False after ``timeout`` seconds.
        """
        deadline = time.monotonic() + timeout
        with self._cond:
            while self.handled < self._received:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(left)
        return True

    def _run(self) -> None:
        next_tick = self._mono() + self._tick_s
        while not self._stop.is_set():
            wait = max(0.0, min(0.2, next_tick - self._mono()))
            try:
                item = self._inbox.get(timeout=wait) if wait > 0 else self._inbox.get_nowait()
            except queue.Empty:
                item = None
            if isinstance(item, _Connected):
                self._connection(item.ok)
            elif isinstance(item, _Subscribed):
                self._pending_subs.discard(item.mid)
                self.ready = self.connected and not self._pending_subs
                self._quiet_since = self._ready_since = self._mono()
            elif item is not None:
                self._quiet_since = self._mono()
                self._deliver(item)
            if self._mono() >= next_tick:
                if self._may_tick():
                    self._tick()
                next_tick = max(next_tick + self._tick_s, self._mono())

    def _may_tick(self) -> bool:
        """Whether feeds may be ticked: connected, subscribed, and caught up.

        After a (re)connect the runner is *settled* once the inbox is empty and nothing
        arrived for ``settle_s`` (or ``max_settle_s`` passed since the subscriptions);
        until the next disconnect it stays settled.
        """
        if not self.ready:
            self.settled = False
            return False
        now = self._mono()
        caught_up = (
            now - self._quiet_since >= self._settle_s
            or now - self._ready_since >= self._max_settle_s
        )
        if not self.settled and self._inbox.empty() and caught_up:
            self.settled = True
            logger.info("feed client caught up with the broker; ticking feeds")
        return self.settled

    def _connection(self, ok: bool) -> None:
        self.ready = False
        self.settled = False
        self._quiet_since = self._mono()
        self._pending_subs.clear()
        if ok:
            for feed in self._feeds:
                _rc, mid = self._client.subscribe(feed.topic_filter, qos=1)
                if mid is not None:
                    self._pending_subs.add(mid)
        if ok != self.connected:
            logger.info("feed client %s", "connected" if ok else "disconnected")
        self.connected = ok

    def _deliver(self, delivery: _Delivery) -> None:
        """Handle a message, then acknowledge it if every fact was written."""
        if self._handle(delivery.message) and delivery.qos > 0:
            if delivery.connection != self._connection_no:
                logger.debug("message %d came on an earlier connection; not acked", delivery.mid)
                return
            rc = self._client.ack(delivery.mid, delivery.qos)
            if rc == mqtt.MQTT_ERR_SUCCESS:
                self.acked += 1
            else:
                logger.debug("could not ack message %d (%s)", delivery.mid, rc)

    def _handle(self, message: FeedMessage) -> bool:
        """Route one message to its feed and write its facts.

        Returns:
            True when it may be acknowledged: handled (used, dropped, or dead-lettered)
            and every fact written; False when a write failed (the broker sends it again).
        """
        try:
            feed = next(
                (f for f in self._feeds if mqtt.topic_matches_sub(f.topic_filter, message.topic)),
                None,
            )
            if feed is None:
                # Only a broker that ignores the filters sends these: the demo's embedded
                # amqtt was seen delivering the edge's retained status to this client.
                logger.debug("no feed for a message on %s; dropped", message.topic)
                return True
            facts: list[Fact] | None
            try:
                facts = feed.handle(message)
            except Exception as exc:  # a feed's bug never stops the others
                logger.exception("%s feed failed on a message on %s", feed.name, message.topic)
                self._dead_letter(feed.name, message, f"handler error: {type(exc).__name__}")
                facts = None
            self._notify(feed.name, message)
            return True if facts is None else self._emit(feed.name, facts)
        finally:
            with self._cond:
                self.handled += 1
                self._cond.notify_all()

    def _notify(self, feed: str, message: FeedMessage) -> None:
        if self._message_hook is None:
            return
        try:
            self._message_hook(feed, message)
        except Exception:
            logger.exception("the on_message callback failed for a %s message", feed)

    def _tick(self) -> None:
        now = self._now()
        for feed in self._feeds:
            try:
                facts = feed.tick(now)
            except Exception:
                logger.exception("%s feed failed to tick", feed.name)
                continue
            self._emit(feed.name, facts)

    def _emit(self, feed: str, facts: list[Fact]) -> bool:
        """Write facts in order; False if any write failed (each failure is logged).

        With a store, staged facts left from a failed write (or an earlier run) are
        written first; each fact is deleted from the stage once written. After a failed
        write the rest of the staged facts wait, in order, for the next attempt.
        """
        if self._store is None:
            ok = True
            for fact in facts:
                ok = self._write_fact(feed, fact) and ok
            return ok
        done: set[str] = set()
        if self._backlog:
            flushed = self._flush()
            if flushed is None:  # still failing: these facts wait staged behind the others
                self._write_unstaged(feed, facts)
                return False
            done = flushed
        for i, fact in enumerate(facts):
            if fact.id in done:
                continue
            if not self._write_fact(feed, fact):
                self._backlog = True
                self._write_unstaged(feed, facts[i + 1 :])
                return False
            self._unstage(feed, fact)
        return True

    def _write_fact(self, feed: str, fact: Fact) -> bool:
        try:
            self._write(fact)
        except Exception:
            logger.exception("%s feed: could not write a %s fact", feed, fact.kind)
            return False
        return True

    def _unstage(self, feed: str, fact: Fact) -> None:
        """Delete a written fact from the stage; warn once per feed if it was not staged."""
        assert self._store is not None
        try:
            staged = self._store.unstage(fact.id)
        except Exception:  # written, still staged: written again later (same id)
            logger.exception("%s feed: could not unstage fact %s", feed, fact.id)
            self._backlog = True
            return
        if not staged and feed not in self._unstaged_warned:
            self._unstaged_warned.add(feed)
            logger.warning(
                "%s feed returned facts it did not stage: they are lost if the edge stops"
                " before writing them",
                feed,
            )

    def _write_unstaged(self, feed: str, facts: list[Fact]) -> None:
        """After a failure, write those of ``facts`` that are not staged (a feed that
        does not stage); staged ones wait for the next :meth:`_flush`."""
        if not facts or self._store is None:
            return
        try:
            staged = {p.fact_id for p in self._store.pending()}
        except Exception:
            logger.exception("could not read the staged facts")
            return
        for fact in facts:
            if fact.id not in staged:
                self._write_fact(feed, fact)

    def _flush(self) -> set[str] | None:
        """Write every staged fact, oldest first, deleting each once written.

        Returns:
            The ids written; None when a write failed (the rest stays staged, in order,
            and is tried again before the next fact).
        """
        if self._store is None:
            return set()
        self._backlog = True
        try:
            pending = self._store.pending()
        except Exception:
            logger.exception("could not read the staged facts")
            return None
        if pending:
            logger.info("writing %d staged facts to the outbox", len(pending))
        done: set[str] = set()
        for item in pending:
            try:
                fact = parse_fact(item.payload)
            except Exception as exc:  # not a fact any more (never expected): keep it aside
                logger.exception("staged fact %s cannot be read; dead-lettered", item.fact_id)
                message = FeedMessage(item.topic, item.payload, self._now())
                self._dead_letter(item.feed, message, f"unreadable staged fact: {exc}")
                try:
                    self._store.unstage(item.fact_id)
                except Exception:
                    logger.exception("could not unstage fact %s", item.fact_id)
                    return None
                continue
            if not self._write_fact(item.feed, fact):
                return None
            try:
                self._store.unstage(item.fact_id)
            except Exception:
                logger.exception("could not unstage fact %s", item.fact_id)
                return None
            done.add(item.fact_id)
        self._backlog = False
        return done

    def _dead_letter(self, feed: str, message: FeedMessage, reason: str) -> None:
        if self._store is None:
            return
        try:
            self._store.dead_letter(feed, message, reason)  # the store masks ID numbers
        except Exception:
            logger.exception("could not dead-letter a %s message", feed)
