"""The demo hall's devices (设备运转), simulated: a self-service kiosk that goes silent, a screen.

Each simulated device sends a small JSON heartbeat every :data:`HEARTBEAT_EVERY_S` seconds on
``devices/{hall}/{device}/heartbeat``, except during its scripted silences: the self-service
kiosk (自助终端) ``kiosk-1`` is silent from 15 s to 35 s after the publisher starts (the
edge reports it offline after ``offline_after_s`` of silence, and online at its next
heartbeat); the call screen (叫号显示屏) ``screen-1`` never stops. :func:`demo_devices`
gives their hall-config ``devices:`` entries (with the queue machine, whose signs of life
are its feed's messages) and :func:`expected_device_offline` the alerts a correct edge and
aggregator raise.

Example:
    >>> [(e["device"], e["start_s"], e["end_s"]) for e in expected_device_offline(60.0, 10.0)]
    [('kiosk-1', 24.0, 36.0)]
"""

from __future__ import annotations

import itertools
import json
import logging
import math
import threading
import time
from dataclasses import dataclass
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from hallwatch.contract import utcnow

logger = logging.getLogger(__name__)

#: Seconds between two heartbeats of a device.
HEARTBEAT_EVERY_S = 2.0
#: A device's heartbeat topic; ``{hall}`` and ``{device}`` are filled in.
HEARTBEAT_TOPIC = "devices/{hall}/{device}/heartbeat"
#: The demo's ``offline_after_s`` of the heartbeat devices.
OFFLINE_AFTER_S = 10.0


@dataclass(frozen=True)
class SimulatedDevice:
    """A device that sends heartbeats, with scripted silences.

    Attributes:
        id: Device id (hall config ``devices[].id``).
        name: Display name.
        kind: Device kind (``kiosk``, ``screen``...).
        silent: ``(from_s, to_s)`` windows, seconds after the publisher's start, in which it
            sends nothing.
    """

    id: str
    name: str
    kind: str
    silent: tuple[tuple[float, float], ...] = ()

    def sends_at(self, t: float) -> bool:
        """Whether the device sends its heartbeat due at ``t`` seconds after the start."""
        return not any(start <= t < end for start, end in self.silent)


#: The demo hall's heartbeat devices.
DEMO_DEVICES: tuple[SimulatedDevice, ...] = (
    SimulatedDevice("kiosk-1", "1号自助终端", "kiosk", silent=((15.0, 35.0),)),
    SimulatedDevice("screen-1", "叫号显示屏", "screen"),
)


def heartbeat_schedule(
    devices: tuple[SimulatedDevice, ...] = DEMO_DEVICES,
    run_s: float = 60.0,
    every_s: float = HEARTBEAT_EVERY_S,
) -> list[tuple[float, str]]:
    """The heartbeats sent in ``run_s`` seconds: ``(t, device id)`` in sending order.

    Heartbeats are due at ``0, every_s, 2 * every_s, ...``; a device sends the ones that
    fall outside its silences.

    Example:
        >>> [t for t, d in heartbeat_schedule(run_s=40.0) if d == "kiosk-1"][6:]
        [12.0, 14.0, 36.0, 38.0, 40.0]
    """
    sent: list[tuple[float, str]] = []
    for k in range(math.floor(run_s / every_s + 1e-9) + 1):
        t = k * every_s
        sent.extend((t, dev.id) for dev in devices if dev.sends_at(t))
    return sent


def demo_devices(topic: str = HEARTBEAT_TOPIC) -> list[dict[str, Any]]:
    """The demo hall's ``devices:`` config entries.

    Args:
        topic: The heartbeat topic pattern (``{hall}`` is left for the config to fill,
            ``{device}`` is filled here).

    Returns:
        One entry per :data:`DEMO_DEVICES` device (MQTT heartbeats, offline after
        :data:`OFFLINE_AFTER_S`) and the queue machine (its feed's messages are its signs
        of life; an hour of quiet before it is offline).
    """
    entries: list[dict[str, Any]] = [
        {
            "id": dev.id,
            "name": dev.name,
            "kind": dev.kind,
            "probe": {"mqtt_topic": topic.replace("{device}", dev.id)},
            "offline_after_s": OFFLINE_AFTER_S,
        }
        for dev in DEMO_DEVICES
    ]
    entries.append(
        {
            "id": "queue-machine",
            "name": "排队叫号机",
            "kind": "queue_machine",
            "probe": {"feed": "queue"},
            "offline_after_s": 3600,
        }
    )
    return entries


