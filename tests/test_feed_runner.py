"""The feed runner against a real Mosquitto: vendor messages in, facts written in order."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import cast

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from edge.comms.mqtt_publisher import BrokerSettings
from edge.feeds.base import FeedMessage, FeedStore
from edge.feeds.queue_feed import QueueFeed
from edge.feeds.runner import FeedRunner, _Delivery
from edge.worker import EdgeWorker
from hallwatch.config.models import HallConfig
from hallwatch.contract import Fact, TicketFact, WaitFact, encode, fact_topic, parse_fact
from tests.conftest import build_hall
from tests.support.mosquitto import Mosquitto
from tests.support.running import wait_until
from tests.test_wait_clock import SALT, hall_time, queue_hall

pytestmark = pytest.mark.integration


class StubFeed:
    """A feed on its own topic that records what it gets and raises on ``boom``."""

    name = "stub"

    def __init__(self, topic: str) -> None:
        self.topic_filter = topic
        self.messages: list[bytes] = []
        self.ticks = 0

    def handle(self, message: FeedMessage) -> list[Fact]:
        if message.payload == b"boom 11010519491231002X":
            raise RuntimeError("stub feed bug")
        self.messages.append(message.payload)
        return []

    def tick(self, now: datetime) -> list[Fact]:
        self.ticks += 1
        return []


@pytest.fixture
def publish(mosquitto: Mosquitto) -> Iterator[Callable[[str, bytes], None]]:
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"vendor-{id(mosquitto)}")
    client.connect(mosquitto.host, mosquitto.port)
    client.loop_start()

    def send(topic: str, payload: bytes) -> None:
        client.publish(topic, payload, qos=1).wait_for_publish(5)

    yield send
    client.loop_stop()
    client.disconnect()


def record(**fields: object) -> bytes:
    return json.dumps(fields, ensure_ascii=False).encode()


def test_vendor_messages_become_facts_in_order(
    mosquitto: Mosquitto,
    publish: Callable[[str, bytes], None],
    unique_id: Callable[[str], str],
) -> None:
    queue_topic = f"vendor/{unique_id('q')}/queue"
    stub_topic = f"vendor/{unique_id('s')}/other"
    hall = queue_hall(adapter="numeric_state")
    hall.queue.topic = queue_topic  # type: ignore[union-attr]
    store = FeedStore(":memory:")
    stub = StubFeed(stub_topic)
    written: list[Fact] = []
    lock = threading.Lock()

    def write(fact: Fact) -> None:
        with lock:
            written.append(fact)

    runner = FeedRunner(
        [QueueFeed(hall, store), stub],
        BrokerSettings(port=mosquitto.port),
        write,
        client_id=unique_id("feeds"),
        tick_interval_s=0.05,
        store=store,
        settle_s=0.1,
    )
    runner.start()
    try:
        wait_until(lambda: runner.ready, 10, "the feed runner to subscribe")
        messages = [
            (queue_topic, record(lx="qh", qhh="A001", ywlx="A", sj="2026-11-02 09:00:00")),
            (queue_topic, b"{not json"),
            (stub_topic, b"boom 11010519491231002X"),
            (stub_topic, b"hello"),
            (queue_topic, record(lx="qh", qhh="A002", ywlx="A", sj="2026-11-02 09:10:00")),
            (queue_topic, record(lx="jh", qhh="A002", zt=0, ckh="3", sj="2026-11-02 09:20:00")),
            (queue_topic, record(lx="jh", qhh="A001", zt=0, ckh="4", sj="2026-11-02 09:40:00")),
        ]
        for topic, payload in messages:
            publish(topic, payload)
        wait_until(lambda: runner.handled >= len(messages), 10, "every message handled")
        assert runner.wait_idle(5)
        wait_until(lambda: stub.ticks >= 2, 5, "ticks")
    finally:
        runner.stop()
    got = [
        (f.kind.value, f.body.ticket, getattr(f.body, "event", None), hall_time(f.ts))
        for f in written
        if isinstance(f, TicketFact | WaitFact)
    ]
    assert got == [
        ("ticket", "A001", "issued", "09:00:00"),
        ("ticket", "A002", "issued", "09:10:00"),
        ("ticket", "A002", "called", "09:20:00"),
        ("wait", "A001", None, "09:30:00"),
        ("ticket", "A001", "called", "09:40:00"),
    ]
    assert stub.messages == [b"hello"]  # the runner survived the stub's exception
    dead = {d.feed: d for d in store.dead_letters()}
    assert "not JSON" in dead["queue"].reason
    assert "handler error: RuntimeError" in dead["stub"].reason
    assert b"11010519491231002X" not in dead["stub"].payload
    assert runner.handled == len(messages)


def test_runner_refuses_feeds_with_the_same_filter() -> None:
    with pytest.raises(ValueError, match="distinct"):
        FeedRunner(
            [StubFeed("a/b"), StubFeed("a/b")], BrokerSettings(), lambda f: None, client_id="x"
        )


def test_wait_idle_is_true_with_nothing_received() -> None:
    runner = FeedRunner([StubFeed("a/b")], BrokerSettings(), lambda f: None, client_id="x")
    assert runner.wait_idle(0.01)


class _Nobody:
    name = "nobody"

    def detect(self, image: object) -> object:  # pragma: no cover - cameras stay offline
        raise AssertionError("no camera should deliver a frame in this test")


def test_edge_worker_runs_the_queue_and_evaluator_feeds(
    mosquitto: Mosquitto,
    publish: Callable[[str, bytes], None],
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
    data["queue"] = {"topic": "vendor/{hall}/queue", "applicant_salt": SALT, "clock": "events"}
    data["evaluators"] = {"topic": "vendor/{hall}/evaluators"}
    hall = HallConfig.model_validate(data)
    facts: list[Fact] = []
    listener = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=unique_id("listener"))
    subscribed = threading.Event()
    listener.on_subscribe = lambda *_: subscribed.set()
    listener.on_message = lambda _c, _u, m: facts.append(parse_fact(bytes(m.payload)))
    listener.connect(mosquitto.host, mosquitto.port)
    listener.subscribe(fact_topic(hall_id, "+"), 1)
    listener.loop_start()
    edge = EdgeWorker(hall, detector=_Nobody())  # type: ignore[arg-type]
    try:
        assert subscribed.wait(5)
        edge.start()
        assert edge.feeds is not None
        wait_until(lambda: edge.feeds is not None and edge.feeds.ready, 10, "feeds subscribed")
        at = "2026-11-02T09:00:00+08:00"
        publish(f"vendor/{hall_id}/queue", record(event="issued", ticket="A1", service="A", at=at))
        publish(f"vendor/{hall_id}/queue", b"oops")
        wait_until(
            lambda: any(f.kind == "ticket" for f in facts), 10, "the ticket fact at the broker"
        )
    finally:
        edge.stop()
        listener.loop_stop()
        listener.disconnect()
    [ticket] = [f for f in facts if isinstance(f, TicketFact)]
    assert (ticket.hall, ticket.body.ticket_id) == (hall_id, "20261102-A1")
    store = FeedStore(tmp_path / "feeds.sqlite")
    assert [d.feed for d in store.dead_letters()] == ["queue"]
    store.close()


def test_runner_reconnects_and_resubscribes_after_a_broker_restart(
    unique_id: Callable[[str], str],
) -> None:
    broker = Mosquitto()
    broker.start()
    stub = StubFeed(f"vendor/{unique_id('r')}/queue")
    runner = FeedRunner(
        [stub], BrokerSettings(port=broker.port), lambda f: None, client_id=unique_id("feeds")
    )
    runner.start()
    try:
        wait_until(lambda: runner.ready, 10, "the first subscription")
        broker.restart()  # no persistence: the session and subscriptions are gone
        wait_until(lambda: not runner.ready, 5, "the runner to notice the outage")
        wait_until(lambda: runner.ready, 15, "the runner to reconnect and resubscribe")
        vendor = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=unique_id("vendor"))
        vendor.connect(broker.host, broker.port)
        vendor.loop_start()
        vendor.publish(stub.topic_filter, b"after restart", qos=1).wait_for_publish(5)
        vendor.loop_stop()
        vendor.disconnect()
        wait_until(lambda: stub.messages == [b"after restart"], 5, "the message after restart")
    finally:
        runner.stop()
        broker.cleanup()


class _BlockingFeed(StubFeed):
    """A feed whose ``handle`` blocks until released."""

    def __init__(self, topic: str) -> None:
        super().__init__(topic)
        self.release = threading.Event()
        self.entered = threading.Event()

    def handle(self, message: FeedMessage) -> list[Fact]:
        self.entered.set()
        self.release.wait(10)
        return super().handle(message)


def _unreachable() -> BrokerSettings:
    """A broker address where nothing listens."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return BrokerSettings(port=port)


