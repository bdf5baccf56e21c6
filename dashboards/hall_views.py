"""The overview of all halls and the hall dashboard (VictoriaMetrics, MetricsQL/PromQL).

Series are the line-protocol points of ``facts_to_points`` as VictoriaMetrics names them:
``<measurement>_<field>`` with the tags as labels (see README.md, "Query assumptions"):

- presence (``post_presence_on_post``) is written at each change and at each summary
  (every ``summary_interval_s``, 60 s by default): a post's state at a moment is its last
  sample within ``$presence_lookback`` (3m); older than that it is unknown (edge or camera
  down) and counts neither as on nor as off post;
- gauges (queue, occupancy: every 60 s by default) are read with ``$gauge_lookback`` (5m);
- device and hygiene states are written only when they change: read with
  ``$state_lookback`` (7 days by default, a choice on the dashboard);
- events (waits over the limit, trips over the promise, ratings, tickets) are one sample
  each: counted with ``count_over_time`` / ``sum_over_time``.
"""

from __future__ import annotations

from grafana_json import (
    CROWDED,
    HYGIENE,
    ON_OFF,
    ONLINE,
    Json,
    Panel,
    Query,
    Row,
    constant_variable,
    custom_variable,
    dashboard,
    query_variable,
)

LIMIT_S = 1800.0
"""The wait limit (30 min) the longest-wait colours use."""


def sel(metric: str, *matchers: str) -> str:
    """A series selector: ``sel("queue_waiting", 'hall="$hall"')``."""
    return f"{metric}{{{', '.join(matchers)}}}"


def last(metric: str, lookback: str, *matchers: str) -> str:
    """The last sample of each series within ``lookback`` (a variable name)."""
    return f"last_over_time({sel(metric, *matchers)}[${lookback}])"


def off_post_minutes(*matchers: str, by: str) -> str:
    """Minutes a post's last known state was off post, at 1-minute resolution."""
    off = f"1 - {last('post_presence_on_post', 'presence_lookback', *matchers)}"
    return f"sum by ({by}) (sum_over_time(({off})[$__range:1m]))"


def lookback_variables() -> list[Json]:
    """The look-back windows the queries assume (README.md, "Query assumptions")."""
    return [
        constant_variable("presence_lookback", "3m"),
        constant_variable("gauge_lookback", "5m"),
        custom_variable("state_lookback", "状态回看 (state look-back)", ("1d", "7d", "30d"), "7d"),
    ]


OFF_POST_DESCRIPTION = (
    "Minutes in the range whose last presence sample (within $presence_lookback) was "
    "off_post, counted at 1-minute steps. Presence is written at each change and each "
    "summary (60 s), so a post with no sample for $presence_lookback (edge or camera down) "
    "counts neither way. Raw off-post time: it includes the grace before an off-post alert "
    "and breaks; the daily report counts alert minutes instead."
)


