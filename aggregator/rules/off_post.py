"""The off-post rule (离岗): a post unstaffed too long in service time raises an alert.

Policy:

- A post's absence is counted in *service time* only (see :mod:`hallwatch.service_time`): not at a
  lunch break the hall closes for, not outside opening hours, not on closed days.
- The threshold is the post's ``off_post_after_s``, else the hall's
  ``thresholds.off_post_after_s``.
- The clock pauses while the post's camera (or the edge worker that reports it) is
  offline: unseen time is not counted, time already counted is kept. Other devices
  (kiosks, screens, …; see :mod:`aggregator.rules.device_offline`) never pause it.
- Past the threshold, one alert opens (kind ``off_post``), with ``start`` = the absence's
  start, moved to the start of service time if it began outside it. The clerk's return
  resolves it with ``end`` = the return time. If an absence both crossed the threshold and
  ended before any evaluation saw it (facts replayed after an outage), the alert is
  recorded already resolved.

All state is in the database (``PostStatus`` clock columns, ``Alert`` rows); a partial
unique index allows one open alert per post, so replicas evaluating at once cannot
duplicate one. :meth:`OffPostRule.evaluate` takes ``now`` explicitly: deterministic.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from aggregator.alerts import AlertSink, alert_message, publish_alerts
from aggregator.store.state import Alert, DeviceStatus, EdgeStatusRow, PostStatus, StateStore
from hallwatch.config.models import HallConfig, PostConfig
from hallwatch.contract import (
    AlertKind,
    AlertMessage,
    AlertState,
    DeviceKind,
    DeviceState,
    PostState,
    new_id,
)
from hallwatch.service_time import in_service_seconds, next_in_service

logger = logging.getLogger(__name__)


OFF = PostState.OFF_POST.value
ON = PostState.ON_POST.value
KIND = AlertKind.OFF_POST.value


@dataclass(frozen=True, slots=True)
class PostSnapshot:
    """A post's state before a change (what the rule needs to close an absence)."""

    state: str
    since: datetime
    clock_banked_s: float
    clock_from: datetime | None

    @classmethod
    def of(cls, row: PostStatus) -> PostSnapshot:
        """Copy the relevant columns of a row."""
        return cls(row.state, row.since, row.clock_banked_s, row.clock_from)


def _message(post: PostConfig, threshold_s: float) -> str:
    where = post.name
    if post.window and post.window not in post.name:
        where = f"{post.name}（{post.window}号窗口）"
    return f"离岗告警：{where}无人在岗超过{_duration_zh(threshold_s)}"


def _duration_zh(seconds: float) -> str:
    """A threshold in Chinese: whole minutes as 分钟, otherwise 分 and 秒.

    >>> _duration_zh(300), _duration_zh(15), _duration_zh(90)
    ('5分钟', '15秒', '1分30秒')
    """
    minutes, secs = divmod(round(seconds), 60)
    if not secs:
        return f"{minutes}分钟"
    return f"{minutes}分{secs}秒" if minutes else f"{secs}秒"


