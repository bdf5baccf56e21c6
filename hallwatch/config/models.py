"""Pydantic models of a hall configuration (one YAML file per hall).

The models validate everything that can be checked without the cameras: ids, bounds,
times, cross references (a post's camera must exist) and geometry (a post's polygon must
lie inside its camera's image). Loading the YAML, ``${VAR}`` expansion and line numbers
live in :mod:`hallwatch.config.loader`.

Validators that find several problems below the value they check raise
:class:`LocatedValueError`, which carries a location relative to that value for each
problem; the loader turns those into one issue each, with the right YAML line.

The service-hours models live in :mod:`hallwatch.config.hours` and the error-location
helpers in :mod:`hallwatch.config.errors`; their names are re-exported here.
"""

from __future__ import annotations

import logging
import re
from datetime import datetime
from enum import StrEnum
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    Field,
    FieldSerializationInfo,
    SecretStr,
    ValidationInfo,
    field_serializer,
    field_validator,
    model_validator,
)

from hallwatch.config.cases import CasePolicyConfig, DepartmentConfig, NotifyConfig, WindowConfig
from hallwatch.config.devices import DeviceConfig
from hallwatch.config.errors import _SECRET_QUERY_KEYS as _SECRET_QUERY_KEYS
from hallwatch.config.errors import Loc, _Base, _raise_if, mask_url, require_unique_ids
from hallwatch.config.errors import LocatedValueError as LocatedValueError
from hallwatch.config.errors import format_field_path as format_field_path
from hallwatch.config.feeds import EvaluatorFeedConfig, QueueFeedConfig
from hallwatch.config.hours import _TIME_RE as _TIME_RE
from hallwatch.config.hours import DayHours as DayHours
from hallwatch.config.hours import ServiceHoursConfig
from hallwatch.config.hours import Weekday as Weekday
from hallwatch.config.hours import _default_hours as _default_hours
from hallwatch.config.hours import _parse_hhmm as _parse_hhmm
from hallwatch.config.hours import _workdays as _workdays
from hallwatch.config.routing import RoutingConfig
from hallwatch.config.scoring import ScoringModel
from hallwatch.config.zones import EnvironmentConfig, EvidenceConfig, ZoneConfig, require_area

logger = logging.getLogger(__name__)

ID_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,62}$"
"""Hall, camera, post and edge ids (same as ``hallwatch.contract.ID_PATTERN``)."""

ENV_EXPAND: dict[str, Any] = {"env_expand": True}
"""``json_schema_extra`` marker of the string fields in which ``${VAR}`` is expanded."""

MAX_LINE_LOOK_S = 0.5
"""Longest look interval of a camera counting entrance crossings: a walker must be seen
several times while in the zone."""

URL_SCHEMES = frozenset({"rtsp", "rtsps", "rtmp", "rtmps", "http", "https", "file"})


class PostKind(StrEnum):
    """岗位 kinds: 引导、帮办代办、咨询辅导、前台受理、后台审批."""

    GUIDE = "guide"
    HELPER = "helper"
    CONSULT = "consult"
    FRONT_DESK = "front_desk"
    BACK_OFFICE = "back_office"


class HallInfo(_Base):
    """政务服务大厅: which hall this file describes."""

    id: str = Field(
        pattern=ID_PATTERN,
        description="Hall id: lowercase slug, used in MQTT topics and URLs.",
    )
    name: str = Field(
        min_length=1, max_length=100, description="Display name, e.g. 某县政务服务中心."
    )
    timezone: str = Field(
        default="Asia/Shanghai",
        min_length=1,
        description="IANA timezone the service hours are written in.",
    )
    region: str | None = Field(
        default=None,
        pattern=r"^[0-9]{2,12}$",
        description="行政区划代码 of the hall's area (e.g. 330100 杭州市, 330106 西湖区): "
        "a supervision officer scoped to a region sees the halls whose code starts with it.",
    )

    @field_validator("timezone")
    @classmethod
    def _known_timezone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(
                f"unknown timezone {value!r}; use an IANA name such as 'Asia/Shanghai'"
            ) from exc
        return value

    @property
    def tzinfo(self) -> ZoneInfo:
        """The hall's timezone."""
        return ZoneInfo(self.timezone)


