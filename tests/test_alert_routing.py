"""Alert routing (docs/alert-routing.md): who is told, by which channel, when, and never twice.

Router decisions with a fake clock over a real SQLite file: routes by kind and level,
escalation after N minutes (per kind), acknowledge and resolve stop it, quiet hours hold
texts and release them, flapping and redelivered alerts are not re-sent, the hourly limit
ends in one summary, and a restarted router neither repeats nor forgets. Last, one
integration test over a real Mosquitto and a fake SMS gateway at its HTTP boundary.
"""

from __future__ import annotations

import queue
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select

from aggregator.alerts import alert_message
from aggregator.notify.actions import record_action
from aggregator.notify.records import ActionKind, AlertNotification, RoutedAlert
from aggregator.notify.routing import AlertRouter
from aggregator.store.state import Alert, StateStore
from hallwatch.config.models import HallConfig
from hallwatch.contract import (
    AlertKind,
    AlertMessage,
    AlertState,
    AnomalyLevel,
    new_id,
    parse_alert,
)
from tests.conftest import build_hall
from tests.support.clock import SettableClock

HALL = "rt-hall"
ZHANG, WANG, LI, ZHAO = "13800000001", "13800000002", "13800000003", "13800000004"
"""Hall managers zhang (MQTT too) and wang (SMS only); officer li; director zhao."""
SHANGHAI = ZoneInfo("Asia/Shanghai")


def local(hhmm: str, day: int = 2) -> datetime:
    """A hall-local time on 2026-11-<day> (the 2nd is a Monday), as aware UTC."""
    h, m = (int(x) for x in hhmm.split(":"))
    return datetime(2026, 11, day, h, m, tzinfo=SHANGHAI).astimezone(UTC)


ROUTING: dict[str, Any] = {
    "recipients": [
        {"id": "zhang", "name": "大厅负责人 张三", "role": "hall_manager", "phone": ZHANG},
        {"id": "wang", "name": "值班 王五", "role": "hall_manager", "phone": WANG, "mqtt": False},
        {"id": "li", "name": "监督员 李四", "role": "supervision_officer", "phone": LI},
        {"id": "zhao", "name": "局领导 赵六", "role": "director", "phone": ZHAO, "mqtt": False},
        {"id": "screen", "name": "值班大屏", "role": "screen"},
    ],
    "routes": [
        {"kinds": ["off_post", "device_offline"], "level": 1, "roles": ["hall_manager"]},
        {"kinds": ["off_post", "device_offline"], "level": 2, "recipients": ["li"]},
        {"kinds": ["off_post"], "level": 3, "roles": ["director"]},
        {"kinds": ["hygiene_bad"], "recipients": ["zhang", "screen"]},
        {"kinds": ["wait_over_limit"], "recipients": ["zhang"]},
        {"kinds": ["wait_over_limit"], "level": 2, "recipients": ["li"]},
    ],
    "escalation": {"after_min": 10, "after_min_by_kind": {"device_offline": 60}},
    "quiet_hours": [{"start": "22:00", "end": "07:00"}],
    "dedup": {"reopen_window_min": 10},
    "rate_limit": {"sms_per_hour": 3},
}


def routed_hall(hall_id: str = HALL, **changes: Any) -> HallConfig:
    """The test hall with :data:`ROUTING` (top-level keys replaced by ``changes``)."""
    data = build_hall(hall_id).model_dump(
        mode="json", by_alias=True, context={"reveal_secrets": True}
    )
    data["routing"] = {**ROUTING, **changes}
    return HallConfig.model_validate(data)


class RecordingSms:
    """Every text the router hands over (no dedup of its own: twice would show)."""

    def __init__(self, fail: bool = False) -> None:
        self.sent: list[tuple[str, str, str]] = []
        self.fail = fail

    def send(self, phone: str, text: str, dedup_key: str) -> bool:
        if self.fail:
            raise RuntimeError("gateway client broken")
        self.sent.append((phone, text, dedup_key))
        return True

    def phones(self) -> list[str]:
        return sorted(p for p, _, _ in self.sent)


class RecordingMqtt:
    def __init__(self) -> None:
        self.sent: list[tuple[str, bytes]] = []

    def publish(self, topic: str, payload: bytes) -> bool:
        self.sent.append((topic, payload))
        return True

    def topics(self) -> list[str]:
        return sorted(t.rsplit("/", 1)[1] for t, _ in self.sent)


