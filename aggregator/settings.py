"""Aggregator settings, from the environment (prefix ``HALLWATCH_``) or keyword arguments.

Example:
    >>> s = AggregatorSettings(halls=["deploy/examples/hall.yaml"], http_port=0)
    >>> s.http_host, s.share_group is None
    ('127.0.0.1', True)

``HALLWATCH_HALLS`` accepts a JSON list or a comma-separated list of YAML paths.
"""

from __future__ import annotations

import socket
from collections.abc import Sequence
from datetime import time
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict
from sqlalchemy.engine import make_url

from aggregator.auth.passwords import WELL_KNOWN, weak_password_reason


def _default_client_id() -> str:
    host = "".join(c if c.isalnum() or c in "-_." else "-" for c in socket.gethostname())
    return f"hallwatch-aggregator-{host or 'local'}"[:64]


class AggregatorSettings(BaseSettings):
    """Everything the aggregator process needs to start.

    Secrets have no defaults: set ``HALLWATCH_MQTT_PASSWORD`` in the environment (it is a
    ``SecretStr`` and never appears in a repr or a log).
    """

    model_config = SettingsConfigDict(env_prefix="HALLWATCH_", extra="ignore")

    database_url: str = Field(
        default="sqlite:///var/hallwatch.sqlite",
        repr=False,  # may hold a password; log safe_database_url()
        description="SQLAlchemy URL of the state database (alerts, post state, ledger).",
    )
    series_path: Path | None = Field(
        default=None,
        description="SQLite file of the embedded time-series store; None: next to a SQLite "
        "state database (``<name>-series.sqlite``), else var/hallwatch-series.sqlite.",
    )
    series_backend: Literal["sqlite", "victoriametrics", "influxdb"] = Field(
        default="sqlite",
        description="Time-series store: the embedded SQLite file (series_path), or a "
        "line-protocol server at series_url (docs/storage.md).",
    )
    series_url: str | None = Field(
        default=None,
        repr=False,  # may hold credentials
        description="Write base URL of the line-protocol server: InfluxDB "
        "``http://influx:8086``, VictoriaMetrics ``http://vm:8428`` or (cluster) "
        "``http://vminsert:8480/insert/0/influx``. Required unless series_backend is sqlite.",
    )
    series_ack_when_written: bool = Field(
        default=False,
        description="With a line-protocol series server: acknowledge facts to the broker "
        "only once the server has their points. Nothing is then lost if the aggregator "
        "dies while the server is down (the broker delivers the facts again), but a "
        "server outage also stops ingest, hence alerts, once the broker's in-flight window "
        "is full. False: facts are acknowledged once their state is stored; their points "
        "wait in memory (up to the store's max_pending) and are lost if the process dies "
        "before the server is back (docs/storage.md).",
    )
    series_query_url: str | None = Field(
        default=None,
        repr=False,
        description="Read base URL; None: series_url. VictoriaMetrics cluster: "
        "``http://vmselect:8481/select/0/prometheus``.",
    )
    series_token: SecretStr | None = Field(
        default=None, description="API token of the time-series server (InfluxDB: required)."
    )
    series_org: str = Field(default="", max_length=256, description="InfluxDB organization.")
    series_bucket: str = Field(
        default="hallwatch", min_length=1, max_length=256, description="InfluxDB bucket."
    )
    series_batch_size: int = Field(
        default=500, ge=1, le=50_000, description="Points per write request."
    )
    series_flush_interval_s: float = Field(
        default=1.0, gt=0, le=60, description="Longest a point waits for its batch to fill."
    )
    series_max_pending: int = Field(
        default=100_000,
        ge=100,
        le=10_000_000,
        description="Points held in memory while the server is slow or down; then ingest "
        "blocks (facts stay unacknowledged at the broker).",
    )
    series_write_timeout_s: float = Field(
        default=30.0,
        gt=0,
        le=3600,
        description="How long a write blocks on a full outbox before the fact is retried.",
    )
    halls: Annotated[list[Path], NoDecode] = Field(
        default_factory=list, description="Hall configuration YAML files."
    )
    mqtt_host: str = Field(default="127.0.0.1", description="MQTT broker host.")
    mqtt_port: int = Field(default=1883, ge=1, le=65535, description="MQTT broker port.")
    mqtt_username: str | None = Field(default=None, description="MQTT user name.")
    mqtt_password: SecretStr | None = Field(default=None, description="MQTT password.")
    mqtt_tls: bool = Field(default=False, description="Connect with TLS.")
    mqtt_ca_file: Path | None = Field(
        default=None, description="CA bundle for TLS; None: the system store."
    )
    mqtt_protocol: Literal["5", "3.1.1"] = Field(
        default="5",
        description="MQTT protocol version. Use 3.1.1 for brokers that speak only that "
        "(amqtt, the demo's embedded broker).",
    )
    mqtt_client_id: str = Field(
        default_factory=_default_client_id,
        min_length=1,
        max_length=128,
        description="MQTT client id; fixed, so the persistent session survives restarts. "
        "Each replica needs its own.",
    )
    mqtt_session_expiry_s: int = Field(
        default=7 * 24 * 3600,
        ge=0,
        le=0xFFFFFFFF,
        description="MQTT 5 session expiry: how long the broker keeps queued facts for an "
        "aggregator that is down.",
    )
    mqtt_keepalive_s: int = Field(default=30, ge=5, le=3600, description="MQTT keepalive.")
    mqtt_receive_maximum: int = Field(
        default=8000,
        ge=1,
        le=65535,
        description="MQTT 5 receive maximum: facts the broker may send before the first is "
        "acknowledged, which bounds the ingest batch (3.1.1: the broker's "
        "max_inflight_messages). Twice ingest_batch_max: the next batch arrives while one "
        "is stored.",
    )
    ingest_batch_max: int = Field(
        default=4000,
        ge=1,
        le=10_000,
        description="Most messages ingested in one state transaction: the worker takes what "
        "is queued, up to this many (a backlog drains in batches; live traffic is mostly "
        "batches of one).",
    )
    gc_young_threshold: int = Field(
        default=100_000,
        ge=0,
        le=1_000_000,
        description="Python's garbage collector in the aggregator process: allocations net "
        "of frees before a young-generation collection (Python's default, 700, made ingest "
        "~30 % slower: a batch's objects were scanned again and again); start-up's objects "
        "are frozen too. 0 leaves the collector as Python sets it (aggregator/runtime.py).",
    )
    share_group: str | None = Field(
        default=None,
        pattern=r"^[A-Za-z0-9_-]{1,64}$",
        description="MQTT 5 shared-subscription group (replicas split the facts); None: a "
        "plain subscription (every replica gets every fact).",
    )
    http_host: str = Field(default="127.0.0.1", description="Address the HTTP API binds.")
    http_port: int = Field(default=8000, ge=0, le=65535, description="Port; 0 picks a free one.")
    rule_tick_s: float = Field(
        default=1.0, gt=0, le=60, description="Period of the supervision rules' evaluation."
    )
    evidence_retention_days: int = Field(
        default=180,
        ge=1,
        le=3650,
        description="Days evidence snapshots (images of alerts from video) are kept after "
        "they are stored; older ones are deleted hourly, and asking for one answers 410.",
    )
    ledger_retention_days: int = Field(
        default=90,
        ge=14,
        le=3650,
        description="Days the dedup ledger remembers a fact, counted from the fact's time. "
        "Facts observed longer ago are refused at ingest (dead-lettered as too_old, the "
        "payload kept): a redelivery of one could no longer be told from a first delivery. "
        "Ledger rows older than this plus one day are deleted hourly. At least two weeks: an "
        "edge powered off over a holiday replays its outbox when it comes back.",
    )
    evidence_unused_grace_h: int = Field(
        default=24,
        ge=1,
        le=720,
        description="Hours a snapshot no alert uses is kept (a short absence that never "
        "alerted, dirt cleared before opening): personal images with no purpose, deleted "
        "hourly after this grace. Snapshots of alerts, and of absences or 环境差 episodes "
        "still running (they may alert later), are kept for evidence_retention_days.",
    )
    sse_heartbeat_s: float = Field(
        default=15.0, gt=0, description="Heartbeat comment period on /api/v1/live."
    )
    sms_gateway_url: str | None = Field(
        default=None,
        repr=False,  # may hold credentials; log it through hallwatch.config.errors.mask_url
        description="HTTP(S) SMS gateway the 异常办件 texts are POSTed to (JSON "
        "``{to, text, id}``); None or empty: SMS off. Credentials in it are logged masked.",
    )
    sms_gateway_token: SecretStr | None = Field(
        default=None, description="SMS gateway token, sent as ``Authorization: Bearer …``."
    )
    sms_max_per_hour: int = Field(
        default=10,
        ge=1,
        le=1000,
        description="Texts per recipient in any sliding hour; more are counted and logged, "
        "not sent.",
    )
    sms_timeout_s: float = Field(
        default=5, gt=0, le=60, description="Timeout of one request to the SMS gateway."
    )

    report_dir: Path = Field(
        default=Path("var/reports"),
        description="Where report files go: <hall>/<kind>/<period>.json and .xlsx "
        "(docs/reports.md).",
    )
    daily_report_at: str = Field(
        default="16:00",
        pattern=r"^([01][0-9]|2[0-3]):[0-5][0-9]$",
        description="Hall-local HH:MM the daily report is produced and pushed at on working "
        "days; before 17:00, the reporting deadline.",
    )
    report_push_url: str | None = Field(
        default=None,
        repr=False,  # may hold credentials
        description="Webservice endpoint reports are POSTed to as JSON; None or empty: files only.",
    )
    report_push_token: SecretStr | None = Field(
        default=None, description="Report endpoint token, sent as ``Authorization: Bearer …``."
    )
    report_push_retries: int = Field(
        default=3, ge=0, le=10, description="Further attempts of a failed push, per tick."
    )
    report_push_timeout_s: float = Field(
        default=10, gt=0, le=120, description="Timeout of one push request."
    )
    session_ttl_h: float = Field(
        default=12, ge=0.25, le=168, description="Lifetime of a dashboard session (hours)."
    )
    cookie_secure: bool = Field(
        default=False,
        description="Mark the session cookie Secure: set true when the aggregator is served "
        "over HTTPS (behind a TLS proxy).",
    )
    admin_password: SecretStr | None = Field(
        default=None,
        description="First start only: create the user `admin` with this password when no "
        "admin exists (12+ characters, not a well-known default). Unset it afterwards.",
    )
    report_catch_up_days: int = Field(
        default=7,
        ge=0,
        le=60,
        description="Working days back the report scheduler produces reports it missed while "
        "the aggregator was down (dailies, and a monthly or bulletin due in that span; 0: "
        "none).",
    )
    report_check_s: float = Field(
        default=30,
        gt=0,
        le=3600,
        description="Period of the report scheduler (due reports, failed pushes retried).",
    )

    @field_validator("halls", mode="before")
    @classmethod
    def _split_halls(cls, value: Any) -> Any:
        if isinstance(value, str):
            text = value.strip()
            if text.startswith("["):
                import json

                return json.loads(text)
            return [part.strip() for part in text.split(",") if part.strip()]
        return value

    @field_validator("daily_report_at")
    @classmethod
    def _before_five(cls, value: str) -> str:
        if value >= "17:00":
            raise ValueError(f"daily_report_at must be before 17:00, got {value}")
        return value

    def daily_report_time(self) -> time:
        """``daily_report_at`` as a time of day."""
        return time.fromisoformat(self.daily_report_at)

    @model_validator(mode="after")
    def _no_default_secrets(self) -> AggregatorSettings:
        for name in ("mqtt_password", "series_token", "sms_gateway_token", "report_push_token"):
            secret = getattr(self, name)
            if secret is not None and secret.get_secret_value().strip().lower() in WELL_KNOWN:
                raise ValueError(f"{name} is a well-known default secret; set a real one")
        if self.admin_password is not None:
            why = weak_password_reason(self.admin_password.get_secret_value())
            if why is not None:
                raise ValueError(f"admin_password refused: {why}")
        return self

    @model_validator(mode="after")
    def _series_server_needs_url(self) -> AggregatorSettings:
        if self.series_backend != "sqlite" and not self.series_url:
            raise ValueError(f"series_backend {self.series_backend} needs series_url")
        return self

    def resolved_series_path(self) -> Path | str:
        """Where the embedded time-series store lives (``":memory:"`` for in-memory DBs)."""
        if self.series_path is not None:
            return self.series_path
        url = make_url(self.database_url)
        if url.get_backend_name() == "sqlite":
            db = url.database
            if not db or db == ":memory:":
                return ":memory:"
            path = Path(db)
            return path.with_name(f"{path.stem}-series{path.suffix or '.sqlite'}")
        return Path("var/hallwatch-series.sqlite")

    def safe_database_url(self) -> str:
        """The database URL with any password masked, for logs."""
        return make_url(self.database_url).render_as_string(hide_password=True)


def settings_for(hall_files: Sequence[str] | None, **overrides: Any) -> AggregatorSettings:
    """Settings from the ``HALLWATCH_*`` environment, with the hall files a command line
    gave (``--hall``, repeatable) and other values it set (e.g. ``http_port``)."""
    if hall_files:
        overrides["halls"] = [Path(p) for p in hall_files]
    return AggregatorSettings(**overrides)
