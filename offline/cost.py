"""What a stack costs a month: the fixed part at zero developers, and totals at 100, 1,000 and 10,000 developers.

    python -m offline.cost                  # price build/<stack>/plan.json of every stack (run the preview first)
    python -m offline.cost --stack prod     # one stack
    python -m offline.cost --plan FILE      # any plan.json the offline preview wrote
    python -m offline.cost --write-readme   # also rewrite the README's cost table and docs/cost.md's price table

Pure: a plan (the preview's plan.json, awsx's modelled children included: the NAT gateways are among them), one
price table (`PRICES` in offline/prices.py, each price with its source and the date it was looked up) and one
usage assumption (`USAGE`, each number with the benchmark or document it comes from; what the benchmarks measure
is read from benchmarks/results.json). Nothing is fetched; nothing is guessed: a price that could not be found
is in the table as not found, and what it would price is listed as not priced.
"""

from __future__ import annotations

import argparse
import json
import math
import re
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from benchmarks.readme import FLEETS, measured, read_results
from components.analytics import TRANSFORM_BUFFER_BYTES
from offline.prices import (
    DYNAMODB_CALL_SECONDS,
    LOOKED_UP,
    PRICE,
    PRICES,
    REGION,
    TRANSACTION_WRITE_UNITS,
    Function,
    Price,
    gb_seconds,
)

PROJECT_ROOT = Path(__file__).resolve().parent.parent
HOURS_PER_MONTH = 730  # AWS's convention for a month of hourly charges
MINUTES_PER_MONTH = HOURS_PER_MONTH * 60
FREE_DASHBOARDS = 3


# Usage ---------------------------------------------------------------------------------------------------------


def from_benchmark(benchmark: str, measure: str) -> Any:
    """A Usage field whose default is what `make bench` last measured (benchmarks/results.json)."""
    return field(default_factory=lambda: measured(benchmark, measure))


@dataclass(frozen=True)
class Usage:
    """What one developer does in a month, from the benchmarks (each field's source in `USAGE_SOURCES`)."""

    active_hours: float = 8 * 22
    active_minutes_per_hour: float = 15
    metric_events_per_active_minute: float = 6
    claude_events_per_active_minute: float = 2
    metric_event_bytes: float = from_benchmark("analytics-transform", "metric_event_bytes")
    claude_event_bytes: float = from_benchmark("analytics-transform", "claude_event_bytes")
    rollup_items_per_active_hour: float = from_benchmark("dashboard", "items_per_user_hour")
    aggregator_events_per_second: float = from_benchmark("dashboard", "log_events_per_cpu_second")
    aggregator_sdk_seconds_per_item: float = from_benchmark("dashboard", "sdk_cpu_seconds_per_item")
    aggregator_calls_per_event: float = from_benchmark("dashboard", "dynamodb_calls_per_log_event")
    claim_write_units_per_log_event: float = from_benchmark("dashboard", "claim_write_units_per_log_event")
    claim_requests_per_log_event: float = from_benchmark("dashboard", "claim_requests_per_log_event")
    deliveries_per_active_hour: float = from_benchmark("dashboard", "deliveries_per_user_hour")
    transform_events_per_second: float = from_benchmark("analytics-transform", "log_events_per_cpu_second")
    transform_invocation_bytes: float = TRANSFORM_BUFFER_BYTES
    lake_bytes_per_log_event: float = from_benchmark("analytics-transform", "parquet_bytes_per_log_event")
    quota_rru_per_run: float = from_benchmark("quota", "read_units_per_user_run")
    quota_seconds_per_run: float = from_benchmark("quota", "seconds_per_user_run")
    rollup_item_bytes: float = 1_024
    requests_per_active_minute: float = 3
    new_connections_per_active_minute: float = 1

    def active_minutes(self) -> float:
        return self.active_hours * self.active_minutes_per_hour

    def metric_events(self) -> float:
        return self.active_minutes() * self.metric_events_per_active_minute

    def claude_events(self) -> float:
        return self.active_minutes() * self.claude_events_per_active_minute

    def log_gb(self) -> float:
        """Telemetry written to the metrics and events log groups by one developer in a month, in GB (1e9 bytes)."""
        metric = self.metric_events() * self.metric_event_bytes
        return (metric + self.claude_events() * self.claude_event_bytes) / 1e9


