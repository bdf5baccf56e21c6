"""CSV, XLSX and Parquet writers: an :class:`~aggregator.export.sources.ExportSource` as a
stream of byte chunks, memory flat.

- CSV: UTF-8 with a BOM (Excel opens Chinese text right), a chunk every ``chunk_rows``;
  a source with Arrow batches (series) is written by ``pyarrow.csv`` a batch at a time,
  the same text as the row path: CRLF, cells quoted only in a batch where some text
  needs it (then every text cell of that batch is quoted, which reads back the same);
- XLSX: openpyxl ``write_only`` (rows go to a temporary file, not memory), a new sheet
  every 1,048,575 rows (Excel's limit), then the file is streamed. Always row by row
  (openpyxl writes cell by cell: slow by nature, a few thousand rows/s);
- Parquet: pyarrow, one row group per ``chunk_rows`` rows, streamed as written; from the
  batches where the source has them.

Example:
    >>> from aggregator.export.sources import Column, ExportSource
    >>> src = ExportSource("demo", (Column("a"), Column("n", "int")), iter([{"a": "x", "n": 1}]))
    >>> b"".join(export_chunks(src, ExportFormat.CSV)).decode("utf-8-sig").splitlines()
    ['a,n', 'x,1']
"""

from __future__ import annotations

import csv
import io
import logging
import tempfile
from collections.abc import Callable, Iterator
from enum import StrEnum
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq
from openpyxl import Workbook

from aggregator.export.columns import ARROW_TYPES, arrow_schema
from aggregator.export.sources import Cell, Column, ExportSource, Row

logger = logging.getLogger(__name__)

XLSX_MAX_ROWS = 1_048_575
"""Data rows per sheet (Excel's 1,048,576 less the header)."""


class ExportFormat(StrEnum):
    """File formats of exports."""

    CSV = "csv"
    XLSX = "xlsx"
    PARQUET = "parquet"

    @property
    def media_type(self) -> str:
        """The HTTP ``Content-Type``."""
        return {
            ExportFormat.CSV: "text/csv; charset=utf-8",
            ExportFormat.XLSX: "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
            ExportFormat.PARQUET: "application/vnd.apache.parquet",
        }[self]


RowCallback = Callable[[int], None]
"""Called with the number of rows just written (progress bars, audit counts)."""


def _noop(_rows: int) -> None:
    return None


_CSV_PLAIN = pa_csv.WriteOptions(include_header=False, quoting_style="none", eol="\r\n")
_CSV_QUOTED = pa_csv.WriteOptions(include_header=False, quoting_style="needed", eol="\r\n")


def _csv_header(names: list[str]) -> bytes:
    buf = io.StringIO()
    buf.write("\ufeff")
    csv.writer(buf, lineterminator="\r\n").writerow(names)
    return buf.getvalue().encode("utf-8")


def _csv_batch(batch: pa.RecordBatch) -> bytes:
    """One batch as CSV lines: unquoted, or (where a text needs it) text quoted."""
    out = pa.BufferOutputStream()
    try:
        pa_csv.write_csv(batch, out, write_options=_CSV_PLAIN)
    except pa.ArrowInvalid:  # a comma, quote or line break in some text
        out = pa.BufferOutputStream()
        pa_csv.write_csv(batch, out, write_options=_CSV_QUOTED)
    return bytes(out.getvalue())


def _csv_batch_chunks(
    source: ExportSource, batches: Iterator[pa.RecordBatch], on_rows: RowCallback
) -> Iterator[bytes]:
    header = _csv_header([c.name for c in source.columns])
    for batch in batches:
        if header:
            yield header + _csv_batch(batch)
            header = b""
        else:
            yield _csv_batch(batch)
        on_rows(batch.num_rows)
    if header:
        yield header
    on_rows(0)


def _csv_chunks(source: ExportSource, chunk_rows: int, on_rows: RowCallback) -> Iterator[bytes]:
    if source.batches is not None:
        yield from _csv_batch_chunks(source, source.batches, on_rows)
        return
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\r\n")
    buf.write("\ufeff")
    names = [c.name for c in source.columns]
    writer.writerow(names)
    pending = 0
    for row in source.rows:
        writer.writerow(["" if row.get(n) is None else row.get(n) for n in names])
        pending += 1
        if pending >= chunk_rows:
            yield buf.getvalue().encode("utf-8")
            buf.seek(0)
            buf.truncate()
            on_rows(pending)
            pending = 0
    yield buf.getvalue().encode("utf-8")
    on_rows(pending)


