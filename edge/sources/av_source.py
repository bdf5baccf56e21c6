"""FFmpeg (PyAV) frame sources: live RTSP readers that keep only the latest frame, and
fast or real-time file iteration sampled by the video's own timestamps.

Decoding is kept as cheap as the caller allows:

* ``keyframes_only``: only key-frame packets reach the decoder (``skip_frame=NONKEY`` as
  well); each is drained at once, so a key frame comes out without waiting for later
  packets, even for streams with B-frames or with frame threading.
* files sampled every ``every_s`` seconds: packets are grouped by GOP; a GOP holding no
  wanted frame is never decoded, and a GOP is decoded only up to its last wanted frame.
* RGB conversion (and downscaling to ``max_width``) happens only for frames handed out;
  the live reader converts lazily, when a consumer asks for the frame.
"""

from __future__ import annotations

import logging
import math
import re
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import av
import numpy as np

from edge.sources.frame import Frame

logger = logging.getLogger(__name__)

LIVE_SCHEMES = ("rtsp", "rtsps", "rtmp", "rtmps", "http", "https", "udp", "tcp", "srt")
# user, then password up to the LAST "@" of the authority (raw "@" in passwords happens)
_CREDENTIALS = re.compile(r"(?P<head>[a-zA-Z][a-zA-Z0-9+.-]*://[^:@/\s'\"]*):[^/\s'\"]*@")
_JUMP_S = 30.0  # live timestamps further than this from the wall-clock estimate re-anchor
_MAX_GOP_PACKETS = 1000  # longer GOPs are decoded straight through, in chunks


def scrub_url(url: str) -> str:
    """Hide passwords in URLs: ``rtsp://user:pass@host`` -> ``rtsp://user:***@host``.

    Works on any text, so error messages that embed a URL can be passed through too.

    Args:
        url: A URL or a text containing URLs.

    Returns:
        The text with every ``scheme://user:password@`` password replaced by ``***``.
    """
    return _CREDENTIALS.sub(r"\g<head>:***@", url)


def is_live_url(url: str) -> bool:
    """Whether ``url`` names a network stream (as opposed to a local file)."""
    scheme, sep, _ = url.partition("://")
    return bool(sep) and scheme.lower() in LIVE_SCHEMES


def open_container(url: str, *, open_timeout_s: float = 5.0, read_timeout_s: float = 2.0) -> Any:
    """Open a file or stream for reading, with timeouts so nothing blocks forever.

    Args:
        url: RTSP/HTTP URL or local path.
        open_timeout_s: Limit for connecting and probing.
        read_timeout_s: Limit for a single read once open.

    Returns:
        A PyAV input container.
    """
    if not is_live_url(url):
        return av.open(str(url))
    options = {"timeout": str(int(open_timeout_s * 1_000_000))}
    if url.lower().startswith("rtsp"):
        options["rtsp_transport"] = "tcp"
    return av.open(url, options=options, timeout=(open_timeout_s, read_timeout_s))


def configure_decoder(stream: Any, *, keyframes_only: bool, threads: int = 0) -> None:
    """Set skip/threading options on a video stream's decoder before decoding.

    Args:
        stream: A PyAV video stream.
        keyframes_only: Skip every non-key frame.
        threads: Decoder threads; 0 lets FFmpeg choose.
    """
    ctx = stream.codec_context
    if keyframes_only:
        ctx.skip_frame = "NONKEY"
    # frame threading only helps when consecutive frames are decoded
    stream.thread_type = "SLICE" if keyframes_only else "AUTO"
    ctx.thread_count = threads


def decode_keyframe(stream: Any, packet: Any) -> list[Any]:
    """Decode one key-frame packet and drain the decoder so the frame comes out now."""
    ctx = stream.codec_context
    frames = list(ctx.decode(packet))
    frames += ctx.decode(None)
    ctx.flush_buffers()
    return frames


def to_rgb(frame: Any, max_width: int | None = None) -> np.ndarray:
    """Convert a decoded frame to an RGB ``uint8`` array, downscaled to ``max_width``."""
    if max_width and frame.width > max_width:
        height = max(2, round(frame.height * max_width / frame.width / 2) * 2)
        return frame.to_ndarray(
            format="rgb24", width=max_width, height=height, interpolation="AREA"
        )
    return frame.to_ndarray(format="rgb24")


@dataclass(slots=True)
class Decoded:
    """A decoded picture not yet converted to RGB (internal hand-over type)."""

    picture: Any  # av.VideoFrame
    pts: float
    wall: datetime


class _Sampler:
    """Keeps one frame per ``every_s`` seconds of video time, on a fixed grid."""

    def __init__(self, every_s: float | None) -> None:
        self.every = every_s if every_s and every_s > 0 else None
        self.anchor: float | None = None
        self.next_t = -math.inf

    def _after(self, anchor: float, t: float) -> float:
        assert self.every is not None
        return anchor + (math.floor((t - anchor) / self.every + 1e-6) + 1) * self.every

    def wants(self, t: float) -> bool:
        return self.every is None or t >= self.next_t - 1e-6

    def take(self, t: float) -> None:
        if self.every is not None:
            self.anchor = t if self.anchor is None else self.anchor
            self.next_t = self._after(self.anchor, t)

    def plan(self, times: list[float]) -> set[float]:
        """Which of ``times`` sampling would keep (the state is not changed)."""
        anchor, next_t, keep = self.anchor, self.next_t, set()
        for t in sorted(times):
            if self.every is None or t >= next_t - 1e-6:
                keep.add(t)
                if self.every is not None:
                    anchor = t if anchor is None else anchor
                    next_t = self._after(anchor, t)
        return keep


