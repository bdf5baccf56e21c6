"""The time-series store: every fact as points, InfluxDB-style.

A :class:`Point` is a measurement with low-cardinality tags (hall, camera, post, window,
kind), fields and a UTC time. Its ``id`` (the fact id) is a dedup key, never a tag:
writing the same id twice stores one point, so replayed facts are idempotent.

The embedded backend is :class:`SqliteTimeSeriesStore`. A line-protocol backend (InfluxDB
or VictoriaMetrics through ``influxdb-client``) implements the same
:class:`TimeSeriesStore` protocol; there the id maps onto the point's timestamp and tag
set, which the server already deduplicates.

Exports read points as columns (:class:`PointColumns`, numpy and Arrow arrays) instead of
one :class:`Point` per point: :class:`ColumnarSeriesStore` is the optional capability, and
:func:`series_columns` reads any store that way (through ``query()`` window by window when
the store has no columnar read of its own).

Example:
    >>> from datetime import UTC, datetime
    >>> store = SqliteTimeSeriesStore(":memory:")
    >>> t = datetime(2026, 11, 2, 2, 0, tzinfo=UTC)
    >>> p = Point("post_presence", {"hall": "h1", "post": "w1"}, {"on_post": 1}, t, "f1")
    >>> store.write([p, p])
    >>> len(store.query("post_presence", hall="h1", start=t, end=t.replace(hour=3)))
    1
"""

from __future__ import annotations

import contextlib
import json
import logging
import queue
import sqlite3
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Protocol, TypeVar, runtime_checkable

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv
import pyarrow.json as pa_json

from hallwatch.contract import (
    DeviceFact,
    Fact,
    FlowFact,
    HygieneFact,
    HygieneState,
    OccupancyFact,
    PostState,
    PresenceFact,
    QueueFact,
    RatingFact,
    RatingLevel,
    StatsFact,
    TicketFact,
    TripsFact,
    WaitFact,
)

logger = logging.getLogger(__name__)

FieldValue = float | int | str | bool

MEASUREMENT_PRESENCE = "post_presence"
MEASUREMENT_DEVICE = "device_status"
MEASUREMENT_EDGE = "edge_pipeline"
MEASUREMENT_TICKET = "ticket_event"
MEASUREMENT_QUEUE = "queue"
MEASUREMENT_WAIT = "wait_over_limit"
MEASUREMENT_TRIPS = "trips_over_promise"
MEASUREMENT_RATING = "rating"
MEASUREMENT_HYGIENE = "zone_hygiene"
MEASUREMENT_OCCUPANCY = "zone_occupancy"
MEASUREMENT_FLOW = "entrance_flow"

RATING_SCORES: dict[RatingLevel, int] = {
    RatingLevel.VERY_SATISFIED: 5,
    RatingLevel.SATISFIED: 4,
    RatingLevel.BASICALLY_SATISFIED: 3,
    RatingLevel.DISSATISFIED: 2,
    RatingLevel.VERY_DISSATISFIED: 1,
}
"""Score of a rating level in the ``rating`` measurement (5 = 非常满意)."""


@dataclass(frozen=True, slots=True)
class Point:
    """One time-series point.

    Attributes:
        measurement: Measurement name, e.g. ``post_presence``.
        tags: Low-cardinality indexed labels (hall, camera, post, window, kind).
        fields: Values.
        time: UTC time of the point.
        id: Dedup key (the fact id): the same id written twice is one point.
    """

    measurement: str
    tags: dict[str, str]
    fields: dict[str, FieldValue]
    time: datetime
    id: str = field(default="")


@runtime_checkable
class TimeSeriesStore(Protocol):
    """Where facts go as time series. Implementations must be thread-safe."""

    def write(self, points: Sequence[Point]) -> None:
        """Store points; a point whose id is already stored is ignored."""
        ...

    def query(
        self,
        measurement: str,
        *,
        hall: str,
        start: datetime,
        end: datetime,
        tags: Mapping[str, str] | None = None,
    ) -> list[Point]:
        """Points of one measurement and hall with ``start <= time < end``, oldest first."""
        ...

    def close(self) -> None:
        """Release connections."""
        ...


