"""The ``zones`` section: hygiene, counting and entrance lines, with clear errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from hallwatch.config import ConfigError, HallConfig, ZoneKind, load_hall_config_from_string
from tests.test_config import BASE as CONFIG_BASE

# cam2 sees the entrance: a camera counting crossings looks at least every 0.5 s
BASE = CONFIG_BASE.replace("    height: 720\n", "    height: 720\n    look_interval_s: 0.4\n", 1)
ENV = {"CAM1_USER": "admin", "CAM1_PASSWORD": "s3cret"}
OFFSET = BASE.count("\n")  # line k of ZONES is line OFFSET + k of the file

ZONES = """\
zones:
  - id: w1-public
    name: 1号窗口公共区域
    kind: window_public
    camera: cam1
    window: 1
    polygon: [[100, 700], [500, 700], [500, 1000], [100, 1000]]
  - id: waiting
    name: 候办区
    kind: waiting_area
    camera: cam2
    polygon: [[0, 300], [900, 300], [900, 720], [0, 720]]
    crowding_at: 30
  - id: door
    name: 东门
    kind: entrance
    camera: cam2
    polygon: [[900, 100], [1280, 100], [1280, 720], [900, 720]]
    line:
      points: [[1100, 100], [1100, 720]]
      inside: left
environment:
  occupancy_interval_s: 30
  reference_dir: /tmp/hw-{hall}
"""


def load(text: str) -> HallConfig:
    return load_hall_config_from_string(text, "hall.yaml", env=ENV)


def issues_of(text: str) -> list[tuple[int, str, str]]:
    with pytest.raises(ConfigError) as info:
        load(text)
    return [(i.line, i.field_path, i.message) for i in info.value.issues]


def edit(old: str, new: str) -> str:
    lines = ZONES.splitlines()
    assert lines.count(old) == 1, old
    return BASE + "\n".join(new if ln == old else ln for ln in lines) + "\n"


def test_a_line_needs_a_camera_that_looks_often() -> None:
    slow = (BASE + ZONES).replace("    look_interval_s: 0.4\n", "    look_interval_s: 2\n", 1)
    (issue,) = issues_of(slow)
    assert issue[1:] == (
        "zones[2].line",
        "counting crossings needs a look at least every 0.5 s; camera 'cam2' looks every 2 s "
        "(cameras[].look_interval_s)",
    )


def test_zones_load_with_kind_defaults() -> None:
    config = load(BASE + ZONES)
    public, waiting, door = config.zones
    assert public.kind is ZoneKind.WINDOW_PUBLIC and public.window == "1"
    assert (public.grades_hygiene, public.counts_people) == (True, False)
    assert (waiting.grades_hygiene, waiting.counts_people, waiting.crowding_at) == (
        False, True, 30,
    )  # fmt: skip
    assert door.line is not None and door.line.inside == "left" and door.counts_people
    assert [z.id for z in config.zones_for_camera("cam2")] == ["waiting", "door"]
    assert config.zone("door") is door
    assert config.environment.occupancy_interval_s == 30
    assert config.environment.reference_dir == Path("/tmp/hw-test-hall")
    assert config.evidence.enabled and not config.evidence.show_clerks


@pytest.mark.parametrize(
    ("old", "new", "line", "path", "fragment"),
    [
        # a zone polygon outside the image
        ("    polygon: [[100, 700], [500, 700], [500, 1000], [100, 1000]]",
         "    polygon: [[100, 700], [500, 700], [500, 1100], [100, 1000]]", 7,
         "zones[0].polygon[2]", "point [500, 1100] is outside the 1920x1080 image of camera "
         "'cam1'"),
        ("      points: [[1100, 100], [1100, 720]]", "      points: [[1100, 100], [1300, 720]]",
         20, "zones[2].line.points[1]", "outside the 1280x720 image of camera 'cam2'"),
        ("    camera: cam2", None, 0, "", ""),  # placeholder replaced below
        ("    crowding_at: 30", "    crowding_at: 30\n    count_people: false", 8, "zones[1]",
         "crowding_at needs count_people: true"),
        ("    polygon: [[0, 300], [900, 300], [900, 720], [0, 720]]",
         "    polygon: [[0, 0.1], [0.5, 0.2], [0.9, 0.3]]", 12, "zones[1].polygon",
         "not fractions"),
        ("    window: 1", "    window: 9", 6, "zones[0].window", "window '9' is neither"),
        ("      inside: left", "      inside: north", 21, "zones[2].line.inside", "'left'"),
        ("  - id: door", "  - id: waiting", 14, "zones[2].id", "duplicate"),
        ("      points: [[1100, 100], [1100, 720]]", "      points: [[850, 100], [850, 720]]",
         14, "zones[2]", "the line's midpoint is outside the zone's polygon"),
        ("  reference_dir: /tmp/hw-{hall}", "  count_every_s: 90\n  reference_dir: /tmp/x",
         22, "environment", "count_every_s (90) must not exceed occupancy_interval_s (30)"),
        ("    kind: entrance", "    kind: entrance\n    reference_image: clean.png", 14,
         "zones[2]", "need hygiene: true"),
    ],
    ids=[
        "polygon-outside-image", "line-outside-image", "unknown-camera", "crowding-uncounted",
        "fractions", "unknown-window", "bad-inside", "duplicate-id", "line-outside-zone",
        "count-rarer-than-interval", "reference-without-hygiene",
    ],
)  # fmt: skip
def test_zone_errors_name_line_and_field(
    old: str, new: str | None, line: int, path: str, fragment: str
) -> None:
    if new is None:  # the unknown camera: only the first zone's camera line is unique
        text = BASE + ZONES.replace("    camera: cam1", "    camera: cam9", 1)
        line, path, fragment = 5, "zones[0].camera", "camera 'cam9' is not defined"
    else:
        text = edit(old, new)
    found = issues_of(text)
    assert any(ln == OFFSET + line and p == path and fragment in msg for ln, p, msg in found), found