class Routing:
    """A router over a SQLite file, with recording channels and a settable clock."""

    def __init__(self, db: Path, hall: HallConfig | None = None, *, sms: bool = True) -> None:
        self.db = db
        self.hall = hall or routed_hall()
        self.state = StateStore(f"sqlite:///{db}")
        self.state.create_all()
        self.clock = SettableClock(local("10:00"))
        self.sms = RecordingSms() if sms else None
        self.mqtt = RecordingMqtt()
        self.router = AlertRouter(
            self.state, {self.hall.hall.id: self.hall}, sms=self.sms, mqtt=self.mqtt,
            clock=self.clock,
        )  # fmt: skip

    def restart(self) -> Routing:
        """A new store and router on the same database file (the clock carries on)."""
        self.state.dispose()
        again = Routing(self.db, self.hall)
        again.clock.now = self.clock.now
        return again

    def at(self, hhmm: str, day: int = 2) -> None:
        self.clock.now = local(hhmm, day)

    def tick(self, hhmm: str, day: int = 2) -> int:
        self.at(hhmm, day)
        return self.router.tick()

    def open(self, kind: AlertKind = AlertKind.OFF_POST, *, publish: bool = True,
             **where: str) -> AlertMessage:  # fmt: skip
        """Store an open alert (post w1 unless a post, device or zone is given), publish it."""
        if not where:
            where = {"post": "w1"}
        row = Alert(id=new_id(), hall=self.hall.hall.id, kind=kind.value, window=None,
                    state="open", start=self.clock.now, end=None, opened_at=self.clock.now,
                    resolved_at=None, message=f"{kind.value} 告警", post=where.get("post"),
                    device=where.get("device"), zone=where.get("zone"))  # fmt: skip
        with self.state.session() as session:
            session.add(row)
        message = alert_message(row)
        if publish:
            self.router.publish(message)
        return message

    def resolve(self, alert: AlertMessage) -> None:
        """The rule resolves it now and publishes that."""
        with self.state.session() as session:
            row = session.get(Alert, alert.id)
            assert row is not None
            row.state, row.end, row.resolved_at = "resolved", self.clock.now, self.clock.now
            message = alert_message(row)
        self.router.publish(message)

    def ack(self, alert: AlertMessage, who: str = "张三") -> None:
        record_action(self.state, alert.id, ActionKind.ACKNOWLEDGE, actor=who,
                      role="hall_manager", note="", now=self.clock.now)  # fmt: skip

    def outcomes(self, alert: AlertMessage) -> list[tuple[str, int, str, str, str]]:
        with self.state.read_session() as session:
            rows = session.scalars(
                select(AlertNotification)
                .where(AlertNotification.alert_id == alert.id)
                .order_by(AlertNotification.id)
            )
            return [(n.recipient, n.level, n.channel, n.event, n.outcome) for n in rows]

    def texts(self) -> list[str]:
        """Phones texted so far, sorted."""
        return self.recorder().phones()

    def recorder(self) -> RecordingSms:
        assert self.sms is not None
        return self.sms

    def close(self) -> None:
        self.state.dispose()


@pytest.fixture
def r(tmp_path: Path) -> Iterator[Routing]:
    routing = Routing(tmp_path / "state.sqlite")
    yield routing
    routing.close()


def test_routes_by_kind_level_and_channel(r: Routing) -> None:
    alert = r.open(AlertKind.OFF_POST)
    assert r.texts() == [ZHANG, WANG]  # the hall managers (level 1), not li nor zhao
    assert r.mqtt.topics() == ["zhang"]  # wang and zhao have MQTT off
    topic, payload = r.mqtt.sent[0]
    assert topic == f"hallwatch/v1/{HALL}/alerts/zhang"
    told = parse_alert(payload)
    assert (told.id, told.state, told.post) == (alert.id, AlertState.OPEN, "w1")
    assert all(text == "【测试大厅】off_post 告警" for _, text, _ in r.recorder().sent)
    assert sorted(r.outcomes(alert)) == [
        ("wang", 1, "sms", "alert", "sent"),
        ("zhang", 1, "mqtt", "alert", "sent"),
        ("zhang", 1, "sms", "alert", "sent"),
    ]
    r.recorder().sent.clear()
    r.mqtt.sent.clear()
    r.open(AlertKind.HYGIENE_BAD, zone="w01-public")
    assert (r.texts(), r.mqtt.topics()) == ([ZHANG], ["screen", "zhang"])
    crowding = r.open(AlertKind.CROWDING, zone="waiting")  # no route: left alone
    assert r.texts() == [ZHANG] and r.outcomes(crowding) == []
    with r.state.read_session() as session:
        assert session.get(RoutedAlert, crowding.id) is None


