"""The cost model (offline/cost.py): exact numbers on a small hand-built plan, the documented tables generated from
the stacks as they are, and the usage numbers recomputed from the benchmarks they cite."""

from __future__ import annotations

import json
import re
import statistics
from pathlib import Path
from typing import Any

import pytest

from offline.cost import (
    FLEETS,
    PRICE,
    PRICES,
    USAGE,
    USAGE_SOURCES,
    Usage,
    benchmark_series,
    main,
    plan_facts,
    price_plan,
    prices_table,
    readme_table,
    usage_table,
)
from offline.preview import PROJECT_ROOT, PreviewResult, plan_document


def resource(type_: str, name: str, inputs: dict[str, Any], modelled: str | None = None) -> dict[str, Any]:
    return {
        "urn": f"urn:pulumi:test::p::{type_}::{name}",
        "type": type_,
        "name": name,
        "parent": None,
        "custom": True,
        "modelled": modelled,
        "inputs": inputs,
    }


def small_plan() -> dict[str, Any]:
    vpc = "awsx:ec2:Vpc"
    return {
        "stack": "small",
        "resources": [
            resource("aws:ec2/natGateway:NatGateway", "nat", {}, vpc),
            resource("aws:ec2/eip:Eip", "eip", {}, vpc),
            resource("aws:lb/loadBalancer:LoadBalancer", "lb", {"internal": False, "subnets": ["s-1", "s-2"]}),
            resource(
                "aws:ecs/taskDefinition:TaskDefinition",
                "task",
                {"family": "fam", "cpu": "1024", "memory": "2048", "runtimePlatform": {"cpuArchitecture": "ARM64"}},
            ),
            resource(
                "aws:ecs/service:Service",
                "service",
                {
                    "launchType": "FARGATE",
                    "desiredCount": 2.0,
                    "taskDefinition": "arn:aws:ecs:r:1:task-definition/fam:1",
                },
            ),
            resource("aws:appautoscaling/target:Target", "target", {"minCapacity": 2.0, "maxCapacity": 4.0}),
            resource("aws:kms/key:Key", "key-1", {}),
            resource("aws:kms/key:Key", "key-2", {}),
            *[resource("aws:cloudwatch/metricAlarm:MetricAlarm", f"alarm-{i}", {"period": 300.0}) for i in range(5)],
            *[resource("aws:cloudwatch/dashboard:Dashboard", f"board-{i}", {}) for i in range(4)],
            resource("aws:secretsmanager/secret:Secret", "secret", {}),
            resource("aws:cloudwatch/logGroup:LogGroup", "metrics", {"name": "/m", "retentionInDays": 30.0}),
            resource("aws:cloudwatch/logGroup:LogGroup", "events", {"name": "/e", "retentionInDays": 30.0}),
        ],
        "outputs": {"collectorLogGroups": {"metrics": "/m", "events": "/e", "collector": "/c"}},
    }


# One developer: active 100 hours a month, every minute of them, writing one 1,000-byte event a minute: 6 MB.
SIMPLE = Usage(
    active_hours=100,
    active_minutes_per_hour=60,
    metric_events_per_active_minute=1,
    claude_events_per_active_minute=0,
    metric_event_bytes=1000,
    requests_per_active_minute=0,
    new_connections_per_active_minute=0,
)


def test_the_fixed_cost_of_a_small_plan() -> None:
    cost = price_plan(small_plan(), SIMPLE, series={100: 10}, fleets=[100])
    lines = {line.item: round(line.usd or 0, 6) for line in cost.fixed}
    assert lines == {
        "NAT gateways (1)": 35.04,  # 730 h × $0.048
        "Public IPv4 addresses (3: NAT and load balancer)": 10.95,  # (1 EIP + 2 subnets) × 730 h × $0.005
        "Load balancer": 18.396,  # 730 h × $0.0252
        "Collector tasks (2 × 1 vCPU)": 47.2748,  # 2 × 1 × 730 × $0.03238 (ARM64)
        "Collector tasks (2 × 2 GB)": 10.3952,  # 2 × 2 × 730 × $0.00356
        "KMS keys (2)": 2.0,
        "Alarms (5)": 0.5,
        "Dashboards beyond 3": 3.0,
        "Secrets (1)": 0.4,
    }
    assert cost.fixed_usd() == pytest.approx(127.956)