def test_stop_says_whether_the_feed_thread_ended() -> None:
    feed = _BlockingFeed("a/b")
    runner = FeedRunner([feed], _unreachable(), lambda f: None, client_id="stuck")
    runner._inbox.put(_Delivery(FeedMessage("a/b", b"x", datetime.now(UTC)), 1, 1, 0))
    runner.start()
    assert feed.entered.wait(5)
    assert runner.stop(timeout=0.1) is False
    assert runner.running
    feed.release.set()
    wait_until(lambda: not runner.running, 5, "the feed thread to end")
    assert runner.stop() is True


def test_edge_worker_keeps_the_feed_store_open_while_the_feed_thread_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = build_hall("h-stop").model_dump(mode="json", context={"reveal_secrets": True})
    data["mqtt"] = {"port": _unreachable().port}
    data["edge"] = {
        "outbox_path": str(tmp_path / "outbox.sqlite"),
        "feed_state_path": str(tmp_path / "feeds.sqlite"),
    }
    data["queue"] = {"topic": "vendor/{hall}/queue", "applicant_salt": SALT}
    edge = EdgeWorker(HallConfig.model_validate(data), detector=_Nobody())  # type: ignore[arg-type]
    assert edge.feeds is not None and edge.feed_store is not None
    real_stop = edge.feeds.stop
    monkeypatch.setattr(edge.feeds, "stop", lambda: real_stop() and False)  # "did not join"
    edge.start()
    edge.stop()
    assert edge.feed_store.dead_letters() == []  # still open: the thread may still use it
    edge.feed_store.close()


