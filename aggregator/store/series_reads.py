"""Reading series back from the servers the line-protocol store writes to: the query
strings (PromQL selectors for VictoriaMetrics' export API, Flux for InfluxDB) and the
parsing of their answers into points or columns (VictoriaMetrics' CSV export, pivoted
with pyarrow and numpy)."""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime

import numpy as np
import pyarrow as pa
import pyarrow.csv as pa_csv

from aggregator.store.points import FieldValue, Point, PointColumns, from_micros, to_micros

logger = logging.getLogger(__name__)


def victoria_range(
    measurement: str, wanted: Mapping[str, str], start_ms: int, end_ms: int
) -> dict[str, str]:
    """``match[]``, ``start`` and ``end`` of the series of a measurement in
    ``[start_ms, end_ms)`` (VictoriaMetrics' ``end`` is inclusive)."""
    selector = [f"__name__=~{promql_string(re.escape(measurement) + '_.+')}"]
    selector += [f"{k}={promql_string(v)}" for k, v in sorted(wanted.items())]
    return {
        "match[]": "{" + ",".join(selector) + "}",
        "start": f"{start_ms / 1000:.3f}",
        "end": f"{(end_ms - 1) / 1000:.3f}",
    }


def victoria_csv_columns(
    measurement: str, body: bytes, labels: Sequence[str], start_ms: int, end_ms: int
) -> PointColumns:
    """VictoriaMetrics' CSV export (``__name__,__timestamp__:unix_ms,__value__,<labels>``,
    one row per sample) as one row per point (labels and millisecond), ordered like
    :meth:`LineProtocolStore.query`: by time, then the sorted tag items.

    Example:
        >>> body = b"q_waiting,1000,3,h1,S01\\nq_wait_s,1000,12.5,h1,S01\\n"
        >>> cols = victoria_csv_columns("q", body, ["hall", "service"], 0, 2000)
        >>> cols.time_us.tolist(), cols.fields["wait_s"].to_pylist()
        ([1000000], [12.5])
    """
    empty = PointColumns(measurement, np.zeros(0, dtype=np.int64), {}, {})
    if not body.strip():
        return empty
    names = ["__name__", "t", "v", *labels]
    table = pa_csv.read_csv(
        pa.BufferReader(pa.py_buffer(body)),
        read_options=pa_csv.ReadOptions(column_names=names, use_threads=False),
        convert_options=pa_csv.ConvertOptions(
            column_types={"__name__": pa.string(), "t": pa.int64(), "v": pa.float64()}
            | dict.fromkeys(labels, pa.string()),
            null_values=[""],
            strings_can_be_null=True,
        ),
    ).combine_chunks()
    if not table.num_rows:
        return empty
    prefix = measurement + "_"
    name = table.column("__name__").chunk(0).dictionary_encode()
    field_names = [
        n[len(prefix) :] if n.startswith(prefix) else "" for n in name.dictionary.to_pylist()
    ]
    field_code = name.indices.to_numpy(zero_copy_only=False)
    t = table.column("t").to_numpy()
    ours = np.array([bool(f) for f in field_names], dtype=bool)[field_code]
    keep = (t >= start_ms) & (t < end_ms) & ours
    if not keep.any():
        return empty
    series_code, series = series_of(table, labels, keep)
    t, field_code, value = t[keep], field_code[keep], table.column("v").to_numpy()[keep]
    rank = np.empty(len(series), dtype=np.int64)
    rank[sorted(range(len(series)), key=lambda i: sorted(series[i].items()))] = np.arange(
        len(series)
    )
    order = np.lexsort((rank[series_code], t))  # time, then tags: as query() sorts points
    t, series_code, field_code, value = (
        t[order],
        series_code[order],
        field_code[order],
        value[order],
    )
    new = np.ones(t.shape[0], dtype=bool)
    new[1:] = (t[1:] != t[:-1]) | (series_code[1:] != series_code[:-1])
    point = np.cumsum(new) - 1
    first = np.flatnonzero(new)
    point_series = pa.array(series_code[first])
    tags = {}
    for label in labels:
        per_series = [s.get(label) for s in series]
        if any(v is not None for v in per_series):
            tags[label] = pa.array(per_series, pa.string()).take(point_series)
    fields = {}
    for code, field_name in sorted(enumerate(field_names), key=lambda c: c[1]):
        samples = field_code == code
        if field_name and samples.any():
            values = np.zeros(first.shape[0])
            present = np.zeros(first.shape[0], dtype=bool)
            values[point[samples]] = value[samples]
            present[point[samples]] = True
            fields[field_name] = pa.array(values, pa.float64(), mask=~present)
    return PointColumns(measurement, t[first] * 1000, tags, fields)


def series_of(
    table: pa.Table, labels: Sequence[str], keep: np.ndarray
) -> tuple[np.ndarray, list[dict[str, str]]]:
    """The series (distinct label sets) of the kept rows: each row's series index, and
    each series' labels (absent ones left out)."""
    rows = int(keep.sum())
    if not labels:
        return np.zeros(rows, dtype=np.int64), [{}]
    codes, values = [], []
    for label in labels:
        encoded = table.column(label).chunk(0).dictionary_encode()
        codes.append(encoded.indices.fill_null(-1).to_numpy(zero_copy_only=False)[keep])
        values.append(encoded.dictionary.to_pylist())
    distinct, inverse = np.unique(np.stack(codes, axis=1), axis=0, return_inverse=True)
    series = [
        {
            label: values[j][c]
            for j, (label, c) in enumerate(zip(labels, row, strict=True))
            if c >= 0
        }
        for row in distinct.tolist()
    ]
    return inverse.reshape(-1).astype(np.int64), series


def group_points(
    measurement: str, rows: Iterable[tuple[dict[str, str], str, int, FieldValue]]
) -> list[Point]:
    """Rows of (tags, field, time in µs, value) as points, one per (tags, time)."""
    grouped: dict[tuple[tuple[tuple[str, str], ...], int], dict[str, FieldValue]] = {}
    for labels, field_name, micros, value in rows:
        grouped.setdefault((tuple(sorted(labels.items())), micros), {})[field_name] = value
    return [
        Point(measurement, dict(labels), fields, from_micros(micros))
        for (labels, micros), fields in grouped.items()
    ]


def to_millis(dt: datetime) -> int:
    return to_micros(dt) // 1000


def promql_string(value: str) -> str:
    return json.dumps(value, ensure_ascii=False)  # a PromQL double-quoted string escapes like JSON


def flux_string(value: str) -> str:
    escaped = value.replace("\\", "\\\\").replace('"', '\\"').replace("${", "\\${")
    return f'"{escaped}"'


def flux_time(dt: datetime) -> str:
    return dt.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
