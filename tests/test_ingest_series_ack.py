"""When facts are acknowledged to the broker, with the time series on VictoriaMetrics
(aggregator/mqtt_ingest.py, aggregator/store/line_protocol.py): by default once their state
is stored (ingest goes on while the server is down); with ``series_ack_when_written`` only
once their points are on the server (an aggregator that stops meanwhile loses no point)."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from aggregator.ingest import Ingestor
from aggregator.mqtt_ingest import MqttIngest
from aggregator.settings import AggregatorSettings
from aggregator.store.line_protocol import LineProtocolStore
from aggregator.store.points import QueuedSeriesStore
from aggregator.store.state import StateStore
from aggregator.store.timeseries import SqliteTimeSeriesStore
from hallwatch.contract import PostState, PresenceBody, PresenceFact, encode, fact_topic
from tests.conftest import build_hall
from tests.support.mosquitto import Mosquitto, find_mosquitto, publish
from tests.support.running import wait_until
from tests.support.victoria import VictoriaMetrics, find_victoria

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(find_mosquitto() is None, reason="mosquitto is not installed"),
    pytest.mark.skipif(find_victoria() is None, reason="victoria-metrics is not installed"),
]

T0 = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1)
FACTS = 6


def _facts(hall: str) -> list[bytes]:
    return [
        encode(
            PresenceFact(
                hall=hall, source="edge-1", ts=T0 + timedelta(seconds=10 * i),
                body=PresenceBody(camera="c1", post="w1", window="1", state=PostState.ON_POST,
                                  since=T0, summary=True, score=0.9),
            )
        )
        for i in range(FACTS)
    ]  # fmt: skip


def _store(server: VictoriaMetrics) -> LineProtocolStore:
    return LineProtocolStore(
        server.url,
        flavour="victoriametrics",
        batch_size=1000,  # never full here: only written() makes the sender go early
        flush_interval_s=30.0,
        backoff_initial_s=0.05,
        backoff_max_s=0.2,
        request_timeout_s=2.0,
    )


@pytest.fixture(scope="module")
def broker() -> Iterator[Mosquitto]:
    """A broker of this module's own: no retained edge status of other tests' halls
    (the ingest would count those among the messages it acknowledged)."""
    with Mosquitto() as server:
        yield server


def _settings(port: int, client_id: str, folder: Path, **options: Any) -> AggregatorSettings:
    return AggregatorSettings(
        database_url=f"sqlite:///{folder / 'state.sqlite'}",
        mqtt_host="127.0.0.1",
        mqtt_port=port,
        mqtt_client_id=client_id,
        mqtt_protocol="3.1.1",
        http_port=0,
        **options,
    )


def test_by_default_facts_are_acknowledged_while_the_server_is_down(
    broker: Mosquitto, unique_id: Callable[[str], str], tmp_path: Path
) -> None:
    hall = unique_id("h-ack")
    settings = _settings(broker.port, unique_id("agg-ack"), tmp_path)
    state = StateStore(settings.database_url)
    state.create_all()
    with VictoriaMetrics() as server:
        server.stop()
        store = _store(server)
        ingest = MqttIngest(settings, Ingestor(state, store, {hall: build_hall(hall)}))
        ingest.start()
        try:
            assert ingest.wait_connected(10)
            publish(broker.port, [(fact_topic(hall, "presence"), f) for f in _facts(hall)])
            wait_until(lambda: ingest.handled == FACTS, 10, "the facts acknowledged")
            assert state.seen_count(hall) == FACTS and not store.written(store.mark())
        finally:
            ingest.stop()
            store.close(timeout=0.2)
        assert store.lost == FACTS  # the price: their points
    state.dispose()


def test_facts_are_acknowledged_once_their_points_are_on_the_server(
    broker: Mosquitto, unique_id: Callable[[str], str], tmp_path: Path
) -> None:
    hall = unique_id("h-ack")
    client_id = unique_id("agg-ack")
    settings = _settings(broker.port, client_id, tmp_path, series_ack_when_written=True)
    state = StateStore(settings.database_url)
    state.create_all()
    halls: dict[str, Any] = {hall: build_hall(hall)}
    with VictoriaMetrics() as server:
        server.stop()  # the time-series server is down
        store = _store(server)
        first = MqttIngest(settings, Ingestor(state, store, halls))
        first.start()
        try:
            assert first.wait_connected(10)
            publish(broker.port, [(fact_topic(hall, "presence"), f) for f in _facts(hall)])
            wait_until(lambda: state.seen_count(hall) == FACTS, 10, "the facts' state")
            assert not store.written(store.mark())
            assert first.handled == 0  # stored, but their points are not: unacknowledged
        finally:
            first.stop()
            store.close(timeout=0.2)  # the aggregator stops: the queued points are lost
        assert store.lost == FACTS

        server.start()
        again = _store(server)
        second = MqttIngest(settings, Ingestor(state, again, halls))
        second.start()  # same client id: the broker delivers the facts again
        try:
            wait_until(lambda: second.handled == FACTS, 15, "the facts acknowledged")
            assert again.sent == FACTS  # sent at once, not after the 30 s flush interval
            server.force_flush()
            end = T0 + timedelta(minutes=5)
            points = again.query("post_presence", hall=hall, start=T0, end=end)
            assert len(points) == FACTS
        finally:
            second.stop()
            again.close()
    state.dispose()


def test_only_queued_stores_hold_acknowledgements(tmp_path: Path) -> None:
    embedded = SqliteTimeSeriesStore(tmp_path / "series.sqlite")
    try:
        assert not isinstance(embedded, QueuedSeriesStore)  # writes before returning
    finally:
        embedded.close()
    queued = LineProtocolStore("http://127.0.0.1:9", flavour="victoriametrics")
    try:
        assert isinstance(queued, QueuedSeriesStore)
        assert queued.mark() == 0 and queued.written(0)
    finally:
        queued.close(timeout=0.1)


def test_the_setting_is_said_to_be_ignored_with_the_embedded_store(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    settings = _settings(1, "agg-embedded", tmp_path, series_ack_when_written=True)
    state = StateStore(settings.database_url)
    embedded = SqliteTimeSeriesStore(tmp_path / "series.sqlite")
    try:
        with caplog.at_level(logging.WARNING, logger="aggregator.mqtt_ingest"):
            MqttIngest(settings, Ingestor(state, embedded, {}))
        assert "series_ack_when_written ignored" in caplog.text
    finally:
        embedded.close()
        state.dispose()