def test_no_tick_while_the_broker_is_unreachable() -> None:
    stub = StubFeed("a/b")
    runner = FeedRunner([stub], _unreachable(), lambda f: None, client_id="alone",
                        tick_interval_s=0.01)  # fmt: skip
    runner.start()
    try:
        time.sleep(0.3)
    finally:
        runner.stop()
    assert stub.ticks == 0


class _LoggingFeed(StubFeed):
    """Records messages and ticks in one log, in the order the runner made them."""

    def __init__(self, topic: str, handle_s: float = 0.0) -> None:
        super().__init__(topic)
        self.log: list[str] = []
        self._handle_s = handle_s

    def handle(self, message: FeedMessage) -> list[Fact]:
        time.sleep(self._handle_s)
        self.log.append(message.payload.decode())
        return [message]  # type: ignore[list-item]  # the test's write takes anything

    def tick(self, now: datetime) -> list[Fact]:
        self.log.append("tick")
        return super().tick(now)


def _publish_to(broker: Mosquitto, topic: str, payloads: list[str], client_id: str) -> None:
    vendor = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id)
    vendor.connect(broker.host, broker.port)
    vendor.loop_start()
    for info in [vendor.publish(topic, payload.encode(), qos=1) for payload in payloads]:
        info.wait_for_publish(5)
    vendor.loop_stop()
    vendor.disconnect()


def test_after_a_reconnect_the_backlog_is_handled_before_any_tick(
    mosquitto: Mosquitto, unique_id: Callable[[str], str]
) -> None:
    topic, client_id = f"vendor/{unique_id('b')}/queue", unique_id("feeds")
    first = FeedRunner([StubFeed(topic)], BrokerSettings(port=mosquitto.port), lambda f: None,
                       client_id=client_id)  # fmt: skip
    first.start()
    wait_until(lambda: first.ready, 10, "the first subscription")
    assert first.stop()  # the session (subscription) stays at the broker
    backlog = [f"m{i}" for i in range(30)]
    _publish_to(mosquitto, topic, backlog, unique_id("vendor"))  # held for the edge

    feed = _LoggingFeed(topic, handle_s=0.005)
    runner = FeedRunner([feed], BrokerSettings(port=mosquitto.port), lambda f: None,
                        client_id=client_id, tick_interval_s=0.002, settle_s=0.3)  # fmt: skip
    runner.start()
    try:
        wait_until(lambda: "tick" in feed.log, 10, "the first tick")
    finally:
        runner.stop()
    first_tick = feed.log.index("tick")
    assert feed.log[:first_tick] == backlog  # every held message came before the first tick


