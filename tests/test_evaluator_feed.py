"""The evaluator feed: three vendor formats to named levels, dead letters, duplicates.

The code tables here are written out again from the rule book (docs/evaluators.md), not
imported, so a wrong entry in the adapters fails.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from edge.feeds.base import FeedMessage, FeedStore
from edge.feeds.ratings import EvaluatorFeed
from hallwatch.config.models import HallConfig
from hallwatch.contract import (
    Attitude,
    RatingChannel,
    RatingDimension,
    RatingFact,
    RatingLevel,
    encode,
    parse_fact,
)
from tests.conftest import build_hall

CST = timezone(timedelta(hours=8))
AT = datetime(2026, 11, 2, 10, 15, tzinfo=CST)
AT_MS = 1_793_585_700_000  # AT in epoch milliseconds
TOPIC = "hallwatch/devices/h-ev/evaluators/ev-w3"

VS, S, BS, D, VD = (
    RatingLevel.VERY_SATISFIED,
    RatingLevel.SATISFIED,
    RatingLevel.BASICALLY_SATISFIED,
    RatingLevel.DISSATISFIED,
    RatingLevel.VERY_DISSATISFIED,
)
LABELS = {VS: "非常满意", S: "满意", BS: "基本满意", D: "不满意", VD: "非常不满意"}
GBT = {1: VS, 2: S, 3: BS, 4: D, 5: VD}  # GB/T 39046: 1 = 非常满意
PROVINCIAL = {5: VS, 4: S, 3: BS, 2: D, 1: VD}  # provincial: 5 = 非常满意


def hall(adapter: str, timezone_name: str = "Asia/Shanghai") -> HallConfig:
    data = build_hall("h-ev", timezone=timezone_name).model_dump(mode="json")
    data["evaluators"] = {"adapter": adapter, "topic": "hallwatch/devices/{hall}/evaluators/+"}
    return HallConfig.model_validate(data)


@pytest.fixture
def store_path(tmp_path: Path) -> Path:
    return tmp_path / "feeds.sqlite"


@pytest.fixture
def make_feed(store_path: Path) -> Iterator[Callable[..., EvaluatorFeed]]:
    stores: list[FeedStore] = []

    def make(adapter: str = "generic_json", timezone_name: str = "Asia/Shanghai") -> EvaluatorFeed:
        store = FeedStore(store_path)
        stores.append(store)
        return EvaluatorFeed(hall(adapter, timezone_name), store)

    yield make
    for store in stores:
        store.close()


def message(payload: dict[str, Any] | bytes) -> FeedMessage:
    raw = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    return FeedMessage(TOPIC, raw, datetime.now(UTC))


def one(feed: EvaluatorFeed, payload: dict[str, Any] | bytes) -> RatingFact:
    facts = feed.handle(message(payload))
    assert len(facts) == 1, feed._store.dead_letters()
    fact = facts[0]
    assert isinstance(fact, RatingFact)
    assert parse_fact(encode(fact)) == fact
    return fact


def generic(**fields: Any) -> dict[str, Any]:
    return {"at": AT.isoformat(), "level": "satisfied", **fields}


def gbt(**fields: Any) -> dict[str, Any]:
    return {"caseNo": "C2026-1", "evaluateTime": "2026-11-02 10:15:00", "satisfaction": 2, **fields}


def provincial(**fields: Any) -> dict[str, Any]:
    return {"projectNo": "C2026-1", "assessTime": AT_MS, "pj": 4, **fields}


# --- levels -----------------------------------------------------------------------------


@pytest.mark.parametrize("level", list(RatingLevel))
def test_generic_level_by_name(make_feed: Callable[..., EvaluatorFeed], level: RatingLevel) -> None:
    assert one(make_feed(), generic(level=level.value)).body.level is level


@pytest.mark.parametrize(("label", "level"), [(v, k) for k, v in LABELS.items()])
def test_generic_level_by_chinese_label(
    make_feed: Callable[..., EvaluatorFeed], label: str, level: RatingLevel
) -> None:
    fact = one(make_feed(), generic(level=label))
    assert fact.body.level is level
    assert fact.body.level.label == label


@pytest.mark.parametrize(("code", "level"), [*GBT.items(), *((str(c), v) for c, v in GBT.items())])
def test_gbt39046_codes(
    make_feed: Callable[..., EvaluatorFeed], code: int | str, level: RatingLevel
) -> None:
    assert one(make_feed("gbt39046"), gbt(satisfaction=code)).body.level is level


@pytest.mark.parametrize(("code", "level"), PROVINCIAL.items())
def test_provincial_codes_opposite_numbering(
    make_feed: Callable[..., EvaluatorFeed], code: int, level: RatingLevel
) -> None:
    assert one(make_feed("provincial"), provincial(pj=code)).body.level is level


def test_code_1_means_opposite_levels(make_feed: Callable[..., EvaluatorFeed]) -> None:
    assert one(make_feed("gbt39046"), gbt(satisfaction=1)).body.level is VS
    assert one(make_feed("provincial"), provincial(pj=1)).body.level is VD


def test_name_is_sent_never_the_number(make_feed: Callable[..., EvaluatorFeed]) -> None:
    wire = json.loads(encode(one(make_feed("provincial"), provincial(pj=2))))
    assert wire["body"]["level"] == "dissatisfied"


# --- fields -----------------------------------------------------------------------------


def test_generic_all_fields(make_feed: Callable[..., EvaluatorFeed]) -> None:
    fact = one(
        make_feed(),
        {
            "rating_id": "EV-0001",
            "at": "2026-11-02T10:15:00+08:00",
            "level": "dissatisfied",
            "dimensions": {"attitude": "very_dissatisfied", "efficiency": "满意"},
            "attitude": "bad",
            "channel": "evaluator",
            "evaluation": 1,
            "case_no": "C2026-1",
            "ticket": "A017",
            "window": "3",
            "staff": "S12",
            "device": "ev-w3",
        },
    )
    body = fact.body
    assert (fact.hall, fact.source, fact.ts) == ("h-ev", "edge-h-ev", AT)
    assert body.rating_id == "EV-0001"
    assert body.at == AT
    assert body.level is D
    assert body.dimensions == {RatingDimension.ATTITUDE: VD, RatingDimension.EFFICIENCY: S}
    assert body.attitude is Attitude.BAD
    assert body.channel is RatingChannel.EVALUATOR
    assert (body.case_no, body.ticket_id, body.window, body.staff, body.device) == (
        "C2026-1",
        "20261102-A017",
        "3",
        "S12",
        "ev-w3",
    )


def test_generic_defaults(make_feed: Callable[..., EvaluatorFeed]) -> None:
    body = one(make_feed(), generic()).body
    assert (body.channel, body.evaluation, body.dimensions, body.attitude) == (
        RatingChannel.EVALUATOR,
        1,
        {},
        None,
    )
    assert body.ticket_id is None
    assert body.rating_id.startswith("ev-")


def test_ticket_id_uses_the_hall_local_date(make_feed: Callable[..., EvaluatorFeed]) -> None:
    # 00:30 in Beijing is still the day before in UTC.
    body = one(make_feed(), generic(at="2026-11-01T16:30:00+00:00", ticket="A017")).body
    assert body.ticket_id == "20261102-A017"


@pytest.mark.parametrize(
    ("adapter", "payload"),
    [
        (
            "gbt39046",
            gbt(dimensions={"attitude": 5, "quality": "1"}, attitude="差"),
        ),
        (
            "provincial",
            provincial(evalDetail={"attitude": 1, "quality": "5"}, attitude="2"),
        ),
        (
            "generic_json",
            generic(
                dimensions={"attitude": "非常不满意", "quality": "very_satisfied"}, attitude="差"
            ),
        ),
    ],
)
def test_dimensions_and_attitude(
    make_feed: Callable[..., EvaluatorFeed], adapter: str, payload: dict[str, Any]
) -> None:
    body = one(make_feed(adapter), payload).body
    assert body.dimensions == {RatingDimension.ATTITUDE: VD, RatingDimension.QUALITY: VS}
    assert body.attitude is Attitude.BAD


@pytest.mark.parametrize(
    ("adapter", "payload", "attitude"),
    [
        ("gbt39046", gbt(attitude="好"), Attitude.GOOD),
        ("provincial", provincial(attitude="1"), Attitude.GOOD),
        ("provincial", provincial(attitude=2), Attitude.BAD),
        ("generic_json", generic(attitude="good"), Attitude.GOOD),
    ],
)
def test_attitude_codes(
    make_feed: Callable[..., EvaluatorFeed],
    adapter: str,
    payload: dict[str, Any],
    attitude: Attitude,
) -> None:
    assert one(make_feed(adapter), payload).body.attitude is attitude


@pytest.mark.parametrize(
    ("adapter", "payload"),
    [
        ("generic_json", generic(evaluation=2)),
        ("gbt39046", gbt(evaluateCount=2)),
        ("gbt39046", gbt(pjcs="2")),
        ("provincial", provincial(assessNumber=2)),
    ],
)
def test_second_evaluation(
    make_feed: Callable[..., EvaluatorFeed], adapter: str, payload: dict[str, Any]
) -> None:
    assert one(make_feed(adapter), payload).body.evaluation == 2


def test_gbt39046_local_time_in_the_hall_timezone(make_feed: Callable[..., EvaluatorFeed]) -> None:
    body = one(make_feed("gbt39046", "Asia/Urumqi"), gbt(ticketNo="B002")).body
    assert body.at == datetime(2026, 11, 2, 4, 15, tzinfo=UTC)  # Urumqi is UTC+6
    assert body.ticket_id == "20261102-B002"


def test_gbt39046_pinyin_field_names(make_feed: Callable[..., EvaluatorFeed]) -> None:
    payload = {
        "pjbh": "PJ-9",
        "bjbh": "C7",
        "pjqd": 3,
        "pjsj": "2026-11-02 10:15:00",
        "pjcs": 1,
        "myd": 4,
        "fxpj": {"efficiency": 3},
        "fwtd": "好",
        "phbh": "A017",
        "ckbh": 3,
        "gzrybh": "S12",
        "sbbh": "ev-w3",
    }
    body = one(make_feed("gbt39046"), payload).body
    assert (body.rating_id, body.case_no, body.level, body.at) == ("PJ-9", "C7", D, AT)
    assert body.dimensions == {RatingDimension.EFFICIENCY: BS}
    assert (body.ticket_id, body.window, body.staff, body.device) == (
        "20261102-A017",
        "3",
        "S12",
        "ev-w3",
    )
    assert body.attitude is Attitude.GOOD


@pytest.mark.parametrize(
    ("code", "channel"),
    [(1, RatingChannel.WEB), (2, RatingChannel.APP), (3, RatingChannel.EVALUATOR),
     (4, RatingChannel.KIOSK), (5, RatingChannel.SMS), (6, RatingChannel.PHONE),
     (9, RatingChannel.OTHER)],
)  # fmt: skip
def test_gbt39046_channels(
    make_feed: Callable[..., EvaluatorFeed], code: int, channel: RatingChannel
) -> None:
    assert one(make_feed("gbt39046"), gbt(channel=code)).body.channel is channel


def test_provincial_fields(make_feed: Callable[..., EvaluatorFeed]) -> None:
    payload = provincial(assessId="P-1", winNo=3, staffId="S12", ticketNo="A017", deviceNo="ev-3")
    fact = one(make_feed("provincial"), payload)
    body = fact.body
    assert (body.rating_id, body.case_no, body.window, body.staff, body.device) == (
        "P-1",
        "C2026-1",
        "3",
        "S12",
        "ev-3",
    )
    assert body.at == AT
    assert fact.ts == AT
    assert body.ticket_id == "20261102-A017"


# --- bad input --------------------------------------------------------------------------

BAD = [
    ("generic_json", b"{not json", "not JSON"),
    ("generic_json", b"\xff\xfe", "not JSON"),
    ("generic_json", b"[1, 2]", "not a JSON object"),
    ("generic_json", generic(level="great"), "level"),
    ("generic_json", generic(level=4), "not a number"),
    ("generic_json", {"level": "satisfied"}, "at: Field required"),
    ("generic_json", generic(at="2026-11-02T10:15:00"), "timezone"),
    ("generic_json", generic(at=AT_MS), "offset"),
    ("generic_json", generic(colour="red"), "colour: unknown field"),
    ("generic_json", generic(evaluation=3), "evaluation"),
    ("generic_json", generic(dimensions={"mood": "satisfied"}), "dimensions"),
    ("generic_json", generic(ticket="A 17"), "ticket"),
    ("gbt39046", gbt(satisfaction=6), "expected one of the satisfaction codes"),
    ("gbt39046", gbt(satisfaction=0), "expected one of the satisfaction codes"),
    ("gbt39046", gbt(satisfaction="very_satisfied"), "expected one of the satisfaction codes"),
    ("gbt39046", {"caseNo": "C1", "satisfaction": 1}, "evaluateTime: Field required"),
    ("gbt39046", gbt(evaluateTime="yesterday"), "evaluateTime"),
    ("gbt39046", gbt(pj=3), "pj: unknown field"),
    ("gbt39046", gbt(attitude="bad"), "好 or 差"),
    ("gbt39046", gbt(channel=7), "expected one of the channel codes"),
    ("provincial", provincial(pj=6), "expected one of the pj codes"),
    ("provincial", provincial(pj=0), "expected one of the pj codes"),
    ("provincial", {"projectNo": "C1", "pj": 5}, "assessTime: Field required"),
    ("provincial", provincial(assessTime=AT_MS // 1000), "milliseconds"),
    ("provincial", provincial(assessTime="2026-11-02 10:15:00"), "milliseconds"),
    ("provincial", provincial(satisfaction=1), "satisfaction: unknown field"),
    ("provincial", provincial(attitude="3"), "expected one of the attitude codes"),
    ("provincial", provincial(assessNumber=3), "assessNumber"),
]


@pytest.mark.parametrize(("adapter", "payload", "reason"), BAD)
def test_bad_input_is_dead_lettered_with_the_reason(
    make_feed: Callable[..., EvaluatorFeed],
    adapter: str,
    payload: dict[str, Any] | bytes,
    reason: str,
) -> None:
    feed = make_feed(adapter)
    msg = message(payload)
    assert feed.handle(msg) == []
    letters = feed._store.dead_letters("evaluators")
    assert len(letters) == 1
    assert reason in letters[0].reason
    assert (letters[0].topic, letters[0].payload) == (TOPIC, msg.payload)
    assert feed.counts == {"sent": 0, "duplicate": 0, "dead_letter": 1}
    # the feed goes on
    good = {"generic_json": generic(), "gbt39046": gbt(), "provincial": provincial()}[adapter]
    one(feed, good)


# --- duplicates -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("adapter", "payload"),
    [
        ("generic_json", generic(rating_id="EV-0001")),
        ("generic_json", generic(window="3", case_no="C1", ticket="A017")),
        ("gbt39046", gbt(pjbh="PJ-1")),
        ("gbt39046", gbt(windowNo="3")),
        ("provincial", provincial(assessId="P-1")),
        ("provincial", provincial(winNo="3")),
    ],
)
def test_duplicates_are_dropped_across_a_store_reopen(
    make_feed: Callable[..., EvaluatorFeed], adapter: str, payload: dict[str, Any]
) -> None:
    feed = make_feed(adapter)
    first = one(feed, payload)
    assert feed.handle(message(payload)) == []
    assert feed.counts == {"sent": 1, "duplicate": 1, "dead_letter": 0}
    feed._store.close()

    again = make_feed(adapter)  # a restart: a new store on the same file
    assert again.handle(message(payload)) == []
    assert again.counts["duplicate"] == 1
    assert again._store.dead_letters() == []
    assert first.body.rating_id


def test_different_ratings_without_ids_are_all_sent(
    make_feed: Callable[..., EvaluatorFeed],
) -> None:
    feed = make_feed()
    base = generic(window="3", case_no="C1", ticket="A017")
    variants = [
        base,
        {**base, "at": (AT + timedelta(seconds=1)).isoformat()},
        {**base, "level": "dissatisfied"},
        {**base, "window": "4"},
        {**base, "case_no": "C2"},
        {**base, "ticket": "A018"},
        {**base, "evaluation": 2},
    ]
    ids = {one(feed, v).body.rating_id for v in variants}
    assert len(ids) == len(variants)


def test_same_rating_at_the_same_instant_in_another_offset_is_a_duplicate(
    make_feed: Callable[..., EvaluatorFeed],
) -> None:
    feed = make_feed()
    one(feed, generic(window="3"))
    assert feed.handle(message(generic(window="3", at="2026-11-02T02:15:00+00:00"))) == []


def test_tick_sends_nothing_and_forgets_very_old_ratings(
    make_feed: Callable[..., EvaluatorFeed],
) -> None:
    feed = make_feed()
    one(feed, generic(rating_id="OLD"))
    assert feed.tick(AT + timedelta(days=1)) == []
    assert feed.handle(message(generic(rating_id="OLD"))) == []  # still remembered
    feed2 = make_feed()  # a fresh feed prunes on its first tick
    assert feed2.tick(AT + timedelta(days=500)) == []
    assert len(feed2.handle(message(generic(rating_id="OLD")))) == 1


def test_feed_protocol_attributes(make_feed: Callable[..., EvaluatorFeed]) -> None:
    feed = make_feed()
    assert feed.name == "evaluators"
    assert feed.topic_filter == "hallwatch/devices/h-ev/evaluators/+"


def test_hall_without_evaluators_is_refused(store_path: Path) -> None:
    store = FeedStore(store_path)
    try:
        with pytest.raises(ValueError, match="evaluators"):
            EvaluatorFeed(build_hall("h-ev"), store)
    finally:
        store.close()


# --- the documented examples ------------------------------------------------------------


def test_documented_examples_give_the_documented_fact(
    make_feed: Callable[..., EvaluatorFeed],
) -> None:
    doc = (Path(__file__).parents[1] / "docs" / "evaluators.md").read_text(encoding="utf-8")
    blocks = [json.loads(b.split("```")[0]) for b in doc.split("```json\n")[1:]]
    *examples, expected = blocks
    assert len(examples) == 3
    for adapter, example in zip(("generic_json", "gbt39046", "provincial"), examples, strict=True):
        body = one(make_feed(adapter), example).body.model_dump(mode="json")
        assert {**body, "rating_id": expected["rating_id"]} == expected, adapter


ID_NUMBER = "11010519491231002X"
LEAKY = [
    ("generic_json", generic(sfzh=ID_NUMBER)),
    ("generic_json", generic(window=ID_NUMBER + " 3")),
    ("generic_json", generic(extra={"zjh": ID_NUMBER.lower()})),
    ("gbt39046", gbt(satisfaction=ID_NUMBER)),
    ("gbt39046", gbt(attitude=ID_NUMBER)),
    ("gbt39046", gbt(evaluateTime=ID_NUMBER)),
    ("provincial", provincial(pj=ID_NUMBER)),
    ("provincial", provincial(assessTime=110105194912310021)),
    ("provincial", b"not json " + ID_NUMBER.encode()),
]


@pytest.mark.parametrize(("adapter", "payload"), LEAKY)
def test_dead_letters_and_logs_never_hold_an_id_number(
    make_feed: Callable[..., EvaluatorFeed],
    adapter: str,
    payload: dict[str, Any] | bytes,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level("DEBUG")
    feed = make_feed(adapter)
    assert feed.handle(message(payload)) == []
    [letter] = feed._store.dead_letters("evaluators")
    for blob in (letter.payload, letter.reason.encode(), caplog.text.encode()):
        assert b"110105" not in blob.upper(), blob
    assert letter.reason  # still says why


@pytest.mark.parametrize(
    ("adapter", "payload"),
    [
        ("gbt39046", gbt(attitude="张三")),
        ("gbt39046", gbt(satisfaction="张三")),
        ("gbt39046", gbt(evaluateTime="张三")),
        ("provincial", provincial(pj="张三")),
        ("provincial", provincial(assessTime=13800000000123)),
    ],
)
def test_reasons_name_the_field_but_never_quote_the_value(
    make_feed: Callable[..., EvaluatorFeed], adapter: str, payload: dict[str, Any]
) -> None:
    feed = make_feed(adapter)
    assert feed.handle(message(payload)) == []
    [letter] = feed._store.dead_letters("evaluators")
    assert "张三" not in letter.reason and "13800000000123" not in letter.reason
    assert any(name in letter.reason for name in ("attitude", "satisfaction", "Time", "pj"))


# --- nothing is lost ---------------------------------------------------------------------


def test_a_rating_seen_before_a_crash_is_written_once_on_the_next_start(
    make_feed: Callable[..., EvaluatorFeed],
) -> None:
    from edge.comms.mqtt_publisher import BrokerSettings
    from edge.feeds.runner import FeedRunner
    from hallwatch.contract import Fact

    feed = make_feed()
    fact = one(feed, generic(rating_id="r-1", level="dissatisfied"))
    [staged] = feed._store.pending()
    assert (staged.fact_id, staged.feed, staged.payload) == (fact.id, "evaluators", encode(fact))
    feed._store.close()  # the edge dies before writing the fact to the outbox

    again = make_feed()
    assert again.handle(message(generic(rating_id="r-1", level="dissatisfied"))) == []  # seen
    written: list[Fact] = []
    runner = FeedRunner([again], BrokerSettings(port=1), written.append, client_id="ev",
                        store=again._store)  # fmt: skip
    runner.start()  # staged facts are written before anything is subscribed or handled
    runner.stop()
    assert written == [fact]  # the same fact (same id), once
    assert again._store.pending() == []
    again.handle(message(generic(rating_id="r-1", level="dissatisfied")))
    assert written == [fact]


def test_a_duplicate_rating_stages_nothing(make_feed: Callable[..., EvaluatorFeed]) -> None:
    feed = make_feed()
    one(feed, generic(rating_id="r-2"))
    assert feed.handle(message(generic(rating_id="r-2"))) == []
    assert feed.handle(message(b"{not json")) == []
    assert len(feed._store.pending()) == 1