def overview() -> Json:
    """总览: every hall side by side (a big-screen table and trends)."""
    h = 'hall=~"$hall"'
    on = last("post_presence_on_post", "presence_lookback", h)
    columns = {
        "A": "在岗 (on post)",
        "B": "离岗 (off post)",
        "C": "等候 (waiting)",
        "D": "最长等候 (longest wait, s)",
        "E": "超时等候 (waits over limit)",
        "F": "跑动超承诺 (trips over promise)",
        "G": "差评 (bad ratings)",
        "H": "环境差 (bad hygiene zones)",
        "I": "拥挤区域 (crowded zones)",
        "J": "离线设备 (devices offline)",
        "K": "进入人数 (entries)",
    }
    queries = (
        Query(f"sum by (hall) ({on})", instant=True),
        Query(f"sum by (hall) (1 - {on})", instant=True),
        Query(f"sum by (hall) ({last('queue_waiting', 'gauge_lookback', h)})", instant=True),
        Query(f"max by (hall) ({last('queue_longest_wait_s', 'gauge_lookback', h)})", instant=True),
        Query(
            f"sum by (hall) (count_over_time({sel('wait_over_limit_waited_s', h)}[$__range]))",
            instant=True,
        ),
        Query(
            f"sum by (hall) (count_over_time({sel('trips_over_promise_trips', h)}[$__range]))",
            instant=True,
        ),
        Query(f"sum by (hall) (sum_over_time({sel('rating_bad', h)}[$__range]))", instant=True),
        Query(f"sum by (hall) ({last('zone_hygiene_bad', 'state_lookback', h)})", instant=True),
        Query(
            f"sum by (hall) ({last('zone_occupancy_crowded', 'gauge_lookback', h)})", instant=True
        ),
        Query(
            f"sum by (hall) (1 - {last('device_status_online', 'state_lookback', h)})", instant=True
        ),
        Query(
            f"sum by (hall) (sum_over_time({sel('entrance_flow_in_count', h)}[$__range]))",
            instant=True,
        ),
    )
    items: list[Panel | Row] = [
        Panel(
            "离岗岗位 (posts off post)",
            "stat",
            (Query(f"sum(1 - {on})", instant=True),),
            thresholds=((1, "red"),),
            width=4,
            height=4,
            description=OFF_POST_DESCRIPTION,
        ),
        Panel(
            "等候人数 (waiting)",
            "stat",
            (Query(f"sum({last('queue_waiting', 'gauge_lookback', h)})", instant=True),),
            width=4,
            height=4,
        ),
        Panel(
            "最长等候 (longest wait)",
            "stat",
            (Query(f"max({last('queue_longest_wait_s', 'gauge_lookback', h)})", instant=True),),
            unit="s",
            thresholds=((LIMIT_S * 2 / 3, "yellow"), (LIMIT_S, "red")),
            width=4,
            height=4,
        ),
        Panel(
            "差评 (bad ratings)",
            "stat",
            (Query(f"sum(sum_over_time({sel('rating_bad', h)}[$__range]))", instant=True),),
            thresholds=((1, "red"),),
            no_value="0",
            width=4,
            height=4,
        ),
        Panel(
            "环境差区域 (zones with bad hygiene)",
            "stat",
            (Query(f"sum({last('zone_hygiene_bad', 'state_lookback', h)})", instant=True),),
            thresholds=((1, "red"),),
            no_value="0",
            width=4,
            height=4,
        ),
        Panel(
            "离线设备 (devices offline)",
            "stat",
            (Query(f"sum(1 - {last('device_status_online', 'state_lookback', h)})", instant=True),),
            thresholds=((1, "red"),),
            no_value="0",
            width=4,
            height=4,
        ),
        Panel(
            "各大厅概况 (halls at a glance)",
            "table",
            queries,
            width=24,
            height=9,
            table_columns=columns,
            hall_link=True,
            description="One row per hall; click a hall for its dashboard. " + OFF_POST_DESCRIPTION,
        ),
        Row("趋势 (trends)"),
        Panel(
            "离岗岗位 (posts off post)",
            "timeseries",
            (Query(f"sum by (hall) (1 - {on})", "{{hall}}"),),
            width=12,
            hall_link=True,
        ),
        Panel(
            "等候人数 (waiting)",
            "timeseries",
            (Query(f"sum by (hall) ({last('queue_waiting', 'gauge_lookback', h)})", "{{hall}}"),),
            width=12,
        ),
        Panel(
            "离岗时长 (off-post minutes)",
            "bargauge",
            (Query(off_post_minutes(h, by="hall"), "{{hall}}", instant=True),),
            unit="m",
            width=8,
            height=7,
            description=OFF_POST_DESCRIPTION,
        ),
        Panel(
            "超时等候 (waits over the limit)",
            "timeseries",
            (
                Query(
                    f"sum by (hall) (count_over_time({sel('wait_over_limit_waited_s', h)}"
                    "[$__interval]))",
                    "{{hall}}",
                ),
            ),
            width=8,
            height=7,
            interval="5m",
            stack=True,
        ),
        Panel(
            "平均评分 (mean rating score, 5 = 非常满意)",
            "bargauge",
            (
                Query(
                    f"sum by (hall) (sum_over_time({sel('rating_score', h)}[$__range]))"
                    f" / sum by (hall) (count_over_time({sel('rating_score', h)}[$__range]))",
                    "{{hall}}",
                    instant=True,
                ),
            ),
            width=8,
            height=7,
            thresholds=((0, "red"), (3, "yellow"), (4, "green")),
        ),
    ]
    return dashboard(
        "hallwatch-overview",
        "HallWatch 总览 (all halls)",
        [
            query_variable("hall", "大厅 (hall)", "label_values(hall)", multi=True),
            *lookback_variables(),
        ],
        items,
        description="电子监察 overview of every hall: staffing, queues, ratings, environment, "
        "devices.",
    )


