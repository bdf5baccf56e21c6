"""A real Mosquitto broker for integration tests, on a loopback port.

Example:
    >>> with Mosquitto() as broker:  # doctest: +SKIP
    ...     print(broker.port)
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from tests.support.server import ServerProcess, find_binary, port_open

MOSQUITTO_CANDIDATES = ("/usr/sbin/mosquitto", "/usr/local/sbin/mosquitto")


def find_mosquitto() -> str | None:
    """Path of the mosquitto binary, or None if it is not installed."""
    return find_binary("mosquitto", MOSQUITTO_CANDIDATES)


class Mosquitto(ServerProcess):
    """One mosquitto process with a generated config; restartable on the same port.

    Args:
        port: Port to listen on (loopback only); None picks a free one.
        persistence: Keep sessions and queued messages across restarts (on disk in the
            broker's temp folder).
        binary: mosquitto executable (default: found on the system).
        allow_anonymous: Let clients connect without a user name (the tests' default).
        extra_config: More config lines, written after the generated ones (e.g.
            ``password_file ...`` and ``acl_file ...``).
    """

    def __init__(
        self,
        port: int | None = None,
        *,
        persistence: bool = False,
        binary: str | None = None,
        allow_anonymous: bool = True,
        extra_config: Sequence[str] = (),
    ) -> None:
        found = binary or find_mosquitto()
        if found is None:
            raise FileNotFoundError("mosquitto is not installed")
        super().__init__("mosquitto", found, port)
        self.persistence = persistence
        self.allow_anonymous = allow_anonymous
        self.extra_config = tuple(extra_config)

    def _write_config(self) -> Path:
        lines = [
            f"listener {self.port} {self.host}",
            f"allow_anonymous {'true' if self.allow_anonymous else 'false'}",
            f"persistence {'true' if self.persistence else 'false'}",
            "log_dest stderr",
            "log_type error",
            "log_type warning",
            "log_type notice",
            "log_type information",
            "max_queued_messages 100000",
        ]
        if self.persistence:
            lines.append(f"persistence_location {self.dir}/")
        if os.geteuid() == 0:
            # mosquitto drops root privileges to the "mosquitto" user unless told not to.
            lines.append("user root")
        lines.extend(self.extra_config)
        conf = self.dir / "mosquitto.conf"
        conf.write_text("\n".join(lines) + "\n")
        return conf

    def start(self, timeout: float = 10.0) -> None:
        """Start the broker and wait until its port accepts connections.

        Raises:
            RuntimeError: It exited or did not listen in time (its log is in the message).
        """
        if self.running:
            return
        conf = self._write_config()
        self._launch(
            [self.binary, "-c", str(conf)],
            lambda: port_open(self.host, self.port),
            timeout,
            "did not listen",
        )


def publish(port: int, messages: list[tuple[str, bytes]], *, retain: bool = False) -> None:
    """Publish ``(topic, payload)`` messages at QoS 1 and wait for every PUBACK."""
    client = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    client.connect("127.0.0.1", port)
    client.loop_start()
    try:
        infos = [client.publish(t, p, qos=1, retain=retain) for t, p in messages]
        for info in infos:
            info.wait_for_publish(5)
            assert info.is_published()
    finally:
        client.disconnect()
        client.loop_stop()
