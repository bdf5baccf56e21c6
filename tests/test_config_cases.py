"""Config sections of the queue machine, evaluators and the 异常办件 register; the
service hours' national calendar."""

from __future__ import annotations

from datetime import date, datetime

import pytest

from hallwatch.config import ConfigError, load_hall_config_from_string
from tests.test_config import BASE

ENV = {"CAM1_USER": "admin", "CAM1_PASSWORD": "s3cret", "SALT": "0123456789abcdef"}

CASES = """\
departments:
  - id: tax
    name: 税务
windows:
  - id: "1"
    department: tax
queue:
  topic: qms/{hall}/#
  applicant_salt: ${SALT}
  services:
    - id: A
      department: tax
      promised_trips: 2
evaluators:
  adapter: provincial
  topic: ev/{hall}/#
"""


def load(text: str) -> object:
    return load_hall_config_from_string(text, "hall.yaml", env=ENV)


def issues_of(text: str) -> list[tuple[int, str, str]]:
    with pytest.raises(ConfigError) as info:
        load(text)
    return [(i.line, i.field_path, i.message) for i in info.value.issues]


def test_sections_load_and_topics_name_the_hall() -> None:
    from hallwatch.config import HallConfig

    config = load(BASE + CASES)
    assert isinstance(config, HallConfig)
    assert config.queue is not None and config.evaluators is not None
    assert config.queue.topic == "qms/test-hall/#"
    assert config.evaluators.topic == "ev/test-hall/#"
    assert config.queue.promised_trips_for("A") == 2
    assert config.department_of(window="1") == "tax"
    assert config.cases.appeal_working_days == 10 and config.cases.rectify_working_days == 5
    assert config.cases.red_card.anomalies == 3


LINE_OF_BASE_END = BASE.count("\n")


@pytest.mark.parametrize(
    ("old", "new", "line", "path", "fragment"),
    [
        ("    department: tax", "    department: customs", 6, "windows[0].department",
         "department 'customs' is not in departments"),
        ("  applicant_salt: ${SALT}", "  applicant_salt: short", 9, "queue.applicant_salt",
         "at least 16"),
        ("      promised_trips: 2", "      promised_trips: 0", 13,
         "queue.services[0].promised_trips", "greater than or equal to 1"),
        ("  adapter: provincial", "  adapter: brand-x", 15, "evaluators.adapter",
         "generic_json"),
    ],
)  # fmt: skip
def test_bad_sections_point_at_line_and_field(
    old: str, new: str, line: int, path: str, fragment: str
) -> None:
    lines = CASES.splitlines()
    assert lines.count(old) == 1, old
    text = BASE + "\n".join(new if ln == old else ln for ln in lines) + "\n"
    found = issues_of(text)
    assert any(
        ln == LINE_OF_BASE_END + line and p == path and fragment in msg for ln, p, msg in found
    ), found


def test_duplicate_service_and_window_ids() -> None:
    text = BASE + CASES + ""
    text = text.replace('  - id: "1"\n    department: tax\n',
                        '  - id: "1"\n    department: tax\n  - id: "1"\n')  # fmt: skip
    found = issues_of(text)
    assert any(p == "windows[1].id" and "duplicate id '1'" in m for _, p, m in found), found


@pytest.mark.parametrize(
    ("when", "open_"),
    [
        (datetime(2026, 10, 1, 10, 0), False),  # 国庆节
        (datetime(2026, 10, 10, 10, 0), True),  # 调休: Saturday made a working day
        (datetime(2026, 10, 17, 10, 0), False),  # an ordinary Saturday
        (datetime(2026, 11, 2, 10, 0), True),  # an ordinary Monday
    ],
)
def test_service_hours_follow_the_national_calendar(when: datetime, open_: bool) -> None:
    config = load(BASE)
    assert config.is_in_service(when) is open_


def test_a_hall_open_on_saturdays_stays_open_but_not_on_holidays() -> None:
    text = BASE.replace("service_hours:\n", "service_hours:\n  open_weekdays: [mon, tue, wed, "
                        "thu, fri, sat]\n")  # fmt: skip
    config = load(text)
    assert config.is_in_service(datetime(2026, 10, 17, 10, 0))
    assert not config.is_in_service(datetime(2026, 10, 3, 10, 0))  # 国庆节, a Saturday


def test_national_calendar_can_be_switched_off() -> None:
    text = BASE.replace("service_hours:\n", "service_hours:\n  national_calendar: false\n")
    config = load(text)
    assert config.is_in_service(datetime(2026, 10, 1, 10, 0))  # a Thursday
    assert config.service_hours.calendar().is_working_day(date(2026, 10, 1))


def test_duplicate_service_codes() -> None:
    extra = "      promised_trips: 2\n    - id: A\n"
    text = BASE + CASES.replace("      promised_trips: 2\n", extra)
    found = issues_of(text)
    assert any(
        p == "queue.services[1].id" and "duplicate service 'A' (first at index 0)" in m
        for _, p, m in found
    ), found
