"""The CloudWatch dashboard's body, rendered from plain names (no Pulumi here).

Native metric widgets chart what aggregate metrics answer: the collector's declared dimension sets (type, model,
department, team, cost center, tool, decision, language), never a user. Custom widgets, served by the widget
function from the DynamoDB rollups, show everything per user and every exact distinct count. With bearer-token
ingest (Path B), PromQL widgets chart the same usage per team from CloudWatch's OTLP metrics.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from lambda_src.common.telemetry import DECISION, TEAM, TOOL_NAME

PERIOD = 300
BEDROCK_PROBLEMS = ("InvocationThrottles", "InvocationClientErrors", "InvocationServerErrors")
FULL_WIDTH = 24


@dataclass(frozen=True)
class CollectorHealth:
    """Names of the collector's load balancer and tasks, for the pipeline health widgets."""

    load_balancer_arn_suffix: str
    target_group_arn_suffix: str
    cluster_name: str
    service_name: str


@dataclass(frozen=True)
class DashboardBodySettings:
    region: str
    namespace: str
    """The collector's CloudWatch namespace (awsemf)."""
    widget_function_arn: str
    aggregator_function_name: str
    widget_function_name: str
    table_name: str
    failed_queue_name: str
    metrics_log_group: str
    events_log_group: str
    subscription_filter_name: str
    collector: CollectorHealth
    promql_teams: bool = False
    """Bearer-token ingest is enabled: add the PromQL widgets (per team)."""
    quota: bool = False
    """Quota is enabled: add the users near or over their quota (the quota monitor's latest run)."""


def text(markdown: str) -> dict[str, Any]:
    return {"type": "text", "width": FULL_WIDTH, "height": 1, "properties": {"markdown": markdown}}


def metric(
    settings: DashboardBodySettings,
    title: str,
    metrics: list[list[Any]],
    view: str = "timeSeries",
    width: int = 8,
    height: int = 6,
    stat: str = "Sum",
    **properties: Any,
) -> dict[str, Any]:
    return {
        "type": "metric",
        "width": width,
        "height": height,
        "properties": {
            "title": title,
            "region": settings.region,
            "view": view,
            "stat": stat,
            "period": PERIOD,
            "metrics": metrics,
            **({"setPeriodToTimeRange": True} if view == "singleValue" else {}),
            **properties,
        },
    }


def custom(
    settings: DashboardBodySettings, title: str, widget: str, width: int = 8, height: int = 6, **params: Any
) -> dict[str, Any]:
    return {
        "type": "custom",
        "width": width,
        "height": height,
        "properties": {
            "title": title,
            "endpoint": settings.widget_function_arn,
            "params": {"widget": widget, **params},
            "updateOn": {"refresh": True, "resize": True, "timeRange": True},
        },
    }


def search(namespace: str, dimensions: Sequence[str], metric_name: str, stat: str = "Sum") -> str:
    """A SEARCH expression over one metric of a namespace with exactly these dimensions: one line per value."""
    schema = ",".join([f'"{namespace}"', *(f'"{d}"' if "." in d else d for d in dimensions)])
    return f"SEARCH('{{{schema}}} MetricName=\"{metric_name}\"', '{stat}', {PERIOD})"


def expression(text_: str, label: str, id_: str = "e1") -> list[Any]:
    return [{"expression": text_, "label": label, "id": id_}]


def promql(settings: DashboardBodySettings, title: str, query: str, width: int = 8) -> dict[str, Any]:
    return {
        "type": "chart",
        "width": width,
        "height": 6,
        "properties": {
            "title": title,
            "region": settings.region,
            "data": {"queries": [{"type": "cloudwatch-metrics", "language": "PromQL", "query": query, "step": PERIOD}]},
        },
    }


