"""Grafana dashboards (dashboards/): every query names series HallWatch writes.

What HallWatch writes is derived from the code, not listed by hand: one fact of every kind
(the examples of docs/protocol.md, and each again with every optional body field filled)
through ``facts_to_points`` gives the VictoriaMetrics series ``<measurement>_<field>`` of
every non-text field with the tags as labels (and the measurements, fields and tags Flux
sees); importing ``aggregator.service`` registers the aggregator's Prometheus metrics.

Against a real VictoriaMetrics (when installed) the example facts go through the real
``Ingestor`` into ``LineProtocolStore``, the server scrapes this process's metrics with
``dashboards/scrape.yml``, and every panel query and template variable runs there.
"""

from __future__ import annotations

import importlib
import json
import re
import subprocess
import sys
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import Enum
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, get_args

import pytest
import yaml
from prometheus_client import REGISTRY, generate_latest
from prometheus_client.metrics import MetricWrapperBase
from pydantic import ValidationError

from aggregator.store.timeseries import facts_to_points
from hallwatch.contract import Fact, parse_fact

ROOT = Path(__file__).resolve().parents[1]
DASHBOARDS = ROOT / "dashboards"
PROVISIONING = DASHBOARDS / "provisioning"
SCRAPE = DASHBOARDS / "scrape.yml"
PROTOCOL = ROOT / "docs" / "protocol.md"

# -- what HallWatch writes --------------------------------------------------------------


def example_payloads() -> list[dict[str, Any]]:
    """The fact examples of docs/protocol.md (one per kind), as JSON objects."""
    found = re.findall(
        r"### Example(?: \(\w+\))?: (.+?)\n\n```json\n(.+?)\n```", PROTOCOL.read_text(), re.S
    )
    return [json.loads(text) for name, text in found if name not in ("edge status", "alert")]


def _candidates(annotation: Any) -> list[Any]:
    out: list[Any] = []
    for arg in get_args(annotation) or (annotation,):
        if isinstance(arg, type) and issubclass(arg, Enum):
            out.append(next(iter(arg)).value)
        elif arg is str:
            out.append("3")
        elif arg in (int, float):
            out.append(1)
        elif arg is bool:
            out.append(True)
    return out


def filled(payload: dict[str, Any]) -> dict[str, Any]:
    """The fact with every optional body field it left empty filled, where one validates."""
    out = json.loads(json.dumps(payload))
    model = type(parse_fact(json.dumps(out)).body)
    for name, info in model.model_fields.items():
        if out["body"].get(name) is not None:
            continue
        for value in _candidates(info.annotation):
            trial = json.loads(json.dumps(out))
            trial["body"][name] = value
            try:
                parse_fact(json.dumps(trial))
            except ValidationError:
                continue
            out = trial
            break
    return out


def written_facts() -> list[Fact]:
    payloads = example_payloads()
    return [parse_fact(json.dumps(p)) for p in payloads + [filled(p) for p in payloads]]


@dataclass(frozen=True, slots=True)
class Measurement:
    """A measurement as InfluxDB keeps it."""

    tags: frozenset[str]
    fields: frozenset[str]


def measurements() -> dict[str, Measurement]:
    """Measurement → its tags and fields (text fields too), from ``facts_to_points``."""
    tags: dict[str, set[str]] = {}
    fields: dict[str, set[str]] = {}
    for fact in written_facts():
        for point in facts_to_points(fact):
            tags.setdefault(point.measurement, set()).update(point.tags)
            fields.setdefault(point.measurement, set()).update(point.fields)
    return {m: Measurement(frozenset(tags[m]), frozenset(fields[m])) for m in tags}


def fact_series() -> dict[str, frozenset[str]]:
    """VictoriaMetrics series name → labels: ``<measurement>_<field>`` of non-text fields."""
    out: dict[str, set[str]] = {}
    for fact in written_facts():
        for point in facts_to_points(fact):
            for name, value in point.fields.items():
                if not isinstance(value, str):
                    out.setdefault(f"{point.measurement}_{name}", set()).update(point.tags)
    return {name: frozenset(labels) for name, labels in out.items()}


