"""The columnar read path of time series and the series exports built on it (issue 5).

The embedded store reads points as columns (``read_columns``) equal to its ``query()``;
the first layout of its file is migrated when opened; series exports written from Arrow
batches (CSV, Parquet) equal the row exports, byte for byte where no text needs quoting,
for both time formats, a DST-free and a DST zone, and the window/department filters.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import math
import sqlite3
import threading
from collections.abc import Mapping, Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np
import pyarrow.parquet as pq
import pytest

from aggregator.export import ExportFormat, ExportQuery, TimeFormat, export_chunks, format_time
from aggregator.export.sources import ExportSource, series_source
from aggregator.export.timefmt import format_times
from aggregator.store import sqlite_series
from aggregator.store.points import to_micros
from aggregator.store.timeseries import (
    ColumnarSeriesStore,
    Point,
    SqliteTimeSeriesStore,
    parse_field_objects,
)
from hallwatch.config.models import HallConfig
from tests.conftest import build_hall

T0 = datetime(2026, 3, 29, 0, 0, tzinfo=UTC)  # Europe/Berlin goes from +01:00 to +02:00 at 01:00
HOURS = 3


def _hall(timezone: str) -> HallConfig:
    base = build_hall("h1", timezone=timezone).model_dump(mode="json")
    base["departments"] = [{"id": "tax", "name": "税务局"}, {"id": "police", "name": "公安局"}]
    base["windows"] = [
        {"id": "1", "department": "tax"},
        {"id": "2", "department": "tax"},
        {"id": "3", "department": "police"},
    ]
    return HallConfig.model_validate(base)


def _points(*, late_keys: bool = False, text: str = "ok", hall: str = "h1") -> list[Point]:
    """Presence of 4 posts every 30 s for 3 hours: post w4 has no window, odd posts a
    score, sub-second times, and ids in an order other than insertion at shared instants;
    with ``late_keys`` a tag and a field appear only after the first hour (``extra``)."""
    points: list[Point] = []
    for step in range(HOURS * 120):
        for post in range(4):
            tags = {"hall": hall, "camera": f"c{post % 2}", "post": f"w{post + 1}"}
            if post != 3:
                tags["window"] = str(post + 1)
            fields: dict[str, float | int | str | bool] = {
                "on_post": (step // 5 + post) % 2,
                "summary": step % 7 == 0 if text == "ok" else f"{text}{step}",
            }
            if post % 2:
                fields["score"] = ((step * 7 + post) % 100 + 0.5) / 100
            if late_keys and step >= 150 and post == 1:
                tags["zone"] = "z1"
                fields["late"] = step
            at = T0 + timedelta(seconds=30 * step, microseconds=250_000 * (post // 2))
            points.append(Point("post_presence", tags, fields, at, f"p{9999 - post}-{step:04d}"))
    return points


class QueryOnly:
    """A store without a columnar read of its own (exports fall back to ``query()``)."""

    def __init__(self, inner: SqliteTimeSeriesStore) -> None:
        self.inner = inner

    def write(self, points: Sequence[Point]) -> None:
        self.inner.write(points)

    def query(
        self,
        measurement: str,
        *,
        hall: str,
        start: datetime,
        end: datetime,
        tags: Mapping[str, str] | None = None,
    ) -> list[Point]:
        return self.inner.query(measurement, hall=hall, start=start, end=end, tags=tags)

    def close(self) -> None:
        self.inner.close()


@pytest.fixture
def store(tmp_path: Path) -> SqliteTimeSeriesStore:
    series = SqliteTimeSeriesStore(tmp_path / "series.sqlite")
    series.write(_points() + _points(hall="h2"))
    series.write([replace(p, measurement="queue") for p in _points()[:50]])
    return series


def _read(
    series: SqliteTimeSeriesStore, batch_rows: int = 32_768, tags: dict[str, str] | None = None
) -> list[Point]:
    end = T0 + timedelta(hours=HOURS)
    chunks = series.read_columns(
        "post_presence", hall="h1", start=T0, end=end, tags=tags, batch_rows=batch_rows
    )
    return [p for cols in chunks for p in cols.to_points()]


def test_columns_equal_query_in_every_chunking(store: SqliteTimeSeriesStore) -> None:
    end = T0 + timedelta(hours=HOURS)
    rows = [replace(p, id="") for p in store.query("post_presence", hall="h1", start=T0, end=end)]
    assert len(rows) == HOURS * 120 * 4
    assert rows[0].fields == {"on_post": 1, "score": 0.015, "summary": True}
    assert rows[0].fields["summary"] is True and rows[0].tags["post"] == "w2"  # id order
    for batch_rows in (1, 7, 1000, 100_000):  # 1: every instant is a chunk of its own
        assert _read(store, batch_rows=batch_rows) == rows
    window = _read(store, tags={"window": "2"})
    assert window == [p for p in rows if p.tags.get("window") == "2"] and len(window) == 360
    middle = store.read_columns(
        "post_presence", hall="h1", start=rows[4].time, end=rows[8].time, batch_rows=3
    )
    assert [p for c in middle for p in c.to_points()] == rows[4:8]  # [start, end)


def test_points_of_one_instant_keep_the_order_of_their_ids(tmp_path: Path) -> None:
    series = SqliteTimeSeriesStore(tmp_path / "s.sqlite")
    same = [Point("queue", {"hall": "h1", "service": f"S{i}"}, {"n": i}, T0, f"{50 - i:03d}")
            for i in range(50)]  # fmt: skip
    series.write(same)
    end = T0 + timedelta(days=1)
    (chunk,) = series.read_columns("queue", hall="h1", start=T0, end=end, batch_rows=8)
    assert chunk.fields["n"].to_pylist() == list(range(49, -1, -1))  # one instant: one chunk
    rows = series.query("queue", hall="h1", start=T0, end=end)
    assert chunk.to_points() == [replace(p, id="") for p in rows]


def test_tag_sets_are_stored_once_and_shared_between_stores(tmp_path: Path) -> None:
    first = SqliteTimeSeriesStore(tmp_path / "s.sqlite")
    first.write(_points()[:400])
    (series,) = first._conn.execute("SELECT COUNT(*) FROM series").fetchone()
    assert series == 4  # one per post
    second = SqliteTimeSeriesStore(tmp_path / "s.sqlite")  # e.g. `hallwatch export`
    late = [replace(p, tags=p.tags | {"zone": "z9"}, id=f"z{p.id}") for p in _points()[:8]]
    second.write(late)  # a tag set the first store has not seen
    end = T0 + timedelta(hours=HOURS)
    got = first.query("post_presence", hall="h1", start=T0, end=end, tags={"zone": "z9"})
    assert got == sorted(late, key=lambda p: (p.time, p.id))
    assert _read(first, tags={"zone": "z9"}) == [replace(p, id="") for p in got]
    got[0].tags["post"] = "changed"  # points own their tags
    again = first.query("post_presence", hall="h1", start=T0, end=end, tags={"zone": "z9"})
    assert again[0].tags["post"] != "changed"
    first.close()
    second.close()


def test_fields_written_by_an_earlier_version_read_back_as_the_new_ones(tmp_path: Path) -> None:
    """Earlier versions wrote a point's fields sorted and spaced (``json.dumps``), this one
    compact in the point's own key order: a file holding both reads them alike."""
    series = SqliteTimeSeriesStore(tmp_path / "s.sqlite")
    points = _points()[:200]
    series.write(points[:100])
    query = "SELECT record FROM points WHERE id = ?"
    (record,) = series._conn.execute(query, (points[0].id,)).fetchone()
    assert record.endswith("\t" + json.dumps(points[0].fields, separators=(",", ":")))
    older = [
        (p.measurement, "h1", to_micros(p.time), p.id,
         f"{to_micros(p.time)}\t{series._series_ids[p.measurement, sqlite_series._to_json(p.tags)]}"
         f"\t{json.dumps(p.fields, sort_keys=True)}")
        for p in points[100:]
    ]  # fmt: skip
    series._conn.executemany("INSERT INTO points VALUES (?, ?, ?, ?, ?)", older)
    series._conn.commit()
    end = T0 + timedelta(hours=HOURS)
    got = series.query("post_presence", hall="h1", start=T0, end=end)
    assert [(p.tags, p.fields, p.time) for p in got] == [
        (p.tags, p.fields, p.time) for p in sorted(points, key=lambda p: (p.time, p.id))
    ]
    assert _read(series) == [replace(p, id="") for p in got]
    series.close()