def test_escalates_level_by_level_until_acknowledged(r: Routing) -> None:
    a = r.open(post="w1")
    b = r.open(post="w2")
    r.at("10:05")
    r.ack(b)
    assert r.tick("10:09") == 0
    r.tick("10:10")  # a: 10 minutes unacknowledged → level 2; b was acknowledged
    assert r.texts() == sorted([ZHANG, WANG, ZHANG, WANG, LI])
    assert ("li", 2, "sms", "alert", "sent") in r.outcomes(a)
    assert [o for o in r.outcomes(b) if o[1] > 1] == []
    li_text = next(text for phone, text, _ in r.recorder().sent if phone == LI)
    assert li_text.startswith("【二级提醒】")
    assert r.tick("10:19") == 0
    r.tick("10:20")  # ten minutes at level 2 → level 3 (the director)
    assert r.texts().count(ZHAO) == 1
    assert r.tick("11:30") == 0  # no level 4
    with r.state.read_session() as session:
        routed = session.get(RoutedAlert, a.id)
        assert routed is not None and (routed.level, routed.level_at) == (3, local("10:20"))


def test_escalation_delay_per_kind_and_resolving_stops_it(r: Routing) -> None:
    d1 = r.open(AlertKind.DEVICE_OFFLINE, device="kiosk-1")
    d2 = r.open(AlertKind.DEVICE_OFFLINE, device="kiosk-2")
    r.tick("10:30")  # device_offline escalates after 60 minutes, not 10
    assert LI not in r.texts()
    r.at("10:40")
    r.mqtt.sent.clear()
    r.resolve(d2)
    (topic, payload), = r.mqtt.sent  # fmt: skip
    assert topic.endswith("/alerts/zhang") and parse_alert(payload).state is AlertState.RESOLVED
    r.tick("11:00")
    assert r.texts().count(LI) == 1  # d1 only
    assert ("li", 2, "sms", "alert", "sent") in r.outcomes(d1)
    assert all(level == 1 for _, level, _, _, _ in r.outcomes(d2))


def test_quiet_hours_hold_texts_and_release_them_if_still_open(r: Routing) -> None:
    r.at("23:00")
    a = r.open(post="w1")
    assert r.texts() == [] and r.mqtt.topics() == ["zhang"]  # MQTT goes at night
    assert ("zhang", 1, "sms", "alert", "held") in r.outcomes(a)
    r.at("23:30")
    b = r.open(post="w2")
    r.at("23:40")
    r.resolve(b)  # resolved in the night: its texts are dropped
    r.at("23:50")
    c = r.open(AlertKind.DEVICE_OFFLINE, device="lift-1")
    r.at("23:55")
    r.ack(c)  # acknowledged in the night: nobody needs waking in the morning
    r.tick("23:10")
    r.tick("23:20")  # a escalated twice in the night: texts held, MQTT to li sent
    assert r.texts() == [] and "li" in r.mqtt.topics()
    assert r.tick("06:59", day=3) == 0
    r.tick("07:00", day=3)
    assert r.texts() == [ZHANG, WANG, LI, ZHAO]  # a's four held texts, nothing of b or c
    assert {o[4] for o in r.outcomes(b) if o[2] == "sms"} == {"dropped"}
    assert {o[4] for o in r.outcomes(c) if o[2] == "sms"} == {"dropped"}
    assert r.tick("07:01", day=3) == 0


def test_an_alert_is_never_told_twice_and_flapping_is_not_re_sent(r: Routing) -> None:
    a = r.open(post="w1")
    r.router.publish(a)  # redelivered: nothing new
    assert r.texts() == [ZHANG, WANG]
    r.at("10:03")
    r.resolve(a)
    r.at("10:08")  # re-opened 5 minutes after resolving: flapping
    a2 = r.open(post="w1")
    assert r.texts() == [ZHANG, WANG] and r.mqtt.topics() == ["zhang", "zhang"]  # + resolved
    assert sorted(o[4] for o in r.outcomes(a2)) == ["flapping"] * 3
    r.tick("10:18")  # it still escalates
    assert r.texts() == [ZHANG, WANG, LI]
    r.at("10:20")
    r.resolve(a2)
    r.at("10:31")  # 11 minutes after: a new episode, told again
    r.open(post="w1")
    assert r.texts() == [ZHANG, ZHANG, WANG, WANG, LI]