SCRAPE_LABELS = frozenset({"job", "instance"})
SCRAPE_SERIES = ("up", "scrape_duration_seconds", "scrape_samples_scraped")
"""Series the scraper itself writes per target (Prometheus and VictoriaMetrics alike)."""


SUFFIXES = {
    "counter": ("_total", "_created"),
    "gauge": ("",),
    "histogram": ("_bucket", "_sum", "_count", "_created"),
    "summary": ("", "_sum", "_count", "_created"),
    "info": ("_info",),
}
"""Series of a metric family in the exposition, by its type."""


def scraped_metrics() -> dict[str, frozenset[str]]:
    """The aggregator's ``/metrics`` series → labels (with the scrape's job and instance)."""
    importlib.import_module("aggregator.service")
    out: dict[str, frozenset[str]] = dict.fromkeys(SCRAPE_SERIES, SCRAPE_LABELS)
    for collector in list(REGISTRY._collector_to_names):
        declared = collector._labelnames if isinstance(collector, MetricWrapperBase) else ()
        for family in collector.collect():
            labels = set(declared) | SCRAPE_LABELS
            labels |= {k for s in family.samples for k in s.labels if k not in ("le", "quantile")}
            for suffix in SUFFIXES.get(family.type, ("",)):
                extra = {"le"} if suffix == "_bucket" else set()
                extra |= {"quantile"} if family.type == "summary" and not suffix else set()
                out[family.name + suffix] = frozenset(labels | extra)
    return out


# -- PromQL / MetricsQL names -------------------------------------------------------------


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


AGGREGATIONS = _words(
    "sum min max avg group stddev stdvar count count_values bottomk topk quantile"
)
FUNCTIONS = AGGREGATIONS | _words(
    """abs absent absent_over_time avg_over_time ceil changes clamp clamp_max clamp_min
    count_over_time day_of_month day_of_week day_of_year days_in_month delta deriv exp floor
    histogram_quantile holt_winters hour idelta increase irate label_join label_replace
    last_over_time ln log2 log10 mad_over_time max_over_time min_over_time minute month
    predict_linear present_over_time quantile_over_time rate resets round scalar sgn sort
    sort_desc sqrt stddev_over_time stdvar_over_time sum_over_time time timestamp vector year
    start end tlast_over_time"""
)
"""PromQL's functions and aggregations, and the MetricsQL ones the dashboards use."""
GROUPING = frozenset({"by", "without", "on", "ignoring", "group_left", "group_right"})
KEYWORDS = GROUPING | frozenset(
    {"and", "or", "unless", "bool", "offset", "atan2", "inf", "nan", "if", "ifnot", "default"}
)
MATCH_OPS = frozenset({"=", "!=", "=~", "!~"})

_TOKEN = re.compile(
    r"""
    (?P<space>\s+)
  | (?P<comment>\#[^\n]*)
  | (?P<string>"(?:\\.|[^"\\\n])*"|'(?:\\.|[^'\\\n])*'|`[^`]*`)
  | (?P<variable>\$\{[^}]+\}|\$[A-Za-z_]\w*|\[\[[A-Za-z_]\w*\]\])
  | (?P<duration>(?:\d+(?:\.\d+)?(?:ms|[smhdwy]))+(?![\w.]))
  | (?P<number>(?:0[xX][0-9a-fA-F]+|\d+\.?\d*(?:[eE][+-]?\d+)?|\.\d+(?:[eE][+-]?\d+)?)(?![\w.]))
  | (?P<ident>[A-Za-z_][\w:]*)
  | (?P<op>=~|!~|!=|==|<=|>=|[-+*/%^<>=,(){}\[\]:@])
    """,
    re.X,
)


@dataclass(frozen=True, slots=True)
class Matcher:
    """``label op "value"`` in a selector."""

    label: str
    op: str
    value: str


@dataclass(frozen=True, slots=True)
class Selector:
    """A series selector: metric name ("" when only a regex names it) and matchers."""

    metric: str
    matchers: tuple[Matcher, ...] = ()

    @property
    def labels(self) -> frozenset[str]:
        return frozenset(m.label for m in self.matchers)


