"""Synthetic Claude Code telemetry for volume (property tests, benchmarks, hand-made cases), in the shapes
the real client sends (tests/fixtures/claude-code/ holds its recordings; test_generator_matches_recordings
compares the two): OTLP data points and log records with identity on every point and record, the client's
units and value types, then written to CloudWatch Logs by the same exporter model as the recordings
(tests/exporters.py).

A Developer with an email stands for a Claude-account login (email, organization.id, account uuid and id
on every point); without one, for an API-key or Bedrock login (the installation hash `user.id` only).
"""

from __future__ import annotations

import base64
import gzip
import itertools
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache
from typing import Any

from lambda_src.common.telemetry import (
    ACCOUNT_ID,
    ACCOUNT_UUID,
    COST_CENTER,
    DEPARTMENT,
    EVENTS,
    METRICS_BY_NAME,
    METRICS_SCOPE,
    ORGANIZATION_ID,
    SERVICE_VERSION,
    SESSION_ID,
    TEAM,
    TERMINAL_TYPE,
    USER_EMAIL,
    USER_ID,
)

METRICS_LOG_GROUP = "/claude-code/test/metrics"
EVENTS_LOG_GROUP = "/claude-code/test/events"
NAMESPACE = "ClaudeCode"

_ids = itertools.count(1)


@dataclass(frozen=True)
class Developer:
    email: str | None = "ada@example.com"
    user_id: str | None = "u-ada"
    account_uuid: str | None = "acc-ada"
    department: str = "engineering"
    team: str = "platform"
    cost_center: str = "CC-100"
    session: str = "s-1"
    app_version: str = "2.0.14"

    def point_attributes(self) -> dict[str, Any]:
        """What the client puts on every data point and log record: identity, then OTEL_RESOURCE_ATTRIBUTES."""
        values: dict[str, Any] = {
            DEPARTMENT: self.department,
            TEAM: self.team,
            COST_CENTER: self.cost_center,
            USER_ID: self.user_id,
            SESSION_ID: self.session,
            "anthropic.provider": "firstParty",
            TERMINAL_TYPE: "vscode",
        }
        if self.email is not None:  # a Claude-account login
            values.update({USER_EMAIL: self.email, ORGANIZATION_ID: "org-1", ACCOUNT_ID: "acct-1"})
        if self.account_uuid is not None:
            values[ACCOUNT_UUID] = self.account_uuid
        return {key: value for key, value in values.items() if value is not None}

    def resource_attributes(self) -> dict[str, Any]:
        return {
            DEPARTMENT: self.department,
            TEAM: self.team,
            COST_CENTER: self.cost_center,
            "host.arch": "arm64",
            "os.type": "darwin",
            "os.version": "24.6.0",
            "service.name": "claude-code",
            SERVICE_VERSION: self.app_version,
        }


def millis(moment: datetime) -> int:
    return int(moment.replace(tzinfo=moment.tzinfo or UTC).timestamp() * 1000)


def otlp_value(value: Any) -> dict[str, Any]:
    if isinstance(value, bool):
        return {"boolValue": value}
    if isinstance(value, int):
        return {"intValue": str(value)}
    if isinstance(value, float):
        return {"doubleValue": value}
    return {"stringValue": str(value)}


def otlp_attributes(values: Mapping[str, Any]) -> list[dict[str, Any]]:
    return [{"key": key, "value": otlp_value(value)} for key, value in values.items()]


def metrics_request(
    at: datetime, developer: Developer, metrics: Mapping[str, float], **attributes: Any
) -> dict[str, Any]:
    """An OTLP ExportMetricsServiceRequest (OTLP JSON) of delta sums, as the client sends them."""
    nanos = str(millis(at) * 1_000_000)
    point_attributes = otlp_attributes({**developer.point_attributes(), **attributes})
    return {
        "resourceMetrics": [
            {
                "resource": {"attributes": otlp_attributes(developer.resource_attributes())},
                "scopeMetrics": [
                    {
                        "scope": {"name": METRICS_SCOPE, "version": developer.app_version},
                        "metrics": [
                            {
                                "name": name,
                                **({"unit": unit} if (unit := _client_unit(name)) else {}),
                                "sum": {
                                    "dataPoints": [
                                        {
                                            "startTimeUnixNano": nanos,
                                            "timeUnixNano": nanos,
                                            "asDouble": float(value),
                                            "attributes": point_attributes,
                                        }
                                    ],
                                    "aggregationTemporality": "AGGREGATION_TEMPORALITY_DELTA",
                                    "isMonotonic": True,
                                },
                            }
                            for name, value in metrics.items()
                        ],
                    }
                ],
            }
        ]
    }


def _client_unit(name: str) -> str | None:
    metric = METRICS_BY_NAME.get(name)
    return metric.client_unit if metric else None


def typed(event: str, attribute: str, value: Any) -> Any:
    """The value in the type the client sends it (contract), when it converts; hostile values stay as given."""
    kind = EVENTS.get(event, {}).get(attribute)
    try:
        if kind == "int" and not isinstance(value, bool):
            return int(value)
        if kind == "double" and not isinstance(value, bool):
            return float(value)
    except (TypeError, ValueError):
        return value
    return str(value) if kind == "string" and isinstance(value, int | float) else value


