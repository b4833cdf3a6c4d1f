"""Dashboard component: exact rollups in DynamoDB from the collector's log groups, one widget function for every
custom widget, the CloudWatch dashboard, a viewer policy and operational alarms.

Flow: metrics and events log groups --subscription filter--> aggregator Lambda --transactions--> rollup table
<--reads-- widget Lambda <--custom widgets-- CloudWatch dashboard. Log events the aggregator cannot read, and
invocations that fail after Lambda's retries, go to the failed-event queue; an alarm fires while it is not empty.
The item layout is in lambda_src/common/rollups.py.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import pulumi
import pulumi_aws as aws

from components.alarms import Alarm, raise_alarms
from components.dashboard_body import CollectorHealth, DashboardBodySettings, dashboard_body
from components.dynamodb_table import keyed_table
from components.lambda_code import PythonFunction, python_function
from lambda_src.common.pricing import DEFAULT_PRICE_TABLE, PRICE_TABLE_VARIABLE, PriceTable
from lambda_src.common.rollups import (
    PARTITION_KEY,
    USAGE_INDEX,
    USAGE_INDEX_ATTRIBUTES,
    USAGE_INDEX_KEY,
)

AGGREGATOR_FUNCTION = "dashboard_aggregator"
AGGREGATOR_MEMORY_MB = 512
"""The aggregator's memory: below 1,769 MB a function gets that share of a vCPU (docs/dashboard.md prices it)."""
WIDGET_FUNCTION = "dashboard_widget"
WIDGET_FAILURES_METRIC = "WidgetFailures"


def operations_namespace(args: DashboardArgs) -> str:
    """Where the dashboard's own health metrics go, beside the collector's namespace."""
    return f"{args.metrics_namespace}/Dashboard"


ASYNC_RETRIES = 2
MAX_EVENT_AGE_SECONDS = 6 * 3600
BACKLOG_ALARM_MS = 10 * 60 * 1000
FAILED_EVENT_RETENTION_SECONDS = 14 * 86400


class InvalidDashboardArgs(pulumi.RunError):
    """Arguments that cannot work; the message names the argument and what is allowed."""


@dataclass(frozen=True)
class DashboardArgs:
    metrics_log_group: pulumi.Input[str]
    """Name of the log group with the collector's EMF metric events."""
    events_log_group: pulumi.Input[str]
    """Name of the log group with the Claude Code events."""
    collector_health: Mapping[str, pulumi.Input[str]]
    """The collector's `load_balancer_arn_suffix`, `target_group_arn_suffix`, `cluster_name`, `service_name`."""
    region: str
    metrics_namespace: str
    """The collector's CloudWatch namespace, which the native widgets chart."""
    alarm_topic_arn: pulumi.Input[str]
    time_zone: str = "UTC"
    """Reporting time zone: the days and months of the rollups (the quota periods use the same)."""
    rollup_ttl_days: int = 400
    """Days a rollup item is kept after its day or month ends."""
    point_in_time_recovery: bool = False
    deletion_protection: bool = False
    log_retention_days: int = 30
    promql_teams: bool = False
    """Bearer-token ingest is enabled: add PromQL widgets per team."""
    quota: bool = False
    """Quota is enabled: give the table the usage index the quota monitor lists users with, and add the panel
    of users near or over their quota."""
    prices: PriceTable = DEFAULT_PRICE_TABLE
    """Token prices the aggregator costs usage with (the client's own cost for models it lacks)."""
    tags: Mapping[str, str] = field(default_factory=dict)

    def problems(self) -> list[str]:
        found = []
        if not 1 <= self.rollup_ttl_days <= 3650:
            found.append(f"rollup_ttl_days must be from 1 to 3650, got {self.rollup_ttl_days}")
        missing = sorted(set(CollectorHealth.__dataclass_fields__) - set(self.collector_health))
        if missing:
            found.append(f"collector_health needs {', '.join(missing)}")
        return found


