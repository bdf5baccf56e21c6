"""File replay: iterate a video file as fast as possible or at real-time pace, sampled by
the video's own timestamps.

Files sampled every ``every_s`` seconds are decoded as little as possible: packets are
grouped by GOP; a GOP holding no wanted frame is never decoded, and a GOP is decoded only
up to its last wanted frame. With ``keyframes_only`` only key-frame packets reach the
decoder. RGB conversion (and downscaling to ``max_width``) happens only for frames handed
out.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from edge.sources.codec import (
    Decoded,
    configure_decoder,
    decode_keyframe,
    open_container,
    to_rgb,
)
from edge.sources.frame import Frame

_MAX_GOP_PACKETS = 1000  # longer GOPs are decoded straight through, in chunks


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
