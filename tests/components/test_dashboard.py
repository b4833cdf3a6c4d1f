"""The Dashboard component under mocks (the prod and dev stacks) and its dashboard body."""

from __future__ import annotations

import json
from typing import Any

from components.collector_config import DIMENSION_SETS
from components.dashboard import DashboardArgs
from components.dashboard_body import CollectorHealth, DashboardBodySettings, dashboard_body
from lambda_src.common.rollups import PARTITION_KEY, SORT_KEY, TTL_ATTRIBUTE
from lambda_src.dashboard_widget.handler import WIDGETS
from offline.engine import Registration
from offline.preview import PreviewResult
from policies.metric_dimensions import dashboard_problems

PER_USER = {name: name for name in ("user.email", "user.id", "user.account_uuid", "session.id")}


def dashboard(result: PreviewResult, token: str) -> list[Registration]:
    return [r for r in result.run.registrations if r.type == token and "index:Dashboard$" in r.urn]


def one(result: PreviewResult, token: str, name_part: str = "") -> dict[str, Any]:
    (found,) = [r.inputs() for r in dashboard(result, token) if name_part in r.name]
    return found


def body(result: PreviewResult) -> dict[str, Any]:
    return json.loads(one(result, "aws:cloudwatch/dashboard:Dashboard")["dashboardBody"])


def settings(**change: Any) -> DashboardBodySettings:
    base: dict[str, Any] = {
        "region": "eu-west-1",
        "namespace": "ClaudeCode",
        "widget_function_arn": "arn:aws:lambda:eu-west-1:1:function:widget",
        "aggregator_function_name": "aggregator",
        "widget_function_name": "widget",
        "table_name": "rollups",
        "failed_queue_name": "failed",
        "metrics_log_group": "/m",
        "events_log_group": "/e",
        "subscription_filter_name": "f",
        "collector": CollectorHealth("app/lb/1", "targetgroup/tg/2", "cluster", "service"),
    }
    return DashboardBodySettings(**{**base, **change})


def test_the_rollup_table_is_on_demand_encrypted_with_ttl_and_recovery_in_prod(
    prod_preview: PreviewResult, dev_preview: PreviewResult
) -> None:
    prod = one(prod_preview, "aws:dynamodb/table:Table")
    assert prod["billingMode"] == "PAY_PER_REQUEST"
    assert (prod["hashKey"], prod["rangeKey"]) == (PARTITION_KEY, SORT_KEY)
    assert prod["ttl"] == {"attributeName": TTL_ATTRIBUTE, "enabled": True}
    assert prod["serverSideEncryption"]["enabled"] is True
    assert prod["pointInTimeRecovery"]["enabled"] is True and prod["deletionProtectionEnabled"] is True
    dev = one(dev_preview, "aws:dynamodb/table:Table")
    assert dev["pointInTimeRecovery"]["enabled"] is False


def test_the_aggregator_takes_the_second_subscription_of_each_log_group(prod_preview: PreviewResult) -> None:
    filters = dashboard(prod_preview, "aws:cloudwatch/logSubscriptionFilter:LogSubscriptionFilter")
    groups = sorted(f.inputs()["logGroup"] for f in filters)
    assert groups == ["/ccm-prod-collector/events", "/ccm-prod-collector/metrics"]
    every_filter = [
        r.inputs()["logGroup"]
        for r in prod_preview.run.registrations
        if r.type == "aws:cloudwatch/logSubscriptionFilter:LogSubscriptionFilter"
    ]
    assert all(every_filter.count(group) <= 2 for group in every_filter)  # CloudWatch Logs allows two
    permissions = dashboard(prod_preview, "aws:lambda/permission:Permission")
    assert {p.inputs()["principal"] for p in permissions} == {"logs.amazonaws.com"}
    assert all(
        p.inputs()["sourceArn"].endswith(":*") and ":log-group:/ccm-prod" in p.inputs()["sourceArn"]
        for p in permissions
    )


def test_failed_invocations_go_to_the_encrypted_failed_event_queue(prod_preview: PreviewResult) -> None:
    queue = one(prod_preview, "aws:sqs/queue:Queue")
    assert queue["sqsManagedSseEnabled"] is True and queue["messageRetentionSeconds"] == 14 * 86400
    invoke = one(prod_preview, "aws:lambda/functionEventInvokeConfig:FunctionEventInvokeConfig")
    assert invoke["maximumRetryAttempts"] == 2
    assert invoke["destinationConfig"]["onFailure"]["destination"].endswith(":ccm-prod-dashboard-failed-events")
    environment = one(prod_preview, "aws:lambda/function:Function", "aggregator")["environment"]["variables"]
    assert environment["TIME_ZONE"] == "Europe/Berlin" and environment["ROLLUP_TTL_DAYS"] == "400"


def test_policies_grant_only_what_each_reader_needs(prod_preview: PreviewResult) -> None:
    documents = {
        r.name: json.loads(r.inputs()["policy"]) for r in dashboard(prod_preview, "aws:iam/rolePolicy:RolePolicy")
    }
    aggregator = documents["ccm-prod-dashboard-aggregator"]["Statement"]
    assert "dynamodb:Scan" not in str(aggregator) and "dynamodb:DeleteItem" not in str(aggregator)
    widget = documents["ccm-prod-dashboard-widget"]["Statement"]
    assert widget[0]["Action"] == ["dynamodb:GetItem", "dynamodb:BatchGetItem", "dynamodb:Query"]
    viewer = json.loads(one(prod_preview, "aws:iam/policy:Policy", "viewer")["policy"])["Statement"]
    assert [(s["Action"], s["Resource"]) for s in viewer] == [
        ("cloudwatch:GetDashboard", "arn:aws:cloudwatch::123456789012:dashboard/ccm-prod-dashboard"),
        ("lambda:InvokeFunction", "arn:aws:lambda:eu-west-1:123456789012:function:ccm-prod-dashboard-widget"),
        ("cloudwatch:GetMetricData", "*"),  # the action has no resource type
    ]
    for document in [*documents.values()]:
        for statement in document["Statement"]:
            actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
            assert not any(action.endswith(":*") for action in actions) and statement["Resource"] != "*"


