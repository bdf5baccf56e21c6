"""SMS texts through an HTTP gateway: queued, de-duplicated, rate-limited, retried.

:meth:`SmsNotifier.send` never blocks: it decides at once whether a text goes out (a
duplicate of one already queued, or one over the recipient's hourly limit, does not) and
queues it; one background thread POSTs each text to the gateway as JSON::

    POST <gateway url>
    Authorization: Bearer <token>
    Content-Type: application/json; charset=utf-8

    {"to": "13800138000", "text": "…", "id": "<dedup key>"}

A connection error or a 5xx answer is retried with exponential backoff; a 4xx answer is
final (the gateway refused this text; sending it again would not help). Outcomes are
counted in ``hallwatch_sms_messages_total{outcome=sent|failed|duplicate|rate_limited}``.

Phone numbers are personal data: logs show them masked (:func:`mask_phone`). The gateway
URL may carry credentials: logs show it through :func:`~hallwatch.config.errors.mask_url`.
"""

from __future__ import annotations

import base64
import http.client
import json
import logging
import queue
import threading
import time
import urllib.error
import urllib.request
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlsplit, urlunsplit

from prometheus_client import Counter
from pydantic import SecretStr

from hallwatch.config.errors import mask_url

if TYPE_CHECKING:
    from aggregator.settings import AggregatorSettings

logger = logging.getLogger(__name__)

SMS_MESSAGES = Counter("hallwatch_sms_messages", "SMS texts, by outcome.", ["outcome"])

OUTCOMES = ("sent", "failed", "duplicate", "rate_limited")
"""The outcomes counted: delivered, given up, dropped as a duplicate, over the limit."""
for _outcome in OUTCOMES:
    SMS_MESSAGES.labels(outcome=_outcome)  # exported at 0 from the start

HOUR_S = 3600.0
DEDUP_CAPACITY = 10_000
"""(phone, key) pairs remembered; the oldest are forgotten beyond this."""
MAX_QUEUED = 1_000
"""Texts waiting for the gateway; beyond this a text is dropped (counted failed)."""


def mask_phone(phone: str) -> str:
    """A phone number for logs: all but the last 4 digits masked.

    >>> mask_phone("13812345678")
    '*******5678'
    >>> mask_phone("+8613812345678")
    '**********5678'
    >>> mask_phone("123")
    '***'
    """
    if len(phone) <= 4:
        return "*" * len(phone)
    return "*" * (len(phone) - 4) + phone[-4:]


@dataclass(frozen=True)
class _Text:
    phone: str
    text: str
    key: str


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """Treat a redirect as the gateway's answer (an HTTP 3xx error), never follow it."""

    def redirect_request(self, *_args: Any, **_kwargs: Any) -> None:
        return None


