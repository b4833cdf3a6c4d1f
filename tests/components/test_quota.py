"""The Quota component under mocks (the prod stack enables it, dev does not) and its arguments."""

from __future__ import annotations

import json
from typing import Any

from components.quota import QuotaArgs, policy_resource_suffix, schedule_expression
from lambda_src.common.quota_policies import (
    ALERTS_IN_DOUBT_METRIC,
    MONITOR_METRICS_NAMESPACE,
    POLICIES_SKIPPED_METRIC,
    QuotaPolicy,
    policy_from_item,
)
from lambda_src.common.rollups import USAGE_INDEX, USAGE_INDEX_KEY
from offline.engine import Registration
from offline.preview import PreviewResult


def quota(result: PreviewResult, token: str) -> list[Registration]:
    return [r for r in result.run.registrations if r.type == token and "index:Quota$" in r.urn]


def one(result: PreviewResult, token: str) -> dict[str, Any]:
    (found,) = [r.inputs() for r in quota(result, token)]
    return found


def test_policies_from_the_stack_file_are_stored_as_items_the_monitor_reads(prod_preview: PreviewResult) -> None:
    items = [json.loads(r.inputs()["item"]) for r in quota(prod_preview, "aws:dynamodb/tableItem:TableItem")]
    policies = {policy.key: policy for policy in map(policy_from_item, items)}
    thresholds = (80, 90, 100)
    assert policies == {
        "default": QuotaPolicy("default", daily_usd=60, monthly_usd=500, thresholds=thresholds),
        "department#research": QuotaPolicy("department", "research", monthly_usd=1500, thresholds=thresholds),
        "team#interns": QuotaPolicy("team", "interns", monthly_tokens=50_000_000, thresholds=thresholds),
        "user#lead.engineer@example.com": QuotaPolicy(
            "user", "lead.engineer@example.com", monthly_usd=2000, thresholds=thresholds
        ),
    }
    table = one(prod_preview, "aws:dynamodb/table:Table")
    assert {r.inputs()["tableName"] for r in quota(prod_preview, "aws:dynamodb/tableItem:TableItem")} == {table["name"]}
    assert table["billingMode"] == "PAY_PER_REQUEST" and table["serverSideEncryption"]["enabled"] is True
    assert table["pointInTimeRecovery"]["enabled"] is True and table["deletionProtectionEnabled"] is True
    assert table["ttl"] == {"attributeName": "expires_at", "enabled": True}