USAGE = Usage()
USAGE_SOURCES: dict[str, str] = {
    "active_hours": "8 active hours on 22 working days (docs/dashboard.md, What the rollups cost)",
    "active_minutes_per_hour": "benchmarks/dashboard.py: each user works 15 random minutes of the hour",
    "metric_events_per_active_minute": "benchmarks/analytics_transform.py fleet: 4 token types, cost, activity",
    "claude_events_per_active_minute": "benchmarks/analytics_transform.py fleet: api_request and tool_result",
    "metric_event_bytes": "benchmarks/analytics_transform.py: the mean EMF log event of its fleet (make bench)",
    "claude_event_bytes": "benchmarks/analytics_transform.py: the mean Claude Code log event of its fleet",
    "rollup_items_per_active_hour": "benchmarks/dashboard.py (make bench, benchmarks/results.json): items written "
    "in the 10,000-user hour, per user; a transaction writes each (up to 1 KB) for 2 WRU",
    "aggregator_events_per_second": "benchmarks/dashboard.py: log events per CPU second of the aggregator's code",
    "aggregator_sdk_seconds_per_item": "benchmarks/dashboard.py: the AWS SDK's CPU per item written, as deployed",
    "aggregator_calls_per_event": "benchmarks/dashboard.py: DynamoDB calls per log event (each waited on for "
    "DYNAMODB_CALL_SECONDS, assumed)",
    "claim_write_units_per_log_event": "benchmarks/dashboard.py: write units of the aggregator's claims (which "
    "delivery owns a log event), per log event, at 10,000 developers; it grows with the log events per stream and "
    "second (docs/dashboard.md)",
    "claim_requests_per_log_event": "benchmarks/dashboard.py: the claims' UpdateItem calls per log event",
    "deliveries_per_active_hour": "benchmarks/dashboard.py: deliveries in the 10,000-user hour, per user",
    "transform_events_per_second": "benchmarks/analytics_transform.py: log events per CPU second",
    "transform_invocation_bytes": "components/analytics.py: the transform's Firehose buffer, bytes per invocation",
    "lake_bytes_per_log_event": "benchmarks/analytics_transform.py: Parquet bytes of the rows per log event "
    "(pyarrow, Snappy, one object per table, partition and buffer; a model of Firehose's conversion)",
    "quota_rru_per_run": "benchmarks/quota.py: read request units of a run over 10,000 users, per user",
    "quota_seconds_per_run": "benchmarks/quota.py: a run without alerts in its latency model of DynamoDB, per user",
    "rollup_item_bytes": "docs/dashboard.md: user day items reach 1 KB on busy days (one per active day kept)",
    "requests_per_active_minute": "managed settings: metrics every 60 s, events every 5 s (2 a minute here)",
    "new_connections_per_active_minute": "assumed: one new HTTPS connection per active minute (short sessions)",
}


def benchmark_series(root: Path = PROJECT_ROOT) -> dict[int, int]:
    """CloudWatch metric series by fleet size, as `make bench` measured them (benchmarks/collector_series.py,
    kept in benchmarks/results.json)."""
    found = read_results(root).get("collector-series", {}).get("measures", {})
    series = {int(name.removeprefix("series_")): int(value) for name, value in found.items()}
    if not series:
        raise ValueError("benchmarks/results.json has no collector-series measures; run make bench")
    return series


# The plan ----------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Tasks:
    desired: int
    minimum: int
    maximum: int
    vcpu: float
    memory_gb: float
    arm: bool
    requests_per_target: float | None


@dataclass
class PlanFacts:
    """What the prices apply to, read from a plan.json."""

    resources: int = 0
    modelled: int = 0
    nat_gateways: int = 0
    public_ipv4: int = 0
    load_balancers: int = 0
    tasks: list[Tasks] = field(default_factory=list)
    kms_keys: int = 0
    alarms: int = 0
    high_resolution_alarms: int = 0
    dashboards: int = 0
    secrets: int = 0
    telemetry_retention_days: list[float] = field(default_factory=list)
    rollups: bool = False
    rollups_pitr: bool = False
    rollup_ttl_days: float = 400
    quota_index: bool = False
    quota_schedule_minutes: float | None = None
    functions: dict[str, Function] = field(default_factory=dict)
    scheduled_invocations: float = 0
    firehose_streams: int = 0
    firehose_interval_seconds: float = 300
    lake_expiration_days: float | None = None
    container_insights: bool = False
    access_logs: bool = False
    bearer_token_teams: int = 0


