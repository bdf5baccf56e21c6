#!/usr/bin/python3
"""Loopback RTSP server for tests and benchmarks (GStreamer RTSP server via PyGObject).

Run with Debian's ``/usr/bin/python3`` (the venv has no ``gi``)::

    /usr/bin/python3 tests/support/rtsp_server.py --port 8554 \
        --mount /cam1=clip.mp4 --mount /cam2=pattern: --size 1280x720 --fps 25 --gop 50

Mount sources:

* a video file with H.264 video (mp4/mkv/ts): the compressed stream is passed through
  without re-encoding and looped forever. A feeder thread reads access units with
  ``filesrc ! parsebin ! h264parse ! appsink``, re-stamps them with continuous timestamps
  (``loop * duration + pts``) and pushes them at real-time pace into the mount's ``appsrc``.
  At end of file the reader pipeline is seeked back to 0.
* ``pattern:[NAME]`` (default ``smpte``): a live ``videotestsrc`` with moving content and
  a time overlay, encoded with ``x264enc tune=zerolatency`` (``--size``, ``--fps``,
  ``--gop`` for key-int-max, ``--bitrate`` in kbit/s, ``--preset``, ``--profile``).

Mounts are shared: one pipeline serves all clients of a mount. When the last client
leaves, the pipeline is torn down; the next client starts a fresh one (files start from
the beginning). One ``READY rtsp://127.0.0.1:PORT/MOUNT`` line per mount is printed to
stdout once the port is bound; SIGTERM/SIGINT stop the server with exit code 0.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
import time

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import GLib, Gst, GstRtspServer  # noqa: E402

PUSH_LEAD_S = 0.02  # push each access unit this much before its due time
FILE_LAUNCH = (
    "( appsrc name=src is-live=true format=time do-timestamp=false min-latency=0 "
    "max-bytes=8000000 ! h264parse ! rtph264pay name=pay0 pt=96 )"
)
READER_LAUNCH = (
    "filesrc name=file ! parsebin ! h264parse config-interval=-1 ! "
    "video/x-h264,stream-format=byte-stream,alignment=au ! "
    "appsink name=sink sync=false max-buffers=64 drop=false"
)


def log(msg: str) -> None:
    """Write a diagnostic line to stderr."""
    print(f"rtsp_server: {msg}", file=sys.stderr, flush=True)


class FileReader:
    """Reads H.264 access units from a file, forever, with continuous timestamps."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.pipeline = Gst.parse_launch(READER_LAUNCH)
        self.pipeline.get_by_name("file").set_property("location", path)
        self.sink = self.pipeline.get_by_name("sink")
        self.offset = 0  # ns added to file timestamps (grows by one duration per loop)
        self.first_ts: int | None = None
        self.pass_start: int | None = None  # min pts of the current pass (re-based)
        self.pass_end = 0  # max pts + duration of the current pass (re-based)
        if self.pipeline.set_state(Gst.State.PLAYING) == Gst.StateChangeReturn.FAILURE:
            raise RuntimeError(f"cannot play {path}")

    def _pull(self) -> Gst.Sample | None:
        sample = self.sink.emit("try-pull-sample", 5 * Gst.SECOND)
        if sample is None:
            msg = self.pipeline.get_bus().pop_filtered(Gst.MessageType.ERROR)
            if msg is not None:
                err, dbg = msg.parse_error()
                raise RuntimeError(f"{self.path}: {err.message} ({dbg})")
        return sample

    def next(self) -> tuple[Gst.Buffer, Gst.Caps, int, int, int]:
        """Return ``(buffer, caps, pts, dts, duration)``, time re-based to start at 0.

        The sample is not kept: appsink recycles samples and complains about held ones.
        """
        sample = self._pull()
        if sample is None:
            if not self.sink.get_property("eos") or self.first_ts is None:
                raise RuntimeError(f"{self.path}: no H.264 video (or read stalled)")
            self.offset += self.pass_end - (self.pass_start or 0)
            self.pass_start, self.pass_end = None, 0
            self.pipeline.seek_simple(
                Gst.Format.TIME, Gst.SeekFlags.FLUSH | Gst.SeekFlags.KEY_UNIT, 0
            )
            sample = self._pull()
            if sample is None:
                raise RuntimeError(f"{self.path}: cannot loop")
        buf, caps = sample.get_buffer(), sample.get_caps()
        del sample
        pts = buf.pts if buf.pts != Gst.CLOCK_TIME_NONE else buf.dts
        dts = buf.dts if buf.dts != Gst.CLOCK_TIME_NONE else pts
        dur = buf.duration if buf.duration != Gst.CLOCK_TIME_NONE else 40 * Gst.MSECOND
        if self.first_ts is None:
            self.first_ts = min(pts, dts)
        pts -= self.first_ts
        dts -= self.first_ts
        self.pass_end = max(self.pass_end, pts + dur)
        self.pass_start = pts if self.pass_start is None else min(self.pass_start, pts)
        return buf, caps, self.offset + pts, self.offset + dts, dur

    def rewind(self) -> None:
        """Start over from the beginning of the file with timestamps from 0."""
        self.offset, self.first_ts, self.pass_start, self.pass_end = 0, None, None, 0
        self.pipeline.seek_simple(Gst.Format.TIME, Gst.SeekFlags.FLUSH, 0)

    def close(self) -> None:
        self.pipeline.set_state(Gst.State.NULL)