@dataclass(frozen=True, slots=True)
class PromNames:
    """The names an expression uses."""

    selectors: tuple[Selector, ...]
    functions: frozenset[str]
    grouping: frozenset[str]
    """Labels of ``by``, ``without``, ``on``, ``ignoring``, ``group_left/right``."""

    @property
    def metrics(self) -> frozenset[str]:
        return frozenset(s.metric for s in self.selectors)


@dataclass(frozen=True, slots=True)
class _Token:
    kind: str
    text: str


def _tokens(expr: str) -> list[_Token]:
    out: list[_Token] = []
    pos = 0
    while pos < len(expr):
        match = _TOKEN.match(expr, pos)
        if match is None or match.lastgroup is None:
            raise ValueError(f"unexpected {expr[pos]!r} at {pos} in {expr!r}")
        if match.lastgroup not in ("space", "comment"):
            out.append(_Token(match.lastgroup, match.group()))
        pos = match.end()
    return out


def _unquote(text: str) -> str:
    body = text[1:-1]
    return body if text[0] == "`" else re.sub(r"\\(.)", r"\1", body)


def _matchers(tokens: list[_Token], i: int) -> tuple[list[Matcher], int]:
    """Matchers of the ``{...}`` opening at ``tokens[i]``; index after its ``}``."""
    out: list[Matcher] = []
    i += 1
    while True:
        if i >= len(tokens):
            raise ValueError("unterminated {")
        if tokens[i].text == "}":
            return out, i + 1
        if i + 2 >= len(tokens):
            raise ValueError("unterminated {")
        label, op, value = tokens[i : i + 3]
        if label.kind not in ("ident", "string") or op.text not in MATCH_OPS:
            raise ValueError(f"bad label matcher at {label.text!r}")
        if value.kind != "string":
            raise ValueError(f"label {label.text} needs a quoted value, not {value.text!r}")
        name = _unquote(label.text) if label.kind == "string" else label.text
        out.append(Matcher(name, op.text, _unquote(value.text)))
        i += 3
        if i < len(tokens) and tokens[i].text == ",":
            i += 1


def _label_list(tokens: list[_Token], i: int) -> tuple[set[str], int]:
    """Labels of the ``(...)`` opening at ``tokens[i]``; index after its ``)``."""
    labels: set[str] = set()
    for j in range(i + 1, len(tokens)):
        token = tokens[j]
        if token.text == ")":
            return labels, j + 1
        if token.kind == "ident":
            labels.add(token.text)
        elif token.kind == "string":
            labels.add(_unquote(token.text))
        elif token.text != ",":
            raise ValueError(f"unexpected {token.text!r} in a label list")
    raise ValueError("unterminated label list")


def _skip_brackets(tokens: list[_Token], i: int) -> int:
    """Index after the ``]`` closing the range or subquery step opened at ``tokens[i]``."""
    for j in range(i + 1, len(tokens)):
        if tokens[j].text == "]":
            return j + 1
        if tokens[j].kind not in ("duration", "number", "variable") and tokens[j].text != ":":
            raise ValueError(f"unexpected {tokens[j].text!r} in [...]")
    raise ValueError("unterminated [")


def _selector(metric: str, matchers: list[Matcher]) -> Selector:
    if not metric:
        names = [m for m in matchers if m.label == "__name__"]
        if len(names) == 1 and names[0].op == "=":
            metric = names[0].value
            matchers = [m for m in matchers if m.label != "__name__"]
    return Selector(metric, tuple(matchers))


