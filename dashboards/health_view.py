"""The pipeline-health dashboard: the edges' ``stats`` facts and the aggregator's metrics.

Edge figures are the ``edge_pipeline_*`` series (one ``stats`` fact per edge worker every
``stats_interval_s``, 60 s by default, covering ``interval_s`` seconds); the edge serves no
Prometheus endpoint of its own. Aggregator figures are its ``/metrics``, scraped into
VictoriaMetrics by ``scrape.yml`` under the job ``hallwatch-aggregator``.
"""

from __future__ import annotations

from grafana_json import ONLINE, Json, Panel, Query, Row, dashboard, query_variable
from hall_views import last, lookback_variables

JOB = 'job="hallwatch-aggregator"'
"""The scrape job of ``scrape.yml`` (kept equal by the tests)."""


def _rate(metric: str, by: str = "") -> str:
    grouping = f" by ({by})" if by else ""
    return f"sum{grouping} (rate({metric}{{{JOB}}}[$__rate_interval]))"


def _quantile(q: float, metric: str) -> str:
    return f"histogram_quantile({q}, {_rate(metric + '_bucket', 'le')})"


def pipeline() -> Json:
    """流水线健康 (pipeline health)."""
    h = 'hall=~"$hall"'
    src = 'source=~"$source"'

    def edge(field: str) -> str:
        return last(f"edge_pipeline_{field}", "gauge_lookback", h, src)

    per_edge = "hall, source"
    legend = "{{hall}} {{source}}"
    variables = [
        query_variable(
            "hall", "大厅 (hall)", "label_values(edge_pipeline_interval_s, hall)", multi=True
        ),
        query_variable(
            "source",
            "边缘端 (edge worker)",
            'label_values(edge_pipeline_interval_s{hall=~"$hall"}, source)',
            multi=True,
        ),
        *lookback_variables(),
    ]
    items: list[Panel | Row] = [
        Row("边缘端 (edge pipeline, from stats facts)"),
        Panel(
            "在线摄像头 (cameras online)",
            "stat",
            (
                Query(f"sum({edge('cameras_online')})", legend="在线 (online)", instant=True),
                Query(f"sum({edge('cameras_total')})", legend="配置 (configured)", instant=True),
            ),
            width=6,
            height=5,
        ),
        Panel(
            "最后上报 (seconds since the last stats)",
            "stat",
            (
                Query(
                    f"time() - max by ({per_edge}) (tlast_over_time("
                    f"edge_pipeline_interval_s{{{h}, {src}}}[$state_lookback]))",
                    legend=legend,
                    instant=True,
                ),
            ),
            unit="s",
            thresholds=((180, "yellow"), (600, "red")),
            width=10,
            height=5,
            description="tlast_over_time is MetricsQL (VictoriaMetrics): the time of the "
            "newest sample within $state_lookback. An edge that stopped sending shows its "
            "silence here; one silent longer than $state_lookback disappears.",
        ),
        Panel(
            "发件箱积压 (outbox depth, max)",
            "stat",
            (Query(f"max({edge('outbox_depth')})", instant=True),),
            thresholds=((100, "yellow"), (1000, "red")),
            width=8,
            height=5,
            description="Facts written by the edge but not yet acknowledged by the broker.",
        ),
        Panel(
            "分析帧率 (frames looked per second)",
            "timeseries",
            (
                Query(
                    f"sum by ({per_edge}) ({edge('frames_looked')} / {edge('interval_s')})",
                    legend=legend,
                ),
            ),
            width=12,
            height=8,
        ),
        Panel(
            "推理耗时 (inference ms per crop)",
            "timeseries",
            (Query(f"max by ({per_edge}) ({edge('inference_ms_mean')})", legend=legend),),
            unit="ms",
            width=12,
            height=8,
        ),
        Panel(
            "推理与跳过 (crops inferred / skipped per second)",
            "timeseries",
            (
                Query(
                    f"sum by ({per_edge}) ({edge('crops_inferred')} / {edge('interval_s')})",
                    legend=legend + " 推理 (inferred)",
                ),
                Query(
                    f"sum by ({per_edge}) ({edge('crops_skipped')} / {edge('interval_s')})",
                    legend=legend + " 跳过 (skipped)",
                ),
            ),
            width=8,
            height=8,
        ),
        Panel(
            "跳过比例 (share of crops skipped by the motion gate)",
            "timeseries",
            (
                Query(
                    f"sum by ({per_edge}) ({edge('crops_skipped')}) / sum by ({per_edge}) "
                    f"({edge('crops_inferred')} + {edge('crops_skipped')})",
                    legend=legend,
                ),
            ),
            unit="percentunit",
            width=8,
            height=8,
        ),
        Panel(
            "发件箱积压 (outbox depth)",
            "timeseries",
            (Query(f"max by ({per_edge}) ({edge('outbox_depth')})", legend=legend),),
            width=8,
            height=8,
        ),
        Panel(
            "在线摄像头 (cameras online / configured)",
            "timeseries",
            (
                Query(f"sum by ({per_edge}) ({edge('cameras_online')})", legend=legend + " 在线"),
                Query(f"sum by ({per_edge}) ({edge('cameras_total')})", legend=legend + " 配置"),
            ),
            width=24,
            height=6,
        ),
        Row("聚合服务 (aggregator, scraped /metrics)"),
        Panel(
            "聚合服务 (aggregator up)",
            "stat",
            (Query(f"min(up{{{JOB}}})", instant=True),),
            mappings=ONLINE,
            width=6,
            height=4,
        ),
        Panel(
            "MQTT 连接 (MQTT connected)",
            "stat",
            (Query(f"min(hallwatch_mqtt_connected{{{JOB}}})", instant=True),),
            mappings=ONLINE,
            width=6,
            height=4,
        ),
        Panel(
            "待摄入 (ingest queue depth)",
            "stat",
            (Query(f"sum(hallwatch_ingest_queue_depth{{{JOB}}})", instant=True),),
            thresholds=((100, "yellow"), (1000, "red")),
            width=6,
            height=4,
        ),
        Panel(
            "摄入速率 (messages ingested per second)",
            "stat",
            (Query(_rate("hallwatch_ingest_messages_total"), instant=True),),
            unit="ops",
            width=6,
            height=4,
        ),
        Panel(
            "摄入速率 (ingest rate by outcome)",
            "timeseries",
            (Query(_rate("hallwatch_ingest_messages_total", "outcome"), legend="{{outcome}}"),),
            unit="ops",
            width=12,
            height=8,
        ),
        Panel(
            "死信 (dead-lettered by reason)",
            "timeseries",
            (Query(_rate("hallwatch_ingest_rejected_total", "reason"), legend="{{reason}}"),),
            unit="ops",
            width=12,
            height=8,
        ),
        Panel(
            "摄入耗时 (ingest latency per message)",
            "timeseries",
            (
                Query(_quantile(0.5, "hallwatch_ingest_latency_seconds"), legend="p50"),
                Query(_quantile(0.95, "hallwatch_ingest_latency_seconds"), legend="p95"),
            ),
            unit="s",
            width=8,
            height=8,
        ),
        Panel(
            "事实延迟 (fact lag, observation to ingest)",
            "timeseries",
            (
                Query(_quantile(0.5, "hallwatch_fact_lag_seconds"), legend="p50"),
                Query(_quantile(0.95, "hallwatch_fact_lag_seconds"), legend="p95"),
            ),
            unit="s",
            width=8,
            height=8,
            description="Replays after an edge or broker outage show here as lag.",
        ),
        Panel(
            "批大小 (messages per ingest batch, mean)",
            "timeseries",
            (
                Query(
                    f"{_rate('hallwatch_ingest_batch_messages_sum')} / "
                    f"{_rate('hallwatch_ingest_batch_messages_count')}",
                    legend="mean",
                ),
            ),
            width=8,
            height=8,
        ),
        Panel(
            "告警 (alerts opened / resolved)",
            "timeseries",
            (
                Query(
                    f"sum by (kind, state) (increase(hallwatch_alerts_total{{{JOB}}}"
                    "[$__interval]))",
                    legend="{{kind}} {{state}}",
                ),
                Query(
                    f"sum by (kind, state) (increase(hallwatch_case_alerts_total{{{JOB}}}"
                    "[$__interval]))",
                    legend="异常办件 {{kind}} {{state}}",
                ),
            ),
            width=12,
            height=8,
            interval="5m",
            stack=True,
        ),
        Panel(
            "短信 (SMS texts by outcome)",
            "timeseries",
            (
                Query(
                    f"sum by (outcome) (increase(hallwatch_sms_messages_total{{{JOB}}}"
                    "[$__interval]))",
                    legend="{{outcome}}",
                ),
                Query(
                    f"sum by (outcome) (increase(hallwatch_case_sms_total{{{JOB}}}[$__interval]))",
                    legend="异常办件 {{outcome}}",
                ),
            ),
            width=12,
            height=8,
            interval="5m",
            stack=True,
        ),
    ]
    return dashboard(
        "hallwatch-pipeline",
        "HallWatch 流水线健康 (pipeline health)",
        variables,
        items,
        description="Edge workers (stats facts) and the aggregator (its /metrics).",
        time_from="now-6h",
        refresh="1m",
    )