@dataclass(frozen=True, slots=True)
class PointColumns:
    """Points of one measurement as columns (a columnar read), oldest first.

    Attributes:
        measurement: Measurement name.
        time_us: UTC times, microseconds since the epoch (int64, non-decreasing).
        tags: One string array per tag key (keys sorted), null where a point lacks it.
        fields: One array per field key (keys sorted), null where a point lacks it, typed
            as stored: ``int64``; ``float64`` (floats, or ints and floats mixed); ``bool``;
            ``string`` (text, or values of mixed kinds written as Python ``str``).

    Example:
        >>> t = datetime(2026, 11, 2, 2, 0, tzinfo=UTC)
        >>> p = Point("queue", {"hall": "h1", "service": "S01"}, {"waiting": 3}, t, "f1")
        >>> cols = columns_from_points("queue", [p])
        >>> len(cols), cols.tags["service"].to_pylist(), cols.fields["waiting"].type
        (1, ['S01'], DataType(int64))
    """

    measurement: str
    time_us: npt.NDArray[np.int64]
    tags: Mapping[str, pa.Array]
    fields: Mapping[str, pa.Array]

    def __len__(self) -> int:
        return int(self.time_us.shape[0])

    def filter(self, mask: npt.NDArray[np.bool_]) -> PointColumns:
        """The points where ``mask`` is true."""
        keep = pa.array(mask, pa.bool_())
        return PointColumns(
            self.measurement,
            self.time_us[mask],
            {k: v.filter(keep) for k, v in self.tags.items()},
            {k: v.filter(keep) for k, v in self.fields.items()},
        )

    def to_points(self) -> list[Point]:
        """The points (without ids), e.g. to compare with :meth:`TimeSeriesStore.query`."""
        tags = {k: v.to_pylist() for k, v in self.tags.items()}
        fields = {k: v.to_pylist() for k, v in self.fields.items()}
        return [
            Point(
                self.measurement,
                {k: v[i] for k, v in tags.items() if v[i] is not None},
                {k: v[i] for k, v in fields.items() if v[i] is not None},
                _from_micros(int(us)),
            )
            for i, us in enumerate(self.time_us.tolist())
        ]


@runtime_checkable
class ColumnarSeriesStore(Protocol):
    """A store that reads points as columns itself (the fast path of exports).

    Stores without it are read through :func:`series_columns`, which falls back to
    :meth:`TimeSeriesStore.query` one time window at a time.
    """

    def read_columns(
        self,
        measurement: str,
        *,
        hall: str,
        start: datetime,
        end: datetime,
        tags: Mapping[str, str] | None = None,
    ) -> Iterator[PointColumns]:
        """Points of one measurement and hall in ``[start, end)`` as a stream of column
        chunks of bounded size, oldest first, in the order of :meth:`TimeSeriesStore.query`."""
        ...


def typed_array(values: Sequence[Any]) -> pa.Array:
    """Field values (None: absent) as one Arrow array, typed as :class:`PointColumns` says.

    Example:
        >>> typed_array([1, None, 2.5]).type, typed_array([True, "x"]).to_pylist()
        (DataType(double), ['True', 'x'])
    """
    kinds = {type(v) for v in values if v is not None}
    if kinds == {bool}:
        return pa.array(values, pa.bool_())
    if kinds and kinds <= {int, float}:
        if kinds == {int} and all(-(2**63) <= v < 2**63 for v in values if v is not None):
            return pa.array(values, pa.int64())
        return pa.array([None if v is None else float(v) for v in values], pa.float64())
    if kinds <= {str}:
        return pa.array(values, pa.string())
    return pa.array([None if v is None else str(v) for v in values], pa.string())


def columns_from_points(measurement: str, points: Sequence[Point]) -> PointColumns:
    """Points (of one measurement, in order) as columns."""
    tag_keys = sorted({k for p in points for k in p.tags})
    field_keys = sorted({k for p in points for k in p.fields})
    return PointColumns(
        measurement,
        np.array([_micros(p.time) for p in points], dtype=np.int64),
        {k: typed_array([_tag_text(p.tags.get(k)) for p in points]) for k in tag_keys},
        {k: typed_array([p.fields.get(k) for p in points]) for k in field_keys},
    )


def _tag_text(value: object) -> str | None:
    return None if value is None else str(value)