def promql_names(expr: str) -> PromNames:
    """The series selectors, functions and grouping labels of a PromQL/MetricsQL expression.

    A metric is an identifier that is not a function (followed by ``(``, or an aggregation
    followed by ``by``/``without``), keyword or label; ``{__name__="m"}`` names ``m``.
    Strings, durations, numbers and Grafana variables (``$x``, ``${x}``, ``[[x]]``) name
    nothing.

    Raises:
        ValueError: The expression does not tokenize or its brackets do not balance.
    """
    tokens = _tokens(expr)
    selectors: list[Selector] = []
    functions: set[str] = set()
    grouping: set[str] = set()
    depth = 0
    i = 0
    while i < len(tokens):
        token = tokens[i]
        after = tokens[i + 1].text if i + 1 < len(tokens) else ""
        word = token.text.lower()
        if token.text == "{":
            matchers, i = _matchers(tokens, i)
            selectors.append(_selector("", matchers))
            continue
        if token.text == "[":
            i = _skip_brackets(tokens, i)
            continue
        if token.text in ("}", "]"):
            raise ValueError(f"unbalanced {token.text!r}")
        depth += {"(": 1, ")": -1}.get(token.text, 0)
        if depth < 0:
            raise ValueError("unbalanced )")
        if token.kind != "ident":
            i += 1
        elif word in GROUPING and after == "(":
            labels, i = _label_list(tokens, i + 1)
            grouping |= labels
        elif word in KEYWORDS:
            i += 1
        elif after == "(" or (word in AGGREGATIONS and after.lower() in ("by", "without")):
            functions.add(token.text)
            i += 1
        elif after == "{":
            matchers, i = _matchers(tokens, i + 1)
            selectors.append(_selector(token.text, matchers))
        else:
            selectors.append(Selector(token.text))
            i += 1
    if depth:
        raise ValueError("unbalanced (")
    return PromNames(tuple(selectors), frozenset(functions), frozenset(grouping))


M = Matcher
S = Selector


@pytest.mark.parametrize(
    ("expr", "selectors", "functions", "grouping"),
    [
        ("up", [S("up")], set(), set()),
        (
            'rate(hallwatch_ingest_messages_total{outcome="stored"}[5m])',
            [S("hallwatch_ingest_messages_total", (M("outcome", "=", "stored"),))],
            {"rate"},
            set(),
        ),
        (
            'sum by (hall, window) (last_over_time(post_presence_on_post{hall="$hall", '
            'window=~"$window"}[$presence_lookback]))',
            [
                S(
                    "post_presence_on_post",
                    (M("hall", "=", "$hall"), M("window", "=~", "$window")),
                )
            ],
            {"sum", "last_over_time"},
            {"hall", "window"},
        ),
        ("sum(x) without (le)", [S("x")], {"sum"}, {"le"}),
        (
            "histogram_quantile(0.95, sum by (le) (rate(a_bucket[$__rate_interval])))",
            [S("a_bucket")],
            {"histogram_quantile", "sum", "rate"},
            {"le"},
        ),
        ("a / on (hall) group_left (zone) b", [S("a"), S("b")], set(), {"hall", "zone"}),
        (
            '{__name__="queue_waiting", hall="h"}',
            [S("queue_waiting", (M("hall", "=", "h"),))],
            set(),
            set(),
        ),
        ('{__name__=~"queue_.+"}', [S("", (M("__name__", "=~", "queue_.+"),))], set(), set()),
        (
            'label_replace(up, "dst", "x{y} z(", "src", "(.*)")',
            [S("up")],
            {"label_replace"},
            set(),
        ),
        (
            'sum_over_time((1 - last_over_time(m{a="1"}[3m]))[$__range:1m])',
            [S("m", (M("a", "=", "1"),))],
            {"sum_over_time", "last_over_time"},
            set(),
        ),
        ("a and b unless c offset 1h30m", [S("a"), S("b"), S("c")], set(), set()),
        ("count(x) BY (hall) > bool 0", [S("x")], {"count"}, {"hall"}),
        ("m @ end()", [S("m")], {"end"}, set()),
        (
            "time() - max(tlast_over_time(x[1d]))",
            [S("x")],
            {"time", "max", "tlast_over_time"},
            set(),
        ),
        ("1 + 2.5e3 * -0x1f", [], set(), set()),
        ("clamp_max(x, Inf) or NaN", [S("x")], {"clamp_max"}, set()),
        (
            'r{level!~"very_.*", q="a\\"b"}',
            [S("r", (M("level", "!~", "very_.*"), M("q", "=", 'a"b')))],
            set(),
            set(),
        ),
        (
            'm{hall="${hall}"}[${__interval}] # comment x',
            [S("m", (M("hall", "=", "${hall}"),))],
            set(),
            set(),
        ),
        ("sum by (service) (x) / ignoring(le) y", [S("x"), S("y")], {"sum"}, {"service", "le"}),
        ("-sum(increase(c_total[[[interval]]]))", [S("c_total")], {"sum", "increase"}, set()),
    ],
)
def test_promql_names(
    expr: str, selectors: list[Selector], functions: set[str], grouping: set[str]
) -> None:
    names = promql_names(expr)
    assert list(names.selectors) == selectors
    assert names.functions == functions
    assert names.grouping == grouping