def _count(plan: Mapping[str, Any], token: str) -> int:
    return sum(1 for r in plan["resources"] if r["type"] == token)


def _of_type(plan: Mapping[str, Any], token: str) -> list[Mapping[str, Any]]:
    return [r for r in plan["resources"] if r["type"] == token]


def _runs_per_month(expression: str) -> float | None:
    rate = re.fullmatch(r"rate\((\d+) (minute|minutes|hour|hours|day|days)\)", expression)
    if rate:
        minutes = int(rate.group(1)) * {"m": 1, "h": 60, "d": 1440}[rate.group(2)[0]]
        return MINUTES_PER_MONTH / minutes
    if re.fullmatch(r"cron\(\d+ \d+ \* \* \? \*\)", expression):
        return HOURS_PER_MONTH / 24
    return None


def plan_facts(plan: Mapping[str, Any]) -> PlanFacts:
    facts = PlanFacts(
        resources=len(plan["resources"]),
        modelled=sum(1 for r in plan["resources"] if r.get("modelled")),
        nat_gateways=_count(plan, "aws:ec2/natGateway:NatGateway"),
        kms_keys=_count(plan, "aws:kms/key:Key"),
        dashboards=_count(plan, "aws:cloudwatch/dashboard:Dashboard"),
        secrets=_count(plan, "aws:secretsmanager/secret:Secret"),
        firehose_streams=_count(plan, "aws:kinesis/firehoseDeliveryStream:FirehoseDeliveryStream"),
    )
    facts.public_ipv4 = _count(plan, "aws:ec2/eip:Eip")
    for balancer in _of_type(plan, "aws:lb/loadBalancer:LoadBalancer"):
        inputs = balancer["inputs"]
        if inputs.get("loadBalancerType", "application") == "application":
            facts.load_balancers += 1
            if not inputs.get("internal"):  # an internet-facing ALB holds a public IPv4 address per subnet
                facts.public_ipv4 += len(inputs.get("subnets") or inputs.get("subnetMappings") or [])
            facts.access_logs = facts.access_logs or bool((inputs.get("accessLogs") or {}).get("enabled"))
    for alarm in _of_type(plan, "aws:cloudwatch/metricAlarm:MetricAlarm"):
        queries = alarm["inputs"].get("metricQueries") or []
        metrics = max(1, sum(1 for query in queries if query.get("metric")))
        if float(alarm["inputs"].get("period", 60)) < 60:
            facts.high_resolution_alarms += metrics
        else:
            facts.alarms += metrics
    facts.tasks = _tasks(plan)
    facts.container_insights = any(
        setting.get("name") == "containerInsights" and setting.get("value") in ("enabled", "enhanced")
        for cluster in _of_type(plan, "aws:ecs/cluster:Cluster")
        for setting in cluster["inputs"].get("settings") or []
    )
    outputs = plan.get("outputs") or {}
    telemetry = outputs.get("collectorLogGroups") or {}
    for group in _of_type(plan, "aws:cloudwatch/logGroup:LogGroup"):
        name = group["inputs"].get("name")
        if name in (telemetry.get("metrics"), telemetry.get("events")):
            facts.telemetry_retention_days.append(float(group["inputs"].get("retentionInDays") or 0))
    rollup_table = outputs.get("dashboardRollupTable")
    for table in _of_type(plan, "aws:dynamodb/table:Table"):
        if rollup_table and table["name"] == rollup_table:
            facts.rollups = True
            facts.rollups_pitr = bool((table["inputs"].get("pointInTimeRecovery") or {}).get("enabled"))
            facts.quota_index = bool(table["inputs"].get("globalSecondaryIndexes"))
    for function in _of_type(plan, "aws:lambda/function:Function"):
        inputs = function["inputs"]
        facts.functions[function["name"]] = Function(
            float(inputs.get("memorySize") or 128), "arm64" in (inputs.get("architectures") or [])
        )
        ttl = ((inputs.get("environment") or {}).get("variables") or {}).get("ROLLUP_TTL_DAYS")
        if function["name"].endswith("-aggregator") and ttl:
            facts.rollup_ttl_days = float(ttl)
    for rule in _of_type(plan, "aws:cloudwatch/eventRule:EventRule"):
        runs = _runs_per_month(str(rule["inputs"].get("scheduleExpression") or ""))
        facts.scheduled_invocations += runs or 0
        if rule["name"] == outputs.get("quotaMonitorFunction") and runs:
            facts.quota_schedule_minutes = MINUTES_PER_MONTH / runs
    for stream in _of_type(plan, "aws:kinesis/firehoseDeliveryStream:FirehoseDeliveryStream"):
        s3 = stream["inputs"].get("extendedS3Configuration") or {}
        facts.firehose_interval_seconds = float(s3.get("bufferingInterval") or 300)
    lake = outputs.get("analyticsLakeBucket")
    for lifecycle in _of_type(plan, "aws:s3/bucketLifecycleConfiguration:BucketLifecycleConfiguration"):
        if lake and lifecycle["inputs"].get("bucket") == lake:
            expirations = [
                float(rule["expiration"]["days"])
                for rule in lifecycle["inputs"].get("rules") or []
                if rule.get("status") == "Enabled" and (rule.get("expiration") or {}).get("days")
            ]
            facts.lake_expiration_days = max(expirations) if expirations else None
    facts.bearer_token_teams = len(outputs.get("ingestUserNames") or [])
    return facts


