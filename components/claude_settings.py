"""Claude Code managed settings: the `env` block administrators distribute to developer machines.

Pure functions; components store the result where device management fetches it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

METRICS_EXPORT_INTERVAL_MS = 60_000
LOGS_EXPORT_INTERVAL_MS = 5_000
# Managed settings win only for the keys they set; the developer's environment supplies the rest. So both
# paths pin everything the pipeline depends on: the exporters, the protocol, and delta temporality (the
# rollups sum deltas; a cumulative client behind several collector tasks would be counted once per task).
DELTA_TEMPORALITY = {"OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE": "delta"}

# W3C baggage: a key is a token, a value is baggage-octets (printable ASCII without space, `"`, `,`, `;`, `\`).
BAGGAGE_KEY_PATTERN = r"^[A-Za-z0-9!#$%&'*+.^_`|~-]{1,128}$"
BAGGAGE_VALUE_PATTERN = r"^[\x21\x23-\x2B\x2D-\x3A\x3C-\x5B\x5D-\x7E]{1,256}$"


def resource_attributes_value(attributes: Mapping[str, str]) -> str:
    """`OTEL_RESOURCE_ATTRIBUTES` text: `key=value` pairs joined by commas, keys sorted."""
    for key, value in attributes.items():
        if not re.fullmatch(BAGGAGE_KEY_PATTERN, key) or not re.fullmatch(BAGGAGE_VALUE_PATTERN, value):
            raise ValueError(
                f"resource attribute {key!r}={value!r} is not valid W3C baggage (no spaces, commas, semicolons, "
                "quotes or backslashes)"
            )
    return ",".join(f"{key}={attributes[key]}" for key in sorted(attributes))


def collector_managed_settings(
    endpoint: str, resource_attributes: Mapping[str, str], headers_helper: str | None
) -> dict[str, Any]:
    """Managed settings for Path A: metrics and events over OTLP http/protobuf to the collector."""
    if not endpoint.startswith("https://"):
        raise ValueError(f"the collector endpoint must be https://, got {endpoint!r}")
    env = {
        "CLAUDE_CODE_ENABLE_TELEMETRY": "1",
        "OTEL_METRICS_EXPORTER": "otlp",
        "OTEL_LOGS_EXPORTER": "otlp",
        "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
        "OTEL_EXPORTER_OTLP_ENDPOINT": endpoint,
        "OTEL_METRIC_EXPORT_INTERVAL": str(METRICS_EXPORT_INTERVAL_MS),
        "OTEL_LOGS_EXPORT_INTERVAL": str(LOGS_EXPORT_INTERVAL_MS),
        **DELTA_TEMPORALITY,
    }
    if resource_attributes:
        env["OTEL_RESOURCE_ATTRIBUTES"] = resource_attributes_value(resource_attributes)
    settings: dict[str, Any] = {"env": env}
    if headers_helper:
        settings["otelHeadersHelper"] = headers_helper
    return settings


INGEST_SECRET_VARIABLE = "CLAUDE_CODE_INGEST_SECRET_ARN"  # noqa: S105 (a variable name)


def direct_ingest_managed_settings(
    region: str, resource_attributes: Mapping[str, str], headers_helper: str, secret_arn: str
) -> dict[str, Any]:
    """Managed settings for Path B: metrics over OTLP http/protobuf straight to CloudWatch with an API key.

    The key never appears here: the headers helper reads it from Secrets Manager (the secret's ARN is in
    the environment) and prints the Authorization header. Events (logs) are off: CloudWatch's OTLP endpoint
    here takes metrics only.

    What these settings can and cannot keep out of the CloudWatch series: the resource attributes carry
    team, department and cost center only, and session id and account uuid are off. But Claude Code puts
    `user.id` (an installation hash) on every data point and it cannot be turned off, and with a
    Claude-account login also `user.email` and `organization.id`: every series on this path is per
    installation. Organisations that forbid per-person labels use Path A, where the collector drops them.
    """
    if any(key.startswith("user.") for key in resource_attributes):
        raise ValueError(f"direct-ingest resource attributes must not name a person, got {sorted(resource_attributes)}")
    return {
        "env": {
            "CLAUDE_CODE_ENABLE_TELEMETRY": "1",
            "OTEL_METRICS_EXPORTER": "otlp",
            "OTEL_LOGS_EXPORTER": "none",
            "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
            "OTEL_EXPORTER_OTLP_ENDPOINT": f"https://monitoring.{region}.amazonaws.com",
            "OTEL_METRIC_EXPORT_INTERVAL": str(METRICS_EXPORT_INTERVAL_MS),
            "OTEL_RESOURCE_ATTRIBUTES": resource_attributes_value(resource_attributes),
            "OTEL_METRICS_INCLUDE_SESSION_ID": "false",
            "OTEL_METRICS_INCLUDE_ACCOUNT_UUID": "false",
            **DELTA_TEMPORALITY,
            INGEST_SECRET_VARIABLE: secret_arn,
        },
        "otelHeadersHelper": headers_helper,
    }
