"""The line-protocol time-series backend: InfluxDB 2.x/3.x or VictoriaMetrics.

Points are written in the InfluxDB line protocol through ``influxdb-client``'s synchronous
write API, from one sender thread that drains a bounded outbox:

- **batching**: up to ``batch_size`` points per request, sent when a batch is full or
  ``flush_interval_s`` after its first point;
- **retries with backoff**: a batch the server does not take (connection refused, timeout,
  5xx, 429, 401/403/404) is retried with exponential backoff, without limit while the store
  is open, so an outage loses nothing; a batch the server rejects as malformed (400, 422)
  is logged and dropped (retrying cannot help);
- **backpressure**: at most ``max_pending`` points wait in memory; :meth:`write` then blocks
  until the sender catches up, and raises :class:`SeriesBackpressureError` after
  ``write_timeout_s`` (the ingest does not acknowledge the fact, and the broker delivers
  it again);
- **idempotency**: a point's identity is its measurement, tags and timestamp. The
  timestamp is the point's time in nanoseconds plus a sub-microsecond offset derived from
  its id (0-999 ns), so the same fact always gives the same sample (InfluxDB overwrites it,
  VictoriaMetrics deduplicates it with ``-dedup.minScrapeInterval=1ms``), and two facts
  in the same microsecond rarely collide on InfluxDB.

Reads: VictoriaMetrics through ``/api/v1/export`` (series ``<measurement>_<field>``, tags
as labels; string fields are not written there, every value reads back as a float and
times are whole milliseconds); InfluxDB through ``influxdb-client``'s Flux query API. The
fact id is not stored on these servers: points read back have ``id == ""``.

Columnar reads (:meth:`LineProtocolStore.read_columns`, for exports): VictoriaMetrics
through ``/api/v1/export/csv`` (one request per hour of time, parsed by ``pyarrow.csv``
and pivoted from one row per sample to one row per point with numpy); InfluxDB through
:meth:`~LineProtocolStore.query`, an hour at a time
(:func:`~aggregator.store.timeseries.columns_via_query`).

Example:
    >>> store = LineProtocolStore("http://127.0.0.1:8428", flavour="victoriametrics")
    >>> store.write(points)  # doctest: +SKIP
    >>> store.close()  # flushes what is queued
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import threading
import time
import urllib.parse
import urllib.request
from collections import deque
from collections.abc import Iterator, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any, Literal, cast

import urllib3
from influxdb_client import InfluxDBClient, WritePrecision
from influxdb_client.client.write_api import SYNCHRONOUS
from influxdb_client.rest import ApiException

from aggregator.store.points import SeriesTextCache, to_micros
from aggregator.store.series_reads import (
    flux_string,
    flux_time,
    group_points,
    to_millis,
    victoria_csv_columns,
    victoria_range,
)
from aggregator.store.timeseries import FieldValue, Point, PointColumns, columns_via_query

logger = logging.getLogger(__name__)

Flavour = Literal["victoriametrics", "influxdb"]

_DROP_STATUSES = frozenset({400, 422})
"""Statuses of a malformed batch: retrying cannot help, it is dropped (and logged)."""


_NS = cast(WritePrecision, WritePrecision.NS)  # typed as str by the client


class SeriesBackpressureError(TimeoutError):
    """The time-series server does not keep up: the outbox stayed full for the timeout."""


def point_timestamp_ns(point: Point) -> int:
    """The point's line-protocol timestamp: its time in ns plus 0-999 ns from its id.

    Deterministic, so writing the same point again writes the same sample.

    Raises:
        ValueError: The point has no id or a naive time.

    Example:
        >>> from datetime import UTC
        >>> t = datetime(2026, 11, 2, 2, 0, tzinfo=UTC)
        >>> p = Point("queue", {"hall": "h1"}, {"waiting": 3}, t, "f1")
        >>> point_timestamp_ns(p) // 1000 == int(t.timestamp()) * 1_000_000
        True
    """
    if not point.id:
        raise ValueError(f"point of {point.measurement} has no id")
    micros = to_micros(point.time)  # raises for a naive time
    digest = hashlib.blake2b(point.id.encode(), digest_size=4).digest()
    return micros * 1000 + int.from_bytes(digest, "big") % 1000


_ESCAPE_MEASUREMENT = str.maketrans({",": r"\,", " ": r"\ ", "\n": r"\n", "\t": r"\t", "\r": r"\r"})
_ESCAPE_KEY = str.maketrans(
    {",": r"\,", "=": r"\=", " ": r"\ ", "\n": r"\n", "\t": r"\t", "\r": r"\r"}
)
_ESCAPE_STRING = str.maketrans({'"': r"\"", "\\": r"\\"})
"""The line protocol's escapes, as ``influxdb-client``'s ``Point`` applies them."""

_FIELD_KEYS_MAX = 4096
_field_keys: dict[str, str] = {}


def _format_series_key(measurement: str, tags: Mapping[str, str]) -> str:
    """``measurement,tag=value,…`` escaped, tags sorted, empty values left out."""
    parts = [measurement.translate(_ESCAPE_MEASUREMENT)]
    for name, value in sorted(tags.items()):
        escaped = str(value).translate(_ESCAPE_KEY)
        if escaped.endswith("\\"):
            escaped += " "
        if name != "" and escaped != "":
            parts.append(f"{str(name).translate(_ESCAPE_KEY)}={escaped}")
    return ",".join(parts)


_series_key = SeriesTextCache(_format_series_key)
"""Series keys, formatted once per series."""


def _field(name: str, value: FieldValue, numeric_only: bool) -> str | None:
    """``name=value`` in the line protocol, or None when the value is left out."""
    key = _field_keys.get(name)
    if key is None:
        key = name.translate(_ESCAPE_KEY)
        if len(_field_keys) < _FIELD_KEYS_MAX:
            _field_keys[name] = key
    if isinstance(value, bool):
        return f"{key}={'true' if value else 'false'}"
    if isinstance(value, int):
        return f"{key}={value}i"
    if isinstance(value, float):
        if not math.isfinite(value):
            return None
        text = str(value)
        return f"{key}={text[:-2] if text.endswith('.0') else text}"
    if isinstance(value, str):
        return None if numeric_only else f'{key}="{value.translate(_ESCAPE_STRING)}"'
    raise ValueError(f"field {name!r}: {type(value).__name__} is not a field value")


def to_line(point: Point, *, numeric_only: bool = False) -> str | None:
    """One point as a line of the line protocol: what ``influxdb-client``'s ``Point``
    writes for it (tags and fields sorted, values escaped), at a fraction of the cost.

    Args:
        point: The point (with an id).
        numeric_only: Leave out string fields (VictoriaMetrics stores them as 0).

    Returns:
        The line, or None if no field is left (NaN and infinite values are left out too).

    Raises:
        ValueError: The point has no id or a naive time, or a field value is not a
            :data:`~aggregator.store.timeseries.FieldValue`.

    Example:
        >>> from datetime import UTC
        >>> t = datetime(2026, 11, 2, 2, 0, tzinfo=UTC)
        >>> print(to_line(Point("rating", {"hall": "h1"}, {"score": 5}, t, "f1")))
        rating,hall=h1 score=5i 1793584800000000569
    """
    fields = [
        text
        for name, value in sorted(point.fields.items())
        if (text := _field(name, value, numeric_only)) is not None
    ]
    if not fields:
        return None
    series = _series_key(point.measurement, point.tags)
    return f"{series} {','.join(fields)} {point_timestamp_ns(point)}"


class LineProtocolStore:
    """A :class:`~aggregator.store.timeseries.TimeSeriesStore` on a line-protocol server.

    Args:
        url: Write base URL: InfluxDB ``http://influx:8086``; VictoriaMetrics single node
            ``http://vm:8428``, cluster ``http://vminsert:8480/insert/0/influx``.
        flavour: ``victoriametrics`` or ``influxdb``.
        token: API token (InfluxDB ``Token``; for VictoriaMetrics behind an auth proxy,
            sent as ``Bearer`` on reads).
        org: InfluxDB organization (needed by InfluxDB 2; VictoriaMetrics and InfluxDB 3
            ignore it).
        bucket: InfluxDB bucket (ignored by VictoriaMetrics).
        query_url: Read base URL; None: ``url``. VictoriaMetrics cluster:
            ``http://vmselect:8481/select/0/prometheus``.
        batch_size: Points per write request.
        flush_interval_s: Longest a queued point waits for its batch to fill.
        max_pending: Points held in memory (queued or being sent) before writes block.
        write_timeout_s: How long :meth:`write` blocks on a full outbox before raising.
        backoff_initial_s: First retry delay; doubled per failure up to ``backoff_max_s``.
        backoff_max_s: Longest retry delay.
        request_timeout_s: Timeout of one HTTP request.
        close_timeout_s: How long :meth:`close` tries to send what is queued.
    """

    def __init__(
        self,
        url: str,
        *,
        flavour: Flavour,
        token: str | None = None,
        org: str = "",
        bucket: str = "hallwatch",
        query_url: str | None = None,
        batch_size: int = 500,
        flush_interval_s: float = 1.0,
        max_pending: int = 100_000,
        write_timeout_s: float = 30.0,
        backoff_initial_s: float = 0.5,
        backoff_max_s: float = 30.0,
        request_timeout_s: float = 10.0,
        close_timeout_s: float = 30.0,
    ) -> None:
        if flavour not in ("victoriametrics", "influxdb"):
            raise ValueError(f"unknown line-protocol flavour {flavour!r}")
        if batch_size < 1 or max_pending < 1:
            raise ValueError("batch_size and max_pending must be positive")
        self.url = url.rstrip("/")
        self.query_url = (query_url or url).rstrip("/")
        self.flavour = flavour
        self.org = org
        self.bucket = bucket
        self.batch_size = batch_size
        self.flush_interval_s = flush_interval_s
        self.max_pending = max_pending
        self.write_timeout_s = write_timeout_s
        self.backoff_initial_s = backoff_initial_s
        self.backoff_max_s = backoff_max_s
        self.request_timeout_s = request_timeout_s
        self.close_timeout_s = close_timeout_s
        self._token = token
        self._client = InfluxDBClient(
            self.url,
            token=token or "",
            org=org or "-",  # the client needs one; VictoriaMetrics and InfluxDB 3 ignore it
            timeout=int(request_timeout_s * 1000),
            retries=False,  # the sender retries, with backoff and without limit
        )
        self._write_api = self._client.write_api(write_options=SYNCHRONOUS)
        self._cond = threading.Condition()
        self._outbox: deque[str] = deque()
        self._unsent = 0  # queued + being sent
        self._urgent = 0  # flush() callers waiting
        self._queued = 0  # points ever queued (a mark)
        self._written = 0  # points ever taken by the server, or refused as malformed
        self._awaited = 0  # the highest mark written() was asked about
        self._closing = False
        self._abandon = threading.Event()
        self.sent = 0
        """Points the server accepted."""
        self.dropped = 0
        """Points the server rejected as malformed (400/422)."""
        self.lost = 0
        """Points still unsent when :meth:`close` gave up."""
        self._sender = threading.Thread(target=self._run, name="hallwatch-series", daemon=True)
        self._sender.start()

    @property
    def pending(self) -> int:
        """Points queued or being sent."""
        with self._cond:
            return self._unsent

    def write(self, points: Sequence[Point]) -> None:
        """Queue points for the server; blocks while ``max_pending`` points are unsent.

        Points already queued when the timeout strikes are still sent; writing them all
        again is harmless (idempotent).

        Raises:
            ValueError: A point has no id or a naive time (nothing is queued).
            SeriesBackpressureError: The outbox stayed full for ``write_timeout_s``.
            RuntimeError: The store is closed.
        """
        numeric_only = self.flavour == "victoriametrics"
        lines = [line for p in points if (line := to_line(p, numeric_only=numeric_only))]
        deadline = time.monotonic() + self.write_timeout_s
        with self._cond:
            if self._closing:
                raise RuntimeError("the time-series store is closed")
            for i, line in enumerate(lines):
                while self._unsent >= self.max_pending and not self._closing:
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        raise SeriesBackpressureError(
                            f"time-series server {self.url} does not keep up: "
                            f"{self._unsent} points unsent for {self.write_timeout_s:g} s, "
                            f"{len(lines) - i} of {len(lines)} not queued"
                        )
                    self._cond.wait(remaining)
                self._outbox.append(line)
                self._unsent += 1
                self._queued += 1
            self._cond.notify_all()

    def mark(self) -> int:
        """How many points were queued so far: :meth:`written` of it says when the server
        has them all (the MQTT ingest acknowledges a batch only then)."""
        with self._cond:
            return self._queued

    def written(self, mark: int) -> bool:
        """Whether the server has every point queued up to ``mark`` (the first ``mark``
        points ever queued; a batch it refused as malformed counts as had: see
        :attr:`dropped`). While not, the sender stops waiting for a full batch."""
        with self._cond:
            if self._written >= mark:
                return True
            if mark > self._awaited:
                self._awaited = mark
                self._cond.notify_all()
            return False

    def flush(self, timeout: float | None = None) -> bool:
        """Send what is queued now; wait until the server has it all.

        Returns:
            Whether nothing is left unsent (False: timed out, e.g. the server is down).
        """
        with self._cond:
            self._urgent += 1
            self._cond.notify_all()
            try:
                return self._cond.wait_for(lambda: self._unsent == 0, timeout)
            finally:
                self._urgent -= 1

    def close(self, timeout: float | None = None) -> None:
        """Send what is queued (for up to ``timeout``, default ``close_timeout_s``), stop.

        Points the server still has not taken then are logged as lost (see :attr:`lost`).
        """
        with self._cond:
            if self._closing:
                return
            self._closing = True
            self._cond.notify_all()
            flushed = self._cond.wait_for(
                lambda: self._unsent == 0,
                self.close_timeout_s if timeout is None else timeout,
            )
        if not flushed:
            self._abandon.set()
        self._sender.join(self.request_timeout_s + 5)
        if self.lost:
            logger.error(
                "time-series store closed with %d points not written to %s", self.lost, self.url
            )
        self._client.close()

    # -- sender ---------------------------------------------------------------------------

    def _run(self) -> None:
        while True:
            batch = self._take_batch()
            if batch is None:
                return
            delivered = self._send(batch)
            with self._cond:
                self._unsent -= len(batch)
                if delivered:
                    self._written += len(batch)
                self._cond.notify_all()

    def _take_batch(self) -> list[str] | None:
        with self._cond:
            self._cond.wait_for(lambda: bool(self._outbox) or self._closing)
            if not self._outbox:
                return None  # closing and nothing left
            if len(self._outbox) < self.batch_size:
                self._cond.wait_for(
                    lambda: (
                        len(self._outbox) >= self.batch_size
                        or self._urgent > 0
                        or self._awaited > self._written
                        or self._closing
                    ),
                    self.flush_interval_s,
                )
            n = min(self.batch_size, len(self._outbox))
            return [self._outbox.popleft() for _ in range(n)]

    def _send(self, batch: list[str]) -> bool:
        """Send a batch until the server takes or refuses it (True), or until :meth:`close`
        gives up (False: the batch and the rest of the outbox are lost)."""
        delay = self.backoff_initial_s
        failures = 0
        body = "\n".join(batch)  # one record: the client serialises a list line by line
        while True:
            try:
                self._write_api.write(self.bucket, self.org or "-", body, write_precision=_NS)
            except ApiException as exc:
                if exc.status in _DROP_STATUSES:
                    self.dropped += len(batch)
                    logger.error(
                        "time-series server rejected %d points (HTTP %s): %s",
                        len(batch),
                        exc.status,
                        (exc.body or "")[:300],
                    )
                    return True
                reason = f"HTTP {exc.status}"
                delay = max(delay, _retry_after(exc))
            except (urllib3.exceptions.HTTPError, OSError) as exc:
                reason = type(exc).__name__
            except Exception as exc:  # never let the sender die: points would pile up
                logger.exception("unexpected error writing time series to %s", self.url)
                reason = type(exc).__name__
            else:
                self.sent += len(batch)
                if failures:
                    logger.info(
                        "time-series server %s is back after %d failed attempts", self.url, failures
                    )
                return True
            failures += 1
            if self._abandon.is_set():
                self.lost += len(batch) + self._drain()
                return False
            log = logger.warning if failures == 1 else logger.debug
            log(
                "time-series write to %s failed (%s), attempt %d; retrying in %.1f s",
                self.url,
                reason,
                failures,
                delay,
            )
            if self._abandon.wait(delay):
                self.lost += len(batch) + self._drain()
                return False
            delay = min(delay * 2, self.backoff_max_s)

    def _drain(self) -> int:
        with self._cond:
            n = len(self._outbox)
            self._outbox.clear()
            self._unsent -= n
            self._cond.notify_all()
        return n

    # -- reads ----------------------------------------------------------------------------

    def query(
        self,
        measurement: str,
        *,
        hall: str,
        start: datetime,
        end: datetime,
        tags: Mapping[str, str] | None = None,
    ) -> list[Point]:
        """Points of one measurement and hall with ``start <= time < end``, oldest first.

        On VictoriaMetrics times and bounds are compared in whole milliseconds.
        """
        wanted = {"hall": hall, **(tags or {})}
        if start.tzinfo is None or end.tzinfo is None:
            raise ValueError("query bounds must be timezone-aware")
        if self.flavour == "victoriametrics":
            points = self._query_victoria(measurement, wanted, start, end)
        else:
            points = self._query_influx(measurement, wanted, start, end)
        return sorted(points, key=lambda p: (p.time, sorted(p.tags.items())))

    def _victoria_get(self, path: str, params: Mapping[str, str]) -> bytes:
        request = urllib.request.Request(f"{self.query_url}{path}?{urllib.parse.urlencode(params)}")
        if self._token:
            request.add_header("Authorization", f"Bearer {self._token}")
        with urllib.request.urlopen(request, timeout=self.request_timeout_s) as response:
            return bytes(response.read())

    def _query_victoria(
        self, measurement: str, wanted: Mapping[str, str], start: datetime, end: datetime
    ) -> list[Point]:
        start_ms, end_ms = to_millis(start), to_millis(end)
        if end_ms <= start_ms:
            return []
        params = victoria_range(measurement, wanted, start_ms, end_ms)
        body = self._victoria_get("/api/v1/export", params).decode()
        rows: list[tuple[dict[str, str], str, int, FieldValue]] = []
        prefix = measurement + "_"
        for text in body.splitlines():
            if not text.strip():
                continue
            series = json.loads(text)
            labels: dict[str, str] = dict(series["metric"])
            name = labels.pop("__name__", "")
            if not name.startswith(prefix):
                continue
            for value, ts in zip(series["values"], series["timestamps"], strict=True):
                if start_ms <= ts < end_ms:
                    rows.append((labels, name[len(prefix) :], int(ts) * 1000, float(value)))
        return group_points(measurement, rows)

    def _query_influx(
        self, measurement: str, wanted: Mapping[str, str], start: datetime, end: datetime
    ) -> list[Point]:
        conditions = [f"r._measurement == {flux_string(measurement)}"]
        conditions += [f"r[{flux_string(k)}] == {flux_string(v)}" for k, v in wanted.items()]
        flux = (
            f"from(bucket: {flux_string(self.bucket)})\n"
            f"  |> range(start: {flux_time(start)}, stop: {flux_time(end)})\n"
            f"  |> filter(fn: (r) => {' and '.join(conditions)})"
        )
        tables = self._client.query_api().query(flux, org=self.org or None)
        rows: list[tuple[dict[str, str], str, int, FieldValue]] = []
        for table in tables:
            for record in table.records:
                values: dict[str, Any] = record.values
                labels = {
                    k: str(v)
                    for k, v in values.items()
                    if not k.startswith("_") and k not in ("result", "table") and v is not None
                }
                if values.get("_value") is None:
                    continue
                when: datetime = values["_time"]
                rows.append((labels, str(values["_field"]), to_micros(when), values["_value"]))
        return group_points(measurement, rows)

    def read_columns(
        self,
        measurement: str,
        *,
        hall: str,
        start: datetime,
        end: datetime,
        tags: Mapping[str, str] | None = None,
        chunk: timedelta = timedelta(hours=1),
    ) -> Iterator[PointColumns]:
        """Points of one measurement and hall in ``[start, end)`` as column chunks, one per
        ``chunk`` of time, in the order of :meth:`query` (time, then tags).

        VictoriaMetrics: the hall's label names from ``/api/v1/labels``, then per chunk
        ``/api/v1/export/csv`` (fields as ``float64``, times in whole milliseconds).
        InfluxDB: :meth:`query` per chunk.
        """
        if start.tzinfo is None or end.tzinfo is None:
            raise ValueError("query bounds must be timezone-aware")
        wanted = {"hall": hall, **(tags or {})}
        if self.flavour != "victoriametrics":
            return columns_via_query(
                self, measurement, hall=hall, start=start, end=end, tags=tags, chunk=chunk
            )
        return self._victoria_columns(measurement, wanted, start, end, chunk)

    def _victoria_columns(
        self,
        measurement: str,
        wanted: Mapping[str, str],
        start: datetime,
        end: datetime,
        chunk: timedelta,
    ) -> Iterator[PointColumns]:
        if to_millis(end) <= to_millis(start):
            return
        whole = victoria_range(measurement, wanted, to_millis(start), to_millis(end))
        names = json.loads(self._victoria_get("/api/v1/labels", whole))["data"]
        labels = sorted(n for n in names if n != "__name__")
        lo = start
        while lo < end:
            hi = min(lo + chunk, end)
            lo_ms, hi_ms = to_millis(lo), to_millis(hi)
            lo = hi
            if hi_ms <= lo_ms:
                continue
            params = victoria_range(measurement, wanted, lo_ms, hi_ms)
            params["format"] = ",".join(["__name__", "__timestamp__:unix_ms", "__value__", *labels])
            body = self._victoria_get("/api/v1/export/csv", params)
            cols = victoria_csv_columns(measurement, body, labels, lo_ms, hi_ms)
            if len(cols):
                yield cols


def _retry_after(exc: ApiException) -> float:
    try:
        headers: Any = exc.headers or {}
        return min(float(headers.get("Retry-After", 0)), 300.0)
    except (TypeError, ValueError):
        return 0.0
