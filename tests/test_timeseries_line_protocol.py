"""The line-protocol time-series store: against a real VictoriaMetrics, and InfluxDB's
HTTP API answered by a local server with responses in the documented formats."""

from __future__ import annotations

import csv
import io
import json
import logging
import threading
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar
from urllib.parse import parse_qs, urlsplit

import pytest
from pydantic import SecretStr

from aggregator.export import ExportFormat, ExportQuery, export_chunks
from aggregator.export.sources import ExportSource, series_source
from aggregator.service import build_series_store
from aggregator.settings import AggregatorSettings
from aggregator.store.line_protocol import (
    LineProtocolStore,
    SeriesBackpressureError,
    point_timestamp_ns,
    to_line,
)
from aggregator.store.timeseries import (
    MEASUREMENT_DEVICE,
    MEASUREMENT_PRESENCE,
    MEASUREMENT_QUEUE,
    FieldValue,
    Point,
    SqliteTimeSeriesStore,
    facts_to_points,
)
from hallwatch.broker import free_port
from hallwatch.contract import QueueFact
from hallwatch.contract.queue import QueueBody, ServiceQueue
from tests.conftest import build_hall
from tests.support.victoria import VictoriaMetrics, find_victoria

T0 = datetime(2025, 11, 3, 1, 30, tzinfo=UTC)  # 09:30 in the hall (Asia/Shanghai)

needs_victoria = pytest.mark.skipif(
    find_victoria() is None, reason="victoria-metrics is not installed"
)


def _presence(i: int, hall: str = "h1") -> Point:
    return Point(
        MEASUREMENT_PRESENCE,
        {"hall": hall, "camera": "cam1", "post": f"w{i % 3}", "window": f"w{i % 3}"},
        {"on_post": i % 2, "summary": i % 4 == 0, "score": round(0.25 * (i % 4), 2)},
        T0 + timedelta(seconds=10 * i, milliseconds=7),
        f"presence-{i:04d}",
    )


def _device(i: int) -> Point:
    return Point(
        MEASUREMENT_DEVICE,
        {"hall": "h1", "device": "cam1", "kind": "camera"},
        {"online": 0, "reason": "RTSP timeout"},
        T0 + timedelta(seconds=10 * i + 5),
        f"device-{i:04d}",
    )


def _queue_points(n: int) -> list[Point]:
    points: list[Point] = []
    for i in range(n):
        fact = QueueFact(
            hall="h1",
            source="edge1",
            ts=T0 + timedelta(seconds=i),
            body=QueueBody(
                services=[
                    ServiceQueue(service="S01", waiting=i % 7, longest_wait_s=30.0 * i),
                    ServiceQueue(service="S02", waiting=i % 5, longest_wait_s=12.5),
                ]
            ),
        )
        points.extend(facts_to_points(fact))
    return points