class CameraConfig(_Base):
    """摄像头: one camera the edge reads."""

    id: str = Field(pattern=ID_PATTERN, description="Camera id, unique in the hall.")
    name: str = Field(default="", max_length=100, description="Display name, e.g. 一楼东区.")
    url: str = Field(
        min_length=1,
        max_length=2000,
        repr=False,
        json_schema_extra=ENV_EXPAND,
        description="rtsp://… (also rtsps, rtmp, http(s), file) or a video file path; "
        "put credentials in ${VAR} placeholders.",
    )
    width: int = Field(ge=16, le=16384, description="Width of the image the polygons refer to.")
    height: int = Field(ge=16, le=16384, description="Height of the image the polygons refer to.")
    keyframes_only: bool = Field(
        default=True, description="Decode keyframes only (cheap; needs a short GOP)."
    )
    look_interval_s: float = Field(
        default=1.0, ge=0.2, le=10, description="How often each post is looked at."
    )
    stale_after_s: float = Field(
        default=10.0,
        ge=1,
        le=600,
        description="Watchdog: no frame for this long → reconnect, camera offline.",
    )
    max_backoff_s: float = Field(
        default=60.0, ge=1, le=3600, description="Longest wait between reconnect attempts."
    )

    @field_validator("url")
    @classmethod
    def _url_or_path(cls, value: str) -> str:
        value = value.strip()
        if any(c.isspace() for c in value):
            raise ValueError("must not contain whitespace")
        if "://" in value:
            scheme = value.split("://", 1)[0].lower()
            if scheme not in URL_SCHEMES:
                schemes = ", ".join(sorted(URL_SCHEMES))
                raise ValueError(f"unsupported URL scheme {scheme!r}; use {schemes} or a path")
        return value

    @model_validator(mode="after")
    def _watchdog(self) -> CameraConfig:
        if self.stale_after_s <= self.look_interval_s:
            msg = f"must be longer than look_interval_s ({self.look_interval_s:g})"
            _raise_if([(("stale_after_s",), msg)])
        return self

    @field_serializer("url")
    def _masked_url(self, value: str, info: FieldSerializationInfo) -> str:
        context = info.context or {}
        return value if context.get("reveal_secrets") else mask_url(value)

    @property
    def display_url(self) -> str:
        """The URL with its password masked, for logs and UIs."""
        return mask_url(self.url)

    @property
    def is_file(self) -> bool:
        """True for a video file (a path or ``file://``), false for a network stream."""
        return "://" not in self.url or self.url.lower().startswith("file://")


Point = tuple[float, float]


class PostConfig(_Base):
    """岗位: a place where a staff member must be, as a polygon in one camera's image."""

    id: str = Field(pattern=ID_PATTERN, description="Post id, unique in the hall.")
    name: str = Field(min_length=1, max_length=100, description="Display name, e.g. 3号窗口.")
    kind: PostKind = Field(description="guide, helper, consult, front_desk or back_office.")
    window: str | None = Field(
        default=None, min_length=1, max_length=32, description="Window (窗口) number or id."
    )
    camera: str = Field(pattern=ID_PATTERN, description="Id of the camera that sees it.")
    polygon: list[Point] = Field(
        min_length=3,
        max_length=64,
        description="[x, y] pixel points in the camera's width × height image.",
    )
    off_post_after_s: float | None = Field(
        default=None,
        ge=10,
        le=7200,
        description="Override of thresholds.off_post_after_s for this post.",
    )

    @field_validator("window", mode="before")
    @classmethod
    def _window_str(cls, value: Any) -> Any:
        if isinstance(value, int) and not isinstance(value, bool):
            return str(value)
        return value

    @field_validator("polygon")
    @classmethod
    def _has_area(cls, value: list[Point]) -> list[Point]:
        return require_area(value)