def usage_index() -> aws.dynamodb.TableGlobalSecondaryIndexArgs:
    """Users with usage per day or month (sparse: only user items carry the key), sharded, with the totals."""
    return aws.dynamodb.TableGlobalSecondaryIndexArgs(
        name=USAGE_INDEX,
        key_schemas=[
            aws.dynamodb.TableGlobalSecondaryIndexKeySchemaArgs(attribute_name=USAGE_INDEX_KEY, key_type="HASH"),
            aws.dynamodb.TableGlobalSecondaryIndexKeySchemaArgs(attribute_name=PARTITION_KEY, key_type="RANGE"),
        ],
        projection_type="INCLUDE",
        non_key_attributes=list(USAGE_INDEX_ATTRIBUTES),
    )


def aggregator_statements(table_arn: str, queue_arn: str) -> list[dict[str, Any]]:
    """Read and write rollups (transactions check and update items), queue failed events."""
    return [
        {
            "Sid": "WriteRollups",
            "Effect": "Allow",
            "Action": [
                "dynamodb:BatchGetItem",
                "dynamodb:GetItem",
                "dynamodb:PutItem",
                "dynamodb:UpdateItem",
                "dynamodb:ConditionCheckItem",
            ],
            "Resource": table_arn,
        },
        {"Sid": "QueueFailedEvents", "Effect": "Allow", "Action": "sqs:SendMessage", "Resource": queue_arn},
    ]


def widget_statements(table_arn: str) -> list[dict[str, Any]]:
    return [
        {
            "Sid": "ReadRollups",
            "Effect": "Allow",
            "Action": ["dynamodb:GetItem", "dynamodb:BatchGetItem", "dynamodb:Query"],
            "Resource": table_arn,
        }
    ]


def viewer_policy(dashboard_arn: str, widget_function_arn: str) -> dict[str, Any]:
    """Open the dashboard and render its custom widgets. The native widgets need GetMetricData, an action that
    has no resource type (it reads metrics, never changes anything)."""
    return {
        "Version": "2012-10-17",
        "Statement": [
            {"Sid": "ReadDashboard", "Effect": "Allow", "Action": "cloudwatch:GetDashboard", "Resource": dashboard_arn},
            {
                "Sid": "RenderCustomWidgets",
                "Effect": "Allow",
                "Action": "lambda:InvokeFunction",
                "Resource": widget_function_arn,
            },
            {"Sid": "ChartMetrics", "Effect": "Allow", "Action": "cloudwatch:GetMetricData", "Resource": "*"},
        ],
    }


def tls_only_queue_policy(queue_arn: str) -> dict[str, Any]:
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "DenyInsecureTransport",
                "Effect": "Deny",
                "Principal": "*",
                "Action": "sqs:*",
                "Resource": queue_arn,
                "Condition": {"Bool": {"aws:SecureTransport": "false"}},
            }
        ],
    }


def log_group_arn(partition: str, region: str, account: str, name: str) -> str:
    return f"arn:{partition}:logs:{region}:{account}:log-group:{name}:*"