def logs_request(at: datetime, developer: Developer, name: str, **attributes: Any) -> dict[str, Any]:
    """An OTLP ExportLogsServiceRequest with one Claude Code event, as the client sends it."""
    event_attributes = {
        **developer.point_attributes(),
        "event.name": name,
        "event.timestamp": at.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        "event.sequence": next(_ids),
        **{key: typed(name, key, value) for key, value in attributes.items()},
    }
    nanos = str(millis(at) * 1_000_000)
    return {
        "resourceLogs": [
            {
                "resource": {"attributes": otlp_attributes(developer.resource_attributes())},
                "scopeLogs": [
                    {
                        "scope": {"name": f"{METRICS_SCOPE}.events", "version": developer.app_version},
                        "logRecords": [
                            {
                                "timeUnixNano": nanos,
                                "observedTimeUnixNano": nanos,
                                "body": {"stringValue": f"claude_code.{name}"},
                                "attributes": otlp_attributes(event_attributes),
                            }
                        ],
                    }
                ],
            }
        ]
    }


@cache
def _awsemf() -> dict[str, Any]:
    from components.collector_config import CollectorPipelineSettings, render_collector_config

    settings = CollectorPipelineSettings("eu-west-1", "test", NAMESPACE, METRICS_LOG_GROUP, EVENTS_LOG_GROUP, "none")
    return render_collector_config(settings)["exporters"]["awsemf"]


def emf_event(at: datetime, developer: Developer, metrics: Mapping[str, float], **attributes: Any) -> dict[str, Any]:
    """One EMF log event: the metrics that share these attributes and this time, as awsemf groups them.

    The request is as the client sends it, never through a real collector: the exporter model also models the
    collector's processors here (deployment.environment `test`, `unattributed` organisation)."""
    from tests.exporters import emf_log_events

    (event,) = emf_log_events(metrics_request(at, developer, metrics, **attributes), _awsemf(), environment="test")
    return {"id": f"{next(_ids):056d}", **event}


def claude_event(at: datetime, developer: Developer, name: str, **attributes: Any) -> dict[str, Any]:
    """One Claude Code event as the awscloudwatchlogs exporter writes it (identity on the record).

    As in `emf_event`, the exporter model also models the collector's processors on this client-shaped request."""
    from tests.exporters import cloudwatch_log_events

    (event,) = cloudwatch_log_events(logs_request(at, developer, name, **attributes), environment="test")
    return {"id": f"{next(_ids):056d}", **event}


def api_request(at: datetime, developer: Developer, model: str, tokens: Sequence[int], cost: float) -> dict[str, Any]:
    input_tokens, output_tokens, cache_read, cache_creation = tokens
    return claude_event(
        at,
        developer,
        "api_request",
        model=model,
        cost_usd=cost,
        duration_ms=1200,
        input_tokens=input_tokens,
        output_tokens=output_tokens,
        cache_read_tokens=cache_read,
        cache_creation_tokens=cache_creation,
    )


def log_event(at: datetime, message: str) -> dict[str, Any]:
    return {"id": f"{next(_ids):056d}", "timestamp": millis(at), "message": message}


def logs_batch(log_group: str, events: Sequence[Mapping[str, Any]]) -> bytes:
    """A subscription delivery: gzip of the CloudWatch Logs DATA_MESSAGE."""
    message = {
        "messageType": "DATA_MESSAGE",
        "owner": "123456789012",
        "logGroup": log_group,
        "logStream": "claude-code",
        "subscriptionFilters": ["analytics"],
        "logEvents": list(events),
    }
    return gzip.compress(json.dumps(message).encode())


def control_message(log_group: str) -> bytes:
    message = {
        "messageType": "CONTROL_MESSAGE",
        "owner": "CloudwatchLogs",
        "logGroup": "",
        "logStream": "",
        "subscriptionFilters": [],
        "logEvents": [
            {"id": "", "timestamp": 1, "message": "CWL CONTROL MESSAGE: Checking health of destination Firehose."}
        ],
    }
    return gzip.compress(json.dumps(message).encode())


def subscription_event(payload: bytes) -> dict[str, Any]:
    """How CloudWatch Logs invokes a Lambda subscription: the gzip batch, base64-encoded, under awslogs.data."""
    return {"awslogs": {"data": base64.b64encode(payload).decode()}}


def arrival_of(payload: bytes) -> int:
    """When Firehose would have received a delivery: a minute after its newest log event."""
    try:
        events = json.loads(gzip.decompress(payload))["logEvents"]
        return max(int(event["timestamp"]) for event in events) + 60_000
    except (OSError, EOFError, ValueError, KeyError, TypeError):
        return 1_767_225_600_000  # not a readable delivery: any arrival will do


def firehose_event(payloads: Sequence[bytes], stream: str = "ccm-test-analytics-metrics") -> dict[str, Any]:
    return {
        "invocationId": "invocation-1",
        "deliveryStreamArn": f"arn:aws:firehose:eu-west-1:123456789012:deliverystream/{stream}",
        "region": "eu-west-1",
        "records": [
            {
                "recordId": f"record-{index}",
                "approximateArrivalTimestamp": arrival_of(payload),
                "data": base64.b64encode(payload).decode(),
            }
            for index, payload in enumerate(payloads)
        ],
    }