def _tasks(plan: Mapping[str, Any]) -> list[Tasks]:
    definitions = {
        r["inputs"].get("family"): r["inputs"] for r in _of_type(plan, "aws:ecs/taskDefinition:TaskDefinition")
    }
    targets = _of_type(plan, "aws:appautoscaling/target:Target")
    per_target = [
        float(config["targetValue"])
        for policy in _of_type(plan, "aws:appautoscaling/policy:Policy")
        if (config := policy["inputs"].get("targetTrackingScalingPolicyConfiguration") or {})
        and (config.get("predefinedMetricSpecification") or {}).get("predefinedMetricType")
        == "ALBRequestCountPerTarget"
    ]
    found: list[Tasks] = []
    for service in _of_type(plan, "aws:ecs/service:Service"):
        inputs = service["inputs"]
        if inputs.get("launchType") != "FARGATE":
            continue
        family = str(inputs.get("taskDefinition", "")).rsplit("/", 1)[-1].rsplit(":", 1)[0]
        definition = definitions.get(family) or {}
        desired = int(inputs.get("desiredCount") or 1)
        minimum = int(targets[0]["inputs"].get("minCapacity", desired)) if len(targets) == 1 else desired
        maximum = int(targets[0]["inputs"].get("maxCapacity", desired)) if len(targets) == 1 else desired
        platform = definition.get("runtimePlatform") or {}
        found.append(
            Tasks(
                desired=desired,
                minimum=minimum,
                maximum=maximum,
                vcpu=float(definition.get("cpu") or 256) / 1024,
                memory_gb=float(definition.get("memory") or 512) / 1024,
                arm=platform.get("cpuArchitecture") == "ARM64",
                requests_per_target=per_target[0] if len(per_target) == 1 else None,
            )
        )
    return found


# Pricing -----------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Line:
    item: str
    quantity: float
    unit: str
    price: Price

    @property
    def usd(self) -> float | None:
        return None if self.price.usd is None else self.quantity * self.price.usd


@dataclass
class StackCost:
    stack: str
    facts: PlanFacts
    fixed: list[Line]
    by_fleet: dict[int, list[Line]]
    not_priced: list[str]

    def fixed_usd(self) -> float:
        return sum(line.usd or 0.0 for line in self.fixed)

    def usage_usd(self, developers: int) -> float:
        return sum(line.usd or 0.0 for line in self.by_fleet[developers])

    def total_usd(self, developers: int) -> float:
        return self.fixed_usd() + self.usage_usd(developers)


def _fargate(tasks: Tasks) -> tuple[Price, Price]:
    kind = "arm" if tasks.arm else "x86"
    return PRICE[f"fargate_{kind}_vcpu_hour"], PRICE[f"fargate_{kind}_gb_hour"]


def _lambda_price(function: Function) -> Price:
    return PRICE["lambda_arm_gb_second" if function.arm else "lambda_x86_gb_second"]


def _find(functions: Mapping[str, Function], suffix: str) -> Function | None:
    return next((f for name, f in functions.items() if name.endswith(suffix)), None)