class ThresholdsConfig(_Base):
    """阈值: presence and off-post timing, motion gate."""

    presence_grace_s: float = Field(
        default=20.0,
        ge=0,
        le=600,
        description="A post turns absent only after no person is seen for this long.",
    )
    off_post_after_s: float = Field(
        default=300.0,
        ge=10,
        le=7200,
        description="离岗: alert when a post is unstaffed longer than this in service hours.",
    )
    summary_interval_s: float = Field(
        default=60.0, ge=5, le=3600, description="Period of the presence summary fact."
    )
    motion_threshold: float = Field(
        default=0.01,
        ge=0,
        le=1,
        description="Fraction of a crop's pixels that must change to run the detector "
        "again; 0 runs it at every look.",
    )
    motion_pixel_delta: int = Field(
        default=25,
        ge=1,
        le=255,
        description="Per-pixel absolute difference (0–255) that counts as a change.",
    )

    static_learn_s: float = Field(
        default=180.0,
        ge=30,
        le=3600,
        description="A detected 'person' whose pixels do not change at all for this long "
        "is learned as the post's empty look (a chair or coat, not a clerk).",
    )

    @model_validator(mode="after")
    def _grace_le_off_post(self) -> ThresholdsConfig:
        if self.presence_grace_s > self.off_post_after_s:
            msg = f"must not exceed off_post_after_s ({self.off_post_after_s:g})"
            _raise_if([(("presence_grace_s",), msg)])
        return self


class DetectorConfig(_Base):
    """检测器: the person detector run on post crops."""

    kind: str = Field(
        default="ssdlite_person",
        pattern=r"^[a-z0-9][a-z0-9_]{0,63}$",
        description="Detector plugin name.",
    )
    model_path: Path | None = Field(
        default=None, description="Model file; null for the plugin's bundled model."
    )
    precision: Literal["int8", "fp32"] = Field(
        default="int8",
        description="Bundled model's precision: int8 (1.4x less CPU per crop on an AVX2 "
        "CPU, about 1.8x with AVX-512 VNNI; the same decisions as fp32 on the demo, photo "
        "and empty-scene checks and 99 % of real-footage crops) or fp32. Ignored when "
        "model_path is set.",
    )
    providers: list[str] = Field(
        default_factory=lambda: ["CPUExecutionProvider"],
        min_length=1,
        max_length=8,
        description="onnxruntime execution providers, in order of preference.",
    )
    threads: int = Field(
        default=1,
        ge=1,
        le=64,
        description="Threads inside one inference. 1 is the most CPU-efficient on small "
        "crops; the edge uses the cores by running edge.analysis_threads inferences at once.",
    )
    score_threshold: float = Field(
        default=0.5, ge=0.05, le=0.99, description="Minimum score of a person detection."
    )

    @field_validator("providers")
    @classmethod
    def _provider_names(cls, value: list[str]) -> list[str]:
        problems: list[tuple[Loc, str]] = [
            ((i,), f"{p!r} is not an onnxruntime provider name (…ExecutionProvider)")
            for i, p in enumerate(value)
            if not re.fullmatch(r"[A-Za-z0-9]+ExecutionProvider", p)
        ]
        _raise_if(problems)
        return value