def _as_read_back(point: Point, *, numeric_only: bool = True) -> Point:
    """What VictoriaMetrics gives back: no id, milliseconds, floats, no string fields."""
    fields: dict[str, FieldValue] = {
        k: float(v) for k, v in point.fields.items() if not (numeric_only and isinstance(v, str))
    }
    time = point.time.replace(microsecond=point.time.microsecond // 1000 * 1000)
    return replace(point, fields=fields, time=time, id="")


@pytest.fixture(scope="module")
def victoria() -> Iterator[VictoriaMetrics]:
    if find_victoria() is None:
        pytest.skip("victoria-metrics is not installed")
    with VictoriaMetrics() as server:
        yield server


def _vm_store(server: VictoriaMetrics, **options: Any) -> LineProtocolStore:
    defaults: dict[str, Any] = {
        "flavour": "victoriametrics",
        "batch_size": 50,
        "flush_interval_s": 0.05,
        "backoff_initial_s": 0.05,
        "backoff_max_s": 0.2,
        "request_timeout_s": 2.0,
    }
    return LineProtocolStore(server.url, **(defaults | options))


def _samples(server: VictoriaMetrics, match: str) -> dict[tuple[str, str], list[int]]:
    """Timestamps (ms) per (metric name, service) as stored, duplicates included."""
    out: dict[tuple[str, str], list[int]] = {}
    for series in server.export(match, start=T0.timestamp() - 60):
        key = (series["metric"]["__name__"], series["metric"].get("service", ""))
        out.setdefault(key, []).extend(series["timestamps"])
    return out


# -- line protocol ------------------------------------------------------------------------


_AWKWARD_POINTS = [
    Point("post_presence", {"hall": "h1", "post": "w1"}, {"on_post": 1, "summary": True}, T0),
    Point("m", {"b": "2", "a": "1"}, {"z": 1.0, "y": -0.0, "x": 1e16, "w": 2.5e-7}, T0),
    Point("m,with space", {"k=e y": "v,a=l ue"}, {"f, =": 3}, T0),
    Point("m", {"t": "ends\\", "u": "", "v": "新\n行\ttab\rcr"}, {"s": 'q"uo\\te'}, T0),
    Point("m", {"hall": "h"}, {"big": 2**63 - 1, "neg": -5, "no": False}, T0),
    Point("m", {}, {"nan": float("nan"), "inf": float("-inf"), "ok": 0.1}, T0),
    Point("m", {"hall": "h"}, {"text": "", "n": 1}, T0),
    Point("m", {"hall": "h"}, {"nan": float("nan")}, T0),
]


@pytest.mark.parametrize("numeric_only", [False, True])
@pytest.mark.parametrize("point", _AWKWARD_POINTS, ids=lambda p: str(sorted(p.fields)))
def test_line_is_what_influxdb_client_writes(point: Point, numeric_only: bool) -> None:
    """Our formatter (it caches each series' key) against the client library's own."""
    from influxdb_client import Point as ClientPoint
    from influxdb_client import WritePrecision

    point = replace(point, id="fact-1")
    reference = ClientPoint(point.measurement)
    for name, value in point.tags.items():
        reference.tag(name, value)
    for name, value in point.fields.items():
        if not (numeric_only and isinstance(value, str)):
            reference.field(name, value)
    reference.time(point_timestamp_ns(point), WritePrecision.NS)
    expected = reference.to_line_protocol() or None
    assert to_line(point, numeric_only=numeric_only) == expected
    assert to_line(point, numeric_only=numeric_only) == expected  # from the series cache


def test_line_refuses_a_field_that_is_no_field_value() -> None:
    p = Point("m", {"hall": "h"}, {"when": T0}, T0, "f1")  # type: ignore[dict-item]
    with pytest.raises(ValueError, match="'when': datetime is not a field value"):
        to_line(p)


def test_line_is_escaped_and_its_timestamp_is_deterministic() -> None:
    p = Point("rating", {"hall": "h 1", "window": "", "level": "a,b"}, {"s": 'x "y"'}, T0, "f1")
    line = to_line(p)
    assert line is not None
    assert line.startswith('rating,hall=h\\ 1,level=a\\,b s="x \\"y\\"" ')
    assert "window" not in line  # empty tags are left out
    assert to_line(p, numeric_only=True) is None  # nothing numeric left
    ns = point_timestamp_ns(p)
    assert ns == point_timestamp_ns(replace(p, fields={"other": 1}))  # identity: not fields
    assert ns // 1000 == int(T0.timestamp()) * 1_000_000
    offsets = {point_timestamp_ns(replace(p, id=f"fact-{i}")) % 1000 for i in range(50)}
    assert len(offsets) > 40  # facts in the same microsecond rarely share a timestamp
    nan = to_line(replace(p, fields={"a": float("nan"), "b": 2.5}))
    assert nan is not None and " b=2.5 " in nan and "a=" not in nan
    with pytest.raises(ValueError, match="no id"):
        to_line(replace(p, id=""))
    with pytest.raises(ValueError, match="timezone"):
        to_line(replace(p, time=T0.replace(tzinfo=None)))


def test_points_of_one_queue_fact_differ_in_tags() -> None:
    points = _queue_points(3)
    identities = {(p.measurement, tuple(sorted(p.tags.items())), p.time) for p in points}
    assert len(identities) == len(points) == 6


# -- VictoriaMetrics ----------------------------------------------------------------------


@needs_victoria
def test_write_and_read_back(victoria: VictoriaMetrics) -> None:
    points = [_presence(i) for i in range(12)] + [_presence(i, hall="h2") for i in range(3)]
    devices = [_device(i) for i in range(4)]
    store = _vm_store(victoria)
    try:
        store.write(points + devices)
        assert store.flush(10)
        victoria.force_flush()
        end = T0 + timedelta(hours=1)
        got = store.query(MEASUREMENT_PRESENCE, hall="h1", start=T0, end=end)
        assert got == [_as_read_back(p) for p in points[:12]]
        # [start, end): the point at `end` is not in, the one at `start` is
        middle = store.query(
            MEASUREMENT_PRESENCE, hall="h1", start=points[2].time, end=points[5].time
        )
        assert [p.time for p in middle] == [_as_read_back(p).time for p in points[2:5]]
        window = store.query(
            MEASUREMENT_PRESENCE, hall="h1", start=T0, end=end, tags={"post": "w1"}
        )
        assert [p.tags["post"] for p in window] == ["w1"] * 4
        # the string field `reason` is not stored on VictoriaMetrics; `online` is
        got_devices = store.query(MEASUREMENT_DEVICE, hall="h1", start=T0, end=end)
        assert got_devices == [_as_read_back(d) for d in devices]
        assert all(set(d.fields) == {"online"} for d in got_devices)
        assert store.query(MEASUREMENT_PRESENCE, hall="h3", start=T0, end=end) == []
    finally:
        store.close()
    assert (store.sent, store.dropped, store.lost) == (len(points) + len(devices), 0, 0)


@needs_victoria
def test_same_points_written_twice_are_one(victoria: VictoriaMetrics) -> None:
    points = [replace(p, tags=p.tags | {"hall": "twice"}) for p in _queue_points(20)]
    first = _vm_store(victoria)
    first.write(points)
    first.close()
    again = _vm_store(victoria)  # a replay, e.g. after a restart of the aggregator
    again.write(points[::-1])
    again.write(points[:7])
    again.close()
    stored = _samples(victoria, '{__name__=~"queue_.+",hall="twice"}')
    assert sorted(stored) == [
        ("queue_longest_wait_s", "S01"),
        ("queue_longest_wait_s", "S02"),
        ("queue_waiting", "S01"),
        ("queue_waiting", "S02"),
    ]
    for timestamps in stored.values():
        assert len(timestamps) == len(set(timestamps)) == 20
    reader = _vm_store(victoria)
    got = reader.query(MEASUREMENT_QUEUE, hall="twice", start=T0, end=T0 + timedelta(hours=1))
    reader.close()
    assert len(got) == len(points) == 40


@needs_victoria
def test_server_outage_during_writes_loses_nothing(caplog: pytest.LogCaptureFixture) -> None:
    points = [replace(p, tags=p.tags | {"hall": "outage"}) for p in _queue_points(150)]
    with VictoriaMetrics() as server:
        store = _vm_store(server, batch_size=20)
        try:
            store.write(points[:60])
            assert store.flush(10)
            server.stop()
            with caplog.at_level(logging.WARNING, logger="aggregator.store.line_protocol"):
                for i in range(60, 240, 10):
                    store.write(points[i : i + 10])
                assert not store.flush(0.3)  # the server is down: points wait
                assert store.pending > 0
            assert "failed" in caplog.text
            server.start()
            store.write(points[240:])
        finally:
            store.close(timeout=20)
        assert (store.sent, store.dropped, store.lost) == (300, 0, 0)
        stored = _samples(server, '{__name__=~"queue_.+",hall="outage"}')
        assert len(stored) == 4
        for timestamps in stored.values():
            assert len(timestamps) == len(set(timestamps)) == 150


@needs_victoria
def test_columns_read_back_equal_query_and_export_alike(victoria: VictoriaMetrics) -> None:
    points = []
    for i in range(240):  # 2 h 20 min, 3 posts per instant; one camera label has a comma
        p = replace(_presence(i, hall="cols"), time=T0 + timedelta(seconds=105 * (i // 3)))
        tags = p.tags | {"camera": "cam,1" if i % 5 == 0 else "cam2"}
        if i % 4 == 0:
            tags.pop("window")  # an optional tag missing
        points.append(replace(p, tags=tags))
    store = _vm_store(victoria)
    try:
        store.write(points)
        assert store.flush(10)
        victoria.force_flush()
        end = T0 + timedelta(hours=3)
        rows = store.query(MEASUREMENT_PRESENCE, hall="cols", start=T0, end=end)
        assert len(rows) == 240
        chunk = timedelta(minutes=25)
        chunks = list(
            store.read_columns(MEASUREMENT_PRESENCE, hall="cols", start=T0, end=end, chunk=chunk)
        )
        assert len(chunks) == 6 and [p for c in chunks for p in c.to_points()] == rows
        assert str(chunks[0].fields["on_post"].type) == "double"
        window = store.read_columns(MEASUREMENT_PRESENCE, hall="cols", start=T0, end=end,
                                    tags={"post": "w1"})  # fmt: skip
        assert [p for c in window for p in c.to_points()] == [
            p for p in rows if p.tags["post"] == "w1"
        ]
        query = ExportQuery(hall=build_hall("cols"), since=T0, until=end)
        columnar = series_source(store, MEASUREMENT_PRESENCE, query)
        row_wise = series_source(store, MEASUREMENT_PRESENCE, query)
        row_only = ExportSource(row_wise.dataset, row_wise.columns, row_wise.rows)
        got, want = (_csv_rows(source) for source in (columnar, row_only))
        assert got[0] == want[0] and len(got) == len(want) == 241
        assert [[_number(c) for c in r] for r in got] == [[_number(c) for c in r] for r in want]
    finally:
        store.close()


def _csv_rows(source: ExportSource) -> list[list[str]]:
    text = b"".join(export_chunks(source, ExportFormat.CSV)).decode("utf-8-sig")
    return list(csv.reader(io.StringIO(text)))


def _number(cell: str) -> str | float:
    """VictoriaMetrics' values are floats: ``1.0`` (rows) and ``1`` (Arrow) are one value."""
    try:
        return float(cell)
    except ValueError:
        return cell


def test_write_blocks_then_raises_when_the_server_does_not_keep_up(
    caplog: pytest.LogCaptureFixture,
) -> None:
    store = LineProtocolStore(
        f"http://127.0.0.1:{free_port('127.0.0.1')}",  # nothing listens: connection refused
        flavour="victoriametrics",
        max_pending=5,
        write_timeout_s=0.2,
        flush_interval_s=0.01,
        backoff_initial_s=0.05,
    )
    points = [_presence(i) for i in range(8)]
    store.write(points[:5])
    with pytest.raises(SeriesBackpressureError, match="3 of 3 not queued"):
        store.write(points[5:])
    assert store.pending == 5
    with caplog.at_level(logging.ERROR, logger="aggregator.store.line_protocol"):
        store.close(timeout=0.2)
    assert store.lost == 5 and "5 points not written" in caplog.text
    with pytest.raises(RuntimeError, match="closed"):
        store.write(points[:1])


# -- InfluxDB, at its HTTP boundary -------------------------------------------------------

# A /api/v2/query answer in the documented annotated CSV (datatype, group, default
# annotations, one block per table schema), for a query like the store's.
FLUX_CSV = (
    "#datatype,string,long,dateTime:RFC3339,dateTime:RFC3339,dateTime:RFC3339,long,string,"
    "string,string,string,string\r\n"
    "#group,false,false,true,true,false,false,true,true,true,true,true\r\n"
    "#default,_result,,,,,,,,,,\r\n"
    ",result,table,_start,_stop,_time,_value,_field,_measurement,device,hall,kind\r\n"
    ",,0,2025-11-03T00:00:00Z,2025-11-04T00:00:00Z,2025-11-03T01:30:05.000000123Z,0,online,"
    "device_status,cam1,h1,camera\r\n"
    ",,0,2025-11-03T00:00:00Z,2025-11-04T00:00:00Z,2025-11-03T01:30:15.250000987Z,1,online,"
    "device_status,cam1,h1,camera\r\n"
    "\r\n"
    "#datatype,string,long,dateTime:RFC3339,dateTime:RFC3339,dateTime:RFC3339,string,string,"
    "string,string,string,string\r\n"
    "#group,false,false,true,true,false,false,true,true,true,true,true\r\n"
    "#default,_result,,,,,,,,,,\r\n"
    ",result,table,_start,_stop,_time,_value,_field,_measurement,device,hall,kind\r\n"
    ",,1,2025-11-03T00:00:00Z,2025-11-04T00:00:00Z,2025-11-03T01:30:05.000000123Z,"
    "RTSP timeout,reason,device_status,cam1,h1,camera\r\n"
    ",,1,2025-11-03T00:00:00Z,2025-11-04T00:00:00Z,2025-11-03T01:30:15.250000987Z,,reason,"
    "device_status,cam1,h1,camera\r\n"
    "\r\n"
)


class _FakeInflux(BaseHTTPRequestHandler):
    requests: ClassVar[list[tuple[str, dict[str, list[str]], dict[str, str], bytes]]] = []
    write_status = 204

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        parts = urlsplit(self.path)
        self.requests.append((parts.path, parse_qs(parts.query), dict(self.headers), body))
        if parts.path == "/api/v2/query":
            payload = FLUX_CSV.encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/csv; charset=utf-8")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)
            return
        status = type(self).write_status
        payload = b'{"code":"invalid","message":"unable to parse"}' if status == 400 else b""
        self.send_response(status)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture()
def fake_influx() -> Iterator[tuple[str, type[_FakeInflux]]]:
    handler = type("Handler", (_FakeInflux,), {"requests": [], "write_status": 204})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", handler
    finally:
        server.shutdown()
        server.server_close()


def _influx_store(url: str) -> LineProtocolStore:
    return LineProtocolStore(
        url, flavour="influxdb", token="t0ken", org="hall-org", bucket="hw", flush_interval_s=0.01
    )


def test_influx_write_request(fake_influx: tuple[str, type[_FakeInflux]]) -> None:
    url, handler = fake_influx
    store = _influx_store(url)
    store.write([_device(0), _presence(1)])
    store.close()
    ((path, query, headers, body),) = handler.requests
    assert path == "/api/v2/write"
    assert query == {"org": ["hall-org"], "bucket": ["hw"], "precision": ["ns"]}
    assert headers["Authorization"] == "Token t0ken"
    lines = body.decode().splitlines()
    assert lines[0] == (
        f'device_status,device=cam1,hall=h1,kind=camera online=0i,reason="RTSP timeout" '
        f"{point_timestamp_ns(_device(0))}"
    )  # string fields are kept for InfluxDB
    assert lines[1].startswith("post_presence,camera=cam1,hall=h1,post=w1,window=w1 ")
    assert store.sent == 2


def test_influx_malformed_batch_is_dropped_not_retried(
    fake_influx: tuple[str, type[_FakeInflux]],
) -> None:
    url, handler = fake_influx
    handler.write_status = 400
    store = _influx_store(url)
    store.write([_device(0)])
    assert store.flush(5)
    store.close()
    assert len(handler.requests) == 1
    assert (store.sent, store.dropped, store.lost) == (0, 1, 0)


def test_influx_query_reads_the_annotated_csv(fake_influx: tuple[str, type[_FakeInflux]]) -> None:
    url, handler = fake_influx
    store = _influx_store(url)
    start, end = T0.replace(hour=0, minute=0), T0.replace(hour=0, minute=0) + timedelta(days=1)
    got = store.query(MEASUREMENT_DEVICE, hall='h"1', start=start, end=end, tags={"kind": "camera"})
    store.close()
    tags = {"device": "cam1", "hall": "h1", "kind": "camera"}
    assert got == [
        Point(
            MEASUREMENT_DEVICE,
            tags,
            {"online": 0, "reason": "RTSP timeout"},
            T0 + timedelta(seconds=5),
        ),
        Point(
            MEASUREMENT_DEVICE,
            tags,
            {"online": 1},  # an empty string reads as null in the CSV: left out
            T0 + timedelta(seconds=15, milliseconds=250),
        ),
    ]
    assert isinstance(got[0].fields["online"], int)
    ((path, query, headers, body),) = handler.requests
    assert path == "/api/v2/query" and query["org"] == ["hall-org"]
    assert headers["Authorization"] == "Token t0ken"
    flux = json.loads(body)["query"]
    assert flux.startswith('from(bucket: "hw")')
    assert "range(start: 2025-11-03T00:00:00.000000Z, stop: 2025-11-04T00:00:00.000000Z)" in flux
    assert 'r._measurement == "device_status"' in flux
    assert 'r["hall"] == "h\\"1"' in flux  # the quote in the hall id is escaped
    assert 'r["kind"] == "camera"' in flux


def test_influx_columns_come_from_the_query(fake_influx: tuple[str, type[_FakeInflux]]) -> None:
    url, handler = fake_influx
    store = _influx_store(url)
    start, end = T0.replace(hour=0, minute=0), T0.replace(hour=0, minute=0) + timedelta(days=1)
    (cols,) = store.read_columns(MEASUREMENT_DEVICE, hall="h1", start=start, end=end,
                                 chunk=timedelta(days=1))  # fmt: skip
    points = store.query(MEASUREMENT_DEVICE, hall="h1", start=start, end=end)
    store.close()
    assert cols.to_points() == points and len(points) == 2
    assert cols.fields["online"].to_pylist() == [0, 1]
    assert cols.fields["reason"].to_pylist() == ["RTSP timeout", None]
    assert [path for path, *_ in handler.requests] == ["/api/v2/query"] * 2


# -- settings and wiring ------------------------------------------------------------------


def test_settings_select_the_store(tmp_path: Any) -> None:
    sqlite = build_series_store(AggregatorSettings(series_path=tmp_path / "s.sqlite"))
    assert isinstance(sqlite, SqliteTimeSeriesStore)
    sqlite.close()
    settings = AggregatorSettings(
        series_backend="influxdb",
        series_url="http://127.0.0.1:1",
        series_token=SecretStr("secret-token"),
        series_bucket="hw",
        series_batch_size=10,
    )
    assert "secret-token" not in repr(settings)
    store = build_series_store(settings)
    assert isinstance(store, LineProtocolStore)
    assert (store.flavour, store.bucket, store.batch_size) == ("influxdb", "hw", 10)
    store.close(timeout=0)
    with pytest.raises(ValueError, match="needs series_url"):
        AggregatorSettings(series_backend="victoriametrics")
