"""Evidence snapshots through the API (issue 4): served to authorised roles only, scoped to
the alert's hall, gone after the retention; the retention purge and its hourly housekeeping.

Real SQLite stores, the real ingestor and the real app (``TestClient``); roles are set by
overriding ``get_caller`` as the access-control issue will.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from pydantic import ValidationError
from sqlalchemy import select

from aggregator.api.deps import ApiServices, Caller, Role, get_caller
from aggregator.service import AggregatorService, Housekeeping
from aggregator.settings import AggregatorSettings
from aggregator.store.evidence import EvidenceSnapshot, purge_evidence, store_evidence
from aggregator.store.state import Alert
from hallwatch.contract import AlertKind, PostState, encode, fact_topic, new_id
from tests.support.api import signed_in_app
from tests.test_zone_alerts import (
    BAD,
    GOOD,
    HALL,
    Harness,
    env_hall,
    hygiene,
    jpeg_bytes,
    occupancy,
    presence,
    snapshot,
    t,
)

OTHER = "h-env-b"


@dataclass
class Api:
    h: Harness
    client: TestClient

    def as_role(self, role: Role, halls: set[str] | None = None) -> None:
        caller = Caller(
            name="someone", role=role, halls=None if halls is None else frozenset(halls)
        )
        self.client.app.dependency_overrides[get_caller] = lambda: caller  # type: ignore[attr-defined]

    def alert(self, kind: AlertKind, hall: str = HALL) -> Alert:
        rows, _ = self.h.state.list_alerts(hall=hall, kind=kind.value)
        (row,) = rows
        return row

    def get(self, alert_id: str, hall: str = HALL) -> tuple[int, bytes, dict[str, str]]:
        r = self.client.get(f"/api/v1/halls/{hall}/alerts/{alert_id}/evidence")
        return r.status_code, r.content, dict(r.headers)

    def detail(self, alert_id: str, hall: str = HALL) -> str:
        r = self.client.get(f"/api/v1/halls/{hall}/alerts/{alert_id}/evidence")
        return str(r.json()["detail"])


@pytest.fixture
def api(tmp_path: Path) -> Iterator[Api]:
    h = Harness(tmp_path, halls={HALL: env_hall(HALL), OTHER: env_hall(OTHER)})
    h.feed(hygiene(BAD, t("10:00"), evidence=snapshot(t("10:05"), variant=1)))
    h.feed(occupancy(t("10:00"), 12))  # crowding without a snapshot
    h.feed(hygiene(BAD, t("10:00"), hall=OTHER, evidence=snapshot(t("10:05"), variant=2)))
    app = signed_in_app(
        ApiServices(state=h.state, halls=h.halls, series=h.series, evidence_retention_days=30)
    )
    with TestClient(app) as client:
        api = Api(h, client)
        api.as_role(Role.SUPERVISION_OFFICER)
        yield api
    h.close()


def test_officer_and_manager_get_the_exact_jpeg(api: Api) -> None:
    alert = api.alert(AlertKind.HYGIENE_BAD)
    code, body, headers = api.get(alert.id)
    assert code == 200
    assert body == jpeg_bytes(1) and body[:2] == b"\xff\xd8"
    assert headers["content-type"] == "image/jpeg"
    assert headers["cache-control"] == "private, no-store"
    api.as_role(Role.HALL_MANAGER, halls={HALL})
    assert api.get(alert.id)[:2] == (200, jpeg_bytes(1))
    api.as_role(Role.ADMIN)
    other = api.alert(AlertKind.HYGIENE_BAD, hall=OTHER)
    assert api.get(other.id, hall=OTHER)[:2] == (200, jpeg_bytes(2))


def test_auditor_is_refused(api: Api) -> None:
    api.as_role(Role.AUDITOR)
    alert = api.alert(AlertKind.HYGIENE_BAD)
    code, body, _ = api.get(alert.id)
    assert code == 403 and b"\xff\xd8" not in body
    assert "auditor" in api.detail(alert.id) and "hall_manager" in api.detail(alert.id)


def test_another_halls_alert_is_404_with_a_clear_message(api: Api) -> None:
    other = api.alert(AlertKind.HYGIENE_BAD, hall=OTHER)
    code, body, _ = api.get(other.id, hall=HALL)
    assert code == 404 and b"\xff\xd8" not in body
    assert api.detail(other.id) == f"alert {other.id} is not an alert of hall {HALL}"
    assert api.detail("01NOSUCHALERT") == f"alert 01NOSUCHALERT is not an alert of hall {HALL}"
    # a hall the caller may not see: the error every route gives
    api.as_role(Role.HALL_MANAGER, halls={HALL})
    assert api.get(other.id, hall=OTHER)[0] == 404
    assert api.detail(other.id, hall=OTHER) == f"unknown hall {OTHER!r}"


def test_alert_without_snapshot_is_404(api: Api) -> None:
    crowding = api.alert(AlertKind.CROWDING)
    assert api.get(crowding.id)[0] == 404
    assert api.detail(crowding.id) == f"alert {crowding.id} has no snapshot"


def test_purged_snapshot_is_410_and_alerts_carry_url_zone_duration(api: Api) -> None:
    alert = api.alert(AlertKind.HYGIENE_BAD)
    page = api.client.get("/api/v1/alerts", params={"hall": HALL}).json()
    out = {a["kind"]: a for a in page["items"]}
    hyg, crowd = out["hygiene_bad"], out["crowding"]
    assert hyg["evidence_url"] == f"/api/v1/halls/{HALL}/alerts/{alert.id}/evidence"
    assert (hyg["zone"], hyg["window"], crowd["zone"], crowd["evidence_url"]) == (
        "w1-public", "1", "waiting", None,
    )  # fmt: skip
    assert hyg["duration_s"] > 0 and hyg["end"] is None
    with api.h.state.session() as session:
        assert purge_evidence(session, api.h.now + timedelta(seconds=1)) == 2
    code, body, _ = api.get(alert.id)
    assert code == 410 and b"\xff\xd8" not in body
    assert api.detail(alert.id) == (
        f"the snapshot of alert {alert.id} was deleted after the 30-day retention"
    )


def test_purge_deletes_only_old_rows(api: Api) -> None:
    h = api.h
    with h.state.session() as session:
        old = store_evidence(session, HALL, snapshot(t("10:00")), fact_id="F-old",
                             zone="w1-public", now=t("10:00") - timedelta(days=181))  # fmt: skip
        edge = store_evidence(session, HALL, snapshot(t("10:00")), fact_id="F-edge",
                              zone="w1-public", now=t("10:00") - timedelta(days=180))  # fmt: skip
    cutoff = t("10:00") - timedelta(days=180)
    with h.state.session() as session:
        assert purge_evidence(session, cutoff) == 1
    with h.state.read_session() as session:
        ids = set(session.scalars(select(EvidenceSnapshot.id)))
    assert old not in ids and edge in ids and len(ids) == 3
    assert api.get(api.alert(AlertKind.HYGIENE_BAD).id)[0] == 200


def test_off_post_snapshot_is_served(api: Api) -> None:
    api.h.feed(presence("w1", PostState.OFF_POST, t("10:00"), evidence=snapshot(t("10:00"), 4)))
    api.h.rule.evaluate(t("10:11"))
    off = api.alert(AlertKind.OFF_POST)
    assert api.get(off.id)[:2] == (200, jpeg_bytes(4))
    one = api.client.get(f"/api/v1/alerts/{off.id}").json()
    assert one["evidence_url"] == f"/api/v1/halls/{HALL}/alerts/{off.id}/evidence"


def _alert_with(snapshot_id: str, zone: str) -> Alert:
    """A resolved alert from video pointing at a snapshot (as the rules record one)."""
    at = t("10:00")
    return Alert(id=new_id(), hall=HALL, kind="hygiene_bad", post=None, window=None, zone=zone,
                 evidence_id=snapshot_id, state="resolved", start=at, end=at, opened_at=at,
                 resolved_at=at, message="")  # fmt: skip


def test_service_purges_at_most_hourly_with_its_retention_and_grace(tmp_path: Path) -> None:
    h = Harness(tmp_path)
    settings = AggregatorSettings(halls=[], http_port=0, evidence_retention_days=7)
    assert settings.evidence_unused_grace_h == 24
    service = AggregatorService(settings, h.halls, state=h.state, series=h.series, mqtt=False)
    try:
        assert service.app.state.services.evidence_retention_days == 7
        now = t("10:00", day=20)
        ages = {"8d": timedelta(days=8), "6d": timedelta(days=6), "2d": timedelta(days=2),
                "12h": timedelta(hours=12)}  # fmt: skip
        with h.state.session() as session:
            ids = {name: store_evidence(session, HALL, snapshot(t("10:00")), fact_id=f"F{name}",
                                        zone="w1-public", now=now - age)
                   for name, age in ages.items()}  # fmt: skip
            session.add_all([_alert_with(ids["8d"], "z8"), _alert_with(ids["6d"], "z6")])
        # the 8-day-old one is past the retention, the 2-day-old one unused past the grace
        assert service.housekeeping(now) == Housekeeping(evidence=2, ledger=0)
        with h.state.read_session() as session:
            assert set(session.scalars(select(EvidenceSnapshot.id))) == {ids["6d"], ids["12h"]}
        with h.state.session() as session:
            store_evidence(session, HALL, snapshot(t("10:00")), fact_id="F9", zone="w1-public",
                           now=now - timedelta(days=9))  # fmt: skip
        assert service.housekeeping(now + timedelta(minutes=59)) is None  # not yet an hour
        assert service.housekeeping(now + timedelta(hours=1)) == Housekeeping(evidence=1, ledger=0)
    finally:
        h.close()


def test_unused_grace_is_bounded() -> None:
    for hours in (0, 24 * 31):
        with pytest.raises(ValidationError, match="evidence_unused_grace_h"):
            AggregatorSettings(halls=[], evidence_unused_grace_h=hours)
    assert AggregatorSettings(halls=[], evidence_unused_grace_h=1).evidence_unused_grace_h == 1


def test_snapshots_no_alert_uses_go_after_the_grace(tmp_path: Path) -> None:
    """Friday 2026-11-06 to Sunday the 8th (the hall is closed at the weekend)."""
    h = Harness(tmp_path)
    fri, sun = 6, 8
    off, on = PostState.OFF_POST, PostState.ON_POST
    try:
        h.feed(presence("w1", off, t("10:00", fri), evidence=snapshot(t("10:00", fri), 1)))
        h.feed(presence("w1", on, t("10:01", fri)))  # a one-minute absence: never alerts
        h.feed(presence("w2", off, t("10:00", fri), evidence=snapshot(t("10:00", fri), 2)))
        h.feed(presence("w2", on, t("10:30", fri)))  # off-post alert recorded at the return
        h.feed(occupancy(t("11:00", fri), 12, evidence=snapshot(t("11:00", fri), 3)))
        h.feed(presence("w1", off, t("17:10", fri), evidence=snapshot(t("17:10", fri), 4)))
        h.feed(hygiene(BAD, t("17:30", fri), evidence=snapshot(t("17:30", fri), 5)))
        h.feed(hygiene(BAD, t("17:40", fri), evidence=snapshot(t("17:40", fri), 6), zone="door"))
        h.feed(hygiene(GOOD, t("18:00", fri), zone="door"))  # cleared before opening: no alert
        h.feed(presence("w2", off, t("09:30", sun), evidence=snapshot(t("09:30", sun), 7)))
        h.feed(presence("w2", on, t("09:31", sun)))  # unused, but only 30 minutes old
        snaps = {s.jpeg: s.id for s in h.snapshots()}
        by_variant = {v: snaps[jpeg_bytes(v)] for v in range(1, 8)}
        assert len(snaps) == 7
        assert {a.evidence_id for a in h.alerts()} == {by_variant[2], by_variant[3]}
        now = t("10:00", sun)
        with h.state.session() as session:
            deleted = purge_evidence(session, now - timedelta(days=180),
                                     unused_older_than=now - timedelta(hours=24))  # fmt: skip
        assert deleted == 2  # the one-minute absence's and the night's cleared episode's
        with h.state.read_session() as session:
            kept = set(session.scalars(select(EvidenceSnapshot.id)))
        # alerts (2: off-post, 3: crowding), the running absence (4) and 环境差 episode (5)
        # that may still alert on Monday, and the young one (7) stay
        assert kept == {by_variant[v] for v in (2, 3, 4, 5, 7)}
        with h.state.session() as session:  # without a grace: the retention alone
            assert purge_evidence(session, now - timedelta(days=180)) == 0
    finally:
        h.close()


# -- dead letters ----------------------------------------------------------------------------


def test_dead_letters_keep_no_snapshot(api: Api) -> None:
    h = api.h
    fact = hygiene(BAD, t("11:00"), evidence=snapshot(t("11:00"), variant=8))
    b64 = fact.body.evidence.jpeg if fact.body.evidence else ""
    payload = encode(fact)
    assert b64.encode() in payload and len(b64) > 1000
    # a hygiene fact on the occupancy topic: rejected, kept as a dead letter
    outcome = h.ingestor.handle(fact_topic(HALL, "occupancy"), payload)
    assert outcome.value == "dead_lettered"
    (letter,) = h.state.dead_letters(limit=1)
    marker = f"<jpeg removed, {len(b64)} chars>"
    assert letter.payload == payload.replace(b64.encode(), marker.encode())
    assert letter.payload_size == len(payload)
    tree = json.loads(letter.payload)
    assert tree["body"]["evidence"]["jpeg"] == marker
    assert tree["body"]["evidence"]["faces_blurred"] == 1 and tree["id"] == fact.id
    # not JSON, or JSON without a snapshot: kept as received
    for raw in (b"\xff\xd8 not json " + b64.encode()[:200], json.dumps({"body": {}}).encode()):
        h.ingestor.handle(fact_topic(HALL, "hygiene"), raw)
        assert h.state.dead_letters(limit=1)[0].payload == raw
