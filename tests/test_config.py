"""Hall configuration: models, YAML loader with line numbers, validate CLI helper, docs."""

from __future__ import annotations

import importlib.util
import re
from datetime import UTC, date, datetime
from pathlib import Path

import pytest

from hallwatch.config import (
    ID_PATTERN,
    ConfigError,
    HallConfig,
    PostKind,
    expand_env,
    load_hall_config,
    load_hall_config_from_string,
    mask_url,
    read_hall_config_from_string,
    validate_config_file,
)

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "deploy" / "examples" / "hall.yaml"
ENV = {"CAM1_USER": "admin", "CAM1_PASSWORD": "s3cret"}

# Line numbers are part of the expectations below: keep this text as it is.
BASE = """\
hall:
  id: test-hall
  name: 测试大厅
  timezone: Asia/Shanghai
service_hours:
  default:
    open: "09:00"
    lunch_start: "12:00"
    lunch_end: "13:30"
    close: "17:00"
    lunch_closed: true
cameras:
  - id: cam1
    url: rtsp://${CAM1_USER}:${CAM1_PASSWORD}@10.0.0.5/stream1
    width: 1920
    height: 1080
  - id: cam2
    url: clips/back.mp4
    width: 1280
    height: 720
posts:
  - id: w1
    name: 1号窗口
    kind: front_desk
    window: 1
    camera: cam1
    polygon:
      - [100, 100]
      - [500, 100]
      - [500, 600]
      - [100, 600]
  - id: w2
    name: 后台
    kind: back_office
    camera: cam2
    polygon: [[10, 10], [300, 10], [300, 300]]
thresholds:
  off_post_after_s: 300
"""


def edit(old: str, new: str) -> str:
    """BASE with the one line equal to ``old`` replaced by ``new`` (may be several lines)."""
    lines = BASE.splitlines()
    assert lines.count(old) == 1, old
    return "\n".join(new if line == old else line for line in lines) + "\n"


def issues_of(text: str, env: dict[str, str] | None = None) -> list[tuple[int, str, str]]:
    with pytest.raises(ConfigError) as info:
        load_hall_config_from_string(text, "hall.yaml", env=ENV if env is None else env)
    return [(i.line, i.field_path, i.message) for i in info.value.issues]


def test_base_is_valid() -> None:
    config = load_hall_config_from_string(BASE, env=ENV)
    assert config.hall.id == "test-hall"
    assert [c.id for c in config.cameras] == ["cam1", "cam2"]
    assert config.posts[0].window == "1"
    assert config.posts[0].kind is PostKind.FRONT_DESK
    assert config.posts[1].polygon[1] == (300.0, 10.0)
    assert config.edge.source == "edge-test-hall"
    assert config.edge.outbox_path == Path("var/edge-test-hall.outbox.sqlite")
    assert config.off_post_after_s_for("w1") == 300
    assert [p.id for p in config.posts_for_camera("cam2")] == ["w2"]