def test_prod_has_the_operational_alarms(prod_preview: PreviewResult) -> None:
    alarms = dashboard(prod_preview, "aws:cloudwatch/metricAlarm:MetricAlarm")
    metrics = sorted({a.inputs()["metricName"] for a in alarms})
    assert len(alarms) >= 4
    assert metrics == [
        "ApproximateNumberOfMessagesVisible",
        "AsyncEventAge",
        "AsyncEventsDropped",
        "DeliveryErrors",
        "Errors",
        "ReadThrottleEvents",
        "WidgetFailures",
        "WriteThrottleEvents",
    ]
    assert all(a.inputs()["alarmActions"] == [a.inputs()["okActions"][0]] for a in alarms)
    (failures,) = dashboard(prod_preview, "aws:cloudwatch/logMetricFilter:LogMetricFilter")
    assert failures.inputs()["pattern"] == '{ $.level = "ERROR" }'  # what the widget logs when it shows a failure
    assert failures.inputs()["metricTransformation"]["namespace"] == "ClaudeCode/Dashboard"


def test_the_dashboard_has_every_panel_and_references_only_what_the_stack_defines(prod_preview: PreviewResult) -> None:
    widgets = body(prod_preview)["widgets"]
    panels = [w for w in widgets if w["type"] != "text"]
    assert len(panels) >= 25
    defined = {r.type: [] for r in prod_preview.run.registrations}
    for r in prod_preview.run.registrations:
        defined[r.type].append(r)
    widget_arn = "arn:aws:lambda:eu-west-1:123456789012:function:ccm-prod-dashboard-widget"
    names_in_stack = json.dumps([r.inputs() for r in prod_preview.run.registrations])
    for panel in panels:
        properties = panel["properties"]
        if panel["type"] == "custom":
            assert properties["endpoint"] == widget_arn
            assert properties["params"]["widget"] in WIDGETS
            assert properties["updateOn"]["timeRange"] is True
        for entry in properties.get("metrics", []):
            head = [item for item in entry if isinstance(item, str)]
            if head and head[0] == "ClaudeCode":
                assert head[1] in DIMENSION_SETS, entry
                assert sorted(head[2::2]) in [sorted(s) for s in DIMENSION_SETS[head[1]]], entry
            elif head and head[0] not in (".", "AWS/Bedrock"):
                for value in head[3::2]:
                    assert value in names_in_stack, (panel["properties"]["title"], value)
    titles = " | ".join(p["properties"]["title"] for p in panels)
    for expected in (
        "Total tokens", "Active users", "Sessions", "Cache hit rate", "Estimated cost", "Tokens over time",
        "Tokens by type", "Tokens by model", "Top users by tokens", "Top users by cost", "Lines of code",
        "Commits", "Pull requests", "Active hours", "Code generation by language", "Edit acceptance rate",
        "Edits by tool", "Usage by department", "Usage by team", "Usage by cost center", "API errors by model",
        "API latency by model", "Tool success rate", "Data quality", "Collector", "Aggregator", "Bedrock",
        "Tokens by team (PromQL)",
    ):  # fmt: skip
        assert expected in titles


def test_promql_widgets_only_with_bearer_ingest_and_only_at_team_level(dev_preview: PreviewResult) -> None:
    assert not [w for w in body(dev_preview)["widgets"] if w["type"] == "chart"]
    promql = [w for w in dashboard_body(settings(promql_teams=True))["widgets"] if w["type"] == "chart"]
    assert len(promql) == 3
    for widget in promql:
        (query,) = widget["properties"]["data"]["queries"]
        assert query["language"] == "PromQL" and 'by ("@resource.team.id")' in query["query"]
        assert "sum_over_time" in query["query"]  # Claude Code counters are deltas: sum them


def test_the_policy_pack_finds_no_per_user_dimension_in_the_body() -> None:
    assert dashboard_problems(dashboard_body(settings(promql_teams=True)), PER_USER) == []


def test_widgets_are_laid_out_without_overlap() -> None:
    widgets = dashboard_body(settings(promql_teams=True))["widgets"]
    cells = set()
    for widget in widgets:
        assert widget["x"] >= 0 and widget["x"] + widget["width"] <= 24
        for x in range(widget["x"], widget["x"] + widget["width"]):
            for y in range(widget["y"], widget["y"] + widget["height"]):
                assert (x, y) not in cells
                cells.add((x, y))


def test_arguments_that_cannot_work_are_named_with_what_is_allowed() -> None:
    problems = DashboardArgs(
        metrics_log_group="/m",
        events_log_group="/e",
        collector_health={"cluster_name": "c"},
        region="eu-west-1",
        metrics_namespace="ClaudeCode",
        alarm_topic_arn="arn:aws:sns:eu-west-1:1:t",
        rollup_ttl_days=0,
    ).problems()
    assert problems == [
        "rollup_ttl_days must be from 1 to 3650, got 0",
        "collector_health needs load_balancer_arn_suffix, service_name, target_group_arn_suffix",
    ]