def fixed_lines(facts: PlanFacts) -> list[Line]:
    """What the stack costs with nobody using it."""
    lines: list[Line] = []
    if facts.nat_gateways:
        lines.append(
            Line(f"NAT gateways ({facts.nat_gateways})", facts.nat_gateways * HOURS_PER_MONTH, "h", PRICE["nat_hour"])
        )
    if facts.public_ipv4:
        lines.append(
            Line(
                f"Public IPv4 addresses ({facts.public_ipv4}: NAT and load balancer)",
                facts.public_ipv4 * HOURS_PER_MONTH,
                "address-h",
                PRICE["public_ipv4_hour"],
            )
        )
    if facts.load_balancers:
        lines.append(Line("Load balancer", facts.load_balancers * HOURS_PER_MONTH, "h", PRICE["alb_hour"]))
    for tasks in facts.tasks:
        vcpu, memory = _fargate(tasks)
        count = tasks.minimum
        lines.append(
            Line(
                f"Collector tasks ({count} × {tasks.vcpu:g} vCPU)", count * tasks.vcpu * HOURS_PER_MONTH, "vCPU-h", vcpu
            )
        )
        lines.append(
            Line(
                f"Collector tasks ({count} × {tasks.memory_gb:g} GB)",
                count * tasks.memory_gb * HOURS_PER_MONTH,
                "GB-h",
                memory,
            )
        )
    if facts.kms_keys:
        lines.append(Line(f"KMS keys ({facts.kms_keys})", facts.kms_keys, "key-months", PRICE["kms_key_month"]))
    if facts.alarms:
        lines.append(Line(f"Alarms ({facts.alarms})", facts.alarms, "alarm-months", PRICE["alarm_month"]))
    billable_dashboards = max(0, facts.dashboards - FREE_DASHBOARDS)
    if billable_dashboards:
        lines.append(
            Line(
                f"Dashboards beyond {FREE_DASHBOARDS}",
                billable_dashboards,
                "dashboard-months",
                PRICE["dashboard_month"],
            )
        )
    if facts.secrets:
        lines.append(Line(f"Secrets ({facts.secrets})", facts.secrets, "secret-months", PRICE["secret_month"]))
    if facts.scheduled_invocations:
        lines.append(Line("Scheduled function runs", facts.scheduled_invocations, "requests", PRICE["lambda_request"]))
    return lines