BAD_CASES = [
    # id, yaml text, expected line, expected field path, message fragment
    ("wrong type", edit("    width: 1920", "    width: wide"), 15, "cameras[0].width", "integer"),
    (
        "wrong type in a point",
        edit("      - [500, 100]", "      - [500, abc]"),
        29,
        "posts[0].polygon[1][1]",
        "number",
    ),
    ("unknown key, top level", BASE + "colour: red\n", 39, "colour", "unknown key 'colour'"),
    (
        "unknown key, nested",
        edit("    height: 1080", "    height: 1080\n    fps: 25"),
        17,
        "cameras[0].fps",
        "unknown key 'fps'",
    ),
    (
        "unknown key, did you mean",
        edit("    lunch_closed: true", "    lunch_closd: true"),
        11,
        "service_hours.default.lunch_closd",
        "did you mean 'lunch_closed'",
    ),
    (
        "missing key in a list item",
        edit("    kind: back_office", "    window: B2"),
        32,
        "posts[1].kind",
        "missing required key 'kind'",
    ),
    ("missing key in a mapping", edit("  name: 测试大厅", ""), 1, "hall.name", "missing"),
    (
        "polygon point outside the image",
        edit("      - [500, 600]", "      - [500, 1200]"),
        30,
        "posts[0].polygon[2]",
        "outside the 1920x1080 image",
    ),
    (
        "flow polygon point outside the image",
        edit(
            "    polygon: [[10, 10], [300, 10], [300, 300]]",
            "    polygon: [[10, 10], [1300, 10], [300, 300]]",
        ),
        36,
        "posts[1].polygon[1]",
        "outside",
    ),
    (
        "post references a missing camera",
        edit("    camera: cam2", "    camera: cam9"),
        35,
        "posts[1].camera",
        "camera 'cam9' is not defined",
    ),
    ("duplicate camera id", edit("  - id: cam2", "  - id: cam1"), 17, "cameras[1].id", "duplicate"),
    ("duplicate post id", edit("  - id: w2", "  - id: w1"), 32, "posts[1].id", "duplicate id 'w1'"),
    (
        "bad timezone",
        edit("  timezone: Asia/Shanghai", "  timezone: Mars/Olympus"),
        4,
        "hall.timezone",
        "unknown timezone",
    ),
    (
        "lunch ends after close",
        edit('    lunch_end: "13:30"', '    lunch_end: "17:30"'),
        9,
        "service_hours.default.lunch_end",
        "must be before close",
    ),
    (
        "lunch starts before open",
        edit('    lunch_start: "12:00"', '    lunch_start: "08:00"'),
        8,
        "service_hours.default.lunch_start",
        "must be after open",
    ),
    (
        "time as a number",
        edit('    open: "09:00"', "    open: 9"),
        7,
        "service_hours.default.open",
        '"HH:MM"',
    ),
    ("bad id", edit("  id: test-hall", "  id: Test Hall"), 2, "hall.id", "lowercase id"),
    ("bad enum", edit("    kind: front_desk", "    kind: clerk"), 24, "posts[0].kind", "guide"),
    (
        "out of bounds",
        edit("    height: 720", "    height: 720\n    look_interval_s: 0.1"),
        21,
        "cameras[1].look_interval_s",
        "greater than or equal to 0.2",
    ),
    (
        "bad url scheme",
        edit("    url: clips/back.mp4", "    url: ftp://nas/back.mp4"),
        18,
        "cameras[1].url",
        "unsupported URL scheme 'ftp'",
    ),
    (
        "hours for a closed weekday",
        edit(
            "    lunch_closed: true",
            '    lunch_closed: true\n  per_weekday:\n    sat: {open: "09:00", close: "12:00"}',
        ),
        13,
        "service_hours.per_weekday.sat",
        "not in open_weekdays",
    ),
    (
        "YAML syntax error",
        edit("    name: 1号窗口", "    name: 1号窗口: 综合"),
        23,
        "",
        "YAML: mapping values are not allowed here",
    ),
    (
        "YAML duplicate key",
        edit("    height: 1080", "    height: 1080\n    height: 720"),
        17,
        "",
        'duplicate key "height"',
    ),
]


@pytest.mark.parametrize(
    ("text", "line", "path", "fragment"),
    [case[1:] for case in BAD_CASES],
    ids=[case[0] for case in BAD_CASES],
)
def test_bad_file_points_at_line_and_field(text: str, line: int, path: str, fragment: str) -> None:
    found = issues_of(text)
    assert any((ln, p) == (line, path) and fragment in msg for ln, p, msg in found), (
        f"expected {line} {path!r} ~ {fragment!r}, got {found}"
    )


def test_unset_env_variable_is_an_error_when_required() -> None:
    found = issues_of(BASE, env={"CAM1_USER": "admin"})
    assert found == [(14, "cameras[0].url", "environment variable CAM1_PASSWORD is not set")]


def test_unset_env_variable_is_a_warning_when_not_required() -> None:
    config, warnings = read_hall_config_from_string(BASE, "h.yaml", require_env=False, env={})
    assert [(w.line, w.field_path, w.severity) for w in warnings] == [
        (14, "cameras[0].url", "warning"),
        (14, "cameras[0].url", "warning"),
    ]
    assert "${CAM1_PASSWORD}" in config.cameras[0].url
    assert warnings[0].render().startswith("h.yaml:14:5: cameras[0].url: warning: ")


def test_secrets_are_expanded_but_never_shown() -> None:
    config = load_hall_config_from_string(BASE, env=ENV)
    cam = config.cameras[0]
    assert cam.url == "rtsp://admin:s3cret@10.0.0.5/stream1"
    assert cam.display_url == "rtsp://admin:***@10.0.0.5/stream1"
    assert "s3cret" not in repr(config)
    assert "s3cret" not in str(config.model_dump())
    assert "s3cret" in str(config.model_dump(context={"reveal_secrets": True}))
    # A bad value next to a secret does not leak it into the error.
    bad = edit("    width: 1920", "    width: -1")
    with pytest.raises(ConfigError) as info:
        load_hall_config_from_string(bad, env=ENV)
    assert "s3cret" not in str(info.value)