def hall() -> Json:
    """大厅: one hall's windows, queues, ratings, zones and devices."""
    h = 'hall="$hall"'
    w = 'window=~"$window"'
    s = 'service=~"$service"'
    z = 'zone=~"$zone"'
    on = last("post_presence_on_post", "presence_lookback", h, w)
    variables = [
        query_variable("hall", "大厅 (hall)", "label_values(hall)"),
        query_variable(
            "window",
            "窗口 (window)",
            'label_values(post_presence_on_post{hall="$hall"}, window)',
            multi=True,
        ),
        query_variable(
            "service",
            "业务 (service)",
            'label_values(queue_waiting{hall="$hall"}, service)',
            multi=True,
        ),
        query_variable(
            "zone",
            "区域 (zone)",
            'label_values(zone_occupancy_count{hall="$hall"}, zone)',
            multi=True,
        ),
        *lookback_variables(),
    ]
    waiting = last("queue_waiting", "gauge_lookback", h, s)
    longest = last("queue_longest_wait_s", "gauge_lookback", h, s)
    over = sel("wait_over_limit_waited_s", h, s)
    score = sel("rating_score", h, w)
    items: list[Panel | Row] = [
        Row("在岗在位 (staffing)"),
        Panel(
            "在岗 (posts on post)", "stat", (Query(f"sum({on})", instant=True),), width=4, height=4
        ),
        Panel(
            "离岗 (posts off post)",
            "stat",
            (Query(f"sum(1 - {on})", instant=True),),
            thresholds=((1, "red"),),
            width=4,
            height=4,
            description=OFF_POST_DESCRIPTION,
        ),
        Panel(
            "离岗时长 (off-post minutes)",
            "bargauge",
            (
                Query(
                    off_post_minutes(h, w, by="window, post"), "{{window}} {{post}}", instant=True
                ),
            ),
            unit="m",
            width=16,
            height=8,
            thresholds=((5, "yellow"), (30, "red")),
            description=OFF_POST_DESCRIPTION,
        ),
        Panel(
            "在岗状态 (on/off post per window)",
            "state-timeline",
            (Query(f"max by (window, post) ({on})", "{{window}} {{post}}"),),
            width=8,
            height=8,
            mappings=ON_OFF,
            description="Gaps: no presence sample for $presence_lookback (state unknown).",
        ),
        Row("排队叫号 (queue)"),
        Panel(
            "当前等候 (waiting now)",
            "stat",
            (Query(f"sum({waiting})", instant=True),),
            width=4,
            height=4,
        ),
        Panel(
            "当前最长等候 (longest wait now)",
            "stat",
            (Query(f"max({longest})", instant=True),),
            unit="s",
            thresholds=((LIMIT_S * 2 / 3, "yellow"), (LIMIT_S, "red")),
            width=4,
            height=4,
        ),
        Panel(
            "等候人数 (waiting per service)",
            "timeseries",
            (Query(f"sum by (service) ({waiting})", "{{service}}"),),
            width=8,
            height=8,
        ),
        Panel(
            "最长等候 (longest wait per service)",
            "timeseries",
            (Query(f"max by (service) ({longest})", "{{service}}"),),
            unit="s",
            width=8,
            height=8,
        ),
        Panel(
            "超时等候 (waits over the limit)",
            "stat",
            (Query(f"sum(count_over_time({over}[$__range]))", instant=True),),
            thresholds=((1, "red"),),
            no_value="0",
            width=4,
            height=4,
        ),
        Panel(
            "最长超时 (longest wait over the limit)",
            "stat",
            (Query(f"max(max_over_time({over}[$__range]))", instant=True),),
            unit="s",
            width=4,
            height=4,
        ),
        Panel(
            "超时等候 (waits over the limit per service)",
            "bargauge",
            (
                Query(
                    f"sum by (service) (count_over_time({over}[$__range]))",
                    "{{service}}",
                    instant=True,
                ),
            ),
            width=8,
            height=7,
            thresholds=((1, "red"),),
        ),
        Panel(
            "跑动超承诺 (trips over the promise per service)",
            "bargauge",
            (
                Query(
                    "sum by (service) (count_over_time("
                    f"{sel('trips_over_promise_trips', h, s)}[$__range]))",
                    "{{service}}",
                    instant=True,
                ),
            ),
            width=8,
            height=7,
            thresholds=((1, "red"),),
        ),
        Panel(
            "取号叫号 (ticket events)",
            "timeseries",
            (
                Query(
                    f"sum by (event) (sum_over_time({sel('ticket_event_count', h, s)}"
                    "[$__interval]))",
                    "{{event}}",
                ),
            ),
            width=8,
            height=7,
            interval="5m",
            stack=True,
        ),
        Row("好差评 (ratings)"),
        Panel(
            "平均评分 (mean score, 5 = 非常满意)",
            "stat",
            (
                Query(
                    f"sum(sum_over_time({score}[$__range])) / sum(count_over_time({score}"
                    "[$__range]))",
                    instant=True,
                ),
            ),
            thresholds=((0, "red"), (3, "yellow"), (4, "green")),
            width=4,
            height=4,
        ),
        Panel(
            "差评 (bad ratings)",
            "stat",
            (Query(f"sum(sum_over_time({sel('rating_bad', h, w)}[$__range]))", instant=True),),
            thresholds=((1, "red"),),
            no_value="0",
            width=4,
            height=4,
        ),
        Panel(
            "评价分布 (ratings by level)",
            "piechart",
            (
                Query(
                    f"sum by (level) (count_over_time({score}[$__range]))",
                    "{{level}}",
                    instant=True,
                ),
            ),
            width=8,
            height=8,
        ),
        Panel(
            "差评 (bad ratings per window)",
            "bargauge",
            (
                Query(
                    f"sum by (window) (sum_over_time({sel('rating_bad', h, w)}[$__range]))",
                    "{{window}}",
                    instant=True,
                ),
            ),
            thresholds=((1, "red"),),
            width=8,
            height=8,
        ),
        Row("环境与人流 (environment and crowding)"),
        Panel(
            "环境 (zone hygiene)",
            "state-timeline",
            (
                Query(
                    f"max by (zone, window) ({last('zone_hygiene_bad', 'state_lookback', h)})",
                    "{{zone}} {{window}}",
                ),
            ),
            mappings=HYGIENE,
            width=12,
            height=7,
            description="Hygiene is written when it changes: a zone's state is its last "
            "sample within $state_lookback.",
        ),
        Panel(
            "拥挤 (crowding)",
            "state-timeline",
            (
                Query(
                    f"max by (zone) ({last('zone_occupancy_crowded', 'gauge_lookback', h, z)})",
                    "{{zone}}",
                ),
            ),
            mappings=CROWDED,
            width=12,
            height=7,
        ),
        Panel(
            "区域人数 (zone occupancy)",
            "timeseries",
            (
                Query(
                    f"max by (zone) ({last('zone_occupancy_count', 'gauge_lookback', h, z)})",
                    "{{zone}}",
                ),
                Query(
                    f"max by (zone) (max_over_time({sel('zone_occupancy_peak', h, z)}"
                    "[$__interval]))",
                    "{{zone}} 峰值 (peak)",
                ),
            ),
            width=12,
            height=8,
            interval="1m",
        ),
        Panel(
            "出入口人流 (entrance flow)",
            "timeseries",
            (
                Query(
                    f"sum by (zone) (sum_over_time({sel('entrance_flow_in_count', h)}"
                    "[$__interval]))",
                    "{{zone}} 进 (in)",
                ),
                Query(
                    f"-sum by (zone) (sum_over_time({sel('entrance_flow_out_count', h)}"
                    "[$__interval]))",
                    "{{zone}} 出 (out)",
                ),
            ),
            width=12,
            height=8,
            interval="5m",
            stack=True,
            description="Flow counts are stamped at their interval's start (300 s by "
            "default); out is drawn below zero.",
        ),
        Panel(
            "拥挤时段 (crowded intervals)",
            "bargauge",
            (
                Query(
                    "sum by (zone) (sum_over_time("
                    f"{sel('zone_occupancy_crowded', h, z)}[$__range]))",
                    "{{zone}}",
                    instant=True,
                ),
            ),
            width=12,
            height=6,
            thresholds=((1, "orange"),),
            description="Occupancy intervals (60 s by default) that were crowded.",
        ),
        Panel(
            "进入人数 (entries)",
            "bargauge",
            (
                Query(
                    f"sum by (zone) (sum_over_time({sel('entrance_flow_in_count', h)}[$__range]))",
                    "{{zone}}",
                    instant=True,
                ),
            ),
            width=12,
            height=6,
        ),
        Row("设备运转 (devices)"),
        Panel(
            "离线设备 (devices offline)",
            "stat",
            (Query(f"sum(1 - {last('device_status_online', 'state_lookback', h)})", instant=True),),
            thresholds=((1, "red"),),
            no_value="0",
            width=4,
            height=8,
        ),
        Panel(
            "设备状态 (device online/offline)",
            "state-timeline",
            (
                Query(
                    f"max by (kind, device) ({last('device_status_online', 'state_lookback', h)})",
                    "{{kind}} {{device}}",
                ),
            ),
            mappings=ONLINE,
            width=20,
            height=8,
            description="Device states are written when they change: a device's state is its "
            "last sample within $state_lookback. Why it is offline is in the hall view "
            "(VictoriaMetrics keeps no text).",
        ),
    ]
    return dashboard(
        "hallwatch-hall",
        "HallWatch 大厅 (hall)",
        variables,
        items,
        description="One hall: windows on/off post, queues, ratings, zones, devices.",
    )
