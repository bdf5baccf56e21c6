"""A busy day of a 40-window hall, replayed through a real Mosquitto: edge feeds → facts →
aggregator register, checked against the independent oracle.

The generated log (``tests/support/queue_day.py``: 3,000+ tickets, ratings, returning
cases, with malformed and duplicated messages mixed in) is published as the queue machine
and the evaluators would; the edge pieces a hall with feeds runs (feed runner, queue and
evaluator feeds, feed store, outbox, publisher) turn it into facts on the broker; a real
aggregator (``start_aggregator``, in its own process so that the edge and the aggregator
each get one of the two cores) opens 异常办件. The register must hold exactly the
anomalies the oracle (``tests/support/queue_oracle.py``, written from docs/cases.md
alone) computes — same keys, windows, opening times, case numbers and trip counts — the
bad messages must be dead-lettered and the duplicates dropped, and no raw ID number may be
anywhere: not in the edge's files, the facts, the aggregator's database or the logs.
"""

from __future__ import annotations

import logging
import re
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from aggregator.cases.models import Anomaly, AnomalyEvidence
from aggregator.store.state import SeenFact, StateStore
from edge.comms.mqtt_publisher import BrokerSettings, OutboxPublisher
from edge.feeds.base import FeedStore
from edge.feeds.queue_feed import QueueFeed
from edge.feeds.ratings import EvaluatorFeed
from edge.feeds.runner import FeedRunner
from edge.outbox import Outbox
from hallwatch.contract import Fact, encode, fact_topic
from tests.support.mosquitto import Mosquitto
from tests.support.queue_day import generate_day, hall_config, policy, with_noise
from tests.support.queue_oracle import ExpectedAnomaly, expected_anomalies
from tests.support.running import wait_until

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]  # ~60 s idle, ~110 s loaded
REPO = Path(__file__).resolve().parents[1]


_AGGREGATOR = """
import logging, sys
from pathlib import Path
from tests.support.queue_day import hall_config
from tests.support.running import start_aggregator
logging.basicConfig(level=logging.INFO, stream=sys.stderr)
folder, hall_id, port, queue_topic, evaluator_topic = sys.argv[1:6]
hall = hall_config(hall_id, queue_topic=queue_topic, evaluator_topic=evaluator_topic,
                   mqtt_port=int(port), folder=Path(folder) / "edge")
service = start_aggregator(Path(folder), hall, int(port))
print("ready", flush=True)
sys.stdin.read()
service.stop()
"""


class _AggregatorProcess:
    """A real aggregator (``start_aggregator``) in its own process, so the edge and the
    aggregator each get a core; its state is read from its SQLite file."""

    def __init__(self, folder: Path, hall: str, port: int, topics: dict[str, str]) -> None:
        self.log_path = folder / "aggregator.log"
        with self.log_path.open("wb") as log:
            self._proc = subprocess.Popen(
                [sys.executable, "-c", _AGGREGATOR, str(folder), hall, str(port),
                 topics["queue"], topics["evaluators"]],
                cwd=REPO, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log,
            )  # fmt: skip
        assert self._proc.stdout is not None
        ready = self._proc.stdout.readline()
        assert ready.strip() == b"ready", self.log_path.read_text(errors="replace")[-3000:]
        self.state = StateStore(f"sqlite:///{folder / 'state.sqlite'}")

    def stop(self) -> None:
        if self._proc.stdin is not None and not self._proc.stdin.closed:
            self._proc.stdin.close()
        try:
            self._proc.wait(30)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait(10)
        self.state.engine.dispose()


def _publish_all(port: int, topics: dict[str, str], messages: list[tuple[str, str]]) -> None:
    """Publish like the devices would: QoS 1, in order, many in flight."""
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"devices-{time.time_ns()}")
    client.max_inflight_messages_set(200)
    client.max_queued_messages_set(0)
    client.connect("127.0.0.1", port)
    client.loop_start()
    try:
        infos = [client.publish(topics[feed], text.encode(), qos=1) for feed, text in messages]
        for info in infos:
            info.wait_for_publish(timeout=60)
    finally:
        client.disconnect()
        client.loop_stop()


def _registered(state: StateStore, hall: str) -> set[ExpectedAnomaly]:
    """The register's anomalies in the oracle's terms (trip counts from their evidence)."""
    with state.read_session() as session:
        rows = session.query(Anomaly).filter(Anomaly.hall == hall).all()
        trips: dict[str, int] = {}
        for anomaly_id, payload in (
            session.query(AnomalyEvidence.anomaly_id, AnomalyEvidence.payload)
            .join(Anomaly, Anomaly.id == AnomalyEvidence.anomaly_id)
            .filter(Anomaly.hall == hall, Anomaly.kind == "trips_over_promise")
            .all()
        ):
            body = payload.get("body", payload) if isinstance(payload, dict) else {}
            if isinstance(body, dict) and isinstance(body.get("trips"), int):
                trips[anomaly_id] = max(trips.get(anomaly_id, 0), body["trips"])
        out: set[ExpectedAnomaly] = set()
        for row in rows:
            if row.kind == "wait_over_limit":
                key, case_no = f"{row.ticket_id}#{row.leg}", None
            elif row.kind == "trips_over_promise":
                key, case_no = str(row.case_ref), row.case_no
            else:
                key, case_no = str(row.rating_id), row.case_no
            out.add(
                ExpectedAnomaly(row.kind, key, row.window, row.opened, case_no, trips.get(row.id))
            )
        return out