def test_several_issues_are_reported_in_file_order() -> None:
    text = edit("  id: test-hall", "  id: Test Hall")
    text = text.replace("    camera: cam2", "    camera: cam9")
    found = issues_of(text)
    assert [(ln, p) for ln, p, _ in found] == [(2, "hall.id"), (35, "posts[1].camera")]


def test_error_rendering() -> None:
    with pytest.raises(ConfigError) as info:
        load_hall_config_from_string(
            edit("    camera: cam2", "    camera: cam9"), "h.yaml", env=ENV
        )
    assert str(info.value) == (
        "h.yaml:35:5: posts[1].camera: camera 'cam9' is not defined (cameras: cam1, cam2)"
    )
    flow = edit(
        "    polygon: [[10, 10], [300, 10], [300, 300]]",
        "    polygon: [[10, 10], [300, 10], [300, 900]]",
    )
    with pytest.raises(ConfigError) as info:
        load_hall_config_from_string(flow, "h.yaml", env=ENV)
    (issue,) = info.value.issues
    assert (issue.line, issue.column) == (36, 36)  # the third point's "["


def test_empty_and_non_mapping_files() -> None:
    assert issues_of("") == [(1, "", issues_of("")[0][2])]
    assert "expected a mapping" in issues_of("- a\n- b\n")[0][2]