def test_the_usage_cost_of_a_small_plan() -> None:
    cost = price_plan(small_plan(), SIMPLE, series={100: 10}, fleets=[100])
    lines = {line.item: round(line.usd or 0, 6) for line in cost.by_fleet[100]}
    assert lines == {
        "Telemetry log ingestion": 0.342,  # 100 × 6,000 events × 1,000 B = 0.6 GB × $0.57
        "Telemetry log storage (uncompressed: an upper bound)": 0.018,  # 0.6 GB × 30/30 months × $0.03
        "Custom metric series (measured)": 3.0,  # 10 series × $0.30
        "NAT data processing (the collector's exports)": 0.0288,  # 0.6 GB × $0.048
        # 100 developers connected every minute: 100/3,000 LCU for each of 100 hours, × $0.008
        "Load balancer capacity units": 0.026667,
    }
    assert cost.total_usd(100) == pytest.approx(127.956 + 0.342 + 0.018 + 3.0 + 0.0288 + 0.08 / 3)


def test_the_aggregator_and_the_lake_are_priced_from_the_benchmarks_measures() -> None:
    plan = small_plan()
    plan["resources"] += [
        resource("aws:dynamodb/table:Table", "rollups", {}),
        resource("aws:lambda/function:Function", "x-aggregator", {"memorySize": 512.0, "architectures": ["arm64"]}),
        resource("aws:kinesis/firehoseDeliveryStream:FirehoseDeliveryStream", "metrics", {}),
        resource(
            "aws:s3/bucketLifecycleConfiguration:BucketLifecycleConfiguration",
            "lake-lifecycle",
            {"bucket": "lake", "rules": [{"status": "Enabled", "expiration": {"days": 1096.0}}]},
        ),
        resource(
            "aws:lambda/function:Function", "x-analytics-transform", {"memorySize": 256.0, "architectures": ["arm64"]}
        ),
    ]
    plan["outputs"] |= {"dashboardRollupTable": "rollups", "analyticsLakeBucket": "lake"}
    measures = {
        "aggregator_events_per_second": 1000,
        "aggregator_sdk_seconds_per_item": 0.0001,
        "aggregator_calls_per_event": 0.01,
        "rollup_items_per_active_hour": 10,
        "lake_bytes_per_log_event": 50,
        "claim_write_units_per_log_event": 0.05,
        "claim_requests_per_log_event": 0.01,
    }
    cost = price_plan(plan, Usage(**{**SIMPLE.__dict__, **measures}), series={100: 10}, fleets=[100])
    lines = {line.item: line.quantity for line in cost.by_fleet[100]}
    # 600,000 log events, 100,000 rollup items and 6,000 claim requests: 600 s of our code and 10.6 s of the SDK on
    # one core; at 512 MB the function has 512/1,769 of a vCPU, so 610.6 s × 1,769/512 of 0.5 GB.
    assert lines["Aggregator compute"] == pytest.approx(610.6 * 1769 / 512 * 0.5)
    # every log event claimed, at 0.05 write units each
    assert lines["Claim writes (a write unit per KB of claim item)"] == pytest.approx(30_000)
    # 6,000 calls of 10 ms, waited at 0.5 GB whatever the share of the vCPU
    assert lines["Aggregator waiting on DynamoDB (assumed 10 ms a call)"] == pytest.approx(30)
    # 600,000 × 50 bytes = 0.03 GB a month, kept 1,096 days
    assert lines["Lake storage once it holds 36.5 months (Parquet, at the Standard price: an upper bound)"] == (
        pytest.approx(0.03 * 1096 / 30)
    )


def test_tasks_scale_out_when_requests_pass_the_target() -> None:
    plan = small_plan()
    plan["resources"].append(
        resource(
            "aws:appautoscaling/policy:Policy",
            "requests",
            {
                "targetTrackingScalingPolicyConfiguration": {
                    "targetValue": 100.0,
                    "predefinedMetricSpecification": {"predefinedMetricType": "ALBRequestCountPerTarget"},
                }
            },
        )
    )
    busy = Usage(**{**SIMPLE.__dict__, "requests_per_active_minute": 3})
    cost = price_plan(plan, busy, series={100: 10}, fleets=[100])
    # 100 developers × 3 requests a minute = 300 a minute: 3 tasks at 100 each, 1 above the minimum of 2, 100 h.
    scaled = [line for line in cost.by_fleet[100] if line.item == "Collector tasks scaled out"]
    assert [(line.quantity, line.unit) for line in scaled] == [(100.0, "vCPU-h"), (200.0, "GB-h")]


