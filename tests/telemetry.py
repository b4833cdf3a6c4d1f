"""Claude Code telemetry as the collector writes it to CloudWatch Logs, and as subscriptions deliver it.

Built from Claude Code's documented metric names, event names and attributes (code.claude.com/docs/en/
monitoring-usage) and the exporters' formats (awsemf: EMF JSON with every attribute as a string field;
awscloudwatchlogs: `{"body", "severity_text", "attributes", "resource"}`), so tests never carry copied blobs.
"""

from __future__ import annotations

import base64
import gzip
import itertools
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

METRICS_LOG_GROUP = "/claude-code/test/metrics"
EVENTS_LOG_GROUP = "/claude-code/test/events"
NAMESPACE = "ClaudeCode"

UNITS = {
    "claude_code.session.count": "Count",
    "claude_code.lines_of_code.count": "Count",
    "claude_code.pull_request.count": "Count",
    "claude_code.commit.count": "Count",
    "claude_code.cost.usage": "None",
    "claude_code.token.usage": "Count",
    "claude_code.code_edit_tool.decision": "Count",
    "claude_code.active_time.total": "Seconds",
}

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

    def attributes(self) -> dict[str, str]:
        values = {
            "user.email": self.email,
            "user.id": self.user_id,
            "user.account_uuid": self.account_uuid,
            "organization.id": "org-1",
            "session.id": self.session,
            "app.version": self.app_version,
            "terminal.type": "vscode",
            "department": self.department,
            "team.id": self.team,
            "cost_center": self.cost_center,
            "service.name": "claude-code",
            "service.version": self.app_version,
            "os.type": "darwin",
            "host.arch": "arm64",
            "deployment.environment": "test",
        }
        return {key: value for key, value in values.items() if value is not None}


def millis(moment: datetime) -> int:
    return int(moment.replace(tzinfo=moment.tzinfo or UTC).timestamp() * 1000)


def emf_event(at: datetime, developer: Developer, metrics: Mapping[str, float], **attributes: str) -> dict[str, Any]:
    """One EMF log event: the metrics that share these attributes and this time, like awsemf groups them."""
    document: dict[str, Any] = {**developer.attributes(), **attributes, **metrics}
    document["_aws"] = {
        "Timestamp": millis(at),
        "CloudWatchMetrics": [
            {
                "Namespace": NAMESPACE,
                "Dimensions": [["department"]],
                "Metrics": [{"Name": name, "Unit": UNITS.get(name, "None")} for name in metrics],
            }
        ],
    }
    document["Version"] = "1"
    return log_event(at, json.dumps(document))


def claude_event(at: datetime, developer: Developer, name: str, **attributes: Any) -> dict[str, Any]:
    """One Claude Code event as the awscloudwatchlogs exporter writes it (identity on the resource)."""
    resource = developer.attributes()
    event_attributes = {
        "event.name": name,
        "event.timestamp": at.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        "event.sequence": next(_ids),
        **attributes,
    }
    record = {
        "body": f"claude_code.{name}",
        "severity_number": 9,
        "attributes": event_attributes,
        "resource": resource,
        "scope": {"name": "com.anthropic.claude_code.events", "version": "2.0.14"},
    }
    return log_event(at, json.dumps(record))


def api_request(at: datetime, developer: Developer, model: str, tokens: Sequence[int], cost: float) -> dict[str, Any]:
    input_tokens, output_tokens, cache_read, cache_creation = tokens
    return claude_event(
        at,
        developer,
        "api_request",
        model=model,
        cost_usd=str(cost),
        duration_ms="1200",
        input_tokens=str(input_tokens),
        output_tokens=str(output_tokens),
        cache_read_tokens=str(cache_read),
        cache_creation_tokens=str(cache_creation),
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


def firehose_event(payloads: Sequence[bytes], stream: str = "ccm-test-analytics-metrics") -> dict[str, Any]:
    return {
        "invocationId": "invocation-1",
        "deliveryStreamArn": f"arn:aws:firehose:eu-west-1:123456789012:deliverystream/{stream}",
        "region": "eu-west-1",
        "records": [
            {
                "recordId": f"record-{index}",
                "approximateArrivalTimestamp": 1_767_225_600_000,
                "data": base64.b64encode(payload).decode(),
            }
            for index, payload in enumerate(payloads)
        ],
    }
