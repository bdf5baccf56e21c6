"""Ingest rate of one aggregator process: facts per second from the broker into the stores.

Usage::

    .venv/bin/python benchmarks/ingest.py [--facts 20000] [--skip-victoria]

One Mosquitto on loopback (``tests/support/mosquitto.py``, with ``max_inflight_messages
1000`` as ``deploy/mosquitto/hallwatch.conf``). A publisher sends ``--facts`` presence
facts (QoS 1, the edge's topics, 40 posts of one hall, summaries and changes mixed) as
fast as the broker takes them, and four consumers are timed from their first message to
their last, each in its own run on the same broker:

1. a bare paho subscriber (QoS 1, counts messages, nothing else): the usual Python MQTT
   client, the issue's reference;
2. a bare :class:`~aggregator.mqtt_wire.subscriber.FactSubscriber` (the aggregator's own
   reader, acknowledging each read at once): what the broker and the wire can deliver;
3. the aggregator's ingest (``MqttIngest`` → ``Ingestor``: validate, dedup ledger,
   time-series points, post state, off-post rule) on SQLite state + the embedded SQLite
   time-series store, with the garbage collector tuned as the ``hallwatch aggregator``
   process tunes it (``aggregator/runtime.py``; the bare subscribers keep Python's
   defaults, as a plain client script would);
4. the same with the time series in a real VictoriaMetrics (``LineProtocolStore``).

The publisher's messages are queued in the broker (persistent session of the consumer,
subscribed before publishing), so the consumer is measured draining a backlog at full
speed. The last line is one JSON object::

    {"facts_per_s_sqlite": …, "facts_per_s_victoriametrics": …,
     "bare_subscriber_msgs_per_s": …, "bare_wire_subscriber_msgs_per_s": …, "facts": …,
     "sqlite_vs_bare": …, "sqlite_vs_bare_wire": …}

The issue's target is ≥ 20,000 facts/s and ≥ 80 % of the bare subscriber.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from aggregator.ingest import Ingestor  # noqa: E402
from aggregator.mqtt_ingest import MqttIngest  # noqa: E402
from aggregator.mqtt_wire.subscriber import FactSubscriber, Received, WireOptions  # noqa: E402
from aggregator.runtime import restore_gc, tune_gc  # noqa: E402
from aggregator.settings import AggregatorSettings  # noqa: E402
from aggregator.store.line_protocol import LineProtocolStore  # noqa: E402
from aggregator.store.state import StateStore  # noqa: E402
from aggregator.store.timeseries import SqliteTimeSeriesStore, TimeSeriesStore  # noqa: E402
from hallwatch.contract import (  # noqa: E402
    FACTS_FILTER,
    PostState,
    PresenceBody,
    PresenceFact,
    encode,
    fact_topic,
)
from tests.conftest import build_hall  # noqa: E402
from tests.support.mosquitto import Mosquitto  # noqa: E402
from tests.support.victoria import VictoriaMetrics  # noqa: E402

HALL = "bench-hall"
BROKER_CONFIG = ["max_inflight_messages 1000"]
"""As ``deploy/mosquitto/hallwatch.conf``: MQTT 3.1.1 batches are bounded by it."""
POSTS = 40
T0 = datetime(2026, 11, 2, 1, 0, tzinfo=UTC)


def hall_config() -> object:
    posts = [
        {"id": f"w{i}", "name": f"{i}号窗口", "kind": "front_desk", "window": str(i),
         "camera": "c1"}
        for i in range(1, POSTS + 1)
    ]  # fmt: skip
    return build_hall(HALL, posts=posts)


def payloads(n: int) -> list[bytes]:
    """``n`` presence facts: every post reports every 10 s, a change now and then."""
    out = []
    for k in range(n):
        post = k % POSTS + 1
        at = T0 + timedelta(seconds=10 * (k // POSTS))
        change = (k // POSTS) % 30 == 0
        state = PostState.OFF_POST if (k // POSTS // 30) % 2 else PostState.ON_POST
        body = PresenceBody(
            camera="c1", post=f"w{post}", window=str(post), state=state, since=at,
            summary=not change, score=0.9 if state is PostState.ON_POST else None,
        )  # fmt: skip
        out.append(encode(PresenceFact(hall=HALL, source="edge-bench", ts=at, body=body)))
    return out


def publish(port: int, messages: list[bytes]) -> None:
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="bench-edge")
    client.max_inflight_messages_set(1000)
    client.max_queued_messages_set(0)
    client.connect("127.0.0.1", port)
    client.loop_start()
    topic = fact_topic(HALL, "presence")
    infos = [client.publish(topic, m, qos=1) for m in messages]
    for info in infos:
        info.wait_for_publish(60)
    client.loop_stop()
    client.disconnect()


def bare_subscriber(port: int, messages: list[bytes]) -> float:
    """Messages per second a bare QoS 1 subscriber drains from a queued backlog."""
    got = 0
    first = last = 0.0
    done = threading.Event()

    def on_message(_c: mqtt.Client, _u: object, _m: mqtt.MQTTMessage) -> None:
        nonlocal got, first, last
        got += 1
        last = time.perf_counter()
        if got == 1:
            first = last
        if got == len(messages):
            done.set()

    def session(clean: bool) -> mqtt.Client:
        client = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id="bench-bare", clean_session=clean
        )
        client.on_message = on_message
        client.connect("127.0.0.1", port)
        client.subscribe(FACTS_FILTER, qos=1)
        return client

    client = session(True)
    client.loop(1.0)
    client.disconnect()
    client = session(False)  # keep the session: the broker queues for it
    client.loop(0.5)
    client.disconnect()
    publish(port, messages)
    client = session(False)
    client.loop_start()
    done.wait(300)
    client.loop_stop()
    client.disconnect()
    return (got - 1) / (last - first) if got > 1 and last > first else 0.0


def bare_wire_subscriber(port: int, messages: list[bytes]) -> float:
    """Messages per second the aggregator's own reader drains (acknowledging each read)."""
    got = 0
    first = last = 0.0
    done = threading.Event()

    def deliver(items: list[Received]) -> None:
        nonlocal got, first, last
        if not got:
            first = time.perf_counter()
        got += len(items)
        last = time.perf_counter()
        subscriber.ack(items)
        if got >= len(messages):
            done.set()

    options = WireOptions(host="127.0.0.1", port=port, client_id="bench-wire")
    subscriber = FactSubscriber(options, [(FACTS_FILTER, 1)], deliver)
    subscriber.start()  # subscribed with a kept session: the broker queues what comes next
    subscriber.wait_connected(10)
    subscriber.stop()
    publish(port, messages)
    subscriber.start()
    done.wait(300)
    subscriber.stop()
    return got / (last - first) if last > first else 0.0


