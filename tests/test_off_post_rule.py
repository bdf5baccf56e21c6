"""The off-post (离岗) rule, table-tested over timelines.

Each timeline is a list of steps run through the real ingestor (so state updates, the
camera/edge pause and the rule hooks are exercised as in production) with a fake clock:

- ``"10:00 off w1"`` / ``"10:25 on w1"``: a presence change of post w1, observed then
  (``since`` = the step time unless ``since HH:MM`` follows);
- ``"10:06 sum-off w1 since 10:05"``: a periodic summary;
- ``"10:10 eval"``: the rule's periodic evaluation at that time;
- ``"10:05 cam-off"`` / ``"10:30 cam-on"``: camera c1 went offline / online;
- ``"10:05 edge-off"`` / ``"10:30 edge-on"``: the edge worker went offline / online.

Times are Shanghai wall-clock times on Monday 2026-11-02 unless prefixed ``tue/`` etc.
The test hall serves Mon–Fri 09:00–17:00 with lunch 12:00–13:30 and a 10-minute
threshold; post w2 may get an override.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import event, select
from sqlalchemy.exc import OperationalError

from aggregator.alerts import ListSink
from aggregator.bus import LiveBus
from aggregator.ingest import Ingestor, IngestOutcome, Message
from aggregator.rules.off_post import OffPostRule
from aggregator.store.state import Alert, PostStatus, StateStore
from aggregator.store.timeseries import SqliteTimeSeriesStore
from hallwatch.config.models import HallConfig
from hallwatch.contract import (
    AlertMessage,
    AlertState,
    DeviceBody,
    DeviceFact,
    DeviceKind,
    DeviceState,
    EdgeStatus,
    PostState,
    PresenceBody,
    PresenceFact,
    edge_status_topic,
    encode,
    fact_topic,
)
from tests.conftest import build_hall

SH = ZoneInfo("Asia/Shanghai")
DAYS = {"mon": 2, "tue": 3, "wed": 4, "thu": 5, "fri": 6, "sat": 7, "sun": 8}
HALL = "h-rule"
SOURCE = "edge-h-rule"


def t(text: str) -> datetime:
    """``"10:00"`` or ``"tue/09:10"`` (Shanghai, week of 2026-11-02) → aware UTC."""
    day, _, hhmm = text.rpartition("/")
    parts = [int(p) for p in hhmm.split(":")]
    second = parts[2] if len(parts) > 2 else 0
    local = datetime(2026, 11, DAYS[day or "mon"], parts[0], parts[1], second)
    return local.replace(tzinfo=SH).astimezone(UTC)


class Harness:
    """Real state store, series store, ingestor and rule, with a settable clock."""

    def __init__(self, tmp_path: Path, hall: HallConfig) -> None:
        self.state = StateStore(f"sqlite:///{tmp_path / 'state.sqlite'}")
        self.state.create_all()
        self.series = SqliteTimeSeriesStore(":memory:")
        self.sink = ListSink()
        halls = {hall.hall.id: hall}
        self.rule = OffPostRule(self.state, halls, self.sink)
        self.now = t("00:00")
        self.ingestor = Ingestor(
            self.state, self.series, halls, LiveBus(), rule=self.rule, clock=lambda: self.now
        )

    def close(self) -> None:
        self.series.close()
        self.state.dispose()

    def _ingest(self, topic: str, payload: bytes) -> None:
        assert self.ingestor.handle(topic, payload) is IngestOutcome.STORED

    def step(self, step: str) -> None:
        words = step.split()
        self.now = when = t(words[0])
        action = words[1]
        if action == "eval":
            self.rule.evaluate(when)
        elif action in ("on", "off", "sum-on", "sum-off"):
            since = t(words[words.index("since") + 1]) if "since" in words else when
            body = PresenceBody(
                camera="c1",
                post=words[2],
                state=PostState.ON_POST if action.endswith("on") else PostState.OFF_POST,
                since=since,
                summary=action.startswith("sum"),
            )
            fact = PresenceFact(hall=HALL, source=SOURCE, ts=when, body=body)
            self._ingest(fact_topic(HALL, "presence"), encode(fact))
        elif action in ("cam-on", "cam-off"):
            state = DeviceState.ONLINE if action == "cam-on" else DeviceState.OFFLINE
            dev = DeviceBody(device="c1", device_kind=DeviceKind.CAMERA, state=state)
            fact2 = DeviceFact(hall=HALL, source=SOURCE, ts=when, body=dev)
            self._ingest(fact_topic(HALL, "device"), encode(fact2))
        elif action in ("edge-on", "edge-off"):
            state = DeviceState.ONLINE if action == "edge-on" else DeviceState.OFFLINE
            status = EdgeStatus(hall=HALL, source=SOURCE, state=state, ts=when)
            self._ingest(edge_status_topic(HALL), encode(status))
        else:
            raise ValueError(step)

    def alerts(self) -> list[tuple[str | None, str, str, str | None, str]]:
        rows, _ = self.state.list_alerts(hall=HALL, limit=100)

        def hm(dt: datetime | None) -> str | None:
            if dt is None:
                return None
            local = dt.astimezone(SH)
            text = local.strftime("%H:%M:%S" if local.second else "%H:%M")
            return text if local.day == 2 else f"{list(DAYS)[local.day - 2]}/{text}"

        def key(a: Alert) -> tuple[str | None, str, str, str | None, str]:
            return (a.post, a.state, hm(a.start) or "", hm(a.end), hm(a.opened_at) or "")

        return sorted((key(a) for a in rows), key=lambda k: (k[4], k[0] or ""))


@pytest.fixture
def harness_factory(tmp_path: Path) -> Iterator[Callable[[HallConfig], Harness]]:
    made: list[Harness] = []

    def make(hall: HallConfig) -> Harness:
        made.append(Harness(tmp_path, hall))
        return made[-1]

    yield make
    for h in made:
        h.close()


@dataclass(frozen=True)
class Case:
    steps: list[str]
    expected: list[tuple[str | None, str, str, str | None, str]]
    """(post, state, start, end, opened_at), ordered by opened_at."""
    lunch_closed: bool = True
    w2_override_s: float | None = None


OPEN, RESOLVED = AlertState.OPEN.value, AlertState.RESOLVED.value

CASES = {
    "short-absence-no-alert": Case(
        ["10:00 off w1", "10:05 eval", "10:08 on w1", "10:30 eval"],
        [],
    ),
    "long-absence-alert-at-threshold-resolved-on-return": Case(
        ["10:00 off w1", "10:09:59 eval", "10:10 eval", "10:20 eval", "10:25 on w1", "10:30 eval"],
        [("w1", RESOLVED, "10:00", "10:25", "10:10")],
    ),
    "still-open": Case(
        ["10:00 off w1", "10:15 eval"],
        [("w1", OPEN, "10:00", None, "10:15")],
    ),
    "lunch-closed-does-not-count": Case(
        ["11:55 off w1", "12:30 eval", "13:34:59 eval", "13:35 eval"],
        [("w1", OPEN, "11:55", None, "13:35")],
    ),
    "lunch-open-counts": Case(
        ["11:55 off w1", "12:04 eval", "12:05 eval"],
        [("w1", OPEN, "11:55", None, "12:05")],
        lunch_closed=False,
    ),
    "after-hours-no-alert": Case(
        ["17:10 off w1", "18:00 eval", "23:30 eval", "tue/08:59 eval", "tue/08:00 on w1"],
        [],
    ),
    "absence-spanning-service-start-clipped": Case(
        ["08:30 off w1", "09:09:59 eval", "09:10 eval", "09:20 on w1"],
        [("w1", RESOLVED, "09:00", "09:20", "09:10")],
    ),
    "absence-over-closing-continues-next-day": Case(
        ["16:55 off w1", "17:30 eval", "tue/09:04 eval", "tue/09:05 eval"],
        [("w1", OPEN, "16:55", None, "tue/09:05")],
    ),
    "closed-day-no-alert": Case(
        ["sat/10:00 off w1", "sat/12:00 eval", "sat/16:00 eval"],
        [],
    ),
    "per-post-override": Case(
        ["10:00 off w1", "10:00 off w2", "10:01:59 eval", "10:02 eval", "10:09 eval"],
        [("w2", OPEN, "10:00", None, "10:02")],
        w2_override_s=120,
    ),
    "camera-offline-pauses": Case(
        ["10:00 off w1", "10:05 cam-off", "10:20 eval", "10:30 cam-on", "10:34:59 eval",
         "10:35 eval"],
        [("w1", OPEN, "10:00", None, "10:35")],
    ),
    "edge-offline-pauses": Case(
        ["10:00 edge-on", "10:00 off w1", "10:05 edge-off", "10:40 eval", "10:50 edge-on",
         "10:54 eval", "10:55 eval"],
        [("w1", OPEN, "10:00", None, "10:55")],
    ),
    "open-alert-stays-open-while-camera-offline": Case(
        ["10:00 off w1", "10:10 eval", "10:12 cam-off", "10:30 eval"],
        [("w1", OPEN, "10:00", None, "10:10")],
    ),
    "one-alert-per-absence": Case(
        ["10:00 off w1", "10:10 eval", "10:11 eval", "10:15 on w1", "10:30 off w1",
         "10:39 eval", "10:40 eval", "10:41 eval"],
        [("w1", RESOLVED, "10:00", "10:15", "10:10"), ("w1", OPEN, "10:30", None, "10:40")],
    ),
    "summary-does-not-move-since": Case(
        ["10:00 off w1", "10:06 sum-off w1 since 10:05", "10:10 eval"],
        [("w1", OPEN, "10:00", None, "10:10")],
    ),
    "summary-disagreeing-is-a-change": Case(
        ["10:00 off w1", "10:10 eval", "10:20 sum-on w1 since 10:18"],
        [("w1", RESOLVED, "10:00", "10:18", "10:10")],
    ),
    "absence-ended-between-evaluations-recorded-resolved": Case(
        ["10:00 off w1", "10:05 eval", "10:21 on w1 since 10:20"],
        [("w1", RESOLVED, "10:00", "10:20", "10:21")],
    ),
    "late-replayed-facts": Case(
        ["10:40 off w1 since 10:00", "10:40 on w1 since 10:20"],
        [("w1", RESOLVED, "10:00", "10:20", "10:40")],
    ),
}  # fmt: skip


@pytest.mark.parametrize("case", list(CASES.values()), ids=list(CASES))
def test_timeline(harness_factory: Callable[[HallConfig], Harness], case: Case) -> None:
    posts: list[dict[str, Any]] = [
        {"id": "w1", "name": "1号窗口", "kind": "front_desk", "window": "1", "camera": "c1"},
        {"id": "w2", "name": "2号窗口", "kind": "front_desk", "window": "2", "camera": "c1",
         "off_post_after_s": case.w2_override_s},
    ]  # fmt: skip
    hall = build_hall(HALL, posts=posts, lunch_closed=case.lunch_closed, off_post_after_s=600)
    h = harness_factory(hall)
    for step in case.steps:
        h.step(step)
    assert h.alerts() == case.expected
    # Every alert was published, each state once, the last message matching the DB.
    stored = {a.id: a.state for a in h.state.list_alerts(hall=HALL)[0]}
    sent = [(m.id, m.state.value) for m in h.sink.alerts]
    assert len(sent) == len(set(sent))
    assert {i: st for i, st in sent} == stored


def test_stale_presence_fact_does_not_change_state(
    harness_factory: Callable[[HallConfig], Harness],
) -> None:
    h = harness_factory(build_hall(HALL))
    h.step("10:00 on w1")
    # Observed before the stored state's fact, arriving after it (a replay): it is kept
    # as a series point, but the state stands.
    h.now = t("10:01")
    old = PresenceFact(
        hall=HALL,
        source=SOURCE,
        ts=t("09:59"),
        body=PresenceBody(camera="c1", post="w1", state=PostState.OFF_POST, since=t("09:59")),
    )
    assert h.ingestor.handle(fact_topic(HALL, "presence"), encode(old)) is IngestOutcome.STORED
    (status,) = h.state.post_statuses(HALL)
    assert (status.state, status.since) == (PostState.ON_POST.value, t("10:00"))
    assert h.rule.evaluate(t("11:00")) == []
    assert len(h.series.query("post_presence", hall=HALL, start=t("09:00"), end=t("11:00"))) == 2


def test_unconfigured_post_is_stored_but_not_judged(
    harness_factory: Callable[[HallConfig], Harness],
) -> None:
    h = harness_factory(build_hall(HALL))
    h.step("10:00 off w9")
    h.step("11:00 eval")
    assert h.alerts() == []
    assert any(s.post == "w9" for s in h.state.post_statuses(HALL))


def test_alert_message_fields(harness_factory: Callable[[HallConfig], Harness]) -> None:
    h = harness_factory(build_hall(HALL))
    h.step("10:00 off w1")
    (msg,) = h.rule.evaluate(t("10:10"))
    assert (msg.hall, msg.kind.value, msg.post, msg.window) == (HALL, "off_post", "w1", "1")
    assert msg.start == t("10:00") and msg.end is None
    assert "离岗" in msg.message and "1号窗口" in msg.message
    assert h.rule.evaluate(t("10:11")) == []


def test_two_absences_in_one_batch_after_an_open_alert(
    harness_factory: Callable[[HallConfig], Harness],
) -> None:
    """One batch: back at 10:20 (the open alert ends then), away again at 10:21 and back
    at 10:40 (a second absence past the threshold, recorded resolved). The rule reads the
    post's open alert without flushing the batch: the alert resolved by the first change
    is still open in the database, and must not be resolved again by the second."""
    h = harness_factory(build_hall(HALL))
    h.step("10:00 off w1")
    h.step("10:10 eval")  # opens the alert

    def change(at: str, state: PostState) -> Message:
        body = PresenceBody(camera="c1", post="w1", state=state, since=t(at))
        fact = PresenceFact(hall=HALL, source=SOURCE, ts=t(at), body=body)
        return Message(fact_topic(HALL, "presence"), encode(fact))

    h.now = t("10:41")
    batch = [change("10:20", PostState.ON_POST), change("10:21", PostState.OFF_POST),
             change("10:40", PostState.ON_POST)]  # fmt: skip
    assert h.ingestor.handle_batch(batch) == [IngestOutcome.STORED] * 3
    assert h.alerts() == [  # post, state, start, end, opened at
        ("w1", "resolved", "10:00", "10:20", "10:10"),
        ("w1", "resolved", "10:21", "10:40", "10:41"),
    ]


@pytest.mark.parametrize("camera_known", [False, True], ids=["new-device", "known-device"])
def test_a_camera_going_offline_in_the_batch_of_an_absence(
    harness_factory: Callable[[HallConfig], Harness], camera_known: bool
) -> None:
    """One batch: camera c1 goes offline at 10:05, post w1 is seen leaving at 10:04 (the
    edge's last look) and the fact arrives after the camera's. The absence's clock is
    paused from the start (the rule reads the camera's row without flushing the batch:
    a new row is flushed when added, a known one is seen in memory), so no alert opens
    while the camera is away; it is counted again from the camera's return."""
    h = harness_factory(build_hall(HALL))
    h.step("10:00 on w1")
    if camera_known:
        h.step("10:01 cam-on")

    def message(fact: DeviceFact | PresenceFact, kind: str) -> Message:
        return Message(fact_topic(HALL, kind), encode(fact))

    off_cam = DeviceFact(hall=HALL, source=SOURCE, ts=t("10:05"),
                         body=DeviceBody(device="c1", device_kind=DeviceKind.CAMERA,
                                         state=DeviceState.OFFLINE))  # fmt: skip
    away = PresenceFact(hall=HALL, source=SOURCE, ts=t("10:05:30"),
                        body=PresenceBody(camera="c1", post="w1", state=PostState.OFF_POST,
                                          since=t("10:04")))  # fmt: skip
    h.now = t("10:06")
    batch = [message(off_cam, "device"), message(away, "presence")]
    assert h.ingestor.handle_batch(batch) == [IngestOutcome.STORED] * 2
    assert h.rule.evaluate(t("10:40")) == []  # 36 minutes away, none of them observed
    h.step("10:50 cam-on")
    assert h.rule.evaluate(t("10:59")) == []  # 9 observed minutes
    (opened,) = h.rule.evaluate(t("11:01"))  # 11
    assert opened.post == "w1" and opened.start == t("10:04")


def _presence(post: str, at: str, state: PostState, camera: str = "c1") -> Message:
    body = PresenceBody(camera=camera, post=post, state=state, since=t(at))
    fact = PresenceFact(hall=HALL, source=SOURCE, ts=t(at), body=body)
    return Message(fact_topic(HALL, "presence"), encode(fact))


def test_a_device_becoming_a_camera_in_the_batch_of_an_absence(
    harness_factory: Callable[[HallConfig], Harness],
) -> None:
    """One batch: w2 (camera c2) leaves, which reads what the hall's cameras show; then
    device c1, reported offline as a kiosk, is reported as the camera it is (still
    offline); then w1 (camera c1) leaves. w1's absence is not observed: the rule reads the
    hall's cameras again after a device's kind changed, and w1's clock stays paused."""
    h = harness_factory(build_hall(HALL))
    kiosk = DeviceFact(hall=HALL, source=SOURCE, ts=t("09:50"),
                       body=DeviceBody(device="c1", device_kind=DeviceKind.KIOSK,
                                       state=DeviceState.OFFLINE))  # fmt: skip
    h.now = t("09:50")
    assert h.ingestor.handle(fact_topic(HALL, "device"), encode(kiosk)) is IngestOutcome.STORED
    h.step("09:55 on w1")
    camera = DeviceFact(hall=HALL, source=SOURCE, ts=t("10:00"),
                        body=DeviceBody(device="c1", device_kind=DeviceKind.CAMERA,
                                        state=DeviceState.OFFLINE))  # fmt: skip
    h.now = t("10:01")
    batch = [
        _presence("w2", "10:00", PostState.OFF_POST, camera="c2"),
        Message(fact_topic(HALL, "device"), encode(camera)),
        _presence("w1", "10:00", PostState.OFF_POST),
    ]
    assert h.ingestor.handle_batch(batch) == [IngestOutcome.STORED] * 3
    assert [m.post for m in h.rule.evaluate(t("10:30"))] == ["w2"]  # w1: none observed


def test_a_batch_reads_what_the_rule_needs_of_a_hall_once(
    harness_factory: Callable[[HallConfig], Harness],
) -> None:
    """Twelve posts leave in one batch; in the next, 12 minutes on, one returns (its
    absence, past the 10-minute threshold, is recorded resolved) and the batch's
    evaluation opens the other eleven alerts; in a third, they return. Each batch reads
    the hall's open alerts, offline cameras and offline edges once, not once per post, and
    asks once per evaluation which due absences were alerted already."""
    posts = [{"id": f"w{i}", "name": f"{i}号窗口", "kind": "front_desk", "window": str(i),
              "camera": "c1"} for i in range(1, 13)]  # fmt: skip
    h = harness_factory(build_hall(HALL, posts=posts))
    reads: list[str] = []

    def count(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if statement.lstrip().upper().startswith("SELECT"):
            reads.extend(t for t in ("alerts", "device_status", "edge_status")
                         if f"FROM {t}" in statement)  # fmt: skip

    def batch(now: str, facts: list[Message]) -> list[str]:
        reads.clear()
        h.now = t(now)
        assert h.ingestor.handle_batch(facts) == [IngestOutcome.STORED] * len(facts)
        return sorted(reads)

    event.listen(h.state.engine, "before_cursor_execute", count)
    away = [_presence(f"w{i}", "10:00", PostState.OFF_POST) for i in range(1, 13)]
    assert batch("10:01", away) == ["alerts", "device_status", "edge_status"]
    first_back = [_presence("w1", "10:11", PostState.ON_POST)]
    assert batch("10:12", first_back) == ["alerts"] * 3 + ["device_status", "edge_status"]
    assert h.alerts() == [("w1", "resolved", "10:00", "10:11", "10:12")] + [
        (f"w{i}", "open", "10:00", None, "10:12") for i in range(10, 13)
    ] + [(f"w{i}", "open", "10:00", None, "10:12") for i in range(2, 10)]
    back = [_presence(f"w{i}", "10:20", PostState.ON_POST) for i in range(2, 13)]
    assert batch("10:21", back) == ["alerts", "device_status", "edge_status"]  # none due
    assert [a[1] for a in h.alerts()] == ["resolved"] * 12
    reads.clear()
    assert h.rule.evaluate(t("10:30")) == []
    assert sorted(reads) == ["alerts", "device_status", "edge_status"]


def test_a_failing_evaluation_in_a_batch_loses_no_fact(
    harness_factory: Callable[[HallConfig], Harness],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The rule's evaluation inside an ingest batch fails (a bug): it is logged and undone,
    the batch's facts and state changes commit without it, and the next evaluation (the
    rule ticker's) opens the alert."""
    h = harness_factory(build_hall(HALL))
    h.step("10:00 off w1")

    def half_done(session: Any, hall: str, posts: Any, now: datetime) -> list[AlertMessage]:
        posts["w1"].clock_banked_s = 9999.0  # changed, then the bug
        raise RuntimeError("a bug in the rule")

    monkeypatch.setattr(h.rule, "judge_batch", half_done)
    h.now = t("10:15")
    batch = [_presence("w2", "10:14", PostState.OFF_POST)]
    assert h.ingestor.handle_batch(batch) == [IngestOutcome.STORED]
    assert "off-post evaluation of h-rule in an ingest batch failed" in caplog.text
    assert h.alerts() == []
    with h.state.read_session() as session:
        rows = {r.post: r for r in session.scalars(select(PostStatus))}
    assert rows["w2"].state == "off_post" and rows["w1"].clock_banked_s == 0.0  # undone
    (opened,) = h.rule.evaluate(t("10:16"))
    assert opened.post == "w1" and opened.start == t("10:00")


def _fail_statement(engine: Any, starts: str, nth: int) -> list[str]:
    """Make the ``nth`` statement starting with ``starts`` fail as a locked database does
    (the statements seen are listed in the returned list)."""
    seen: list[str] = []

    def execute(_cursor: Any, statement: str, *_args: Any) -> None:
        if statement.lstrip().startswith(starts):
            seen.append(statement)
            if len(seen) == nth:
                raise sqlite3.OperationalError("database is locked (injected)")

    event.listen(engine, "do_execute", execute)
    event.listen(engine, "do_executemany", execute)
    return seen


def test_a_database_failure_of_the_batch_before_its_evaluation_fails_the_batch(
    harness_factory: Callable[[HallConfig], Harness],
) -> None:
    """The batch's own changes are written before the rule's savepoint: when that write
    fails, the batch fails (and is retried), instead of being taken for the rule's failure
    and the facts acknowledged without being stored. w1's change is written when the rule
    first reads the hall; w2's, the second UPDATE of the posts, just before the rule."""
    h = harness_factory(build_hall(HALL))
    h.step("09:00 on w1")
    h.step("09:00 on w2")
    _fail_statement(h.state.engine, "UPDATE post_status", 2)
    h.now = t("10:01")
    batch = [_presence("w1", "10:00", PostState.OFF_POST),
             _presence("w2", "10:00", PostState.OFF_POST)]  # fmt: skip
    with pytest.raises(OperationalError):
        h.ingestor.handle_batch(batch)
    with h.state.read_session() as session:
        assert {r.post: r.state for r in session.scalars(select(PostStatus))} == {
            "w1": "on_post",
            "w2": "on_post",
        }
    assert h.ingestor.handle_batch(batch) == [IngestOutcome.STORED] * 2  # the retry


@pytest.mark.parametrize("fails", [False, True], ids=["resolved", "release-fails"])
def test_an_open_alert_of_a_staffed_post_is_resolved_by_a_batch_evaluation(
    harness_factory: Callable[[HallConfig], Harness], fails: bool
) -> None:
    """w1 is staffed but has an open alert (another replica's, opened as w1 came back):
    a batch that changes another post evaluates the hall and resolves it. When writing
    that resolution fails, it is rolled back with the rule's savepoint and not announced;
    the batch's facts are stored, and the ticker resolves it later."""
    h = harness_factory(build_hall(HALL))
    h.step("09:00 on w1")
    with h.state.session() as session:
        session.add(Alert(id="OTHER", hall=HALL, kind="off_post", post="w1", state="open",
                          start=t("08:40"), opened_at=t("08:55"), message=""))  # fmt: skip
    if fails:
        _fail_statement(h.state.engine, "UPDATE alerts", 1)
    h.now = t("10:01")
    batch = [_presence("w2", "10:00", PostState.OFF_POST)]
    assert h.ingestor.handle_batch(batch) == [IngestOutcome.STORED]
    resolved = [(m.id, m.state) for m in h.sink.alerts]
    assert resolved == ([] if fails else [("OTHER", AlertState.RESOLVED)])
    assert h.alerts() == [("w1", "open" if fails else "resolved", "08:40",
                           None if fails else "09:00", "08:55")]  # fmt: skip
    with h.state.read_session() as session:
        assert session.get(PostStatus, (HALL, "w2")).state == "off_post"  # type: ignore[union-attr]
