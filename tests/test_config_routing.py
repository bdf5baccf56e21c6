"""The ``routing`` section: what loads, its defaults, and errors naming the field and line."""

from __future__ import annotations

from datetime import time, timedelta
from pathlib import Path

import pytest

from hallwatch.config import ConfigError, HallConfig, load_hall_config_from_string, read_hall_config
from hallwatch.contract import AlertKind
from tests.test_config import BASE

ENV = {"CAM1_USER": "admin", "CAM1_PASSWORD": "s3cret"}
OFFSET = BASE.count("\n")  # line k (from 1) of ROUTING is line OFFSET + k of the file

ROUTING = """\
routing:
  recipients:
    - id: zhang
      name: 大厅负责人 张三
      role: hall_manager
      phone: "13800000001"
    - id: li
      name: 监督员 李四
      role: supervision_officer
      phone: "13800000003"
      mqtt: false
  routes:
    - kinds: [off_post, device_offline]
      roles: [hall_manager]
    - kinds: [off_post]
      level: 2
      recipients: [li]
      ignore_quiet_hours: true
  escalation:
    after_min: 15
    after_min_by_kind: {device_offline: 60}
  quiet_hours:
    - {start: "22:00", end: "07:30"}
  dedup: {reopen_window_min: 5}
  rate_limit: {sms_per_hour: 4}
"""


def load(text: str) -> HallConfig:
    return load_hall_config_from_string(text, "hall.yaml", env=ENV)


def issues_of(text: str) -> list[tuple[int, str, str]]:
    with pytest.raises(ConfigError) as info:
        load(text)
    return [(i.line, i.field_path, i.message) for i in info.value.issues]


def edit(old: str, new: str) -> str:
    lines = ROUTING.splitlines()
    assert lines.count(old) == 1, old
    return BASE + "\n".join(new if ln == old else ln for ln in lines) + "\n"


def test_routing_loads_and_answers_the_router() -> None:
    routing = load(BASE + ROUTING).routing
    assert routing.enabled
    assert [r.id for r in routing.recipients_for(AlertKind.OFF_POST, 1)] == ["zhang"]
    assert [r.id for r in routing.recipients_for(AlertKind.OFF_POST, 2)] == ["li"]
    assert routing.recipients_for(AlertKind.CROWDING, 1) == []
    assert routing.next_level(AlertKind.OFF_POST, 1) == 2
    assert routing.next_level(AlertKind.DEVICE_OFFLINE, 1) is None
    assert routing.escalation.after(AlertKind.DEVICE_OFFLINE) == timedelta(minutes=60)
    assert routing.escalation.after(AlertKind.OFF_POST) == timedelta(minutes=15)
    assert routing.ignores_quiet_hours(AlertKind.OFF_POST, 2, "li")
    assert not routing.ignores_quiet_hours(AlertKind.OFF_POST, 1, "zhang")
    assert routing.is_quiet(time(23)) and routing.is_quiet(time(7, 29))
    assert not routing.is_quiet(time(7, 30)) and not routing.is_quiet(time(12))
    assert "13800000001" not in repr(routing.recipients[0])  # phones stay out of logs


def test_default_is_no_routing() -> None:
    routing = load(BASE).routing
    assert not routing.enabled and routing.recipients == [] and routing.quiet_hours == []
    assert routing.escalation.after_min == 15 and routing.rate_limit.sms_per_hour == 6


def test_the_example_hall_routes() -> None:
    path = Path(__file__).resolve().parent.parent / "deploy" / "examples" / "hall.yaml"
    config, _warnings = read_hall_config(str(path), require_env=False)
    assert config.routing.next_level(AlertKind.OFF_POST, 1) == 2
    assert config.routing.is_quiet(time(23))


@pytest.mark.parametrize(
    ("old", "new", "line", "path", "fragment"),
    [
        ("      recipients: [li]", "      recipients: [liu]", 17,
         "routing.routes[1].recipients[0]", "unknown recipient 'liu' (li, zhang)"),
        ("      roles: [hall_manager]", "      roles: [director]", 14,
         "routing.routes[0].roles[0]", "no recipient has role 'director'"),
        ("    - id: li", "    - id: zhang", 7, "routing.recipients[1].id",
         "duplicate recipient id 'zhang'"),
        ("      level: 2", "      level: 4", 16, "routing.routes[1].level",
         "less than or equal to 3"),
        ('      phone: "13800000003"', '      phone: "call me"', 10,
         "routing.recipients[1].phone", "String should match pattern"),
        ('    - {start: "22:00", end: "07:30"}', '    - {start: "22:00", end: "22:00"}', 23,
         "routing.quiet_hours[0].end", "end equals start"),
        ('    - {start: "22:00", end: "07:30"}', "    - {start: 2200, end: 730}", 23,
         "routing.quiet_hours[0].start", 'quoted "HH:MM"'),
        ("  rate_limit: {sms_per_hour: 4}", "  rate_limit: {sms_per_hour: 0}", 25,
         "routing.rate_limit.sms_per_hour", "greater than or equal to 1"),
        ("    after_min_by_kind: {device_offline: 60}", "    after_min_by_kind: {lift: 60}", 21,
         "routing.escalation.after_min_by_kind.lift", "'off_post'"),
        ("      roles: [hall_manager]", "      roles: []", 13, "routing.routes[0].recipients",
         "a route to nobody"),
        ("  dedup: {reopen_window_min: 5}", "  dedup: {reopen_minutes: 5}", 24,
         "routing.dedup.reopen_minutes", "did you mean 'reopen_window_min'"),
    ],
)  # fmt: skip
def test_errors_name_the_field_and_line(
    old: str, new: str, line: int, path: str, fragment: str
) -> None:
    issues = issues_of(edit(old, new))
    assert any(ln == OFFSET + line and p == path and fragment in msg for ln, p, msg in issues), (
        issues
    )
