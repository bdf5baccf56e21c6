"""An embedded MQTT broker (amqtt) for the demo and for single-box installs.

amqtt speaks MQTT 3.1.1 only (no shared subscriptions, no MQTT 5 sessions); with anonymous
access it keeps no offline queue. Production halls use Mosquitto or EMQX; see
``docs/deploy.md``.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import threading
from typing import Any

logger = logging.getLogger(__name__)


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that is free on ``host`` right now."""
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


class EmbeddedBroker:
    """amqtt running on its own event loop in a background thread.

    Args:
        host: Address to listen on (loopback by default).
        port: Port; ``0`` picks a free one.

    Example:
        >>> broker = EmbeddedBroker().start()
        >>> broker.port > 0
        True
        >>> broker.stop()
    """

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self.host = host
        self.port = port or free_port(host)
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="amqtt", daemon=True)
        self._broker: Any = None

    def start(self, timeout: float = 10.0) -> EmbeddedBroker:
        """Start listening; returns once the broker accepts connections."""
        from amqtt.broker import Broker

        for name in ("amqtt", "transitions"):
            logging.getLogger(name).setLevel(logging.WARNING)
        config = {
            "listeners": {"default": {"type": "tcp", "bind": f"{self.host}:{self.port}"}},
            "plugins": {
                "amqtt.plugins.authentication.AnonymousAuthPlugin": {"allow_anonymous": True}
            },
        }

        async def _start() -> None:
            self._broker = Broker(config)
            await self._broker.start()

        self._thread.start()
        asyncio.run_coroutine_threadsafe(_start(), self._loop).result(timeout)
        logger.info("embedded MQTT broker on %s:%d", self.host, self.port)
        return self

    def stop(self, timeout: float = 10.0) -> None:
        """Shut the broker down and end its thread."""
        if self._broker is not None:
            try:
                asyncio.run_coroutine_threadsafe(self._broker.shutdown(), self._loop).result(
                    timeout
                )
            except Exception:  # shutting down anyway
                logger.debug("amqtt shutdown raised", exc_info=True)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout)