def columns_via_query(
    store: TimeSeriesStore,
    measurement: str,
    *,
    hall: str,
    start: datetime,
    end: datetime,
    tags: Mapping[str, str] | None = None,
    chunk: timedelta = timedelta(hours=1),
) -> Iterator[PointColumns]:
    """The columnar read of any store: :meth:`TimeSeriesStore.query`, ``chunk`` of time
    at a time (each chunk's points in memory once as :class:`Point`)."""
    lo = start
    while lo < end:
        hi = min(lo + chunk, end)
        points = store.query(measurement, hall=hall, start=lo, end=hi, tags=tags)
        if points:
            yield columns_from_points(measurement, points)
        lo = hi


def series_columns(
    store: TimeSeriesStore,
    measurement: str,
    *,
    hall: str,
    start: datetime,
    end: datetime,
    tags: Mapping[str, str] | None = None,
) -> Iterator[PointColumns]:
    """Points of one measurement and hall in ``[start, end)`` as column chunks, oldest
    first: the store's own :meth:`ColumnarSeriesStore.read_columns` if it has one, else
    :func:`columns_via_query`."""
    if isinstance(store, ColumnarSeriesStore):
        return store.read_columns(measurement, hall=hall, start=start, end=end, tags=tags)
    return columns_via_query(store, measurement, hall=hall, start=start, end=end, tags=tags)


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)


def _micros(dt: datetime) -> int:
    if dt.tzinfo is None:
        raise ValueError("time-series times must be timezone-aware")
    return (dt - _EPOCH) // _MICROSECOND


