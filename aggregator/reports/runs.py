"""Report runs: the ``report_runs`` table and :class:`ReportRunner`, which produces reports
idempotently, writes their files and pushes them.

Producing a report for a period already in the table rewrites the same files (the
document holds no clock) and, when the digest is unchanged, leaves the row as it is: no
second row, no second push. A changed digest (late facts) updates the row and pushes
again. A failed push stays ``failed`` with its attempts and error, and is retried by the
next :meth:`ReportRunner.tick`.

Catch-up: every tick also produces the reports missed while the aggregator was down
(:func:`~aggregator.reports.schedule.missed_reports`): those of the last ``catch_up_days``
working days, but none due before the hall's first report ever (its earliest
``produced_at``), so a fresh install starts with today's reports only.

Files: ``<report_dir>/<hall>/<kind>/<period>.json`` and ``.xlsx``; the bulletin, which
covers every hall, under hall ``all``.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from pathlib import Path
from typing import Any

from pydantic import SecretStr
from sqlalchemy import Index, Integer, String, UniqueConstraint, func, select
from sqlalchemy.orm import Mapped, mapped_column

from aggregator.reports.daily import (
    build_daily,
    daily_document,
    report_digest,
    write_json,
    write_xlsx,
)
from aggregator.reports.monthly import bulletin_document, monthly_document
from aggregator.reports.push import push_report
from aggregator.reports.schedule import (
    CATCH_UP_WORKING_DAYS,
    ReportKind,
    due_reports,
    previous_cutoff_day,
)
from aggregator.scores import Period
from aggregator.store.state import Base, StateStore
from aggregator.store.timeseries import TimeSeriesStore
from hallwatch.config.models import HallConfig

logger = logging.getLogger(__name__)

ALL_HALLS = "all"
"""The ``hall`` of a bulletin run (it ranks every hall)."""


class PushState:
    """Values of ``report_runs.push_state``."""

    OFF = "off"
    """No push endpoint configured."""
    PENDING = "pending"
    SENT = "sent"
    FAILED = "failed"


class ReportRun(Base):
    """One produced report (one row per hall, kind and period)."""

    __tablename__ = "report_runs"
    __table_args__ = (
        UniqueConstraint("hall", "kind", "period", name="uq_report_runs_hall_kind_period"),
        Index("report_runs_by_push_state", "push_state"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    hall: Mapped[str] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(16))
    period: Mapped[str] = mapped_column(String(10))
    """``YYYY-MM-DD`` (daily) or ``YYYY-MM`` (monthly, bulletin)."""
    produced_at: Mapped[datetime]
    """When the current digest was first produced (kept out of the digest)."""
    digest: Mapped[str] = mapped_column(String(64))
    push_state: Mapped[str] = mapped_column(String(16))
    push_attempts: Mapped[int] = mapped_column(Integer, default=0)
    push_error: Mapped[str] = mapped_column(String(500), default="")
    pushed_at: Mapped[datetime | None]


@dataclass(frozen=True, slots=True)
class RunResult:
    """What one produce call did.

    Attributes:
        run_id: The row's id.
        digest: The report's digest.
        changed: A new row, or a new digest for an existing one.
        push_state: The row's push state afterwards.
        json_path: The JSON file written.
        xlsx_path: The XLSX file written.
    """

    run_id: int
    digest: str
    changed: bool
    push_state: str
    json_path: Path
    xlsx_path: Path


@dataclass(frozen=True, slots=True)
class PushTarget:
    """Where reports are pushed (``url`` None: nowhere) and how hard to try."""

    url: str | None = None
    token: SecretStr | None = None
    retries: int = 3
    timeout_s: float = 10.0
    backoff_s: float = 1.0


def daily_period(day: date, hall: HallConfig, daily_at: time) -> Period:
    """The daily report's period: previous working day's cut-off to ``day``'s (UTC)."""
    cal = hall.service_hours.calendar()
    prev = previous_cutoff_day(day, cal)
    tz = hall.tzinfo
    since = datetime.combine(prev, daily_at, tzinfo=tz).astimezone(UTC)
    until = datetime.combine(day, daily_at, tzinfo=tz).astimezone(UTC)
    return Period(since, until)


