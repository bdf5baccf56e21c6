"""A tiny in-process, thread-safe publish/subscribe bus for live updates (SSE).

Publishers (the ingest worker, the rule ticker) run in plain threads; subscribers are
asyncio tasks (one per ``/api/v1/live`` client). :meth:`LiveBus.publish` hands each event
to every subscriber's ``asyncio.Queue`` through its loop's ``call_soon_threadsafe``. A slow
subscriber whose queue is full loses its oldest events rather than blocking ingest.

The bus is per process and carries only notifications: replicas do not share it, and a
client that reconnects reloads the state from the REST routes.

Example:
    >>> import asyncio
    >>> async def demo() -> str:
    ...     bus = LiveBus()
    ...     sub = bus.subscribe()
    ...     bus.publish(LiveEvent("presence", "h1", {"post": "w1"}))
    ...     event = await sub.get(timeout=1)
    ...     sub.close()
    ...     return event.type if event else "none"
    >>> asyncio.run(demo())
    'presence'
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import threading
from dataclasses import dataclass, field
from typing import Any

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class LiveEvent:
    """One live notification.

    Attributes:
        type: ``presence``, ``device``, ``edge``, ``alert``.
        hall: Hall id.
        data: JSON-serialisable body.
    """

    type: str
    hall: str
    data: dict[str, Any] = field(default_factory=dict)

    def to_sse(self) -> str:
        """The event as a server-sent-events frame."""
        body = json.dumps({"hall": self.hall, **self.data}, ensure_ascii=False, default=str)
        return f"event: {self.type}\ndata: {body}\n\n"


class Subscription:
    """One subscriber's queue, bound to the event loop it was created on."""

    def __init__(self, bus: LiveBus, loop: asyncio.AbstractEventLoop, maxsize: int) -> None:
        self._bus = bus
        self.loop = loop
        self.queue: asyncio.Queue[LiveEvent | None] = asyncio.Queue(maxsize=maxsize)
        self.dropped = 0
        self.closed = False

    def _put(self, event: LiveEvent | None) -> None:
        """Runs on the subscriber's loop."""
        if event is None:
            self.closed = True
        while True:
            try:
                self.queue.put_nowait(event)
                return
            except asyncio.QueueFull:
                with contextlib.suppress(asyncio.QueueEmpty):
                    self.queue.get_nowait()
                    self.dropped += 1

    async def get(self, timeout: float | None = None) -> LiveEvent | None:
        """The next event; None on timeout or when the bus closed.

        Args:
            timeout: Seconds to wait; None waits for ever.
        """
        if self.closed and self.queue.empty():
            return None
        try:
            return await asyncio.wait_for(self.queue.get(), timeout)
        except TimeoutError:
            return None

    def close(self) -> None:
        """Stop receiving events."""
        self._bus.unsubscribe(self)


class LiveBus:
    """Thread-safe fan-out of :class:`LiveEvent` to asyncio subscribers.

    Args:
        maxsize: Per-subscriber queue bound.
    """

    def __init__(self, maxsize: int = 1000) -> None:
        self._maxsize = maxsize
        self._lock = threading.Lock()
        self._subs: list[Subscription] = []
        self._closed = False

    def subscribe(self) -> Subscription:
        """Subscribe from a coroutine (binds to the running loop)."""
        sub = Subscription(self, asyncio.get_running_loop(), self._maxsize)
        with self._lock:
            if self._closed:
                sub.closed = True
            else:
                self._subs.append(sub)
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        """Remove a subscriber (idempotent)."""
        with self._lock:
            if sub in self._subs:
                self._subs.remove(sub)

    @property
    def subscriber_count(self) -> int:
        """Current number of subscribers."""
        with self._lock:
            return len(self._subs)

    def publish(self, event: LiveEvent) -> None:
        """Deliver an event to every subscriber; never blocks, callable from any thread."""
        self._deliver(event)

    def close(self) -> None:
        """Wake every subscriber with an end-of-stream and refuse new ones."""
        with self._lock:
            self._closed = True
        self._deliver(None)
        with self._lock:
            self._subs.clear()

    def _deliver(self, event: LiveEvent | None) -> None:
        with self._lock:
            subs = list(self._subs)
        for sub in subs:
            try:
                sub.loop.call_soon_threadsafe(sub._put, event)
            except RuntimeError:  # its loop is closed: the client is gone
                self.unsubscribe(sub)