def fleet_lines(facts: PlanFacts, developers: int, usage: Usage, series: Mapping[int, int]) -> list[Line]:
    """What `developers` add to the fixed cost in a month (Path A: the collector's telemetry)."""
    if not facts.telemetry_retention_days or developers == 0:
        return []
    lines: list[Line] = []
    log_gb = developers * usage.log_gb()
    lines.append(Line("Telemetry log ingestion", log_gb, "GB", PRICE["logs_ingest_gb"]))
    retention_months = sum(facts.telemetry_retention_days) / len(facts.telemetry_retention_days) / 30
    lines.append(
        Line(
            "Telemetry log storage (uncompressed: an upper bound)",
            log_gb * retention_months,
            "GB-months",
            PRICE["logs_storage_gb_month"],
        )
    )
    if developers not in series:
        raise ValueError(f"no measured series count for {developers} developers; measured: {sorted(series)}")
    lines.append(Line("Custom metric series (measured)", series[developers], "metric-months", PRICE["metric_month"]))
    if facts.nat_gateways:  # the collector's PutLogEvents calls leave through NAT (no VPC endpoints)
        lines.append(Line("NAT data processing (the collector's exports)", log_gb, "GB", PRICE["nat_gb"]))
    if facts.load_balancers:
        lines.append(
            Line("Load balancer capacity units", _lcu_hours(developers, usage), "LCU-h", PRICE["alb_lcu_hour"])
        )
    for tasks in facts.tasks:
        extra = _extra_task_hours(tasks, developers, usage)
        if extra:
            vcpu, memory = _fargate(tasks)
            lines.append(Line("Collector tasks scaled out", extra * tasks.vcpu, "vCPU-h", vcpu))
            lines.append(Line("Collector tasks scaled out", extra * tasks.memory_gb, "GB-h", memory))
    if facts.rollups:
        items = developers * usage.rollup_items_per_active_hour * usage.active_hours
        lines.append(
            Line(
                f"Rollup writes (transactions: {TRANSACTION_WRITE_UNITS} WRU an item)",
                TRANSACTION_WRITE_UNITS * items,
                "WRU",
                PRICE["dynamodb_wru"],
            )
        )
        claimed = developers * (usage.metric_events() + usage.claude_events())  # both log groups are claimed
        lines.append(
            Line(
                "Claim writes (a write unit per KB of claim item)",
                claimed * usage.claim_write_units_per_log_event,
                "WRU",
                PRICE["dynamodb_wru"],
            )
        )
        if facts.quota_index:  # one standard write to the usage index per user day and month item written
            index = developers * 2 * usage.active_minutes()
            lines.append(Line("Usage index writes", index, "WRU", PRICE["dynamodb_wru"]))
        # A user's 22 day items and one month item a month, kept for the TTL after their period and the current one.
        months = facts.rollup_ttl_days / 30 + 1
        stored_gb = developers * months * 23 * usage.rollup_item_bytes / 1e9
        lines.append(
            Line(
                f"Rollup storage ({months:.3g} months of user items)",
                stored_gb,
                "GB-months",
                PRICE["dynamodb_storage_gb_month"],
            )
        )
        if facts.rollups_pitr:
            lines.append(Line("Rollup point-in-time recovery", stored_gb, "GB-months", PRICE["dynamodb_pitr_gb_month"]))
        aggregator = _find(facts.functions, "-aggregator")
        if aggregator:
            events = developers * usage.metric_events()
            cpu, waiting = aggregator_seconds(events, items + events * usage.claim_requests_per_log_event, usage)
            lines.append(Line("Aggregator compute", gb_seconds(cpu, aggregator), "GB-s", _lambda_price(aggregator)))
            lines.append(
                Line(
                    f"Aggregator waiting on DynamoDB (assumed {DYNAMODB_CALL_SECONDS * 1000:g} ms a call)",
                    gb_seconds(waiting, aggregator, cpu_bound=False),
                    "GB-s",
                    _lambda_price(aggregator),
                )
            )
            deliveries = developers * usage.deliveries_per_active_hour * usage.active_hours
            lines.append(Line("Aggregator requests", deliveries, "requests", PRICE["lambda_request"]))
    monitor = _find(facts.functions, "-quota-monitor")
    if monitor and facts.quota_schedule_minutes:
        runs = MINUTES_PER_MONTH / facts.quota_schedule_minutes
        lines.append(
            Line("Quota monitor reads", developers * usage.quota_rru_per_run * runs, "RRU", PRICE["dynamodb_rru"])
        )
        seconds = developers * usage.quota_seconds_per_run * runs
        lines.append(
            Line(
                "Quota monitor compute (upper bound)",
                gb_seconds(seconds, monitor, cpu_bound=False),
                "GB-s",
                _lambda_price(monitor),
            )
        )
    transform = _find(facts.functions, "-analytics-transform")
    if transform and facts.firehose_streams:
        events = developers * (usage.metric_events() + usage.claude_events())
        lines.append(
            Line(
                "Analytics transform compute",
                gb_seconds(events / usage.transform_events_per_second, transform),
                "GB-s",
                _lambda_price(transform),
            )
        )
        lines.append(
            Line(
                "Analytics transform requests",
                log_gb * 1e9 / usage.transform_invocation_bytes,
                "requests",
                PRICE["lambda_request"],
            )
        )
        lines.append(Line("Firehose ingestion", log_gb, "GB", PRICE["firehose_ingest_gb"]))
        lines.append(Line("Firehose Parquet conversion", log_gb, "GB", PRICE["firehose_conversion_gb"]))
        lines.append(Line("Firehose dynamic partitioning", log_gb, "GB", PRICE["firehose_partitioning_gb"]))
        flushes = facts.firehose_streams * usage.active_hours * 3600 / facts.firehose_interval_seconds
        lines.append(Line("Lake objects written", flushes, "requests", PRICE["s3_put"]))
        months = facts.lake_expiration_days / 30 if facts.lake_expiration_days else 12
        kept = f"{months:.3g} months" if facts.lake_expiration_days else "a year (it never expires)"
        lines.append(
            Line(
                f"Lake storage once it holds {kept} (Parquet, at the Standard price: an upper bound)",
                events * usage.lake_bytes_per_log_event / 1e9 * months,
                "GB-months",
                PRICE["s3_storage_gb_month"],
            )
        )
    return lines


def aggregator_seconds(log_events: float, items: float, usage: Usage) -> tuple[float, float]:
    """(CPU seconds on one core, seconds waiting on DynamoDB) of the aggregator for `log_events` metric log events
    that write `items` items (rollups and claims): its own code, the AWS SDK per item, and the calls it waits on."""
    cpu = log_events / usage.aggregator_events_per_second + items * usage.aggregator_sdk_seconds_per_item
    return cpu, log_events * usage.aggregator_calls_per_event * DYNAMODB_CALL_SECONDS


