"""The demo hall's environment: litter on window 1's counter, the lobby camera (a waiting
area whose crowd changes, an entrance people walk through) and the devices that go silent.

The lobby is checked with the real person detector: over a few looks in each scripted
phase, the median count in each zone must be the script's."""

from __future__ import annotations

import dataclasses
import itertools
import statistics
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import pytest

from hallwatch.config.devices import DeviceConfig
from hallwatch.demo.devices_sim import (
    DEMO_DEVICES,
    demo_devices,
    expected_device_offline,
    heartbeat_schedule,
)
from hallwatch.demo.hall import hall_layout
from hallwatch.demo.litter import Litter, coffee_cup, crumpled_leaflet
from hallwatch.demo.lobby import (
    LobbyScript,
    default_lobby_script,
    expected_crowding,
    expected_flow,
    expected_occupancy_peaks,
    line_crossing_s,
    lobby_zones,
    people_in_zone,
    render_lobby,
    walker_x,
    write_lobby_video,
)
from hallwatch.demo.scene import (
    DemoScript,
    default_script,
    expected_hygiene,
    public_area_polygon,
    render_frame,
)

ROOT = Path(__file__).resolve().parents[1]
MODEL = ROOT / "models" / "ssdlite_mobilenet_v2_person.onnx"


@pytest.fixture(scope="module")
def hall() -> DemoScript:
    return default_script()


@pytest.fixture(scope="module")
def lobby() -> LobbyScript:
    return default_lobby_script()


def _polygon_mask(polygon: list[tuple[int, int]] | list[list[int]]) -> np.ndarray:
    mask = np.zeros((720, 1280), np.uint8)
    cv2.fillPoly(mask, [np.asarray(polygon, np.int32)], 1)
    return mask.astype(bool)


# --- litter -------------------------------------------------------------------------------


def test_default_script_leaves_litter_on_window_1(hall: DemoScript) -> None:
    assert hall.litter == [Litter("w1", 8.0, 45.0)]
    assert not hall.litter[0].present(7.9) and hall.litter[0].present(8.0)
    assert hall.litter[0].present(44.9) and not hall.litter[0].present(45.0)
    for item in (coffee_cup(), crumpled_leaflet()):
        assert item.rgb.dtype == np.uint8 and item.alpha.dtype == np.float32
        assert item.alpha.shape[:2] == item.rgb.shape[:2]
        assert 0.4 < float(item.alpha.mean()) < 0.95  # a cut-out, not a rectangle or nothing


@pytest.mark.parametrize(
    ("t", "present"), [(5.0, False), (8.0, True), (20.0, True), (44.8, True), (45.0, False)]
)
def test_litter_only_inside_window_1_public_area(hall: DemoScript, t: float, present: bool) -> None:
    clean = render_frame(dataclasses.replace(hall, litter=[]), t).astype(np.int16)
    frame = render_frame(hall, t).astype(np.int16)
    changed = np.abs(frame - clean).max(axis=2) > 30
    zone = _polygon_mask(public_area_polygon(hall_layout(4), 0))
    assert not changed[~zone].any(), "litter drawn outside window 1's public area"
    fraction = float(changed[zone].mean())
    if present:
        assert fraction > 0.06, fraction  # well over a 0.03 hygiene threshold
    else:
        assert fraction == 0.0


def test_public_areas_are_the_counter_fronts(hall: DemoScript) -> None:
    layout = hall_layout(4)
    areas = [public_area_polygon(layout, i) for i in range(4)]
    for area, post in zip(areas, hall.posts, strict=True):
        ys = [y for _, y in area]
        assert min(ys) > max(y for _, y in post.polygon)  # below the clerk's seat area
        assert max(ys) < 720
    xs = [(min(x for x, _ in a), max(x for x, _ in a)) for a in areas]
    assert all(right < left for (_, right), (left, _) in itertools.pairwise(xs))


def test_expected_hygiene_table(hall: DemoScript) -> None:
    got = expected_hygiene(hall, 57.0, bad_after_s=10.0, good_after_s=5.0, look_s=1.0)
    assert [(e["zone"], e["window"], e["since_s"], e["bad_s"], e["good_s"]) for e in got] == [
        ("w1-public", "1", 8.0, 18.0, 50.0)
    ]
    assert got[0]["tolerance_s"] == pytest.approx(3.0)
    assert expected_hygiene(hall, 40.0, 10.0, 5.0, 1.0)[0]["good_s"] is None
    assert expected_hygiene(hall, 17.0, 10.0, 5.0, 1.0) == []  # not yet
    assert expected_hygiene(hall, 120.0, 40.0, 5.0, 1.0) == []  # 37 s is too short for 40
    two_loops = expected_hygiene(hall, 240.0, 10.0, 5.0, 1.0)
    assert [e["bad_s"] for e in two_loops] == [18.0, 138.0]


