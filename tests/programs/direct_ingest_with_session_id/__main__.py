"""Violates direct-ingest-settings-exclude-users: direct-ingest settings keep the session id in every series."""

import json

import pulumi_aws as aws

settings = {
    "env": {
        "CLAUDE_CODE_ENABLE_TELEMETRY": "1",
        "OTEL_METRICS_EXPORTER": "otlp",
        "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
        "OTEL_EXPORTER_OTLP_ENDPOINT": "https://monitoring.eu-west-1.amazonaws.com",
        "OTEL_RESOURCE_ATTRIBUTES": "team.id=platform",
        "OTEL_METRICS_INCLUDE_ACCOUNT_UUID": "false",
    },
    "otelHeadersHelper": "/usr/local/bin/claude-cloudwatch-key",
}
aws.s3.BucketObjectv2(
    "platform-settings", bucket="device-management", key="platform.json", content=json.dumps(settings)
)
