"""Real RTSP on loopback: readers, drops, reconnects, and camera isolation."""

from __future__ import annotations

import logging
import queue
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from edge.sources import CameraWatchdog, open_source
from tests.support.rtsp import RtspServer, gst_rtsp_available
from tests.support.video import make_test_video

pytestmark = pytest.mark.integration

STALE_S = 2.0
Event = tuple[str, bool, str]


@pytest.fixture(scope="module", autouse=True)
def _need_gst_rtsp() -> None:
    ok, reason = gst_rtsp_available()
    if not ok:
        pytest.skip(f"loopback RTSP server unavailable: {reason}")


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """4 s at 25 fps with a key frame every second (the server loops it)."""
    path = tmp_path_factory.mktemp("rtsp") / "clip.mp4"
    return make_test_video(path, 4, size=(320, 180), gop=25)


@pytest.fixture
def servers(clip: Path) -> Iterator[tuple[RtspServer, RtspServer]]:
    one = RtspServer({"/cam1": str(clip)})
    two = RtspServer({"/cam2": str(clip)})
    with one, two:
        yield one, two


def fast_watchdog(camera: str, url: str, events: queue.Queue[Event]) -> CameraWatchdog:
    """A watchdog with test-sized timeouts (stale 2 s, backoff 0.2 s doubling to 1 s)."""
    return CameraWatchdog(
        camera,
        url,
        lambda *e: events.put(e),
        stale_after_s=STALE_S,
        initial_backoff_s=0.2,
        max_backoff_s=1.0,
    )


def next_event(events: queue.Queue[Event], timeout: float) -> Event:
    try:
        return events.get(timeout=timeout)
    except queue.Empty:
        pytest.fail(f"no status event within {timeout} s")


def test_reader_gets_frames_and_ends_when_server_drops(
    servers: tuple[RtspServer, RtspServer],
) -> None:
    one, _ = servers
    reader = open_source(one.url("cam1"), "cam1", keyframes_only=True)
    try:
        first = reader.wait_next(None, timeout=8)
        assert first is not None and first.image.shape == (180, 320, 3)
        second = reader.wait_next(first.pts, timeout=3)
        assert second is not None and second.pts == pytest.approx(first.pts + 1.0, abs=0.15)
        one.stop()
        deadline = time.monotonic() + 5
        while not reader.ended and time.monotonic() < deadline:
            time.sleep(0.05)
        assert reader.ended, "a dropped server must end the reader"
    finally:
        reader.close()


def test_mount_is_shared_between_clients(servers: tuple[RtspServer, RtspServer]) -> None:
    one, _ = servers
    a = open_source(one.url("cam1"), "a", keyframes_only=False)
    b = open_source(one.url("cam1"), "b", keyframes_only=False)
    try:
        fa, fb = a.wait_next(None, timeout=8), b.wait_next(None, timeout=8)
        assert fa is not None and fb is not None
        assert a.wait_next(fa.pts, timeout=2) is not None
        assert b.wait_next(fb.pts, timeout=2) is not None
    finally:
        a.close()
        b.close()


def test_watchdog_drop_reconnect_and_isolation(
    servers: tuple[RtspServer, RtspServer], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="edge.sources")
    one, two = servers
    events: queue.Queue[Event] = queue.Queue()
    secret_url = one.url("cam1").replace("rtsp://", "rtsp://admin:s3cret@")
    w1 = fast_watchdog("cam1", secret_url, events)
    w2 = fast_watchdog("cam2", two.url("cam2"), events)
    try:
        got = {next_event(events, 10)[:2], next_event(events, 10)[:2]}
        assert got == {("cam1", True), ("cam2", True)}
        before = w1.wait_next(None, timeout=3)
        assert before is not None

        one.stop()
        dropped = time.monotonic()
        cam, online, reason = next_event(events, STALE_S + 3)
        assert (cam, online) == ("cam1", False)
        assert time.monotonic() - dropped <= STALE_S + 2.5
        assert "s3cret" not in reason
        assert not w1.online and w2.online

        # cam2 keeps delivering new frames while cam1 is down
        latest = w2.latest()
        pts = latest.pts if latest is not None else None
        for _ in range(2):
            frame = w2.wait_next(pts, timeout=3)
            assert frame is not None
            pts = frame.pts

        one.start()  # same port
        cam, online, _ = next_event(events, 10)
        assert (cam, online) == ("cam1", True)
        after = w1.wait_next(before.pts, timeout=3)
        assert after is not None and after.pts > before.pts  # pts continue across reconnects
        assert w1.reconnects >= 1
    finally:
        w1.stop()
        w2.stop()
    assert events.empty(), "status must not flap"
    assert "s3cret" not in caplog.text
    assert "admin:***@" in caplog.text
