"""Import files of daily data: the template as CSV or XLSX, and which one a body is.

Both formats have the same columns (:data:`~aggregator.reports.daily_data.TEMPLATE_HEADER`)
and go through the same check (:func:`~aggregator.reports.daily_data.parse_rows`); this
module only turns a workbook's cells into the values a CSV line would hold:

- the first worksheet is read (openpyxl read-only mode, cached values of formulas; at
  most :data:`MAX_UNZIPPED_BYTES` unzipped);
- a date cell (an Excel date, no time of day) becomes ``YYYY-MM-DD``; a date *and* time
  stays as it is and fails the ``day`` check; a date typed as text is checked as text;
- a whole number stored as a float (``1.0``) becomes ``1`` (window ``1``, not ``1.0``);
  numbers and numbers typed as text are both accepted as values;
- trailing empty cells are dropped and short rows padded, so a blank ``note`` needs no
  cell; rows with nothing in them (trailing rows formatted but empty) are skipped.

Problems name rows as ``row N`` (the sheet's row number) and the sheet when the workbook
has more than one.

Example:
    >>> entries, problems = parse_xlsx(template_xlsx())
    >>> entries, problems
    ([], [])
"""

from __future__ import annotations

import io
import logging
import zipfile
from collections.abc import Collection, Iterator, Sequence
from datetime import date, datetime, time
from enum import StrEnum

from openpyxl import Workbook, load_workbook
from openpyxl.styles import Font
from openpyxl.utils.exceptions import InvalidFileException
from openpyxl.worksheet._read_only import ReadOnlyWorksheet
from openpyxl.worksheet.datavalidation import DataValidation

from aggregator.reports.daily import workbook_bytes
from aggregator.reports.daily_data import (
    ITEMS,
    TEMPLATE_HEADER,
    DailyEntry,
    EntryProblem,
    parse_csv,
    parse_rows,
)

logger = logging.getLogger(__name__)

XLSX_MEDIA_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
MAX_UNZIPPED_BYTES = 64 << 20
"""Largest workbook accepted, unzipped (a small upload can inflate a thousandfold)."""
TEMPLATE_SHEET = "daily_data"

_ZIP_MAGIC = b"PK\x03\x04"
_OLE_MAGIC = b"\xd0\xcf\x11\xe0"


class ImportFormat(StrEnum):
    """Formats of an import file."""

    CSV = "csv"
    XLSX = "xlsx"


def import_format(content: bytes, content_type: str = "", filename: str = "") -> ImportFormat:
    """Which format an uploaded body is in.

    The file name's suffix decides, else the ``Content-Type``, else the bytes (a ZIP
    archive is a workbook, anything else CSV).

    Example:
        >>> import_format(b"day,source", "application/octet-stream", "x.XLSX").value
        'xlsx'
        >>> import_format(b"day,source", "text/csv; charset=utf-8").value
        'csv'
    """
    name = filename.strip().lower()
    if name.endswith(".xlsx"):
        return ImportFormat.XLSX
    if name.endswith(".csv"):
        return ImportFormat.CSV
    media = content_type.split(";", 1)[0].strip().lower()
    if media == XLSX_MEDIA_TYPE:
        return ImportFormat.XLSX
    if media in ("text/csv", "text/plain", "application/csv"):
        return ImportFormat.CSV
    return ImportFormat.XLSX if content.startswith(_ZIP_MAGIC) else ImportFormat.CSV


def cell_value(value: object) -> object:
    """A workbook cell's value as a CSV line would hold it (see the module notes).

    Example:
        >>> cell_value(datetime(2026, 11, 23)), cell_value(2.0), cell_value(7.5)
        ('2026-11-23', 2, 7.5)
        >>> cell_value(datetime(2026, 11, 23, 10, 30))
        '2026-11-23 10:30:00'
    """
    if isinstance(value, datetime):
        return value.date().isoformat() if value.time() == time(0) else value.isoformat(" ")
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e15:
        return int(value)
    return value


