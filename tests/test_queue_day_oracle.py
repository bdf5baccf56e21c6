"""The 异常办件 oracle on a hand-written log, and the day generator's own guarantees.

Every expected anomaly below is worked out by hand from docs/cases.md, so the oracle the
replay test trusts is itself checked.
"""

from __future__ import annotations

import json
from collections import Counter
from datetime import UTC, datetime

from tests.support.queue_day import BUSY_DAY, fake_id_number, generate_day, policy, with_noise
from tests.support.queue_oracle import ExpectedAnomaly, OraclePolicy, expected_anomalies

POLICY = OraclePolicy(salt="oracle-test-salt-0123")
MON, FRI = "2026-11-02", "2026-10-30"


def q(event: str, ticket: str, at: str, day: str = MON, **fields: str) -> tuple[str, str]:
    service = fields.pop("service", ticket[0])
    body = {"event": event, "ticket": ticket, "service": service, "at": f"{day}T{at}+08:00"}
    return ("queue", json.dumps({**body, **fields}))


def r(rating_id: str, at: str, level: str, **fields: object) -> tuple[str, str]:
    body = {"rating_id": rating_id, "at": f"{MON}T{at}+08:00", "level": level}
    return ("evaluators", json.dumps({**body, **fields}))


def utc(day: str, hhmmss: str) -> datetime:
    return datetime.fromisoformat(f"{day}T{hhmmss}+08:00").astimezone(UTC)


