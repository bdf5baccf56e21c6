"""Points and the time-series store's interface: :class:`Point`, :class:`TimeSeriesStore`,
and the columnar read exports use (:class:`PointColumns`, :class:`ColumnarSeriesStore`,
:func:`series_columns`).

A :class:`Point` is a measurement with low-cardinality tags (hall, camera, post, window,
kind), fields and a UTC time. Its ``id`` (the fact id) is a dedup key, never a tag:
writing the same point twice (same id and time) stores one point, so replayed facts are
idempotent.

Exports read points as columns (numpy and Arrow arrays) instead of one :class:`Point` per
point: :class:`ColumnarSeriesStore` is the optional capability, and :func:`series_columns`
reads any store that way (through ``query()`` window by window when the store has no
columnar read of its own).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt
import pyarrow as pa

logger = logging.getLogger(__name__)

FieldValue = float | int | str | bool


@dataclass(slots=True)
class Point:
    """One time-series point (not frozen, read-only by convention: a frozen dataclass's
    ``__init__`` sets each field through ``object.__setattr__``, ~1.3 µs more, and one is
    made per fact).

    Attributes:
        measurement: Measurement name, e.g. ``post_presence``.
        tags: Low-cardinality indexed labels (hall, camera, post, window, kind).
        fields: Values.
        time: UTC time of the point.
        id: Dedup key (the fact id): the same id and time written twice is one point.
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


@runtime_checkable
class QueuedSeriesStore(Protocol):
    """A :class:`TimeSeriesStore` whose ``write`` queues points for a server (the
    line-protocol store). With ``series_ack_when_written`` the MQTT ingest acknowledges a
    batch of facts only once the server has its points, so facts whose points were still
    queued when the process stopped are delivered again (and their points written again:
    they are idempotent)."""

    def mark(self) -> int:
        """A mark of what was queued so far."""
        ...

    def written(self, mark: int) -> bool:
        """Whether everything queued up to ``mark`` is on the server."""
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
                from_micros(int(us)),
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
        np.array([to_micros(p.time) for p in points], dtype=np.int64),
        {k: typed_array([tag_text(p.tags.get(k)) for p in points]) for k in tag_keys},
        {k: typed_array([p.fields.get(k) for p in points]) for k in field_keys},
    )


def tag_text(value: object) -> str | None:
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


def tags_are_text(tags: Mapping[str, object]) -> bool:
    """Whether every value of a tag set is text: only such a set may be looked up by its
    items (``1 == True``: a number's items would stand for a boolean's too).

    >>> tags_are_text({"hall": "h1"}), tags_are_text({"hall": "h1", "n": 1})
    (True, False)
    """
    return all(type(value) is str for value in tags.values())


class SeriesTextCache:
    """Text a store makes of a series (a measurement and its tag set), made once per
    series: series are few (bounded cardinality) and carry many points.

    Bounded: cleared when ``limit`` series are held. Only tag sets of text are kept
    (:func:`tags_are_text`).

    >>> texts = SeriesTextCache(lambda m, tags: f"{m}{sorted(tags.items())}")
    >>> texts("queue", {"hall": "h1"})
    "queue[('hall', 'h1')]"
    """

    def __init__(self, make: Callable[[str, Mapping[str, str]], str], limit: int = 4096) -> None:
        self._make = make
        self._limit = limit
        self._texts: dict[tuple[str, tuple[tuple[str, str], ...]], str] = {}

    def __call__(self, measurement: str, tags: Mapping[str, str]) -> str:
        """The text of the series (made now if it is not held)."""
        key = (measurement, tuple(tags.items()))
        text = self._texts.get(key)
        if text is None:
            text = self._make(measurement, tags)
            if tags_are_text(tags):
                if len(self._texts) >= self._limit:
                    self._texts.clear()
                self._texts[key] = text
        return text


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)


def to_micros(dt: datetime) -> int:
    if dt.tzinfo is None:
        raise ValueError("time-series times must be timezone-aware")
    return (dt - _EPOCH) // _MICROSECOND


def from_micros(us: int) -> datetime:
    return datetime.fromtimestamp(us // 1_000_000, UTC).replace(microsecond=us % 1_000_000)


# -- the embedded store ---------------------------------------------------------------------
