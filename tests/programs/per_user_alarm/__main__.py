"""Violates alarms-have-no-per-user-dimensions: an alarm on one developer's cost."""

import pulumi_aws as aws

aws.cloudwatch.MetricAlarm(
    "alice-cost",
    namespace="ClaudeCode",
    metric_name="claude_code.cost.usage",
    dimensions={"user.email": "alice@example.com"},
    statistic="Sum",
    period=3600,
    evaluation_periods=1,
    threshold=50,
    comparison_operator="GreaterThanThreshold",
)