def probe_file(path: str) -> str:
    """Check that ``path`` has H.264 video; return its caps as a string."""
    reader = FileReader(path)
    try:
        return str(reader.next()[1].to_string())
    finally:
        reader.close()


class Feeder:
    """Feeds one media's appsrc from a looping :class:`FileReader` at real-time pace."""

    def __init__(self, path: str, appsrc: Gst.Element) -> None:
        self.path = path
        self.appsrc = appsrc
        self.running = threading.Event()  # set by the first need-data (pipeline PLAYING)
        self.stopped = threading.Event()
        appsrc.connect("need-data", lambda *_: self.running.set())
        self.thread = threading.Thread(target=self._run, name=f"feeder:{path}", daemon=True)
        self.reader = FileReader(path)
        caps = self.reader.next()[1]  # first unit, to set caps before preroll
        appsrc.set_property("caps", caps)
        self.thread.start()

    def stop(self) -> None:
        self.stopped.set()

    def _running_time(self) -> int:
        clock = self.appsrc.get_clock()
        if clock is None:
            return 0
        return int(clock.get_time() - self.appsrc.get_base_time())

    def _run(self) -> None:
        try:
            self._loop()
        except Exception as exc:  # keep the server alive; the mount's clients will see EOF
            log(f"feeder {self.path} failed: {exc}")
            self.appsrc.emit("end-of-stream")
        finally:
            self.reader.close()

    def _loop(self) -> None:
        # wait for the media pipeline to run (live appsrc only pulls in PLAYING)
        while not self.running.wait(0.1):
            if self.stopped.is_set():
                return
        base = self._running_time()
        start = time.monotonic()
        self.reader.rewind()
        while not self.stopped.is_set():
            src, _, pts, dts, dur = self.reader.next()
            due = start + dts / Gst.SECOND - PUSH_LEAD_S
            delay = due - time.monotonic()
            if delay > 0 and self.stopped.wait(delay):
                return
            buf = src.copy()
            del src
            buf.pts = base + pts
            buf.dts = base + dts
            buf.duration = dur
            ret = self.appsrc.emit("push-buffer", buf)
            if ret not in (Gst.FlowReturn.OK, Gst.FlowReturn.FLUSHING):
                log(f"push-buffer {self.path}: {ret.value_nick}")
                return


