"""Frame sources on files: sampling by video time, key frames, latest-frame reader, watchdog."""

from __future__ import annotations

import itertools
import queue
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

from edge.sources import CameraWatchdog, LatestFrameReader, iter_file_frames, scrub_url
from tests.support.video import make_test_video

SIZE = (320, 180)


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """4 s, 25 fps, a key frame every second, no B-frames."""
    return make_test_video(tmp_path_factory.mktemp("v") / "clip.mp4", 4, size=SIZE, gop=25)


@pytest.fixture(scope="module")
def bclip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Same with 2 B-frames (decode order != display order)."""
    path = tmp_path_factory.mktemp("v") / "bclip.mp4"
    return make_test_video(path, 4, size=SIZE, gop=25, bframes=2)


def pts_of(frames: list) -> list[float]:
    return [round(f.pts, 3) for f in frames]


def test_file_frames_one_per_second_of_video_time(clip: Path) -> None:
    wall0 = datetime(2024, 5, 6, 9, 0, tzinfo=UTC)
    frames = list(iter_file_frames(clip, "cam7", every_s=1.0, start_wall=wall0))
    assert pts_of(frames) == [0.0, 1.0, 2.0, 3.0]
    for f in frames:
        assert f.camera == "cam7"
        assert f.image.shape == (SIZE[1], SIZE[0], 3)
        assert f.image.dtype == np.uint8
        assert f.wall == wall0 + timedelta(seconds=f.pts)


@pytest.mark.parametrize("which", ["clip", "bclip"])
def test_sampling_rate_and_pixels_match_full_decode(
    which: str, request: pytest.FixtureRequest
) -> None:
    path = request.getfixturevalue(which)
    full = {round(f.pts, 3): f.image for f in iter_file_frames(path, "c", every_s=None)}
    assert len(full) == 100  # every frame, B-frames included
    sampled = list(iter_file_frames(path, "c", every_s=0.4))
    assert pts_of(sampled) == pytest.approx([0.4 * k for k in range(10)], abs=1e-6)
    assert all(b.pts > a.pts for a, b in itertools.pairwise(sampled))
    for f in sampled:  # GOP skipping must not change what a frame looks like
        assert np.array_equal(f.image, full[round(f.pts, 3)])


def test_sampling_off_grid_period(clip: Path) -> None:
    # 0.3 s is not a multiple of the 40 ms frame period: first frame at/after each target
    got = pts_of(list(iter_file_frames(clip, "c", every_s=0.3)))
    assert got[:5] == [0.0, 0.32, 0.6, 0.92, 1.2]
    assert len(got) == 14


@pytest.mark.parametrize("which", ["clip", "bclip"])
def test_keyframes_only(which: str, request: pytest.FixtureRequest) -> None:
    path = request.getfixturevalue(which)
    assert pts_of(list(iter_file_frames(path, "c", keyframes_only=True, every_s=None))) == [
        0.0,
        1.0,
        2.0,
        3.0,
    ]
    sparse = iter_file_frames(path, "c", keyframes_only=True, every_s=2.0)
    assert pts_of(list(sparse)) == [0.0, 2.0]


def test_max_width_downscales(clip: Path) -> None:
    frame = next(iter_file_frames(clip, "c", max_width=160))
    assert frame.image.shape == (90, 160, 3)


def test_loop_keeps_pts_increasing(clip: Path) -> None:
    frames = []
    for f in iter_file_frames(clip, "c", every_s=1.0, loop=True):
        frames.append(f)
        if len(frames) == 10:
            break
    assert pts_of(frames) == [float(k) for k in range(10)]


def test_realtime_paces_by_video_time(clip: Path) -> None:
    start = time.monotonic()
    frames = []
    for f in iter_file_frames(clip, "c", every_s=0.2, realtime=True):
        frames.append(f)
        if len(frames) == 4:
            break
    assert frames[-1].pts == pytest.approx(0.6)
    assert time.monotonic() - start >= 0.55


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        (
            "rtsp://admin:12345@10.0.0.5:554/Streaming/101",
            "rtsp://admin:***@10.0.0.5:554/Streaming/101",
        ),
        ("rtsp://10.0.0.5/live", "rtsp://10.0.0.5/live"),
        ("rtsp://user@10.0.0.5/live", "rtsp://user@10.0.0.5/live"),
        ("rtsp://:pw@host/x", "rtsp://:***@host/x"),
        ("RTSPS://u:p%40ss@host/x?a=1", "RTSPS://u:***@host/x?a=1"),
        ("rtsp://admin:P@ss:w0rd@cam-3:554/ch1", "rtsp://admin:***@cam-3:554/ch1"),
        ("/data/replay/hall 3.mp4", "/data/replay/hall 3.mp4"),
        (
            "open 'rtsp://a:b@h1/x' failed, then http://c:d@h2/y",
            "open 'rtsp://a:***@h1/x' failed, then http://c:***@h2/y",
        ),
    ],
)
def test_scrub_url(url: str, expected: str) -> None:
    assert scrub_url(url) == expected


def test_latest_frame_reader_never_queues(clip: Path) -> None:
    reader = LatestFrameReader(str(clip), "c", keyframes_only=False, realtime=False, loop=False)
    first = reader.wait_next(None, timeout=10)
    assert first is not None
    deadline = time.monotonic() + 10
    while not reader.ended and time.monotonic() < deadline:
        time.sleep(0.05)  # a slow consumer
    assert reader.ended and reader.end_reason == "end of stream"
    stats = reader.stats
    assert stats.frames_decoded == stats.frames_published == 100
    assert stats.frames_overwritten > 0
    last = reader.latest()
    assert last is not None and last.pts == pytest.approx(3.96)  # the newest, not the oldest
    stats = reader.stats  # every published frame was either read once or overwritten
    assert stats.frames_consumed + stats.frames_overwritten == stats.frames_published
    assert reader.wait_next(last.pts, timeout=0.1) is None
    reader.close()


def test_reader_max_fps(clip: Path) -> None:
    with LatestFrameReader(
        str(clip), "c", keyframes_only=False, max_fps=5, realtime=False, loop=False
    ) as reader:
        deadline = time.monotonic() + 10
        while not reader.ended and time.monotonic() < deadline:
            time.sleep(0.02)
        stats = reader.stats
    assert stats.frames_published == 20
    assert stats.frames_skipped == 80


def test_reader_missing_file_ends_with_reason(tmp_path: Path) -> None:
    reader = LatestFrameReader(str(tmp_path / "nope.mp4"), "c")
    assert reader.wait_next(None, timeout=5) is None
    assert reader.ended
    assert reader.end_reason is not None and "nope.mp4" in reader.end_reason


def _collect(q: queue.Queue[tuple[str, bool, str]], seconds: float) -> list[tuple[str, bool]]:
    out = []
    deadline = time.monotonic() + seconds
    while (left := deadline - time.monotonic()) > 0:
        try:
            cam, online, _ = q.get(timeout=left)
        except queue.Empty:
            break
        out.append((cam, online))
    return out


def test_watchdog_offline_once_when_source_never_works(tmp_path: Path) -> None:
    events: queue.Queue[tuple[str, bool, str]] = queue.Queue()
    wd = CameraWatchdog(
        "dead",
        str(tmp_path / "missing.mp4"),
        lambda *e: events.put(e),
        stale_after_s=0.5,
        initial_backoff_s=0.05,
        max_backoff_s=0.1,
    )
    try:
        assert _collect(events, 2.0) == [("dead", False)]  # once, despite many retries
        assert wd.reconnects >= 3
        assert wd.state == "offline" and not wd.online
        assert wd.latest() is None
    finally:
        wd.stop()


def test_watchdog_online_once_on_file_playback(clip: Path) -> None:
    events: queue.Queue[tuple[str, bool, str]] = queue.Queue()
    wd = CameraWatchdog(
        "demo", str(clip), lambda *e: events.put(e), stale_after_s=2, keyframes_only=False
    )
    try:
        assert _collect(events, 1.5) == [("demo", True)]
        assert wd.online
        frame = wd.wait_next(None, timeout=2)
        assert frame is not None and frame.camera == "demo"
        later = wd.wait_next(frame.pts, timeout=2)
        assert later is not None and later.pts > frame.pts
    finally:
        wd.stop()
    assert events.empty()  # stopping reports nothing