def test_tag_sets_equal_in_python_but_not_in_json_are_two_series(tmp_path: Path) -> None:
    """``1 == True``: tag values that are not text (outside the contract) do not share the
    series of their equal-comparing values."""
    series = SqliteTimeSeriesStore(tmp_path / "s.sqlite")
    odd: list[Any] = [{"hall": "h1", "n": 1}, {"hall": "h1", "n": True}, {"hall": "h1", "n": "1"}]
    for round_ in range(2):  # the second time from what the store holds
        series.write(
            [Point("m", tags, {"v": i}, T0, f"{round_}-{i}") for i, tags in enumerate(odd)]
        )
    got = series.query("m", hall="h1", start=T0, end=T0 + timedelta(seconds=1))
    assert [(type(p.tags["n"]), p.fields["v"]) for p in got] == [
        (int, 0), (bool, 1), (str, 2), (int, 0), (bool, 1), (str, 2)
    ]  # fmt: skip
    series.close()


def test_an_abandoned_read_stops_its_thread(store: SqliteTimeSeriesStore) -> None:
    chunks = store.read_columns(
        "post_presence", hall="h1", start=T0, end=T0 + timedelta(hours=HOURS), batch_rows=10
    )
    assert len(next(chunks)) == 10
    chunks.close()  # type: ignore[attr-defined]
    assert not [t for t in threading.enumerate() if t.name == "hallwatch-series-read"]