def _log() -> list[tuple[str, str]]:
    fri = [
        q("issued", "D001", "10:00:00", FRI),
        q("called", "D001", "10:05:00", FRI, window="20"),
        q("service_started", "D001", "10:06:00", FRI, window="20"),
        q(
            "service_ended",
            "D001",
            "10:20:00",
            FRI,
            window="20",
            case_no="D-1",
            outcome="incomplete",
        ),
        q("issued", "E001", "11:00:00", FRI, id_number="11010519900307123X"),
        q("called", "E001", "11:01:00", FRI, window="26"),
        q("service_ended", "E001", "11:09:00", FRI, window="26", outcome="consulted"),
        q("issued", "G001", "14:00:00", FRI, id_number="310104198501014321"),
        q("service_started", "G001", "14:01:00", FRI, window="35"),
        q("service_ended", "G001", "14:09:00", FRI, window="35", outcome="incomplete"),
        q("issued", "H001", "14:30:00", FRI),
        q("called", "H001", "14:31:00", FRI, window="38"),
        q("service_ended", "H001", "14:39:00", FRI, window="38", outcome="completed"),
    ]
    mon = [
        q("issued", "A001", "08:50:00"),  # before opening: the clock starts at 09:00
        q("issued", "B001", "09:00:00"),
        q("issued", "A005", "09:00:30"),
        q("issued", "A006", "09:00:40"),
        q("issued", "A004", "09:05:00"),
        q("called", "B001", "09:10:00", window="8"),
        q("service_started", "B001", "09:11:00", window="8"),
        q("transferred", "B001", "09:15:00", window="8", to_service="C"),  # leg 2 from 09:15
        q("called", "A004", "09:20:00", window="2"),
        q("no_show", "A004", "09:22:00"),
        q("abandoned", "A005", "09:20:00", reason="left"),  # 19.5 min: no anomaly
        q("called", "A001", "09:40:00", window="3"),  # limit passed at 09:30
        q("abandoned", "A006", "09:45:00", reason="left"),  # limit passed at 09:30:40
        q("called", "B001", "09:50:00", service="C", window="14"),  # leg 2 passed at 09:45
        q("service_started", "B001", "09:51:00", service="C", window="14"),
        q(
            "service_ended",
            "B001",
            "10:00:00",
            service="C",
            window="14",
            case_no="C1",
            outcome="completed",
        ),
        q("issued", "D001", "10:00:00"),
        q("called", "D001", "10:05:00", window="21"),
        q("service_started", "D001", "10:06:00", window="21", case_no="D-1"),
        q("service_ended", "D001", "10:30:00", window="21", outcome="completed"),
        q("recalled", "A004", "10:30:30", window="2"),  # first_call: the no-show changes nothing
        q("service_started", "A004", "10:31:00", window="2"),
        q("service_ended", "A004", "10:40:00", window="2", outcome="completed"),
        q("issued", "E001", "11:00:00", id_number="11010519900307123X"),
        q("called", "E001", "11:10:00", window="27"),
        q("service_ended", "E001", "11:18:00", window="27", case_no="E-9", outcome="accepted"),
        q("issued", "A002", "11:45:00"),  # 15 min before lunch + 15 after: 13:45
        q("issued", "A003", "11:45:10"),
        q("called", "A003", "13:40:00", window="4"),  # 25 min of service time: none
        q("called", "A002", "13:50:00", window="4"),
        q("issued", "F001", "14:00:00", case_no="F-1"),
        q("issued", "F002", "14:00:30", case_no="F-1"),
        q("called", "F001", "14:01:00", window="31"),
        q("service_ended", "F001", "14:05:00", window="31", outcome="incomplete"),
        q("called", "F002", "14:06:00", window="31"),
        q("service_ended", "F002", "14:10:00", window="31", outcome="completed"),
        q("issued", "G001", "15:00:00", id_number="310104 19850101 4321"),
        q("called", "G001", "15:05:00", window="36"),
        q("service_ended", "G001", "15:15:00", window="36", outcome="completed"),
        q("issued", "H001", "15:20:00"),
        q("called", "H001", "15:21:00", window="39"),
        q("service_ended", "H001", "15:30:00", window="39", outcome="completed"),
        q("issued", "A008", "16:20:00"),  # never called: its limit (16:50) comes before close
        q("issued", "A009", "16:29:00"),  # 16:59: after the last event, the clock never gets there
        q("issued", "A007", "16:40:00"),  # its limit would be tomorrow: abandoned at 17:00
        q("service_ended", "A003", "16:55:00", window="4", outcome="completed"),
    ]
    ratings = [
        r("EV-1", "10:01:00", "dissatisfied", case_no="C1", ticket="B001", window="14"),
        r("EV-2", "10:02:00", "satisfied", attitude="bad", ticket="A001", window="3"),
        r(
            "EV-3",
            "10:03:00",
            "basically_satisfied",
            dimensions={"attitude": "very_dissatisfied"},
            window="5",
        ),
        r("EV-4", "10:04:00", "very_dissatisfied", attitude="bad", window="6"),
        r("EV-1", "10:01:00", "dissatisfied", case_no="C1", ticket="B001", window="14"),
        r("EV-5", "12:00:00", "satisfied", evaluation=2, case_no="C1", ticket="B001", window="14"),
        r("EV-6", "12:01:00", "dissatisfied", evaluation=2, ticket="A004", window="2"),
        r("EV-7", "12:02:00", "dissatisfied", evaluation=2, ticket="A001", window="3"),
        r("EV-8", "12:03:00", "very_satisfied", attitude="good", window="7"),
    ]
    return fri + mon + ratings


def test_oracle_applies_the_rule_book_to_a_hand_written_log() -> None:
    key_g = POLICY.applicant_key("310104198501014321")
    expected = {
        ExpectedAnomaly("wait_over_limit", "20261102-A001#1", "3", utc(MON, "09:30:00")),
        ExpectedAnomaly("wait_over_limit", "20261102-A006#1", None, utc(MON, "09:30:40")),
        ExpectedAnomaly("wait_over_limit", "20261102-B001#2", "14", utc(MON, "09:45:00")),
        ExpectedAnomaly("wait_over_limit", "20261102-A002#1", "4", utc(MON, "13:45:00")),
        ExpectedAnomaly("wait_over_limit", "20261102-A008#1", None, utc(MON, "16:50:00")),
        ExpectedAnomaly(
            "trips_over_promise", "case:D-1", "21", utc(MON, "10:30:00"), "D-1", trips=2
        ),
        ExpectedAnomaly(
            "trips_over_promise", "case:E-9", "27", utc(MON, "11:18:00"), "E-9", trips=2
        ),
        ExpectedAnomaly(
            "trips_over_promise", f"applicant:{key_g}:G", "36", utc(MON, "15:15:00"), trips=2
        ),
        ExpectedAnomaly("bad_rating", "EV-1", "14", utc(MON, "10:01:00"), "C1"),
        ExpectedAnomaly("bad_attitude", "EV-2", "3", utc(MON, "10:02:00")),
        ExpectedAnomaly("bad_attitude", "EV-3", "5", utc(MON, "10:03:00")),
        ExpectedAnomaly("bad_rating", "EV-4", "6", utc(MON, "10:04:00")),
        ExpectedAnomaly("bad_rating", "EV-6", "2", utc(MON, "12:01:00")),
    }
    assert expected_anomalies(_log(), POLICY) == expected