def test_rate_limit_then_one_summary(r: Routing) -> None:
    alerts = []
    for i in range(5):
        r.at(f"10:0{i}")
        alerts.append(r.open(AlertKind.DEVICE_OFFLINE, device=f"kiosk-{i}"))
    assert r.texts().count(ZHANG) == 3  # 3 per hour
    assert r.mqtt.topics().count("zhang") == 5  # MQTT is not limited
    assert ("zhang", 1, "sms", "alert", "rate_limited") in r.outcomes(alerts[4])
    r.resolve(alerts[4])
    r.tick("10:30")
    assert r.texts().count(ZHANG) == 3  # the hour is still full
    r.tick("11:00")  # the 10:00 text has left the hour: room for one summary
    zhang = [text for phone, text, _ in r.recorder().sent if phone == ZHANG]
    assert len(zhang) == 4
    assert "另有2条告警" in zhang[-1] and "其中1条仍未处理" in zhang[-1]
    assert ("zhang", 1, "sms", "alert", "summarized") in r.outcomes(alerts[3])
    r.tick("11:01")
    assert r.texts().count(ZHANG) == 4


def test_restart_neither_repeats_nor_forgets(r: Routing) -> None:
    a = r.open(post="w1")
    first = r.restart()
    try:
        first.router.publish(a)  # redelivered after the restart
        assert first.router.tick(local("10:05")) == 0
        assert first.router.tick(local("10:10")) == 2  # level 2: li's text and MQTT
        second = first.restart()
    finally:
        first.close()
    try:
        assert second.router.tick(local("10:12")) == 0
        second.router.tick(local("10:20"))
        second.at("23:00")
        night = second.open(post="w2")  # its texts held until 07:00
        third = second.restart()
    finally:
        second.close()
    try:
        third.router.publish(night)
        third.router.tick(local("07:00", day=3))
        fourth = third.restart()
    finally:
        third.close()
    try:
        assert fourth.router.tick(local("07:01", day=3)) == 0
        assert (r.texts(), first.texts(), second.texts()) == ([ZHANG, WANG], [LI], [ZHAO])
        # the night alert: its held texts, and level 2 at once (no tick ran in the night)
        assert third.texts() == [ZHANG, WANG, LI]
        assert fourth.texts() == []
    finally:
        fourth.close()


def test_an_alert_the_router_never_saw_is_caught_up(r: Routing) -> None:
    a = r.open(post="w1", publish=False)  # e.g. a crash between commit and publish
    r.tick("10:00")
    assert r.texts() == [ZHANG, WANG]
    r.router.publish(a)
    r.tick("10:01")
    assert r.texts() == [ZHANG, WANG]


def test_a_red_card_is_told_again(r: Routing) -> None:
    warning = AlertMessage(id=new_id(), hall=HALL, kind=AlertKind.WAIT_OVER_LIMIT,
                           state=AlertState.OPEN, window="1", start=r.clock.now,
                           message="【异常办件·预警（黄牌）】窗口等待超时：测试大厅 1号窗口",
                           level=AnomalyLevel.WARNING)  # fmt: skip
    r.router.publish(warning)
    assert r.texts() == [ZHANG]
    assert not r.recorder().sent[0][1].startswith("【测试大厅】")  # the message names the hall
    r.tick("10:10")
    assert r.texts() == [ZHANG, LI]
    red = warning.model_copy(update={"level": AnomalyLevel.RED, "message": "【异常办件·红牌】…"})
    r.router.publish(red)
    r.router.publish(red)
    assert r.texts() == [ZHANG, ZHANG, LI, LI]
    assert ("li", 2, "sms", "red_card", "sent") in r.outcomes(warning)


def test_a_hall_without_routing_is_left_alone(tmp_path: Path) -> None:
    plain = Routing(tmp_path / "plain.sqlite", build_hall(HALL))
    try:
        assert not plain.hall.routing.enabled
        alert = plain.open(post="w1")
        assert plain.tick("11:00") == 0
        assert (plain.texts(), plain.mqtt.sent, plain.outcomes(alert)) == ([], [], [])
    finally:
        plain.close()


def test_without_gateway_or_with_a_failing_one_the_outcome_is_recorded(tmp_path: Path) -> None:
    silent = Routing(tmp_path / "nogw.sqlite", sms=False)
    try:
        alert = silent.open(post="w1")
        assert ("zhang", 1, "sms", "alert", "no_gateway") in silent.outcomes(alert)
        assert ("zhang", 1, "mqtt", "alert", "sent") in silent.outcomes(alert)
        silent.router.sms = RecordingSms(fail=True)
        second = silent.open(post="w2")  # raises inside: recorded, not raised
        assert {o[4] for o in silent.outcomes(second) if o[2] == "sms"} == {"failed"}
    finally:
        silent.close()


