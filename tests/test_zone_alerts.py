"""The hall environment on the aggregator (issue 4): 环境差 and crowding alerts, zone state,
and evidence snapshots linked to alerts from video (off-post included).

Facts go through the real ingestor over a SQLite file with a fake clock; alerts are
collected by a :class:`~aggregator.alerts.ListSink`. Times are Shanghai wall-clock times
on Monday 2026-11-02 (the test hall serves 09:00–17:00, lunch 12:00–13:30 closed,
10-minute off-post threshold). Snapshots are real JPEGs cut from scikit-image's coffee.
"""

from __future__ import annotations

import base64
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from functools import cache
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import cv2
import pytest
import skimage.data
from sqlalchemy import Select, event, func, insert, select
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import Result
from sqlalchemy.orm import ORMExecuteState, Session

from aggregator.alerts import ListSink
from aggregator.api.models import AlertOut
from aggregator.bus import LiveBus
from aggregator.ingest import Ingestor, IngestOutcome
from aggregator.rules.device_offline import DeviceOfflineRule
from aggregator.rules.off_post import OffPostRule
from aggregator.rules.zone_alerts import ZoneAlertRule
from aggregator.store.evidence import EvidenceSnapshot
from aggregator.store.state import Alert, StateStore, ZoneStatus
from aggregator.store.timeseries import SqliteTimeSeriesStore
from hallwatch.config.models import HallConfig
from hallwatch.contract import (
    AlertKind,
    AlertState,
    Evidence,
    HygieneBody,
    HygieneFact,
    HygieneMethod,
    HygieneState,
    OccupancyBody,
    OccupancyFact,
    PostState,
    PresenceBody,
    PresenceFact,
    encode,
    fact_topic,
)
from tests.conftest import build_hall

SH = ZoneInfo("Asia/Shanghai")
HALL = "h-env"
SOURCE = "edge-h-env"
BAD, GOOD = HygieneState.BAD, HygieneState.GOOD


def t(hhmm: str, day: int = 2) -> datetime:
    """``"10:00"`` Shanghai on 2026-11-``day`` (Monday the 2nd) → aware UTC."""
    h, m = (int(p) for p in hhmm.split(":"))
    return datetime(2026, 11, day, h, m, tzinfo=SH).astimezone(UTC)


def env_hall(hall_id: str = HALL) -> HallConfig:
    """The conftest hall plus a window's public area, a waiting area and an entrance."""
    data: dict[str, Any] = build_hall(hall_id).model_dump(mode="json", exclude_unset=True)
    for camera in data["cameras"]:
        camera["look_interval_s"] = 0.5  # an entrance line needs a look every 0.5 s at most
    data["zones"] = [
        {"id": "w1-public", "name": "1号窗口公共区域", "kind": "window_public",
         "camera": "c1", "window": "1", "polygon": [[10, 300], [300, 300], [300, 470], [10, 470]]},
        {"id": "waiting", "name": "候办区", "kind": "waiting_area", "camera": "c1",
         "polygon": [[320, 200], [630, 200], [630, 470], [320, 470]], "crowding_at": 10},
        {"id": "door", "name": "东门", "kind": "entrance", "camera": "c1",
         "polygon": [[320, 10], [630, 10], [630, 190], [320, 190]],
         "line": {"points": [[470, 10], [470, 190]], "inside": "left"}},
    ]  # fmt: skip
    return HallConfig.model_validate(data)