class MqttConfig(_Base):
    """MQTT broker the edge publishes facts to."""

    host: str = Field(
        default="127.0.0.1",
        min_length=1,
        max_length=253,
        json_schema_extra=ENV_EXPAND,
        description="Broker host name or IP.",
    )
    port: int = Field(default=1883, ge=1, le=65535, description="Broker port.")
    username: str | None = Field(
        default=None, max_length=256, json_schema_extra=ENV_EXPAND, description="User name."
    )
    password: SecretStr | None = Field(
        default=None,
        max_length=256,
        json_schema_extra=ENV_EXPAND,
        description="Password; write it as ${VAR}, never literally.",
    )
    tls: bool = Field(default=False, description="Connect with TLS (system CA store).")
    keepalive_s: int = Field(default=60, ge=5, le=3600, description="MQTT keepalive.")
    client_id: str | None = Field(
        default=None,
        pattern=r"^[A-Za-z0-9_.:-]{1,128}$",
        description="MQTT client id; null for the edge's source id.",
    )


class EdgeConfig(_Base):
    """The edge worker's own settings. ``{hall}`` is replaced by the hall id."""

    outbox_path: Path = Field(
        default=Path("var/edge-{hall}.outbox.sqlite"),
        description="SQLite outbox of facts not yet acknowledged (relative to the "
        "working directory).",
    )
    feed_state_path: Path = Field(
        default=Path("var/edge-{hall}.feeds.sqlite"),
        description="SQLite state of the queue machine and evaluator feeds (tickets, "
        "cases' visits, ratings seen, dead letters); survives restarts.",
    )
    source: str = Field(
        default="edge-{hall}",
        min_length=1,
        max_length=80,
        description="Edge id sent as every fact's source; must match the id pattern.",
    )
    analysis_threads: int = Field(
        default=2,
        ge=1,
        le=64,
        description="Threads that look at cameras in parallel (cameras are shared out "
        "among them); one per CPU core.",
    )


