"""The device monitor: a device with no sign of life for its configured period is offline.

Signs of life come from three places, each calling :meth:`DeviceMonitor.seen` (or
:meth:`DeviceMonitor.observe` for MQTT traffic): the MQTT heartbeat feeds and the queue /
evaluators feeds (through the feed runner's thread), and the HTTP/TCP prober thread.
:meth:`DeviceMonitor.tick`, called about once a second by the edge's housekeeping thread,
returns a ``device`` fact for every change:

- ``online`` at the first sign of life after the start or after being offline (``ts``:
  that sign);
- ``offline`` once ``offline_after_s`` passed without a sign (``ts``: the last sign, or
  the monitor's start for a device never seen, plus ``offline_after_s``).

Nothing is repeated: a device stays in its state until the other one is due. The state
is kept in memory only: after a restart every device is reported again at its first sign
of life (or its first silence).

MQTT messages the runner marks not ``live`` (a backlog the broker held while the edge was
away, retained messages) are not signs of life: when they were sent is unknown.

While the edge itself does not listen (its feed client is disconnected, or still taking
in the backlog after a reconnect), the silence of a device probed over MQTT (heartbeats
or feed traffic) says nothing about the device: such devices are not judged then, and
their silence is counted again from the moment the edge listens.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from urllib.parse import urlsplit

import paho.mqtt.client as mqtt

from edge.feeds.base import FeedMessage
from hallwatch.config import HallConfig
from hallwatch.config.devices import DeviceConfig, DeviceProbe
from hallwatch.contract import DeviceBody, DeviceFact, DeviceState, utcnow

logger = logging.getLogger(__name__)


def describe_probe(probe: DeviceProbe) -> str:
    """A short description of a probe for fact reasons and logs (no URL credentials).

    >>> describe_probe(DeviceProbe(tcp="10.0.0.30:502"))
    'tcp 10.0.0.30:502'
    """
    if probe.mqtt_topic is not None:
        return f"mqtt heartbeat on {probe.mqtt_topic}"
    if probe.http_url is not None:
        parts = urlsplit(probe.http_url)
        host = parts.hostname or ""
        if parts.port is not None:
            host = f"{host}:{parts.port}"
        return f"http GET {parts.scheme}://{host}{parts.path}"  # no user, password or query
    if probe.tcp is not None:
        return f"tcp {probe.tcp}"
    return f"{probe.feed.value if probe.feed else '?'} feed traffic"


@dataclass(slots=True)
class _Device:
    config: DeviceConfig
    probe: DeviceProbe
    period: timedelta
    state: DeviceState | None = None
    """None until the first fact."""
    changed: datetime | None = None
    """When the state last changed (the ``ts`` of the last fact)."""
    last: datetime | None = None
    """The latest sign of life."""
    back: datetime | None = None
    """The first sign of life since ``changed``, while not online."""


class DeviceMonitor:
    """Last sign of life of every configured device; a fact on every change.

    Thread-safe: signs of life may come from any thread while another ticks.

    Args:
        config: The hall (its ``devices``, hall id and edge source).
        now: The clock; its value at construction is the start every device's silence is
            counted from until its first sign of life.
    """

    def __init__(self, config: HallConfig, *, now: Callable[[], datetime] = utcnow) -> None:
        self.hall = config.hall.id
        self.source = config.edge.source
        self._now = now
        self.started = now()
        self._lock = threading.Lock()
        self._deaf = False
        self._listening_since: datetime | None = None
        self._devices: dict[str, _Device] = {}
        for dev in config.devices:
            assert dev.probe is not None  # the config requires one
            self._devices[dev.id] = _Device(dev, dev.probe, timedelta(seconds=dev.offline_after_s))

    @property
    def devices(self) -> list[DeviceConfig]:
        """The monitored devices, in config order."""
        return [d.config for d in self._devices.values()]

    def state(self, device_id: str) -> DeviceState | None:
        """A device's last reported state; None before its first fact."""
        with self._lock:
            return self._devices[device_id].state

    def last_seen(self, device_id: str) -> datetime | None:
        """A device's latest sign of life; None if never seen."""
        with self._lock:
            return self._devices[device_id].last

    def seen(self, device_id: str, at: datetime | None = None) -> None:
        """Record a sign of life of a device.

        A sign older than the device's last change (e.g. one recorded late) does not
        bring an offline device back. Unknown ids are ignored.

        Args:
            device_id: The device's configured id.
            at: When it was seen; by default now.
        """
        at = at if at is not None else self._now()
        with self._lock:
            dev = self._devices.get(device_id)
            if dev is None:
                logger.debug("sign of life of unknown device %s ignored", device_id)
                return
            if dev.last is None or at > dev.last:
                dev.last = at
            comes_back = dev.state is not DeviceState.ONLINE and (
                dev.changed is None or at > dev.changed
            )
            if comes_back and (dev.back is None or at < dev.back):
                dev.back = at

    def observe(self, feed: str, message: FeedMessage) -> None:
        """Take an MQTT message as a sign of life of the devices it stands for.

        Those are the devices whose ``probe.feed`` is ``feed`` and those whose
        ``probe.mqtt_topic`` filter matches the message's topic. Messages that are not
        ``live`` are ignored. Safe to call more than once for one message.

        Args:
            feed: The name of the feed the runner routed the message to.
            message: The message (its ``received`` time is the sign's time).
        """
        if not message.live:
            return
        for dev_id, probe in self._mqtt_probes():
            by_feed = probe.feed is not None and probe.feed.value == feed
            by_topic = probe.mqtt_topic is not None and mqtt.topic_matches_sub(
                probe.mqtt_topic, message.topic
            )
            if by_feed or by_topic:
                self.seen(dev_id, message.received)

    def _mqtt_probes(self) -> list[tuple[str, DeviceProbe]]:
        return [
            (dev_id, d.probe)
            for dev_id, d in self._devices.items()
            if d.probe.feed is not None or d.probe.mqtt_topic is not None
        ]

    def tick(self, now: datetime | None = None, *, listening: bool = True) -> list[DeviceFact]:
        """The facts of the changes due by ``now``, in device order.

        Args:
            now: The current time; by default the monitor's clock.
            listening: Whether the edge hears MQTT now (its feed client is connected and
                caught up); while not, devices probed over MQTT are not judged.

        Returns:
            One fact per change: ``online`` for a device seen again, ``offline`` for one
            silent for its ``offline_after_s`` (a device can have both, in that order,
            when it came back and went silent again between two ticks).
        """
        now = now if now is not None else self._now()
        facts: list[DeviceFact] = []
        with self._lock:
            if not listening:
                self._deaf = True
            elif self._deaf:
                self._deaf, self._listening_since = False, now
            for dev in self._devices.values():
                if dev.state is not DeviceState.ONLINE and dev.back is not None and dev.back <= now:
                    facts.append(self._change(dev, DeviceState.ONLINE, dev.back, self._why_up(dev)))
                    dev.back = None
                over_mqtt = dev.probe.mqtt_topic is not None or dev.probe.feed is not None
                if dev.state is not DeviceState.OFFLINE and not (over_mqtt and self._deaf):
                    heard = dev.last or self.started
                    silent_from = heard
                    if over_mqtt and self._listening_since is not None:
                        silent_from = max(heard, self._listening_since)
                    due = silent_from + dev.period
                    if now >= due:
                        why = self._why(dev, listening_from=silent_from != heard)
                        facts.append(self._change(dev, DeviceState.OFFLINE, due, why))
        for fact in facts:
            logger.info(
                "device %s %s: %s", fact.body.device, fact.body.state.value, fact.body.reason
            )
        return facts

    def _change(self, dev: _Device, state: DeviceState, at: datetime, reason: str) -> DeviceFact:
        dev.state = state
        dev.changed = at
        return DeviceFact(
            hall=self.hall,
            source=self.source,
            ts=at,
            body=DeviceBody(
                device=dev.config.id,
                device_kind=dev.config.kind,
                state=state,
                reason=reason[:500],
            ),
        )

    @staticmethod
    def _why_up(dev: _Device) -> str:
        return f"sign of life ({describe_probe(dev.probe)})"

    def _why(self, dev: _Device, *, listening_from: bool = False) -> str:
        period = dev.period.total_seconds()
        probe = describe_probe(dev.probe)
        if listening_from:
            return f"no sign of life for {period:g} s since the edge began listening ({probe})"
        if dev.last is None:
            return f"no sign of life for {period:g} s since the edge started ({probe})"
        return f"no sign of life for {period:g} s ({probe})"