def _diff(expected: set[ExpectedAnomaly], got: set[ExpectedAnomaly]) -> str:
    missing = sorted(expected - got)[:15]
    extra = sorted(got - expected)[:15]
    lines = [f"{len(expected - got)} missing, {len(got - expected)} unexpected"]
    lines += [f"  missing:    {a}" for a in missing]
    lines += [f"  unexpected: {a}" for a in extra]
    return "\n".join(lines)


_ID_LIKE = re.compile(rb"(?=(\d{6} ?\d{8} ?\d{3}[\dXx]))")


def _raw_ids_in(blob: bytes, ids: list[str]) -> list[str]:
    """The ID numbers (as sent, or normalised) found in ``blob``, in one pass."""
    found = {m.group(1).decode().upper().replace(" ", "") for m in _ID_LIKE.finditer(blob)}
    return [i for i in ids if i.upper().replace(" ", "") in found]


def test_a_busy_day_opens_exactly_the_oracles_anomalies_and_leaks_no_id_number(
    mosquitto: Mosquitto,
    tmp_path: Path,
    unique_id: Callable[[str], str],
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
) -> None:
    caplog.set_level(logging.INFO)
    hall_id = unique_id("day")
    topics = {"queue": f"devices/{hall_id}/queue", "evaluators": f"devices/{hall_id}/evaluators"}
    hall = hall_config(
        hall_id,
        queue_topic=topics["queue"],
        evaluator_topic=topics["evaluators"],
        mqtt_port=mosquitto.port,
        folder=tmp_path / "edge",
    )
    day = generate_day()
    expected = expected_anomalies(day.messages, policy())
    noisy, malformed, duplicates = with_noise(day.messages, day.id_numbers[0])

    aggregator = _AggregatorProcess(tmp_path, hall_id, mosquitto.port, topics)
    store = FeedStore(hall.edge.feed_state_path)
    outbox = Outbox(hall.edge.outbox_path)
    broker = BrokerSettings(port=mosquitto.port)
    publisher = OutboxPublisher(outbox, broker, hall=hall_id, source=hall.edge.source)
    written: list[Fact] = []

    def write(fact: Fact) -> None:
        outbox.append(fact.id, fact_topic(fact.hall, fact.kind), encode(fact))
        written.append(fact)

    queue_feed, evaluator_feed = QueueFeed(hall, store), EvaluatorFeed(hall, store)
    runner = FeedRunner(
        [queue_feed, evaluator_feed], broker, write, client_id=f"{hall_id}-feeds", store=store
    )
    publisher.start()
    runner.start()
    try:
        wait_until(lambda: runner.ready, 10, "the feed runner's subscriptions")
        started = time.monotonic()
        _publish_all(mosquitto.port, topics, noisy)
        published_s = time.monotonic() - started
        wait_until(lambda: runner.handled >= len(noisy), 150, "the edge to handle every message")
        edge_s = time.monotonic() - started
        wait_until(lambda: outbox.depth() == 0, 60, "the outbox to drain")

        def stored() -> int:
            with aggregator.state.read_session() as session:
                return session.query(SeenFact).filter(SeenFact.hall == hall_id).count()

        wait_until(lambda: stored() >= len(written), 150, "the aggregator to ingest every fact")
        total_s = time.monotonic() - started
        got = _registered(aggregator.state, hall_id)
        dead = store.dead_letters()
    finally:
        runner.stop()
        publisher.stop()
        store.close()
        outbox.close()
        aggregator.stop()

    kinds = Counter(a.kind for a in got)
    with capsys.disabled():
        print(
            f"\nqueue day: {day.tickets} tickets ({day.busy_tickets} on the busy day), "
            f"{len(noisy)} messages ({malformed} malformed, {duplicates} duplicated), "
            f"{len(written)} facts, anomalies {dict(kinds)}; published in {published_s:.1f} s, "
            f"edge done in {edge_s:.1f} s, aggregator done in {total_s:.1f} s "
            f"({len(written) / total_s:.0f} facts/s end to end)"
        )
    assert got == expected, _diff(expected, got)
    assert len(dead) == malformed, [(d.feed, d.reason) for d in dead]
    assert queue_feed.counts["duplicate"] + evaluator_feed.counts["duplicate"] == duplicates

    ids = day.id_numbers
    assert _raw_ids_in("".join(text for _, text in noisy).encode(), ids) == ids  # the needles
    leaks = {
        "facts": _raw_ids_in(b"\n".join(encode(f) for f in written), ids),  # as published
        "edge log": _raw_ids_in(caplog.text.encode(), ids),
    }
    files = sorted((tmp_path / "edge").rglob("*")) + sorted(tmp_path.glob("state*"))
    files.append(aggregator.log_path)
    for path in files:
        if path.is_file():
            leaks[path.name] = _raw_ids_in(path.read_bytes(), ids)
    assert {
        "edge-feeds.sqlite",
        "edge-outbox.sqlite",
        "state.sqlite",
        "state-series.sqlite",
    } <= set(leaks)
    assert not any(leaks.values()), {k: v for k, v in leaks.items() if v}
