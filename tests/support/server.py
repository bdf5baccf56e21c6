"""What every real server the tests start has in common: a binary, a loopback port, a temp
folder with its log, start / stop / restart, and use as a context manager.

Subclasses say how to launch (:meth:`ServerProcess.start` calls :meth:`ServerProcess._launch`
with the command line and the readiness check).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Self

from hallwatch.broker import free_port


def find_binary(name: str, candidates: tuple[str, ...]) -> str | None:
    """The first executable of ``candidates``, else ``name`` on the PATH, else None."""
    for candidate in candidates:
        if os.access(candidate, os.X_OK):
            return candidate
    return shutil.which(name)


def port_open(host: str, port: int, timeout: float = 0.2) -> bool:
    """Whether something accepts TCP connections on ``host:port``."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


class ServerProcess:
    """One server process on a loopback port, with a temp folder for its files and log.

    Args:
        name: Short name, for the temp folder, the log file and error messages.
        binary: The executable.
        port: Port to listen on; None picks a free one.
    """

    host = "127.0.0.1"
    stop_timeout_s = 5.0

    def __init__(self, name: str, binary: str, port: int | None) -> None:
        self.name = name
        self.binary = binary
        self.port = port if port is not None else free_port(self.host)
        self.dir = Path(tempfile.mkdtemp(prefix=f"hallwatch-{name}-"))
        self.log_path = self.dir / f"{name}.log"
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def running(self) -> bool:
        """Whether the process is alive."""
        return self._proc is not None and self._proc.poll() is None

    def start(self) -> None:
        """Start the server and wait until it is ready (subclasses)."""
        raise NotImplementedError

    def _launch(
        self, command: list[str], ready: Callable[[], bool], timeout: float, waiting_for: str
    ) -> None:
        """Run ``command`` (output to the log) and wait until ``ready()``.

        Raises:
            RuntimeError: It exited, or was not ready within ``timeout`` (the log is in the
                message).
        """
        if self.running:
            return
        log = self.log_path.open("ab")
        try:
            self._proc = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
        finally:
            log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.running:
                raise RuntimeError(f"{self.name} exited:\n{self.log_text()}")
            if ready():
                return
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"{self.name} {waiting_for} on {self.port}:\n{self.log_text()}")

    def stop(self, timeout: float | None = None) -> None:
        """Stop the server (SIGTERM, then SIGKILL) and wait until its port closes."""
        timeout = self.stop_timeout_s if timeout is None else timeout
        proc, self._proc = self._proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.terminate()
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout)
        deadline = time.monotonic() + timeout
        while port_open(self.host, self.port) and time.monotonic() < deadline:
            time.sleep(0.05)

    def restart(self) -> None:
        """Stop and start again on the same port and folder."""
        self.stop()
        self.start()

    def log_text(self) -> str:
        """The server's log so far."""
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def cleanup(self) -> None:
        """Stop and remove the temp folder (data included)."""
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.cleanup()