class ReportRunner:
    """Produces, stores and pushes the scheduled reports of every hall.

    Args:
        state: The state database (``report_runs``, and the data reported).
        series: The series store.
        halls: Hall configs by id.
        report_dir: Where report files go.
        daily_at: Hall-local time of the daily report (before 17:00).
        push: The push endpoint.
        catch_up_days: Working days before today whose missed reports a tick produces
            (0: no catch-up).
    """

    def __init__(
        self,
        state: StateStore,
        series: TimeSeriesStore,
        halls: Mapping[str, HallConfig],
        report_dir: Path,
        daily_at: time,
        push: PushTarget | None = None,
        catch_up_days: int = CATCH_UP_WORKING_DAYS,
    ) -> None:
        self.state = state
        self.series = series
        self.halls = dict(halls)
        self.report_dir = Path(report_dir)
        self.daily_at = daily_at
        self.push = push or PushTarget()
        self.catch_up_days = catch_up_days

    def paths(self, hall: str, kind: str, period: str) -> tuple[Path, Path]:
        """The JSON and XLSX files of a report."""
        base = self.report_dir / hall / kind / period
        return base.with_suffix(".json"), base.with_suffix(".xlsx")

    def document(self, kind: ReportKind, hall: str, period: str) -> dict[str, Any]:
        """Build the document of a report (no files, no row).

        Raises:
            KeyError: Unknown hall.
            ValueError: Bad period text.
        """
        if kind is ReportKind.BULLETIN:
            return bulletin_document(self.state, self.series, self.halls, period)
        config = self.halls[hall]
        if kind is ReportKind.MONTHLY:
            return monthly_document(self.state, self.series, config, period)
        day = date.fromisoformat(period)
        span = daily_period(day, config, self.daily_at)
        report = build_daily(self.state, self.series, config, period, span)
        return daily_document(report, config)

    def produce(self, kind: ReportKind, hall: str, period: str, now: datetime) -> RunResult:
        """Produce a report (again): files rewritten, row upserted, pushed if due.

        Args:
            kind: Report kind.
            hall: Hall id (``all`` for a bulletin).
            period: ``YYYY-MM-DD`` or ``YYYY-MM``.
            now: Recorded as ``produced_at`` of a new digest.
        """
        hall = ALL_HALLS if kind is ReportKind.BULLETIN else hall
        doc = self.document(kind, hall, period)
        digest = report_digest(doc)
        json_path, xlsx_path = self.paths(hall, kind.value, period)
        json_path.parent.mkdir(parents=True, exist_ok=True)
        write_json(doc, json_path)
        write_xlsx(doc, xlsx_path)
        fresh = PushState.PENDING if self.push.url else PushState.OFF
        with self.state.session() as session:
            row = session.scalars(
                select(ReportRun).where(
                    ReportRun.hall == hall, ReportRun.kind == kind.value, ReportRun.period == period
                )
            ).one_or_none()
            changed = row is None or row.digest != digest
            if row is None:
                row = ReportRun(hall=hall, kind=kind.value, period=period, push_attempts=0)
                session.add(row)
            if changed:
                row.digest, row.produced_at, row.push_state = digest, now, fresh
                row.push_error, row.pushed_at = "", None
            session.flush()
            run_id, state = row.id, row.push_state
        logger.info(
            "%s report of %s for %s: digest %s (%s)",
            kind.value,
            hall,
            period,
            digest[:12],
            "new" if changed else "unchanged",
        )
        if state in (PushState.PENDING, PushState.FAILED):
            state = self._push(run_id, doc, now)
        return RunResult(run_id, digest, changed, state, json_path, xlsx_path)

    def _push(self, run_id: int, doc: dict[str, Any], now: datetime) -> str:
        with self.state.read_session() as session:
            row = session.get(ReportRun, run_id)
            assert row is not None
            envelope = {
                "digest": row.digest,
                "produced_at": row.produced_at.astimezone(UTC).isoformat(),
                "report": doc,
            }
        if not self.push.url:
            return PushState.OFF
        out = push_report(
            self.push.url,
            envelope,
            token=self.push.token,
            retries=self.push.retries,
            timeout_s=self.push.timeout_s,
            backoff_s=self.push.backoff_s,
        )
        with self.state.session() as session:
            row = session.get(ReportRun, run_id)
            assert row is not None
            row.push_attempts += out.attempts
            row.push_state = PushState.SENT if out.ok else PushState.FAILED
            row.push_error = out.error[:500]
            row.pushed_at = now if out.ok else row.pushed_at
            if not out.ok:
                logger.error(
                    "report run %d (%s %s %s) not pushed after %d attempt(s): %s",
                    run_id,
                    row.kind,
                    row.hall,
                    row.period,
                    row.push_attempts,
                    out.error,
                )
            return row.push_state

    def retry_pushes(self, now: datetime, *, skip: set[int] | None = None) -> int:
        """Push again every run whose push failed or is pending (but those in ``skip``,
        just pushed); returns how many were sent."""
        if not self.push.url:
            return 0
        with self.state.read_session() as session:
            rows = session.execute(
                select(ReportRun.id, ReportRun.hall, ReportRun.kind, ReportRun.period)
                .where(ReportRun.push_state.in_((PushState.FAILED, PushState.PENDING)))
                .order_by(ReportRun.id)
            ).all()
        sent = 0
        for run_id, hall, kind, period in rows:
            if skip and run_id in skip:
                continue
            json_path, _ = self.paths(hall, kind, period)
            try:
                doc = json.loads(json_path.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                doc = self.document(ReportKind(kind), hall, period)
            sent += self._push(run_id, doc, now) == PushState.SENT
        return sent

    def existing(self) -> set[tuple[str, str, str]]:
        """(hall, kind, period) of every run."""
        with self.state.read_session() as session:
            rows = session.execute(select(ReportRun.hall, ReportRun.kind, ReportRun.period))
            return {(h, k, p) for h, k, p in rows}

    def first_produced(self) -> dict[str, datetime]:
        """The earliest ``produced_at`` of each hall's runs (``all``: the bulletins)."""
        with self.state.read_session() as session:
            rows = session.execute(
                select(ReportRun.hall, func.min(ReportRun.produced_at)).group_by(ReportRun.hall)
            )
            return {hall: first for hall, first in rows if first is not None}

    def tick(self, now: datetime) -> list[RunResult]:
        """Produce every due report not produced yet (missed ones first, oldest first),
        then retry failed pushes.

        This is the whole scheduler: calling it after a restart catches up what was missed
        (see the module notes), and calling it again produces nothing twice.

        Args:
            now: Current time (UTC-aware).

        Returns:
            The runs produced by this tick.
        """
        done = self.existing()
        first = self.first_produced()
        results: list[RunResult] = []
        for hid in sorted(self.halls):
            config = self.halls[hid]
            local = now.astimezone(config.tzinfo).replace(tzinfo=None)
            since = first.get(hid)
            due_now = due_reports(
                local,
                config.service_hours.calendar(),
                self.daily_at,
                catch_up_from=(
                    since.astimezone(config.tzinfo).replace(tzinfo=None) if since else None
                ),
                catch_up_days=self.catch_up_days,
            )
            for due in due_now:
                owner = ALL_HALLS if due.kind is ReportKind.BULLETIN else hid
                if (owner, due.kind.value, due.period) in done:
                    continue
                try:
                    result = self.produce(due.kind, owner, due.period, now)
                except Exception:
                    logger.exception("%s report of %s failed", due.kind.value, owner)
                    continue
                done.add((owner, due.kind.value, due.period))
                results.append(result)
        self.retry_pushes(now, skip={r.run_id for r in results})
        return results