def test_alerts_go_to_an_encrypted_tls_only_topic_with_the_configured_subscribers(prod_preview: PreviewResult) -> None:
    topic = one(prod_preview, "aws:sns/topic:Topic")
    assert topic["kmsMasterKeyId"] == "alias/aws/sns"
    statement = json.loads(one(prod_preview, "aws:sns/topicPolicy:TopicPolicy")["policy"])["Statement"]
    assert statement[0]["Effect"] == "Deny" and statement[0]["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
    subscriptions = [r.inputs() for r in quota(prod_preview, "aws:sns/topicSubscription:TopicSubscription")]
    assert [(s["protocol"], s["endpoint"]) for s in subscriptions] == [("email", "finops@example.com")]


def test_the_monitor_runs_on_the_configured_schedule_in_the_dashboards_time_zone(prod_preview: PreviewResult) -> None:
    function = one(prod_preview, "aws:lambda/function:Function")
    environment = function["environment"]["variables"]
    assert environment["ROLLUP_TABLE"] == "ccm-prod-dashboard-rollups"
    assert environment["TIME_ZONE"] == "Europe/Berlin"
    assert environment["POLICY_SOURCE"] == "Pulumi.prod.yaml (key claude-code-monitoring:quota)"
    assert function["handler"] == "lambda_src.quota_monitor.handler.handler"
    rule = one(prod_preview, "aws:cloudwatch/eventRule:EventRule")
    assert rule["scheduleExpression"] == "rate(15 minutes)"
    permission = one(prod_preview, "aws:lambda/permission:Permission")
    assert permission["principal"] == "events.amazonaws.com"
    assert permission["sourceArn"].startswith("arn:aws:events:eu-west-1:123456789012:rule/ccm-prod-quota-monitor")
    target = one(prod_preview, "aws:cloudwatch/eventTarget:EventTarget")
    assert target["arn"].endswith(":function:ccm-prod-quota-monitor")


def test_the_monitor_may_read_the_index_and_policies_and_write_only_its_own_items(prod_preview: PreviewResult) -> None:
    policy = json.loads(one(prod_preview, "aws:iam/rolePolicy:RolePolicy")["policy"])
    by_sid = {statement["Sid"]: statement for statement in policy["Statement"]}
    assert by_sid["ListUsersWithUsage"]["Resource"].endswith(f":table/ccm-prod-dashboard-rollups/index/{USAGE_INDEX}")
    assert by_sid["WriteQuotaView"]["Condition"] == {"ForAllValues:StringLike": {"dynamodb:LeadingKeys": ["QUOTA#*"]}}
    assert by_sid["ReadPolicies"]["Condition"] == {"ForAllValues:StringEquals": {"dynamodb:LeadingKeys": ["POLICY"]}}
    assert by_sid["ClaimAlerts"]["Condition"] == {"ForAllValues:StringLike": {"dynamodb:LeadingKeys": ["ALERT#*"]}}
    assert by_sid["PublishAlerts"]["Resource"].endswith(":ccm-prod-quota-alerts")
    for statement in policy["Statement"]:
        actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
        assert all("*" not in action for action in actions) and statement["Resource"] != "*"
    # The run's metrics are embedded metric format in its log line: no cloudwatch:PutMetricData, no QUALITY# writes.
    actions = {
        a for s in policy["Statement"] for a in (s["Action"] if isinstance(s["Action"], list) else [s["Action"]])
    }
    assert not any(action.startswith("cloudwatch:") for action in actions)
    assert by_sid["ClaimAlerts"]["Action"] == [
        "dynamodb:UpdateItem",
        "dynamodb:DeleteItem",
        "dynamodb:GetItem",
        "dynamodb:BatchGetItem",
    ]


def test_quota_adds_the_usage_index_and_the_panel_to_the_dashboard_only_when_enabled(
    prod_preview: PreviewResult, dev_preview: PreviewResult
) -> None:
    def rollups_and_body(result: PreviewResult) -> tuple[dict[str, Any], dict[str, Any]]:
        registrations = [r for r in result.run.registrations if "index:Dashboard$" in r.urn]
        (table,) = [r.inputs() for r in registrations if r.type == "aws:dynamodb/table:Table"]
        (board,) = [r.inputs() for r in registrations if r.type == "aws:cloudwatch/dashboard:Dashboard"]
        return table, json.loads(board["dashboardBody"])

    def quota_panels(body: dict[str, Any]) -> list[str]:
        return [
            w["properties"]["title"]
            for w in body["widgets"]
            if w["type"] == "custom" and w["properties"]["params"]["widget"] == "quota"
        ]

    table, body = rollups_and_body(prod_preview)
    (index,) = table["globalSecondaryIndexes"]
    assert index["name"] == USAGE_INDEX and index["keySchemas"][0] == {
        "attributeName": USAGE_INDEX_KEY,
        "keyType": "HASH",
    }
    assert {"tokens", "cost_usd", "team", "department"} <= set(index["nonKeyAttributes"])
    assert quota_panels(body) == ["Users near or over quota (latest quota run)"]
    table, body = rollups_and_body(dev_preview)
    assert not table.get("globalSecondaryIndexes") and quota_panels(body) == []
    assert quota(dev_preview, "aws:lambda/function:Function") == []


def test_monitor_failures_and_undeliverable_alerts_page_operations(prod_preview: PreviewResult) -> None:
    alarms = {r.name: r.inputs() for r in quota(prod_preview, "aws:cloudwatch/metricAlarm:MetricAlarm")}
    assert set(alarms) == {
        "ccm-prod-quota-monitor-errors",
        "ccm-prod-quota-policy-problems",
        "ccm-prod-quota-alerts-in-doubt",
        "ccm-prod-quota-alert-delivery-failures",
    }
    assert all(a["alarmActions"] == [prod_preview.run.outputs["operationsTopicArn"]] for a in alarms.values())


def test_skipped_policies_and_alerts_in_doubt_alarm_on_the_monitors_own_metrics(prod_preview: PreviewResult) -> None:
    """The monitor writes them as embedded metric format in its log line, under its function name."""
    alarms = {r.name: r.inputs() for r in quota(prod_preview, "aws:cloudwatch/metricAlarm:MetricAlarm")}
    function = one(prod_preview, "aws:lambda/function:Function")
    for name, metric in (
        ("ccm-prod-quota-policy-problems", POLICIES_SKIPPED_METRIC),
        ("ccm-prod-quota-alerts-in-doubt", ALERTS_IN_DOUBT_METRIC),
    ):
        alarm = alarms[name]
        assert (alarm["namespace"], alarm["metricName"]) == (MONITOR_METRICS_NAMESPACE, metric)
        assert alarm["dimensions"] == {"FunctionName": function["name"]}
        assert alarm["threshold"] == 0 and alarm["comparisonOperator"] == "GreaterThanThreshold"
        assert alarm["treatMissingData"] == "notBreaching"


def test_arguments_that_cannot_work_are_named() -> None:
    args = QuotaArgs(
        rollup_table_name="rollups",
        rollup_table_arn="arn:aws:dynamodb:eu-west-1:1:table/rollups",
        alarm_topic_arn="arn:aws:sns:eu-west-1:1:ops",
        policies=[QuotaPolicy("default", daily_usd=-1), QuotaPolicy("team", "a", thresholds=(90, 80))],
        time_zone="Mars/Olympus",
        schedule_minutes=0,
        alert_emails=["finops.example.com"],
        alert_https_endpoints=["http://hooks.example.com"],
    )
    assert args.problems() == [
        "policies: the default policy: daily_usd must be a number of at least 0, got -1",
        "policies: the team policy for a: thresholds must be strictly ascending percentages from 1 to 100, such as "
        "[80, 90, 100], got [90, 80]",
        "time_zone must be an IANA time zone such as UTC or Europe/Berlin, got 'Mars/Olympus'",
        "schedule_minutes must be from 1 to 1440, got 0",
        "alert_emails: 'finops.example.com' is not an email address",
        "alert_https_endpoints: 'http://hooks.example.com' is not an https:// URL (plain HTTP is refused)",
    ]


def test_policy_resource_names_are_stable_and_distinct() -> None:
    dotted, dashed = QuotaPolicy("team", "a.b"), QuotaPolicy("team", "a-b")
    assert policy_resource_suffix(dotted) == policy_resource_suffix(QuotaPolicy("team", "a.b", daily_usd=5))
    assert policy_resource_suffix(dotted) != policy_resource_suffix(dashed)
    assert schedule_expression(1) == "rate(1 minute)" and schedule_expression(60) == "rate(60 minutes)"