def _lcu_hours(developers: int, usage: Usage) -> float:
    """LCU-hours: each active hour, the largest of the four dimensions (rule evaluations stay within the free 10)."""
    active_share = usage.active_minutes_per_hour / 60
    gb_per_hour = developers * usage.log_gb() / usage.active_hours  # 1 LCU: 1 GB an hour (an upper bound)
    new_per_second = developers * usage.active_minutes_per_hour * usage.new_connections_per_active_minute / 3600
    active_per_minute = developers * active_share  # 1 LCU: 3,000 active connections a minute
    return max(gb_per_hour / 1, new_per_second / 25, active_per_minute / 3000) * usage.active_hours


def _extra_task_hours(tasks: Tasks, developers: int, usage: Usage) -> float:
    """Task-hours above the minimum when requests per task exceed the scaling target in active hours."""
    if not tasks.requests_per_target:
        return 0.0
    per_minute = developers * usage.active_minutes_per_hour / 60 * usage.requests_per_active_minute
    needed = min(tasks.maximum, max(tasks.minimum, math.ceil(per_minute / tasks.requests_per_target)))
    return (needed - tasks.minimum) * usage.active_hours


def not_priced(facts: PlanFacts) -> list[str]:
    notes = []
    if facts.firehose_streams:
        notes.append("Firehose ingestion, Parquet conversion and dynamic partitioning (no eu-west-1 price found)")
        notes.append("Athena scans (they depend on the queries people run)")
    if facts.container_insights:
        notes.append("Container Insights metrics")
    if facts.access_logs:
        notes.append("load balancer access logs in S3")
    if facts.bearer_token_teams:
        notes.append("Path B (direct OTLP ingest to CloudWatch) per developer")
    if facts.high_resolution_alarms:
        notes.append(f"{facts.high_resolution_alarms} high-resolution alarms (price not looked up)")
    notes.append("KMS, SNS and SQS requests, and data transfer out (cents at these volumes)")
    return notes


def price_plan(
    plan: Mapping[str, Any],
    usage: Usage = USAGE,
    series: Mapping[int, int] | None = None,
    fleets: Sequence[int] = FLEETS,
) -> StackCost:
    facts = plan_facts(plan)
    measured = series if series is not None else (benchmark_series() if facts.telemetry_retention_days else {})
    return StackCost(
        stack=str(plan.get("stack", "")),
        facts=facts,
        fixed=fixed_lines(facts),
        by_fleet={n: fleet_lines(facts, n, usage, measured) for n in fleets},
        not_priced=not_priced(facts),
    )


# Reports -----------------------------------------------------------------------------------------------------------


def _usd(value: float) -> str:
    return f"${value:,.2f}"


def readme_table(costs: Sequence[StackCost]) -> str:
    """The README's table: per stack, what the preview creates and what it costs a month."""
    fleets = list(costs[0].by_fleet) if costs else list(FLEETS)
    head = " | ".join(f"{n:,} developers" for n in fleets)
    lines = [
        f"| Stack | Resources (awsx, modelled) | NAT gateways | At 0 developers | {head} |",
        "|---|---:|---:|---:|" + "---:|" * len(fleets),
    ]
    for cost in costs:
        totals = " | ".join(_usd(cost.total_usd(n)) for n in fleets)
        lines.append(
            f"| {cost.stack} | {cost.facts.resources} ({cost.facts.modelled}) | {cost.facts.nat_gateways} "
            f"| {_usd(cost.fixed_usd())} | {totals} |"
        )
    lines += [
        "",
        f"USD a month at {REGION} list prices of {LOOKED_UP}, without free tiers (but the {FREE_DASHBOARDS} free "
        f"dashboards); a developer is active {USAGE.active_minutes_per_hour:g} minutes in each of "
        f"{USAGE.active_hours:g} working hours a month, as in the benchmarks. Not priced: Firehose (no {REGION} "
        "price found), Athena's scans, and the smaller items [Cost](docs/cost.md) lists with every "
        "price, its source and the usage assumption. `make cost` writes this table from the preview's plans.",
    ]
    return "\n".join(lines)


def prices_table() -> str:
    lines = ["| Price | USD | Per | Source | Looked up | Note |", "|---|---:|---|---|---|---|"]
    for price in PRICES:
        usd = "not found" if price.usd is None else f"{price.usd:.10g}"
        lines.append(f"| {price.what} | {usd} | {price.unit} | <{price.source}> | {price.looked_up} | {price.note} |")
    return "\n".join(lines)


