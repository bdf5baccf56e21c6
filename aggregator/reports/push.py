"""Push a report to the supervision system's webservice: HTTP POST of JSON, retried.

Mirrors :mod:`aggregator.notify.sms`: ``urllib``, no redirects followed (they would carry
the ``Authorization`` header elsewhere), a timeout per request, exponential backoff. A
connection error or a 5xx answer is retried; a 4xx answer is final. Every attempt is
counted in the returned :class:`PushOutcome`; the caller records it (``report_runs``).

Example:
    >>> out = push_report("http://127.0.0.1:9/reports", {"a": 1}, retries=0, timeout_s=0.5)
    >>> out.ok, out.attempts
    (False, 1)
"""

from __future__ import annotations

import json
import logging
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from pydantic import SecretStr

from hallwatch.config.errors import mask_url

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class PushOutcome:
    """What pushing one report came to.

    Attributes:
        ok: The endpoint answered 2xx.
        attempts: Requests made.
        status: HTTP status of the last answer (None: no answer).
        error: Why the last attempt failed ("" when ok).
    """

    ok: bool
    attempts: int
    status: int | None = None
    error: str = ""


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *_args: Any, **_kwargs: Any) -> None:
        return None


_OPENER = urllib.request.build_opener(_NoRedirect)


def push_report(
    url: str,
    document: Mapping[str, Any],
    *,
    token: SecretStr | None = None,
    retries: int = 3,
    timeout_s: float = 10.0,
    backoff_s: float = 1.0,
    sleep: Callable[[float], None] = time.sleep,
) -> PushOutcome:
    """POST ``document`` as JSON to ``url``, retrying connection errors and 5xx answers.

    Args:
        url: The endpoint (``http`` or ``https``).
        document: The report (JSON-serialisable).
        token: Sent as ``Authorization: Bearer …``.
        retries: Further attempts after a retryable failure.
        timeout_s: Timeout of one request.
        backoff_s: Wait before the first retry, doubled for each further one.
        sleep: Waits (injectable for tests).

    Returns:
        The outcome; never raises for network or HTTP errors.

    Raises:
        ValueError: ``url`` is not http(s).
    """
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"report push URL must be http(s)://host/…: {mask_url(url)}")
    body = json.dumps(document, ensure_ascii=False, sort_keys=True).encode("utf-8")
    headers = {"Content-Type": "application/json; charset=utf-8"}
    if token is not None:
        headers["Authorization"] = f"Bearer {token.get_secret_value()}"
    shown = mask_url(url)
    attempts = 0
    status: int | None = None
    error = ""
    for attempt in range(retries + 1):
        if attempt:
            sleep(backoff_s * 2 ** (attempt - 1))
        attempts += 1
        request = urllib.request.Request(url, data=body, headers=headers, method="POST")
        try:
            with _OPENER.open(request, timeout=timeout_s) as answer:
                status = int(answer.status)
            logger.info("report pushed to %s (HTTP %d, attempt %d)", shown, status, attempts)
            return PushOutcome(True, attempts, status)
        except urllib.error.HTTPError as exc:
            status, error = exc.code, f"HTTP {exc.code}"
            if exc.code < 500:
                logger.error("report push to %s refused: %s (not retried)", shown, error)
                return PushOutcome(False, attempts, status, error)
        except (OSError, ValueError) as exc:
            status, error = None, f"{type(exc).__name__}: {exc}"
        logger.warning("report push to %s failed (attempt %d): %s", shown, attempts, error)
    return PushOutcome(False, attempts, status, error)
