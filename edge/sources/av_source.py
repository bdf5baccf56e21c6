"""FFmpeg (PyAV) live sources: RTSP readers that keep only the latest frame.

Decoding is kept as cheap as the caller allows:

* ``keyframes_only``: only key-frame packets reach the decoder (``skip_frame=NONKEY`` as
  well); each is drained at once, so a key frame comes out without waiting for later
  packets, even for streams with B-frames or with frame threading.
* RGB conversion (and downscaling to ``max_width``) happens only for frames handed out;
  the live reader converts lazily, when a consumer asks for the frame.

A :class:`LatestFrameReader` can also play a video file standing in for a camera; file
replay (fast or real-time iteration sampled by the video's own timestamps) lives in
:mod:`edge.sources.file_source`, the low-level PyAV helpers in :mod:`edge.sources.codec`.
Their names are re-exported here.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime

import av

from edge.sources.codec import _CREDENTIALS as _CREDENTIALS
from edge.sources.codec import LIVE_SCHEMES as LIVE_SCHEMES
from edge.sources.codec import (
    Decoded,
    configure_decoder,
    decode_keyframe,
    is_live_url,
    open_container,
    scrub_url,
    to_rgb,
)
from edge.sources.file_source import _MAX_GOP_PACKETS as _MAX_GOP_PACKETS
from edge.sources.file_source import _file_pass as _file_pass
from edge.sources.file_source import _gops as _gops
from edge.sources.file_source import _Sampler as _Sampler
from edge.sources.file_source import iter_file_decoded
from edge.sources.file_source import iter_file_frames as iter_file_frames
from edge.sources.frame import Frame

logger = logging.getLogger(__name__)

_JUMP_S = 30.0  # live timestamps further than this from the wall-clock estimate re-anchor


class _LiveClock:
    """Turns stream timestamps into monotonic pts starting at ``base``.

    Missing timestamps (the first RTSP frame often has none) and discontinuities are
    bridged with the monotonic wall clock.
    """

    def __init__(self, base: float) -> None:
        self.base = base
        self.t0: float | None = None
        self.last: float | None = None
        self.last_mono = 0.0

    def stamp(self, t: float | None) -> float:
        now = time.monotonic()
        expected = self.base if self.last is None else self.last + (now - self.last_mono)
        if t is None or not math.isfinite(t):
            pts = expected
        else:
            if self.t0 is None:
                # untimed frames before: FFmpeg's RTSP timeline starts at 0 with them
                early = self.last is not None and 0.0 <= t < _JUMP_S
                self.t0 = -self.base if early else t - expected
            pts = t - self.t0
            if abs(pts - expected) > _JUMP_S:
                self.t0, pts = t - expected, expected
        if self.last is not None and pts <= self.last:
            pts = self.last + 1e-3
        self.last, self.last_mono = pts, now
        return pts


def iter_live_decoded(
    url: str,
    *,
    keyframes_only: bool = True,
    pts_base: float = 0.0,
    open_timeout_s: float = 5.0,
    read_timeout_s: float = 2.0,
    threads: int = 0,
    stop: threading.Event | None = None,
) -> Iterator[Decoded]:
    """Decode a live stream; ends (without error) when the server stops sending."""
    stop = stop or threading.Event()
    clock = _LiveClock(pts_base)
    with open_container(
        url, open_timeout_s=open_timeout_s, read_timeout_s=read_timeout_s
    ) as container:
        if not container.streams.video:
            raise ValueError(f"{scrub_url(url)}: no video stream")
        stream = container.streams.video[0]
        configure_decoder(stream, keyframes_only=keyframes_only, threads=threads)
        tb = stream.time_base
        logger.info(
            "opened %s: %s %dx%d keyframes_only=%s",
            scrub_url(url),
            stream.codec_context.name,
            stream.codec_context.width,
            stream.codec_context.height,
            keyframes_only,
        )
        for packet in container.demux(stream):
            if stop.is_set():
                return
            if packet.size == 0:
                continue
            if keyframes_only:
                if not packet.is_keyframe:
                    continue
                frames = decode_keyframe(stream, packet)
            else:
                frames = packet.decode()
            for frame in frames:
                # not frame.time: frames drained after flush_buffers() lose their time base
                t = float(frame.pts * tb) if frame.pts is not None and tb else None
                yield Decoded(frame, clock.stamp(t), datetime.now(UTC))


@dataclass(frozen=True, slots=True)
class ReaderStats:
    """Counters of a :class:`LatestFrameReader` (a snapshot).

    Attributes:
        frames_decoded: Frames out of the decoder.
        frames_skipped: Decoded frames dropped by the ``max_fps`` limit.
        frames_published: Frames that became the latest frame.
        frames_overwritten: Published frames replaced before any consumer read them.
        frames_consumed: Distinct frames handed to consumers.
        last_frame_wall: Wall time of the newest published frame.
        last_frame_monotonic: ``time.monotonic()`` when it was published.
        last_pts: Its pts.
    """

    frames_decoded: int = 0
    frames_skipped: int = 0
    frames_published: int = 0
    frames_overwritten: int = 0
    frames_consumed: int = 0
    last_frame_wall: datetime | None = None
    last_frame_monotonic: float | None = None
    last_pts: float | None = None


class LatestFrameReader:
    """Decodes a source in its own thread and keeps only the newest frame.

    There is never a queue: a frame nobody read before the next one arrives is counted in
    ``stats.frames_overwritten`` and dropped, so consumers never lag. RGB conversion is
    done on demand, once per frame, in the consumer's thread.

    Live sources end when the stream ends or stalls past ``read_timeout_s`` (a dropped
    server is a plain end of stream in FFmpeg); see :attr:`ended` and :attr:`end_reason`.
    Reconnecting is the job of :class:`edge.sources.watchdog.CameraWatchdog`.

    Args:
        url: RTSP/HTTP URL or video file path.
        camera: Camera id put on every frame.
        keyframes_only: Decode key frames only (the cheap default for 1-2 s sampling).
        max_fps: Publish at most this many frames per second of stream time.
        max_width: Downscale wider frames to this width.
        realtime: Files only: play at the video's pace (otherwise as fast as possible).
        loop: Files only: loop forever with increasing pts.
        pts_base: Offset added to pts (keeps pts increasing across reconnects).
        open_timeout_s: Connect/probe timeout for live sources.
        read_timeout_s: Per-read timeout for live sources.
        threads: Decoder threads (0: FFmpeg's choice).
        start: Start the thread now.
    """

    def __init__(
        self,
        url: str,
        camera: str,
        *,
        keyframes_only: bool = True,
        max_fps: float | None = None,
        max_width: int | None = None,
        realtime: bool = True,
        loop: bool = True,
        pts_base: float = 0.0,
        open_timeout_s: float = 5.0,
        read_timeout_s: float = 2.0,
        threads: int = 0,
        start: bool = True,
    ) -> None:
        self.url = url
        self.camera = camera
        self.max_fps = max_fps
        self.max_width = max_width
        self._stop = threading.Event()
        self._cond = threading.Condition()
        self._stats = ReaderStats()
        self._slot: Decoded | None = None
        self._slot_frame: Frame | None = None
        self._slot_read = False
        self._ended = False
        self.end_reason: str | None = None
        self._frames: Callable[[], Iterator[Decoded]]
        if is_live_url(url):
            self._frames = lambda: iter_live_decoded(
                url,
                keyframes_only=keyframes_only,
                pts_base=pts_base,
                open_timeout_s=open_timeout_s,
                read_timeout_s=read_timeout_s,
                threads=threads,
                stop=self._stop,
            )
        else:
            self._frames = lambda: (
                replace(d, pts=d.pts + pts_base)
                for d in iter_file_decoded(
                    url,
                    keyframes_only=keyframes_only,
                    every_s=None,
                    realtime=realtime,
                    loop=loop,
                    stop=self._stop,
                    threads=threads,
                )
            )
        self._thread = threading.Thread(target=self._run, name=f"reader-{camera}", daemon=True)
        if start:
            self.start()

    def start(self) -> None:
        """Start the decoding thread (once)."""
        if not self._thread.is_alive() and not self._ended:
            self._thread.start()

    @property
    def ended(self) -> bool:
        """Whether the thread has finished (end of stream, error or close)."""
        return self._ended

    @property
    def stats(self) -> ReaderStats:
        """A snapshot of the counters."""
        with self._cond:
            return self._stats

    def _run(self) -> None:
        safe = scrub_url(self.url)
        min_gap = 1.0 / self.max_fps if self.max_fps else 0.0
        last_pts: float | None = None
        reason, level = "end of stream", logging.INFO
        try:
            for d in self._frames():
                if self._stop.is_set():
                    break
                with self._cond:
                    s = self._stats
                    if last_pts is not None and d.pts - last_pts < min_gap - 1e-6:
                        self._stats = replace(
                            s,
                            frames_decoded=s.frames_decoded + 1,
                            frames_skipped=s.frames_skipped + 1,
                        )
                        continue
                    last_pts = d.pts
                    lost = 1 if self._slot is not None and not self._slot_read else 0
                    self._slot, self._slot_frame, self._slot_read = d, None, False
                    self._stats = replace(
                        s,
                        frames_decoded=s.frames_decoded + 1,
                        frames_published=s.frames_published + 1,
                        frames_overwritten=s.frames_overwritten + lost,
                        last_frame_wall=d.wall,
                        last_frame_monotonic=time.monotonic(),
                        last_pts=d.pts,
                    )
                    self._cond.notify_all()
        except av.error.ExitError:  # PyAV's open/read timeout interrupted FFmpeg
            reason, level = "timed out waiting for data", logging.WARNING
        except (av.FFmpegError, OSError, ValueError) as exc:
            reason, level = scrub_url(f"{type(exc).__name__}: {exc}"), logging.WARNING
        except Exception as exc:
            reason = scrub_url(f"{type(exc).__name__}: {exc}")
            logger.exception("%s [%s]: reader crashed", self.camera, safe)
        if self._stop.is_set():
            reason, level = "closed", logging.DEBUG
        logger.log(level, "%s [%s]: reader ended: %s", self.camera, safe, reason)
        with self._cond:
            self.end_reason = reason
            self._ended = True
            self._cond.notify_all()

    def _take(self) -> Frame | None:
        """Hand out the slot's frame (converting once); caller holds the lock."""
        d = self._slot
        if d is None:
            return None
        if self._slot_frame is None:
            image = to_rgb(d.picture, self.max_width)
            self._slot_frame = Frame(camera=self.camera, image=image, pts=d.pts, wall=d.wall)
        if not self._slot_read:
            self._slot_read = True
            s = self._stats
            self._stats = replace(s, frames_consumed=s.frames_consumed + 1)
        return self._slot_frame

    def latest(self) -> Frame | None:
        """The newest frame, or ``None`` before the first one (it may be stale)."""
        with self._cond:
            return self._take()

    def wait_next(self, after_pts: float | None = None, timeout: float = 5.0) -> Frame | None:
        """Wait for a frame newer than ``after_pts``.

        Args:
            after_pts: Only a frame with a larger pts is returned (``None``: any frame).
            timeout: Seconds to wait at most.

        Returns:
            The newest frame, or ``None`` on timeout or if the reader ended first.
        """

        def ready() -> bool:
            d = self._slot
            return self._ended or (d is not None and (after_pts is None or d.pts > after_pts))

        with self._cond:
            self._cond.wait_for(ready, timeout)
            d = self._slot
            if d is None or (after_pts is not None and d.pts <= after_pts):
                return None
            return self._take()

    def close(self, timeout: float = 5.0) -> None:
        """Stop the thread and wait for it (a stalled read ends within its timeout)."""
        self._stop.set()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(timeout)
        if timeout > 0 and self._thread.is_alive():
            logger.warning("%s: reader thread still busy after %.1f s", self.camera, timeout)

    def __enter__(self) -> LatestFrameReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def open_source(
    url: str,
    camera: str | None = None,
    *,
    keyframes_only: bool = True,
    max_fps: float | None = None,
    max_width: int | None = None,
    realtime: bool = True,
    loop: bool = True,
    pts_base: float = 0.0,
    open_timeout_s: float = 5.0,
    read_timeout_s: float = 2.0,
    threads: int = 0,
) -> LatestFrameReader:
    """Open a camera URL or a video file as a started :class:`LatestFrameReader`.

    Files play at real-time pace in a loop by default, standing in for a camera.

    Args:
        url: ``rtsp://...`` (TCP transport, 5 s socket timeout) or a file path.
        camera: Camera id for the frames (default: the scrubbed URL).
        keyframes_only: Decode key frames only.
        max_fps: Publish at most this many frames per second.
        max_width: Downscale wider frames to this width.
        realtime: Files: play at the video's pace.
        loop: Files: loop forever.
        pts_base: Offset added to every pts.
        open_timeout_s: Connect/probe timeout (live).
        read_timeout_s: Per-read timeout (live).
        threads: Decoder threads (0: FFmpeg's choice).

    Returns:
        The running reader; call :meth:`LatestFrameReader.close` when done.
    """
    return LatestFrameReader(
        url,
        camera or scrub_url(url),
        keyframes_only=keyframes_only,
        max_fps=max_fps,
        max_width=max_width,
        realtime=realtime,
        loop=loop,
        pts_base=pts_base,
        open_timeout_s=open_timeout_s,
        read_timeout_s=read_timeout_s,
        threads=threads,
    )
