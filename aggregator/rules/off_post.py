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

What the rule reads of a hall besides its posts — its open alerts, its offline cameras and
edge workers — is read once per transaction and hall (:class:`HallWatch`, kept in the
session), not once per presence change: an ingest batch changes dozens of posts of a
hall, and a query per change cost more than the rest of the change.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import BindParameter, bindparam, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from aggregator.alerts import (
    AlertSink,
    add_alert,
    alert_message,
    insert_alerts,
    publish_alerts,
)
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
from hallwatch.service_time import in_service_seconds, next_in_service, when_in_service_reaches

logger = logging.getLogger(__name__)


OFF = PostState.OFF_POST.value
ON = PostState.ON_POST.value
KIND = AlertKind.OFF_POST.value


_WATCHES = "off_post.hall_watches"
"""Key of the transaction's :class:`HallWatch` per hall in ``Session.info``."""

# Built once, run with the halls (an expanding parameter): a batch builds no statement.
_HALLS: BindParameter[str] = bindparam("halls", expanding=True)
_OFFLINE_CAMERAS = select(DeviceStatus.hall, DeviceStatus.device).where(
    DeviceStatus.hall.in_(_HALLS),
    DeviceStatus.kind == DeviceKind.CAMERA.value,
    DeviceStatus.state == DeviceState.OFFLINE.value,
)
_OFFLINE_EDGES = select(EdgeStatusRow.hall, EdgeStatusRow.source).where(
    EdgeStatusRow.hall.in_(_HALLS), EdgeStatusRow.state == DeviceState.OFFLINE.value
)
_OPEN_ALERTS = select(Alert).where(
    Alert.hall.in_(_HALLS), Alert.kind == KIND, Alert.state == AlertState.OPEN.value
)
_ALERTED = select(Alert.hall, Alert.post, Alert.start).where(
    Alert.kind == KIND,
    Alert.hall.in_(_HALLS),
    Alert.post.in_(bindparam("posts", expanding=True)),
    Alert.start.in_(bindparam("starts", expanding=True)),
)


@dataclass(slots=True)
class HallWatch:
    """What the off-post rule reads of one hall, once per transaction.

    Attributes:
        offline_cameras: Camera devices reported offline (their posts' clocks pause).
        offline_edges: Edge workers whose status is offline.
        open_alerts: The hall's open ``off_post`` alert rows by post, as loaded, and
            those the transaction opened since (:meth:`OffPostRule._open`; an ingest
            batch opens them last, in :meth:`OffPostRule.judge_batch`). One resolved in
            the transaction since is still here, so its in-memory ``state`` is what
            counts (:meth:`open_alert`).
    """

    offline_cameras: set[str] = field(default_factory=set)
    offline_edges: set[str] = field(default_factory=set)
    open_alerts: dict[str, Alert] = field(default_factory=dict)

    def open_alert(self, post: str) -> Alert | None:
        """The post's open alert in this transaction, if any."""
        alert = self.open_alerts.get(post)
        return alert if alert is not None and alert.state == AlertState.OPEN.value else None

    def observes(self, row: PostStatus) -> bool:
        """Whether the post's camera and the edge reporting it are online (or unknown)."""
        if row.camera in self.offline_cameras:
            return False
        return not (row.source and row.source in self.offline_edges)


def hall_watches(session: Session, halls: Iterable[str]) -> dict[str, HallWatch]:
    """The transaction's :class:`HallWatch` of each of ``halls`` (those not yet read in
    ``session`` are read now: one query per table for all of them).

    The reads flush the session first (autoflush): a device row changed earlier in the
    transaction is seen as changed. A change that can alter what is read afterwards goes
    through :func:`forget_hall_watch`.
    """
    watches: dict[str, HallWatch] = session.info.setdefault(_WATCHES, {})
    missing = [hall for hall in halls if hall not in watches]
    if not missing:
        return watches
    fresh = {hall: HallWatch() for hall in missing}
    halls_of = {"halls": missing}
    for hall, device in session.execute(_OFFLINE_CAMERAS, halls_of):
        fresh[hall].offline_cameras.add(device)
    for hall, source in session.execute(_OFFLINE_EDGES, halls_of):
        fresh[hall].offline_edges.add(source)
    for alert in session.scalars(_OPEN_ALERTS, halls_of):
        if alert.post is not None:
            fresh[alert.hall].open_alerts[alert.post] = alert
    watches.update(fresh)
    return watches


