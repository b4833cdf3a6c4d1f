"""Managed settings for Claude Code: the env block for the collector path."""

from __future__ import annotations

import pytest

from components.claude_settings import (
    collector_managed_settings,
    direct_ingest_managed_settings,
    resource_attributes_value,
)


def test_collector_settings_send_metrics_and_events_over_https() -> None:
    settings = collector_managed_settings(
        "https://otel.example.com", {"team.id": "platform", "department": "eng"}, "/usr/local/bin/token"
    )
    assert settings == {
        "env": {
            "CLAUDE_CODE_ENABLE_TELEMETRY": "1",
            "OTEL_METRICS_EXPORTER": "otlp",
            "OTEL_LOGS_EXPORTER": "otlp",
            "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
            "OTEL_EXPORTER_OTLP_ENDPOINT": "https://otel.example.com",
            "OTEL_METRIC_EXPORT_INTERVAL": "60000",
            "OTEL_LOGS_EXPORT_INTERVAL": "5000",
            "OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE": "delta",
            "OTEL_RESOURCE_ATTRIBUTES": "department=eng,team.id=platform",
        },
        "otelHeadersHelper": "/usr/local/bin/token",
    }


def test_plain_http_endpoint_is_refused() -> None:
    with pytest.raises(ValueError, match="must be https://"):
        collector_managed_settings("http://otel.example.com", {}, None)


@pytest.mark.parametrize("value", ["My Company", "a,b", 'say"hi"', "semi;colon"])
def test_resource_attribute_values_must_be_valid_baggage(value: str) -> None:
    with pytest.raises(ValueError, match="W3C baggage"):
        resource_attributes_value({"organization": value})


def test_no_headers_helper_and_no_attributes_leave_the_keys_out() -> None:
    settings = collector_managed_settings("https://otel.example.com", {}, None)
    assert "otelHeadersHelper" not in settings
    assert "OTEL_RESOURCE_ATTRIBUTES" not in settings["env"]


def test_direct_ingest_settings_pin_metrics_only_and_delta_and_keep_the_key_out() -> None:
    settings = direct_ingest_managed_settings(
        "eu-west-1", {"team.id": "platform"}, "/usr/local/bin/claude-cloudwatch-key", "arn:aws:secretsmanager:x"
    )
    env = settings["env"]
    assert env["OTEL_METRICS_EXPORTER"] == "otlp" and env["OTEL_LOGS_EXPORTER"] == "none"
    assert env["OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE"] == "delta"
    assert env["OTEL_METRICS_INCLUDE_SESSION_ID"] == env["OTEL_METRICS_INCLUDE_ACCOUNT_UUID"] == "false"
    assert env["OTEL_EXPORTER_OTLP_ENDPOINT"] == "https://monitoring.eu-west-1.amazonaws.com"
    assert not any("Bearer" in value for value in env.values())


def test_direct_ingest_refuses_person_attributes() -> None:
    with pytest.raises(ValueError, match="must not name a person"):
        direct_ingest_managed_settings("eu-west-1", {"user.email": "a@b.c"}, "/helper", "arn")
