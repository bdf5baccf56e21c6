"""Alerts and SMS of 异常办件 (docs/cases.md §5): the alert goes out when an anomaly
opens, turns red and closes, always with the anomaly's id; texts go to the recipients
whose kinds and min_level match, once per anomaly and level."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from aggregator.cases.notify import CaseNotifier
from hallwatch.contract import (
    AlertKind,
    AlertMessage,
    AlertState,
    AnomalyLevel,
    RatingLevel,
    WaitBody,
    WaitFact,
    encode,
    fact_topic,
    parse_alert,
)
from tests.test_anomaly_register import HALL, Harness, case_hall, t

DIRECTOR, CHIEF, RATINGS = "13800000001", "13800000002", "13800000003"
"""All kinds from warning; all kinds, red only; bad_rating only."""


@pytest.fixture
def h(tmp_path: Path) -> Iterator[Harness]:
    harness = Harness(tmp_path, case_hall())
    yield harness
    harness.close()


def test_alerts_on_open_red_and_close_with_the_same_id(h: Harness) -> None:
    h.feed(h.wait(t("10:30")))
    (opened,) = h.alerts()
    anomaly = h.one()
    assert (opened.id, opened.hall, opened.kind, opened.state, opened.level) == (
        anomaly.id, HALL, AlertKind.WAIT_OVER_LIMIT, AlertState.OPEN, AnomalyLevel.WARNING,
    )  # fmt: skip
    assert opened.start == t("10:30") and opened.deadline == t("00:00", day=10)
    assert "窗口等待超时" in opened.message and "整改期限2026-11-10 00:00前" in opened.message
    assert parse_alert(encode(opened)) == opened  # valid on the alerts topic
    h.register.escalate(t("00:00", day=10))
    h.register.rectify(HALL, anomaly.id, actor="manager", now=t("10:00", day=10))
    h.register.close(HALL, anomaly.id, actor="officer", now=t("11:00", day=10))
    opened, red, closed = h.alerts()
    assert {opened.id, red.id, closed.id} == {anomaly.id}
    assert (red.state, red.level, red.message.startswith("【异常办件·红牌】")) == (
        AlertState.OPEN, AnomalyLevel.RED, True,
    )  # fmt: skip
    assert (closed.state, closed.level, closed.end) == (
        AlertState.RESOLVED, AnomalyLevel.RED, t("11:00", day=10),
    )  # fmt: skip
    assert "已办结" in closed.message


def test_no_alert_for_other_changes(h: Harness) -> None:
    h.feed(h.rating(t("11:00"), RatingLevel.DISSATISFIED, case_no="K1", window="1"))
    a = h.one()
    h.register.appeal(HALL, a.id, actor="m", now=t("12:00"))
    h.feed(h.rating(t("13:00"), RatingLevel.SATISFIED, rating_id="r2", case_no="K1",
                    evaluation=2))  # fmt: skip
    assert [m.state for m in h.alerts()] == [AlertState.OPEN]
    h.register.close(HALL, a.id, actor="o", now=t("14:00"))
    assert [m.state for m in h.alerts()] == [AlertState.OPEN, AlertState.RESOLVED]


def test_sms_routing_by_kind_and_level(h: Harness) -> None:
    h.feed(h.wait(t("10:30")))
    wait = h.one()
    assert [(p, k) for p, _, k in h.sms.sent] == [(DIRECTOR, f"{wait.id}:warning")]
    assert "窗口等待超时" in h.sms.sent[0][1] and "测试大厅" in h.sms.sent[0][1]
    h.sms.sent.clear()
    h.feed(h.rating(t("11:00"), RatingLevel.DISSATISFIED, window="1"))
    rating = next(a for a in h.anomalies() if a.kind == "bad_rating")
    assert sorted(p for p, _, _ in h.sms.sent) == [DIRECTOR, RATINGS]
    assert {k for _, _, k in h.sms.sent} == {f"{rating.id}:warning"}
    h.sms.sent.clear()
    h.register.escalate(t("00:00", day=10))  # both turn red
    red = sorted((p, k) for p, _, k in h.sms.sent)
    assert red == sorted(
        [
            (DIRECTOR, f"{wait.id}:red"),
            (CHIEF, f"{wait.id}:red"),
            (DIRECTOR, f"{rating.id}:red"),
            (CHIEF, f"{rating.id}:red"),
            (RATINGS, f"{rating.id}:red"),
        ]
    )
    h.sms.sent.clear()
    h.register.rectify(HALL, wait.id, actor="m", now=t("10:00", day=10))
    h.register.close(HALL, wait.id, actor="o", now=t("11:00", day=10))
    assert h.sms.sent == []  # closing sends no text


class _Boom:
    def publish(self, alert: AlertMessage) -> None:
        raise RuntimeError("broker down")

    def send(self, phone: str, text: str, dedup_key: str) -> bool:
        raise RuntimeError("gateway down")


def test_a_failing_sink_or_gateway_does_not_raise(h: Harness) -> None:
    h.feed(h.wait(t("10:30")))
    (message,) = h.alerts()
    texts: list[str] = []

    class Sms:
        def send(self, phone: str, text: str, dedup_key: str) -> bool:
            texts.append(phone)
            return True

    CaseNotifier(h.register.halls, _Boom(), Sms()).publish([message])
    assert texts == [DIRECTOR]  # the sink failed, the text still went
    CaseNotifier(h.register.halls, None, _Boom()).publish([message])  # logged, not raised


def test_unknown_hall_and_off_post_alerts_get_no_text(h: Harness) -> None:
    h.feed(h.wait(t("10:30")))
    (message,) = h.alerts()
    notifier = CaseNotifier(h.register.halls, None, h.sms)
    assert notifier.recipients(message.model_copy(update={"hall": "elsewhere"})) == []
    assert notifier.recipients(message.model_copy(update={"kind": AlertKind.OFF_POST})) == []
    assert notifier.recipients(message.model_copy(update={"level": AnomalyLevel.RED})) == [
        "13800000001", "13800000002",
    ]  # fmt: skip


def test_the_service_wires_register_notifier_and_sms(tmp_path: Path) -> None:
    from aggregator.service import AggregatorService
    from aggregator.settings import AggregatorSettings

    settings = AggregatorSettings(
        database_url=f"sqlite:///{tmp_path / 's.sqlite'}",
        http_port=0,
        sms_gateway_url="http://127.0.0.1:9/sms",
    )
    service = AggregatorService(settings, {HALL: case_hall()}, mqtt=False)
    try:
        assert service.ingestor.cases is service.cases
        assert service.cases.notifier is not None
        assert service.cases.notifier.sms is service.sms is not None
        assert service.cases.notifier.sink is service.sink
        assert service.app.state.services.cases is service.cases
    finally:
        service.series.close()
        service.state.dispose()
    off = AggregatorService(
        settings.model_copy(update={"sms_gateway_url": None}), {HALL: case_hall()}, mqtt=False
    )
    assert off.sms is None
    off.series.close()
    off.state.dispose()


def test_the_ticker_escalates(tmp_path: Path) -> None:
    from aggregator.service import AggregatorService
    from aggregator.settings import AggregatorSettings
    from tests.support.running import wait_until
    from tests.test_anomaly_register import FakeSms

    settings = AggregatorSettings(
        database_url=f"sqlite:///{tmp_path / 't.sqlite'}", http_port=0, rule_tick_s=0.05
    )
    now = [t("10:30")]
    service = AggregatorService(settings, {HALL: case_hall()}, mqtt=False, clock=lambda: now[0])
    assert service.cases.notifier is not None
    service.cases.notifier.sms = sms = FakeSms()
    service.state.create_all()
    wait = WaitFact(hall=HALL, source="edge-1", ts=t("10:30"), body=WaitBody(
        ticket="A017", ticket_id="20261102-A017", leg=1, service="A", clock_start=t("10:00"),
        waited_s=1800, limit_s=1800))  # fmt: skip
    service.ingestor.handle(fact_topic(HALL, "wait"), encode(wait))
    with service:
        now[0] = t("00:00", day=10)
        wait_until(lambda: len(sms.sent) == 3, 5, "the red texts")
    assert sorted(k.rsplit(":", 1)[1] for _, _, k in sms.sent) == ["red", "red", "warning"]