def _from_micros(us: int) -> datetime:
    return datetime.fromtimestamp(us // 1_000_000, UTC).replace(microsecond=us % 1_000_000)


# -- the embedded store ---------------------------------------------------------------------

SCHEMA_VERSION = 2
"""``PRAGMA user_version`` of the embedded store's file. 0: the first layout (a rowid
table keyed by (measurement, id), indexed by time, tags and fields in two JSON columns),
migrated on open."""

_SCHEMA = (
    """CREATE TABLE IF NOT EXISTS series (
    id INTEGER PRIMARY KEY,
    measurement TEXT NOT NULL,
    tags TEXT NOT NULL,
    UNIQUE (measurement, tags)
)""",
    """CREATE TABLE IF NOT EXISTS points (
    measurement TEXT NOT NULL,
    hall TEXT NOT NULL,
    time_us INTEGER NOT NULL,
    id TEXT NOT NULL,
    record TEXT NOT NULL,
    PRIMARY KEY (measurement, hall, time_us, id)
) WITHOUT ROWID""",
    "CREATE UNIQUE INDEX IF NOT EXISTS points_by_id ON points (measurement, id)",
)
"""A series is a measurement's tag set (its JSON), stored once. ``record`` is the point as
one line: time (µs), series id and fields JSON, separated by tabs (JSON text has no raw tab
or newline), so a chunk of points is one ``group_concat``."""

_JSON = json.JSONEncoder(sort_keys=True, ensure_ascii=False)
_COLUMNS = "measurement, hall, time_us, id, record"
_RANGE = "FROM points WHERE measurement = ? AND hall = ? AND time_us >= ? AND time_us < ?"
_CUT_SQL = f"SELECT time_us {_RANGE} ORDER BY time_us LIMIT 1 OFFSET ?"
# The records of a chunk, a line each, in primary-key order = (time, id): one text.
_CHUNK_SQL = f"SELECT CAST(group_concat(record, char(10)) AS BLOB) {_RANGE}"
_TSV_PARSE = pa_csv.ParseOptions(delimiter="\t", quote_char=False, escape_char=False)
_TSV_CONVERT = pa_csv.ConvertOptions(
    column_types={"t": pa.int64(), "s": pa.int64(), "fields": pa.string()},
    strings_can_be_null=False,
)


class SqliteTimeSeriesStore:
    """The embedded time-series backend: SQLite, WAL mode.

    Points are clustered by (measurement, hall, time, id) (a ``WITHOUT ROWID`` table), so
    a time range is one sequential read; a unique index on (measurement, id) keeps ids
    idempotent. Tag sets are stored once, in ``series``. A file of the first layout is
    migrated when opened (logged; a few seconds per million points).

    Args:
        path: SQLite file (its folder is created) or ``":memory:"``.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = path
        self._memory = str(path) == ":memory:"
        if not self._memory:
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._conn = sqlite3.connect(str(path), check_same_thread=False, timeout=30)
        with self._lock:
            if not self._memory:
                self._conn.execute("PRAGMA journal_mode=WAL")
            self._conn.execute("PRAGMA synchronous=NORMAL")
            _ensure_schema(self._conn, path)
        self._tag_texts: dict[tuple[tuple[str, object], ...], str] = {}
        self._series_ids: dict[tuple[str, str], int] = {}
        self._series_tags: dict[int, dict[str, str]] = {}

    def _tags_text(self, tags: Mapping[str, str]) -> str:
        """The JSON of a tag set, cached: tag sets are few (bounded cardinality)."""
        key = tuple(tags.items())
        text = self._tag_texts.get(key)
        if text is None:
            text = _JSON.encode(tags)
            if all(type(v) is str for v in tags.values()):  # 1 == True: cache text only
                if len(self._tag_texts) >= 4096:
                    self._tag_texts.clear()
                self._tag_texts[key] = text
        return text

    def _series_of(self, keys: set[tuple[str, str]]) -> None:
        """Register (measurement, tags JSON) series not cached yet (lock held)."""
        missing = [k for k in keys if k not in self._series_ids]
        if not missing:
            return
        self._conn.executemany(
            "INSERT OR IGNORE INTO series (measurement, tags) VALUES (?, ?)", missing
        )
        self._conn.commit()  # before caching ids: a later rollback cannot orphan them
        for measurement, tags in missing:
            (series_id,) = self._conn.execute(
                "SELECT id FROM series WHERE measurement = ? AND tags = ?", (measurement, tags)
            ).fetchone()
            self._series_ids[measurement, tags] = int(series_id)

    def _tags_of(self, conn: sqlite3.Connection, ids: Iterable[int]) -> list[dict[str, str]]:
        """The tag sets of series ids (cached; read through ``conn`` when not)."""
        wanted = list(ids)
        missing = [i for i in wanted if i not in self._series_tags]
        for start in range(0, len(missing), 500):
            part = missing[start : start + 500]
            marks = ",".join("?" * len(part))
            for series_id, tags in conn.execute(
                f"SELECT id, tags FROM series WHERE id IN ({marks})", part
            ):
                self._series_tags[int(series_id)] = json.loads(tags)
        return [self._series_tags[i] for i in wanted]

    def write(self, points: Sequence[Point]) -> None:
        """Store points, ignoring ids already stored (per measurement).

        Raises:
            ValueError: A point has no id or a naive time.
        """
        staged = []
        for p in points:
            if not p.id:
                raise ValueError(f"point of {p.measurement} has no id")
            staged.append((p, _micros(p.time), self._tags_text(p.tags)))
        if not staged:
            return
        with self._lock:
            self._series_of({(p.measurement, tags) for p, _, tags in staged})
            ids = self._series_ids
            rows = [
                (p.measurement, p.tags.get("hall", ""), us, p.id,
                 f"{us}\t{ids[p.measurement, tags]}\t{_JSON.encode(p.fields)}")
                for p, us, tags in staged
            ]  # fmt: skip
            self._conn.executemany(
                f"INSERT OR IGNORE INTO points ({_COLUMNS}) VALUES (?, ?, ?, ?, ?)", rows
            )
            self._conn.commit()

    def query(
        self,
        measurement: str,
        *,
        hall: str,
        start: datetime,
        end: datetime,
        tags: Mapping[str, str] | None = None,
    ) -> list[Point]:
        """Points of one measurement and hall in ``[start, end)``, oldest first.

        Args:
            measurement: Measurement name.
            hall: Hall id (the ``hall`` tag).
            start: Inclusive lower bound (aware).
            end: Exclusive upper bound (aware).
            tags: Further tags every returned point must carry with these values.
        """
        with self._lock:
            rows = self._conn.execute(
                f"SELECT id, time_us, record {_RANGE} ORDER BY time_us, id",
                (measurement, hall, _micros(start), _micros(end)),
            ).fetchall()
        records = [(pid, us, *record.split("\t", 2)) for pid, us, record in rows]
        series_ids = sorted({int(s) for _, _, _, s, _ in records})
        with self._lock:
            known = dict(zip(series_ids, self._tags_of(self._conn, series_ids), strict=True))
        out: list[Point] = []
        for pid, time_us, _, series_id, fields_json in records:
            point_tags = known[int(series_id)]
            if tags and any(point_tags.get(k) != v for k, v in tags.items()):
                continue
            fields = json.loads(fields_json)
            out.append(Point(measurement, dict(point_tags), fields, _from_micros(time_us), pid))
        return out

    def read_columns(
        self,
        measurement: str,
        *,
        hall: str,
        start: datetime,
        end: datetime,
        tags: Mapping[str, str] | None = None,
        batch_rows: int = 32_768,
    ) -> Iterator[PointColumns]:
        """Points of one measurement and hall in ``[start, end)`` as column chunks, in the
        order of :meth:`query` (time, then id).

        SQLite does the per-point work: each chunk (at most ``batch_rows`` points, cut
        between two instants; one instant with more points is one chunk) is one query
        whose ``group_concat`` returns a single text; pyarrow parses it; tags are looked
        up per series, fields decoded with ``pyarrow.json`` (once per distinct JSON text
        where few differ). Two threads work ahead of the caller, a chunk each: one reads
        (SQL and parsing, on a connection of its own for a file, so WAL writers are not
        blocked), one decodes; SQLite and Arrow release the GIL.

        Args:
            measurement: Measurement name.
            hall: Hall id.
            start: Inclusive lower bound (aware).
            end: Exclusive upper bound (aware).
            tags: Further tags every returned point must carry with these values.
            batch_rows: Most points per chunk (bounds memory).
        """
        lo, hi = _micros(start), _micros(end)
        wanted = dict(tags or {})

        def decoded() -> Iterator[PointColumns]:
            for raw in _read_ahead(lambda: self._chunks(measurement, hall, lo, hi, batch_rows)):
                cols = _decode_chunk(measurement, raw, wanted)
                if len(cols):
                    yield cols

        return _read_ahead(decoded)  # two stages: SQL and parsing, then decoding

    def _chunks(
        self, measurement: str, hall: str, lo: int, hi: int, size: int
    ) -> Iterator[_RawChunk]:
        lock: contextlib.AbstractContextManager[Any] = contextlib.nullcontext()
        own = not self._memory  # ":memory:" is one database per connection: share the store's
        if own:
            conn = sqlite3.connect(str(self.path), check_same_thread=False, timeout=30)
            conn.execute("PRAGMA query_only=1")
        else:
            conn, lock = self._conn, self._lock
        try:
            while lo < hi:
                with lock:
                    row = conn.execute(_CUT_SQL, (measurement, hall, lo, hi, size)).fetchone()
                    cut = hi if row is None else max(int(row[0]), lo + 1)
                    (text,) = conn.execute(_CHUNK_SQL, (measurement, hall, lo, cut)).fetchone()
                lo = cut
                if text:
                    table = _parse_records(text)
                    series_ids, series_index = np.unique(
                        table.column("s").to_numpy(), return_inverse=True
                    )
                    with lock:
                        series = self._tags_of(conn, series_ids.tolist())
                    yield _RawChunk(table, series, series_index)
        finally:
            if own:
                conn.close()

    def count(self) -> int:
        """Number of points stored (all measurements)."""
        with self._lock:
            (n,) = self._conn.execute("SELECT COUNT(*) FROM points").fetchone()
        return int(n)

    def close(self) -> None:
        """Close the connection."""
        with self._lock:
            self._conn.close()


def _ensure_schema(conn: sqlite3.Connection, path: str | Path) -> None:
    """Create the tables, or migrate a file of the first layout (in one transaction)."""
    if conn.execute("PRAGMA user_version").fetchone()[0] >= SCHEMA_VERSION:
        return
    conn.execute("BEGIN IMMEDIATE")  # a second process opening the file waits here
    try:
        (version,) = conn.execute("PRAGMA user_version").fetchone()
        old = conn.execute(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'points'"
        ).fetchone()
        if version < SCHEMA_VERSION and old:
            (n,) = conn.execute("SELECT COUNT(*) FROM points").fetchone()
            logger.warning("migrating %d time-series points of %s to layout 2", n, path)
            conn.execute("ALTER TABLE points RENAME TO points_v1")
            for statement in _SCHEMA[:2]:
                conn.execute(statement)
            conn.execute(
                "INSERT OR IGNORE INTO series (measurement, tags)"
                " SELECT DISTINCT measurement, tags FROM points_v1"
            )
            conn.execute(
                f"INSERT INTO points ({_COLUMNS}) SELECT p.measurement, p.hall, p.time_us,"
                " p.id, p.time_us || char(9) || s.id || char(9) || p.fields"
                " FROM points_v1 AS p JOIN series AS s"
                " ON s.measurement = p.measurement AND s.tags = p.tags"
                " ORDER BY p.measurement, p.hall, p.time_us, p.id"
            )
            conn.execute("DROP TABLE points_v1")
        for statement in _SCHEMA:
            conn.execute(statement)
        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise


def _parse_records(text: bytes) -> pa.Table:
    """A chunk's lines (``time<TAB>series id<TAB>fields JSON``) as a table (t, s, fields)."""
    return pa_csv.read_csv(
        pa.BufferReader(pa.py_buffer(text)),  # not a Python file: parsed without the GIL
        read_options=pa_csv.ReadOptions(
            column_names=["t", "s", "fields"], use_threads=False, block_size=len(text) + 1
        ),
        parse_options=_TSV_PARSE,
        convert_options=_TSV_CONVERT,
    ).combine_chunks()


@dataclass(frozen=True, slots=True)
class _RawChunk:
    """A chunk as read: records parsed (``t``, ``s``, ``fields`` JSON text), and the tags
    of row ``i`` are ``series[series_index[i]]``."""

    table: pa.Table
    series: Sequence[Mapping[str, str]]
    series_index: npt.NDArray[np.intp]


def _decode_chunk(measurement: str, raw: _RawChunk, wanted: Mapping[str, str]) -> PointColumns:
    """One chunk as columns (points without the ``wanted`` tags left out)."""
    series, series_index = raw.series, raw.series_index
    time_us = raw.table.column("t").to_numpy()
    field_texts = raw.table.column("fields").chunk(0)
    if wanted:
        admitted = np.array(
            [all(t.get(k) == v for k, v in wanted.items()) for t in series], dtype=bool
        )
        if not admitted.all():
            keep = admitted[series_index]
            time_us, series_index = time_us[keep], series_index[keep]
            field_texts = field_texts.filter(pa.array(keep))
    if time_us.shape[0] > 1 and bool((time_us[1:] < time_us[:-1]).any()):
        order = np.argsort(time_us, kind="stable")  # never seen: rows come in key order
        time_us, series_index = time_us[order], series_index[order]
        field_texts = field_texts.take(pa.array(order))
    rows = pa.array(series_index, pa.int64())
    tag_keys = sorted({k for t in series for k in t})
    tags = {k: typed_array([_tag_text(t.get(k)) for t in series]).take(rows) for k in tag_keys}
    field_codes = field_texts.dictionary_encode()
    if 2 * len(field_codes.dictionary) <= len(field_texts):  # few distinct: parse those
        distinct = parse_field_objects(field_codes.dictionary)
        fields = {k: v.take(field_codes.indices) for k, v in distinct.items()}
    else:
        fields = parse_field_objects(field_texts)
    return PointColumns(measurement, np.ascontiguousarray(time_us), tags, fields)


_ARROW_KINDS = (pa.types.is_int64, pa.types.is_float64, pa.types.is_boolean, pa.types.is_string)


def parse_field_objects(texts: pa.Array | Sequence[str]) -> dict[str, pa.Array]:
    """JSON objects of fields (one per text) as one array per key (keys sorted), typed as
    :class:`PointColumns` says: pyarrow's JSON reader, or Python's where Arrow would read
    something else (text that looks like a date, kinds mixed in one key, nested values).

    Example:
        >>> parse_field_objects(['{"n": 1, "x": NaN}', '{"n": 2}'])["n"].to_pylist()
        [1, 2]
    """
    array = texts if isinstance(texts, pa.Array) else pa.array(texts, pa.string())
    if not len(array):
        return {}
    try:
        return _arrow_field_objects(array)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, ValueError):
        logger.debug("field JSON read in Python (%d objects)", len(array))
    objects = [json.loads(t) for t in array.to_pylist()]
    keys = sorted({k for o in objects for k in o})
    return {k: typed_array([o.get(k) for o in objects]) for k in keys}


