"""The SMS notifier against a real local HTTP gateway (stdlib http.server on loopback)."""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from prometheus_client import REGISTRY
from pydantic import SecretStr

from aggregator.notify import SmsNotifier, mask_phone
from aggregator.settings import AggregatorSettings
from hallwatch.broker import free_port

PHONE_A = "13800138000"
PHONE_B = "13900139000"


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: dict[str, str]


@dataclass
class Gateway:
    """A fake SMS gateway: answers the scripted statuses in order, then 200."""

    port: int
    statuses: list[int] = field(default_factory=list)
    received: list[Received] = field(default_factory=list)
    _server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/sms/send"

    def start(self) -> Gateway:
        gateway = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                body = json.loads(self.rfile.read(length))
                gateway.received.append(Received(self.path, dict(self.headers), body))
                status = gateway.statuses.pop(0) if gateway.statuses else 200
                payload = b'{"ok": true}' if status == 200 else b'{"error": "no"}'
                self.send_response(status)
                if 300 <= status < 400:  # a redirect to the same gateway's other path
                    self.send_header("Location", "/elsewhere")
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def do_GET(self) -> None:  # where a followed redirect would land
                gateway.received.append(Received(self.path, dict(self.headers), {}))
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: object) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        server = self._server
        threading.Thread(
            target=lambda: server.serve_forever(poll_interval=0.05), daemon=True
        ).start()
        return self

    def close(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def gateway() -> Iterator[Gateway]:
    gw = Gateway(free_port()).start()
    yield gw
    gw.close()


@pytest.fixture
def notifiers() -> Iterator[list[SmsNotifier]]:
    made: list[SmsNotifier] = []
    yield made
    for notifier in made:
        notifier.stop(timeout=1)


def started(
    made: list[SmsNotifier], url: str, token: SecretStr | None = None, **kwargs: Any
) -> SmsNotifier:
    kwargs.setdefault("backoff_s", 0.01)
    kwargs.setdefault("timeout_s", 2.0)
    notifier = SmsNotifier(url, token, **kwargs)
    notifier.start()
    made.append(notifier)
    return notifier


def metric(outcome: str) -> float:
    return REGISTRY.get_sample_value("hallwatch_sms_messages_total", {"outcome": outcome}) or 0.0


def test_text_is_delivered_with_body_and_bearer_token(
    gateway: Gateway, notifiers: list[SmsNotifier]
) -> None:
    before = metric("sent")
    notifier = started(notifiers, gateway.url, SecretStr("tok-123"))
    assert notifier.send(PHONE_A, "1号窗口 差评 (不满意)", "a1:warning") is True
    assert notifier.wait_idle(5)
    [got] = gateway.received
    assert got.path == "/sms/send"
    assert got.body == {"to": PHONE_A, "text": "1号窗口 差评 (不满意)", "id": "a1:warning"}
    assert got.headers["Authorization"] == "Bearer tok-123"
    assert got.headers["Content-Type"].startswith("application/json")
    assert notifier.counts == {"sent": 1, "failed": 0, "duplicate": 0, "rate_limited": 0}
    assert metric("sent") == before + 1


def test_duplicate_key_is_not_sent_twice(gateway: Gateway, notifiers: list[SmsNotifier]) -> None:
    before = metric("duplicate")
    notifier = started(notifiers, gateway.url)
    assert notifier.send(PHONE_A, "text", "a1:warning") is True
    assert notifier.send(PHONE_A, "text again", "a1:warning") is False
    assert notifier.send(PHONE_B, "text", "a1:warning") is True  # another recipient
    assert notifier.send(PHONE_A, "red now", "a1:red") is True  # another key
    assert notifier.wait_idle(5)
    assert notifier.send(PHONE_A, "later", "a1:warning") is False  # still remembered
    assert [(r.body["to"], r.body["id"]) for r in gateway.received] == [
        (PHONE_A, "a1:warning"),
        (PHONE_B, "a1:warning"),
        (PHONE_A, "a1:red"),
    ]
    assert notifier.counts["duplicate"] == 2
    assert metric("duplicate") == before + 2
    assert "Authorization" not in gateway.received[0].headers


def test_rate_limit_per_recipient_in_a_sliding_hour(
    gateway: Gateway, notifiers: list[SmsNotifier]
) -> None:
    clock = FakeClock()
    notifier = started(notifiers, gateway.url, max_per_hour=2, clock=clock)
    assert notifier.send(PHONE_A, "1", "k1") is True  # t = 1000
    clock.now += 1000
    assert notifier.send(PHONE_A, "2", "k2") is True  # t = 2000
    assert notifier.send(PHONE_A, "3", "k3") is False  # 2 in the last hour
    assert notifier.send(PHONE_B, "1", "k1") is True  # another recipient is unaffected
    clock.now = 1000 + 3599
    assert notifier.send(PHONE_A, "4", "k4") is False  # the first is 59:59 old
    clock.now = 1000 + 3600
    assert notifier.send(PHONE_A, "5", "k5") is True  # the first is an hour old
    assert notifier.send(PHONE_A, "6", "k6") is False
    clock.now = 2000 + 3600
    assert notifier.send(PHONE_A, "3 again", "k3") is True  # not remembered as sent
    assert notifier.wait_idle(5)
    sent = [(r.body["to"], r.body["id"]) for r in gateway.received]
    assert sent == [
        (PHONE_A, "k1"),
        (PHONE_A, "k2"),
        (PHONE_B, "k1"),
        (PHONE_A, "k5"),
        (PHONE_A, "k3"),
    ]
    assert notifier.counts["rate_limited"] == 3


def test_server_error_is_retried_and_delivered(
    gateway: Gateway, notifiers: list[SmsNotifier]
) -> None:
    gateway.statuses = [500, 502]
    notifier = started(notifiers, gateway.url, retries=3)
    assert notifier.send(PHONE_A, "text", "a1:warning")
    assert notifier.wait_idle(5)
    assert len(gateway.received) == 3
    assert all(r.body["id"] == "a1:warning" for r in gateway.received)
    assert notifier.counts == {"sent": 1, "failed": 0, "duplicate": 0, "rate_limited": 0}


def test_server_errors_past_the_retries_fail(
    gateway: Gateway, notifiers: list[SmsNotifier]
) -> None:
    gateway.statuses = [503, 503, 503, 503]
    notifier = started(notifiers, gateway.url, retries=2)
    assert notifier.send(PHONE_A, "text", "a1:warning")
    assert notifier.wait_idle(5)
    assert len(gateway.received) == 3  # the first attempt and 2 retries
    assert notifier.counts["failed"] == 1
    assert notifier.counts["sent"] == 0


def test_client_error_is_not_retried(gateway: Gateway, notifiers: list[SmsNotifier]) -> None:
    before = metric("failed")
    gateway.statuses = [400]
    notifier = started(notifiers, gateway.url, retries=3)
    assert notifier.send(PHONE_A, "text", "a1:warning")
    assert notifier.wait_idle(5)
    assert len(gateway.received) == 1
    assert notifier.counts["failed"] == 1
    assert metric("failed") == before + 1
    # the next text goes out normally
    assert notifier.send(PHONE_A, "text", "a2:warning")
    assert notifier.wait_idle(5)
    assert len(gateway.received) == 2
    assert notifier.counts["sent"] == 1


def test_a_redirect_is_not_followed(gateway: Gateway, notifiers: list[SmsNotifier]) -> None:
    # urllib would carry the Authorization header along: a redirect is the answer, a failure.
    gateway.statuses = [302]
    notifier = started(notifiers, gateway.url, token=SecretStr("tok"), retries=3)
    assert notifier.send(PHONE_A, "text", "a1:warning")
    assert notifier.wait_idle(5)
    assert [r.path for r in gateway.received] == ["/sms/send"]
    assert notifier.counts["failed"] == 1


def test_gateway_down_fails_after_retries_and_the_thread_goes_on(
    notifiers: list[SmsNotifier], caplog: pytest.LogCaptureFixture
) -> None:
    port = free_port()  # nothing listens there yet
    url = f"http://127.0.0.1:{port}/sms/send"
    notifier = started(notifiers, url, retries=2)
    with caplog.at_level(logging.INFO, logger="aggregator.notify.sms"):
        assert notifier.send(PHONE_A, "text", "a1:warning")
        assert notifier.wait_idle(10)
    assert notifier.counts["failed"] == 1
    retries = [r for r in caplog.records if "retry" in r.getMessage()]
    assert len(retries) == 2
    assert "after 3 attempts" in caplog.text

    gateway = Gateway(port).start()  # the gateway comes back
    try:
        assert notifier.send(PHONE_A, "text", "a2:warning")
        assert notifier.wait_idle(5)
        assert [r.body["id"] for r in gateway.received] == ["a2:warning"]
        assert notifier.counts["sent"] == 1
    finally:
        gateway.close()


def test_logs_mask_phone_and_gateway_credentials(
    gateway: Gateway, notifiers: list[SmsNotifier], caplog: pytest.LogCaptureFixture
) -> None:
    gateway.statuses = [400]
    url = f"http://smsuser:pa55word@127.0.0.1:{gateway.port}/sms/send?token=qs-secret"
    with caplog.at_level(logging.DEBUG, logger="aggregator.notify.sms"):
        notifier = started(notifiers, url)
        assert notifier.send(PHONE_A, "text", "a1:warning")
        assert notifier.wait_idle(5)
        notifier.send(PHONE_A, "text", "a1:warning")  # duplicate, logged
    assert PHONE_A not in caplog.text
    assert mask_phone(PHONE_A) in caplog.text
    assert "pa55word" not in caplog.text
    assert "qs-secret" not in caplog.text
    [got] = gateway.received
    assert got.path == "/sms/send?token=qs-secret"
    assert got.headers["Authorization"] == "Basic c21zdXNlcjpwYTU1d29yZA=="  # smsuser:pa55word


def test_send_after_stop_is_refused(gateway: Gateway) -> None:
    notifier = SmsNotifier(gateway.url, backoff_s=0.01)
    notifier.start()
    notifier.stop(timeout=1)
    assert notifier.send(PHONE_A, "text", "a1:warning") is False
    assert notifier.wait_idle(0.1)
    assert gateway.received == []


def test_stop_delivers_what_is_queued(gateway: Gateway) -> None:
    notifier = SmsNotifier(gateway.url, backoff_s=0.01)
    assert notifier.send(PHONE_A, "text", "a1:warning")  # queued before start
    notifier.start()
    notifier.stop(timeout=5)
    assert [r.body["id"] for r in gateway.received] == ["a1:warning"]


@pytest.mark.parametrize("url", ["ftp://example.org/sms", "not a url", "http:///path"])
def test_bad_url_is_refused(url: str) -> None:
    with pytest.raises(ValueError, match="http"):
        SmsNotifier(url)


def test_bad_url_error_masks_credentials() -> None:
    with pytest.raises(ValueError) as info:
        SmsNotifier("ftp://u:topsecret@example.org/sms")
    assert "topsecret" not in str(info.value)


def test_mask_phone() -> None:
    assert mask_phone("13812345678") == "*******5678"
    assert mask_phone("5678") == "****"


def test_settings_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HALLWATCH_SMS_GATEWAY_URL", "https://u:pw@sms.example.org/send")
    monkeypatch.setenv("HALLWATCH_SMS_GATEWAY_TOKEN", "tok-xyz")
    monkeypatch.setenv("HALLWATCH_SMS_MAX_PER_HOUR", "3")
    monkeypatch.setenv("HALLWATCH_SMS_TIMEOUT_S", "2.5")
    settings = AggregatorSettings()
    assert settings.sms_gateway_url == "https://u:pw@sms.example.org/send"
    assert settings.sms_gateway_token is not None
    assert settings.sms_gateway_token.get_secret_value() == "tok-xyz"
    assert (settings.sms_max_per_hour, settings.sms_timeout_s) == (3, 2.5)
    assert "tok-xyz" not in repr(settings)
    assert "pw@" not in repr(settings)
    assert isinstance(SmsNotifier.from_settings(settings), SmsNotifier)


def test_settings_sms_off_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HALLWATCH_SMS_GATEWAY_URL", raising=False)
    settings = AggregatorSettings()
    assert settings.sms_gateway_url is None
    assert settings.sms_max_per_hour == 10
    assert settings.sms_timeout_s == 5
    assert SmsNotifier.from_settings(settings) is None


@pytest.mark.parametrize(
    ("name", "value"),
    [("HALLWATCH_SMS_MAX_PER_HOUR", "0"), ("HALLWATCH_SMS_TIMEOUT_S", "0")],
)
def test_settings_bounds(monkeypatch: pytest.MonkeyPatch, name: str, value: str) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(ValueError):
        AggregatorSettings()