class SmsNotifier:
    """Sends texts through an HTTP SMS gateway from a background thread.

    Args:
        url: The gateway's URL (``http`` or ``https``). Credentials in it
            (``https://user:pass@host/…``) are sent as HTTP Basic auth when no token is
            given; secret query values are sent as they are. Never logged unmasked.
        token: Bearer token, sent as ``Authorization: Bearer …``.
        max_per_hour: At most this many texts per phone number in any sliding hour
            (texts are counted when queued, delivered or not).
        timeout_s: Timeout of one HTTP request.
        retries: Further attempts after a connection error or a 5xx answer.
        clock: Monotonic seconds, for the hourly limit (injectable for tests).
        backoff_s: Wait before the first retry; doubled for each further one.

    Raises:
        ValueError: The URL is not http(s), or a bound is out of range.

    Example:
        >>> notifier = SmsNotifier("http://127.0.0.1:9/sms", max_per_hour=1)
        >>> notifier.send("13800138000", "1号窗口 差评", "a1:warning")
        True
        >>> notifier.send("13800138000", "1号窗口 差评", "a1:warning")  # duplicate
        False
        >>> notifier.send("13800138000", "2号窗口 超时", "a2:warning")  # over the limit
        False
    """

    def __init__(
        self,
        url: str,
        token: SecretStr | None = None,
        *,
        max_per_hour: int = 10,
        timeout_s: float = 5.0,
        retries: int = 3,
        clock: Callable[[], float] = time.monotonic,
        backoff_s: float = 1.0,
    ) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"SMS gateway URL must be http(s)://host/…: {mask_url(url)}")
        if max_per_hour < 1 or timeout_s <= 0 or retries < 0 or backoff_s < 0:
            raise ValueError("max_per_hour ≥ 1, timeout_s > 0, retries ≥ 0, backoff_s ≥ 0")
        self._display_url = mask_url(url)
        self._headers = {"Content-Type": "application/json; charset=utf-8"}
        if parts.username is not None or parts.password is not None:
            netloc = parts.hostname + (f":{parts.port}" if parts.port else "")
            if ":" in parts.hostname:  # IPv6 literal
                netloc = f"[{parts.hostname}]" + (f":{parts.port}" if parts.port else "")
            url = urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))
            if token is None:
                user_pass = f"{unquote(parts.username or '')}:{unquote(parts.password or '')}"
                basic = base64.b64encode(user_pass.encode()).decode()
                self._headers["Authorization"] = f"Basic {basic}"
        if token is not None:
            self._headers["Authorization"] = f"Bearer {token.get_secret_value()}"
        if "Authorization" in self._headers and parts.scheme == "http":
            logger.warning(
                "SMS gateway %s is plain http: its credentials cross the network in clear; "
                "use https outside a trusted network",
                self._display_url,
            )
        self._url = url
        # No redirects: urllib would carry the Authorization header to wherever they point.
        self._opener = urllib.request.build_opener(_NoRedirect)
        self._max_per_hour = max_per_hour
        self._timeout_s = timeout_s
        self._retries = retries
        self._backoff_s = backoff_s
        self._clock = clock

        self._lock = threading.Lock()
        self._seen: OrderedDict[tuple[str, str], None] = OrderedDict()
        self._recent: dict[str, deque[float]] = {}
        self._queue: queue.Queue[_Text | None] = queue.Queue()
        self._idle = threading.Condition(self._lock)
        self._pending = 0
        self._stopping = threading.Event()
        self._stop_deadline = float("inf")
        self._thread: threading.Thread | None = None
        self._counts_lock = threading.Lock()
        self.counts: dict[str, int] = dict.fromkeys(OUTCOMES, 0)
        """Texts by outcome since this notifier was made (``SMS_MESSAGES`` counts all)."""

    @classmethod
    def from_settings(cls, settings: AggregatorSettings) -> SmsNotifier | None:
        """The notifier the settings describe, not started; ``None`` when SMS is off.

        Args:
            settings: ``sms_gateway_url`` (``None``: off), ``sms_gateway_token``,
                ``sms_max_per_hour``, ``sms_timeout_s``.
        """
        if not settings.sms_gateway_url:
            return None
        return cls(
            settings.sms_gateway_url,
            settings.sms_gateway_token,
            max_per_hour=settings.sms_max_per_hour,
            timeout_s=settings.sms_timeout_s,
        )

    # --- lifecycle ----------------------------------------------------------------------

    def start(self) -> None:
        """Start the sending thread (once)."""
        with self._lock:
            if self._thread is not None:
                return
            self._thread = threading.Thread(target=self._run, name="sms-notifier", daemon=True)
            self._thread.start()
        logger.info(
            "SMS notifier started: gateway %s, at most %d texts per recipient and hour",
            self._display_url,
            self._max_per_hour,
        )

    def stop(self, timeout: float = 5.0) -> None:
        """Stop: texts already queued get one attempt each (no retries) for ``timeout``
        seconds; those left then are counted failed. Later :meth:`send` calls return
        ``False``.

        Args:
            timeout: Seconds to spend on the queued texts.
        """
        with self._lock:
            if self._stopping.is_set():
                return
            self._stop_deadline = time.monotonic() + timeout
            self._stopping.set()
            thread = self._thread
        self._queue.put(None)
        if thread is not None:
            thread.join(timeout + self._timeout_s + 1.0)
            if thread.is_alive():
                logger.warning("SMS notifier: the sending thread did not stop in time")
        else:
            self._drop_queued("the notifier was never started")
        logger.info("SMS notifier stopped (%s)", self._summary())

    def wait_idle(self, timeout: float) -> bool:
        """Wait until no text is queued or being sent.

        Args:
            timeout: Seconds to wait at most.

        Returns:
            ``True`` when idle, ``False`` when the timeout passed first.
        """
        with self._idle:
            return self._idle.wait_for(lambda: self._pending == 0, timeout)

    # --- sending ------------------------------------------------------------------------

    def send(self, phone: str, text: str, dedup_key: str) -> bool:
        """Queue a text, unless it is a duplicate or over the recipient's hourly limit.

        Never blocks on the gateway.

        Args:
            phone: The recipient's mobile number.
            text: The message.
            dedup_key: What the text is about, e.g. ``<anomaly id>:<level>``; a
                (phone, key) pair is sent at most once in this notifier's lifetime.

        Returns:
            ``True`` when queued; ``False`` when dropped (duplicate, rate limit, queue
            full, stopped).
        """
        key = (phone, dedup_key)
        with self._lock:
            if self._stopping.is_set():
                logger.warning("SMS to %s not sent: the notifier is stopped", mask_phone(phone))
                return False
            if key in self._seen:
                self._seen.move_to_end(key)
                self._count("duplicate")
                logger.debug("SMS %s to %s: duplicate, dropped", dedup_key, mask_phone(phone))
                return False
            now = self._clock()
            recent = self._recent.setdefault(phone, deque())
            while recent and recent[0] <= now - HOUR_S:
                recent.popleft()
            if len(recent) >= self._max_per_hour:
                self._count("rate_limited")
                logger.warning(
                    "SMS %s to %s not sent: %d texts in the last hour (limit %d)",
                    dedup_key,
                    mask_phone(phone),
                    len(recent),
                    self._max_per_hour,
                )
                return False
            if self._pending >= MAX_QUEUED:
                self._count("failed")
                logger.error(
                    "SMS %s to %s dropped: %d texts already queued for gateway %s",
                    dedup_key,
                    mask_phone(phone),
                    self._pending,
                    self._display_url,
                )
                return False
            recent.append(now)
            self._seen[key] = None
            if len(self._seen) > DEDUP_CAPACITY:
                self._seen.popitem(last=False)
            self._forget_quiet_phones(now)
            self._pending += 1
        self._queue.put(_Text(phone, text, dedup_key))
        return True

    def _forget_quiet_phones(self, now: float) -> None:
        if len(self._recent) > 1000:
            for phone in [p for p, times in self._recent.items() if times[-1] <= now - HOUR_S]:
                del self._recent[phone]

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                break
            try:
                if self._stopping.is_set() and time.monotonic() > self._stop_deadline:
                    self._fail(item, "the notifier stopped before it was sent")
                else:
                    self._deliver(item)
            except Exception:  # never let one text end the thread
                logger.exception("SMS %s to %s: unexpected error", item.key, mask_phone(item.phone))
                self._fail(item, "unexpected error", count_only=True)
            finally:
                self._done()

    def _deliver(self, item: _Text) -> None:
        body = json.dumps(
            {"to": item.phone, "text": item.text, "id": item.key}, ensure_ascii=False
        ).encode()
        attempt = 0
        while True:
            error = self._post(body)
            if error is None:
                self._count("sent")
                logger.info("SMS %s sent to %s", item.key, mask_phone(item.phone))
                return
            reason, retryable = error
            if not retryable:
                self._fail(item, reason)
                return
            if attempt >= self._retries or self._stopping.is_set():
                self._fail(item, f"{reason} (after {attempt + 1} attempts)")
                return
            delay = self._backoff_s * (2**attempt)
            attempt += 1
            logger.info(
                "SMS %s to %s: %s; retry %d of %d in %.1f s",
                item.key,
                mask_phone(item.phone),
                reason,
                attempt,
                self._retries,
                delay,
            )
            if self._stopping.wait(delay):
                self._fail(item, f"{reason} (stopped before retrying)")
                return

    def _post(self, body: bytes) -> tuple[str, bool] | None:
        """One POST: ``None`` when accepted, else ``(reason, worth retrying)``."""
        request = urllib.request.Request(self._url, data=body, headers=self._headers, method="POST")
        try:
            with self._opener.open(request, timeout=self._timeout_s) as response:
                response.read(65536)
        except urllib.error.HTTPError as exc:
            exc.close()
            return f"gateway answered HTTP {exc.code}", exc.code >= 500
        except (http.client.HTTPException, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            return f"gateway unreachable: {type(exc).__name__}: {reason}", True
        return None

    def _fail(self, item: _Text, reason: str, *, count_only: bool = False) -> None:
        self._count("failed")
        if not count_only:
            logger.warning(
                "SMS %s to %s failed: %s (gateway %s)",
                item.key,
                mask_phone(item.phone),
                reason,
                self._display_url,
            )

    def _done(self) -> None:
        with self._idle:
            self._pending -= 1
            if self._pending == 0:
                self._idle.notify_all()

    def _drop_queued(self, reason: str) -> None:
        while True:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                return
            if item is not None:
                self._fail(item, reason)
                self._done()

    def _count(self, outcome: str) -> None:
        with self._counts_lock:
            self.counts[outcome] += 1
        SMS_MESSAGES.labels(outcome=outcome).inc()

    def _summary(self) -> str:
        return ", ".join(f"{name} {self.counts[name]}" for name in OUTCOMES)