def _rows(rows: Iterator[Sequence[object]]) -> Iterator[list[object]]:
    for raw in rows:
        row = [cell_value(v) for v in raw]
        while row and (row[-1] is None or str(row[-1]).strip() == ""):
            row.pop()
        if 0 < len(row) < len(TEMPLATE_HEADER):
            row += [None] * (len(TEMPLATE_HEADER) - len(row))
        yield row


def parse_xlsx(
    content: bytes, windows: Collection[str] = ()
) -> tuple[list[DailyEntry], list[EntryProblem]]:
    """Parse an XLSX import file (the template's first sheet) with the CSV file's checks.

    Args:
        content: The workbook's bytes.
        windows: The hall's window ids (empty: any).

    Returns:
        The entries and every problem (``row N: field: message``); store nothing when
        there is any.
    """
    if content.startswith(_OLE_MAGIC):
        return [], [
            EntryProblem(1, "file", "an .xls (Excel 97-2003) file: save it as .xlsx", "row")
        ]
    try:
        with zipfile.ZipFile(io.BytesIO(content)) as archive:
            unzipped = sum(i.file_size for i in archive.infolist())
        if unzipped > MAX_UNZIPPED_BYTES:
            return [], [EntryProblem(1, "file", "workbook over 64 MiB unzipped", "row")]
        book = load_workbook(io.BytesIO(content), read_only=True, data_only=True)
    except (zipfile.BadZipFile, InvalidFileException, KeyError, ValueError, OSError) as exc:
        logger.info("daily data import: not a workbook (%s)", exc)
        return [], [EntryProblem(1, "file", "not an XLSX workbook", "row")]
    try:
        names = book.sheetnames
        sheet = book[names[0]]
        label = names[0] if len(names) > 1 else None
        if isinstance(sheet, ReadOnlyWorksheet):
            sheet.reset_dimensions()  # rows as long as their cells, not a claimed width
        rows = sheet.iter_rows(values_only=True)
        return parse_rows(_rows(rows), windows, unit="row", sheet=label)
    finally:
        book.close()


def parse_import(
    content: bytes,
    windows: Collection[str] = (),
    *,
    content_type: str = "",
    filename: str = "",
) -> tuple[list[DailyEntry], list[EntryProblem]]:
    """Parse an uploaded import file, CSV or XLSX (:func:`import_format`).

    A CSV body must be UTF-8 (BOM allowed); a workbook sent as CSV is named as such, and an
    old ``.xls`` file is refused with a hint, whatever it was sent as.
    """
    fmt = import_format(content, content_type, filename)
    if fmt is ImportFormat.XLSX or content.startswith(_OLE_MAGIC):
        return parse_xlsx(content, windows)
    if content.startswith(_ZIP_MAGIC):
        return [], [EntryProblem(1, "file", "a workbook sent as CSV: send it as .xlsx")]
    try:
        text = content.decode("utf-8")
    except UnicodeDecodeError:
        return [], [EntryProblem(1, "file", "not UTF-8 (save the CSV as UTF-8)")]
    return parse_csv(text, windows)


def template_xlsx() -> bytes:
    """The import template as a workbook: the header row on sheet ``daily_data``.

    ``day`` is formatted as a date, ``item`` offers the items as a drop-down list; the
    bytes are the same every time.
    """
    book = Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.title = TEMPLATE_SHEET
    sheet.append(list(TEMPLATE_HEADER))
    for cell in sheet[1]:
        cell.font = Font(bold=True)
    for column, width in zip("ABCDEF", (12, 12, 18, 8, 10, 30), strict=True):
        sheet.column_dimensions[column].width = width
        if column == "A":
            sheet.column_dimensions[column].number_format = "yyyy-mm-dd"
    items = DataValidation(type="list", formula1=f'"{",".join(ITEMS)}"', allow_blank=True)
    items.add("C2:C10001")
    sheet.add_data_validation(items)
    sheet.freeze_panes = "A2"
    return workbook_bytes(book)