def usage_table(usage: Usage = USAGE) -> str:
    lines = ["| Assumption | Value | Source |", "|---|---:|---|"]
    for item in fields(usage):
        value = getattr(usage, item.name)
        lines.append(f"| `{item.name}` | {value:,.6g} | {USAGE_SOURCES[item.name]} |")
    lines.append(
        f"| per developer and month | {usage.active_minutes():,.0f} active minutes, {usage.log_gb() * 1000:,.1f} MB "
        "of telemetry | derived |"
    )
    return "\n".join(lines)


def report(cost: StackCost) -> str:
    fleets = list(cost.by_fleet)
    lines = [
        f"Stack '{cost.stack}': {cost.facts.resources} resources ({cost.facts.modelled} awsx children, modelled), "
        f"USD a month, {REGION} list prices of {LOOKED_UP}",
        "",
        f"  {'Fixed at 0 developers':<58}{_usd(cost.fixed_usd()):>12}",
    ]
    for line in cost.fixed:
        lines.append(f"    {line.item:<56}{_money(line):>12}   {line.quantity:,.6g} {line.unit} × {_rate(line)}")
    lines += ["", f"  {'Usage':<58}" + "".join(f"{n:>12,}" for n in fleets)]
    keys: dict[tuple[str, str], Line] = {}
    for n in fleets:
        for line in cost.by_fleet[n]:
            keys.setdefault((line.item, line.unit), line)
    for key, line in keys.items():
        row = [next((item for item in cost.by_fleet[n] if (item.item, item.unit) == key), None) for n in fleets]
        cells = "".join(f"{_money(item) if item else '-':>12}" for item in row)
        lines.append(f"    {line.item:<56}{cells}   {_rate(line, per=True)}")
    lines.append(f"  {'Total':<58}" + "".join(f"{_usd(cost.total_usd(n)):>12}" for n in fleets))
    lines += ["", "  Not priced: " + "; ".join(cost.not_priced)]
    return "\n".join(lines)


def _money(line: Line) -> str:
    return "not found" if line.usd is None else _usd(line.usd)


def _rate(line: Line, per: bool = False) -> str:
    """The unit price as written beside a line: `$0.048` (or `$0.048 per GB`); tiny ones per million units."""
    usd = line.price.usd
    if usd is None:
        return "no price found"
    if usd < 0.001:
        return f"${usd * 1e6:.6g} per million {line.unit}" if per else f"${usd * 1e6:.6g}/million"
    return f"${usd:.6g} per {line.unit}" if per else f"${usd:.6g}"


def write_docs(costs: Sequence[StackCost], root: Path = PROJECT_ROOT) -> None:
    from benchmarks.readme import write_section

    write_section("cost", readme_table(costs), root)
    write_section("cost-prices", prices_table(), root)
    write_section("cost-usage", usage_table(), root)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--stack", action="append", help="a stack of this project (default: every stack)")
    parser.add_argument("--plan", action="append", help="a plan.json written by the offline preview")
    parser.add_argument("--write-readme", action="store_true", help="rewrite the README's and docs/cost.md's tables")
    args = parser.parse_args(argv)
    if args.write_readme and (args.plan or args.stack):
        print("error: --write-readme prices every stack of the project; leave out --plan and --stack", file=sys.stderr)
        return 2
    if args.plan:
        paths = [Path(p) for p in args.plan]
    else:
        stacks = args.stack or sorted(
            p.name.removeprefix("Pulumi.").removesuffix(".yaml") for p in PROJECT_ROOT.glob("Pulumi.*.yaml")
        )
        paths = [PROJECT_ROOT / "build" / stack / "plan.json" for stack in stacks]
    missing = [str(path) for path in paths if not path.is_file()]
    if missing:
        print(f"error: no plan {', '.join(missing)}: run `make preview` first (or `make cost`)", file=sys.stderr)
        return 3
    costs = [price_plan(json.loads(path.read_text())) for path in paths]
    for cost in costs:
        print(report(cost))
        print()
    print("Usage assumption (per developer):")
    print(usage_table())
    print()
    print("Prices:")
    print(prices_table())
    if args.write_readme:
        write_docs(costs)
    return 0


if __name__ == "__main__":
    sys.exit(main())
