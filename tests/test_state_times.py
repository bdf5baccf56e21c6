"""Times in the state database on SQLite: ``UTCDateTime``'s one-step conversions write and
read the same text as SQLAlchemy's SQLite ``DATETIME`` (files written before them read
alike), aware UTC times out, naive times refused."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from sqlalchemy import select, text
from sqlalchemy.dialects import sqlite
from sqlalchemy.engine import processors

from aggregator.store.state import EdgeStatusRow, StateStore, UTCDateTime

BEIJING = timezone(timedelta(hours=8))
DIALECT = sqlite.dialect()
STOCK_WRITE = sqlite.DATETIME().bind_processor(DIALECT)


@pytest.mark.parametrize(
    "moment",
    [
        datetime(2026, 11, 2, 1, 0, tzinfo=UTC),
        datetime(2026, 11, 2, 9, 0, 0, 5, tzinfo=BEIJING),  # an offset, a microsecond
        datetime(2026, 12, 31, 23, 59, 59, 999_999, tzinfo=UTC),
        datetime(1, 1, 1, 0, 0, tzinfo=UTC),  # four-digit year, padded
        datetime(2027, 1, 1, 7, 30, tzinfo=BEIJING),  # the day before, in UTC
    ],
)
def test_a_time_is_stored_as_sqlalchemy_stores_it_and_read_back_in_utc(moment: datetime) -> None:
    write = UTCDateTime().bind_processor(DIALECT)
    read = UTCDateTime().result_processor(DIALECT, None)
    assert write is not None and read is not None and STOCK_WRITE is not None
    stored = write(moment)
    assert stored == STOCK_WRITE(moment.astimezone(UTC).replace(tzinfo=None))
    back = read(stored)
    assert back == moment and back.tzinfo is UTC
    assert read(stored) == processors.str_to_datetime(stored).replace(tzinfo=UTC)


def test_null_passes_and_a_naive_time_is_refused() -> None:
    write = UTCDateTime().bind_processor(DIALECT)
    read = UTCDateTime().result_processor(DIALECT, None)
    assert write is not None and read is not None
    assert write(None) is None and read(None) is None
    with pytest.raises(ValueError, match="naive datetime"):
        write(datetime(2026, 11, 2, 1, 0))


def test_rows_round_trip_and_text_of_other_writers_reads_as_utc(tmp_path: Path) -> None:
    state = StateStore(f"sqlite:///{tmp_path / 's.sqlite'}")
    state.create_all()
    at = datetime(2026, 11, 2, 9, 0, 0, 250_000, tzinfo=BEIJING)
    with state.session() as session:
        session.add(EdgeStatusRow(hall="h1", source="e1", state="online", ts=at))
    with state.session() as session:
        raw = session.execute(text("SELECT ts FROM edge_status WHERE source = 'e1'")).scalar()
        assert raw == "2026-11-02 01:00:00.250000"
        session.execute(  # e.g. a migration's SQL, or a tool writing seconds only / an offset
            text(
                "INSERT INTO edge_status (hall, source, state, ts) VALUES "
                "('h1', 'e2', 'offline', '2026-11-02 01:00:00'), "
                "('h1', 'e3', 'offline', '2026-11-02 09:00:00+08:00')"
            )
        )
    with state.session() as session:
        times = dict(session.execute(select(EdgeStatusRow.source, EdgeStatusRow.ts)).all())
    assert times == {
        "e1": at,
        "e2": datetime(2026, 11, 2, 1, 0, tzinfo=UTC),
        "e3": datetime(2026, 11, 2, 1, 0, tzinfo=UTC),
    }
    assert all(t.tzinfo is UTC for t in times.values())
    state.dispose()