@cache
def jpeg_bytes(variant: int = 0) -> bytes:
    """A real JPEG: a crop of scikit-image's coffee photo (``variant`` shifts the crop)."""
    rgb = skimage.data.coffee()[100 + variant : 220 + variant, 150:310]
    ok, buf = cv2.imencode(".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    assert ok
    return bytes(buf)


def snapshot(at: datetime, variant: int = 0) -> Evidence:
    return Evidence(
        camera="c1",
        taken=at,
        region=[10, 300, 300, 470],
        width=160,
        height=120,
        faces_blurred=1,
        jpeg=base64.b64encode(jpeg_bytes(variant)).decode(),
    )


class Harness:
    """Real stores, ingestor and rules (off-post, device, zones), with a settable clock."""

    def __init__(self, tmp_path: Path, halls: dict[str, HallConfig] | None = None) -> None:
        self.halls = halls or {HALL: env_hall()}
        self.state = StateStore(f"sqlite:///{tmp_path / 'state.sqlite'}")
        self.state.create_all()
        self.series = SqliteTimeSeriesStore(tmp_path / "series.sqlite")
        self.sink = ListSink()
        self.rule = OffPostRule(self.state, self.halls, self.sink)
        self.zones = ZoneAlertRule(self.state, self.halls, self.sink)
        self.now = t("09:00")
        self.ingestor = Ingestor(
            self.state,
            self.series,
            self.halls,
            LiveBus(),
            rule=self.rule,
            devices=DeviceOfflineRule(self.halls, self.sink),
            zones=self.zones,
            clock=lambda: self.now,
        )

    def close(self) -> None:
        self.series.close()
        self.state.dispose()

    def feed(self, fact: Any, now: datetime | None = None) -> IngestOutcome:
        self.now = now or max(self.now, fact.ts)
        return self.ingestor.handle(fact_topic(fact.hall, fact.kind.value), encode(fact))

    def alerts(self, kind: AlertKind | None = None) -> list[Alert]:
        rows, _ = self.state.list_alerts(hall=HALL, kind=kind.value if kind else None, limit=100)
        return rows

    def zone(self, zone: str) -> ZoneStatus:
        (row,) = [z for z in self.state.zone_statuses(HALL) if z.zone == zone]
        return row

    def snapshots(self) -> list[EvidenceSnapshot]:
        with self.state.read_session() as session:
            return list(session.scalars(select(EvidenceSnapshot).order_by(EvidenceSnapshot.taken)))


def hygiene(
    state: HygieneState,
    since: datetime,
    *,
    ts: datetime | None = None,
    score: float = 0.12,
    evidence: Evidence | None = None,
    hall: str = HALL,
    method: HygieneMethod = HygieneMethod.REFERENCE,
    zone: str = "w1-public",
) -> HygieneFact:
    window = "1" if zone == "w1-public" else None
    body = HygieneBody(camera="c1", zone=zone, window=window, state=state, since=since,
                       score=score, method=method, evidence=evidence)  # fmt: skip
    return HygieneFact(hall=hall, source=SOURCE, ts=ts or since + timedelta(minutes=5), body=body)


def occupancy(
    start: datetime,
    count: int,
    *,
    peak: int | None = None,
    mean: float | None = None,
    crowded: bool | None = None,
    evidence: Evidence | None = None,
    zone: str = "waiting",
    hall: str = HALL,
    interval_s: float = 60,
) -> OccupancyFact:
    body = OccupancyBody(
        camera="c1", zone=zone, start=start, interval_s=interval_s, count=count,
        peak=peak if peak is not None else count,
        mean=float(count) if mean is None else mean, looks=12,
        crowded=count >= 10 if crowded is None else crowded, evidence=evidence,
    )  # fmt: skip
    return OccupancyFact(
        hall=hall, source=SOURCE, ts=start + timedelta(seconds=interval_s), body=body
    )


def presence(post: str, state: PostState, at: datetime, evidence: Evidence | None = None) -> Any:
    body = PresenceBody(camera="c1", post=post, window=post[-1], state=state, since=at,
                        evidence=evidence)  # fmt: skip
    return PresenceFact(hall=HALL, source=SOURCE, ts=at + timedelta(seconds=10), body=body)


@pytest.fixture
def h(tmp_path: Path) -> Iterator[Harness]:
    harness = Harness(tmp_path)
    yield harness
    harness.close()


# -- 环境差 ----------------------------------------------------------------------------------


def test_hygiene_bad_then_good_is_one_alert_with_its_duration(h: Harness) -> None:
    bad = hygiene(BAD, t("10:00"), score=0.12, evidence=snapshot(t("10:05")))
    h.feed(bad)
    (alert,) = h.alerts()
    (snap,) = h.snapshots()
    assert alert.evidence_id == snap.id
    assert (snap.fact_id, snap.hall, snap.zone, snap.post, snap.taken) == (
        bad.id, HALL, "w1-public", None, t("10:05"),
    )  # fmt: skip
    assert (snap.region_box, snap.width, snap.faces_blurred) == ([10, 300, 300, 470], 160, 1)
    assert snap.jpeg == jpeg_bytes()
    assert (alert.kind, alert.state, alert.zone, alert.window, alert.post, alert.device) == (
        "hygiene_bad", "open", "w1-public", "1", None, None,
    )  # fmt: skip
    assert alert.start == t("10:00") and alert.end is None
    assert alert.message == "环境差：1号窗口公共区域（1号窗口），请及时清理（变化面积12%）"
    assert AlertOut.of(alert, now=t("10:30")).duration_s == 1800.0
    assert (h.zone("w1-public").hygiene_state, h.zone("w1-public").hygiene_since) == (
        "bad",
        t("10:00"),
    )

    h.feed(hygiene(GOOD, t("10:40"), score=0.0))
    (alert,) = h.alerts()
    assert (alert.state, alert.start, alert.end) == ("resolved", t("10:00"), t("10:40"))
    assert AlertOut.of(alert, now=t("23:00")).duration_s == 2400.0
    opened, resolved = h.sink.alerts
    assert opened.id == resolved.id == alert.id
    assert (opened.state, resolved.state) == (AlertState.OPEN, AlertState.RESOLVED)
    assert (opened.kind, opened.zone, opened.window) == (AlertKind.HYGIENE_BAD, "w1-public", "1")
    assert opened.evidence_url == f"/api/v1/halls/{HALL}/alerts/{alert.id}/evidence"
    assert h.zone("w1-public").hygiene_state == "good"
    assert h.zone("w1-public").hygiene_evidence_id is None


def test_classifier_score_is_a_probability_in_the_message(h: Harness) -> None:
    h.feed(hygiene(BAD, t("10:00"), score=0.87, method=HygieneMethod.CLASSIFIER))
    (alert,) = h.alerts()
    assert alert.message.endswith("请及时清理（判定概率87%）")


def test_repeated_redelivered_and_stale_hygiene_facts_change_nothing(h: Harness) -> None:
    first = hygiene(BAD, t("10:00"), score=0.12)
    assert h.feed(first) is IngestOutcome.STORED
    assert h.feed(hygiene(BAD, t("10:20"), score=0.5)) is IngestOutcome.STORED  # a repeat
    assert h.feed(first) is IngestOutcome.DUPLICATE  # redelivery: same id
    (alert,) = h.alerts()
    row = h.zone("w1-public")
    assert (alert.start, row.hygiene_since, row.hygiene_score) == (t("10:00"), t("10:00"), 0.12)
    h.feed(hygiene(GOOD, t("10:40")))
    # an older fact arriving late (a bad seen at 10:30, sent at 10:35) is only series
    late = hygiene(BAD, t("10:30"), ts=t("10:35"))
    assert h.feed(late, now=t("11:00")) is IngestOutcome.STORED
    assert h.zone("w1-public").hygiene_state == "good"
    assert [(a.state, a.end) for a in h.alerts()] == [("resolved", t("10:40"))]
    assert len(h.sink.alerts) == 2
    h.feed(hygiene(GOOD, t("10:50")))  # good again: nothing
    assert len(h.sink.alerts) == 2
    assert h.zones.evaluate(t("11:00")) == []


def test_hygiene_outside_service_hours_waits_for_opening(h: Harness) -> None:
    # dirty after closing: no alert at night, one when the hall opens if still dirty
    h.feed(hygiene(BAD, t("17:30"), evidence=snapshot(t("17:35"))))
    assert h.alerts() == []
    assert h.zones.evaluate(t("23:00")) == []
    assert h.zones.evaluate(t("08:59", day=3)) == []
    (msg,) = h.zones.evaluate(t("09:00", day=3))
    assert (msg.kind, msg.state, msg.start) == (
        AlertKind.HYGIENE_BAD,
        AlertState.OPEN,
        t("09:00", 3),
    )
    assert msg.evidence_url is not None  # the evening's snapshot
    assert h.zones.evaluate(t("09:01", day=3)) == []  # once
    h.feed(hygiene(GOOD, t("09:20", day=3)))
    (alert,) = h.alerts()
    assert (alert.state, alert.start, alert.end) == ("resolved", t("09:00", 3), t("09:20", 3))


def test_hygiene_cleared_before_opening_raises_nothing(h: Harness) -> None:
    h.feed(hygiene(BAD, t("17:30")))
    h.feed(hygiene(GOOD, t("07:30", day=3)))
    assert h.zones.evaluate(t("09:30", day=3)) == []
    assert h.alerts() == [] and h.sink.alerts == []


def test_an_open_hygiene_alert_resolves_after_hours(h: Harness) -> None:
    h.feed(hygiene(BAD, t("16:30")))
    h.feed(hygiene(GOOD, t("19:00")))
    (alert,) = h.alerts()
    assert (alert.state, alert.start, alert.end) == ("resolved", t("16:30"), t("19:00"))


def test_hygiene_episode_seen_only_after_it_ended_is_recorded_resolved(h: Harness) -> None:
    # bad from 08:50 (before opening), good at 09:20, and no ticker ran in between
    h.feed(hygiene(BAD, t("08:50")), now=t("08:55"))
    assert h.alerts() == []
    h.feed(hygiene(GOOD, t("09:20")), now=t("09:25"))
    (alert,) = h.alerts()
    assert (alert.state, alert.start, alert.end) == ("resolved", t("09:00"), t("09:20"))
    (msg,) = h.sink.alerts
    assert (msg.id, msg.state) == (alert.id, AlertState.RESOLVED)


def test_two_dirty_episodes_are_two_alerts(h: Harness) -> None:
    h.feed(hygiene(BAD, t("10:00")))
    h.feed(hygiene(GOOD, t("10:30")))
    h.feed(hygiene(BAD, t("14:00")))
    assert [(a.state, a.start) for a in h.alerts()] == [
        ("open", t("14:00")),
        ("resolved", t("10:00")),
    ]


def test_stale_bad_after_a_newer_good_is_recorded_resolved(h: Harness) -> None:
    # replay order: the good (10:40) arrives before the bad that started the episode (10:00)
    h.feed(hygiene(GOOD, t("10:40")), now=t("10:50"))
    late = hygiene(BAD, t("10:00"), evidence=snapshot(t("10:01"), variant=4))
    assert late.ts < t("10:45") and h.feed(late, now=t("11:00")) is IngestOutcome.STORED
    (alert,) = h.alerts()
    assert (alert.state, alert.start, alert.end, alert.window, alert.zone) == (
        "resolved", t("10:00"), t("10:40"), "1", "w1-public",
    )  # fmt: skip
    assert alert.message.startswith("环境差：1号窗口公共区域（1号窗口）")
    (snap,) = h.snapshots()
    assert (alert.evidence_id, snap.fact_id, snap.jpeg) == (snap.id, late.id, jpeg_bytes(4))
    (msg,) = h.sink.alerts
    assert (msg.id, msg.state) == (alert.id, AlertState.RESOLVED) and msg.evidence_url
    row = h.zone("w1-public")  # the current state is the newer good's
    assert (row.hygiene_state, row.hygiene_since, row.hygiene_fact_ts) == (
        "good", t("10:40"), t("10:45"),
    )  # fmt: skip
    assert row.hygiene_evidence_id is None
    # another stale bad inside the same episode records nothing more
    h.feed(hygiene(BAD, t("10:10"), ts=t("10:12"), evidence=snapshot(t("10:11"))))
    assert len(h.alerts()) == 1 and len(h.sink.alerts) == 1 and len(h.snapshots()) == 1


def test_stale_bad_cleared_before_opening_raises_nothing(h: Harness) -> None:
    h.feed(hygiene(GOOD, t("08:30")), now=t("08:40"))
    h.feed(hygiene(BAD, t("07:00"), evidence=snapshot(t("07:01"))), now=t("08:45"))
    assert h.alerts() == [] and h.sink.alerts == [] and h.snapshots() == []
    assert (h.zone("w1-public").hygiene_state, h.zone("w1-public").hygiene_since) == (
        "good",
        t("08:30"),
    )


# -- concurrency: the zone's row is locked while a fact reads and updates it -----------------


@contextmanager
def zone_reads(
    hook: Callable[[ORMExecuteState], Result[Any] | None] | None = None,
) -> Iterator[list[Select[Any]]]:
    """Collect the statements that read ``ZoneStatus`` rows (any session) while active;
    ``hook`` may run each read itself (``invoke_statement``) and return its result."""
    seen: list[Select[Any]] = []

    def capture(state: ORMExecuteState) -> Result[Any] | None:
        if not state.is_select or all(m.class_ is not ZoneStatus for m in state.all_mappers):
            return None
        seen.append(state.statement)  # type: ignore[arg-type]
        return hook(state) if hook is not None else None

    event.listen(Session, "do_orm_execute", capture)
    try:
        yield seen
    finally:
        event.remove(Session, "do_orm_execute", capture)


def test_zone_rows_are_read_for_update_on_postgresql(h: Harness) -> None:
    # SQLite serialises writers and ignores the lock; PostgreSQL needs FOR UPDATE, or two
    # replicas handling the zone's bad and good facts at once could both read ``good``
    with zone_reads() as reads:
        h.feed(hygiene(BAD, t("10:00")))
        h.feed(hygiene(GOOD, t("10:40")))
        h.feed(occupancy(t("10:00"), 12))
        h.feed(occupancy(t("10:01"), 3))
        h.feed(hygiene(BAD, t("17:30")))
        assert len(h.zones.evaluate(t("09:00", day=3))) == 1
    assert len(reads) >= 6
    for stmt in reads:
        assert "FOR UPDATE" in str(stmt.compile(dialect=postgresql.dialect()))


def test_zone_row_inserted_meanwhile_by_another_replica_is_used(h: Harness) -> None:
    """Another replica creates the zone's row between this one's read and its insert."""
    raced: list[bool] = []

    def other_replica_inserts(state: ORMExecuteState) -> Result[Any] | None:
        if raced:
            return None
        raced.append(True)
        result = state.invoke_statement().freeze()  # this read: no row yet
        row = {
            "hall": HALL, "zone": "w1-public", "camera": "c1", "hygiene_state": "good",
            "hygiene_since": t("09:00"), "hygiene_fact_ts": t("09:05"),
            "occupancy_crowded": False, "updated_at": t("09:05"),
        }  # fmt: skip
        state.session.connection().execute(insert(ZoneStatus).values(**row))
        return result()

    with zone_reads(other_replica_inserts):
        assert h.feed(hygiene(BAD, t("10:00"))) is IngestOutcome.STORED
    assert raced == [True]
    row = h.zone("w1-public")
    assert (row.hygiene_state, row.hygiene_since) == ("bad", t("10:00"))
    (alert,) = h.alerts()
    assert (alert.state, alert.start) == ("open", t("10:00"))


# -- crowding ----------------------------------------------------------------------------


def test_crowding_opens_once_and_resolves(h: Harness) -> None:
    h.feed(occupancy(t("10:00"), 6))
    assert h.alerts() == []
    h.feed(occupancy(t("10:01"), 12, peak=15, evidence=snapshot(t("10:02"), variant=5)))
    h.feed(occupancy(t("10:02"), 14, peak=16))  # still crowded: the same alert
    (alert,) = h.alerts()
    assert (alert.kind, alert.state, alert.zone, alert.start) == (
        "crowding", "open", "waiting", t("10:01"),
    )  # fmt: skip
    assert alert.message == "人员拥挤：候办区当前12人（峰值15人），已达拥挤阈值10人，请及时疏导"
    assert alert.evidence_id is not None
    row = h.zone("waiting")
    assert (row.occupancy_count, row.occupancy_peak, row.occupancy_crowded) == (14, 16, True)
    assert (row.crowded_since, row.occupancy_at) == (t("10:01"), t("10:03"))

    h.feed(occupancy(t("10:03"), 7))
    (alert,) = h.alerts()
    assert (alert.state, alert.end) == ("resolved", t("10:03"))
    assert h.zone("waiting").crowded_since is None
    assert [(m.kind, m.state) for m in h.sink.alerts] == [
        (AlertKind.CROWDING, AlertState.OPEN),
        (AlertKind.CROWDING, AlertState.RESOLVED),
    ]
    h.feed(occupancy(t("10:04"), 5))  # not crowded again: nothing
    assert len(h.sink.alerts) == 2


def test_stale_occupancy_changes_nothing_and_crowding_alerts_any_hour(h: Harness) -> None:
    h.feed(occupancy(t("07:30"), 11))  # before opening: a queue at the door matters
    h.feed(occupancy(t("07:31"), 3))
    h.feed(occupancy(t("07:29"), 20), now=t("07:40"))  # stale (older interval)
    (alert,) = h.alerts(AlertKind.CROWDING)
    assert (alert.state, alert.start, alert.end) == ("resolved", t("07:30"), t("07:31"))
    row = h.zone("waiting")
    assert (row.occupancy_count, row.occupancy_crowded, row.occupancy_at) == (3, False, t("07:32"))


# -- off-post evidence -------------------------------------------------------------------


def test_off_post_alert_links_the_snapshot_of_its_absence(h: Harness) -> None:
    h.feed(presence("w1", PostState.ON_POST, t("09:30")))
    h.feed(presence("w1", PostState.OFF_POST, t("10:00"), evidence=snapshot(t("10:00"), 3)))
    (msg,) = h.rule.evaluate(t("10:11"))
    (alert,) = h.alerts(AlertKind.OFF_POST)
    (snap,) = h.snapshots()
    assert (snap.post, snap.zone, snap.jpeg) == ("w1", None, jpeg_bytes(3))
    assert alert.evidence_id == snap.id
    assert msg.evidence_url == f"/api/v1/halls/{HALL}/alerts/{alert.id}/evidence"
    h.feed(presence("w1", PostState.ON_POST, t("10:20")))
    (alert,) = h.alerts(AlertKind.OFF_POST)
    assert (alert.state, alert.evidence_id) == ("resolved", snap.id)
    (status,) = [p for p in h.state.post_statuses(HALL) if p.post == "w1"]
    assert status.evidence_id is None  # on post: no absence, no snapshot
    # a later absence without a snapshot does not borrow the earlier one
    h.feed(presence("w1", PostState.OFF_POST, t("11:00")))
    h.rule.evaluate(t("11:15"))
    later = [a for a in h.alerts(AlertKind.OFF_POST) if a.start == t("11:00")]
    assert [a.evidence_id for a in later] == [None]


def test_off_post_alert_recorded_at_the_return_links_the_snapshot(h: Harness) -> None:
    # the absence crossed the threshold unseen (no evaluation before the return)
    h.feed(presence("w2", PostState.OFF_POST, t("10:00"), evidence=snapshot(t("10:00"), 7)))
    h.feed(presence("w2", PostState.ON_POST, t("10:30")))
    (alert,) = h.alerts(AlertKind.OFF_POST)
    (snap,) = h.snapshots()
    assert (alert.state, alert.evidence_id, snap.jpeg) == ("resolved", snap.id, jpeg_bytes(7))
    (msg,) = h.sink.alerts
    assert msg.evidence_url is not None


def test_snapshots_are_stored_once_per_episode(h: Harness) -> None:
    h.feed(presence("w1", PostState.OFF_POST, t("10:00"), evidence=snapshot(t("10:00"))))
    h.feed(presence("w1", PostState.OFF_POST, t("10:05"), evidence=snapshot(t("10:05"))))
    h.feed(occupancy(t("10:00"), 12, evidence=snapshot(t("10:01"))))
    h.feed(occupancy(t("10:01"), 12, evidence=snapshot(t("10:02"))))  # still crowded
    with h.state.read_session() as session:
        count = session.scalar(select(func.count()).select_from(EvidenceSnapshot))
    assert count == 2
