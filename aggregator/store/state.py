"""Events and state: SQLAlchemy 2 models and the :class:`StateStore`.

Everything a replica needs lives here, not in memory: the dedup ledger of fact ids, the
live state of posts, devices, zones and edges, alerts, and the dead letters (evidence
snapshots are in :mod:`aggregator.store.evidence`, on the same ``Base``). SQLite by default
(WAL, ``BEGIN IMMEDIATE`` for writes), PostgreSQL by URL. ``Base.metadata`` is what the
Alembic migrations (:mod:`aggregator.store.migrate`) target; :meth:`StateStore.migrate`
brings a database to their newest revision.

All datetimes are timezone-aware UTC in Python; SQLite stores them as naive UTC text
(:class:`UTCDateTime` restores the zone).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Collection, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, cast

from sqlalchemy import (
    DateTime,
    Engine,
    Float,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    create_engine,
    delete,
    event,
    func,
    select,
    text,
)
from sqlalchemy.engine import CursorResult, Dialect, make_url
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, sessionmaker
from sqlalchemy.pool import StaticPool
from sqlalchemy.types import TypeDecorator

from hallwatch.contract import AlertState, utcnow
from hallwatch.privacy import mask_id_numbers, mask_id_numbers_text

if TYPE_CHECKING:
    from aggregator.store.migrate import UpgradeOutcome

logger = logging.getLogger(__name__)

DEAD_LETTER_MAX_PAYLOAD = 64 * 1024
"""Dead-lettered payloads are truncated to this many bytes."""


def _to_utc(value: datetime) -> datetime:
    """A time to store, in UTC.

    Raises:
        ValueError: It is naive.
    """
    if value.tzinfo is None:
        raise ValueError(f"naive datetime {value!r}: store timezone-aware UTC times")
    return value.astimezone(UTC)


def _as_utc(value: datetime) -> datetime:
    """A stored time as an aware UTC time (naive: UTC; with an offset: converted)."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _sqlite_utc_text(value: datetime | None) -> str | None:
    """A UTC time as SQLAlchemy's SQLite ``DATETIME`` stores it (``2026-11-02
    01:00:00.000000``), in one step.

    >>> from datetime import timedelta, timezone
    >>> _sqlite_utc_text(datetime(2026, 11, 2, 9, 0, 0, 5, tzinfo=timezone(timedelta(hours=8))))
    '2026-11-02 01:00:00.000005'
    """
    if value is None:
        return None
    return _to_utc(value).replace(tzinfo=None).isoformat(" ", "microseconds")


def _sqlite_utc_time(value: str | None) -> datetime | None:
    """A stored SQLite ``DATETIME`` text as an aware UTC time.

    >>> _sqlite_utc_time("2026-11-02 01:00:00.000005"), _sqlite_utc_time("2026-11-02 01:00:00")
    ... # doctest: +NORMALIZE_WHITESPACE
    (datetime.datetime(2026, 11, 2, 1, 0, 0, 5, tzinfo=datetime.timezone.utc),
     datetime.datetime(2026, 11, 2, 1, 0, tzinfo=datetime.timezone.utc))
    >>> _sqlite_utc_time("2026-11-02 09:00:00+08:00")  # text written with an offset
    datetime.datetime(2026, 11, 2, 1, 0, tzinfo=datetime.timezone.utc)
    """
    return None if value is None else _as_utc(datetime.fromisoformat(value))


