"""The aggregator process, wired: stores, ingest, MQTT, the rule ticker and the HTTP API.

The rule ticker runs the off-post rule and the 异常办件 escalation
(:meth:`~aggregator.cases.register.CaseRegister.escalate`) every ``rule_tick_s``;
anomaly alerts go to the same sinks as off-post alerts, and to SMS when
``HALLWATCH_SMS_GATEWAY_URL`` is set. Device-offline alerts
(:class:`~aggregator.rules.device_offline.DeviceOfflineRule`) are raised at ingest and go
to the same sinks (MQTT alerts topic, live bus), and so are 环境差 and crowding alerts
(:class:`~aggregator.rules.zone_alerts.ZoneAlertRule`; the ticker opens the 环境差 alerts
of zones still dirty when service time begins). The ticker's housekeeping deletes
evidence snapshots older than ``evidence_retention_days``, and those no alert uses older
than ``evidence_unused_grace_h``, and the dedup ledger's rows of facts older than
``ledger_retention_days`` (plus a day), at most once an hour. A second thread runs the report
scheduler (:class:`~aggregator.reports.runs.ReportRunner`, every ``report_check_s``):
daily reports, monthly statistics, bulletins, and failed pushes retried.

:class:`AggregatorService` is what the CLI (``hallwatch aggregator``) and the demo start.
Everything runs in background threads of the calling process, so the demo can run an
edge worker, an embedded broker and the aggregator side by side.

Example:
    >>> from aggregator.settings import AggregatorSettings
    >>> service = AggregatorService.from_settings(AggregatorSettings(
    ...     halls=["deploy/examples/hall.yaml"], http_port=0))  # doctest: +SKIP
    >>> service.start(); print(service.url); service.stop()  # doctest: +SKIP
"""

from __future__ import annotations

import logging
import socket
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from types import TracebackType

import uvicorn

from aggregator.alerts import BusAlertSink, FanoutSink
from aggregator.api.deps import ApiServices
from aggregator.api.main import create_app
from aggregator.auth.roles import Role
from aggregator.auth.users import UserStore
from aggregator.bus import LiveBus
from aggregator.cases.notify import CaseNotifier
from aggregator.cases.register import CaseRegister
from aggregator.ingest import Ingestor
from aggregator.mqtt_ingest import MqttAlertPublisher, MqttIngest
from aggregator.notify.channels import PahoTopicPublisher
from aggregator.notify.routing import AlertRouter
from aggregator.notify.sms import SmsNotifier
from aggregator.reports.runs import PushTarget, ReportRunner
from aggregator.rules.device_offline import DeviceOfflineRule
from aggregator.rules.off_post import OffPostRule
from aggregator.rules.zone_alerts import ZoneAlertRule
from aggregator.settings import AggregatorSettings
from aggregator.store.evidence import purge_evidence
from aggregator.store.state import StateStore
from aggregator.store.timeseries import SqliteTimeSeriesStore, TimeSeriesStore
from hallwatch.config.errors import mask_url
from hallwatch.config.models import HallConfig
from hallwatch.contract import utcnow

logger = logging.getLogger(__name__)

PURGE_EVERY = timedelta(hours=1)
"""How often the housekeeping deletes expired and unused evidence snapshots, and the dedup
ledger's expired rows."""
LEDGER_PURGE_BUDGET_S = 0.5
"""Seconds of one tick's ledger purge: a ledger far behind (the first purge after an upgrade)
is forgotten slice by slice, at every tick, the rules ticking between the slices."""
LEDGER_PURGE_MARGIN = timedelta(days=1)
"""Ledger rows are kept this long past the ingest's horizon: replicas whose clocks differ
by less than this never forget a fact another one still accepts."""


@dataclass(frozen=True, slots=True)
class Housekeeping:
    """What one housekeeping run deleted.

    Attributes:
        evidence: Evidence snapshots (expired, or used by no alert past the grace).
        ledger: Dedup ledger rows of facts older than ``ledger_retention_days`` plus
            :data:`LEDGER_PURGE_MARGIN`.
    """

    evidence: int
    ledger: int


def load_halls(paths: Iterable[str | Path]) -> dict[str, HallConfig]:
    """Load hall configs by id (camera URLs' ``${VAR}`` need not be set: unused here).

    Raises:
        hallwatch.config.ConfigError: A file is invalid.
        ValueError: Two files describe the same hall.
    """
    from hallwatch.config import read_hall_config

    halls: dict[str, HallConfig] = {}
    for path in paths:
        # the edge's credentials are not needed here: their warnings are not the point
        config, _warnings = read_hall_config(str(path), require_env=False)
        if config.hall.id in halls:
            raise ValueError(f"hall {config.hall.id!r} is configured twice (in {path})")
        halls[config.hall.id] = config
    return halls