def expected_device_offline(
    run_s: float,
    offline_after_s: float = OFFLINE_AFTER_S,
    every_s: float = HEARTBEAT_EVERY_S,
    tolerance_s: float = 1.5,
) -> list[dict[str, object]]:
    """The ``device_offline`` alerts a correct edge and aggregator raise within ``run_s``.

    Times are seconds after the publisher's start. The rule, matching the device monitor:
    a device is offline ``offline_after_s`` after its last heartbeat when no other came in
    between (the alert's ``start``), and online again at its next heartbeat (``end``)::

        start_s = last_s + offline_after_s     iff  next_s > start_s  and  start_s <= run_s
        end_s   = next_s                        None if next_s > run_s

    Args:
        run_s: How long the publisher runs.
        offline_after_s: The devices' ``offline_after_s``.
        every_s: The heartbeat period.
        tolerance_s: Copied into each alert: the allowed difference of a real pipeline's
            times (MQTT delivery and the monitor's one-second tick).

    Returns:
        Dicts ``{"device", "kind", "last_s", "start_s", "end_s", "tolerance_s"}`` sorted
        by ``start_s``.
    """
    found: list[dict[str, object]] = []
    sent = heartbeat_schedule(DEMO_DEVICES, run_s + offline_after_s + every_s, every_s)
    for dev in DEMO_DEVICES:
        times = [t for t, d in sent if d == dev.id]
        for last, nxt in itertools.pairwise(times):
            start = last + offline_after_s
            if nxt > start and start <= run_s:
                found.append(
                    {
                        "device": dev.id,
                        "kind": dev.kind,
                        "last_s": last,
                        "start_s": start,
                        "end_s": nxt if nxt <= run_s else None,
                        "tolerance_s": tolerance_s,
                    }
                )
    return sorted(found, key=lambda e: float(str(e["start_s"])))


class HeartbeatPublisher:
    """Publishes the simulated devices' heartbeats on the broker, in a background thread.

    Args:
        hall: The hall id (fills ``{hall}`` in the topic).
        host: Broker host.
        port: Broker port.
        devices: The simulated devices.
        every_s: Heartbeat period.
        topic: Topic pattern with ``{hall}`` and ``{device}``.
    """

    def __init__(
        self,
        hall: str,
        *,
        host: str,
        port: int,
        devices: tuple[SimulatedDevice, ...] = DEMO_DEVICES,
        every_s: float = HEARTBEAT_EVERY_S,
        topic: str = HEARTBEAT_TOPIC,
    ) -> None:
        self.hall = hall
        self.devices = devices
        self.every_s = every_s
        self._topic = topic
        self._stop = threading.Event()
        self.published = 0
        self.started: float | None = None
        """``time.monotonic()`` at the first heartbeat."""
        self._client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=f"hallwatch-demo-heartbeats-{hall}",
            protocol=mqtt.MQTTv311,
        )
        self._host, self._port = host, port
        self._thread = threading.Thread(target=self._run, name="demo-heartbeats", daemon=True)

    def topic_of(self, device: str) -> str:
        """The heartbeat topic of ``device``."""
        return self._topic.replace("{hall}", self.hall).replace("{device}", device)

    def start(self) -> None:
        """Connect and start sending heartbeats (the first ones at once)."""
        self._client.connect(self._host, self._port)
        self._client.loop_start()
        self._thread.start()

    def stop(self) -> None:
        """Stop sending and disconnect."""
        self._stop.set()
        if self._thread.ident is None:
            return  # never started
        self._thread.join(timeout=10)
        self._client.disconnect()
        self._client.loop_stop()

    def _run(self) -> None:
        self.started = time.monotonic()
        k = 0
        try:
            while not self._stop.is_set():
                t = k * self.every_s
                for dev in self.devices:
                    if dev.sends_at(t):
                        self._send(dev, k)
                k += 1
                self._stop.wait(max(0.0, self.started + k * self.every_s - time.monotonic()))
        except (RuntimeError, ValueError) as exc:
            logger.warning("demo heartbeats stopped: %s", exc)

    def _send(self, dev: SimulatedDevice, seq: int) -> None:
        body = {"device": dev.id, "kind": dev.kind, "seq": seq, "at": utcnow().isoformat()}
        self._client.publish(self.topic_of(dev.id), json.dumps(body).encode(), qos=0)
        self.published += 1
        logger.debug("heartbeat %d of %s", seq, dev.id)