def test_a_failing_read_raises_in_the_reader(
    store: SqliteTimeSeriesStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*args: object) -> None:
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(sqlite_series, "_decode_chunk", broken)
    with pytest.raises(RuntimeError, match="disk on fire"):
        _read(store)


def test_field_json_that_arrow_reads_otherwise_is_read_in_python() -> None:
    nan = parse_field_objects(['{"a": NaN, "b": 1}', '{"a": 1.5}'])
    assert math.isnan(nan["a"][0].as_py()) and nan["a"][1].as_py() == 1.5
    assert nan["b"].to_pylist() == [1, None] and str(nan["b"].type) == "int64"
    assert parse_field_objects(['{"d": "2026-11-02"}'])["d"].to_pylist() == ["2026-11-02"]
    assert parse_field_objects(['{"m": true}', '{"m": "x"}'])["m"].to_pylist() == ["True", "x"]
    mixed = parse_field_objects(['{"i": 1}', '{"i": 2.5}', "{}"])["i"]
    assert str(mixed.type) == "double" and mixed.to_pylist() == [1.0, 2.5, None]


V1_SCHEMA = """
CREATE TABLE points (
    measurement TEXT NOT NULL, id TEXT NOT NULL, hall TEXT NOT NULL, time_us INTEGER NOT NULL,
    tags TEXT NOT NULL, fields TEXT NOT NULL, PRIMARY KEY (measurement, id)
);
CREATE INDEX points_by_time ON points (measurement, hall, time_us);
"""


def test_a_file_of_the_first_layout_is_migrated(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "old.sqlite"
    points = _points()[:200]
    with sqlite3.connect(path) as old:  # what the first SqliteTimeSeriesStore wrote
        old.executescript(V1_SCHEMA)
        old.executemany(
            "INSERT INTO points VALUES (?, ?, ?, ?, ?, ?)",
            [(p.measurement, p.id, p.tags["hall"], to_micros(p.time),
              json.dumps(p.tags, sort_keys=True, ensure_ascii=False),
              json.dumps(p.fields, sort_keys=True, ensure_ascii=False)) for p in points],
        )  # fmt: skip
    old.close()
    with caplog.at_level(logging.WARNING, logger="aggregator.store.sqlite_series"):
        series = SqliteTimeSeriesStore(path)
    assert "migrating 200 time-series points" in caplog.text
    end = T0 + timedelta(hours=HOURS)
    expected = sorted(points, key=lambda p: (p.time, p.id))
    assert series.query("post_presence", hall="h1", start=T0, end=end) == expected
    series.write(points[:20])  # ids stored before the migration are still known
    assert series.count() == 200
    assert _read(series) == [replace(p, id="") for p in expected]
    series.close()
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="aggregator.store.sqlite_series"):
        again = SqliteTimeSeriesStore(path)
    assert caplog.text == "" and again.count() == 200
    (version,) = again._conn.execute("PRAGMA user_version").fetchone()
    assert version == sqlite_series.SCHEMA_VERSION
    again.close()


def _indexes(series: SqliteTimeSeriesStore) -> list[str]:
    return [
        name
        for (name,) in series._conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'points'"
            " AND sql IS NOT NULL"
        )
    ]


