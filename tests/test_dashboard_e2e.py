"""The web dashboard end to end (issue 6): a real aggregator on a real Mosquitto, driven
in Debian's headless Chromium through Playwright.

Two halls (城东 A, 城西 B) open around the clock, so the off-post and hygiene rules act
at any hour. Facts are published on the broker as an edge, a queue machine and evaluators
would; snapshots are real JPEGs (scikit-image's coffee). Screenshots of the sign-in, the
overview, the hall view, an alert's detail and the charts go to the test artifacts folder
(``$HALLWATCH_TEST_ARTIFACTS``, default ``var/test-artifacts/``).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from aggregator.auth.roles import Role
from aggregator.service import AggregatorService
from aggregator.settings import AggregatorSettings
from hallwatch.config.models import HallConfig
from hallwatch.contract import (
    DeviceBody,
    DeviceFact,
    DeviceKind,
    DeviceState,
    EdgeStatus,
    Fact,
    HygieneBody,
    HygieneFact,
    HygieneState,
    OccupancyBody,
    OccupancyFact,
    PostState,
    PresenceBody,
    PresenceFact,
    QueueBody,
    QueueFact,
    ServiceQueue,
    WaitBody,
    WaitFact,
    edge_status_topic,
    encode,
    fact_topic,
    utcnow,
)
from tests.conftest import build_hall
from tests.support import browser
from tests.support.mosquitto import Mosquitto, find_mosquitto, publish
from tests.support.running import wait_until
from tests.test_zone_alerts import snapshot

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(find_mosquitto() is None, reason="mosquitto is not installed"),
    pytest.mark.skipif(browser.missing() is not None, reason=str(browser.missing())),
]

A, B = "h-dash-east", "h-dash-west"
PASSWORD = "大厅 watch 2026!"
OFFICER, MANAGER = "officer-li", "manager-wang"
SOURCE = "edge-dash"


def dash_hall(hall_id: str, name: str) -> HallConfig:
    """Four windows on one camera, a window's public area, a waiting area, a kiosk and a
    queue machine's two services; open every day 00:00–23:59."""
    posts = [{"id": f"w{i}", "name": f"{i}号窗口", "kind": "front_desk", "window": str(i),
              "camera": "c1"} for i in range(1, 5)]  # fmt: skip
    every_day = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
    hours = {"open_weekdays": every_day, "national_calendar": False,
             "default": {"open": "00:00", "close": "23:59"}}  # fmt: skip
    data: dict[str, Any] = build_hall(hall_id, name=name, posts=posts).model_dump(
        mode="json", exclude_unset=True
    )
    data["service_hours"] = hours
    data["zones"] = [
        {"id": "w1-public", "name": "1号窗口公共区域", "kind": "window_public", "camera": "c1",
         "window": "1", "polygon": [[10, 300], [300, 300], [300, 470], [10, 470]]},
        {"id": "waiting", "name": "候办区", "kind": "waiting_area", "camera": "c1",
         "polygon": [[320, 200], [630, 200], [630, 470], [320, 470]], "crowding_at": 10},
    ]  # fmt: skip
    data["devices"] = [{"id": "kiosk-1", "name": "1号自助终端", "kind": "kiosk",
                        "probe": {"tcp": "127.0.0.1:9"}}]  # fmt: skip
    data["queue"] = {
        "adapter": "generic_json", "topic": f"devices/{hall_id}/queue",
        "applicant_salt": "dashboard-test-salt-not-a-secret",
        "services": [{"id": "A", "name": "社保业务"}, {"id": "B", "name": "不动产登记"}],
    }  # fmt: skip
    return HallConfig.model_validate(data)


def presence(hall: str, post: str, state: PostState, since: datetime, *, jpeg: int = -1) -> Fact:
    evidence = snapshot(since, variant=jpeg) if jpeg >= 0 else None
    body = PresenceBody(camera="c1", post=post, window=post[1:], state=state, since=since,
                        evidence=evidence)  # fmt: skip
    return PresenceFact(hall=hall, source=SOURCE, ts=since, body=body)


def queue(hall: str, now: datetime, rows: list[tuple[str, int, float]]) -> Fact:
    services = [ServiceQueue(service=s, waiting=w, longest_wait_s=lw) for s, w, lw in rows]
    return QueueFact(hall=hall, source=SOURCE, ts=now, body=QueueBody(services=services))


