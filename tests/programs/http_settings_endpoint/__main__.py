"""Violates claude-code-settings-use-https: managed settings send telemetry to an http:// endpoint."""

import json

import pulumi_aws as aws

settings = {
    "env": {
        "CLAUDE_CODE_ENABLE_TELEMETRY": "1",
        "OTEL_METRICS_EXPORTER": "otlp",
        "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
        "OTEL_EXPORTER_OTLP_ENDPOINT": "http://otel.example.com:4318",
    }
}
aws.ssm.Parameter("managed-settings", type="String", value=json.dumps(settings))