def test_a_file_of_the_second_layout_loses_its_id_index(tmp_path: Path) -> None:
    """Layout 2 indexed (measurement, id) besides the primary key; opening such a file
    drops that index and keeps its points, still idempotent."""
    path = tmp_path / "v2.sqlite"
    points = _points()[:400]
    series = SqliteTimeSeriesStore(path)
    series.write(points)
    series._conn.execute("CREATE UNIQUE INDEX points_by_id ON points (measurement, id)")
    series._conn.execute("PRAGMA user_version = 2")
    series._conn.commit()
    series.close()
    again = SqliteTimeSeriesStore(path)
    assert _indexes(again) == []
    (version,) = again._conn.execute("PRAGMA user_version").fetchone()
    assert version == sqlite_series.SCHEMA_VERSION == 3
    again.write(points[::-1])
    assert again.count() == 400
    assert again.query("post_presence", hall="h1", start=T0, end=T0 + timedelta(hours=1)) == (
        sorted(points, key=lambda p: (p.time, p.id))
    )
    again.close()


def test_a_point_is_its_measurement_hall_time_and_id(tmp_path: Path) -> None:
    """What the time-series servers do too: the same fact written again is one point; a
    point of another time (or hall) is another point, whatever its id."""
    series = SqliteTimeSeriesStore(tmp_path / "s.sqlite")
    point = Point("post_presence", {"hall": "h1", "post": "w1"}, {"on_post": 1}, T0, "f1")
    later = replace(point, time=T0 + timedelta(seconds=1), fields={"on_post": 0})
    elsewhere = replace(point, tags={"hall": "h2", "post": "w1"})
    series.write([point, point])
    series.write([point, later, elsewhere])
    assert series.count() == 3
    end = T0 + timedelta(minutes=1)
    assert series.query("post_presence", hall="h1", start=T0, end=end) == [point, later]
    series.close()


@pytest.mark.parametrize("zone", ["Asia/Shanghai", "Europe/Berlin", "America/St_Johns"])
@pytest.mark.parametrize("fmt", list(TimeFormat))
def test_times_are_written_as_format_time_writes_them(zone: str, fmt: TimeFormat) -> None:
    rng = np.random.default_rng(5)
    us = np.sort(rng.integers(-2 * 10**15, 4 * 10**15, 3000)).astype(np.int64)
    around = int(T0.timestamp()) * 10**6 + np.arange(-7200, 10800, 599, dtype=np.int64) * 10**6
    us = np.concatenate([us, around, around + 999_999])
    expected = [
        format_time(datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=int(u)),
                    ZoneInfo(zone), fmt) for u in us
    ]  # fmt: skip
    assert format_times(us, ZoneInfo(zone), fmt).to_pylist() == expected
    assert format_times(us[::-1].copy(), ZoneInfo(zone), fmt).to_pylist() == expected[::-1]


def _export(source: ExportSource, fmt: ExportFormat) -> bytes:
    return b"".join(export_chunks(source, fmt, chunk_rows=500))


def _sources(
    series: SqliteTimeSeriesStore | QueryOnly, query: ExportQuery
) -> tuple[ExportSource, ExportSource]:
    """The same export from Arrow batches and from rows."""
    columnar = series_source(series, "post_presence", query)
    assert columnar.batches is not None
    rows = series_source(series, "post_presence", query)
    return columnar, ExportSource(rows.dataset, rows.columns, rows.rows)


FILTERS = [{}, {"window": "3"}, {"department": "tax"}]


@pytest.mark.parametrize("zone", ["Asia/Shanghai", "Europe/Berlin"])
@pytest.mark.parametrize("fmt", list(TimeFormat))
@pytest.mark.parametrize("filters", FILTERS, ids=["all", "window", "department"])
def test_columnar_export_equals_the_row_export(
    store: SqliteTimeSeriesStore, zone: str, fmt: TimeFormat, filters: dict[str, str]
) -> None:
    query = ExportQuery(hall=_hall(zone), since=T0, until=T0 + timedelta(hours=HOURS),
                        time_format=fmt, **filters)  # fmt: skip
    columnar, rows = _sources(store, query)
    csv_bytes = _export(columnar, ExportFormat.CSV)
    assert csv_bytes == _export(rows, ExportFormat.CSV)  # byte for byte
    lines = csv_bytes.decode("utf-8-sig").splitlines()
    if not filters:
        assert lines[0] == "time,hall,camera,post,window,on_post,score,summary,extra"
    if zone == "Europe/Berlin" and fmt is TimeFormat.ISO and not filters:
        assert lines[1] == "2026-03-29T01:00:00+01:00,h1,c1,w2,2,1,0.015,True,"  # id order
        assert lines[-1].startswith("2026-03-29T04:59:30+02:00,h1,c0,w3,3,")
    expected = {"window": 360 * 1, "department": 360 * 2}.get(next(iter(filters), ""), 360 * 4)
    assert len(lines) == 1 + expected
    columnar, rows = _sources(store, query)
    parquet = pq.read_table(io.BytesIO(_export(columnar, ExportFormat.PARQUET)))
    assert parquet.equals(pq.read_table(io.BytesIO(_export(rows, ExportFormat.PARQUET))))
    assert parquet.num_rows == expected
    assert str(parquet.schema.field("on_post").type) == "double"