class Dashboard(pulumi.ComponentResource):
    """Rollup table, aggregator and widget functions, the CloudWatch dashboard, viewer policy and alarms."""

    def __init__(self, name: str, args: DashboardArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("claude-code-monitoring:index:Dashboard", name, None, opts)
        problems = args.problems()
        if problems:
            raise InvalidDashboardArgs(f"Dashboard {name}: " + "; ".join(problems))
        child = pulumi.ResourceOptions(parent=self)
        invoke = pulumi.InvokeOutputOptions(parent=self)
        account = aws.get_caller_identity_output(opts=invoke).account_id
        partition = aws.get_partition_output(opts=invoke).partition
        tags = {**args.tags, "component": "Dashboard"}

        table = keyed_table(
            f"{name}-rollups",
            point_in_time_recovery=args.point_in_time_recovery,
            deletion_protection=args.deletion_protection,
            tags=tags,
            parent=self,
            index_keys=[USAGE_INDEX_KEY] if args.quota else [],
            global_secondary_indexes=[usage_index()] if args.quota else [],
        )
        failed = aws.sqs.Queue(
            f"{name}-failed-events",
            name=f"{name}-failed-events",
            message_retention_seconds=FAILED_EVENT_RETENTION_SECONDS,
            sqs_managed_sse_enabled=True,
            tags=tags,
            opts=child,
        )
        aws.sqs.QueuePolicy(
            f"{name}-failed-events",
            queue_url=failed.url,
            policy=failed.arn.apply(lambda arn: json.dumps(tls_only_queue_policy(arn))),
            opts=child,
        )

        # Aggregator ---------------------------------------------------------------------------------------
        aggregator = python_function(
            f"{name}-aggregator",
            folder=AGGREGATOR_FUNCTION,
            description="Claude Code telemetry from CloudWatch Logs to exact DynamoDB rollups",
            environment={
                "TABLE_NAME": table.name,
                "METRICS_LOG_GROUP": args.metrics_log_group,
                "EVENTS_LOG_GROUP": args.events_log_group,
                "FAILED_QUEUE_URL": failed.url,
                "TIME_ZONE": args.time_zone,
                "ROLLUP_TTL_DAYS": str(args.rollup_ttl_days),
                PRICE_TABLE_VARIABLE: args.prices.to_json(),
            },
            account_id=account,
            parent=self,
            timeout=120,
            memory_size=AGGREGATOR_MEMORY_MB,
            log_retention_days=args.log_retention_days,
            tags=tags,
        )
        aggregator_role_policy = aggregator.allow(
            pulumi.Output.all(table.arn, failed.arn).apply(lambda v: aggregator_statements(v[0], v[1]))
        )
        aws.lambda_.FunctionEventInvokeConfig(
            f"{name}-aggregator",
            function_name=aggregator.function.name,
            maximum_retry_attempts=ASYNC_RETRIES,
            maximum_event_age_in_seconds=MAX_EVENT_AGE_SECONDS,
            destination_config={"on_failure": {"destination": failed.arn}},
            opts=pulumi.ResourceOptions(parent=self, depends_on=[aggregator_role_policy]),
        )
        log_groups = {"metrics": args.metrics_log_group, "events": args.events_log_group}
        filter_name = f"{name}-dashboard"
        for kind, group in log_groups.items():
            permission = aws.lambda_.Permission(
                f"{name}-{kind}-subscription",
                action="lambda:InvokeFunction",
                function=aggregator.function.name,
                principal="logs.amazonaws.com",
                source_account=account,
                source_arn=pulumi.Output.all(partition, account, group).apply(
                    lambda v: log_group_arn(v[0], args.region, v[1], v[2])
                ),
                opts=child,
            )
            aws.cloudwatch.LogSubscriptionFilter(
                f"{name}-{kind}",
                name=filter_name,
                log_group=group,
                filter_pattern="",
                destination_arn=aggregator.function.arn,
                opts=pulumi.ResourceOptions(parent=self, depends_on=[permission, aggregator_role_policy]),
            )

        # Widgets and the dashboard ------------------------------------------------------------------------
        widget = python_function(
            f"{name}-widget",
            folder=WIDGET_FUNCTION,
            description="Claude Code dashboard custom widgets, rendered from the DynamoDB rollups",
            environment={"TABLE_NAME": table.name, "TIME_ZONE": args.time_zone},
            account_id=account,
            parent=self,
            timeout=30,
            memory_size=256,
            log_retention_days=args.log_retention_days,
            tags=tags,
        )
        widget.allow(table.arn.apply(widget_statements))
        health_names = sorted(CollectorHealth.__dataclass_fields__)
        body = pulumi.Output.all(
            widget.function.arn,
            aggregator.function.name,
            widget.function.name,
            table.name,
            failed.name,
            args.metrics_log_group,
            args.events_log_group,
            *[args.collector_health[health] for health in health_names],
        ).apply(
            lambda v: json.dumps(
                dashboard_body(
                    DashboardBodySettings(
                        region=args.region,
                        namespace=args.metrics_namespace,
                        widget_function_arn=v[0],
                        aggregator_function_name=v[1],
                        widget_function_name=v[2],
                        table_name=v[3],
                        failed_queue_name=v[4],
                        metrics_log_group=v[5],
                        events_log_group=v[6],
                        subscription_filter_name=filter_name,
                        collector=CollectorHealth(**dict(zip(health_names, v[7:], strict=True))),
                        promql_teams=args.promql_teams,
                        quota=args.quota,
                    )
                )
            )
        )
        dashboard = aws.cloudwatch.Dashboard(name, dashboard_name=name, dashboard_body=body, opts=child)
        viewer = aws.iam.Policy(
            f"{name}-viewer",
            description="View the Claude Code dashboard: read it and render its custom widgets, nothing more",
            policy=pulumi.Output.all(dashboard.dashboard_arn, widget.function.arn).apply(
                lambda v: json.dumps(viewer_policy(v[0], v[1]))
            ),
            tags=tags,
            opts=child,
        )

        self._alarms(name, args, aggregator.function, widget, table, failed, log_groups, filter_name, tags)

        self.table_name = table.name
        self.table_arn = table.arn
        self.dashboard_name = dashboard.dashboard_name
        self.widget_function_arn = widget.function.arn
        self.failed_queue_url = failed.url
        self.viewer_policy_arn = viewer.arn
        self.register_outputs(
            {
                "tableName": self.table_name,
                "tableArn": self.table_arn,
                "dashboardName": self.dashboard_name,
                "widgetFunctionArn": self.widget_function_arn,
                "failedQueueUrl": self.failed_queue_url,
                "viewerPolicyArn": self.viewer_policy_arn,
            }
        )

    def _alarms(
        self,
        name: str,
        args: DashboardArgs,
        aggregator: aws.lambda_.Function,
        widget: PythonFunction,
        table: aws.dynamodb.Table,
        failed: aws.sqs.Queue,
        log_groups: Mapping[str, pulumi.Input[str]],
        filter_name: str,
        tags: Mapping[str, str],
    ) -> None:
        """Rollups that stop, fall behind or lose data page the operations topic. A widget that fails renders a
        message (not a Lambda error) and logs at ERROR level; a metric filter counts those lines."""
        aws.cloudwatch.LogMetricFilter(
            f"{name}-widget-failures",
            log_group_name=widget.log_group.name,
            pattern='{ $.level = "ERROR" }',
            metric_transformation={
                "name": WIDGET_FAILURES_METRIC,
                "namespace": operations_namespace(args),
                "value": "1",
                "unit": "Count",
            },
            opts=pulumi.ResourceOptions(parent=self),
        )
        function_of = {"FunctionName": aggregator.name}
        alarms = [
            Alarm("aggregator-errors", "The aggregator failed; Lambda retries, then queues the delivery",
                  "AWS/Lambda", "Errors", function_of),
            Alarm("aggregator-backlog", "Deliveries wait more than 10 minutes for the aggregator: the dashboard lags",
                  "AWS/Lambda", "AsyncEventAge", function_of, statistic="Maximum", threshold=BACKLOG_ALARM_MS),
            Alarm("aggregator-dropped", "Lambda dropped deliveries to the aggregator (too old or throttled too long)",
                  "AWS/Lambda", "AsyncEventsDropped", function_of),
            Alarm("widget-errors", "The dashboard's custom widgets fail to render",
                  "AWS/Lambda", "Errors", {"FunctionName": widget.function.name}),
            Alarm("widget-failures", "A custom widget showed an error message instead of data: see its function's log",
                  operations_namespace(args), WIDGET_FAILURES_METRIC, {}),
            Alarm("rollup-write-throttles", "DynamoDB throttled writes to the rollup table",
                  "AWS/DynamoDB", "WriteThrottleEvents", {"TableName": table.name}),
            Alarm("rollup-read-throttles", "DynamoDB throttled widget reads of the rollup table",
                  "AWS/DynamoDB", "ReadThrottleEvents", {"TableName": table.name}),
            Alarm("failed-events", "The failed-event queue holds log events or deliveries the aggregator could not use",
                  "AWS/SQS", "ApproximateNumberOfMessagesVisible", {"QueueName": failed.name}, statistic="Maximum"),
        ]  # fmt: skip
        alarms += [
            Alarm(
                f"{kind}-subscription",
                f"CloudWatch Logs could not deliver {kind} log events to the aggregator",
                "AWS/Logs",
                "DeliveryErrors",
                {"LogGroupName": group, "DestinationType": "Lambda", "FilterName": filter_name},
            )
            for kind, group in log_groups.items()
        ]
        raise_alarms(name, alarms, args.alarm_topic_arn, tags, parent=self)
