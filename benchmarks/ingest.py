"""Ingest rate of one aggregator process: facts per second from the broker into the stores.

Usage::

    .venv/bin/python benchmarks/ingest.py [--facts 20000] [--rounds 3] [--skip-victoria]

One Mosquitto on loopback (``tests/support/mosquitto.py``, with ``max_inflight_messages
8000`` as ``deploy/mosquitto/hallwatch.conf``). A publisher sends ``--facts`` presence
facts (QoS 1, the edge's topics, 40 posts of one hall, summaries and changes mixed) as
fast as the broker takes them, and four consumers are timed from their first message to
their last, each in its own run on the same broker, in ``--rounds`` rounds (one
VictoriaMetrics serves them all):

1. a bare paho subscriber (QoS 1, counts messages, nothing else): the usual Python MQTT
   client, the issue's reference;
2. a bare :class:`~aggregator.mqtt_wire.subscriber.FactSubscriber` (the aggregator's own
   reader, acknowledging each read at once): what the broker and the wire can deliver;
3. the aggregator's ingest as ``hallwatch aggregator`` wires it
   (:class:`~aggregator.service.AggregatorService`, not started, so no ticker, HTTP
   server or MQTT alert publisher runs beside it: ``MqttIngest`` → its
   ``Ingestor`` with the off-post, device and zone rules, the 异常办件 register, the
   ledger's retention and the alert sinks and routing: validate, dedup ledger,
   time-series points, post state, alerts opened and resolved) on SQLite state + the
   embedded SQLite time-series store, with the garbage collector tuned as that process
   tunes it (``aggregator/runtime.py``; the bare subscribers keep Python's defaults, as a
   plain client script would). Every post is staffed for five minutes and away for five,
   so the off-post clocks start and stop as the facts go; the facts are dated T0, weeks
   before the run, so each absence is past its threshold when judged and opens an alert
   that its end closes, as in a backlog replayed after an outage;
4. the same with the time series in a real VictoriaMetrics (``LineProtocolStore``).

The publisher's messages are queued in the broker (persistent session of the consumer,
subscribed before publishing), so the consumer is measured draining a backlog at full
speed. A shared 2-core machine's speed swings by a third to a half within minutes, so each
figure is the median of its rounds, and the aggregator's shares of the bare subscribers are
the medians of each round's ratio. The result names the machine's CPU: the figures are the
machine's as much as the code's. The last line is one JSON object::

    {"facts": …, "rounds": …, "bare_subscriber_msgs_per_s": …,
     "bare_wire_subscriber_msgs_per_s": …, "facts_per_s_sqlite": …,
     "facts_per_s_victoriametrics": …, "cpu_us_per_fact_sqlite": …,
     "cpu_us_per_fact_victoriametrics": …, "sqlite_vs_bare": …, "sqlite_vs_bare_wire": …,
     "runs": {each figure: [its value in each round]}, "machine": {"cpu": …, "cpus": …}}

``cpu_us_per_fact_*`` is the aggregator process's CPU time per fact during its drain:
on a shared machine whose CPU others take, the wall time per fact grows and this does
not, so it tells a slow machine from a slower aggregator.

The issue's target is ≥ 20,000 facts/s and ≥ 80 % of the bare subscriber.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from _machine import machine  # noqa: E402

from aggregator.ingest import Ingestor  # noqa: E402
from aggregator.mqtt_ingest import MqttIngest  # noqa: E402
from aggregator.mqtt_wire.subscriber import FactSubscriber, Received, WireOptions  # noqa: E402
from aggregator.runtime import restore_gc, tune_gc  # noqa: E402
from aggregator.service import AggregatorService  # noqa: E402
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
BROKER_CONFIG = ["max_inflight_messages 8000"]
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


def bare_subscriber(port: int, messages: list[bytes], client_id: str = "bench-bare") -> float:
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
        client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, clean_session=clean)
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


def bare_wire_subscriber(port: int, messages: list[bytes], client_id: str = "bench-wire") -> float:
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

    options = WireOptions(host="127.0.0.1", port=port, client_id=client_id)
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
    """The aggregator's MQTT ingest, noting when the first message arrives and when the
    last one is stored (acknowledged), as the bare subscribers note theirs: the caller
    waits on :attr:`finished` instead of polling (a thread woken every millisecond takes
    the interpreter lock from the ingest a thousand times a second)."""

    first: float | None = None
    last: float | None = None
    target = 0

    def __init__(self, settings: AggregatorSettings, ingestor: Ingestor) -> None:
        super().__init__(settings, ingestor)
        self.finished = threading.Event()

    def _received(self, messages: list[Received]) -> None:
        if self.first is None:
            self.first = time.perf_counter()
        super()._received(messages)

    def _acknowledge(self, done: list[Received]) -> None:
        super()._acknowledge(done)
        self._check_finished()

    def _ack_written(self) -> None:
        super()._ack_written()
        self._check_finished()

    def _check_finished(self) -> None:
        if self.last is None and self.target and self.handled >= self.target:
            self.last = time.perf_counter()
            self.finished.set()


def aggregator_rate(
    port: int, messages: list[bytes], series: TimeSeriesStore, db: Path
) -> tuple[float, float]:
    """Facts per second the aggregator's ingest drains from a queued backlog, from the
    first message received to the last one stored (as the bare subscribers are timed), in
    a process tuned as ``hallwatch aggregator`` tunes its own (``aggregator/runtime.py``),
    and the process's CPU time per fact meanwhile (µs; its threads only: not the broker's
    nor VictoriaMetrics'). Where the machine's CPU is taken by others, the wall time per
    fact grows and the CPU time does not."""
    settings = AggregatorSettings(
        database_url=f"sqlite:///{db}",
        mqtt_host="127.0.0.1",
        mqtt_port=port,
        mqtt_client_id=f"bench-agg-{db.parent.name}-{db.stem}",
        mqtt_protocol="3.1.1",
        http_port=0,
        ledger_retention_days=3650,  # the facts are dated T0 (a Monday morning), for years
    )
    state = StateStore(settings.database_url)
    state.create_all()
    service = AggregatorService(
        settings,
        {HALL: hall_config()},  # type: ignore[dict-item]
        state=state,
        series=series,
        mqtt=False,
    )
    ingestor = service.ingestor
    ingest = MqttIngest(settings, ingestor)
    ingest.start()
    ingest.wait_connected(10)
    time.sleep(0.5)
    ingest.stop()  # subscribed with a kept session: the broker queues what comes next
    publish(port, messages)
    timed = _TimedIngest(settings, ingestor)
    timed.target = len(messages)
    tuning = tune_gc(settings.gc_young_threshold)
    try:
        started = time.perf_counter()
        cpu_started = time.process_time()
        timed.start()
        timed.finished.wait(600)
        finished = timed.last or time.perf_counter()
        cpu = time.process_time() - cpu_started
    finally:
        restore_gc(tuning)
    handled = timed.handled
    timed.stop()
    series.close()
    state.dispose()
    elapsed = finished - (timed.first or started)
    return (handled / elapsed if elapsed > 0 else 0.0), cpu / max(1, handled) * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--facts", type=int, default=20_000)
    parser.add_argument("--skip-victoria", action="store_true")
    parser.add_argument(
        "--rounds", type=int, default=3, help="rounds of the four consumers (medians reported)"
    )
    args = parser.parse_args()
    messages = payloads(args.facts)
    work = Path(tempfile.mkdtemp(prefix="hallwatch-bench-ingest-"))
    runs: dict[str, list[float]] = {name: [] for name in CONSUMERS}
    victoria = contextlib.nullcontext() if args.skip_victoria else VictoriaMetrics()
    with Mosquitto(extra_config=BROKER_CONFIG) as broker, victoria as vm:
        for turn in range(1, args.rounds + 1):
            folder = work / f"round-{turn}"  # fresh stores and client ids (no stale session)
            folder.mkdir()
            for name, rate in one_round(broker.port, messages, folder, vm):
                runs[name].append(round(rate))
                print(f"round {turn}, {CONSUMERS[name]}: {round(rate)}", flush=True)
    print(json.dumps({**summarise(args.facts, runs), "machine": machine()}))


def one_round(
    port: int, messages: list[bytes], folder: Path, vm: VictoriaMetrics | None
) -> Iterator[tuple[str, float]]:
    """Each consumer's rate in turn, its stores in ``folder`` (VictoriaMetrics: skipped).

    Client ids are new every round, and each consumer's kept session is ended after its
    run: a kept session of an earlier run is queued the messages published since, which
    its next start would count (or ingest untimed).
    """
    bare = f"bench-bare-{folder.name}"
    yield "bare_subscriber_msgs_per_s", bare_subscriber(port, messages, bare)
    forget_session(port, bare)
    wire = f"bench-wire-{folder.name}"
    yield "bare_wire_subscriber_msgs_per_s", bare_wire_subscriber(port, messages, wire)
    forget_session(port, wire)
    sqlite_series = SqliteTimeSeriesStore(folder / "series.sqlite")
    rate, cpu = aggregator_rate(port, messages, sqlite_series, folder / "a.sqlite")
    forget_session(port, f"bench-agg-{folder.name}-a")
    yield "facts_per_s_sqlite", rate
    yield "cpu_us_per_fact_sqlite", cpu
    if vm is not None:
        store = LineProtocolStore(vm.url, flavour="victoriametrics")
        rate, cpu = aggregator_rate(port, messages, store, folder / "b.sqlite")
        forget_session(port, f"bench-agg-{folder.name}-b")
        yield "facts_per_s_victoriametrics", rate
        yield "cpu_us_per_fact_victoriametrics", cpu


def forget_session(port: int, client_id: str) -> None:
    """End a consumer's kept session (a clean connect with its id), so that the broker
    does not queue the next runs' messages for it."""
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, clean_session=True)
    client.connect("127.0.0.1", port)
    client.loop(0.5)
    client.disconnect()


