"""Hall configuration: one YAML file per hall (cameras, posts, service hours, thresholds).

Example:
    >>> from hallwatch.config import load_hall_config
    >>> config = load_hall_config("deploy/examples/hall.yaml", require_env=False)
    >>> config.hall.id
    'demo-county-hall'

See ``docs/config.md`` for every field and how validation errors look.
"""

from hallwatch.config.loader import (
    ConfigError,
    ConfigIssue,
    expand_env,
    load_hall_config,
    load_hall_config_from_string,
    read_hall_config,
    read_hall_config_from_string,
    validate_config_file,
)
from hallwatch.config.models import (
    ID_PATTERN,
    CameraConfig,
    DayHours,
    DetectorConfig,
    EdgeConfig,
    HallConfig,
    HallInfo,
    LocatedValueError,
    MqttConfig,
    PostConfig,
    PostKind,
    ServiceHoursConfig,
    ThresholdsConfig,
    Weekday,
    format_field_path,
    mask_url,
)
from hallwatch.config.zones import (
    EntranceLine,
    EnvironmentConfig,
    EvidenceConfig,
    HygieneClassifierConfig,
    ZoneConfig,
    ZoneKind,
)

__all__ = [
    "ID_PATTERN",
    "CameraConfig",
    "ConfigError",
    "ConfigIssue",
    "DayHours",
    "DetectorConfig",
    "EdgeConfig",
    "EntranceLine",
    "EnvironmentConfig",
    "EvidenceConfig",
    "HallConfig",
    "HallInfo",
    "HygieneClassifierConfig",
    "LocatedValueError",
    "MqttConfig",
    "PostConfig",
    "PostKind",
    "ServiceHoursConfig",
    "ThresholdsConfig",
    "Weekday",
    "ZoneConfig",
    "ZoneKind",
    "expand_env",
    "format_field_path",
    "load_hall_config",
    "load_hall_config_from_string",
    "mask_url",
    "read_hall_config",
    "read_hall_config_from_string",
    "validate_config_file",
]
