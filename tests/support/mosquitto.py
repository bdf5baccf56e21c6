"""A real Mosquitto broker for integration tests, on a loopback port.

Example:
    >>> with Mosquitto() as broker:  # doctest: +SKIP
    ...     print(broker.port)
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType

from hallwatch.broker import free_port

MOSQUITTO_CANDIDATES = ("/usr/sbin/mosquitto", "/usr/local/sbin/mosquitto")


def find_binary(name: str, candidates: tuple[str, ...]) -> str | None:
    """The first executable of ``candidates``, else ``name`` on the PATH, else None."""
    for candidate in candidates:
        if os.access(candidate, os.X_OK):
            return candidate
    return shutil.which(name)


def stop_server(proc: subprocess.Popen[bytes] | None, host: str, port: int, timeout: float) -> None:
    """Stop a test server process (SIGTERM, then SIGKILL) and wait until its port closes."""
    if proc is None or proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout)
    deadline = time.monotonic() + timeout
    while port_open(host, port) and time.monotonic() < deadline:
        time.sleep(0.05)


def find_mosquitto() -> str | None:
    """Path of the mosquitto binary, or None if it is not installed."""
    return find_binary("mosquitto", MOSQUITTO_CANDIDATES)


def port_open(host: str, port: int, timeout: float = 0.2) -> bool:
    """Whether something accepts TCP connections on ``host:port``."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


class Mosquitto:
    """One mosquitto process with a generated config; restartable on the same port.

    Args:
        port: Port to listen on (loopback only); None picks a free one.
        persistence: Keep sessions and queued messages across restarts (on disk in the
            broker's temp folder).
        binary: mosquitto executable (default: found on the system).
    """

    host = "127.0.0.1"

    def __init__(
        self, port: int | None = None, *, persistence: bool = False, binary: str | None = None
    ) -> None:
        found = binary or find_mosquitto()
        if found is None:
            raise FileNotFoundError("mosquitto is not installed")
        self.binary = found
        self.port = port if port is not None else free_port(self.host)
        self.persistence = persistence
        self.dir = Path(tempfile.mkdtemp(prefix="hallwatch-mosquitto-"))
        self.log_path = self.dir / "mosquitto.log"
        self._proc: subprocess.Popen[bytes] | None = None

    def _write_config(self) -> Path:
        lines = [
            f"listener {self.port} {self.host}",
            "allow_anonymous true",
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
        conf = self.dir / "mosquitto.conf"
        conf.write_text("\n".join(lines) + "\n")
        return conf

    @property
    def running(self) -> bool:
        """Whether the process is alive."""
        return self._proc is not None and self._proc.poll() is None

    def start(self, timeout: float = 10.0) -> None:
        """Start the broker and wait until its port accepts connections.

        Raises:
            RuntimeError: It exited or did not listen in time (its log is in the message).
        """
        if self.running:
            return
        conf = self._write_config()
        log = self.log_path.open("ab")
        try:
            self._proc = subprocess.Popen(
                [self.binary, "-c", str(conf)], stdout=log, stderr=subprocess.STDOUT
            )
        finally:
            log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.running:
                raise RuntimeError(f"mosquitto exited:\n{self.log_text()}")
            if port_open(self.host, self.port):
                return
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"mosquitto did not listen on {self.port}:\n{self.log_text()}")

    def stop(self, timeout: float = 5.0) -> None:
        """Stop the broker (SIGTERM, then SIGKILL)."""
        proc, self._proc = self._proc, None
        stop_server(proc, self.host, self.port, timeout)

    def restart(self) -> None:
        """Stop and start again on the same port."""
        self.stop()
        self.start()

    def log_text(self) -> str:
        """The broker's log so far."""
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def cleanup(self) -> None:
        """Stop and remove the temp folder."""
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self) -> Mosquitto:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.cleanup()