@pytest.mark.parametrize("fallback", [False, True], ids=["columnar store", "query-only store"])
def test_extra_keys_and_quoted_text_read_back_the_same(tmp_path: Path, fallback: bool) -> None:
    inner = SqliteTimeSeriesStore(tmp_path / "s.sqlite")
    inner.write(_points(late_keys=True, text='办件,"急"\n'))
    series = QueryOnly(inner) if fallback else inner
    assert isinstance(series, ColumnarSeriesStore) is not fallback
    query = ExportQuery(hall=_hall("Europe/Berlin"), since=T0, until=T0 + timedelta(hours=HOURS))
    columnar, rows = _sources(series, query)
    got = list(csv.reader(io.StringIO(_export(columnar, ExportFormat.CSV).decode("utf-8-sig"))))
    want = list(csv.reader(io.StringIO(_export(rows, ExportFormat.CSV).decode("utf-8-sig"))))
    assert got == want and len(got) == 1 + HOURS * 120 * 4
    extras = [r[-1] for r in got[1:] if r[-1]]
    assert len(extras) == 210 and json.loads(extras[0]) == {"zone": "z1", "late": 150}
    assert got[1][7] == '办件,"急"\n0'
    columnar, rows = _sources(series, query)
    parquet = pq.read_table(io.BytesIO(_export(columnar, ExportFormat.PARQUET)))
    assert parquet.equals(pq.read_table(io.BytesIO(_export(rows, ExportFormat.PARQUET))))
    inner.close()


def test_a_second_process_waits_for_a_migration_longer_than_the_busy_timeout(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another process holds the file (here: a migration-long write lock) for longer than
    SQLite's busy timeout: opening the store waits instead of failing."""
    path = tmp_path / "busy.sqlite"
    with sqlite3.connect(path) as old:  # as the first layout's store left it: WAL mode
        old.execute("PRAGMA journal_mode=WAL")
        old.executescript(V1_SCHEMA)
    old.close()
    connect = sqlite3.connect

    def short_timeout(*args: Any, **kwargs: Any) -> sqlite3.Connection:
        kwargs["timeout"] = 0.05
        return connect(*args, **kwargs)

    monkeypatch.setattr(sqlite_series.sqlite3, "connect", short_timeout)
    holder = connect(path, isolation_level=None, check_same_thread=False)
    holder.execute("BEGIN IMMEDIATE")
    threading.Timer(0.5, lambda: holder.execute("COMMIT")).start()
    store = SqliteTimeSeriesStore(path)  # ~10 busy timeouts long
    (version,) = store._conn.execute("PRAGMA user_version").fetchone()
    assert version == sqlite_series.SCHEMA_VERSION
    store.close()
    holder.close()


@pytest.mark.parametrize(
    ("department", "window", "expected"),
    [
        (None, None, None),
        ("tax", None, {"1", "2"}),
        (None, "3", {"3"}),
        ("tax", "2", {"2"}),
        ("tax", "3", set()),  # window 3 is police's: nothing
        ("empty", "3", set()),  # a department without windows admits none
    ],
)
def test_department_and_window_filters_both_hold(
    department: str | None, window: str | None, expected: set[str] | None
) -> None:
    hall = HallConfig.model_validate(
        build_hall("h1").model_dump(mode="json", by_alias=True, context={"reveal_secrets": True})
        | {
            "departments": [{"id": "tax", "name": "税务局"}, {"id": "police", "name": "公安局"},
                            {"id": "empty", "name": "空"}],
            "windows": [{"id": "1", "department": "tax"}, {"id": "2", "department": "tax"},
                        {"id": "3", "department": "police"}],
        }
    )  # fmt: skip
    query = ExportQuery(hall=hall, department=department, window=window)
    assert query.windows() == (frozenset(expected) if expected is not None else None)