# --- the lobby ----------------------------------------------------------------------------


def test_lobby_renders_deterministic_frames(lobby: LobbyScript) -> None:
    a, b = render_lobby(lobby, 23.4), render_lobby(lobby, 23.4)
    assert a.shape == (720, 1280, 3) and a.dtype == np.uint8
    assert np.array_equal(a, b)
    assert not np.array_equal(a, render_lobby(lobby, 23.6))
    # The loop is continuous: one frame apart across the loop point, only sway and noise.
    start = render_lobby(lobby, 0.0).astype(np.int16)
    end = render_lobby(lobby, lobby.duration_s - 1.0 / lobby.fps).astype(np.int16)
    assert float((np.abs(start - end) > 25).mean()) < 0.01


def test_lobby_zones(lobby: LobbyScript) -> None:
    zones = lobby_zones(lobby)
    assert zones["waiting"]["kind"] == "waiting_area" and zones["waiting"]["crowding_at"] == 6
    assert zones["entrance"]["kind"] == "entrance"
    for zone in zones.values():
        assert zone["camera"] == "lobby-cam" and zone["count_people"] is True
        pts = np.asarray(zone["polygon"])
        assert pts.shape == (4, 2) and pts.min() >= 0
        assert pts[:, 0].max() < 1280 and pts[:, 1].max() < 720
    waiting, entrance = (
        np.asarray(zones["waiting"]["polygon"]),
        np.asarray(zones["entrance"]["polygon"]),
    )
    assert waiting[:, 0].max() < entrance[:, 0].min()  # side by side, no overlap
    line = zones["entrance"]["line"]
    assert isinstance(line, dict) and line["inside"] == "left"
    (x1, y1), (x2, y2) = line["points"]
    assert x1 == x2 and y1 > y2  # vertical, drawn upwards: its left is the image's left
    assert entrance[:, 0].min() < x1 < entrance[:, 0].max()


def test_lobby_timeline(lobby: LobbyScript) -> None:
    counts = {t: people_in_zone(lobby, "waiting", t) for t in (0.0, 5.0, 20.0, 35.0, 45.0)}
    assert counts == {0.0: 2, 5.0: 2, 20.0: 7, 35.0: 7, 45.0: 3}
    assert people_in_zone(lobby, "waiting", 59.9) == 2
    # One walker at a time; each takes at least 3 s to cross the entrance zone.
    times = np.arange(0.0, lobby.duration_s, 0.1)
    assert max(sum(walker_x(w, float(t)) is not None for w in lobby.walkers) for t in times) == 1
    entrance = np.asarray(lobby_zones(lobby)["entrance"]["polygon"])
    width = float(entrance[:, 0].max() - entrance[:, 0].min())
    assert all(width / w.speed_px_s >= 3.0 for w in lobby.walkers)
    crossings = sorted(line_crossing_s(w) for w in lobby.walkers)
    assert crossings[-1] < 52.0 and min(np.diff(crossings)) > 4.0


def test_expected_lobby_tables(lobby: LobbyScript) -> None:
    assert expected_occupancy_peaks(lobby, 57.0) == {"waiting": 7, "entrance": 1}
    assert expected_occupancy_peaks(lobby, 8.0) == {"waiting": 2, "entrance": 1}
    assert expected_flow(lobby, 57.0) == {"in": 6, "out": 3}
    assert expected_flow(lobby, 10.0) == {"in": 2, "out": 0}
    assert expected_flow(lobby, 120.0) == {"in": 12, "out": 6}
    crowding = expected_crowding(lobby, 57.0, interval_s=5.0, crowding_at=6)
    times = [(e["start_s"], e["opens_s"], e["end_s"], e["closes_s"]) for e in crowding]
    assert times == [(10.0, 15.0, 40.0, 45.0)]
    assert crowding[0]["count"] == 7
    assert crowding[0]["tolerance_s"] == pytest.approx(6.0)
    assert expected_crowding(lobby, 30.0, 5.0, 6)[0]["end_s"] is None
    assert expected_crowding(lobby, 57.0, 5.0, 8) == []