def dashboard_body(settings: DashboardBodySettings) -> dict[str, Any]:
    ns = settings.namespace
    tokens = "claude_code.token.usage"
    decisions = "claude_code.code_edit_tool.decision"
    widgets: list[dict[str, Any]] = [
        text("## Claude Code usage: totals over the selected time range"),
        metric(settings, "Total tokens", [[ns, tokens, {"label": "Tokens"}]], view="singleValue", width=8, height=3),
        metric(
            settings,
            "Sessions",
            [[ns, "claude_code.session.count", {"label": "Sessions"}]],
            view="singleValue",
            width=8,
            height=3,
        ),
        metric(
            settings,
            "Cache hit rate",
            [
                expression("100 * m2 / (m1 + m2 + m3)", "Cache reads, % of input tokens"),
                [ns, tokens, "type", "input", {"id": "m1", "visible": False}],
                [ns, tokens, "type", "cacheRead", {"id": "m2", "visible": False}],
                [ns, tokens, "type", "cacheCreation", {"id": "m3", "visible": False}],
            ],
            view="singleValue",
            width=8,
            height=3,
        ),
        custom(settings, "Active users (distinct, exact)", "active_users", width=10, height=7),
        custom(settings, "Estimated cost: today, this week, this month, and by model", "cost", width=14, height=7),
        custom(settings, "Tokens over time, by type", "tokens", width=12, height=7, split="type"),
        metric(settings, "Tokens by model", [expression(search(ns, ["model"], tokens), "")], width=12, height=7),
        metric(
            settings,
            "Tokens by type",
            [[ns, tokens, "type", kind, {"label": kind}] for kind in ("input", "output", "cacheRead", "cacheCreation")],
            width=12,
            stacked=True,
        ),
        metric(
            settings,
            "Client-reported cost by model (USD)",
            [expression(search(ns, ["model"], "claude_code.cost.usage"), "")],
            width=12,
        ),
        text("## Users (from the DynamoDB rollups: every user, exact, whatever the fleet size)"),
        custom(settings, "Top users by tokens today", "top_users", width=12, height=7, measure="tokens", period="day"),
        custom(
            settings,
            "Top users by cost this month",
            "top_users",
            width=12,
            height=7,
            measure="cost_usd",
            period="month",
        ),
        *(
            [custom(settings, "Users near or over quota (latest quota run)", "quota", width=24, height=6)]
            if settings.quota
            else []
        ),
        text("## Productivity"),
        metric(
            settings,
            "Lines of code added / removed",
            [[ns, "claude_code.lines_of_code.count", "type", kind, {"label": kind}] for kind in ("added", "removed")],
            width=6,
        ),
        metric(settings, "Commits", [[ns, "claude_code.commit.count", {"label": "Commits"}]], width=6),
        metric(
            settings, "Pull requests", [[ns, "claude_code.pull_request.count", {"label": "Pull requests"}]], width=6
        ),
        metric(
            settings,
            "Active hours",
            [
                expression("m1 / 3600", "Hours"),
                [ns, "claude_code.active_time.total", {"id": "m1", "visible": False}],
            ],
            width=6,
        ),
        metric(
            settings,
            "Edit acceptance rate",
            [
                expression("100 * m1 / (m1 + m2)", "Accepted, %"),
                [ns, decisions, "decision", "accept", {"id": "m1", "visible": False}],
                [ns, decisions, "decision", "reject", {"id": "m2", "visible": False}],
            ],
        ),
        metric(settings, "Edits by tool and decision", [expression(search(ns, [DECISION, TOOL_NAME], decisions), "")]),
        metric(
            settings,
            "Code generation by language",
            [expression(search(ns, ["decision", "language"], decisions), "")],
        ),
        text("## Organisation"),
        custom(settings, "Usage by department", "groups", height=7, dimension="department"),
        custom(settings, "Usage by team", "groups", height=7, dimension="team"),
        custom(settings, "Usage by cost center", "groups", height=7, dimension="cost_center"),
        custom(settings, "Estimated cost by team per day", "groups", width=12, height=7, dimension="team", view="days"),
        text("## Reliability (from the Claude Code events)"),
        custom(settings, "API errors by model and status", "api_errors", height=7),
        custom(settings, "API latency by model", "api_latency", height=7),
        custom(settings, "Tool success rate", "tool_results", height=7),
        metric(
            settings,
            "Bedrock throttles and errors by model",
            [
                expression(search("AWS/Bedrock", ["ModelId"], name), "", f"e{index}")
                for index, name in enumerate(BEDROCK_PROBLEMS, start=1)
            ],
            width=24,
        ),
        text("## Data quality and pipeline health"),
        custom(
            settings, "Data quality: attribution, client versions, rejected data", "data_quality", width=8, height=9
        ),
        metric(
            settings,
            "Collector: requests, errors, healthy tasks",
            [
                [
                    "AWS/ApplicationELB",
                    "RequestCount",
                    "LoadBalancer",
                    settings.collector.load_balancer_arn_suffix,
                    {"label": "Requests"},
                ],
                [".", "HTTPCode_Target_5XX_Count", ".", ".", {"label": "Collector 5xx"}],
                [".", "HTTPCode_ELB_4XX_Count", ".", ".", {"label": "Rejected (4xx, e.g. bad token)"}],
                [
                    ".",
                    "HealthyHostCount",
                    "TargetGroup",
                    settings.collector.target_group_arn_suffix,
                    "LoadBalancer",
                    settings.collector.load_balancer_arn_suffix,
                    {"stat": "Minimum", "yAxis": "right", "label": "Healthy tasks"},
                ],
            ],
            height=9,
        ),
        metric(
            settings,
            "Collector tasks: CPU and memory (%)",
            [
                [
                    "AWS/ECS",
                    "CPUUtilization",
                    "ClusterName",
                    settings.collector.cluster_name,
                    "ServiceName",
                    settings.collector.service_name,
                ],
                [".", "MemoryUtilization", ".", ".", ".", "."],
            ],
            stat="Average",
            height=9,
        ),
        metric(
            settings,
            "Aggregator: invocations, errors, event age",
            [
                ["AWS/Lambda", "Invocations", "FunctionName", settings.aggregator_function_name],
                [".", "Errors", ".", "."],
                [".", "AsyncEventAge", ".", ".", {"stat": "Maximum", "yAxis": "right", "label": "Oldest event (ms)"}],
                [".", "Errors", ".", settings.widget_function_name, {"label": "Widget errors"}],
            ],
        ),
        metric(
            settings,
            "Subscription delivery and failed events",
            [
                [
                    "AWS/Logs",
                    "DeliveryErrors",
                    "LogGroupName",
                    settings.metrics_log_group,
                    "DestinationType",
                    "Lambda",
                    "FilterName",
                    settings.subscription_filter_name,
                ],
                [".", ".", ".", settings.events_log_group, ".", ".", ".", "."],
                [
                    "AWS/SQS",
                    "ApproximateNumberOfMessagesVisible",
                    "QueueName",
                    settings.failed_queue_name,
                    {"stat": "Maximum", "label": "Failed events waiting"},
                ],
            ],
        ),
        metric(
            settings,
            "Rollup table: throttles",
            [
                ["AWS/DynamoDB", "WriteThrottleEvents", "TableName", settings.table_name],
                [".", "ReadThrottleEvents", ".", "."],
            ],
        ),
    ]
    if settings.promql_teams:
        team = f'"@resource.{TEAM}"'
        widgets += [
            text("## Direct ingest (bearer tokens): per team, PromQL"),
            promql(settings, "Tokens by team (PromQL)", f'sum by ({team}) (sum_over_time({{"{tokens}"}}[{PERIOD}s]))'),
            promql(
                settings,
                "Cost by team, client-reported (PromQL)",
                f'sum by ({team}) (sum_over_time({{"claude_code.cost.usage"}}[{PERIOD}s]))',
            ),
            promql(
                settings,
                "Active time by team, seconds (PromQL)",
                f'sum by ({team}) (sum_over_time({{"claude_code.active_time.total"}}[{PERIOD}s]))',
            ),
        ]
    return {"start": "-PT24H", "periodOverride": "inherit", "widgets": layout(widgets)}


def layout(widgets: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Place widgets left to right in rows of 24 units; a row is as tall as its tallest widget."""
    x = y = row_height = 0
    placed = []
    for widget in widgets:
        if x + widget["width"] > FULL_WIDTH:
            x, y, row_height = 0, y + row_height, 0
        placed.append({**widget, "x": x, "y": y})
        x += widget["width"]
        row_height = max(row_height, widget["height"])
    return placed