def _gops(container: Any, stream: Any, max_packets: int) -> Iterator[list[Any]]:
    """Group packets by GOP (each list starts at a key frame, except continuations)."""
    gop: list[Any] = []
    for packet in container.demux(stream):
        if packet.size == 0:
            continue
        if (packet.is_keyframe and gop) or len(gop) >= max_packets:
            yield gop
            gop = []
        gop.append(packet)
    if gop:
        yield gop


def _file_pass(
    container: Any, keyframes_only: bool, sampler: _Sampler, offset: float
) -> Iterator[tuple[Any, float]]:
    """One pass over an open file: decoded frames wanted by ``sampler``, with pts."""
    stream = container.streams.video[0]
    tb = stream.time_base
    start = stream.start_time if stream.start_time is not None else None

    def seconds(ticks: int | None) -> float | None:
        nonlocal start
        if ticks is None or tb is None:
            return None
        start = ticks if start is None else start
        return offset + float((ticks - start) * tb)

    def wanted(frames: list[Any]) -> Iterator[tuple[Any, float]]:
        for frame in frames:
            t = seconds(frame.pts)
            if t is not None and sampler.wants(t):
                sampler.take(t)
                yield frame, t

    ctx = stream.codec_context
    dirty = False  # decoder holds state that a skipped GOP would break
    for gop in _gops(container, stream, max_packets=_MAX_GOP_PACKETS):
        times = [seconds(p.pts) for p in gop]
        if keyframes_only:
            t0 = times[0]
            if gop[0].is_keyframe and t0 is not None and sampler.wants(t0):
                yield from wanted(decode_keyframe(stream, gop[0]))
            continue
        continuation = not gop[0].is_keyframe
        if None in times or continuation or len(gop) >= _MAX_GOP_PACKETS:
            stop_at = len(gop)  # can't plan: decode everything, keep decoder state
        else:
            keep = sampler.plan([t for t in times if t is not None])
            if not keep:
                if dirty:  # get out what the previous GOP left in the decoder
                    yield from wanted(ctx.decode(None))
                    ctx.flush_buffers()
                    dirty = False
                continue  # nothing wanted in this GOP: never decode it
            # decode order != display order with B-frames: stop after the last wanted one
            stop_at = max(i for i, t in enumerate(times) if t in keep) + 1
        for packet in gop[:stop_at]:
            yield from wanted(ctx.decode(packet))
        dirty = True
        if stop_at < len(gop):  # stopped early: drain, then reset for the next GOP
            yield from wanted(ctx.decode(None))
            ctx.flush_buffers()
            dirty = False
    if dirty:
        yield from wanted(ctx.decode(None))


def iter_file_decoded(
    path: str | Path,
    *,
    keyframes_only: bool = False,
    every_s: float | None = 1.0,
    realtime: bool = False,
    loop: bool = False,
    start_wall: datetime | None = None,
    stop: threading.Event | None = None,
    threads: int = 0,
) -> Iterator[Decoded]:
    """Like :func:`iter_file_frames` but yields frames before RGB conversion."""
    sampler = _Sampler(every_s)
    stop = stop or threading.Event()
    wall0 = start_wall or datetime.now(UTC)
    offset, clock0, pts0 = 0.0, None, 0.0
    while not stop.is_set():
        count = 0
        with open_container(str(path)) as container:
            if not container.streams.video:
                raise ValueError(f"{path}: no video stream")
            stream = container.streams.video[0]
            configure_decoder(stream, keyframes_only=keyframes_only, threads=threads)
            rate = stream.average_rate or stream.guessed_rate or 25
            span = float(stream.duration * stream.time_base) if stream.duration else None
            last = offset
            for frame, t in _file_pass(container, keyframes_only, sampler, offset):
                count += 1
                last = max(last, t)
                if realtime:
                    if clock0 is None:
                        clock0, pts0 = time.monotonic(), t
                    delay = clock0 + (t - pts0) - time.monotonic()
                    if delay > 0 and stop.wait(delay):
                        return
                if stop.is_set():
                    return
                yield Decoded(frame, t, wall0 + timedelta(seconds=t))
        if not loop:
            return
        if count == 0:
            raise ValueError(f"{path}: no decodable frames")
        offset = offset + span if span else last + 1.0 / float(rate)


def iter_file_frames(
    path: str | Path,
    camera: str,
    *,
    keyframes_only: bool = False,
    every_s: float | None = 1.0,
    realtime: bool = False,
    loop: bool = False,
    max_width: int | None = None,
    start_wall: datetime | None = None,
    stop: threading.Event | None = None,
) -> Iterator[Frame]:
    """Read a video file as fast as possible (or at real-time pace) as RGB frames.

    Frames are sampled by the video's own timestamps: the first frame at or after each
    multiple of ``every_s`` seconds of video time. Only GOPs holding a wanted frame are
    decoded, and only the frames handed out are converted to RGB.

    Args:
        path: Video file.
        camera: Camera id put on every frame.
        keyframes_only: Decode key frames only (cheapest; the sample falls on key frames).
        every_s: Sampling period in video seconds; ``None`` keeps every decoded frame.
        realtime: Pace output to the video's timestamps (live-demo playback).
        loop: Start over at end of file; pts keep increasing across loops.
        max_width: Downscale wider frames to this width (aspect kept).
        start_wall: Wall time of pts 0 (default: now, UTC).
        stop: Set to end the iteration early (also interrupts real-time waits).

    Yields:
        Frames with increasing ``pts`` (seconds from the start of the file).
    """
    for d in iter_file_decoded(
        path,
        keyframes_only=keyframes_only,
        every_s=every_s,
        realtime=realtime,
        loop=loop,
        start_wall=start_wall,
        stop=stop,
    ):
        yield Frame(camera=camera, image=to_rgb(d.picture, max_width), pts=d.pts, wall=d.wall)


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