class UTCDateTime(TypeDecorator[datetime]):
    """A timezone-aware UTC datetime on every backend (SQLite drops the zone).

    On SQLite the conversion to and from the stored text is one function each way
    (:func:`_sqlite_utc_text`, :func:`_sqlite_utc_time`: the same text as SQLAlchemy's
    ``DATETIME`` writes and reads), not this decorator's step chained to the dialect's:
    ingest converts thousands of times a second, and the chain cost ~4 µs a time.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def bind_processor(self, dialect: Dialect) -> Any:
        if dialect.name == "sqlite":
            return _sqlite_utc_text
        return super().bind_processor(dialect)

    def result_processor(self, dialect: Dialect, coltype: Any) -> Any:
        if dialect.name == "sqlite":
            return _sqlite_utc_time
        return super().result_processor(dialect, coltype)

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        value = _to_utc(value)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        return None if value is None else _as_utc(value)


NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}
"""Deterministic constraint names, so Alembic migrations can alter them."""


class Base(DeclarativeBase):
    """Declarative base; ``Base.metadata`` is the schema (Alembic's target)."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map: ClassVar[dict[Any, Any]] = {datetime: UTCDateTime}


LEDGER_PURGE_CHUNK = 500
"""Ledger rows deleted per write transaction by :meth:`StateStore.purge_ledger`."""
LEDGER_SCAN_ROWS = 20_000
"""Ledger rows :meth:`StateStore.purge_ledger` reads per step (a few milliseconds)."""


@dataclass(frozen=True, slots=True)
class LedgerPurge:
    """What one run of :meth:`StateStore.purge_ledger` did.

    Attributes:
        deleted: Ledger rows deleted.
        resume_after: The last id it looked at when its time budget ran out (pass it as
            ``after`` to go on); None when it walked to the end of the ledger.
    """

    deleted: int
    resume_after: str | None


class SeenFact(Base):
    """The dedup ledger: one row per fact id ingested, for ``ledger_retention_days``
    counted from the fact's time (:meth:`StateStore.purge_ledger`; older facts are refused
    at ingest, so a purged row is never needed again).

    One B-tree: clustered by id on SQLite (``WITHOUT ROWID``), no secondary index (every
    fact inserts a row; migration 0007).
    """

    __tablename__ = "seen_facts"
    __table_args__ = ({"sqlite_with_rowid": False},)

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    hall: Mapped[str] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(32))
    ts: Mapped[datetime]
    received_at: Mapped[datetime]


class LedgerHorizon(Base):
    """How far the dedup ledger was purged: one row (``id`` 1; migration 0008).

    :meth:`StateStore.purge_ledger` moves it forward before deleting anything; the ingest
    refuses facts observed before it, whatever its own retention says.
    """

    __tablename__ = "ledger_horizon"

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    forgotten_before: Mapped[datetime]


class PostStatus(Base):
    """Live state of one post (在岗 / 离岗), from presence facts.

    ``clock_banked_s`` and ``clock_from`` are the off-post clock of the current absence:
    in-service seconds already counted while its camera was seen, and the moment counting
    resumed (None while the camera or its edge is offline: the clock is paused).
    """

    __tablename__ = "post_status"

    hall: Mapped[str] = mapped_column(String(64), primary_key=True)
    post: Mapped[str] = mapped_column(String(64), primary_key=True)
    camera: Mapped[str] = mapped_column(String(64))
    window: Mapped[str | None] = mapped_column(String(32))
    source: Mapped[str] = mapped_column(String(64), default="")
    state: Mapped[str] = mapped_column(String(16))
    since: Mapped[datetime]
    last_fact_ts: Mapped[datetime]
    updated_at: Mapped[datetime]
    clock_banked_s: Mapped[float] = mapped_column(Float, default=0.0)
    clock_from: Mapped[datetime | None]
    evidence_id: Mapped[str | None] = mapped_column(String(40), default=None)
    """Snapshot of the current absence (from the presence fact that started it), linked to
    the off-post alert the absence raises; None while on post."""


class DeviceStatus(Base):
    """Live state of one device (cameras and the hall's other devices), from device facts."""

    __tablename__ = "device_status"

    hall: Mapped[str] = mapped_column(String(64), primary_key=True)
    device: Mapped[str] = mapped_column(String(64), primary_key=True)
    kind: Mapped[str] = mapped_column(String(32))
    source: Mapped[str] = mapped_column(String(64), default="")
    state: Mapped[str] = mapped_column(String(16))
    since: Mapped[datetime]
    reason: Mapped[str] = mapped_column(String(500), default="")
    last_fact_ts: Mapped[datetime]


