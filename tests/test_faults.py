"""Fault tests: nothing the edge produced is lost, nothing is stored twice.

- The broker stops for a while in the middle of a run and comes back.
- The edge process is killed with SIGKILL while facts wait in its outbox, and restarted.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from ruamel.yaml import YAML

from aggregator.service import AggregatorService
from aggregator.store.state import SeenFact
from edge.comms.mqtt_publisher import BrokerSettings, OutboxPublisher
from edge.outbox import Outbox
from hallwatch.config import HallConfig
from hallwatch.contract import StatsBody, StatsFact, encode, fact_topic
from tests.conftest import build_hall
from tests.support.hall_scene import scene_hall, write_short_video
from tests.support.mosquitto import Mosquitto, find_mosquitto
from tests.support.running import start_aggregator, wait_until

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parents[1]
ALL_TIME = {"start": datetime(2000, 1, 1, tzinfo=UTC), "end": datetime(2100, 1, 1, tzinfo=UTC)}


@pytest.fixture
def broker() -> Iterator[Mosquitto]:
    """A broker of this test's own, persistent like a production one, so it can restart."""
    if find_mosquitto() is None:
        pytest.skip("mosquitto is not installed")
    with Mosquitto(persistence=True) as mosq:
        yield mosq


def stored_ids(service: AggregatorService, hall: str) -> set[str]:
    with service.state.session() as session:
        return {row.id for row in session.query(SeenFact).filter(SeenFact.hall == hall)}


def _stats_fact(hall: str, i: int) -> StatsFact:
    return StatsFact(
        hall=hall,
        source=f"edge-{hall}",
        body=StatsBody(
            interval_s=1,
            cameras_online=1,
            cameras_total=1,
            frames_looked=i,
            crops_inferred=0,
            crops_skipped=0,
            inference_ms_mean=0,
            outbox_depth=0,
        ),
    )


def test_broker_outage_loses_nothing_and_stores_everything_once(
    broker: Mosquitto, tmp_path: Path, unique_id: Callable[[str], str]
) -> None:
    hall_id = unique_id("outage")
    service = start_aggregator(tmp_path, build_hall(hall_id), broker.port)
    outbox = Outbox(tmp_path / "outbox.sqlite")
    publisher = OutboxPublisher(
        outbox, BrokerSettings(port=broker.port), hall=hall_id, source=f"edge-{hall_id}"
    )
    publisher.start()
    written: list[str] = []

    def produce() -> None:
        for i in range(600):
            fact = _stats_fact(hall_id, i)
            outbox.append(fact.id, fact_topic(hall_id, fact.kind), encode(fact))
            written.append(fact.id)
            time.sleep(0.01)

    producer = threading.Thread(target=produce)
    try:
        producer.start()
        time.sleep(1.5)
        broker.stop()
        time.sleep(3.0)  # the edge keeps producing; its outbox holds the facts
        assert outbox.depth() > 0
        broker.start()
        producer.join()
        wait_until(lambda: len(stored_ids(service, hall_id)) >= 600, 60, "all facts stored")
        wait_until(lambda: outbox.depth() == 0, 10, "the outbox to drain")
        stored = stored_ids(service, hall_id)
        points = service.series.query("edge_pipeline", hall=hall_id, **ALL_TIME)
    finally:
        publisher.stop()
        service.stop()
    assert stored == set(written)
    assert len(points) == len(written) == 600
    assert sorted(p.fields["frames_looked"] for p in points) == list(range(600))


def _write_yaml(config: HallConfig, path: Path) -> Path:
    data = config.model_dump(mode="json", context={"reveal_secrets": True}, exclude_none=True)
    with path.open("w") as out:
        YAML(typ="safe").dump(data, out)
    return path


def _start_edge(config_path: Path, log: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "hallwatch.cli", "edge", "--config", str(config_path)],
        cwd=REPO,
        stdout=log.open("ab"),
        stderr=subprocess.STDOUT,
    )


def test_edge_killed_with_sigkill_replays_its_outbox_after_restart(
    broker: Mosquitto, tmp_path: Path, unique_id: Callable[[str], str]
) -> None:
    outbox_path = tmp_path / "edge-outbox.sqlite"
    hall = scene_hall(
        unique_id("kill"),
        str(write_short_video(tmp_path)),
        mqtt_port=broker.port,
        outbox=outbox_path,
        summary_interval_s=5.0,
    )
    config_path = _write_yaml(hall, tmp_path / "hall.yaml")
    hall_id = hall.hall.id
    service = start_aggregator(tmp_path, hall, broker.port)
    log = tmp_path / "edge.log"
    edge = _start_edge(config_path, log)
    try:
        wait_until(lambda: len(stored_ids(service, hall_id)) >= 4, 40, "the edge's first facts")
        broker.stop()
        time.sleep(7.0)  # presence summaries pile up in the outbox
        os.kill(edge.pid, signal.SIGKILL)
        edge.wait()
        pending = {m.fact_id for m in Outbox(outbox_path).pending(limit=100_000)}
        assert pending, "the edge produced no facts while the broker was down"
        assert not pending & stored_ids(service, hall_id)
        broker.start()
        edge = _start_edge(config_path, log)
        wait_until(lambda: pending <= stored_ids(service, hall_id), 40, "the outbox replay")
        points = [
            point
            for measurement in ("post_presence", "device_status", "edge_pipeline")
            for point in service.series.query(measurement, hall=hall_id, **ALL_TIME)
        ]
    finally:
        edge.send_signal(signal.SIGTERM)
        edge.wait(timeout=20)
        service.stop()
    ids = [p.id for p in points]
    assert len(ids) == len(set(ids)), "a fact was stored twice"
    assert pending <= set(ids), log.read_text()[-2000:]
