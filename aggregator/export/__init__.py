"""Exports for auditors: datasets streamed as CSV, XLSX or Parquet, with an audit log.

- :mod:`aggregator.export.sources`: per-dataset row sources (``alerts``, ``anomalies``,
  ``anomaly_transitions``, ``series/<measurement>``, ``audit``) reading the stores page by
  page or time window by time window, so memory stays flat;
- :mod:`aggregator.export.columnar`: series datasets as Arrow record batches (the fast
  path of CSV and Parquet), from the stores' columnar read;
- :mod:`aggregator.export.writers`: CSV / XLSX / Parquet as a stream of byte chunks;
- :mod:`aggregator.export.audit`: the export audit log (who, when, what, how many rows).
"""

from aggregator.export.audit import ExportAudit, ExportRecord, record_export
from aggregator.export.sources import (
    Column,
    ExportQuery,
    ExportSource,
    UnknownDatasetError,
    open_audit_source,
    open_source,
)
from aggregator.export.timefmt import TimeFormat, format_time, format_times
from aggregator.export.writers import ExportFormat, export_chunks, write_export

__all__ = [
    "Column",
    "ExportAudit",
    "ExportFormat",
    "ExportQuery",
    "ExportRecord",
    "ExportSource",
    "TimeFormat",
    "UnknownDatasetError",
    "export_chunks",
    "format_time",
    "format_times",
    "open_audit_source",
    "open_source",
    "record_export",
    "write_export",
]