def hall_watch(session: Session, hall: str) -> HallWatch:
    """The transaction's :class:`HallWatch` of one hall (see :func:`hall_watches`)."""
    return hall_watches(session, (hall,))[hall]


def forget_hall_watch(session: Session, hall: str) -> None:
    """Drop what the transaction read of ``hall``: a camera or an edge worker of it
    changed; the next read reads again."""
    session.info.get(_WATCHES, {}).pop(hall, None)


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
            row.clock_from = row.since if hall_watch(session, row.hall).observes(row) else None
            return out
        row.clock_banked_s, row.clock_from = 0.0, None
        if before is None or before.state != OFF:
            return out
        alert = hall_watch(session, row.hall).open_alert(row.post)
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
            if not _alerted(session, [(row.hall, row.post, start)]):
                alert = self._new_alert(row, post, threshold, start, now)
                self._resolve(alert, row.since, now)
                session.add(alert)
                out.append(alert_message(alert))
        return out

    def on_observation_change(self, session: Session, hall_id: str, at: datetime) -> None:
        """Pause or resume the clocks of a hall's absent posts after a camera or edge
        went offline or online at ``at`` (``DeviceStatus``/``EdgeStatusRow`` updated)."""
        hall = self.halls.get(hall_id)
        forget_hall_watch(session, hall_id)
        stmt = select(PostStatus).where(PostStatus.hall == hall_id, PostStatus.state == OFF)
        rows = session.scalars(stmt).all()
        watch = hall_watch(session, hall_id)
        for row in rows:
            observed = watch.observes(row)
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
        due: list[_Due] = []
        with self.state.session() as session:
            watches = hall_watches(session, halls)
            absent: dict[str, list[PostStatus]] = {hall_id: [] for hall_id in halls}
            query = select(PostStatus).where(PostStatus.state == OFF, PostStatus.hall.in_(halls))
            for row in session.scalars(query):
                absent[row.hall].append(row)
            for hall_id in halls:

                def status(post: str, hall_id: str = hall_id) -> PostStatus | None:
                    return session.get(PostStatus, (hall_id, post))

                out.extend(self._judge(watches[hall_id], status, absent[hall_id], now, due))
            out.extend(self._open(session, due, now))
        publish_alerts(self.sink, out)
        return out

    def judge_batch(
        self, session: Session, hall: str, posts: Mapping[str, PostStatus], now: datetime
    ) -> list[AlertMessage]:
        """:meth:`evaluate` one hall inside an ingest batch's transaction, on its post
        rows (all of the hall's, as the batch loaded and changed them), after the batch
        changed some of them. Publishes nothing: the caller does, after its commit.

        Returns:
            The alert messages opened or resolved.
        """
        due: list[_Due] = []
        absent = [row for row in posts.values() if row.state == OFF]
        out = self._judge(hall_watch(session, hall), posts.get, absent, now, due)
        out.extend(self._open(session, due, now))
        return out

    def publish(self, messages: list[AlertMessage]) -> None:
        """Send messages produced inside a transaction, once it has committed."""
        publish_alerts(self.sink, messages)

    # -- helpers ---------------------------------------------------------------------------

    def _judge(
        self,
        watch: HallWatch,
        status: Callable[[str], PostStatus | None],
        absent: Iterable[PostStatus],
        now: datetime,
        due: list[_Due],
    ) -> list[AlertMessage]:
        """Resolve a hall's open alerts whose post is staffed again (``status``: a post's
        row); add to ``due`` the alerts its ``absent`` posts are due at ``now``.

        Returns:
            The messages of the alerts resolved.
        """
        out: list[AlertMessage] = []
        for post, alert in watch.open_alerts.items():
            if alert.state != AlertState.OPEN.value:
                continue
            row = status(post)
            if row is not None and row.state == ON:
                self._resolve(alert, row.since, now)
                out.append(alert_message(alert))
        for row in absent:
            if watch.open_alert(row.post) is None and (absence := self._due(row, now)):
                due.append(absence)
        return out

    def _due(self, row: PostStatus, now: datetime) -> _Due | None:
        """The alert an absent post is due at ``now`` (None: not past its threshold, or
        not a configured post)."""
        hall = self.halls.get(row.hall)
        post = _post(hall, row.post)
        if hall is None or post is None:
            return None
        threshold = hall.off_post_after_s_for(post)
        if not _reached(hall, row, threshold, now):
            return None
        return _Due(row, post, threshold, next_in_service(hall, row.since) or row.since)

    def _open(self, session: Session, due: Sequence[_Due], now: datetime) -> list[AlertMessage]:
        """Open the alerts ``due`` (but those already recorded for their absence).

        All are inserted in one savepoint; if the partial unique index refuses one (another
        replica opened it meanwhile), they are inserted one savepoint each and the refused
        ones left out.
        """
        recorded = _alerted(session, [(d.row.hall, d.row.post, d.start) for d in due])
        alerts = [
            self._new_alert(d.row, d.post, d.threshold, d.start, now)
            for d in due
            if (d.row.hall, d.row.post, d.start) not in recorded
        ]
        if not alerts:
            return []
        try:
            with session.begin_nested():
                insert_alerts(session, alerts)
        except IntegrityError:
            alerts = [alert for alert in alerts if add_alert(session, alert)]
        for alert in alerts:
            assert alert.post is not None
            hall_watch(session, alert.hall).open_alerts[alert.post] = alert
            logger.info(
                "off-post alert %s opened: hall %s post %s since %s",
                alert.id,
                alert.hall,
                alert.post,
                alert.start.isoformat(),
            )
        return [alert_message(alert) for alert in alerts]

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