def _arrow_field_objects(texts: pa.Array) -> dict[str, pa.Array]:
    lines = pc.binary_join_element_wise(texts, pa.scalar(""), "\n")  # each text + newline
    _, offsets, text = lines.buffers()
    bounds = np.frombuffer(offsets, dtype=np.int32)[lines.offset : lines.offset + len(lines) + 1]
    start, end = int(bounds[0]), int(bounds[-1])
    data = text.slice(start, end - start)  # NDJSON, no copy through Python
    read = pa_json.ReadOptions(use_threads=False, block_size=max(end - start + 1, 1 << 20))
    table = pa_json.read_json(pa.BufferReader(data), read_options=read)
    if table.num_rows != len(texts):
        raise ValueError("row count")
    out: dict[str, pa.Array] = {}
    for name in sorted(table.column_names):
        column = table.column(name).combine_chunks()
        if pa.types.is_null(column.type):
            column = pa.nulls(len(column), pa.string())
        elif not any(is_kind(column.type) for is_kind in _ARROW_KINDS):
            raise ValueError(f"{name}: {column.type}")  # e.g. a date-like text
        out[name] = column
    return out


_T = TypeVar("_T")


class _Failed:
    def __init__(self, error: BaseException) -> None:
        self.error = error


def _read_ahead(make: Callable[[], Iterator[_T]], depth: int = 1) -> Iterator[_T]:
    """Items of ``make()``, produced in a thread up to ``depth`` ahead of the consumer."""
    slots: queue.Queue[object] = queue.Queue(maxsize=depth)
    stop = threading.Event()
    done = object()

    def put(item: object) -> None:
        while not stop.is_set():
            try:
                slots.put(item, timeout=0.1)
                return
            except queue.Full:
                continue

    def produce() -> None:
        items = make()
        try:
            for item in items:
                put(item)
                if stop.is_set():
                    break
            put(done)
        except BaseException as exc:
            put(_Failed(exc))
        finally:
            close = getattr(items, "close", None)
            if close is not None:
                close()

    worker = threading.Thread(target=produce, name="hallwatch-series-read", daemon=True)
    worker.start()
    try:
        while True:
            item = slots.get()
            if item is done:
                return
            if isinstance(item, _Failed):
                raise item.error
            yield item  # type: ignore[misc]
    finally:
        stop.set()
        with contextlib.suppress(queue.Empty):
            while True:
                slots.get_nowait()
        worker.join(timeout=30)