class _TimedIngest(MqttIngest):
    """The aggregator's MQTT ingest, noting when the first message arrives."""

    first: float | None = None

    def _received(self, messages: list[Received]) -> None:
        if self.first is None:
            self.first = time.perf_counter()
        super()._received(messages)


def aggregator_rate(port: int, messages: list[bytes], series: TimeSeriesStore, db: Path) -> float:
    """Facts per second the aggregator's ingest drains from a queued backlog, from the
    first message received to the last one stored (as the bare subscribers are timed), in
    a process tuned as ``hallwatch aggregator`` tunes its own (``aggregator/runtime.py``)."""
    settings = AggregatorSettings(
        database_url=f"sqlite:///{db}",
        mqtt_host="127.0.0.1",
        mqtt_port=port,
        mqtt_client_id=f"bench-agg-{db.stem}",
        mqtt_protocol="3.1.1",
        http_port=0,
    )
    state = StateStore(settings.database_url)
    state.create_all()
    ingestor = Ingestor(state, series, {HALL: hall_config()})  # type: ignore[dict-item]
    ingest = MqttIngest(settings, ingestor)
    ingest.start()
    ingest.wait_connected(10)
    time.sleep(0.5)
    ingest.stop()  # subscribed with a kept session: the broker queues what comes next
    publish(port, messages)
    timed = _TimedIngest(settings, ingestor)
    tuning = tune_gc(settings.gc_young_threshold)
    try:
        started = time.perf_counter()
        timed.start()
        while timed.handled < len(messages) and time.perf_counter() - started < 600:
            time.sleep(0.001)
        finished = time.perf_counter()
    finally:
        restore_gc(tuning)
    handled = timed.handled
    timed.stop()
    series.close()
    state.dispose()
    elapsed = finished - (timed.first or started)
    return handled / elapsed if elapsed > 0 else 0.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--facts", type=int, default=20_000)
    parser.add_argument("--skip-victoria", action="store_true")
    args = parser.parse_args()
    messages = payloads(args.facts)
    work = Path(tempfile.mkdtemp(prefix="hallwatch-bench-ingest-"))
    result: dict[str, float | int | None] = {"facts": args.facts}
    with Mosquitto(extra_config=BROKER_CONFIG) as broker:
        result["bare_subscriber_msgs_per_s"] = round(bare_subscriber(broker.port, messages))
        print(f"bare subscriber: {result['bare_subscriber_msgs_per_s']} msgs/s", flush=True)
        result["bare_wire_subscriber_msgs_per_s"] = round(
            bare_wire_subscriber(broker.port, messages)
        )
        print(
            f"bare wire subscriber: {result['bare_wire_subscriber_msgs_per_s']} msgs/s", flush=True
        )
        sqlite_series = SqliteTimeSeriesStore(work / "series.sqlite")
        rate = aggregator_rate(broker.port, messages, sqlite_series, work / "state-a.sqlite")
        result["facts_per_s_sqlite"] = round(rate)
        print(f"aggregator, SQLite series: {result['facts_per_s_sqlite']} facts/s", flush=True)
        result["facts_per_s_victoriametrics"] = None
        if not args.skip_victoria:
            with VictoriaMetrics() as vm:
                store = LineProtocolStore(vm.url, flavour="victoriametrics")
                rate = aggregator_rate(broker.port, messages, store, work / "state-b.sqlite")
                result["facts_per_s_victoriametrics"] = round(rate)
            print(f"aggregator, VictoriaMetrics: {round(rate)} facts/s", flush=True)
    sqlite = float(result["facts_per_s_sqlite"] or 0)
    result["sqlite_vs_bare"] = round(sqlite / float(result["bare_subscriber_msgs_per_s"] or 1), 3)
    wire = float(result["bare_wire_subscriber_msgs_per_s"] or 1)
    result["sqlite_vs_bare_wire"] = round(sqlite / wire, 3)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