class ZoneStatus(Base):
    """Live state of one zone (区域), from hygiene and occupancy facts.

    The hygiene columns change only when the grade changes (a repeated grade keeps
    ``hygiene_since``); the occupancy columns hold the latest interval. Each side has its
    own "latest fact" stamp, so an older fact never overwrites newer state.
    ``hygiene_evidence_id`` is the snapshot of the current 环境差 episode (linked to its
    alert, which may open later: at the start of service time).
    """

    __tablename__ = "zone_status"

    hall: Mapped[str] = mapped_column(String(64), primary_key=True)
    zone: Mapped[str] = mapped_column(String(64), primary_key=True)
    camera: Mapped[str] = mapped_column(String(64))
    window: Mapped[str | None] = mapped_column(String(32), default=None)
    hygiene_state: Mapped[str | None] = mapped_column(String(16), default=None)
    hygiene_since: Mapped[datetime | None] = mapped_column(default=None)
    hygiene_score: Mapped[float | None] = mapped_column(Float, default=None)
    hygiene_method: Mapped[str | None] = mapped_column(String(16), default=None)
    hygiene_evidence_id: Mapped[str | None] = mapped_column(String(40), default=None)
    hygiene_fact_ts: Mapped[datetime | None] = mapped_column(default=None)
    occupancy_count: Mapped[int | None] = mapped_column(Integer, default=None)
    occupancy_peak: Mapped[int | None] = mapped_column(Integer, default=None)
    occupancy_mean: Mapped[float | None] = mapped_column(Float, default=None)
    occupancy_crowded: Mapped[bool] = mapped_column(default=False)
    occupancy_start: Mapped[datetime | None] = mapped_column(default=None)
    occupancy_at: Mapped[datetime | None] = mapped_column(default=None)
    """End of the latest interval counted (its start + its length)."""
    crowded_since: Mapped[datetime | None] = mapped_column(default=None)
    """Start of the first interval of the current crowding; None when not crowded."""
    updated_at: Mapped[datetime]


class EdgeStatusRow(Base):
    """Last ``online``/``offline`` status of one edge worker (its retained message)."""

    __tablename__ = "edge_status"

    hall: Mapped[str] = mapped_column(String(64), primary_key=True)
    source: Mapped[str] = mapped_column(String(64), primary_key=True)
    state: Mapped[str] = mapped_column(String(16))
    ts: Mapped[datetime]


class Alert(Base):
    """An alert (离岗告警, 设备离线, 环境差, 人员拥挤 …). At most one open alert per hall,
    post and kind, per hall, device and kind (``device`` is set for ``device_offline``
    alerts only) and per hall, zone and kind (``zone`` is set for ``hygiene_bad`` and
    ``crowding``). ``evidence_id`` is the snapshot of an alert from video
    (:class:`aggregator.store.evidence.EvidenceSnapshot`; the row may have been purged by
    the retention since)."""

    __tablename__ = "alerts"
    __table_args__ = (
        Index(
            "alerts_one_open_per_post",
            "hall",
            "post",
            "kind",
            unique=True,
            sqlite_where=text("state = 'open'"),
            postgresql_where=text("state = 'open'"),
        ),
        Index(
            "alerts_one_open_per_device",
            "hall",
            "device",
            "kind",
            unique=True,
            sqlite_where=text("state = 'open' AND device IS NOT NULL"),
            postgresql_where=text("state = 'open' AND device IS NOT NULL"),
        ),
        Index(
            "alerts_one_open_per_zone",
            "hall",
            "zone",
            "kind",
            unique=True,
            sqlite_where=text("state = 'open' AND zone IS NOT NULL"),
            postgresql_where=text("state = 'open' AND zone IS NOT NULL"),
        ),
        Index("alerts_by_hall_start", "hall", "start"),
    )

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    hall: Mapped[str] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(32))
    post: Mapped[str | None] = mapped_column(String(64))
    window: Mapped[str | None] = mapped_column(String(32))
    device: Mapped[str | None] = mapped_column(String(64), default=None)
    zone: Mapped[str | None] = mapped_column(String(64), default=None)
    evidence_id: Mapped[str | None] = mapped_column(String(40), default=None, index=True)
    """Indexed: the evidence purge asks, per old snapshot, whether an alert uses it."""
    state: Mapped[str] = mapped_column(String(16), index=True)
    start: Mapped[datetime]
    end: Mapped[datetime | None]
    opened_at: Mapped[datetime]
    resolved_at: Mapped[datetime | None]
    message: Mapped[str] = mapped_column(String(500), default="")


