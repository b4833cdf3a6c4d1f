"""Violates collector-metrics-have-no-per-user-dimensions: the collector publishes a metric per user.email."""

import pulumi_aws as aws
import yaml

config = {
    "extensions": {"oidc": {"providers": [{"issuer_url": "https://idp.example.com", "audience": "claude-code"}]}},
    "receivers": {"otlp": {"protocols": {"http": {"endpoint": "0.0.0.0:4318", "auth": {"authenticator": "oidc"}}}}},
    "exporters": {
        "awsemf": {
            "namespace": "ClaudeCode",
            "dimension_rollup_option": "NoDimensionRollup",
            "metric_declarations": [
                {"metric_name_selectors": ["^claude_code\\.cost\\.usage$"], "dimensions": [["user.email", "model"]]}
            ],
        }
    },
    "service": {"extensions": ["oidc"], "pipelines": {"metrics": {"receivers": ["otlp"], "exporters": ["awsemf"]}}},
}
aws.ssm.Parameter("collector-config", type="String", value=yaml.safe_dump(config))
