"""Violates log-metric-filters-have-no-per-user-dimensions: a metric per user from the events log."""

import pulumi_aws as aws

events = aws.cloudwatch.LogGroup("events", retention_in_days=30)
aws.cloudwatch.LogMetricFilter(
    "api-requests-per-user",
    log_group_name=events.name,
    pattern='{ $.body = "claude_code.api_request" }',
    metric_transformation={
        "name": "ApiRequests",
        "namespace": "ClaudeCode",
        "value": "1",
        "dimensions": {"User": "$.resource.user.email"},
    },
)