def facts_to_points(fact: Fact) -> list[Point]:
    """Map one fact onto time-series points (at the fact's observation time ``ts``).

    - presence → ``post_presence`` (tags hall, camera, post[, window]; fields ``on_post``
      0/1, ``summary``[, ``score``]);
    - device → ``device_status`` (tags hall, device, kind; fields ``online`` 0/1, ``reason``);
    - stats → ``edge_pipeline`` (tags hall, source; every numeric body field);
    - ticket → ``ticket_event`` (tags hall, service, event[, window, channel, outcome];
      fields ``count`` 1[, ``wait_s``]), at the event time;
    - queue → ``queue``, one point per service (tags hall, service; fields ``waiting``,
      ``longest_wait_s``);
    - wait → ``wait_over_limit`` (tags hall, service[, channel]; fields ``waited_s``,
      ``limit_s``, ``leg``);
    - trips → ``trips_over_promise`` (tags hall, service[, window]; fields ``trips``,
      ``promised``);
    - rating → ``rating`` (tags hall, level, channel[, window, attitude]; fields ``score``
      5 … 1, ``bad`` 0/1, ``evaluation``);
    - hygiene → ``zone_hygiene`` (tags hall, camera, zone[, window]; fields ``bad`` 0/1,
      ``score``);
    - occupancy → ``zone_occupancy`` (tags hall, camera, zone; fields ``count``, ``peak``,
      ``mean``, ``crowded`` 0/1), at the interval's end;
    - flow → ``entrance_flow`` (tags hall, camera, zone; fields ``in_count``,
      ``out_count``, ``interval_s``), at the interval's start.

    Ticket numbers, ticket and case ids, applicant keys and staff ids are never tags.
    """
    if isinstance(fact, PresenceFact | DeviceFact | StatsFact):
        return _video_points(fact)
    if isinstance(fact, HygieneFact | OccupancyFact | FlowFact):
        return [_environment_point(fact)]
    if isinstance(fact, QueueFact):
        return [
            Point(
                MEASUREMENT_QUEUE,
                {"hall": fact.hall, "service": q.service},
                {"waiting": q.waiting, "longest_wait_s": float(q.longest_wait_s)},
                fact.ts,
                f"{fact.id}:{q.service}",
            )
            for q in fact.body.services
        ]
    tags: dict[str, str] = {"hall": fact.hall}
    fields: dict[str, FieldValue]
    if isinstance(fact, TicketFact):
        t = fact.body
        tags |= {"service": t.service, "event": t.event.value}
        _optional(tags, window=t.window, channel=t.channel, outcome=t.outcome)
        fields = {"count": 1}
        if t.wait_s is not None:
            fields["wait_s"] = float(t.wait_s)
        return [Point(MEASUREMENT_TICKET, tags, fields, t.at, fact.id)]
    if isinstance(fact, WaitFact):
        w = fact.body
        tags["service"] = w.service
        _optional(tags, channel=w.channel)
        fields = {"waited_s": float(w.waited_s), "limit_s": float(w.limit_s), "leg": w.leg}
        return [Point(MEASUREMENT_WAIT, tags, fields, fact.ts, fact.id)]
    if isinstance(fact, TripsFact):
        tr = fact.body
        tags["service"] = tr.service
        _optional(tags, window=tr.window)
        fields = {"trips": tr.trips, "promised": tr.promised}
        return [Point(MEASUREMENT_TRIPS, tags, fields, fact.ts, fact.id)]
    return [_rating_point(fact)]