def _xlsx_chunks(source: ExportSource, chunk_rows: int, on_rows: RowCallback) -> Iterator[bytes]:
    names = [c.name for c in source.columns]
    workbook = Workbook(write_only=True)
    sheet = workbook.create_sheet(source.dataset.replace("/", "_")[:31])
    sheet.append(names)
    in_sheet = pending = 0
    for row in source.rows:
        if in_sheet >= XLSX_MAX_ROWS:
            sheet = workbook.create_sheet(
                f"{source.dataset.replace('/', '_')[:27]}_{len(workbook.worksheets)}"
            )
            sheet.append(names)
            in_sheet = 0
        sheet.append([row.get(n) for n in names])
        in_sheet += 1
        pending += 1
        if pending >= chunk_rows:
            on_rows(pending)
            pending = 0
    on_rows(pending)
    with tempfile.TemporaryFile() as tmp:
        workbook.save(tmp)
        tmp.seek(0)
        while block := tmp.read(1 << 20):
            yield block


def _coerce(value: Cell, kind: str) -> Cell:
    if value is None:
        return None
    if kind == "str":
        return value if isinstance(value, str) else str(value)
    if kind == "float":
        return float(value)
    if kind == "int":
        return int(value)
    return bool(value)


class _Sink(io.RawIOBase):
    """A write-only file that keeps what was written until drained."""

    def __init__(self) -> None:
        super().__init__()
        self._parts: list[bytes] = []
        self._pos = 0

    def writable(self) -> bool:
        return True

    def write(self, data: bytes) -> int:  # type: ignore[override]
        self._parts.append(bytes(data))
        self._pos += len(data)
        return len(data)

    def tell(self) -> int:
        return self._pos

    def drain(self) -> bytes:
        out = b"".join(self._parts)
        self._parts.clear()
        return out


def _parquet_batch_chunks(
    batches: Iterator[pa.RecordBatch],
    writer: pq.ParquetWriter,
    sink: _Sink,
    chunk_rows: int,
    on_rows: RowCallback,
) -> Iterator[bytes]:
    """Batches as row groups of ``chunk_rows`` rows (the last one shorter)."""
    pending: list[pa.RecordBatch] = []
    held = 0
    for batch in batches:
        pending.append(batch)
        held += batch.num_rows
        if held < chunk_rows:
            continue
        table = pa.Table.from_batches(pending, schema=writer.schema)
        whole = held - held % chunk_rows
        writer.write_table(table.slice(0, whole), row_group_size=chunk_rows)
        on_rows(whole)
        pending = table.slice(whole).to_batches()
        held -= whole
        yield sink.drain()
    if held:
        writer.write_table(pa.Table.from_batches(pending, schema=writer.schema))
        on_rows(held)
        yield sink.drain()


def _parquet_chunks(source: ExportSource, chunk_rows: int, on_rows: RowCallback) -> Iterator[bytes]:
    schema = arrow_schema(source.columns)
    sink = _Sink()
    writer = pq.ParquetWriter(pa.PythonFile(sink, mode="w"), schema, compression="zstd")
    if source.batches is not None:
        yield from _parquet_batch_chunks(source.batches, writer, sink, chunk_rows, on_rows)
        writer.close()
        yield sink.drain()
        return
    columns: list[Column] = list(source.columns)
    batch: list[Row] = []

    def flush() -> bytes:
        arrays = [
            pa.array([_coerce(r.get(c.name), c.kind) for r in batch], type=ARROW_TYPES[c.kind])
            for c in columns
        ]
        writer.write_table(pa.Table.from_arrays(arrays, schema=schema))
        on_rows(len(batch))
        batch.clear()
        return sink.drain()

    for row in source.rows:
        batch.append(row)
        if len(batch) >= chunk_rows:
            yield flush()
    if batch:
        yield flush()
    writer.close()
    yield sink.drain()


def export_chunks(
    source: ExportSource,
    fmt: ExportFormat,
    *,
    chunk_rows: int = 50_000,
    on_rows: RowCallback = _noop,
) -> Iterator[bytes]:
    """The file of ``source`` in ``fmt``, as byte chunks, rows read lazily.

    Args:
        source: Columns and rows.
        fmt: File format.
        chunk_rows: Rows per CSV chunk / Parquet row group (CSV from batches: a chunk per
            batch).
        on_rows: Called with the rows written since the last call.
    """
    if fmt is ExportFormat.CSV:
        return _csv_chunks(source, chunk_rows, on_rows)
    if fmt is ExportFormat.XLSX:
        return _xlsx_chunks(source, chunk_rows, on_rows)
    return _parquet_chunks(source, chunk_rows, on_rows)


def write_export(
    source: ExportSource,
    fmt: ExportFormat,
    path: Path,
    *,
    chunk_rows: int = 50_000,
    on_rows: RowCallback = _noop,
) -> int:
    """Write ``source`` to ``path`` as ``fmt``; returns the number of rows."""
    total = 0

    def count(rows: int) -> None:
        nonlocal total
        total += rows
        on_rows(rows)

    with path.open("wb") as out:
        for block in export_chunks(source, fmt, chunk_rows=chunk_rows, on_rows=count):
            out.write(block)
    logger.info("wrote %d rows of %s to %s", total, source.dataset, path)
    return total