def test_a_steady_trickle_of_heartbeats_does_not_hold_ticks_back_for_ever(
    mosquitto: Mosquitto, unique_id: Callable[[str], str]
) -> None:
    topic = f"vendor/{unique_id('hb')}/heartbeat"
    feed = _LoggingFeed(topic)
    runner = FeedRunner([feed], BrokerSettings(port=mosquitto.port), lambda f: None,
                        client_id=unique_id("feeds"), tick_interval_s=0.02, settle_s=0.5,
                        max_settle_s=1.5)  # fmt: skip
    runner.start()
    vendor = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=unique_id("vendor"))
    vendor.connect("127.0.0.1", mosquitto.port)
    vendor.loop_start()
    try:
        wait_until(lambda: runner.ready, 10, "the subscription")
        deadline = time.monotonic() + 5.0
        while "tick" not in feed.log and time.monotonic() < deadline:
            vendor.publish(topic, b"alive", qos=1).wait_for_publish(5)
            time.sleep(0.2)  # never quiet for settle_s
        assert "tick" in feed.log, "ticks never started under a steady trickle"
        assert runner.settled
        assert len([m for m in feed.log if m != "tick"]) >= 5  # it did wait a while first
    finally:
        vendor.loop_stop()
        vendor.disconnect()
        runner.stop()


def test_messages_not_yet_handled_are_delivered_again_after_a_stop(
    mosquitto: Mosquitto, unique_id: Callable[[str], str]
) -> None:
    topic, client_id = f"vendor/{unique_id('a')}/queue", unique_id("feeds")
    sent = [f"m{i}" for i in range(6)]
    written: list[str] = []
    in_write, gate = threading.Event(), threading.Event()

    def slow_write(fact: Fact) -> None:
        payload = cast(FeedMessage, fact).payload.decode()  # _LoggingFeed returns messages
        if payload == "m1":
            in_write.set()
            gate.wait(10)  # m2 … m5 wait in the runner's memory meanwhile
        written.append(payload)

    first = FeedRunner([_LoggingFeed(topic)], BrokerSettings(port=mosquitto.port), slow_write,
                       client_id=client_id)  # fmt: skip
    first.start()
    wait_until(lambda: first.ready, 10, "the first subscription")
    _publish_to(mosquitto, topic, sent, unique_id("vendor"))
    assert in_write.wait(5)
    wait_until(lambda: first._inbox.qsize() == len(sent) - 2, 5, "the rest received")
    stopping = threading.Thread(target=first.stop)
    stopping.start()  # the edge stops (or crashes) while writing m1
    wait_until(first._stop.is_set, 5, "the stop")
    gate.set()
    stopping.join(10)
    assert written == ["m0", "m1"] and first.acked == 2

    written.clear()
    again = FeedRunner([_LoggingFeed(topic)], BrokerSettings(port=mosquitto.port), slow_write,
                       client_id=client_id)  # fmt: skip
    again.start()
    try:
        wait_until(lambda: written == sent[2:], 10, "the unacknowledged messages again")
    finally:
        again.stop()
    assert again.acked == len(sent) - 2


# --- nothing is lost: facts staged with the state, written again after a crash ------------


def _wait_ids(facts: list[Fact]) -> list[tuple[str, int]]:
    return [(f.body.ticket_id, f.body.leg) for f in facts if isinstance(f, WaitFact)]