# --- over a real broker and a fake SMS gateway --------------------------------------------


@pytest.mark.integration
def test_alert_reaches_the_hall_topic_once_sms_level_1_then_level_2(
    tmp_path: Path, unique_id: Callable[[str], str]
) -> None:
    from aggregator.service import AggregatorService
    from aggregator.settings import AggregatorSettings
    from hallwatch.broker import free_port
    from hallwatch.contract import PostState, alerts_topic
    from tests.support.mosquitto import Mosquitto, find_mosquitto, publish
    from tests.support.running import wait_until
    from tests.test_aggregator_mqtt import Subscriber, presence
    from tests.test_sms import Gateway

    if find_mosquitto() is None:
        pytest.skip("mosquitto is not installed")
    hall_id = unique_id("rt")
    hall = routed_hall(hall_id, quiet_hours=[])
    now = [local("10:30")]  # Monday, in service
    with Mosquitto() as broker:
        gateway = Gateway(free_port()).start()
        settings = AggregatorSettings(
            database_url=f"sqlite:///{tmp_path / 'agg.sqlite'}", mqtt_host="127.0.0.1",
            mqtt_port=broker.port, mqtt_client_id=unique_id("agg"), http_port=0,
            rule_tick_s=0.05, sms_gateway_url=gateway.url,
        )  # fmt: skip
        manager = Subscriber(broker.port, alerts_topic(hall_id))
        zhang = Subscriber(broker.port, f"{alerts_topic(hall_id)}/zhang")
        service = AggregatorService(settings, {hall_id: hall}, clock=lambda: now[0])
        try:
            service.start()
            assert service.wait_mqtt_connected(10)
            away = now[0] - timedelta(minutes=20)
            publish(broker.port, [presence(hall_id, "w1", PostState.OFF_POST, away)])
            opened = parse_alert(manager.get())  # the rule ticker opens it
            assert (opened.kind, opened.post, opened.state) == (
                AlertKind.OFF_POST, "w1", AlertState.OPEN,
            )  # fmt: skip
            assert parse_alert(zhang.get()).id == opened.id
            wait_until(lambda: len(gateway.received) == 2, 10, "the level-1 texts")
            assert sorted(m.body["to"] for m in gateway.received) == [ZHANG, WANG]
            now[0] += timedelta(minutes=10)  # unacknowledged for 10 minutes
            wait_until(lambda: len(gateway.received) == 3, 10, "the level-2 text")
            escalated = gateway.received[2].body
            assert escalated["to"] == LI and escalated["text"].startswith("【二级提醒】")
            with pytest.raises(queue.Empty):
                manager.messages.get(timeout=1.0)  # the hall topic had it once
            assert len(gateway.received) == 3
        finally:
            service.stop()
            manager.close()
            zhang.close()
            gateway.close()


def test_a_second_summary_for_the_same_alert_is_sent(r: Routing) -> None:
    """Summaries are keyed by the text they end with, not by the alert: a later run of
    rate-limited texts about the same alert gets its own summary."""
    for i in range(3):
        r.at(f"10:0{i}")
        r.open(AlertKind.DEVICE_OFFLINE, device=f"k{i}")
    r.at("10:03")
    warning = AlertMessage(id=new_id(), hall=HALL, kind=AlertKind.WAIT_OVER_LIMIT,
                           state=AlertState.OPEN, window="1", start=r.clock.now,
                           message="预警", level=AnomalyLevel.WARNING)  # fmt: skip
    r.router.publish(warning)
    assert ("zhang", 1, "sms", "alert", "rate_limited") in r.outcomes(warning)
    r.tick("11:01")
    assert ("zhang", 1, "sms", "alert", "summarized") in r.outcomes(warning)
    for i, t in enumerate(("11:02", "11:03")):
        r.at(t)
        r.open(AlertKind.DEVICE_OFFLINE, device=f"m{i}")
    r.at("11:04")
    r.router.publish(warning.model_copy(update={"level": AnomalyLevel.RED}))
    assert ("zhang", 1, "sms", "red_card", "rate_limited") in r.outcomes(warning)
    before = r.texts().count(ZHANG)
    for t in ("12:10", "12:30"):
        r.tick(t)
    assert r.texts().count(ZHANG) == before + 1  # the second summary
    assert ("zhang", 1, "sms", "red_card", "summarized") in r.outcomes(warning)