class HallConfig(_Base):
    """One hall's configuration: the whole YAML file."""

    version: Literal[1] = Field(default=1, description="Config format version.")
    hall: HallInfo = Field(description="Which hall.")
    service_hours: ServiceHoursConfig = Field(
        default_factory=ServiceHoursConfig, description="When the hall serves."
    )
    cameras: list[CameraConfig] = Field(min_length=1, description="Cameras; ids unique.")
    posts: list[PostConfig] = Field(min_length=1, description="Posts; ids unique.")
    thresholds: ThresholdsConfig = Field(
        default_factory=ThresholdsConfig, description="Timing and motion gate."
    )
    detector: DetectorConfig = Field(default_factory=DetectorConfig, description="Person detector.")
    mqtt: MqttConfig = Field(default_factory=MqttConfig, description="MQTT broker.")
    edge: EdgeConfig = Field(default_factory=EdgeConfig, description="Edge worker.")
    departments: list[DepartmentConfig] = Field(
        default_factory=list, description="Departments (部门) at the hall; ids unique."
    )
    windows: list[WindowConfig] = Field(
        default_factory=list, description="Windows (窗口) and their departments; ids unique."
    )
    queue: QueueFeedConfig | None = Field(
        default=None, description="Queue machine feed (排队叫号机); null: none."
    )
    evaluators: EvaluatorFeedConfig | None = Field(
        default=None, description="Evaluator feed (评价器, 好差评); null: none."
    )
    cases: CasePolicyConfig = Field(
        default_factory=CasePolicyConfig, description="异常办件 deadlines and escalation."
    )
    notify: NotifyConfig = Field(
        default_factory=NotifyConfig, description="Who gets the hall's 异常办件 by SMS."
    )
    routing: RoutingConfig = Field(
        default_factory=RoutingConfig, description="Who gets which alerts, by MQTT and SMS."
    )
    scoring: ScoringModel = Field(
        default_factory=ScoringModel,
        description="Performance scoring model (绩效考核); defaults: docs/scores.md.",
    )
    devices: list[DeviceConfig] = Field(
        default_factory=list,
        description="Devices other than cameras (设备运转) and how each shows it is alive.",
    )
    zones: list[ZoneConfig] = Field(
        default_factory=list,
        description="Zones the edge watches: windows' public areas (hygiene), waiting areas, "
        "entrances (people, crowding, flow).",
    )
    environment: EnvironmentConfig = Field(
        default_factory=EnvironmentConfig, description="Tuning of the zones' watch."
    )
    evidence: EvidenceConfig = Field(
        default_factory=EvidenceConfig, description="Snapshots for alerts from video."
    )

    @field_validator("cameras", "posts", "departments", "windows", "devices", "zones")
    @classmethod
    def _unique_ids(cls, value: list[Any]) -> list[Any]:
        require_unique_ids(value)
        return value

    @field_validator("posts", "zones")
    @classmethod
    def _polygons_fit_cameras(cls, value: list[Any], info: ValidationInfo) -> list[Any]:
        # Runs even when other sections have errors; skipped when the cameras are invalid.
        cameras_list = info.data.get("cameras")
        if cameras_list is None:
            return value
        cameras = {c.id: c for c in cameras_list}
        problems: list[tuple[Loc, str]] = []
        for i, item in enumerate(value):
            cam = cameras.get(item.camera)
            if cam is None:
                known = ", ".join(cameras)
                problems.append(
                    ((i, "camera"), f"camera {item.camera!r} is not defined (cameras: {known})")
                )
                continue
            points: list[tuple[Loc, Point]] = [
                ((i, "polygon", j), pt) for j, pt in enumerate(item.polygon)
            ]
            line = getattr(item, "line", None)
            if line is not None:
                points += [((i, "line", "points", j), pt) for j, pt in enumerate(line.points)]
            for loc, (x, y) in points:
                if not (0 <= x <= cam.width and 0 <= y <= cam.height):
                    problems.append(
                        (
                            loc,
                            f"point [{x:g}, {y:g}] is outside the {cam.width}x{cam.height} "
                            f"image of camera {cam.id!r}",
                        )
                    )
        _raise_if(problems)
        return value

    @model_validator(mode="after")
    def _cross_check(self) -> HallConfig:
        problems: list[tuple[Loc, str]] = []
        grace = self.thresholds.presence_grace_s
        for i, post in enumerate(self.posts):
            if post.off_post_after_s is not None and post.off_post_after_s < grace:
                msg = f"must not be shorter than thresholds.presence_grace_s ({grace:g})"
                problems.append((("posts", i, "off_post_after_s"), msg))
        departments = {d.id for d in self.departments}
        for i, win in enumerate(self.windows):
            if win.department is not None and win.department not in departments:
                msg = f"department {win.department!r} is not in departments"
                problems.append((("windows", i, "department"), msg))
        if self.queue is not None:
            for i, svc in enumerate(self.queue.services):
                if svc.department is not None and svc.department not in departments:
                    msg = f"department {svc.department!r} is not in departments"
                    problems.append((("queue", "services", i, "department"), msg))
        cameras = {c.id for c in self.cameras}
        feeds = {"queue": self.queue, "evaluators": self.evaluators}
        for i, dev in enumerate(self.devices):
            if dev.id in cameras:
                msg = f"{dev.id!r} is already a camera id; device ids must differ from them"
                problems.append((("devices", i, "id"), msg))
            fed_by = dev.probe.feed if dev.probe is not None else None
            if fed_by is not None and feeds[fed_by.value] is None:
                msg = f"the hall has no {fed_by.value} section to take heartbeats from"
                problems.append((("devices", i, "probe", "feed"), msg))
        looks = {c.id: c.look_interval_s for c in self.cameras}
        for i, zone in enumerate(self.zones):
            look = looks.get(zone.camera)
            if zone.line is not None and look is not None and look > MAX_LINE_LOOK_S:
                msg = (
                    f"counting crossings needs a look at least every {MAX_LINE_LOOK_S:g} s; "
                    f"camera {zone.camera!r} looks every {look:g} s (cameras[].look_interval_s)"
                )
                problems.append((("zones", i, "line"), msg))
        windows = {w.id for w in self.windows} | {p.window for p in self.posts if p.window}
        for i, zone in enumerate(self.zones):
            if zone.window is not None and windows and zone.window not in windows:
                msg = f"window {zone.window!r} is neither in windows nor a post's window"
                problems.append((("zones", i, "window"), msg))
        source = self.edge.source.replace("{hall}", self.hall.id)
        if not re.match(ID_PATTERN, source):
            msg = f"{source!r} is not a valid id ({ID_PATTERN}); is the hall id too long?"
            problems.append((("edge", "source"), msg))
        _raise_if(problems)
        self.edge.source = source
        self.edge.outbox_path = Path(str(self.edge.outbox_path).replace("{hall}", self.hall.id))
        for feed in (self.queue, self.evaluators):
            if feed is not None:
                feed.topic = feed.topic.replace("{hall}", self.hall.id)
        for dev in self.devices:
            if dev.probe is not None and dev.probe.mqtt_topic is not None:
                dev.probe.mqtt_topic = dev.probe.mqtt_topic.replace("{hall}", self.hall.id)
        self.environment.reference_dir = Path(
            str(self.environment.reference_dir).replace("{hall}", self.hall.id)
        )
        self.edge.feed_state_path = Path(
            str(self.edge.feed_state_path).replace("{hall}", self.hall.id)
        )
        return self

    @property
    def tzinfo(self) -> ZoneInfo:
        """The hall's timezone."""
        return self.hall.tzinfo

    def local_time(self, dt: datetime) -> datetime:
        """``dt`` as a naive hall-local time (a naive ``dt`` is taken as hall-local)."""
        if dt.tzinfo is None:
            return dt
        return dt.astimezone(self.tzinfo).replace(tzinfo=None)

    def is_in_service(self, local_dt: datetime) -> bool:
        """Whether the hall serves at this moment (off-post rules apply).

        Args:
            local_dt: Naive hall-local time, or an aware time (converted to the hall's
                timezone).

        Returns:
            True on an open day (weekday or make-up day, not a closed date), between open
            and close, and not in a lunch break the hall closes for.
        """
        return self.service_hours.is_in_service(self.local_time(local_dt))

    def camera(self, camera_id: str) -> CameraConfig:
        """The camera with this id.

        Raises:
            KeyError: No such camera.
        """
        for cam in self.cameras:
            if cam.id == camera_id:
                return cam
        raise KeyError(camera_id)

    def post(self, post_id: str) -> PostConfig:
        """The post with this id.

        Raises:
            KeyError: No such post.
        """
        for post in self.posts:
            if post.id == post_id:
                return post
        raise KeyError(post_id)

    def posts_for_camera(self, camera_id: str) -> list[PostConfig]:
        """The posts seen by one camera, in file order."""
        return [p for p in self.posts if p.camera == camera_id]

    def zones_for_camera(self, camera_id: str) -> list[ZoneConfig]:
        """The zones seen by one camera, in file order."""
        return [z for z in self.zones if z.camera == camera_id]

    def zone(self, zone_id: str) -> ZoneConfig:
        """The zone with this id.

        Raises:
            KeyError: No such zone.
        """
        for zone in self.zones:
            if zone.id == zone_id:
                return zone
        raise KeyError(zone_id)

    def window(self, window_id: str | None) -> WindowConfig | None:
        """The configured window with this number, if any."""
        for win in self.windows:
            if win.id == window_id:
                return win
        return None

    def department_of(self, window: str | None = None, service: str | None = None) -> str | None:
        """The department of a window (from ``windows``), else of a service (``queue``)."""
        win = self.window(window)
        if win is not None and win.department is not None:
            return win.department
        if service is not None and self.queue is not None:
            svc = self.queue.service(service)
            if svc is not None:
                return svc.department
        return None

    def off_post_after_s_for(self, post: PostConfig | str) -> float:
        """The off-post threshold of a post: its override, else the hall's."""
        p = self.post(post) if isinstance(post, str) else post
        override = p.off_post_after_s
        return override if override is not None else self.thresholds.off_post_after_s