def test_write_lobby_video_caches(tmp_path: Path, lobby: LobbyScript) -> None:
    av = pytest.importorskip("av")
    short = dataclasses.replace(lobby, duration_s=2.0)
    path = write_lobby_video(tmp_path / "lobby.mp4", short)
    with av.open(str(path)) as container:
        frames = list(container.decode(video=0))
    assert len(frames) == 10 and [i for i, f in enumerate(frames) if f.key_frame] == [0, 2, 4, 6, 8]
    mtime = path.stat().st_mtime_ns
    write_lobby_video(path, short)
    assert path.stat().st_mtime_ns == mtime


# --- the real detector on the lobby -------------------------------------------------------


@pytest.fixture(scope="module")
def count_people() -> Callable[[np.ndarray], int]:
    """People the real detector finds in an RGB crop (score ≥ 0.5, the edge's default)."""
    if not MODEL.exists():
        pytest.skip(f"person model {MODEL} not built yet (models/build_person_detector.sh)")
    from edge.detectors import create_detector

    detector = create_detector("ssdlite_person", threads=1, score_threshold=0.5)
    return lambda crop: len(detector.detect(np.ascontiguousarray(crop)))


def _zone_crop(lobby: LobbyScript, frame: np.ndarray, zone: str) -> np.ndarray:
    from edge.regions.post_region import PostRegion

    polygon = lobby_zones(lobby)[zone]["polygon"]
    assert isinstance(polygon, list)
    return PostRegion(zone, [tuple(p) for p in polygon], lobby.size).crop(frame)


def test_real_detector_counts_what_the_script_says(
    lobby: LobbyScript, count_people: Callable[[np.ndarray], int]
) -> None:
    """Five looks 0.5 s apart in each steady phase: the waiting crowd of 2, 7 and 3; the
    first walker in and the first out, around their line crossing; the empty entrance."""
    first_in = next(w for w in lobby.walkers if w.direction == "in")
    first_out = next(w for w in lobby.walkers if w.direction == "out")
    phases = [
        ("waiting", 3.0, 2),
        ("waiting", 22.0, 7),
        ("waiting", 45.0, 3),
        ("entrance", line_crossing_s(first_in) - 1.0, 1),
        ("entrance", line_crossing_s(first_out) - 1.0, 1),
        ("entrance", 53.0, 0),
    ]
    results = []
    for zone, first, scripted in phases:
        looks = [first + 0.5 * j for j in range(5)]
        assert all(people_in_zone(lobby, zone, t) == scripted for t in looks), (zone, first)
        counts = [count_people(_zone_crop(lobby, render_lobby(lobby, t), zone)) for t in looks]
        results.append((zone, first, scripted, counts))
    wrong = [r for r in results if statistics.median(r[3]) != r[2]]
    assert not wrong, f"(zone, first look, scripted, counts): {wrong}"


# --- devices ------------------------------------------------------------------------------


def test_heartbeat_schedule() -> None:
    sent = heartbeat_schedule(DEMO_DEVICES, run_s=60.0)
    kiosk = [t for t, d in sent if d == "kiosk-1"]
    screen = [t for t, d in sent if d == "screen-1"]
    assert screen == [2.0 * k for k in range(31)]
    assert kiosk == [t for t in screen if not 15.0 <= t < 35.0]
    assert max(b - a for a, b in itertools.pairwise(kiosk)) == 22.0  # 14 → 36


def test_expected_device_offline_and_config() -> None:
    assert [(e["device"], e["start_s"], e["end_s"]) for e in expected_device_offline(60.0)] == [
        ("kiosk-1", 24.0, 36.0)
    ]
    assert expected_device_offline(30.0)[0]["end_s"] is None
    assert expected_device_offline(23.0) == []
    assert expected_device_offline(60.0, offline_after_s=25.0) == []  # a 22 s gap is shorter
    devices = [DeviceConfig.model_validate(d) for d in demo_devices()]
    assert [(d.id, d.kind.value) for d in devices] == [
        ("kiosk-1", "kiosk"),
        ("screen-1", "screen"),
        ("queue-machine", "queue_machine"),
    ]
    assert devices[0].probe is not None
    assert devices[0].probe.mqtt_topic == "devices/{hall}/kiosk-1/heartbeat"
    assert devices[2].probe is not None and devices[2].probe.feed is not None