def test_a_breach_whose_write_failed_is_written_first_then_once(tmp_path: Path) -> None:
    from tests.test_wait_clock import message

    store = FeedStore(tmp_path / "feeds.sqlite")
    written: list[Fact] = []
    broken = [True]

    def write(fact: Fact) -> None:
        if isinstance(fact, WaitFact) and broken[0]:
            raise OSError("outbox: disk I/O error")
        written.append(fact)

    runner = FeedRunner([QueueFeed(queue_hall(), store)], _unreachable(), write,
                        client_id="x", store=store)  # fmt: skip
    assert runner._handle(message("issued", "A001", "09:00", service="A"))
    # A001's limit passes at 09:30; the wait fails to be written: the message is not acked.
    assert not runner._handle(message("issued", "A002", "09:45", service="A"))
    assert [f.kind for f in written] == ["ticket"]
    staged = store.pending()
    assert [p.topic for p in staged] == [fact_topic("h1", "wait"), fact_topic("h1", "ticket")]
    broken[0] = False
    assert runner._handle(message("called", "A002", "09:50", window="1"))
    assert [(f.kind, f.id) for f in written[1:3]] == [("wait", staged[0].fact_id),
                                                       ("ticket", staged[1].fact_id)]  # fmt: skip
    assert [getattr(f.body, "event", None) for f in written] == [
        "issued", None, "issued", "called"
    ]  # fmt: skip
    assert _wait_ids(written) == [("20261102-A001", 1)]
    assert store.pending() == []
    store.close()


def test_a_breach_staged_before_a_crash_is_written_once_on_the_next_start(tmp_path: Path) -> None:
    from tests.test_wait_clock import message

    path = tmp_path / "feeds.sqlite"
    store = FeedStore(path)

    def failing(fact: Fact) -> None:
        if isinstance(fact, WaitFact):
            raise OSError("the process dies here")

    first = FeedRunner([QueueFeed(queue_hall(), store)], _unreachable(), failing,
                       client_id="x", store=store)  # fmt: skip
    first._handle(message("issued", "A001", "09:00", service="A"))
    first._handle(message("issued", "A002", "09:45", service="A"))  # the wait is lost here
    [staged_wait, staged_ticket] = store.pending()
    store.close()  # the edge dies: nothing more from this runner

    store = FeedStore(path)
    written: list[Fact] = []
    again = FeedRunner([QueueFeed(queue_hall(), store)], _unreachable(), written.append,
                       client_id="y", store=store)  # fmt: skip
    again.start()  # staged facts are written before anything is subscribed or handled
    try:
        assert [f.id for f in written] == [staged_wait.fact_id, staged_ticket.fact_id]
        assert _wait_ids(written) == [("20261102-A001", 1)]
        assert again._handle(message("issued", "A003", "10:30", service="A"))
    finally:
        again.stop()
    assert _wait_ids(written) == [("20261102-A001", 1), ("20261102-A002", 1)]  # not A001 again
    assert store.pending() == []
    store.close()


class _Crash(BaseException):
    """The process dying (not an error the runner could catch)."""


def test_a_crash_after_the_outbox_append_does_not_make_two_facts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from edge.outbox import Outbox
    from tests.test_wait_clock import message

    path = tmp_path / "feeds.sqlite"
    outbox = Outbox(tmp_path / "outbox.sqlite")

    def write(fact: Fact) -> None:  # as the edge worker writes
        outbox.append(fact.id, fact_topic(fact.hall, fact.kind), encode(fact))

    store = FeedStore(path)
    first = FeedRunner([QueueFeed(queue_hall(), store)], _unreachable(), write,
                       client_id="x", store=store)  # fmt: skip
    first._handle(message("issued", "A001", "09:00", service="A"))

    def crash(fact_id: str) -> bool:
        raise _Crash

    monkeypatch.setattr(store, "unstage", crash)
    with pytest.raises(_Crash):  # the wait is in the outbox, still staged
        first._handle(message("issued", "A002", "09:45", service="A"))
    store.close()

    store = FeedStore(path)
    again = FeedRunner([QueueFeed(queue_hall(), store)], _unreachable(), write,
                       client_id="y", store=store)  # fmt: skip
    again.start()
    again.stop()
    facts = [parse_fact(m.payload) for m in outbox.pending()]
    assert [(f.kind.value, getattr(f.body, "ticket", None)) for f in facts] == [
        ("ticket", "A001"), ("wait", "A001"), ("ticket", "A002")
    ]  # fmt: skip
    assert len({f.id for f in facts}) == 3
    assert store.pending() == []
    store.close()
    outbox.close()