def hall_a_facts(now: datetime) -> list[Fact]:
    """Hall A: one post off for 20 min (an off-post alert with a snapshot), a kiosk
    offline, 环境差 at window 1, a crowded waiting area, a wait over 30 minutes."""
    ago = lambda minutes: now - timedelta(minutes=minutes)  # noqa: E731
    hygiene = HygieneBody(camera="c1", zone="w1-public", window="1", state=HygieneState.BAD,
                          since=ago(8), score=0.21,
                          evidence=snapshot(ago(8), variant=2))  # fmt: skip
    crowd = OccupancyBody(camera="c1", zone="waiting", start=ago(1), interval_s=60, count=12,
                          peak=14, mean=12.0, looks=12, crowded=True,
                          evidence=snapshot(now, variant=3))  # fmt: skip
    over = WaitBody(ticket="A017", ticket_id=f"{now:%Y%m%d}-A017", leg=1, service="A",
                    clock_start=ago(31), waited_s=1860, limit_s=1800)  # fmt: skip
    kiosk = DeviceBody(device="kiosk-1", device_kind=DeviceKind.KIOSK, state=DeviceState.OFFLINE,
                       reason="心跳超时")  # fmt: skip
    camera = DeviceBody(device="c1", device_kind=DeviceKind.CAMERA, state=DeviceState.ONLINE)
    return [
        DeviceFact(hall=A, source=SOURCE, ts=ago(50), body=camera),
        presence(A, "w1", PostState.ON_POST, ago(45)),
        presence(A, "w2", PostState.ON_POST, ago(30)),
        presence(A, "w3", PostState.OFF_POST, ago(20), jpeg=1),
        presence(A, "w4", PostState.ON_POST, ago(12)),
        DeviceFact(hall=A, source=SOURCE, ts=ago(5), body=kiosk),
        HygieneFact(hall=A, source=SOURCE, ts=ago(7), body=hygiene),
        OccupancyFact(hall=A, source=SOURCE, ts=now, body=crowd),
        queue(A, now, [("A", 6, 1860.0), ("B", 2, 420.0)]),
        WaitFact(hall=A, source=SOURCE, ts=now, body=over),
    ]


def hall_b_facts(now: datetime) -> list[Fact]:
    """Hall B: everyone on post, a short queue."""
    ago = lambda minutes: now - timedelta(minutes=minutes)  # noqa: E731
    camera = DeviceBody(device="c1", device_kind=DeviceKind.CAMERA, state=DeviceState.ONLINE)
    return [
        DeviceFact(hall=B, source=SOURCE, ts=ago(50), body=camera),
        *(presence(B, f"w{i}", PostState.ON_POST, ago(40 - i)) for i in range(1, 5)),
        queue(B, now, [("A", 1, 95.0), ("B", 0, 0.0)]),
    ]


@dataclass
class Site:
    service: AggregatorService
    broker: Mosquitto
    chromium: browser.Chromium

    @property
    def url(self) -> str:
        return self.service.url

    def publish(self, facts: list[Fact]) -> None:
        publish(self.broker.port, [(fact_topic(f.hall, f.kind.value), encode(f)) for f in facts])


