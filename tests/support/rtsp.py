"""Venv-side helper that runs ``tests/support/rtsp_server.py`` under Debian's Python.

Example::

    with RtspServer({"/cam1": str(clip)}) as server:
        url = server.url("/cam1")
        ...
        server.stop()   # drop the stream (clients see EOF)
        server.start()  # restore it on the same port
"""

from __future__ import annotations

import contextlib
import logging
import os
import selectors
import signal
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType
from typing import IO

from hallwatch.broker import free_port

logger = logging.getLogger(__name__)

SYSTEM_PYTHON = "/usr/bin/python3"
SERVER_SCRIPT = Path(__file__).with_name("rtsp_server.py")


def gst_rtsp_available() -> tuple[bool, str]:
    """Whether Debian's Python can import GStreamer's RTSP server through ``gi``.

    Returns:
        ``(ok, reason)``; ``reason`` explains a failure (for ``pytest.skip``).
    """
    if not os.access(SYSTEM_PYTHON, os.X_OK):
        return False, f"{SYSTEM_PYTHON} not found"
    code = (
        "import gi; gi.require_version('Gst', '1.0'); "
        "gi.require_version('GstRtspServer', '1.0'); "
        "from gi.repository import Gst, GstRtspServer"
    )
    try:
        proc = subprocess.run(
            [SYSTEM_PYTHON, "-c", code], capture_output=True, text=True, timeout=30, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return False, f"{SYSTEM_PYTHON} failed: {exc}"
    if proc.returncode != 0:
        last = (proc.stderr.strip().splitlines() or ["?"])[-1]
        return False, f"{SYSTEM_PYTHON} cannot import gi GstRtspServer: {last}"
    return True, ""


class RtspServer:
    """A loopback RTSP server process serving files or test patterns.

    Args:
        mounts: Mount path (``"/cam1"``) to source: an H.264 video file (looped forever)
            or ``"pattern:"`` / ``"pattern:ball"`` (live x264-encoded test pattern).
        port: TCP port; a free one is picked when ``None``.
        extra_args: Extra server arguments, e.g. ``["--size", "1280x720", "--gop", "50"]``.
        ready_timeout_s: How long :meth:`start` waits for the server's ``READY`` lines.
    """

    def __init__(
        self,
        mounts: dict[str, str],
        port: int | None = None,
        *,
        extra_args: list[str] | None = None,
        ready_timeout_s: float = 20.0,
    ) -> None:
        if not mounts:
            raise ValueError("at least one mount is needed")
        self.mounts = {(m if m.startswith("/") else "/" + m): src for m, src in mounts.items()}
        self.port = port if port is not None else free_port()
        self.extra_args = list(extra_args or [])
        self.ready_timeout_s = ready_timeout_s
        self._proc: subprocess.Popen[bytes] | None = None
        self._stderr_file: IO[str] | None = None

    def url(self, mount: str) -> str:
        """RTSP URL of ``mount`` (leading ``/`` optional)."""
        mount = mount if mount.startswith("/") else "/" + mount
        if mount not in self.mounts:
            raise KeyError(f"no mount {mount!r}; have {sorted(self.mounts)}")
        return f"rtsp://127.0.0.1:{self.port}{mount}"

    @property
    def running(self) -> bool:
        """Whether the server process is alive."""
        return self._proc is not None and self._proc.poll() is None

    @property
    def pid(self) -> int | None:
        """Process id of the server, if started."""
        return self._proc.pid if self._proc is not None else None

    def start(self) -> RtspServer:
        """Start the server (again) on :attr:`port` and wait until it serves.

        Returns:
            ``self``.

        Raises:
            RuntimeError: The server exited or did not print ``READY`` in time; the message
                includes its stderr.
        """
        if self.running:
            return self
        cmd = [SYSTEM_PYTHON, "-u", str(SERVER_SCRIPT), "--port", str(self.port)]
        for mount, src in self.mounts.items():
            cmd += ["--mount", f"{mount}={src}"]
        cmd += self.extra_args
        # a port just released by a previous run can be briefly unavailable: retry
        deadline = time.monotonic() + self.ready_timeout_s
        while True:
            error = self._start_once(cmd, deadline)
            if error is None:
                return self
            if "cannot listen" not in error or time.monotonic() > deadline:
                raise RuntimeError(error)
            time.sleep(0.2)

    def _start_once(self, cmd: list[str], deadline: float) -> str | None:
        logger.debug("starting %s", " ".join(cmd))
        # stderr goes to a file, never a pipe: a chatty server must not block on it
        self._close_stderr()
        # outlives this method; closed by _close_stderr()
        self._stderr_file = tempfile.TemporaryFile(mode="w+", prefix="rtsp_server_")  # noqa: SIM115
        proc = subprocess.Popen(
            cmd,
            stdout=subprocess.PIPE,
            stderr=self._stderr_file,
            start_new_session=True,
        )
        self._proc = proc
        assert proc.stdout is not None
        waiting = {self.url(m) for m in self.mounts}
        fd = proc.stdout.fileno()
        pending = b""
        sel = selectors.DefaultSelector()
        sel.register(fd, selectors.EVENT_READ)
        try:
            while waiting:
                left = deadline - time.monotonic()
                if left <= 0 or not sel.select(timeout=left):
                    self._kill()
                    return f"RTSP server not ready after {self.ready_timeout_s} s: {self._stderr()}"
                chunk = os.read(fd, 4096)  # raw read: a buffered readline would hide lines
                if not chunk:  # EOF: the server exited
                    proc.wait(timeout=5)
                    return f"RTSP server exited with {proc.returncode}: {self._stderr()}"
                pending += chunk
                *lines, pending = pending.split(b"\n")
                for line in lines:
                    if line.startswith(b"READY "):
                        waiting.discard(line.split()[1].decode())
        finally:
            sel.close()
        return None

    def stderr_text(self) -> str:
        """What the server (last started) wrote to stderr so far."""
        f = self._stderr_file
        if f is None:
            return ""
        with contextlib.suppress(Exception):
            f.flush()
            f.seek(0)
            return f.read()
        return "(stderr unreadable)"

    def _stderr(self) -> str:
        return self.stderr_text().strip() or "(no stderr)"

    def _close_stderr(self) -> None:
        if self._stderr_file is not None:
            self._stderr_file.close()
            self._stderr_file = None

    def _kill(self) -> None:
        proc = self._proc
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait(timeout=5)

    def stop(self, timeout_s: float = 5.0) -> None:
        """Stop the server: SIGTERM, then SIGKILL after ``timeout_s``. Idempotent."""
        proc = self._proc
        if proc is None:
            return
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                logger.warning("RTSP server %d ignored SIGTERM; killing", proc.pid)
                self._kill()
        if proc.stdout is not None:
            proc.stdout.close()
        self._proc = None

    def __enter__(self) -> RtspServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def __del__(self) -> None:
        with contextlib.suppress(Exception):
            self._kill()
            self._close_stderr()
