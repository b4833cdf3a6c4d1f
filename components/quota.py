"""Quota component: per-user token and USD quotas with default, group and user policies, checked on a schedule
against the Dashboard's rollups, with each threshold alert sent once per user, level and period.

Flow: policies (config) --pulumi up--> quota table <--reads-- monitor Lambda (EventBridge schedule) --reads-->
rollup table's usage index; alerts --claim in the quota table, then publish--> alert topic --> email / HTTPS.
The monitor also writes the users near their limits to the rollup table for the Dashboard's quota panel. The
rules (precedence, thresholds, once-only alerts) are in lambda_src/common/quota_policies.py and
lambda_src/quota_monitor/handler.py.
"""

from __future__ import annotations

import hashlib
import json
import re
import zoneinfo
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pulumi
import pulumi_aws as aws

from components.alarms import Alarm, raise_alarms
from components.dynamodb_table import keyed_table
from components.lambda_code import python_function
from components.operations import EMAIL_PATTERN, HTTPS_URL_PATTERN, subscribe, topic_denies_insecure_transport
from lambda_src.common.quota_policies import (
    ALERT_PK_PREFIX,
    ALERTS_IN_DOUBT_METRIC,
    MONITOR_METRICS_NAMESPACE,
    POLICIES_SKIPPED_METRIC,
    POLICY_PK,
    QuotaPolicy,
    policy_item,
    policy_problems,
)
from lambda_src.common.rollups import PARTITION_KEY, SORT_KEY, USAGE_INDEX, quota_pk

MONITOR_TIMEOUT_SECONDS = 300
"""The quota monitor's Lambda timeout; it stops claiming alerts PUBLISH_RESERVE_SECONDS before it."""

COMPONENT_TYPE = "claude-code-monitoring:index:Quota"
MONITOR_FUNCTION = "quota_monitor"


class InvalidQuotaArgs(pulumi.RunError):
    """Arguments that cannot work; the message names the argument and what is allowed."""


@dataclass(frozen=True)
class QuotaArgs:
    rollup_table_name: pulumi.Input[str]
    """The Dashboard's rollup table, created with `DashboardArgs.quota` (it carries the usage index)."""
    rollup_table_arn: pulumi.Input[str]
    alarm_topic_arn: pulumi.Input[str]
    """The operations topic: the monitor's own failures page it."""
    policies: Sequence[QuotaPolicy] = (QuotaPolicy("default"),)
    """Default, team, department and user policies (user > team > department > default; 0 turns a limit off)."""
    time_zone: str = "UTC"
    """The periods' time zone: must be the Dashboard's, whose days and months the rollups are."""
    schedule_minutes: int = 15
    alert_emails: Sequence[str] = ()
    """Addresses subscribed to quota alerts (each confirms its subscription by email)."""
    alert_https_endpoints: Sequence[str] = ()
    """HTTPS endpoints (a chat webhook relay, a ticketing system) subscribed to quota alerts."""
    policy_source: str = "the quota section of the stack configuration"
    """Where administrators change the policies; every alert names it."""
    point_in_time_recovery: bool = False
    deletion_protection: bool = False
    log_retention_days: int = 30
    tags: Mapping[str, str] = field(default_factory=dict)

    def problems(self) -> list[str]:
        found = [f"policies: {problem}" for problem in policy_problems(self.policies)]
        try:
            zoneinfo.ZoneInfo(self.time_zone)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            found.append(f"time_zone must be an IANA time zone such as UTC or Europe/Berlin, got {self.time_zone!r}")
        if not 1 <= self.schedule_minutes <= 1440:
            found.append(f"schedule_minutes must be from 1 to 1440, got {self.schedule_minutes}")
        found += [
            f"alert_emails: {email!r} is not an email address"
            for email in self.alert_emails
            if not re.match(EMAIL_PATTERN, email)
        ]
        found += [
            f"alert_https_endpoints: {url!r} is not an https:// URL (plain HTTP is refused)"
            for url in self.alert_https_endpoints
            if not re.match(HTTPS_URL_PATTERN, url)
        ]
        return found


def schedule_expression(minutes: int) -> str:
    return "rate(1 minute)" if minutes == 1 else f"rate({minutes} minutes)"


def policy_resource_suffix(policy: QuotaPolicy) -> str:
    """A stable, distinct resource name per policy, so reordering the config replaces nothing."""
    slug = re.sub(r"[^a-z0-9-]+", "-", policy.key.lower()).strip("-")[:40]
    return f"{slug}-{hashlib.sha256(policy.key.encode()).hexdigest()[:6]}"


def monitor_statements(rollup_table_arn: str, quota_table_arn: str, topic_arn: str) -> list[dict[str, Any]]:
    """List users with usage (the index only), write the quota view and its data-quality item (QUOTA# items
    only), read the policies, claim and mark alerts (ALERT# items only), publish alerts. The run's metrics are
    embedded metric format in its log: no cloudwatch:PutMetricData."""
    return [
        {
            "Sid": "ListUsersWithUsage",
            "Effect": "Allow",
            "Action": "dynamodb:Query",
            "Resource": f"{rollup_table_arn}/index/{USAGE_INDEX}",
        },
        {
            "Sid": "WriteQuotaView",
            "Effect": "Allow",
            "Action": "dynamodb:PutItem",
            "Resource": rollup_table_arn,
            "Condition": {"ForAllValues:StringLike": {"dynamodb:LeadingKeys": [quota_pk("*")]}},
        },
        {
            "Sid": "ReadPolicies",
            "Effect": "Allow",
            "Action": "dynamodb:Query",
            "Resource": quota_table_arn,
            "Condition": {"ForAllValues:StringEquals": {"dynamodb:LeadingKeys": [POLICY_PK]}},
        },
        {
            "Sid": "ClaimAlerts",
            "Effect": "Allow",
            # GetItem: a claim whose condition fails returns the claim it found (ReturnValuesOnConditionCheckFailure);
            # AWS does not document whether that read needs the permission, so it is granted on the same items.
            "Action": ["dynamodb:UpdateItem", "dynamodb:DeleteItem", "dynamodb:GetItem", "dynamodb:BatchGetItem"],
            "Resource": quota_table_arn,
            "Condition": {"ForAllValues:StringLike": {"dynamodb:LeadingKeys": [f"{ALERT_PK_PREFIX}*"]}},
        },
        {"Sid": "PublishAlerts", "Effect": "Allow", "Action": "sns:Publish", "Resource": topic_arn},
    ]