def build_series_store(settings: AggregatorSettings) -> TimeSeriesStore:
    """The time-series store ``settings.series_backend`` selects (docs/storage.md)."""
    if settings.series_backend == "sqlite":
        return SqliteTimeSeriesStore(settings.resolved_series_path())
    from aggregator.store.line_protocol import LineProtocolStore

    if not settings.series_url:
        raise ValueError(f"series_backend {settings.series_backend} needs series_url")
    token = settings.series_token.get_secret_value() if settings.series_token else None
    logger.info("time series on %s (%s)", mask_url(settings.series_url), settings.series_backend)
    return LineProtocolStore(
        settings.series_url,
        flavour=settings.series_backend,
        token=token,
        org=settings.series_org,
        bucket=settings.series_bucket,
        query_url=settings.series_query_url,
        batch_size=settings.series_batch_size,
        flush_interval_s=settings.series_flush_interval_s,
        max_pending=settings.series_max_pending,
        write_timeout_s=settings.series_write_timeout_s,
    )


class NoUsersError(RuntimeError):
    """The aggregator has no users: it would serve a dashboard nobody can sign in to."""


class AggregatorService:
    """One aggregator replica.

    Args:
        settings: Process settings.
        halls: Hall configurations by id.
        state: State store (default: from ``settings.database_url``).
        series: Time-series store (default: the one ``settings.series_backend`` selects).
        mqtt: Whether to connect to the broker (False: API and rules only).
        clock: Source of "now" for ingest and the rule ticker.
    """

    def __init__(
        self,
        settings: AggregatorSettings,
        halls: Mapping[str, HallConfig],
        *,
        state: StateStore | None = None,
        series: TimeSeriesStore | None = None,
        mqtt: bool = True,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.settings = settings
        self.halls = dict(halls)
        self.clock = clock
        self.state = state or StateStore(settings.database_url)
        self.series = series or build_series_store(settings)
        self.bus = LiveBus()
        self.sink = FanoutSink([BusAlertSink(self.bus)])
        self.rule = OffPostRule(self.state, self.halls, self.sink)
        self.device_rule = DeviceOfflineRule(self.halls, self.sink)
        self.zone_rule = ZoneAlertRule(self.state, self.halls, self.sink)
        self.sms = SmsNotifier.from_settings(settings)
        self.router = AlertRouter(self.state, self.halls, sms=self.sms, clock=clock)
        self.cases = CaseRegister(
            self.state,
            self.halls,
            CaseNotifier(self.halls, self.sink, self.sms),
            bus=self.bus,
            clock=clock,
        )
        self.ingestor = Ingestor(
            self.state,
            self.series,
            self.halls,
            self.bus,
            rule=self.rule,
            cases=self.cases,
            devices=self.device_rule,
            zones=self.zone_rule,
            clock=clock,
            max_age=timedelta(days=settings.ledger_retention_days),
        )
        self.mqtt: MqttIngest | None = None
        mqtt_connected: Callable[[], bool] | None = None
        if mqtt:
            client = self.mqtt = MqttIngest(settings, self.ingestor)
            self.sink.sinks.append(MqttAlertPublisher(client.client))
            self.router.mqtt = PahoTopicPublisher(client.client)
            mqtt_connected = lambda: client.connected  # noqa: E731
        self.sink.sinks.append(self.router)
        self.reports = ReportRunner(
            self.state,
            self.series,
            self.halls,
            settings.report_dir,
            settings.daily_report_time(),
            PushTarget(
                url=settings.report_push_url or None,
                token=settings.report_push_token,
                retries=settings.report_push_retries,
                timeout_s=settings.report_push_timeout_s,
            ),
            catch_up_days=settings.report_catch_up_days,
        )
        self.users = UserStore(
            self.state, self.halls, session_ttl=timedelta(hours=settings.session_ttl_h)
        )
        self.app = create_app(
            ApiServices(
                state=self.state,
                halls=self.halls,
                bus=self.bus,
                cases=self.cases,
                mqtt_connected=mqtt_connected,
                sse_heartbeat_s=settings.sse_heartbeat_s,
                series=self.series,
                evidence_retention_days=settings.evidence_retention_days,
                reports=self.reports,
                users=self.users,
                cookie_secure=settings.cookie_secure,
                alert_sink=self.sink,
            )
        )
        self._reporter: threading.Thread | None = None
        self._purged_at: datetime | None = None
        self._ledger_resume: str | None = None
        """Where an unfinished ledger purge goes on at the next tick (None: none)."""
        self._stop = threading.Event()
        self._ticker: threading.Thread | None = None
        self._server: uvicorn.Server | None = None
        self._server_thread: threading.Thread | None = None
        self._socket: socket.socket | None = None
        self._url: str | None = None

    @classmethod
    def from_settings(
        cls,
        settings: AggregatorSettings,
        *,
        halls: Mapping[str, HallConfig] | None = None,
        mqtt: bool = True,
    ) -> AggregatorService:
        """Build a service, loading ``settings.halls`` unless ``halls`` is given."""
        if halls is None:
            halls = load_halls(settings.halls)
        if not halls:
            logger.warning("no halls configured: every fact will be dead-lettered")
        return cls(settings, halls, mqtt=mqtt)

    @property
    def url(self) -> str:
        """Base URL of the HTTP API (valid once bound, i.e. after :meth:`start`)."""
        if self._url is None:
            raise RuntimeError("the service is not started")
        return self._url

    def ensure_users(self) -> None:
        """Make sure someone can sign in, or refuse to start.

        When no enabled admin exists and ``admin_password`` is set, the user ``admin`` is
        created with it (settings refuse a weak or well-known one).

        Raises:
            NoUsersError: There are no users and no ``admin_password`` to make one.
        """
        self.state.create_all()
        password = self.settings.admin_password
        if password is not None and self.users.count(Role.ADMIN) == 0:
            if self.users.get("admin") is not None:
                logger.warning(
                    "HALLWATCH_ADMIN_PASSWORD is set but a user 'admin' exists (disabled, or "
                    "not an admin): nothing created; fix it with `hallwatch users`"
                )
            else:
                self.users.add("admin", role=Role.ADMIN, password=password.get_secret_value(),
                               actor="HALLWATCH_ADMIN_PASSWORD")  # fmt: skip
                logger.warning("created the user admin from HALLWATCH_ADMIN_PASSWORD: unset it")
        if self.users.count() == 0:
            raise NoUsersError(
                "no users: nobody could sign in. Set HALLWATCH_ADMIN_PASSWORD (12+ characters) "
                "for the first start, or add one with `hallwatch users add NAME --role admin`"
            )

    def start(self, timeout: float = 10.0) -> None:
        """Create tables, connect MQTT, start the rule ticker and the HTTP server.

        Raises:
            RuntimeError: The HTTP server did not start within ``timeout`` seconds.
            OSError: The HTTP port could not be bound.
        """
        logger.info(
            "aggregator starting: database %s, %d hall(s)",
            self.state.safe_url(),
            len(self.halls),
        )
        self.state.create_all()
        self._stop.clear()
        if self.sms is not None:
            self.sms.start()
        if self.mqtt is not None:
            self.mqtt.start()
        self._ticker = threading.Thread(target=self._tick, name="hallwatch-rules", daemon=True)
        self._ticker.start()
        self._reporter = threading.Thread(
            target=self._report_tick, name="hallwatch-reports", daemon=True
        )
        self._reporter.start()
        self._start_http(timeout)
        logger.info("aggregator API at %s", self.url)

    def _start_http(self, timeout: float) -> None:
        sock = socket.socket(socket.AF_INET6 if ":" in self.settings.http_host else socket.AF_INET)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((self.settings.http_host, self.settings.http_port))
        sock.listen(128)
        sock.set_inheritable(True)
        self._socket = sock
        host, port = sock.getsockname()[:2]
        self._url = f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"
        config = uvicorn.Config(
            self.app,
            log_level="warning",
            lifespan="off",
            timeout_graceful_shutdown=2,
            access_log=False,
        )
        self._server = uvicorn.Server(config)
        server = self._server
        self._server_thread = threading.Thread(
            target=lambda: server.run(sockets=[sock]), name="hallwatch-http", daemon=True
        )
        self._server_thread.start()
        deadline = time.monotonic() + timeout
        while not server.started and self._server_thread.is_alive():
            if time.monotonic() > deadline:
                break
            time.sleep(0.01)
        if not server.started:
            raise RuntimeError("the HTTP server did not start")

    def run_until(self, stop: threading.Event) -> None:
        """Start, block until ``stop`` is set (e.g. by a signal handler), then stop."""
        self.start()
        try:
            stop.wait()
        finally:
            self.stop()

    def wait_mqtt_connected(self, timeout: float) -> bool:
        """Block until the MQTT client is connected and subscribed (True) or timeout."""
        return self.mqtt.wait_connected(timeout) if self.mqtt else False

    def _tick(self) -> None:
        while not self._stop.wait(self.settings.rule_tick_s):
            now = self.clock()
            try:
                self.rule.evaluate(now)
            except Exception:
                logger.exception("rule evaluation failed; retrying at the next tick")
            try:
                self.zone_rule.evaluate(now)
            except Exception:
                logger.exception("zone rule evaluation failed; retrying at the next tick")
            try:
                self.cases.escalate(now)
            except Exception:
                logger.exception("anomaly escalation failed; retrying at the next tick")
            self.router.tick(now)  # alert escalation, held texts; logs its own failures
            try:
                self.housekeeping(now)
            except Exception:
                logger.exception("housekeeping failed; retrying at the next tick")

    def _report_tick(self) -> None:
        # Its own thread: a slow push endpoint must not hold up the supervision rules.
        while not self._stop.wait(self.settings.report_check_s):
            try:
                self.reports.tick(self.clock())
            except Exception:
                logger.exception("report scheduler failed; retrying at the next tick")

    def housekeeping(self, now: datetime) -> Housekeeping | None:
        """Delete evidence snapshots past the retention, and those no alert uses past the
        grace (:func:`~aggregator.store.evidence.purge_evidence`), and the dedup ledger's
        rows of facts the ingest now refuses as too old
        (:meth:`~aggregator.store.state.StateStore.purge_ledger`), at most once per hour.

        The ledger purge takes at most :data:`LEDGER_PURGE_BUDGET_S`; one that did not
        finish goes on at the next call (the next tick), until it does.

        Args:
            now: The ticker's time.

        Returns:
            What was deleted, or None if the last run is under an hour old and no ledger
            purge is unfinished.
        """
        due = self._purged_at is None or now - self._purged_at >= PURGE_EVERY
        if not due and self._ledger_resume is None:
            return None
        evidence = self._purge_evidence(now) if due else 0
        ledger = self._purge_ledger(now)
        if due:  # after both: a failed purge is tried again at the next tick
            self._purged_at = now
        return Housekeeping(evidence=evidence, ledger=ledger)

    def _purge_evidence(self, now: datetime) -> int:
        days = self.settings.evidence_retention_days
        grace_h = self.settings.evidence_unused_grace_h
        with self.state.session() as session:
            deleted = purge_evidence(
                session,
                now - timedelta(days=days),
                unused_older_than=now - timedelta(hours=grace_h),
            )
        if deleted:
            logger.info(
                "deleted %d evidence snapshot(s): older than %d days, or used by no alert "
                "and older than %d h",
                deleted,
                days,
                grace_h,
            )
        else:
            logger.debug("no evidence snapshot to delete (%d days, %d h unused)", days, grace_h)
        return deleted

    def _purge_ledger(self, now: datetime) -> int:
        # Counted from the newest fact stored, when it is older than ``now``: a clock that
        # jumps ahead must not make the ledger forget facts the ingest accepts again once
        # the clock is right. No fact stored since start: nothing to check it against.
        newest = self.ingestor.newest_fact_ts
        if newest is None:
            return 0
        days = self.settings.ledger_retention_days
        purge = self.state.purge_ledger(
            min(now, newest) - timedelta(days=days) - LEDGER_PURGE_MARGIN,
            after=self._ledger_resume or "",
            budget_s=LEDGER_PURGE_BUDGET_S,
        )
        self._ledger_resume = purge.resume_after
        if purge.deleted:
            logger.info(
                "the dedup ledger forgot %d fact(s) observed more than %d days ago%s",
                purge.deleted,
                days + LEDGER_PURGE_MARGIN.days,
                "" if purge.resume_after is None else " (more at the next tick)",
            )
        return purge.deleted

    def stop(self, timeout: float = 5.0) -> None:
        """Stop everything (idempotent). Unacknowledged facts stay with the broker."""
        self._stop.set()
        self.bus.close()  # ends SSE streams, so the HTTP server can shut down
        if self._server is not None:
            self._server.should_exit = True
        if self._server_thread is not None:
            self._server_thread.join(timeout)
            self._server_thread = None
        if self._ticker is not None:
            self._ticker.join(timeout)
            self._ticker = None
        if self._reporter is not None:
            self._reporter.join(timeout)
            self._reporter = None
        if self.mqtt is not None:
            self.mqtt.stop(timeout)
        if self.sms is not None:
            self.sms.stop(timeout)
        if self._socket is not None:
            self._socket.close()
        self.series.close()
        self.state.dispose()
        logger.info("aggregator stopped")

    def __enter__(self) -> AggregatorService:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