def _environment_point(fact: HygieneFact | OccupancyFact | FlowFact) -> Point:
    b = fact.body
    tags = {"hall": fact.hall, "camera": b.camera, "zone": b.zone}
    fields: dict[str, FieldValue]
    if isinstance(fact, HygieneFact):
        h = fact.body
        _optional(tags, window=h.window)
        fields = {"bad": int(h.state is HygieneState.BAD), "score": float(h.score)}
        return Point(MEASUREMENT_HYGIENE, tags, fields, fact.ts, fact.id)
    if isinstance(fact, OccupancyFact):
        o = fact.body
        fields = {
            "count": o.count,
            "peak": o.peak,
            "mean": float(o.mean),
            "crowded": int(o.crowded),
        }
        return Point(MEASUREMENT_OCCUPANCY, tags, fields, fact.ts, fact.id)
    f = fact.body
    fields = {"in_count": f.in_count, "out_count": f.out_count, "interval_s": f.interval_s}
    return Point(MEASUREMENT_FLOW, tags, fields, f.start, fact.id)


def _optional(tags: dict[str, str], **values: object) -> None:
    for key, value in values.items():
        if value is not None:
            tags[key] = str(value)


def _rating_point(fact: RatingFact) -> Point:
    r = fact.body
    tags = {"hall": fact.hall, "level": r.level.value, "channel": r.channel.value}
    _optional(tags, window=r.window, attitude=r.attitude)
    fields: dict[str, FieldValue] = {
        "score": RATING_SCORES[r.level],
        "bad": int(r.level.is_bad),
        "evaluation": r.evaluation,
    }
    return Point(MEASUREMENT_RATING, tags, fields, fact.ts, fact.id)