CONSUMERS = {
    "bare_subscriber_msgs_per_s": "bare subscriber (msgs/s)",
    "bare_wire_subscriber_msgs_per_s": "bare wire subscriber (msgs/s)",
    "facts_per_s_sqlite": "aggregator, SQLite series (facts/s)",
    "facts_per_s_victoriametrics": "aggregator, VictoriaMetrics (facts/s)",
    "cpu_us_per_fact_sqlite": "aggregator, SQLite series (CPU µs a fact)",
    "cpu_us_per_fact_victoriametrics": "aggregator, VictoriaMetrics (CPU µs a fact)",
}
"""Each figure a round measures (the aggregator's CPU time beside its rates)."""


def summarise(facts: int, runs: dict[str, list[float]]) -> dict[str, object]:
    """The result line: each consumer's median over the rounds, the aggregator's share of
    the bare subscribers (median of each round's ratio: the runs of a round are minutes
    apart, the rounds further), and every round's figures.

    >>> summarise(10, {"bare_subscriber_msgs_per_s": [10, 30, 20],
    ...                "bare_wire_subscriber_msgs_per_s": [100, 100, 100],
    ...                "facts_per_s_sqlite": [9, 12, 30], "facts_per_s_victoriametrics": [],
    ...                "cpu_us_per_fact_sqlite": [80, 70, 90],
    ...                "cpu_us_per_fact_victoriametrics": []})
    ... # doctest: +NORMALIZE_WHITESPACE
    {'facts': 10, 'rounds': 3, 'bare_subscriber_msgs_per_s': 20,
     'bare_wire_subscriber_msgs_per_s': 100, 'facts_per_s_sqlite': 12,
     'facts_per_s_victoriametrics': None, 'cpu_us_per_fact_sqlite': 80,
     'cpu_us_per_fact_victoriametrics': None, 'sqlite_vs_bare': 0.9,
     'sqlite_vs_bare_wire': 0.12,
     'runs': {'bare_subscriber_msgs_per_s': [10, 30, 20],
              'bare_wire_subscriber_msgs_per_s': [100, 100, 100],
              'facts_per_s_sqlite': [9, 12, 30], 'facts_per_s_victoriametrics': [],
              'cpu_us_per_fact_sqlite': [80, 70, 90], 'cpu_us_per_fact_victoriametrics': []}}
    """
    result: dict[str, object] = {"facts": facts, "rounds": len(runs["facts_per_s_sqlite"])}
    for name in CONSUMERS:
        result[name] = round(statistics.median(runs[name])) if runs[name] else None
    for key, reference in (("sqlite_vs_bare", "bare_subscriber_msgs_per_s"),
                           ("sqlite_vs_bare_wire", "bare_wire_subscriber_msgs_per_s")):  # fmt: skip
        ratios = [
            a / b for a, b in zip(runs["facts_per_s_sqlite"], runs[reference], strict=True) if b
        ]
        result[key] = round(statistics.median(ratios), 3) if ratios else None
    result["runs"] = runs
    return result


if __name__ == "__main__":
    main()