class FileFactory(GstRtspServer.RTSPMediaFactory):
    """Shared media factory: appsrc fed by a :class:`Feeder` looping one file."""

    def __init__(self, path: str) -> None:
        super().__init__()
        self.path = path
        self.set_launch(FILE_LAUNCH)
        self.set_shared(True)
        self.connect("media-configure", self._on_configure)

    def _on_configure(self, _factory: GstRtspServer.RTSPMediaFactory, media) -> None:
        appsrc = media.get_element().get_by_name("src")
        feeder = Feeder(self.path, appsrc)
        media.connect("unprepared", lambda *_: feeder.stop())


def pattern_launch(name: str, args: argparse.Namespace) -> str:
    """Launch line for a live test pattern encoded with x264."""
    width, height = (int(v) for v in args.size.lower().split("x"))
    name = name or "smpte"
    overlay = ""
    if Gst.ElementFactory.find("timeoverlay") is not None:
        overlay = 'timeoverlay font-desc="Sans 36" ! '
    return (
        f"( videotestsrc is-live=true pattern={name} horizontal-speed=4 ! "
        f"video/x-raw,format=I420,width={width},height={height},framerate={args.fps}/1 ! "
        f"{overlay}x264enc tune=zerolatency speed-preset={args.preset} key-int-max={args.gop} "
        f"bitrate={args.bitrate} ! video/x-h264,profile={args.profile} ! "
        "h264parse config-interval=-1 ! rtph264pay name=pay0 pt=96 )"
    )


def parse_args(argv: list[str]) -> argparse.Namespace:
    """Command line."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--port", type=int, required=True, help="TCP port (0 is not supported)")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--mount", action="append", required=True, metavar="/PATH=SOURCE")
    p.add_argument("--size", default="1280x720", help="pattern size WxH")
    p.add_argument("--fps", type=int, default=25, help="pattern frame rate")
    p.add_argument("--gop", type=int, default=50, help="pattern key-frame interval (frames)")
    p.add_argument("--bitrate", type=int, default=2048, help="pattern bitrate (kbit/s)")
    p.add_argument("--preset", default="ultrafast", help="pattern x264 speed-preset")
    p.add_argument(
        "--profile", default="constrained-baseline", help="pattern H.264 profile (main: CABAC)"
    )
    return p.parse_args(argv)


def main(argv: list[str]) -> int:
    """Serve the mounts until SIGTERM/SIGINT."""
    args = parse_args(argv)
    if args.port <= 0:
        log("--port must be > 0 (gst-rtsp-server cannot report an ephemeral port)")
        return 2
    Gst.init(None)
    server = GstRtspServer.RTSPServer()
    server.set_address(args.host)
    server.set_service(str(args.port))
    mounts = server.get_mount_points()
    paths = []
    for spec in args.mount:
        path, sep, source = spec.partition("=")
        if not sep or not path.startswith("/") or not source:
            log(f"bad --mount {spec!r}: expected /path=FILE or /path=pattern:[name]")
            return 2
        if source.startswith("pattern:"):
            factory = GstRtspServer.RTSPMediaFactory()
            factory.set_launch(pattern_launch(source.partition(":")[2], args))
            factory.set_shared(True)
        elif not os.path.isfile(source):
            log(f"mount {path}: no such file {source!r}")
            return 2
        else:
            try:
                caps = probe_file(source)
            except Exception as exc:
                log(f"mount {path}: {exc}")
                return 2
            log(f"mount {path}: {source} ({caps})")
            factory = FileFactory(source)
        mounts.add_factory(path, factory)
        paths.append(path)

    loop = GLib.MainLoop()
    if server.attach(None) == 0:
        log(f"cannot listen on {args.host}:{args.port}")
        return 3
    for sig in (signal.SIGTERM, signal.SIGINT):
        GLib.unix_signal_add(GLib.PRIORITY_DEFAULT, sig, loop.quit)
    # clean up sessions of vanished clients every 2 s
    GLib.timeout_add_seconds(2, lambda: server.get_session_pool().cleanup() >= 0)
    for path in paths:
        print(f"READY rtsp://{args.host}:{args.port}{path}", flush=True)
    loop.run()
    log("stopping")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
