"""The embedded time-series backend: :class:`SqliteTimeSeriesStore`, one SQLite file.

Example:
    >>> from datetime import UTC, datetime
    >>> from aggregator.store.points import Point
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
from dataclasses import dataclass
from datetime import datetime
from json.encoder import c_make_encoder, encode_basestring  # type: ignore[attr-defined]
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv
import pyarrow.json as pa_json
import pydantic_core

from aggregator.store.driver_sql import multirow_inserts
from aggregator.store.points import (
    Point,
    PointColumns,
    from_micros,
    tag_text,
    tags_are_text,
    to_micros,
    typed_array,
)

logger = logging.getLogger(__name__)

SCHEMA_VERSION = 3
"""``PRAGMA user_version`` of the embedded store's file, migrated on open:

- 0: the first layout (a rowid table keyed by (measurement, id), indexed by time, tags and
  fields in two JSON columns);
- 2: this layout with a unique index on (measurement, id) besides the primary key: a
  second B-tree written with every point, which the primary key makes redundant (a fact
  written again has the same measurement, hall, time and id). Dropped."""

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
)
"""A series is a measurement's tag set (its JSON), stored once. ``record`` is the point as
one line: time (µs), series id and fields JSON, separated by tabs (JSON text has no raw tab
or newline), so a chunk of points is one ``group_concat``."""

_JSON = json.JSONEncoder(sort_keys=True, ensure_ascii=False)


def _flat_json_encoder() -> Callable[[Mapping[str, object]], str]:
    """``_JSON.encode`` for the flat dicts of tags and fields, its C encoder made once
    (``JSONEncoder.encode`` makes one per call: half its time for a point's fields)."""
    if c_make_encoder is None:  # pragma: no cover - CPython has the C encoder
        return _JSON.encode
    encoder = c_make_encoder(
        None, _JSON.default, encode_basestring, None, ": ", ", ", True, False, True
    )
    return lambda value: "".join(encoder(value, 0))


_to_json = _flat_json_encoder()
"""Canonical JSON (keys sorted): a series' tag set, which identifies the series."""


def _fields_json(fields: Mapping[str, object]) -> str:
    """A point's fields as compact JSON, in their own key order (a measurement's points
    build them in one order), ``NaN`` and ``Infinity`` kept as JSON's readers take them:
    pydantic-core's encoder, ~0.8 µs a point against ~2.9 µs for the standard library's
    sorted, spaced form, which records written before remain in (both read the same).

    >>> _fields_json({"on_post": 1, "summary": True, "score": 0.9, "x": float("nan")})
    '{"on_post":1,"summary":true,"score":0.9,"x":NaN}'
    """
    return pydantic_core.to_json(fields, inf_nan_mode="constants").decode()


_ADD_SERIES = "INSERT OR IGNORE INTO series (measurement, tags) VALUES (?, ?)"
_SERIES_CACHED = 4096
"""Tag sets whose series id a store keeps by their items (emptied when full)."""
_COLUMNS = "measurement, hall, time_us, id, record"
_INSERT = f"INSERT OR IGNORE INTO points ({_COLUMNS})"
"""The points' INSERT before its values: multi-row statements
(:func:`~aggregator.store.driver_sql.multirow_inserts`), not ``executemany`` of one row,
whose step per point let the MQTT reader thread in at every point."""
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
    a time range is one sequential read, and that key is a point's identity: a fact
    written again is ignored. Tag sets are stored once, in ``series``. A file of an
    earlier layout is migrated when opened (the first: logged, a few seconds per million
    points).

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
        self._series_ids: dict[tuple[str, str], int] = {}
        """Series ids by measurement and tags JSON."""
        self._series_by_tags: dict[tuple[str, tuple[tuple[str, str], ...]], int] = {}
        """Series ids by measurement and tag items as a point carries them (tag sets of
        text only: :func:`~aggregator.store.points.tags_are_text`)."""
        self._series_tags: dict[int, dict[str, str]] = {}

    def _register(self, points: Iterable[Point]) -> None:
        """Register the series of ``points`` not in ``_series_by_tags``: those new to the
        file in one statement and commit (lock held; before the points' INSERTs)."""
        known = self._series_by_tags
        missing: dict[tuple[str, str], dict[str, str]] = {}
        looked: set[tuple[str, tuple[tuple[str, str], ...]]] = set()
        for p in points:
            items = (p.measurement, tuple(p.tags.items()))
            if items in known or items in looked:
                continue
            missing[p.measurement, _to_json(p.tags)] = p.tags
            if tags_are_text(p.tags):  # else their items may equal another set's (1 == True)
                looked.add(items)
        new = [key for key in missing if key not in self._series_ids]
        if new:
            self._conn.executemany(_ADD_SERIES, new)
            self._conn.commit()  # before caching ids: a later rollback cannot orphan them
            for key in new:
                (found,) = self._conn.execute(
                    "SELECT id FROM series WHERE measurement = ? AND tags = ?", key
                ).fetchone()
                self._series_ids[key] = int(found)
        if len(known) + len(missing) > _SERIES_CACHED:
            known.clear()
        for (measurement, text), tags in missing.items():
            if tags_are_text(tags):
                known[measurement, tuple(tags.items())] = self._series_ids[measurement, text]

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
        """Store points, ignoring those stored already (same measurement, hall, time and id).

        Raises:
            ValueError: A point has no id or a naive time.
        """
        staged = []
        micros: dict[datetime, int] = {}  # the points of one look share their time
        for p in points:
            if not p.id:
                raise ValueError(f"point of {p.measurement} has no id")
            us = micros.get(p.time)
            if us is None:
                us = micros[p.time] = to_micros(p.time)
            staged.append((p, us))
        if not staged:
            return
        with self._lock:
            known = self._series_by_tags
            registered = False
            rows = []
            for p, us in staged:
                series_id = known.get((p.measurement, tuple(p.tags.items())))
                if series_id is None:  # a new series, or tags that are not all text
                    if not registered:
                        self._register(p for p, _ in staged)
                        registered = True
                    series_id = self._series_ids[p.measurement, _to_json(p.tags)]
                record = f"{us}\t{series_id}\t{_fields_json(p.fields)}"
                rows.append((p.measurement, p.tags.get("hall", ""), us, p.id, record))
            try:
                for sql, flat in multirow_inserts(_INSERT, "(?, ?, ?, ?, ?)", rows):
                    self._conn.execute(sql, flat)
            except BaseException:
                self._conn.rollback()  # no chunk of a failed write commits with the next
                raise
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
                (measurement, hall, to_micros(start), to_micros(end)),
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
            out.append(Point(measurement, dict(point_tags), fields, from_micros(time_us), pid))
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
        lo, hi = to_micros(start), to_micros(end)
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
    """Create the tables, or migrate a file of an earlier layout (in one transaction)."""
    if conn.execute("PRAGMA user_version").fetchone()[0] >= SCHEMA_VERSION:
        return
    _begin_waiting(conn, path)  # a second process opening the file waits here
    try:
        (version,) = conn.execute("PRAGMA user_version").fetchone()
        old = conn.execute(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'points'"
        ).fetchone()
        if version == 0 and old:
            (n,) = conn.execute("SELECT COUNT(*) FROM points").fetchone()
            logger.warning("migrating %d time-series points of %s to layout 3", n, path)
            conn.execute("ALTER TABLE points RENAME TO points_v1")
            for statement in _SCHEMA:
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
        conn.execute("DROP INDEX IF EXISTS points_by_id")  # layout 2's
        for statement in _SCHEMA:
            conn.execute(statement)
        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise


def _begin_waiting(conn: sqlite3.Connection, path: str | Path) -> None:
    """``BEGIN IMMEDIATE``, waiting as long as another process holds the file (a migration
    of a hall-month takes longer than SQLite's busy timeout)."""
    while True:
        try:
            conn.execute("BEGIN IMMEDIATE")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) and "busy" not in str(exc):
                raise
            logger.warning("%s is busy (another process migrating it?): still waiting", path)


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
    tags = {k: typed_array([tag_text(t.get(k)) for t in series]).take(rows) for k in tag_keys}
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
