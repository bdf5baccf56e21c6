"""How the edge sees devices alive: MQTT heartbeats (a feed) and HTTP/TCP polls (a thread).

- :class:`HeartbeatFeed` is a :class:`~edge.feeds.base.Feed` for the feed runner: every
  message on its topic filter is a sign of life of the devices listening there; it
  returns no facts.
- :class:`DeviceProber` is one small thread polling every ``http_url`` and ``tcp`` probe
  when due (every ``probe.interval_s``), one at a time with a short timeout, recording
  each success in the monitor. The housekeeping thread never waits for it.
"""

from __future__ import annotations

import logging
import socket
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from datetime import datetime
from typing import IO, Any

from edge.feeds.base import FeedMessage
from edge.health.device_monitor import DeviceMonitor
from hallwatch.contract import Fact

logger = logging.getLogger(__name__)

HEARTBEAT_FEED = "heartbeat"
"""Name of the heartbeat feeds (logs, dead letters)."""


class HeartbeatFeed:
    """MQTT heartbeats: any message on ``topic_filter`` shows its devices alive.

    Args:
        monitor: Where signs of life go.
        topic_filter: A device's ``probe.mqtt_topic`` (devices sharing one share the feed).
    """

    name = HEARTBEAT_FEED

    def __init__(self, monitor: DeviceMonitor, topic_filter: str) -> None:
        self.topic_filter = topic_filter
        self._monitor = monitor

    def handle(self, message: FeedMessage) -> list[Fact]:
        """Record the sign of life; no facts (the monitor's tick reports changes)."""
        self._monitor.observe(self.name, message)
        return []

    def tick(self, now: datetime) -> list[Fact]:
        """Nothing is due by time here (the edge ticks the monitor itself)."""
        return []


def heartbeat_feeds(
    monitor: DeviceMonitor, taken: set[str] | frozenset[str] = frozenset()
) -> list[HeartbeatFeed]:
    """One :class:`HeartbeatFeed` per distinct ``mqtt_topic`` of the monitor's devices.

    Args:
        monitor: The device monitor.
        taken: Topic filters another feed of the runner subscribes to already (the queue
            and evaluators topics): no feed is made for them, since the runner routes
            their messages to that feed (whose traffic the monitor observes through the
            runner's ``on_message``).
    """
    topics: list[str] = []
    for dev in monitor.devices:
        topic = dev.probe.mqtt_topic if dev.probe is not None else None
        if topic is not None and topic not in topics and topic not in taken:
            topics.append(topic)
    return [HeartbeatFeed(monitor, t) for t in topics]


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None  # the 3xx answer itself shows the device alive


_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}), _NoRedirect())
"""No proxies (a proxy must not answer for a device) and no redirects followed."""


def http_alive(url: str, timeout: float = 3.0) -> bool:
    """Whether a GET of ``url`` answers 2xx or 3xx within ``timeout`` seconds.

    Redirects are not followed and environment proxies are not used; HTTPS certificates
    are verified.
    """
    try:
        response: IO[bytes]
        with _OPENER.open(urllib.request.Request(url, method="GET"), timeout=timeout) as response:
            status = int(getattr(response, "status", 0))
    except urllib.error.HTTPError as exc:
        status = exc.code
        exc.close()
    except (OSError, ValueError) as exc:  # URLError, timeouts, refused, bad URL
        logger.debug("http probe %s failed: %s", url, exc)
        return False
    return 200 <= status < 400


def split_host_port(address: str) -> tuple[str, int]:
    """``"host:port"`` (IPv6 in brackets) to ``(host, port)``.

    >>> split_host_port("[::1]:502")
    ('::1', 502)
    """
    host, _, port = address.rpartition(":")
    return host.strip("[]"), int(port)


def tcp_alive(address: str, timeout: float = 3.0) -> bool:
    """Whether ``"host:port"`` accepts a TCP connection within ``timeout`` seconds."""
    try:
        with socket.create_connection(split_host_port(address), timeout=timeout):
            return True
    except (OSError, ValueError) as exc:
        logger.debug("tcp probe %s failed: %s", address, exc)
        return False


class DeviceProber:
    """One thread polling the monitor's ``http_url`` and ``tcp`` probes until stopped.

    Each probe runs at start and then every ``probe.interval_s`` (counted from the start
    of its previous run); a success is a sign of life at the moment it answered.

    Args:
        monitor: Where signs of life go (its devices list the probes).
        timeout_s: Timeout of one probe (connect and answer).
        now: The clock stamped on signs of life.
        monotonic: The clock that schedules probes.
    """

    def __init__(
        self,
        monitor: DeviceMonitor,
        *,
        timeout_s: float = 3.0,
        now: Callable[[], datetime] | None = None,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._monitor = monitor
        self._timeout = timeout_s
        self._now = now
        self._mono = monotonic
        self.probes: list[tuple[str, str, str, float]] = []
        """(device id, ``http`` or ``tcp``, target, interval in seconds)."""
        for dev in monitor.devices:
            probe = dev.probe
            if probe is None:
                continue
            if probe.http_url is not None:
                self.probes.append((dev.id, "http", probe.http_url, probe.interval_s))
            elif probe.tcp is not None:
                self.probes.append((dev.id, "tcp", probe.tcp, probe.interval_s))
        self.rounds = 0
        """Probe runs so far (for tests)."""
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="device-prober", daemon=True)

    def start(self) -> None:
        """Start polling (nothing to do, and no thread, without HTTP or TCP probes)."""
        if self.probes:
            self._thread.start()

    @property
    def running(self) -> bool:
        """Whether the prober thread is alive."""
        return self._thread.is_alive()

    def stop(self, timeout: float = 5.0) -> None:
        """Stop after the probe in progress. Idempotent."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=timeout)
            if self._thread.is_alive():
                logger.warning("the device prober did not stop within %.0f s", timeout)

    def probe_once(self, device_id: str, kind: str, target: str) -> bool:
        """Run one probe and record a success; returns whether it succeeded."""
        alive = (
            http_alive(target, self._timeout)
            if kind == "http"
            else tcp_alive(target, self._timeout)
        )
        if alive:
            self._monitor.seen(device_id, self._now() if self._now else None)
        self.rounds += 1
        return alive

    def _run(self) -> None:
        due = dict.fromkeys((p[0] for p in self.probes), self._mono())
        while not self._stop.is_set():
            for device_id, kind, target, interval in self.probes:
                if self._stop.is_set():
                    return
                if self._mono() < due[device_id]:
                    continue
                due[device_id] = self._mono() + interval
                try:
                    self.probe_once(device_id, kind, target)
                except Exception:  # never expected; the other probes go on
                    logger.exception("probe of device %s failed", device_id)
            wait = min(due.values()) - self._mono()
            self._stop.wait(max(0.05, min(wait, 1.0)))