class OffPostRule:
    """Judges off-post absences and opens / resolves ``off_post`` alerts.

    Args:
        state: The state database.
        halls: Hall configurations by hall id (service hours, thresholds, posts).
        sink: Where opened and resolved alerts are published (after commit).
    """

    kind = AlertKind.OFF_POST

    def __init__(
        self,
        state: StateStore,
        halls: Mapping[str, HallConfig],
        sink: AlertSink | None = None,
    ) -> None:
        self.state = state
        self.halls = halls
        self.sink = sink

    # -- called by the ingestor inside a fact's transaction --------------------------------

    def on_presence_change(
        self, session: Session, row: PostStatus, before: PostSnapshot | None, now: datetime
    ) -> list[AlertMessage]:
        """React to a post changing state (``row`` already updated, not yet committed).

        Starts the off-post clock when a post turns ``off_post``; when it turns ``on_post``
        after an absence, resolves that absence's open alert (``end`` = ``row.since``) or,
        if the absence crossed the threshold unseen, records an already resolved alert.

        Returns:
            Alert messages to publish once the transaction commits.
        """
        out: list[AlertMessage] = []
        if row.state == OFF:
            row.clock_banked_s = 0.0
            row.clock_from = row.since if self._observed(session, row) else None
            return out
        row.clock_banked_s, row.clock_from = 0.0, None
        if before is None or before.state != OFF:
            return out
        alert = self._open_alert(session, row.hall, row.post)
        if alert is not None:
            self._resolve(alert, row.since, now)
            out.append(alert_message(alert))
            return out
        hall = self.halls.get(row.hall)
        post = _post(hall, row.post)
        if hall is None or post is None:
            return out
        elapsed = before.clock_banked_s
        if before.clock_from is not None:
            elapsed += in_service_seconds(hall, before.clock_from, row.since)
        threshold = hall.off_post_after_s_for(post)
        if elapsed >= threshold:
            start = next_in_service(hall, before.since) or before.since
            if not self._already_alerted(session, row.hall, row.post, start):
                alert = self._new_alert(row, post, threshold, start, now)
                self._resolve(alert, row.since, now)
                session.add(alert)
                out.append(alert_message(alert))
        return out

    def on_observation_change(self, session: Session, hall_id: str, at: datetime) -> None:
        """Pause or resume the clocks of a hall's absent posts after a camera or edge
        went offline or online at ``at`` (``DeviceStatus``/``EdgeStatusRow`` updated)."""
        hall = self.halls.get(hall_id)
        stmt = select(PostStatus).where(PostStatus.hall == hall_id, PostStatus.state == OFF)
        for row in session.scalars(stmt):
            observed = self._observed(session, row)
            if row.clock_from is not None and not observed:
                if hall is not None and at > row.clock_from:
                    row.clock_banked_s += in_service_seconds(hall, row.clock_from, at)
                row.clock_from = None
            elif row.clock_from is None and observed:
                row.clock_from = max(at, row.since)

    # -- periodic evaluation ---------------------------------------------------------------

    def evaluate(self, now: datetime, *, hall: str | None = None) -> list[AlertMessage]:
        """Open alerts for absences past their threshold at ``now``; resolve open alerts
        whose post is staffed again. Publishes the results to the sink.

        Args:
            now: The evaluation time (aware); tests pass it explicitly.
            hall: Only this hall; None: every configured hall.

        Returns:
            The alert messages opened or resolved by this evaluation.
        """
        halls = [hall] if hall is not None else list(self.halls)
        out: list[AlertMessage] = []
        with self.state.session() as session:
            open_rows = session.scalars(
                select(Alert).where(
                    Alert.state == AlertState.OPEN.value, Alert.kind == KIND, Alert.hall.in_(halls)
                )
            ).all()
            open_by_post = {(a.hall, a.post): a for a in open_rows}
            for alert in open_rows:
                status = session.get(PostStatus, (alert.hall, alert.post))
                if status is not None and status.state == ON:
                    self._resolve(alert, status.since, now)
                    out.append(alert_message(alert))
            absent = session.scalars(
                select(PostStatus).where(PostStatus.state == OFF, PostStatus.hall.in_(halls))
            ).all()
            for row in absent:
                if (row.hall, row.post) in open_by_post:
                    continue
                message = self._judge(session, row, now)
                if message is not None:
                    out.append(message)
        publish_alerts(self.sink, out)
        return out

    def publish(self, messages: list[AlertMessage]) -> None:
        """Send messages produced inside a transaction, once it has committed."""
        publish_alerts(self.sink, messages)

    # -- helpers ---------------------------------------------------------------------------

    def elapsed_s(self, row: PostStatus, now: datetime) -> float:
        """In-service seconds counted for a post's current absence up to ``now``."""
        hall = self.halls.get(row.hall)
        elapsed = row.clock_banked_s
        if hall is not None and row.clock_from is not None and now > row.clock_from:
            elapsed += in_service_seconds(hall, row.clock_from, now)
        return elapsed

    def _judge(self, session: Session, row: PostStatus, now: datetime) -> AlertMessage | None:
        hall = self.halls.get(row.hall)
        post = _post(hall, row.post)
        if hall is None or post is None:
            return None
        threshold = hall.off_post_after_s_for(post)
        if self.elapsed_s(row, now) < threshold:
            return None
        start = next_in_service(hall, row.since) or row.since
        if self._already_alerted(session, row.hall, row.post, start):
            return None
        alert = self._new_alert(row, post, threshold, start, now)
        try:
            with session.begin_nested():
                session.add(alert)
        except IntegrityError:
            logger.info("off-post alert for %s/%s already opened elsewhere", row.hall, row.post)
            return None
        logger.info(
            "off-post alert %s opened: hall %s post %s since %s",
            alert.id,
            row.hall,
            row.post,
            start.isoformat(),
        )
        return alert_message(alert)

    @staticmethod
    def _new_alert(
        row: PostStatus, post: PostConfig, threshold: float, start: datetime, now: datetime
    ) -> Alert:
        return Alert(
            id=new_id(),
            hall=row.hall,
            kind=KIND,
            post=row.post,
            window=row.window if row.window is not None else post.window,
            state=AlertState.OPEN.value,
            start=start,
            end=None,
            opened_at=now,
            resolved_at=None,
            message=_message(post, threshold),
            evidence_id=row.evidence_id,  # the snapshot the absence's presence fact carried
        )

    @staticmethod
    def _resolve(alert: Alert, end: datetime, now: datetime) -> None:
        alert.state = AlertState.RESOLVED.value
        alert.end = max(end, alert.start)
        alert.resolved_at = now
        logger.info("off-post alert %s resolved: end %s", alert.id, alert.end.isoformat())

    @staticmethod
    def _open_alert(session: Session, hall: str, post: str) -> Alert | None:
        """The post's open alert, as this transaction sees it.

        Read without flushing the batch's changes first (a flush per presence change cost
        more than the rest of the change): an alert resolved earlier in the transaction
        is still open in the database until the commit, so the row is checked as held in
        memory. Alerts added in the transaction are resolved ones (an open one is added
        only by :meth:`evaluate`, in its own transaction), and the partial unique index
        allows one open alert per post.
        """
        stmt = select(Alert).where(
            Alert.hall == hall,
            Alert.post == post,
            Alert.kind == KIND,
            Alert.state == AlertState.OPEN.value,
        )
        with session.no_autoflush:
            alert = session.scalars(stmt).first()
        return alert if alert is not None and alert.state == AlertState.OPEN.value else None

    @staticmethod
    def _already_alerted(session: Session, hall: str, post: str, start: datetime) -> bool:
        stmt = select(Alert.id).where(
            Alert.hall == hall, Alert.post == post, Alert.kind == KIND, Alert.start == start
        )
        return session.scalars(stmt).first() is not None

    @staticmethod
    def _observed(session: Session, row: PostStatus) -> bool:
        """Whether the post's camera and the edge reporting it are online (or unknown).

        Only a camera device counts: another kind of device offline hides no post. Read
        without a flush: device rows are flushed when they are added, and changes to rows
        already loaded are seen in memory.
        """
        with session.no_autoflush:
            device = session.get(DeviceStatus, (row.hall, row.camera))
            if (
                device is not None
                and device.kind == DeviceKind.CAMERA.value
                and device.state == DeviceState.OFFLINE.value
            ):
                return False
            if row.source:
                edge = session.get(EdgeStatusRow, (row.hall, row.source))
                if edge is not None and edge.state == DeviceState.OFFLINE.value:
                    return False
        return True


def _post(hall: HallConfig | None, post_id: str) -> PostConfig | None:
    if hall is None:
        return None
    try:
        return hall.post(post_id)
    except KeyError:
        return None