def test_a_third_trip_updates_the_count_not_the_opening() -> None:
    log = []
    for day, window in (("2026-10-29", "20"), (FRI, "21"), (MON, "22")):
        log += [
            q("issued", "D001", "10:00:00", day),
            q("called", "D001", "10:01:00", day, window=window),
            q("service_ended", "D001", "10:09:00", day, window=window, case_no="D-3"),
        ]
    (only,) = expected_anomalies(log, POLICY)
    assert (only.key, only.trips, only.window) == ("case:D-3", 3, "21")
    assert only.opened == utc(FRI, "10:09:00")


def test_a_lunch_the_hall_stays_open_for_counts() -> None:
    log = [q("issued", "A001", "11:45:00"), q("called", "A001", "12:20:00", window="1")]
    open_lunch = OraclePolicy(salt=POLICY.salt, lunch_closed=False)
    assert [a.opened for a in expected_anomalies(log, open_lunch)] == [utc(MON, "12:15:00")]
    assert expected_anomalies(log, POLICY) == set()


def test_generated_day_is_deterministic() -> None:
    day = generate_day(seed=11, busy_tickets=300)
    assert day == generate_day(seed=11, busy_tickets=300)
    assert day.messages != generate_day(seed=12, busy_tickets=300).messages


def test_generated_day_is_busy_and_well_formed() -> None:
    day = generate_day()
    assert day.busy_tickets >= 3000
    for raw in day.id_numbers:
        compact = raw.upper().replace(" ", "")
        assert len(compact) == 18 and compact == fake_id_number_check(compact), raw
    times: dict[tuple[str, str], str] = {}
    for feed, text in day.messages:
        msg = json.loads(text)
        assert datetime.fromisoformat(msg["at"]).utcoffset() is not None
        if feed == "queue":
            key = (msg["at"][:10], msg["ticket"])
            assert msg["event"] == "issued" or times[key] < msg["at"], msg
            times[key] = msg["at"]
    expected = expected_anomalies(day.messages, policy())
    kinds = Counter(a.kind for a in expected)
    assert 0.05 * day.busy_tickets < kinds["wait_over_limit"] < 0.3 * day.busy_tickets
    assert kinds["bad_rating"] > 10 and kinds["bad_attitude"] > 5
    legs = Counter(a.leg for a in expected if a.kind == "wait_over_limit")
    assert legs[2] > 0, "transferred tickets wait over the limit in their second queue too"
    for event in ("checked_in", "no_show", "recalled", "transferred", "abandoned"):
        assert day.counts[event] > 10, event
    assert kinds["trips_over_promise"] == 5  # R1–R5; N1–N3 must not count
    assert any(
        m[1].startswith('{"event": "issued"') and BUSY_DAY.isoformat() in m[1] for m in day.messages
    )


def fake_id_number_check(number: str) -> str:
    """The number with its check character recomputed (ISO 7064 MOD 11-2)."""
    weights = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
    total = sum(int(d) * w for d, w in zip(number[:17], weights, strict=True))
    return number[:17] + "10X98765432"[total % 11]


def test_noise_adds_only_malformed_and_duplicate_messages() -> None:
    day = generate_day(seed=11, busy_tickets=300)
    noisy, malformed, duplicates = with_noise(day.messages, day.id_numbers[0])
    assert len(noisy) == len(day.messages) + malformed + duplicates
    assert malformed >= 10 and duplicates >= 10
    assert any(day.id_numbers[0] in text for _, text in noisy if "colour" in text)


def test_fake_id_numbers_check_out() -> None:
    import random

    rng = random.Random(3)
    for _ in range(50):
        number = fake_id_number(rng)
        assert fake_id_number_check(number) == number
