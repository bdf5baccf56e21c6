"""The ``devices`` section: every device names how it shows it is alive."""

from __future__ import annotations

import pytest

from hallwatch.config import ConfigError, HallConfig, load_hall_config_from_string
from hallwatch.contract import DeviceKind
from tests.test_config import BASE

ENV = {"CAM1_USER": "admin", "CAM1_PASSWORD": "s3cret"}
OFFSET = BASE.count("\n")  # line k of DEVICES is line OFFSET + k of the file

DEVICES = """\
devices:
  - id: kiosk-1
    name: 1号自助终端
    kind: kiosk
    probe:
      mqtt_topic: hb/{hall}/kiosk-1
  - id: screen-call
    name: 叫号屏
    kind: screen
    probe:
      http_url: http://10.0.0.20/status
      interval_s: 60
  - id: lift-1
    name: 1号电梯
    kind: lift
    probe:
      tcp: 10.0.0.30:502
    offline_after_s: 120
"""


def load(text: str) -> HallConfig:
    return load_hall_config_from_string(text, "hall.yaml", env=ENV)


def issues_of(text: str) -> list[tuple[int, str, str]]:
    with pytest.raises(ConfigError) as info:
        load(text)
    return [(i.line, i.field_path, i.message) for i in info.value.issues]


def edit(old: str, new: str) -> str:
    lines = DEVICES.splitlines()
    assert lines.count(old) == 1, old
    return BASE + "\n".join(new if ln == old else ln for ln in lines) + "\n"


def test_devices_load() -> None:
    config = load(BASE + DEVICES)
    kinds = [(d.id, d.kind) for d in config.devices]
    assert kinds == [
        ("kiosk-1", DeviceKind.KIOSK), ("screen-call", DeviceKind.SCREEN),
        ("lift-1", DeviceKind.LIFT),
    ]  # fmt: skip
    kiosk, screen, lift = config.devices
    assert kiosk.probe is not None and kiosk.probe.mqtt_topic == "hb/test-hall/kiosk-1"
    assert screen.probe is not None and screen.probe.interval_s == 60
    assert lift.offline_after_s == 120 and kiosk.offline_after_s == 300


@pytest.mark.parametrize(
    ("old", "new", "line", "path", "fragment"),
    [
        # a device without a probe
        ("    probe:\n      mqtt_topic: hb/{hall}/kiosk-1", None, 2, "devices[0]",
         "device 'kiosk-1' has no probe"),
        ("      http_url: http://10.0.0.20/status",
         "      http_url: http://10.0.0.20/status\n      tcp: 10.0.0.20:80", 10,
         "devices[1].probe", "or feed (got http_url, tcp)"),
        ("    kind: lift", "    kind: camera", 15, "devices[2].kind", "listed under cameras"),
        ("  - id: lift-1", "  - id: cam1", 13, "devices[2].id", "already a camera id"),
        ("      tcp: 10.0.0.30:502", "      feed: queue", 17, "devices[2].probe.feed",
         "no queue section"),
        ("      tcp: 10.0.0.30:502", "      tcp: 10.0.0.30", 17, "devices[2].probe.tcp",
         "String should match pattern"),
    ],
)  # fmt: skip
def test_bad_devices_point_at_line_and_field(
    old: str, new: str | None, line: int, path: str, fragment: str
) -> None:
    if new is None:  # remove the lines
        assert DEVICES.count(old + "\n") == 1
        text = BASE + DEVICES.replace(old + "\n", "")
    else:
        first = old.splitlines()[0]
        text = edit(first, new)
    found = issues_of(text)
    assert any(ln == OFFSET + line and p == path and fragment in msg for ln, p, msg in found), found