@pytest.mark.parametrize(
    "expr",
    ["sum(x", "sum(x))", 'x{hall="a"', "x{hall=a}", 'x{hall~"a"}', "x[5m", "x]", "x ; y", "x[a]"],
)
def test_promql_names_rejects_malformed_expressions(expr: str) -> None:
    with pytest.raises(ValueError):
        promql_names(expr)


# -- the dashboards ---------------------------------------------------------------------


def dashboard_files() -> list[Path]:
    return sorted(DASHBOARDS.rglob("*.json"))


def load(path: Path) -> dict[str, Any]:
    board: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return board


def panels(board: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for panel in board["panels"]:
        yield panel
        yield from panel.get("panels", [])


def targets(board: dict[str, Any], kind: str) -> Iterator[tuple[str, dict[str, Any]]]:
    """(panel title, target) of every target of the data source type ``kind``."""
    for panel in panels(board):
        for target in panel.get("targets", []):
            if target["datasource"]["type"] == kind:
                yield panel["title"], target


BILINGUAL = re.compile(r"^.*[\u4e00-\u9fff].*\(.*[A-Za-z].*\)$")
LEGEND_LABEL = re.compile(r"\{\{\s*(\w+)\s*\}\}")
LABEL_VALUES = re.compile(r"^label_values\((?:(?P<selector>.+),\s*)?(?P<label>\w+)\)$", re.S)


def test_dashboard_files_are_generated_from_the_panel_lists() -> None:
    result = subprocess.run(
        [sys.executable, str(DASHBOARDS / "generate.py"), "--check"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    names = {p.relative_to(DASHBOARDS).as_posix() for p in dashboard_files()}
    assert {"hallwatch-overview.json", "hallwatch-hall.json", "hallwatch-pipeline.json"} <= names


def test_every_panel_has_a_bilingual_title_and_a_query() -> None:
    uids = []
    for path in dashboard_files():
        board = load(path)
        uids.append(board["uid"])
        assert BILINGUAL.match(board["title"]), board["title"]
        for panel in panels(board):
            assert BILINGUAL.match(panel["title"]), f"{path.name}: {panel['title']}"
            if panel["type"] != "row":
                queries = [t.get("expr") or t.get("query") for t in panel["targets"]]
                assert queries and all(queries), f"{path.name}: {panel['title']}"
    assert len(set(uids)) == len(uids)


def _check_selectors(names: PromNames, known: dict[str, frozenset[str]]) -> list[str]:
    problems = []
    labels: set[str] = set()
    for selector in names.selectors:
        if selector.metric not in known:
            problems.append(f"{selector.metric or selector} is not a series HallWatch writes")
            continue
        labels |= known[selector.metric]
        if not selector.labels <= known[selector.metric]:
            extra = sorted(selector.labels - known[selector.metric])
            problems.append(f"{selector.metric} has no label {extra}")
    if not names.grouping <= labels:
        problems.append(f"grouping by {sorted(names.grouping - labels)}: no such label")
    if not names.functions <= FUNCTIONS:
        problems.append(f"unknown functions {sorted(names.functions - FUNCTIONS)}")
    return problems


@pytest.mark.parametrize("path", dashboard_files(), ids=lambda p: p.name)
def test_every_query_names_series_hallwatch_writes(path: Path) -> None:
    known = fact_series() | scraped_metrics()
    board = load(path)
    problems = []
    for title, target in targets(board, "prometheus"):
        names = promql_names(target["expr"])
        found = [f"{title}: {p}" for p in _check_selectors(names, known)]
        labels = set().union(*(known.get(m, frozenset()) for m in names.metrics))
        legend = set(LEGEND_LABEL.findall(target.get("legendFormat", "")))
        if legend - labels:
            found.append(f"{title}: legend label {sorted(legend - labels)}")
        if not names.selectors:
            found.append(f"{title}: names no series")
        problems += found
    for variable in board["templating"]["list"]:
        if variable["type"] != "query" or variable["datasource"]["type"] != "prometheus":
            continue
        match = LABEL_VALUES.match(variable["query"])
        assert match, variable["query"]
        label = match["label"]
        if match["selector"]:
            names = promql_names(match["selector"])
            problems += [f"${variable['name']}: {p}" for p in _check_selectors(names, known)]
            if not any(label in known.get(m, frozenset()) for m in names.metrics):
                problems.append(f"${variable['name']}: no label {label}")
        elif not any(label in labels for labels in known.values()):
            problems.append(f"${variable['name']}: no series has label {label}")
    assert not problems, "\n".join(problems)


FLUX_COLUMNS = frozenset({"_time", "_value", "_field", "_measurement", "_start", "_stop"})


@pytest.mark.parametrize("path", dashboard_files(), ids=lambda p: p.name)
def test_every_flux_query_names_measurements_hallwatch_writes(path: Path) -> None:
    known = measurements()
    board = load(path)
    problems = []
    flux = [(title, t["query"]) for title, t in targets(board, "influxdb")]
    flux += [
        (v["name"], v["query"])
        for v in board["templating"]["list"]
        if v["type"] == "query" and v["datasource"]["type"] == "influxdb"
    ]
    for title, query in flux:
        used = re.findall(r'r\._measurement == "(\w+)"', query)
        if "schema.tagValues" in query:
            tag = re.findall(r'tag: "(\w+)"', query)
            if not all(any(t in m.tags for m in known.values()) for t in tag):
                problems.append(f"{title}: no measurement has tag {tag}")
            continue
        if len(used) != 1 or used[0] not in known:
            problems.append(f"{title}: measurement {used} is not one HallWatch writes")
            continue
        m = known[used[0]]
        fields = set(re.findall(r'r\._field == "(\w+)"', query))
        columns = {a or b for a, b in re.findall(r'r\.(\w+)|r\["(\w+)"\]', query)}
        for listed in re.findall(r"columns: \[([^\]]*)\]|rowKey: \[([^\]]*)\]", query):
            columns |= set(re.findall(r'"(\w+)"', " ".join(listed)))
        if not fields or not fields <= m.fields:
            problems.append(f"{title}: {used[0]} has no field {sorted(fields - m.fields)}")
        if not columns <= m.tags | m.fields | FLUX_COLUMNS:
            unknown = sorted(columns - m.tags - m.fields - FLUX_COLUMNS)
            problems.append(f"{title}: {used[0]} has no column {unknown}")
    if "influxdb" in str(path):
        assert flux
    assert not problems, "\n".join(problems)


def test_dashboards_cover_every_measurement_and_the_pipeline() -> None:
    used: set[str] = set()
    for path in dashboard_files():
        for _title, target in targets(load(path), "prometheus"):
            used |= promql_names(target["expr"]).metrics
    series = fact_series()
    for measurement in measurements():
        assert any(m.startswith(measurement + "_") for m in used), measurement
    assert {n for n in series if n.startswith("edge_pipeline_")} <= used
    assert {
        "hallwatch_ingest_messages_total",
        "hallwatch_ingest_latency_seconds_bucket",
        "hallwatch_ingest_queue_depth",
    } <= used


def _provisioned_datasources() -> dict[str, str]:
    out = {}
    for path in sorted((PROVISIONING / "datasources").glob("*.yaml")):
        for source in yaml.safe_load(path.read_text())["datasources"]:
            out[source["uid"]] = source["type"]
    return out


def test_panels_use_provisioned_datasources() -> None:
    provisioned = _provisioned_datasources()
    assert set(provisioned.values()) == {"prometheus", "influxdb"}
    for path in dashboard_files():
        board = load(path)
        refs = [p["datasource"] for p in panels(board) if "datasource" in p]
        refs += [t["datasource"] for p in panels(board) for t in p.get("targets", [])]
        refs += [v["datasource"] for v in board["templating"]["list"] if "datasource" in v]
        assert refs
        for ref in refs:
            assert provisioned.get(ref["uid"]) == ref["type"], f"{path.name}: {ref}"


def test_dashboard_provider_reads_the_dashboard_folder() -> None:
    config = yaml.safe_load((PROVISIONING / "dashboards" / "hallwatch.yaml").read_text())
    (provider,) = config["providers"]
    assert provider["type"] == "file"
    path = provider["options"]["path"]
    readme = (DASHBOARDS / "README.md").read_text()
    assert f"{path}" in readme  # the README says what to mount there


def test_scrape_config_scrapes_the_aggregator_metrics_route() -> None:
    from aggregator.api.routes.health import router

    routes = {getattr(route, "path", "") for route in router.routes}
    config = yaml.safe_load(SCRAPE.read_text())
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    assert jobs["hallwatch-aggregator"]["metrics_path"] in routes
    used = set()
    for path in dashboard_files():
        for _title, target in targets(load(path), "prometheus"):
            for selector in promql_names(target["expr"]).selectors:
                used |= {m.value for m in selector.matchers if m.label == "job"}
    assert used and used <= set(jobs)


# -- against a real VictoriaMetrics -------------------------------------------------------

BUILTINS = {"__range": "1h", "__interval": "10m", "__rate_interval": "1m"}
"""Grafana's own variables as the live test sets them (the facts lie within 10 minutes)."""
JOB_LABEL = re.compile(r'job="([^"]+)"')
GRAFANA_VARIABLE = re.compile(r"\$\{(\w+)(?::\w+)?\}|\$(\w+)|\[\[(\w+)\]\]")


def substitute(text: str, values: dict[str, str]) -> str:
    """Grafana variables replaced by values (a KeyError names an unknown variable)."""
    return GRAFANA_VARIABLE.sub(lambda m: values[m[1] or m[2] or m[3]], text)


class _MetricsHandler(BaseHTTPRequestHandler):
    """This process's Prometheus registry, as the aggregator serves it."""

    path_served = "/metrics"

    def do_GET(self) -> None:
        if self.path != self.path_served:
            self.send_error(404)
            return
        body = generate_latest(REGISTRY)
        self.send_response(200)
        self.send_header("Content-Type", "text/plain; version=0.0.4")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@dataclass
class LiveServer:
    """VictoriaMetrics with the example facts and scraped aggregator metrics."""

    url: str
    at: float
    """Unix time the queries are evaluated at."""

    def get(self, path: str, **params: str) -> Any:
        query = urllib.parse.urlencode(params)
        try:
            with urllib.request.urlopen(f"{self.url}{path}?{query}", timeout=30) as response:
                return json.loads(response.read())
        except urllib.error.HTTPError as exc:
            raise AssertionError(f"{path} {params}: {exc.read().decode()}") from None

    def query(self, expr: str) -> list[Any]:
        result: list[Any] = self.get("/api/v1/query", query=expr, time=f"{self.at:.3f}")["data"][
            "result"
        ]
        return result

    def has_series(self, metric: str) -> bool:
        found = self.get("/api/v1/series", **{"match[]": metric, "start": f"{self.at - 7200}"})
        return bool(found["data"])


def _shifted(payload: dict[str, Any], ts: datetime) -> bytes:
    """The fact with every time moved by the same amount, so that its ``ts`` is ``ts``."""
    text = json.dumps(payload)
    delta = ts - datetime.fromisoformat(payload["ts"].replace("Z", "+00:00"))

    def move(match: re.Match[str]) -> str:
        when = datetime.fromisoformat(match[1].replace("Z", "+00:00")) + delta
        return f'"{when.strftime("%Y-%m-%dT%H:%M:%SZ")}"'

    return re.sub(r'"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ)"', move, text).encode()


def _wait_for(server: Any, live: LiveServer, expr: str) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        server.force_flush()
        live.at = time.time()
        if live.query(expr):
            return
        time.sleep(0.5)
    raise AssertionError(f"VictoriaMetrics never answered {expr}")


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    from aggregator.ingest import Ingestor, Message
    from aggregator.store.line_protocol import LineProtocolStore
    from aggregator.store.state import StateStore
    from hallwatch.contract import fact_topic
    from tests.conftest import build_hall
    from tests.support.victoria import VictoriaMetrics, find_victoria

    if find_victoria() is None:
        pytest.skip("victoria-metrics is not installed")
    folder = tmp_path_factory.mktemp("dashboards")
    config = yaml.safe_load(SCRAPE.read_text())
    (job,) = config["scrape_configs"]
    _MetricsHandler.path_served = job["metrics_path"]
    metrics = ThreadingHTTPServer(("127.0.0.1", 0), _MetricsHandler)
    threading.Thread(target=metrics.serve_forever, daemon=True).start()
    job["static_configs"] = [{"targets": [f"127.0.0.1:{metrics.server_address[1]}"]}]
    job["scrape_interval"] = "1s"
    (folder / "scrape.yml").write_text(yaml.safe_dump(config))

    class Scraping(VictoriaMetrics):
        def command(self) -> list[str]:
            return [*super().command(), f"-promscrape.config={folder / 'scrape.yml'}"]

    state = StateStore(f"sqlite:///{folder / 'state.sqlite'}")
    state.create_all()
    with Scraping() as server:
        live = LiveServer(server.url, time.time())
        store = LineProtocolStore(server.url, flavour="victoriametrics", flush_interval_s=0.05)
        payloads = example_payloads()
        ts = datetime.now(UTC).replace(microsecond=0) - timedelta(seconds=90)
        ingestor = Ingestor(state, store, {p["hall"]: build_hall(p["hall"]) for p in payloads})
        messages = [Message(fact_topic(p["hall"], p["kind"]), _shifted(p, ts)) for p in payloads]
        stored = 'hallwatch_ingest_messages_total{outcome="stored"}'
        # one fact, scraped twice, then the others: the counters rise between scrapes
        outcomes = ingestor.handle_batch(messages[:1])
        _wait_for(server, live, f"count_over_time({stored}[1m]) >= 2")
        outcomes += ingestor.handle_batch(messages[1:])
        assert {o.value for o in outcomes} == {"stored"}
        assert store.flush(30)
        store.close()
        total = REGISTRY.get_sample_value("hallwatch_ingest_messages_total", {"outcome": "stored"})
        _wait_for(server, live, f"{stored} >= {total}")
        yield live
    metrics.shutdown()
    metrics.server_close()
    state.dispose()


def _variables(board: dict[str, Any], live: LiveServer) -> dict[str, str]:
    """Every variable set as Grafana would: query variables to their first value there."""
    values = dict(BUILTINS)
    for variable in board["templating"]["list"]:
        name = variable["name"]
        if variable["type"] == "constant":
            values[name] = variable["query"]
        elif variable["type"] == "custom":
            values[name] = variable["current"]["value"]
        else:
            match = LABEL_VALUES.match(substitute(variable["query"], values))
            assert match, variable["query"]
            params = {"start": f"{live.at - 7200}"}
            if match["selector"]:
                params["match[]"] = match["selector"]
            found = live.get(f"/api/v1/label/{match['label']}/values", **params)["data"]
            assert found, f"${name} finds no value"
            values[name] = found[0]
    return values


VM_DASHBOARDS = [p for p in dashboard_files() if "influxdb" not in p.parts]


@pytest.mark.parametrize("path", VM_DASHBOARDS, ids=lambda p: p.name)
def test_every_query_runs_on_victoriametrics_with_results(path: Path, live: LiveServer) -> None:
    board = load(path)
    values = _variables(board, live)
    facts = fact_series()
    present = {m: live.has_series(m) for m in facts | scraped_metrics()}
    empty = []
    checked = 0
    for title, target in targets(board, "prometheus"):
        expr = substitute(target["expr"], values)
        result = live.query(expr)  # a query error fails here, with VictoriaMetrics' message
        if not target["instant"]:
            span = {"start": f"{live.at - 3600:.3f}", "end": f"{live.at:.3f}", "step": "60"}
            live.get("/api/v1/query_range", query=expr, **span)
        metrics = promql_names(expr).metrics
        if all(present[m] for m in metrics):
            checked += 1
            if not result:
                empty.append(f"{title}: {expr}")
        else:
            missing = {m for m in metrics if not present[m]}
            assert not missing & set(facts), f"{title}: facts were written but {missing} is not"
    assert not empty, "no result:\n" + "\n".join(empty)
    assert checked >= len(list(targets(board, "prometheus"))) * 3 // 4
