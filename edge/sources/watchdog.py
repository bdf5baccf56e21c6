"""Per-camera watchdog: keeps one camera's reader alive and reports online/offline.

One :class:`CameraWatchdog` per camera, each in its own thread, so a camera that hangs,
refuses connections or crashes the decoder never affects another camera.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable
from typing import Protocol

from edge.sources.av_source import ReaderStats, open_source, scrub_url
from edge.sources.frame import Frame

logger = logging.getLogger(__name__)

StatusCallback = Callable[[str, bool, str], None]
"""``on_status(camera, online, reason)``; called from the watchdog thread, must only enqueue."""


class FrameReader(Protocol):
    """What the watchdog needs from a reader (:class:`LatestFrameReader` satisfies it)."""

    @property
    def stats(self) -> ReaderStats: ...

    @property
    def ended(self) -> bool: ...

    @property
    def end_reason(self) -> str | None: ...

    def latest(self) -> Frame | None: ...

    def wait_next(self, after_pts: float | None = None, timeout: float = 5.0) -> Frame | None: ...

    def close(self, timeout: float = 5.0) -> None: ...


ReaderFactory = Callable[[str, str, float], FrameReader]
"""``factory(url, camera, pts_base)`` -> a started reader."""


class CameraWatchdog:
    """Owns a camera's reader: detects stale streams, reconnects, reports status changes.

    * No new frame for ``stale_after_s`` -> ``on_status(camera, False, reason)`` (once).
    * A reader that ended (dropped stream, refused connection, decode error) or went
      silent is replaced after an exponential backoff (``initial_backoff_s`` doubling up to
      ``max_backoff_s``, +-``jitter``); the backoff resets when frames flow again.
    * The first frame (at start or after an outage) -> ``on_status(camera, True, reason)``.

    Status is reported once per transition, never repeated. Before the first frame the
    state is unknown: nothing is reported unless no frame arrives within ``stale_after_s``.
    ``pts`` keeps increasing across reconnects (the outage is bridged with wall time).

    Args:
        camera: Camera id.
        url: Stream URL or file path (may hold credentials; only scrubbed forms are logged).
        on_status: Status callback; it runs in the watchdog thread, so it must be cheap
            (put the event on a queue). Exceptions from it are logged and ignored.
        stale_after_s: Seconds without a frame before the camera counts as offline. Must
            exceed the key-frame interval when decoding key frames only.
        initial_backoff_s: First reconnect delay.
        max_backoff_s: Reconnect delay cap.
        jitter: Relative random spread of each delay (0.2 = +-20 %).
        keyframes_only: Passed to the default reader.
        max_fps: Passed to the default reader.
        max_width: Passed to the default reader.
        open_timeout_s: Passed to the default reader.
        read_timeout_s: Passed to the default reader.
        reader_factory: Builds readers (for tests); default :func:`open_source`.
        start: Start the thread now.
    """

    def __init__(
        self,
        camera: str,
        url: str,
        on_status: StatusCallback,
        *,
        stale_after_s: float = 10.0,
        initial_backoff_s: float = 1.0,
        max_backoff_s: float = 30.0,
        jitter: float = 0.2,
        keyframes_only: bool = True,
        max_fps: float | None = None,
        max_width: int | None = None,
        open_timeout_s: float = 5.0,
        read_timeout_s: float = 2.0,
        reader_factory: ReaderFactory | None = None,
        start: bool = True,
    ) -> None:
        self.camera = camera
        self.url = url
        self.on_status = on_status
        self.stale_after_s = stale_after_s
        self.initial_backoff_s = initial_backoff_s
        self.max_backoff_s = max(max_backoff_s, initial_backoff_s)
        self.jitter = jitter

        def default_factory(url: str, camera: str, pts_base: float) -> FrameReader:
            return open_source(
                url,
                camera,
                keyframes_only=keyframes_only,
                max_fps=max_fps,
                max_width=max_width,
                pts_base=pts_base,
                open_timeout_s=open_timeout_s,
                read_timeout_s=read_timeout_s,
            )

        self._factory = reader_factory or default_factory
        self._safe_url = scrub_url(url)
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._reader: FrameReader | None = None
        self._frame_reader: FrameReader | None = None  # the reader with the newest frame
        self._online: bool | None = None
        self.reconnects = 0
        self.last_error: str | None = None
        self._poll_s = max(0.02, min(0.25, stale_after_s / 10, initial_backoff_s / 2))
        # a reader still connecting gets its own timeouts before it counts as hung
        self._silent_limit_s = max(stale_after_s, open_timeout_s + read_timeout_s)
        self._thread = threading.Thread(target=self._run, name=f"watchdog-{camera}", daemon=True)
        if start:
            self.start()

    # -- public ---------------------------------------------------------------------------

    def start(self) -> None:
        """Start the watchdog thread (once)."""
        if not self._thread.is_alive() and not self._stop.is_set():
            self._thread.start()

    @property
    def online(self) -> bool:
        """Whether the camera was last reported online."""
        return self._online is True

    @property
    def state(self) -> str:
        """``"unknown"`` (nothing reported yet), ``"online"`` or ``"offline"``."""
        return {None: "unknown", True: "online", False: "offline"}[self._online]

    def latest(self) -> Frame | None:
        """The newest frame received (possibly stale: check :attr:`online`/``frame.wall``)."""
        with self._lock:
            reader = self._frame_reader
        return reader.latest() if reader is not None else None

    def wait_next(self, after_pts: float | None = None, timeout: float = 5.0) -> Frame | None:
        """Wait up to ``timeout`` s for a frame newer than ``after_pts`` (across reconnects)."""
        deadline = time.monotonic() + timeout
        while not self._stop.is_set():
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            with self._lock:
                reader = self._reader
            if reader is None or reader.ended:
                self._stop.wait(min(self._poll_s, left))
                continue
            frame = reader.wait_next(after_pts, min(0.5, left))
            if frame is not None:
                return frame
        return None

    def stop(self, timeout: float = 5.0) -> None:
        """Stop the thread and close the reader. No status is reported for stopping."""
        self._stop.set()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(timeout)
        with self._lock:
            reader = self._reader
        if reader is not None:
            reader.close(timeout)

    def __enter__(self) -> CameraWatchdog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- thread ---------------------------------------------------------------------------

    def _report(self, online: bool, reason: str) -> None:
        if self._online is online:
            return
        self._online = online
        level = logging.INFO if online else logging.WARNING
        logger.log(
            level, "camera %s %s: %s", self.camera, "online" if online else "offline", reason
        )
        try:
            self.on_status(self.camera, online, reason)
        except Exception:
            logger.exception("camera %s: status callback failed", self.camera)

    def _delay(self, backoff: float) -> float:
        return backoff * random.uniform(1.0 - self.jitter, 1.0 + self.jitter)

    def _open(self, pts_base: float) -> FrameReader | None:
        try:
            return self._factory(self.url, self.camera, pts_base)
        except Exception as exc:  # a factory should not raise, but never let it kill us
            self.last_error = scrub_url(f"{type(exc).__name__}: {exc}")
            logger.warning(
                "camera %s [%s]: open failed: %s", self.camera, self._safe_url, self.last_error
            )
            return None

    def _drop(self, reader: FrameReader, why: str) -> None:
        # the first failure of an outage is worth INFO; repeated retries are DEBUG
        level = logging.DEBUG if self._online is False else logging.INFO
        logger.log(level, "camera %s [%s]: reconnecting: %s", self.camera, self._safe_url, why)
        self.last_error = why
        reader.close(timeout=0.0)  # don't wait: a stalled read ends within its own timeout
        with self._lock:
            self._reader = None

    def _run(self) -> None:
        try:
            self._loop()
        except Exception:  # a bug here must not take other cameras down
            logger.exception("camera %s: watchdog crashed", self.camera)

    def _loop(self) -> None:
        started = time.monotonic()
        backoff = self.initial_backoff_s
        next_attempt = started
        last_frame: float | None = None  # monotonic time of the newest frame
        last_pts: float | None = None
        reader: FrameReader | None = None
        opened, seen = 0.0, 0
        while not self._stop.is_set():
            now = time.monotonic()
            if reader is None and now >= next_attempt:
                base = 0.0 if last_pts is None else last_pts + (now - (last_frame or now))
                reader = self._open(base)
                opened, seen = now, 0
                with self._lock:
                    self._reader = reader
                if reader is None:
                    next_attempt = now + self._delay(backoff)
                    backoff = min(backoff * 2, self.max_backoff_s)
            if reader is not None:
                stats = reader.stats
                if stats.frames_published > seen:
                    seen = stats.frames_published
                    last_frame = stats.last_frame_monotonic or now
                    last_pts = stats.last_pts
                    backoff = self.initial_backoff_s
                    self.last_error = None
                    with self._lock:
                        self._frame_reader = reader
                    self._report(True, "receiving frames")
                silent = now - max(opened, last_frame or opened)
                if reader.ended or silent > self._silent_limit_s:
                    why = reader.end_reason if reader.ended else None
                    self._drop(reader, why or f"no frame for {silent:.1f} s")
                    self.reconnects += 1
                    reader = None
                    next_attempt = now + self._delay(backoff)
                    backoff = min(backoff * 2, self.max_backoff_s)
            since = last_frame if last_frame is not None else started
            if now - since > self.stale_after_s and self._online is not False:
                why = self.last_error or (
                    "no frame yet" if last_frame is None else "stream stalled"
                )
                self._report(False, f"no frame for {now - since:.1f} s ({why})")
            self._stop.wait(self._poll_s)
        if reader is not None:
            reader.close(timeout=0.0)
