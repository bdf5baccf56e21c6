"""Export throughput and memory: a hall's ``post_presence`` series (40 windows, one point
per window every 10 s) exported as CSV and Parquet through :mod:`aggregator.export`.

A hall-month at 10 s resolution is ~10 M points (40 × 8,640 × 30); ``--points`` sets how
many are generated (default 1,000,000; 10,000,000 is the hall-month). Points go into the
embedded SQLite time-series store through ``write`` in batches of 50,000 (ids ordered in
time, like the ULIDs of facts), then each format is exported to a temporary file through
the columnar read path (after an ``os.sync()``, so that writing back the freshly generated
file does not run during the export). The last line is JSON::

    {"points": …, "csv_rows_per_s": …, "parquet_rows_per_s": …, "peak_rss_mb": …,
     "machine": {"cpu": …, "cpus": …}}

``peak_rss_mb`` is the process's peak resident set (generation included): it stays flat
when ``--points`` grows, since points are read at most 32,768 at a time.

Run: ``.venv/bin/python benchmarks/export.py [--points N]``.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import resource
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from _machine import machine

from aggregator.export import ExportFormat, ExportQuery, open_source, write_export
from aggregator.store.state import StateStore
from aggregator.store.timeseries import Point, SqliteTimeSeriesStore
from hallwatch.config.models import HallConfig

logger = logging.getLogger(__name__)

WINDOWS = 40
STEP_S = 10
START = datetime(2026, 10, 1, tzinfo=UTC)


def _hall() -> HallConfig:
    return HallConfig.model_validate(
        {
            "hall": {"id": "h1", "name": "基准大厅", "timezone": "Asia/Shanghai"},
            "cameras": [{"id": "c1", "url": "rtsp://127.0.0.1/c1", "width": 640, "height": 480}],
            "posts": [
                {
                    "id": "w1", "name": "1号窗口", "kind": "front_desk", "window": "1",
                    "camera": "c1", "polygon": [[0, 0], [10, 0], [10, 10]],
                }
            ],
        }
    )  # fmt: skip


def fill(series: SqliteTimeSeriesStore, points: int, batch: int = 50_000) -> datetime:
    """Write ``points`` presence points (40 windows every 10 s); returns the end time."""
    tags = [
        {"hall": "h1", "camera": f"c{w // 4}", "post": f"w{w}", "window": str(w + 1)}
        for w in range(WINDOWS)
    ]
    states: list[dict[str, float | int | str | bool]] = [
        {"on_post": on, "summary": "ok"} for on in (0, 1)
    ]
    pending: list[Point] = []
    for step in range(-(-points // WINDOWS)):
        at = START + timedelta(seconds=STEP_S * step)
        for window in range(min(WINDOWS, points - step * WINDOWS)):
            k = step * WINDOWS + window
            fields = states[(step // 30 + window) % 2]
            pending.append(Point("post_presence", tags[window], fields, at, f"{k:012d}"))
        if len(pending) >= batch:
            series.write(pending)
            pending = []
    series.write(pending)
    return START + timedelta(seconds=STEP_S * (points // WINDOWS + 1))


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; prints the JSON result line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--points", type=int, default=1_000_000, help="Points to generate.")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    result: dict[str, float | int] = {"points": args.points}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        series = SqliteTimeSeriesStore(folder / "series.sqlite")
        t = time.perf_counter()
        end = fill(series, args.points)
        print(f"generated {args.points} points in {time.perf_counter() - t:.1f} s", file=sys.stderr)
        os.sync()  # the file's write-back (GBs at 10 M points) is not the export's time
        state = StateStore(f"sqlite:///{folder / 'state.sqlite'}")
        query = ExportQuery(hall=_hall(), since=START, until=end)
        for fmt in (ExportFormat.CSV, ExportFormat.PARQUET):
            source = open_source("series/post_presence", query, state=state, series=series)
            t = time.perf_counter()
            rows = write_export(source, fmt, folder / f"out.{fmt.value}")
            elapsed = time.perf_counter() - t
            size_mb = (folder / f"out.{fmt.value}").stat().st_size / 2**20
            print(
                f"{fmt.value}: {rows} rows in {elapsed:.1f} s, {size_mb:.1f} MiB", file=sys.stderr
            )
            if rows != args.points:
                raise SystemExit(f"{fmt.value}: {rows} rows, expected {args.points}")
            result[f"{fmt.value}_rows_per_s"] = round(rows / elapsed)
        series.close()
        state.dispose()
    result["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    print(json.dumps({**result, "machine": machine()}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
