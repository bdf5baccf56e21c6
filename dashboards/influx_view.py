"""The hall dashboard for InfluxDB 2 (Flux), the alternative time-series server.

The same points as on VictoriaMetrics, addressed as InfluxDB keeps them: measurement
(``_measurement``), field (``_field``) and tags, with string fields kept (a device's
offline reason). Flux has no look-back staleness: a state (on post, hygiene, device) holds
until its next point (``fill(usePrevious: true)``), so an edge that stopped counts as its
last state (README.md, "Query assumptions").
"""

from __future__ import annotations

from grafana_json import (
    HYGIENE,
    INFLUXDB,
    ON_OFF,
    FluxQuery,
    Json,
    Panel,
    Row,
    constant_variable,
    custom_variable,
    dashboard,
    query_variable,
)


def flux(measurement: str, fields: tuple[str, ...], *steps: str, start: str = "") -> FluxQuery:
    """``from |> range |> filter(measurement, fields, hall)`` followed by ``steps``."""
    wanted = " or ".join(f'r._field == "{f}"' for f in fields)
    lines = [
        'from(bucket: "${bucket}")',
        f"  |> range(start: {start or 'v.timeRangeStart'}, stop: v.timeRangeStop)",
        f'  |> filter(fn: (r) => r._measurement == "{measurement}" and r.hall == "${{hall}}")',
        f"  |> filter(fn: (r) => {wanted})",
        *(f"  |> {step}" for step in steps),
    ]
    return FluxQuery("\n".join(lines))


def _by(*columns: str) -> str:
    return "group(columns: [" + ", ".join(f'"{c}"' for c in columns) + "])"


LAST_PER_WINDOW = "aggregateWindow(every: v.windowPeriod, fn: last, createEmpty: false)"
MAX_PER_WINDOW = "aggregateWindow(every: v.windowPeriod, fn: max, createEmpty: false)"
SUM_PER_WINDOW = "aggregateWindow(every: v.windowPeriod, fn: sum, createEmpty: false)"
PIVOT = 'pivot(rowKey: ["_time"], columnKey: ["_field"], valueColumn: "_value")'


def hall_influx() -> Json:
    """大厅 (InfluxDB): the hall view's figures in Flux."""
    tag_values = 'import "influxdata/influxdb/schema"\nschema.tagValues(bucket: "${bucket}", '
    variables = [
        constant_variable("bucket", "hallwatch"),
        query_variable("hall", "大厅 (hall)", tag_values + 'tag: "hall")', datasource=INFLUXDB),
        custom_variable("state_lookback", "状态回看 (state look-back)", ("1d", "7d", "30d"), "7d"),
    ]
    items: list[Panel | Row] = [
        Row("在岗在位 (staffing)"),
        Panel(
            "在岗状态 (on/off post per window)",
            "state-timeline",
            (flux("post_presence", ("on_post",), _by("window", "post"), LAST_PER_WINDOW),),
            mappings=ON_OFF,
            width=12,
            height=8,
        ),
        Panel(
            "离岗时长 (off-post minutes)",
            "bargauge",
            (
                flux(
                    "post_presence",
                    ("on_post",),
                    _by("window", "post"),
                    "aggregateWindow(every: 1m, fn: last, createEmpty: true)",
                    "fill(usePrevious: true)",
                    "filter(fn: (r) => exists r._value)",
                    "map(fn: (r) => ({r with _value: 1.0 - float(v: r._value)}))",
                    "sum()",
                ),
            ),
            unit="m",
            width=12,
            height=8,
            description="Minutes whose last presence point was off_post, at 1-minute steps; "
            "minutes before the first point in the range are not counted.",
        ),
        Row("排队叫号 (queue)"),
        Panel(
            "等候人数 (waiting per service)",
            "timeseries",
            (flux("queue", ("waiting",), _by("service"), LAST_PER_WINDOW),),
            width=12,
            height=8,
        ),
        Panel(
            "最长等候 (longest wait per service)",
            "timeseries",
            (flux("queue", ("longest_wait_s",), _by("service"), MAX_PER_WINDOW),),
            unit="s",
            width=12,
            height=8,
        ),
        Panel(
            "超时等候 (waits over the limit per service)",
            "bargauge",
            (flux("wait_over_limit", ("waited_s",), _by("service"), "count()"),),
            thresholds=((1, "red"),),
            width=8,
            height=7,
        ),
        Panel(
            "跑动超承诺 (trips over the promise per service)",
            "bargauge",
            (flux("trips_over_promise", ("trips",), _by("service"), "count()"),),
            thresholds=((1, "red"),),
            width=8,
            height=7,
        ),
        Panel(
            "差评 (bad ratings per window)",
            "bargauge",
            (flux("rating", ("bad",), _by("window"), "sum()"),),
            thresholds=((1, "red"),),
            width=8,
            height=7,
        ),
        Row("环境与设备 (environment and devices)"),
        Panel(
            "区域人数 (zone occupancy)",
            "timeseries",
            (flux("zone_occupancy", ("count",), _by("zone"), MAX_PER_WINDOW),),
            width=12,
            height=8,
        ),
        Panel(
            "出入口人流 (entrance flow, in)",
            "timeseries",
            (flux("entrance_flow", ("in_count",), _by("zone"), SUM_PER_WINDOW),),
            width=12,
            height=8,
        ),
        Panel(
            "环境 (zone hygiene)",
            "state-timeline",
            (
                flux(
                    "zone_hygiene",
                    ("bad",),
                    _by("zone", "window"),
                    LAST_PER_WINDOW,
                    start="-${state_lookback}",
                ),
            ),
            mappings=HYGIENE,
            width=12,
            height=8,
        ),
        Panel(
            "设备状态 (device online/offline, with reason)",
            "table",
            (
                flux(
                    "device_status",
                    ("online", "reason"),
                    "last()",
                    PIVOT,
                    "group()",
                    'keep(columns: ["_time", "kind", "device", "online", "reason"])',
                    start="-${state_lookback}",
                ),
            ),
            width=12,
            height=8,
        ),
        Row("边缘端 (edge pipeline)"),
        Panel(
            "分析帧率 (frames looked per second)",
            "timeseries",
            (
                flux(
                    "edge_pipeline",
                    ("frames_looked", "interval_s"),
                    PIVOT,
                    "map(fn: (r) => ({_time: r._time, source: r.source, "
                    "_value: float(v: r.frames_looked) / r.interval_s}))",
                    _by("source"),
                ),
            ),
            width=8,
            height=8,
        ),
        Panel(
            "推理耗时 (inference ms per crop)",
            "timeseries",
            (flux("edge_pipeline", ("inference_ms_mean",), _by("source"), MAX_PER_WINDOW),),
            unit="ms",
            width=8,
            height=8,
        ),
        Panel(
            "发件箱积压 (outbox depth)",
            "timeseries",
            (flux("edge_pipeline", ("outbox_depth",), _by("source"), MAX_PER_WINDOW),),
            width=8,
            height=8,
        ),
    ]
    return dashboard(
        "hallwatch-hall-influxdb",
        "HallWatch 大厅 InfluxDB (hall, Flux)",
        variables,
        items,
        description="The hall view for the InfluxDB 2 alternative (Flux).",
    )