def _reached(hall: HallConfig, row: PostStatus, threshold: float, now: datetime) -> bool:
    """Whether an absence's counted service time reaches ``threshold`` by ``now``: its
    banked seconds plus the in-service seconds from ``clock_from`` to ``now`` (but for
    rounding to the microsecond at the exact threshold), counted only as far as needed:
    an absence weeks long in a replayed backlog is not summed day by day at every
    evaluation."""
    needed = threshold - row.clock_banked_s
    if needed <= 0:
        return True
    start = row.clock_from
    if start is None or (now - start).total_seconds() < needed:  # service time <= wall time
        return False
    reached = when_in_service_reaches(hall, start, needed)
    return reached is not None and reached <= now


@dataclass(frozen=True, slots=True)
class _Due:
    """An absence past its threshold, with the alert it is due."""

    row: PostStatus
    post: PostConfig
    threshold: float
    start: datetime


_KEYS_PER_QUERY = 300
"""Absences per query of :func:`_alerted` (well under every database's parameter limit)."""


def _alerted(
    session: Session, keys: Sequence[tuple[str, str, datetime]]
) -> set[tuple[str, str, datetime]]:
    """Which of the absences ``keys`` (hall, post, start) have an alert already (open or
    resolved): one query per :data:`_KEYS_PER_QUERY` of them."""
    found: set[tuple[str, str, datetime]] = set()
    wanted = set(keys)
    for first in range(0, len(keys), _KEYS_PER_QUERY):
        chunk = keys[first : first + _KEYS_PER_QUERY]
        wanted_in = {
            "halls": list({hall for hall, _, _ in chunk}),
            "posts": list({post for _, post, _ in chunk}),
            "starts": list({start for _, _, start in chunk}),
        }
        for hall, post, start in session.execute(_ALERTED, wanted_in):
            if post is not None and (hall, post, start) in wanted:
                found.add((hall, post, start))
    return found


def _post(hall: HallConfig | None, post_id: str) -> PostConfig | None:
    if hall is None:
        return None
    try:
        return hall.post(post_id)
    except KeyError:
        return None