@pytest.fixture(scope="module")
def site(mosquitto: Mosquitto, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    folder: Path = tmp_path_factory.mktemp("dashboard")
    settings = AggregatorSettings(
        database_url=f"sqlite:///{folder / 'state.sqlite'}", mqtt_host="127.0.0.1",
        mqtt_port=mosquitto.port, mqtt_client_id=f"agg-dash-{time.time_ns()}", http_port=0,
        rule_tick_s=0.2, report_dir=folder / "reports",
    )  # fmt: skip
    halls = {A: dash_hall(A, "城东政务服务中心"), B: dash_hall(B, "城西政务服务中心")}
    service = AggregatorService(settings, halls)
    service.start()
    try:
        assert service.wait_mqtt_connected(10), "the aggregator did not connect"
        service.users.add(OFFICER, role=Role.SUPERVISION_OFFICER, password=PASSWORD)
        service.users.add(MANAGER, role=Role.HALL_MANAGER, halls=[A], password=PASSWORD)
        now = utcnow()
        site = Site(service, mosquitto, browser.Chromium())
        status = EdgeStatus(hall=A, source=SOURCE, state=DeviceState.ONLINE)
        publish(mosquitto.port, [(edge_status_topic(A), encode(status))])
        facts_a, facts_b = hall_a_facts(now), hall_b_facts(now)
        site.publish(facts_a + facts_b)
        wait_until(lambda: service.state.seen_count(A) == len(facts_a), 10, "hall A's facts")
        wait_until(lambda: service.state.seen_count(B) == len(facts_b), 10, "hall B's facts")
        kinds = {"off_post", "hygiene_bad", "crowding"}
        opened = lambda: kinds <= {a.kind for a in service.state.open_alerts(A)}  # noqa: E731
        wait_until(opened, 10, "hall A's alerts")
        with site.chromium:
            yield site
        assert site.chromium.errors == []
    finally:
        service.stop()


def sign_in(site: Site, user: str, *, shot: str | None = None) -> Any:
    """Sign in through the form (first with a wrong password when ``shot`` is given)."""
    page = site.chromium.page(f"{site.url}/")
    page.wait_for_selector("#login-username")
    assert page.locator("html").get_attribute("lang") == "zh-CN"
    assert page.locator("#login-title").inner_text() == "登录电子监察"
    page.fill("#login-username", user)
    if shot:
        page.fill("#login-password", "wrong password!")
        page.click("button[type=submit]")
        page.wait_for_function("document.querySelector('#login-message').textContent.length")
        assert page.inner_text("#login-message") == "用户名或密码错误"
    page.fill("#login-password", PASSWORD)
    if shot:
        site.chromium.screenshot(page, shot)
    page.click("button[type=submit]")
    page.wait_for_selector(".hall-tile")
    return page


def metric(page: Any, hall: str, name: str) -> str:
    text: str = page.inner_text(f'.hall-tile[data-hall="{hall}"] [data-metric="{name}"] .value')
    return text


def test_overview_after_sign_in(site: Site) -> None:
    page = sign_in(site, OFFICER, shot="dashboard-login")
    assert page.locator(".hall-tile").count() == 2
    page.wait_for_function("document.querySelector('#conn').className.includes('conn-ok')")
    assert (metric(page, A, "on_post"), metric(page, A, "off_post")) == ("3", "1")
    assert metric(page, A, "longest_wait") == "31"  # minutes, over the 30-minute limit
    assert (metric(page, A, "anomalies"), metric(page, A, "hygiene")) == ("1", "1")
    assert (metric(page, A, "devices"), metric(page, A, "off_alerts")) == ("1", "1")
    assert page.get_attribute(f'.hall-tile[data-hall="{A}"]', "data-level") == "alarm"
    assert page.get_attribute(f'.hall-tile[data-hall="{B}"]', "data-level") == "ok"
    assert (metric(page, B, "on_post"), metric(page, B, "off_post")) == ("4", "0")
    site.chromium.screenshot(page, "dashboard-overview")
    page.click("#logout")
    page.wait_for_selector("#login-username")
    assert page.locator(".hall-tile").count() == 0


def test_a_presence_fact_changes_its_tile_within_a_second(site: Site) -> None:
    page = sign_in(site, OFFICER)
    page.wait_for_function("document.querySelector('#conn').className.includes('conn-ok')")
    before_a = metric(page, A, "off_post")
    off = int(metric(page, B, "off_post"))
    # the page notes (Date.now) when hall B's off-post figure becomes off + 1
    page.evaluate(
        """([hall, want]) => {
          window.changedAt = null;
          const tile = document.querySelector(`.hall-tile[data-hall="${hall}"]`);
          new MutationObserver((_, obs) => {
            const v = tile.querySelector('[data-metric="off_post"] .value');
            if (v && v.textContent === want) { window.changedAt = Date.now(); obs.disconnect(); }
          }).observe(tile, {subtree: true, childList: true, characterData: true});
        }""",
        [B, str(off + 1)],
    )
    published = time.time()
    site.publish([presence(B, "w2", PostState.OFF_POST, utcnow())])
    page.wait_for_function("window.changedAt !== null", timeout=10_000)
    latency_s = page.evaluate("window.changedAt") / 1000 - published
    print(f"publish → tile change: {latency_s * 1000:.0f} ms")
    assert latency_s < 1.0, f"the tile changed {latency_s:.2f} s after the fact was published"
    assert metric(page, A, "off_post") == before_a  # the other hall's tile did not move
    assert page.get_attribute(f'.hall-tile[data-hall="{B}"]', "data-level") == "warn"
    site.publish([presence(B, "w2", PostState.ON_POST, utcnow())])
    page.wait_for_function(
        f"""document.querySelector('.hall-tile[data-hall="{B}"] [data-metric="off_post"] .value')
            .textContent === '{off}'"""
    )


def test_hall_view_and_alert_evidence(site: Site) -> None:
    page = sign_in(site, OFFICER)
    page.click(f'.hall-tile[data-hall="{A}"]')
    page.wait_for_selector(".timeline-item")
    posts = page.locator(".post")
    assert posts.count() == 4
    assert page.get_attribute('.post[data-post="w3"]', "data-state") == "off"
    assert page.get_attribute('.post[data-post="w1"]', "data-state") == "on"
    assert "离岗" in page.inner_text('.post[data-post="w3"] .post-state')
    assert "社保业务" in page.inner_text('.panel-queue tr[data-service="A"]')
    assert page.inner_text('.panel-queue tr[data-service="A"] td.num >> nth=0') == "6"
    assert "环境差" in page.inner_text(
        '.panel-zones tr[data-zone="w1-public"] [data-field="hygiene"]'
    )
    assert "12" in page.inner_text('.panel-zones tr[data-zone="waiting"] [data-field="people"]')
    assert "离线" in page.inner_text('.panel-devices [data-device="kiosk-1"]')
    assert page.locator(".cases .case").count() == 1
    site.chromium.screenshot(page, "dashboard-hall")
    # the off-post alert opens its snapshot and its facts
    with page.expect_response(lambda r: "/evidence" in r.url) as answer:
        page.click('.post[data-post="w3"] .alert-button')
    response = answer.value
    assert response.status == 200 and response.headers["content-type"] == "image/jpeg"
    page.wait_for_function(
        "(() => { const i = document.querySelector('#detail img.snapshot');"
        " return i && i.complete && i.naturalWidth > 0; })()"
    )
    magic = page.evaluate(
        """async () => { const img = document.querySelector('#detail img.snapshot');
          const bytes = await (await fetch(img.src)).arrayBuffer();
          return Array.from(new Uint8Array(bytes.slice(0, 3))); }"""
    )
    assert magic == [0xFF, 0xD8, 0xFF]  # a JPEG
    assert page.evaluate("document.querySelector('#detail img.snapshot').naturalWidth") == 160
    facts = page.inner_text("#detail .facts")
    assert "离岗告警" in facts and "3号窗口" in facts and "城东政务服务中心" in facts
    site.chromium.screenshot(page, "dashboard-alert")
    page.click('#detail [data-action="acknowledge"]')
    page.wait_for_function(
        f"document.querySelector('#detail .facts').textContent.includes('{OFFICER}')"
    )
    assert OFFICER in page.inner_text("#detail .history")
    page.keyboard.press("Escape")
    assert not page.is_visible("#detail")


def test_charts_and_english(site: Site) -> None:
    page = sign_in(site, OFFICER)
    page.click("#lang")
    assert page.locator("html").get_attribute("lang") == "en"
    label = f'.hall-tile[data-hall="{A}"] [data-metric="on_post"] .label'
    assert page.inner_text(label) == "On post"
    assert page.inner_text("#logout") == "Sign out"
    page.goto(f"{site.url}/#/hall/{A}/charts")
    page.wait_for_selector('.chart-card[data-chart="ratings"][data-loaded="true"]')
    for chart in ("waits", "occupancy", "off_post"):
        page.wait_for_selector(f'.chart-card[data-chart="{chart}"][data-loaded="true"] svg.chart')
    assert "Waiting" in page.inner_text('.chart-card[data-chart="waits"] h2')
    site.chromium.screenshot(page, "dashboard-charts")
    # w3's minutes, in the last 7 days: "today" holds them only once 20 minutes of the
    # day have passed (the absence began 20 minutes ago)
    page.click('button[data-preset="week"]')
    page.wait_for_selector('button[data-preset="week"][aria-pressed="true"]')
    page.wait_for_selector('.chart-card[data-chart="off_post"][data-loaded="true"] svg.chart')
    assert page.locator('.chart-card[data-chart="off_post"] rect.bar').count() >= 1
    page.click('button[data-preset="today"]')  # the choice is kept across views
    page.click("#lang")
    assert page.inner_text('.chart-card[data-chart="waits"] h2') == "排队等候（分钟）"


def test_a_hall_manager_sees_only_their_hall(site: Site) -> None:
    page = sign_in(site, MANAGER)
    assert page.locator(".hall-tile").count() == 1
    assert page.locator(f'.hall-tile[data-hall="{A}"]').count() == 1
    assert page.locator(f'.hall-tile[data-hall="{B}"]').count() == 0
    page.goto(f"{site.url}/#/hall/{B}")
    page.wait_for_selector(".hall-tile")  # not theirs: back on the overview
    assert page.locator(f'.hall-tile[data-hall="{B}"]').count() == 0