def alert_topic_policy(topic_arn: str) -> dict[str, Any]:
    return {"Version": "2012-10-17", "Statement": [topic_denies_insecure_transport(topic_arn)]}


class Quota(pulumi.ComponentResource):
    """Quota table with the policies, alert topic and subscriptions, the scheduled monitor, and its alarms."""

    def __init__(self, name: str, args: QuotaArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__(COMPONENT_TYPE, name, None, opts)
        problems = args.problems()
        if problems:
            raise InvalidQuotaArgs(f"Quota {name}: " + "; ".join(problems))
        child = pulumi.ResourceOptions(parent=self)
        account = aws.get_caller_identity_output(opts=pulumi.InvokeOutputOptions(parent=self)).account_id
        tags = {**args.tags, "component": "Quota"}

        table = keyed_table(
            f"{name}-state",
            point_in_time_recovery=args.point_in_time_recovery,
            deletion_protection=args.deletion_protection,
            tags=tags,
            parent=self,
        )
        for policy in args.policies:
            aws.dynamodb.TableItem(
                f"{name}-policy-{policy_resource_suffix(policy)}",
                table_name=table.name,
                hash_key=PARTITION_KEY,
                range_key=SORT_KEY,
                item=json.dumps(policy_item(policy), sort_keys=True),
                opts=child,
            )

        topic = aws.sns.Topic(
            f"{name}-alerts", name=f"{name}-alerts", kms_master_key_id="alias/aws/sns", tags=tags, opts=child
        )
        aws.sns.TopicPolicy(
            f"{name}-alerts",
            arn=topic.arn,
            policy=topic.arn.apply(lambda arn: json.dumps(alert_topic_policy(arn))),
            opts=child,
        )
        subscribe(
            f"{name}-alerts", topic.arn, self, emails=args.alert_emails, https_endpoints=args.alert_https_endpoints
        )

        monitor = python_function(
            f"{name}-monitor",
            folder=MONITOR_FUNCTION,
            description="Claude Code quotas: usage against policies, each threshold alert once per user and period",
            environment={
                "ROLLUP_TABLE": args.rollup_table_name,
                "QUOTA_TABLE": table.name,
                "ALERT_TOPIC_ARN": topic.arn,
                "TIME_ZONE": args.time_zone,
                "POLICY_SOURCE": args.policy_source,
            },
            account_id=account,
            parent=self,
            timeout=MONITOR_TIMEOUT_SECONDS,
            memory_size=512,
            log_retention_days=args.log_retention_days,
            tags=tags,
        )
        monitor.allow(
            pulumi.Output.all(args.rollup_table_arn, table.arn, topic.arn).apply(
                lambda v: monitor_statements(v[0], v[1], v[2])
            )
        )
        monitor.run_on_schedule(schedule_expression(args.schedule_minutes), f"Checks Claude Code quotas ({name})", tags)
        raise_alarms(
            name,
            [
                Alarm(
                    "monitor-errors",
                    "The quota monitor failed: quotas are not being checked, SNS refused alerts (the next run sends "
                    "them), or a sent alert could not be recorded (it is not sent again); the monitor's log says which",
                    "AWS/Lambda",
                    "Errors",
                    {"FunctionName": monitor.function.name},
                    period=max(300, args.schedule_minutes * 60),
                ),
                Alarm(
                    "policy-problems",
                    "The quota monitor skipped policy items that break a rule (its log and the QUOTA#<day> / QUALITY "
                    "item say which and why); the users they apply to are not checked until `pulumi up` rewrites them",
                    MONITOR_METRICS_NAMESPACE,
                    POLICIES_SKIPPED_METRIC,
                    {"FunctionName": monitor.function.name},
                    statistic="Maximum",
                    period=max(300, args.schedule_minutes * 60),
                ),
                Alarm(
                    "alerts-in-doubt",
                    "SNS may or may not have sent quota alerts (its answer was lost): they are not sent again. The "
                    "monitor's log names them; to send one again, delete its ALERT# item in the quota table",
                    MONITOR_METRICS_NAMESPACE,
                    ALERTS_IN_DOUBT_METRIC,
                    {"FunctionName": monitor.function.name},
                    period=max(300, args.schedule_minutes * 60),
                ),
                Alarm(
                    "alert-delivery-failures",
                    "SNS could not deliver quota alerts to a subscription (a bounced address, an HTTPS endpoint down)",
                    "AWS/SNS",
                    "NumberOfNotificationsFailed",
                    {"TopicName": topic.name},
                ),
            ],
            args.alarm_topic_arn,
            tags,
            parent=self,
        )

        self.table_name = table.name
        self.alert_topic_arn = topic.arn
        self.monitor_function_name = monitor.function.name
        self.register_outputs(
            {
                "tableName": self.table_name,
                "alertTopicArn": self.alert_topic_arn,
                "monitorFunctionName": self.monitor_function_name,
            }
        )