def test_example_validates(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("HALL_CAM1_USER", "HALL_CAM1_PASSWORD", "HALL_MQTT_USER", "HALL_MQTT_PASSWORD"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.delenv("HALLWATCH_APPLICANT_SALT", raising=False)
    assert validate_config_file(EXAMPLE) == 0
    out, err = capsys.readouterr()
    assert out == f"{EXAMPLE}: OK (hall demo-county-hall, 3 cameras, 5 posts)\n"
    assert "warning: environment variable HALL_CAM1_PASSWORD is not set" in err
    assert validate_config_file(EXAMPLE, require_env=True) == 1


def test_example_loads_with_its_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    env = {
        "HALL_CAM1_USER": "admin",
        "HALL_CAM1_PASSWORD": "p@ss",
        "HALL_MQTT_USER": "edge",
        "HALL_MQTT_PASSWORD": "mq",
        "HALLWATCH_APPLICANT_SALT": "a-long-enough-salt",
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    config = load_hall_config(EXAMPLE)
    assert config.cameras[0].url.startswith("rtsp://admin:p@ss@10.0.0.5")
    assert config.cameras[0].display_url.startswith("rtsp://admin:***@10.0.0.5")
    assert config.mqtt.password is not None
    assert config.mqtt.password.get_secret_value() == "mq"
    assert config.edge.source == "edge-demo-county-hall"
    assert config.off_post_after_s_for("w03") == 600
    assert config.queue is not None and config.queue.topic == "qms/demo-county-hall/#"
    assert config.queue.applicant_salt.get_secret_value() == "a-long-enough-salt"
    assert config.queue.wait_limit_s("C") == 2400 and config.queue.wait_limit_s("A") == 1800
    assert config.queue.promised_trips_for("C") == 2 and config.queue.promised_trips_for("Z") == 1
    assert config.department_of(window="2") == "social-security"
    assert config.department_of(window="9", service="C") == "real-estate"
    assert str(config.edge.feed_state_path) == "var/edge-demo-county-hall.feeds.sqlite"
    assert not config.cameras[0].is_file and config.cameras[1].is_file
    again = HallConfig.model_validate(config.model_dump(context={"reveal_secrets": True}))
    assert again == config


def test_validate_reports_issues_on_stderr(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in ENV.items():
        monkeypatch.setenv(name, value)
    bad = tmp_path / "bad.yaml"
    bad.write_text(edit("    camera: cam2", "    camera: cam9"), encoding="utf-8")
    assert validate_config_file(bad) == 1
    out, err = capsys.readouterr()
    assert out == ""
    assert err.splitlines() == [
        f"{bad}:35:5: posts[1].camera: camera 'cam9' is not defined (cameras: cam1, cam2)"
    ]
    assert validate_config_file(tmp_path / "missing.yaml") == 1
    assert re.match(
        rf"^{re.escape(str(tmp_path))}/missing\.yaml: cannot read file", capsys.readouterr().err
    )


# Mon 2026-11-02 … Sun 2026-11-08
SERVICE_CASES = [
    ("weekday morning", datetime(2026, 11, 2, 10, 0), True, True),
    ("at opening", datetime(2026, 11, 2, 9, 0), True, True),
    ("before opening", datetime(2026, 11, 2, 8, 59), False, False),
    ("lunch", datetime(2026, 11, 3, 12, 30), False, True),
    ("lunch end", datetime(2026, 11, 3, 13, 30), True, True),
    ("afternoon", datetime(2026, 11, 4, 16, 59), True, True),
    ("at closing", datetime(2026, 11, 4, 17, 0), False, False),
    ("after hours", datetime(2026, 11, 5, 20, 0), False, False),
    ("saturday", datetime(2026, 11, 7, 10, 0), False, False),
    ("sunday", datetime(2026, 11, 1, 10, 0), False, False),
    ("closed date", datetime(2026, 11, 6, 10, 0), False, False),
    ("make-up working day", datetime(2026, 11, 8, 15, 0), True, True),
    ("aware UTC, 10:00 local", datetime(2026, 11, 2, 2, 0, tzinfo=UTC), True, True),
    ("aware UTC, 12:30 local", datetime(2026, 11, 2, 4, 30, tzinfo=UTC), False, True),
]


@pytest.mark.parametrize(
    ("when", "lunch_closed", "lunch_open"),
    [c[1:] for c in SERVICE_CASES],
    ids=[c[0] for c in SERVICE_CASES],
)
def test_is_in_service(when: datetime, lunch_closed: bool, lunch_open: bool) -> None:
    extra = "\n  closed_dates: [2026-11-06]\n  working_dates: [2026-11-08]"
    closed = load_hall_config_from_string(edit("service_hours:", "service_hours:" + extra), env=ENV)
    assert date(2026, 11, 2).weekday() == 0
    assert closed.is_in_service(when) is lunch_closed
    open_text = edit("    lunch_closed: true", "    lunch_closed: false")
    served = load_hall_config_from_string(
        open_text.replace("service_hours:\n", "service_hours:" + extra + "\n", 1), env=ENV
    )
    assert served.is_in_service(when) is lunch_open


def test_expand_env() -> None:
    assert expand_env("a${X}b${Y}", {"X": "1"}) == ("a1b${Y}", ["Y"])
    assert expand_env("$${X}", {"X": "1"}) == ("${X}", [])
    with pytest.raises(ValueError, match="invalid"):
        expand_env("${1X}", {})
    with pytest.raises(ValueError, match="unterminated"):
        expand_env("${X", {})


def test_mask_url() -> None:
    assert mask_url("rtsp://u:p@h/s") == "rtsp://u:***@h/s"
    assert mask_url("rtsp://u@h/s") == "rtsp://u@h/s"
    assert mask_url("rtsp://h/s?user=u&password=p") == "rtsp://h/s?user=u&password=***"
    assert mask_url("clips/a.mp4") == "clips/a.mp4"


def test_id_pattern_matches_the_wire_contract() -> None:
    contract = pytest.importorskip("hallwatch.contract")
    assert contract.ID_PATTERN == ID_PATTERN


def test_docs_are_up_to_date() -> None:
    spec = importlib.util.spec_from_file_location(
        "gen_config_docs", ROOT / "scripts/gen_config_docs.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    current = (ROOT / "docs" / "config.md").read_text(encoding="utf-8")
    assert current == module.render(), "docs/config.md is stale: run scripts/gen_config_docs.py"


def test_top_level_x_keys_hold_anchors() -> None:
    text = """\
hall: {id: h1, name: 大厅}
x-camera: &cam {width: 1920, height: 1080, look_interval_s: 2}
cameras:
  - <<: *cam
    id: c1
    url: a.mp4
posts:
  - {id: p1, name: 导服台, kind: guide, camera: c1, polygon: [[0, 0], [9, 0], [9, 9]]}
"""
    config = load_hall_config_from_string(text)
    assert (config.cameras[0].width, config.cameras[0].look_interval_s) == (1920, 2.0)


def test_models_validate_without_the_loader() -> None:
    config = HallConfig.model_validate(
        {
            "hall": {"id": "h1", "name": "H"},
            "cameras": [{"id": "c1", "url": "a.mp4", "width": 640, "height": 480}],
            "posts": [
                {
                    "id": "p1",
                    "name": "P",
                    "kind": "helper",
                    "camera": "c1",
                    "polygon": [[0, 0], [9, 0], [9, 9]],
                }
            ],
        }
    )
    assert config.edge.source == "edge-h1"
    assert config.service_hours.default.lunch_closed
    assert config.camera("c1").width == 640
    with pytest.raises(KeyError):
        config.post("nope")