class DeadLetter(Base):
    """A message that could not be ingested, with the reason."""

    __tablename__ = "dead_letters"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    received_at: Mapped[datetime]
    topic: Mapped[str] = mapped_column(String(512))
    payload: Mapped[bytes] = mapped_column(LargeBinary)
    payload_size: Mapped[int] = mapped_column(Integer)
    reason: Mapped[str] = mapped_column(Text)


def _is_sqlite_memory(url: str) -> bool:
    u = make_url(url)
    return u.get_backend_name() == "sqlite" and (not u.database or u.database == ":memory:")


_READ_ONLY = "hallwatch_read_only"


class _ReentrantTurns:
    """A reusable context manager over an ``RLock``."""

    def __init__(self) -> None:
        self._lock = threading.RLock()

    def __enter__(self) -> None:
        self._lock.acquire()

    def __exit__(self, *_exc: object) -> None:
        self._lock.release()


class StateStore:
    """The state database: engine, sessions and the queries the API needs.

    Args:
        url: SQLAlchemy URL, e.g. ``sqlite:///var/hallwatch.sqlite`` or
            ``postgresql+psycopg://…``. A SQLite file's folder is created.
        echo: Log SQL.
    """

    def __init__(self, url: str, *, echo: bool = False) -> None:
        self.url = url
        parsed = make_url(url)
        kwargs: dict[str, Any] = {"echo": echo}
        self.is_sqlite = parsed.get_backend_name() == "sqlite"
        # An in-memory SQLite database is one connection shared by every thread
        # (StaticPool): transactions must take turns.
        self._turns: AbstractContextManager[Any] = nullcontext()
        if self.is_sqlite:
            kwargs["connect_args"] = {"check_same_thread": False, "timeout": 30}
            if _is_sqlite_memory(url):
                kwargs["poolclass"] = StaticPool
                self._turns = _ReentrantTurns()
            elif parsed.database:
                Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        else:
            kwargs["pool_pre_ping"] = True
        self.engine: Engine = create_engine(url, **kwargs)
        if self.is_sqlite:
            self._sqlite_setup(self.engine, wal=not _is_sqlite_memory(url))
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)
        self._read_sessions = sessionmaker(
            self.engine.execution_options(**{_READ_ONLY: True}), expire_on_commit=False
        )

    @staticmethod
    def _sqlite_setup(engine: Engine, *, wal: bool) -> None:
        @event.listens_for(engine, "connect")
        def _on_connect(dbapi_conn: Any, _record: Any) -> None:
            dbapi_conn.isolation_level = None  # we emit BEGIN ourselves
            cur = dbapi_conn.cursor()
            if wal:
                cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA busy_timeout=30000")
            cur.close()

        @event.listens_for(engine, "begin")
        def _on_begin(conn: Any) -> None:
            # Writers take the write lock up front: no deadlock upgrading a read lock.
            read_only = conn.get_execution_options().get(_READ_ONLY, False)
            conn.exec_driver_sql("BEGIN" if read_only else "BEGIN IMMEDIATE")

    def safe_url(self) -> str:
        """The URL with its password masked, for logs."""
        return make_url(self.url).render_as_string(hide_password=True)

    def migrate(self) -> UpgradeOutcome:
        """Bring the schema to the newest migration (see :mod:`aggregator.store.migrate`).

        A database from before migrations existed is stamped first if its schema is the
        baseline's. An in-memory SQLite database is made by ``create_all`` and stamped
        (twice as fast as running the revisions; the tests check both give one schema).

        Raises:
            aggregator.store.migrate.SchemaMismatchError: Tables without migration history
                that are not the baseline schema.
        """
        from aggregator.store.migrate import upgrade  # it imports this module

        with self._turns:
            return upgrade(self.engine, create_fresh=_is_sqlite_memory(self.url))

    def create_all(self) -> None:
        """Make the schema current: :meth:`migrate` (this name is kept for its callers)."""
        self.migrate()

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A write transaction: committed on success, rolled back on an exception."""
        with self._turns, self._sessions() as session, session.begin():
            yield session

    @contextmanager
    def read_session(self) -> Iterator[Session]:
        """A read-only transaction (does not take SQLite's write lock)."""
        with self._turns, self._read_sessions() as session, session.begin():
            yield session

    def ping(self) -> None:
        """Run ``SELECT 1``.

        Raises:
            sqlalchemy.exc.SQLAlchemyError: The database is unreachable.
        """
        with self.read_session() as session:
            session.execute(text("SELECT 1"))

    def dispose(self) -> None:
        """Close pooled connections."""
        self.engine.dispose()

    # -- writes used outside a fact's transaction ---------------------------------------

    def dead_letter(
        self, topic: str, payload: bytes, reason: str, *, received_size: int | None = None
    ) -> int:
        """Keep an undeliverable message (ID numbers blanked); returns its dead-letter id.

        Args:
            topic: Its topic.
            payload: The payload to keep (the first 64 KiB of it).
            reason: Why it was not ingested.
            received_size: Size of the payload as received, when ``payload`` was
                shortened first (e.g. a snapshot stripped); default ``len(payload)``.
        """
        row = DeadLetter(
            received_at=utcnow(),
            topic=topic[:512],
            payload=mask_id_numbers(bytes(payload[:DEAD_LETTER_MAX_PAYLOAD])),
            payload_size=len(payload) if received_size is None else received_size,
            reason=mask_id_numbers_text(reason[:4000]),
        )
        with self.session() as session:
            session.add(row)
            session.flush()
            return row.id

    def purge_ledger(
        self,
        before: datetime,
        *,
        after: str = "",
        budget_s: float | None = None,
        chunk: int | None = None,
        scan: int | None = None,
    ) -> LedgerPurge:
        """Delete the dedup ledger's rows of facts observed before ``before``.

        The ledger is walked in id order (its primary key; it has no index on time, which
        every fact would pay for at ingest), ``scan`` rows at a time: the old ids of each
        window are found in a read transaction and deleted ``chunk`` at a time, each in a
        short write transaction of its own, so ingest waits for one chunk at most. Every
        step is bounded (a window read, a chunk deleted), and a run that has used up
        ``budget_s`` stops after the step it is in and says where to go on. How far the
        ledger is purged is recorded first (:meth:`ledger_horizon`).

        Args:
            before: Facts observed before this are forgotten.
            after: Start after this id (where an earlier run stopped); "" from the start.
            budget_s: Seconds after which no further step is started (None: no limit).
            chunk: Rows per delete (default :data:`LEDGER_PURGE_CHUNK`; well under every
                database's bound-parameter limit).
            scan: Rows per window read (default :data:`LEDGER_SCAN_ROWS`).

        Returns:
            How many rows were deleted, and where the walk stopped (None: at the end).
        """
        size = chunk or LEDGER_PURGE_CHUNK
        rows = scan or LEDGER_SCAN_ROWS
        started = time.monotonic()

        def spent() -> bool:
            return budget_s is not None and time.monotonic() - started >= budget_s

        self._advance_ledger_horizon(before)
        deleted = 0
        while True:
            window = (
                select(SeenFact.id, SeenFact.ts)
                .where(SeenFact.id > after)
                .order_by(SeenFact.id)
                .limit(rows)
                .subquery()
            )
            with self.read_session() as session:
                seen, last = session.execute(select(func.count(), func.max(window.c.id))).one()
                old = list(session.scalars(select(window.c.id).where(window.c.ts < before)))
            old.sort()
            for start in range(0, len(old), size):
                part = old[start : start + size]
                forget = delete(SeenFact).where(SeenFact.id.in_(part))
                with self.session() as session:  # another replica may delete some first
                    done = session.execute(forget, execution_options={"synchronize_session": False})
                deleted += cast(CursorResult[Any], done).rowcount
                if start + size < len(old) and spent():
                    return LedgerPurge(deleted, part[-1])
            if seen < rows:
                return LedgerPurge(deleted, None)
            after = last
            if spent():
                return LedgerPurge(deleted, after)

    def _advance_ledger_horizon(self, before: datetime) -> None:
        """Record that facts observed before ``before`` are being forgotten (it never moves
        back; replicas inserting the first row at once: the loser updates it)."""
        for attempt in (1, 2):
            try:
                with self.session() as session:
                    row = session.get(LedgerHorizon, 1, with_for_update=True)
                    if row is None:
                        session.add(LedgerHorizon(id=1, forgotten_before=before))
                    elif row.forgotten_before < before:
                        row.forgotten_before = before
                return
            except IntegrityError:
                if attempt == 2:
                    raise

    def ledger_horizon(self) -> datetime | None:
        """How far the dedup ledger was purged: facts observed before it are forgotten
        (None: never purged)."""
        with self.read_session() as session:
            row = session.get(LedgerHorizon, 1)
            return None if row is None else row.forgotten_before

    # -- reads --------------------------------------------------------------------------

    def dead_letters(self, limit: int = 100) -> list[DeadLetter]:
        """Newest dead letters first."""
        with self.read_session() as session:
            stmt = select(DeadLetter).order_by(DeadLetter.id.desc()).limit(limit)
            return list(session.scalars(stmt))

    def seen_count(self, hall: str | None = None) -> int:
        """How many distinct facts the dedup ledger remembers (of one hall, or all): those
        ingested in the last ``ledger_retention_days`` or so (:meth:`purge_ledger`)."""
        stmt = select(func.count()).select_from(SeenFact)
        if hall is not None:
            stmt = stmt.where(SeenFact.hall == hall)
        with self.read_session() as session:
            return int(session.scalar(stmt) or 0)

    def post_statuses(self, hall: str) -> list[PostStatus]:
        """Live state of a hall's posts that have reported."""
        with self.read_session() as session:
            return list(session.scalars(select(PostStatus).where(PostStatus.hall == hall)))

    def device_statuses(self, hall: str) -> list[DeviceStatus]:
        """Live state of a hall's devices that have reported."""
        with self.read_session() as session:
            return list(session.scalars(select(DeviceStatus).where(DeviceStatus.hall == hall)))

    def zone_statuses(self, hall: str) -> list[ZoneStatus]:
        """Live state of a hall's zones that have reported."""
        with self.read_session() as session:
            return list(session.scalars(select(ZoneStatus).where(ZoneStatus.hall == hall)))

    def edge_statuses(self, hall: str) -> list[EdgeStatusRow]:
        """Last status of each edge worker of a hall."""
        with self.read_session() as session:
            stmt = select(EdgeStatusRow).where(EdgeStatusRow.hall == hall)
            return list(session.scalars(stmt))

    def get_alert(self, alert_id: str) -> Alert | None:
        """One alert by id."""
        with self.read_session() as session:
            return session.get(Alert, alert_id)

    def open_alerts(self, hall: str | None = None) -> list[Alert]:
        """Open alerts, oldest first."""
        stmt = select(Alert).where(Alert.state == AlertState.OPEN.value)
        if hall is not None:
            stmt = stmt.where(Alert.hall == hall)
        with self.read_session() as session:
            return list(session.scalars(stmt.order_by(Alert.start)))

    def list_alerts(
        self,
        *,
        hall: str | None = None,
        halls: Collection[str] | None = None,
        kind: str | None = None,
        state: str | None = None,
        post: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        limit: int = 50,
        offset: int = 0,
    ) -> tuple[list[Alert], int]:
        """Alerts matching the filters, newest (by start) first, and the total count.

        ``since``/``until`` bound the alert's start: ``since <= start < until``; ``halls``
        restricts to the halls a caller may see.
        """
        conds = []
        if hall is not None:
            conds.append(Alert.hall == hall)
        if halls is not None:
            conds.append(Alert.hall.in_(list(halls)))
        if kind is not None:
            conds.append(Alert.kind == kind)
        if state is not None:
            conds.append(Alert.state == state)
        if post is not None:
            conds.append(Alert.post == post)
        if since is not None:
            conds.append(Alert.start >= since)
        if until is not None:
            conds.append(Alert.start < until)
        with self.read_session() as session:
            total = session.scalar(select(func.count()).select_from(Alert).where(*conds)) or 0
            stmt = (
                select(Alert)
                .where(*conds)
                .order_by(Alert.start.desc(), Alert.id.desc())
                .limit(limit)
                .offset(offset)
            )
            return list(session.scalars(stmt)), int(total)