def _video_points(fact: PresenceFact | DeviceFact | StatsFact) -> list[Point]:
    if isinstance(fact, PresenceFact):
        b = fact.body
        tags = {"hall": fact.hall, "camera": b.camera, "post": b.post}
        if b.window is not None:
            tags["window"] = b.window
        fields: dict[str, FieldValue] = {
            "on_post": int(b.state is PostState.ON_POST),
            "summary": b.summary,
        }
        if b.score is not None:
            fields["score"] = float(b.score)
        return [Point(MEASUREMENT_PRESENCE, tags, fields, fact.ts, fact.id)]
    if isinstance(fact, DeviceFact):
        d = fact.body
        return [
            Point(
                MEASUREMENT_DEVICE,
                {"hall": fact.hall, "device": d.device, "kind": d.device_kind.value},
                {"online": int(d.state.value == "online"), "reason": d.reason},
                fact.ts,
                fact.id,
            )
        ]
    s = fact.body
    numeric: dict[str, FieldValue] = {
        k: v
        for k, v in s.model_dump().items()
        if isinstance(v, int | float) and not isinstance(v, bool)
    }
    return [
        Point(
            MEASUREMENT_EDGE, {"hall": fact.hall, "source": fact.source}, numeric, fact.ts, fact.id
        )
    ]
