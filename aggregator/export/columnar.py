"""Series exports as Arrow record batches: the fast path of CSV and Parquet.

:func:`series_batches` turns the column chunks of a time-series store
(:class:`~aggregator.store.timeseries.PointColumns`) into record batches with the
export's columns, as the row path (:func:`aggregator.export.sources.series_source`'s
rows) writes them: the time in the hall's timezone (:func:`format_times`, vectorised),
one column per tag and field the columns name (a field wins over a tag of the same
name), and the ``extra`` JSON of keys the columns do not name (built in Python only for
the points that have such keys). Window and department filters are applied per chunk.

Values are converted to the column's kind with Arrow: numbers and 0/1 to ``float``; text
columns take text as is, ``True``/``False`` for booleans and numbers as Arrow writes them
(``1`` for 1.0). Text in a ``float`` column (never written by :mod:`aggregator`) is
logged and left empty.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Iterator, Sequence
from datetime import tzinfo
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from aggregator.export.columns import ARROW_TYPES, Column, arrow_schema
from aggregator.export.timefmt import TimeFormat, format_times
from aggregator.store.timeseries import PointColumns

logger = logging.getLogger(__name__)


def series_batches(
    chunks: Iterable[PointColumns],
    columns: Sequence[Column],
    *,
    tz: tzinfo,
    fmt: TimeFormat,
    windows: frozenset[str] | None = None,
) -> Iterator[pa.RecordBatch]:
    """Record batches (schema :func:`arrow_schema` of ``columns``: ``time``, tags and
    fields, ``extra``), one per non-empty chunk, lazily.

    Args:
        chunks: Points as columns, oldest first.
        columns: The export's columns: ``time`` first, ``extra`` last.
        tz: The hall's timezone.
        fmt: How times are written.
        windows: Only points whose ``window`` tag is one of these (None: all).
    """
    schema = arrow_schema(columns)
    admitted = None if windows is None else pa.array(sorted(windows), pa.string())
    for cols in chunks:
        if admitted is not None:
            window = cols.tags.get("window")
            if window is None:
                continue
            mask = pc.fill_null(pc.is_in(window, value_set=admitted), False)
            cols = cols.filter(mask.to_numpy(zero_copy_only=False))
        if len(cols):
            yield _batch(cols, columns, schema, tz, fmt)


def _batch(
    cols: PointColumns, columns: Sequence[Column], schema: pa.Schema, tz: tzinfo, fmt: TimeFormat
) -> pa.RecordBatch:
    n = len(cols)
    named = {c.name for c in columns[1:-1]}
    arrays: list[pa.Array] = [format_times(cols.time_us, tz, fmt)]
    for column in columns[1:-1]:
        value: pa.Array | None = None
        if column.name in cols.fields:
            value = as_kind(cols.fields[column.name], column)
        if column.name in cols.tags:
            tag = as_kind(cols.tags[column.name], column)
            value = tag if value is None else pc.coalesce(value, tag)
        arrays.append(pa.nulls(n, ARROW_TYPES[column.kind]) if value is None else value)
    arrays.append(_extra(cols, named))
    return pa.RecordBatch.from_arrays(arrays, schema=schema)


def as_kind(values: pa.Array, column: Column) -> pa.Array:
    """``values`` as the Arrow type of ``column``'s kind (see the module)."""
    target = ARROW_TYPES[column.kind]
    if values.type == target:
        return values
    if pa.types.is_null(values.type):
        return pa.nulls(len(values), target)
    if column.kind == "str" and pa.types.is_boolean(values.type):
        return pc.if_else(values, "True", "False")
    try:
        return values.cast(target)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        logger.warning("export column %s: values that are not %s left empty", column.name, target)
        return pa.array([_or_none(v, column) for v in values.to_pylist()], target)


def _or_none(value: Any, column: Column) -> Any:
    try:
        return float(value) if column.kind == "float" else value
    except (TypeError, ValueError):
        return None


def _extra(cols: PointColumns, named: set[str]) -> pa.Array:
    """The ``extra`` column: JSON of the keys not among the columns (null where none)."""
    unknown = [(k, v) for k, v in cols.tags.items() if k not in named]
    unknown += [(k, v) for k, v in cols.fields.items() if k not in named]
    if not unknown:
        return pa.nulls(len(cols), pa.string())
    present = np.zeros(len(cols), dtype=bool)
    for _, values in unknown:
        present |= values.is_valid().to_numpy(zero_copy_only=False)
    rows = np.flatnonzero(present)
    picked = pa.array(rows, pa.int64())
    lists = [(k, v.take(picked).to_pylist()) for k, v in unknown]
    texts: list[str | None] = [None] * len(cols)
    for i, row in enumerate(rows.tolist()):
        extra = {k: values[i] for k, values in lists if values[i] is not None}
        texts[row] = json.dumps(extra, ensure_ascii=False, sort_keys=True)
    return pa.array(texts, pa.string())
