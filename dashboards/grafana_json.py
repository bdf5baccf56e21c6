"""Small value types for Grafana dashboards, and their JSON (dashboard schema 39).

The dashboards of this folder are written by ``generate.py`` from panel lists built of
these types; the JSON files are what Grafana provisions.

Example:
    >>> p = Panel("等候人数 (waiting)", "stat", (Query("sum(queue_waiting)", instant=True),))
    >>> board = dashboard("demo", "演示 (demo)", (), (p,))
    >>> board["panels"][0]["targets"][0]["expr"]
    'sum(queue_waiting)'
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

VICTORIA = {"type": "prometheus", "uid": "hallwatch-vm"}
"""The VictoriaMetrics data source (Prometheus type), as provisioned."""
INFLUXDB = {"type": "influxdb", "uid": "hallwatch-influxdb"}
"""The InfluxDB 2 data source (Flux), as provisioned."""

GRID_WIDTH = 24

Json = dict[str, Any]


@dataclass(frozen=True, slots=True)
class Query:
    """One PromQL/MetricsQL target.

    Attributes:
        expr: The expression (Grafana variables such as ``$hall`` and ``$__range`` allowed).
        legend: Legend format, e.g. ``{{service}}``.
        instant: One value at the end of the range (stat, table, bar gauge) instead of a
            series.
    """

    expr: str
    legend: str = ""
    instant: bool = False


@dataclass(frozen=True, slots=True)
class FluxQuery:
    """One Flux target (InfluxDB 2)."""

    query: str


@dataclass(frozen=True, slots=True)
class Panel:
    """One panel.

    Attributes:
        title: 中文 (English).
        kind: Grafana panel type: timeseries, stat, table, state-timeline, bargauge,
            piechart, barchart.
        queries: Its targets (refIds A, B, … in order).
        unit: Grafana unit id (``short``, ``s``, ``m``, ``ms``, ``percentunit`` …).
        width: Grid columns (of 24).
        height: Grid rows.
        description: Shown as the panel's info tooltip (what the query assumes).
        thresholds: ``(value, colour)`` steps after a green base; empty: green only.
        mappings: Value → (text, colour), e.g. 0/1 states.
        interval: Lower bound of ``$__interval`` for this panel (e.g. ``5m``).
        table_columns: For a table merging instant queries: column title per refId.
        hall_link: Link the ``hall`` column or series to the hall dashboard.
        stack: Stack the series (bars) in a time-series panel.
        no_value: Shown when the query finds nothing (e.g. "0" for counts of events).
    """

    title: str
    kind: str
    queries: tuple[Query | FluxQuery, ...]
    unit: str = "short"
    width: int = 6
    height: int = 6
    description: str = ""
    thresholds: tuple[tuple[float, str], ...] = ()
    mappings: tuple[tuple[str, str, str], ...] = ()
    interval: str = ""
    table_columns: Mapping[str, str] = field(default_factory=dict)
    hall_link: bool = False
    stack: bool = False
    no_value: str = ""


@dataclass(frozen=True, slots=True)
class Row:
    """A row header: the panels after it belong to it."""

    title: str


ON_OFF = (("0", "离岗 (off post)", "red"), ("1", "在岗 (on post)", "green"))
ONLINE = (("0", "离线 (offline)", "red"), ("1", "在线 (online)", "green"))
HYGIENE = (("0", "环境好 (good)", "green"), ("1", "环境差 (bad)", "red"))
CROWDED = (("0", "正常 (normal)", "green"), ("1", "拥挤 (crowded)", "orange"))


def query_variable(
    name: str,
    label: str,
    definition: str,
    *,
    datasource: Mapping[str, str] = VICTORIA,
    multi: bool = False,
) -> Json:
    """A variable whose values come from the data source (``label_values(...)``).

    ``multi`` variables also offer 全部 (All), sent as the regex ``.*``: use them with
    ``=~`` matchers.
    """
    return {
        "name": name,
        "label": label,
        "type": "query",
        "datasource": dict(datasource),
        "definition": definition,
        "query": definition,
        "refresh": 2,
        "sort": 1,
        "multi": multi,
        "includeAll": multi,
        "allValue": ".*" if multi else None,
        "current": {"text": "All", "value": "$__all"} if multi else {},
        "options": [],
        "hide": 0,
    }


def constant_variable(name: str, value: str) -> Json:
    """A hidden constant (a query assumption, e.g. a look-back window)."""
    return {
        "name": name,
        "type": "constant",
        "query": value,
        "hide": 2,
        "current": {"text": value, "value": value},
        "options": [{"text": value, "value": value, "selected": True}],
    }


def custom_variable(name: str, label: str, values: Sequence[str], default: str) -> Json:
    """A visible choice among fixed values."""
    return {
        "name": name,
        "label": label,
        "type": "custom",
        "query": ",".join(values),
        "hide": 0,
        "multi": False,
        "includeAll": False,
        "current": {"text": default, "value": default},
        "options": [{"text": v, "value": v, "selected": v == default} for v in values],
    }


def _target(query: Query | FluxQuery, ref_id: str, *, table: bool) -> Json:
    if isinstance(query, FluxQuery):
        return {"refId": ref_id, "datasource": dict(INFLUXDB), "query": query.query}
    return {
        "refId": ref_id,
        "datasource": dict(VICTORIA),
        "expr": query.expr,
        "legendFormat": query.legend or "__auto",
        "instant": query.instant,
        "range": not query.instant,
        "format": "table" if table else "time_series",
    }


def _field_config(panel: Panel) -> Json:
    steps: list[Json] = [{"color": "green", "value": None}]
    steps += [{"color": colour, "value": value} for value, colour in panel.thresholds]
    defaults: Json = {
        "unit": panel.unit,
        "color": {
            "mode": "thresholds" if panel.kind in ("stat", "bargauge") else "palette-classic"
        },
        "thresholds": {"mode": "absolute", "steps": steps},
        "mappings": [],
    }
    if panel.no_value:
        defaults["noValue"] = panel.no_value
    if panel.mappings:
        defaults["color"] = {"mode": "thresholds"}
        defaults["mappings"] = [
            {
                "type": "value",
                "options": {
                    value: {"text": text, "color": colour, "index": i}
                    for i, (value, text, colour) in enumerate(panel.mappings)
                },
            }
        ]
    if panel.kind == "timeseries":
        defaults["custom"] = {
            "drawStyle": "bars" if panel.stack else "line",
            "lineInterpolation": "stepAfter",
            "fillOpacity": 80 if panel.stack else 10,
            "stacking": {"mode": "normal" if panel.stack else "none"},
            "spanNulls": False,
            "showPoints": "never",
        }
    overrides: list[Json] = []
    if panel.hall_link:
        overrides.append(
            {
                "matcher": {"id": "byName", "options": "hall"},
                "properties": [
                    {"id": "displayName", "value": "大厅 (hall)"},
                    {
                        "id": "links",
                        "value": [
                            {
                                "title": "大厅详情 (hall view)",
                                "url": "/d/hallwatch-hall/hallwatch-hall?var-hall=${__value.raw}"
                                "&${__url_time_range}",
                            }
                        ],
                    },
                ],
            }
        )
    return {"defaults": defaults, "overrides": overrides}


def _options(panel: Panel) -> Json:
    reduce = {"calcs": ["lastNotNull"], "fields": "", "values": False}
    if panel.kind == "stat":
        return {"reduceOptions": reduce, "colorMode": "background", "graphMode": "none"}
    if panel.kind == "bargauge":
        return {"reduceOptions": reduce, "orientation": "horizontal", "displayMode": "basic"}
    if panel.kind == "piechart":
        return {"reduceOptions": reduce, "pieType": "donut", "legend": {"displayMode": "table"}}
    if panel.kind == "state-timeline":
        return {"mergeValues": True, "showValue": "never", "rowHeight": 0.8}
    if panel.kind == "table":
        return {"showHeader": True, "cellHeight": "sm"}
    return {"legend": {"displayMode": "list", "placement": "bottom"}, "tooltip": {"mode": "multi"}}


def _transformations(panel: Panel) -> list[Json]:
    if not panel.table_columns:
        return []
    renames = {f"Value #{ref}": title for ref, title in panel.table_columns.items()}
    return [
        {"id": "merge", "options": {}},
        {
            "id": "organize",
            "options": {"excludeByName": {"Time": True}, "renameByName": renames},
        },
    ]


def panel_json(panel: Panel, panel_id: int, x: int, y: int) -> Json:
    """One panel at grid position (x, y)."""
    table = bool(panel.table_columns)
    targets = [_target(q, chr(ord("A") + i), table=table) for i, q in enumerate(panel.queries)]
    flux = any(isinstance(q, FluxQuery) for q in panel.queries)
    out: Json = {
        "id": panel_id,
        "type": panel.kind,
        "title": panel.title,
        "description": panel.description,
        "gridPos": {"h": panel.height, "w": panel.width, "x": x, "y": y},
        "datasource": dict(INFLUXDB if flux else VICTORIA),
        "targets": targets,
        "fieldConfig": _field_config(panel),
        "options": _options(panel),
        "transformations": _transformations(panel),
    }
    if panel.interval:
        out["interval"] = panel.interval
    return out


def layout(items: Sequence[Panel | Row]) -> list[Json]:
    """Panels and rows placed left to right, wrapping at 24 columns; ids from 1."""
    out: list[Json] = []
    x = y = 0
    line_height = 0
    for panel_id, item in enumerate(items, start=1):
        if isinstance(item, Row):
            y += line_height
            x, line_height = 0, 0
            out.append(
                {
                    "id": panel_id,
                    "type": "row",
                    "title": item.title,
                    "collapsed": False,
                    "gridPos": {"h": 1, "w": GRID_WIDTH, "x": 0, "y": y},
                    "panels": [],
                }
            )
            y += 1
            continue
        if x + item.width > GRID_WIDTH:
            y += line_height
            x, line_height = 0, 0
        out.append(panel_json(item, panel_id, x, y))
        x += item.width
        line_height = max(line_height, item.height)
    return out


def dashboard(
    uid: str,
    title: str,
    variables: Sequence[Json],
    items: Sequence[Panel | Row],
    *,
    description: str = "",
    time_from: str = "now/d",
    refresh: str = "30s",
) -> Json:
    """A whole dashboard (tagged ``hallwatch``, linked to the other HallWatch dashboards)."""
    return {
        "uid": uid,
        "title": title,
        "description": description,
        "tags": ["hallwatch"],
        "timezone": "browser",
        "editable": True,
        "graphTooltip": 1,
        "schemaVersion": 39,
        "version": 1,
        "refresh": refresh,
        "time": {"from": time_from, "to": "now"},
        "timepicker": {},
        "links": [
            {
                "type": "dashboards",
                "tags": ["hallwatch"],
                "asDropdown": False,
                "includeVars": True,
                "keepTime": True,
                "title": "HallWatch",
            }
        ],
        "annotations": {"list": []},
        "templating": {"list": list(variables)},
        "panels": layout(items),
    }