def test_a_stack_without_the_collector_has_no_usage_cost() -> None:
    plan = {"stack": "ops", "resources": [resource("aws:kms/key:Key", "key", {})], "outputs": {}}
    cost = price_plan(plan, series={})
    assert cost.by_fleet == {n: [] for n in FLEETS}
    assert cost.total_usd(10_000) == cost.fixed_usd() == 1.0


def test_a_price_that_was_not_found_prices_nothing_and_says_so() -> None:
    missing = [price for price in PRICES if price.usd is None]
    assert missing and all(price.note.startswith("not found") for price in missing)
    assert all(
        price.source.startswith("https://") and re.fullmatch(r"\d{4}-\d\d-\d\d", price.looked_up) for price in PRICES
    )
    assert len(PRICE) == len(PRICES)


@pytest.mark.parametrize(("fixture", "nat", "ipv4"), [("dev_preview", 1, 3), ("prod_preview", 3, 6)])
def test_the_stacks_plans_carry_the_modelled_nat_gateways_into_the_price(
    fixture: str, nat: int, ipv4: int, request: pytest.FixtureRequest
) -> None:
    result: PreviewResult = request.getfixturevalue(fixture)
    facts = plan_facts(json.loads(json.dumps(plan_document(result.run, result.violations), default=str)))
    assert (facts.nat_gateways, facts.public_ipv4) == (nat, ipv4)  # EIPs plus the load balancer's subnets
    assert facts.modelled == len(result.run.modelled) and facts.resources == len(result.run.resources())


def test_documented_tables_are_what_the_module_computes_from_the_stacks(
    dev_preview: PreviewResult, prod_preview: PreviewResult
) -> None:
    """The README's cost table and docs/cost.md's tables are generated (`make cost`): they cannot go stale."""
    costs = [
        price_plan(json.loads(json.dumps(plan_document(r.run, r.violations), default=str)))
        for r in (dev_preview, prod_preview)
    ]
    assert section(PROJECT_ROOT / "README.md", "cost") == readme_table(costs)
    assert section(PROJECT_ROOT / "docs" / "cost.md", "cost-prices") == prices_table()
    assert section(PROJECT_ROOT / "docs" / "cost.md", "cost-usage") == usage_table()


def section(path: Path, name: str) -> str:
    match = re.search(rf"<!-- {name}:start -->\n(.*?)\n<!-- {name}:end -->", path.read_text(), re.DOTALL)
    assert match, f"{path.name} has no {name} section"
    return match.group(1)


def test_event_sizes_are_the_benchmark_fleets() -> None:
    """USAGE's event sizes, which `make bench` measures on benchmarks/analytics_transform.py's fleet, are what
    its events weigh (here a fleet of 100 developers: its users' numbers are shorter)."""
    from benchmarks.analytics_transform import fleet

    metric_events, claude_events, _ = fleet(100, 15)
    # Within 1 %: an event's sequence number comes from a counter shared by the whole test session, so its digits
    # (a byte or two) depend on what ran before.
    metric_bytes = statistics.mean(len(e["message"].encode()) for e in metric_events)
    claude_bytes = statistics.mean(len(e["message"].encode()) for e in claude_events)
    assert metric_bytes == pytest.approx(USAGE.metric_event_bytes, rel=0.01)
    assert claude_bytes == pytest.approx(USAGE.claude_event_bytes, rel=0.01)
    assert len(metric_events) / (100 * 15) == USAGE.metric_events_per_active_minute
    assert len(claude_events) / (100 * 15) == USAGE.claude_events_per_active_minute
    assert set(USAGE_SOURCES) == set(USAGE.__dataclass_fields__)


def test_active_minutes_are_the_dashboard_benchmarks() -> None:
    from benchmarks.dashboard import ACTIVE_MINUTES

    assert USAGE.active_minutes_per_hour == ACTIVE_MINUTES


def test_series_are_the_series_benchmarks() -> None:
    from benchmarks.collector_series import exporter, fleet_day
    from components.collector_config import exported_series

    series = benchmark_series()
    assert sorted(series) == sorted(FLEETS)
    assert series[100] == len(exported_series(exporter("NoDimensionRollup"), fleet_day(100)))


def test_make_cost_needs_the_plans_and_writes_only_for_every_stack(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["--plan", str(tmp_path / "plan.json")]) == 3
    assert "run `make preview` first" in capsys.readouterr().err
    plan = tmp_path / "plan.json"
    plan.write_text(json.dumps(small_plan()))
    assert main(["--plan", str(plan), "--write-readme"]) == 2
    assert main(["--plan", str(plan)]) == 0
    out = capsys.readouterr().out
    assert "Stack 'small': " in out and "$127.96" in out and "Prices:" in out
