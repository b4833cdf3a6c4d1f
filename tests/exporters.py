"""What the collector writes to CloudWatch Logs for recorded OTLP requests, as our rendered configuration
(identity mode `none`) sets its exporters: awsemf (EMF, NoDimensionRollup, resource attributes as labels,
the contract's units) and awscloudwatchlogs (raw_log false).

This is a model, kept small and checked against the awsemf and awscloudwatchlogs sources' output shapes:
the real collector replaces it wherever the tests can run one (tests/collector/). The OTLP requests it reads
are either the real collector's output (its file exporter standing in for the AWS ones: tests/collector/,
tests/harness/test_live_pipeline.py), or what a client sends: recordings of the real Claude Code client
(tests/fixtures/claude-code/) and the synthetic requests of tests/telemetry.py.

`environment` says which: None for the collector's output, whose processors already ran and are not applied
again (a collector that stopped setting `deployment.environment` or `unattributed` must show); the stack's
name for what a client sends, where `collector_resource` models the rendered processors first.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import botocore.session

from components.collector_config import UNATTRIBUTED, emf_dimension_sets
from lambda_src.common.telemetry import METRICS_BY_NAME, ORGANISATION_ATTRIBUTES

FIXTURES = Path(__file__).parent / "fixtures" / "claude-code"


def recorded_sessions(version: str | None = None) -> dict[str, Path]:
    """Session name -> its folder of recordings, for the newest recorded client version (or `version`)."""
    root = FIXTURES / (version or max(path.name for path in FIXTURES.iterdir() if path.is_dir()))
    return {path.name: path for path in sorted(root.iterdir()) if path.is_dir()}


def load(path: Path) -> Any:
    return json.loads(path.read_text())


def any_value(value: Mapping[str, Any]) -> Any:
    """An OTLP JSON AnyValue as a plain value (int64 arrives as text in OTLP JSON)."""
    if "stringValue" in value:
        return value["stringValue"]
    if "intValue" in value:
        return int(value["intValue"])
    if "doubleValue" in value:
        return float(value["doubleValue"])
    if "boolValue" in value:
        return bool(value["boolValue"])
    if "arrayValue" in value:
        return [any_value(v) for v in value["arrayValue"].get("values", [])]
    if "kvlistValue" in value:
        return attributes(value["kvlistValue"].get("values", []))
    return None


def attributes(pairs: list[dict[str, Any]]) -> dict[str, Any]:
    return {pair["key"]: any_value(pair.get("value", {})) for pair in pairs}


def label_text(value: Any) -> str:
    """awsemf writes every label as a string."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return value
    return json.dumps(value) if isinstance(value, list | dict) else str(value)


def collector_resource(resource: dict[str, Any], environment: str | None) -> dict[str, Any]:
    """The rendered processors on the resource: deployment.environment, and `unattributed` organisation.

    A model of the collector, for requests as a client sends them; `environment` None means the request is
    the real collector's output, and the resource is kept exactly as the collector wrote it."""
    if environment is None:
        return dict(resource)
    processed = {**resource, "deployment.environment": environment}
    for name in ORGANISATION_ATTRIBUTES:
        processed.setdefault(name, UNATTRIBUTED)
    return processed


def data_points(request: Mapping[str, Any]) -> Iterator[tuple[str, dict[str, Any], dict[str, Any], float, int]]:
    """(metric, resource attributes, point attributes, value, time in ms) of every sum data point."""
    for resource_metrics in request.get("resourceMetrics", []):
        resource = attributes(resource_metrics.get("resource", {}).get("attributes", []))
        for scope_metrics in resource_metrics.get("scopeMetrics", []):
            for metric in scope_metrics.get("metrics", []):
                for point in metric.get("sum", {}).get("dataPoints", []):
                    value = point.get("asDouble", point.get("asInt", 0))
                    yield (
                        metric["name"],
                        resource,
                        attributes(point.get("attributes", [])),
                        float(value),
                        int(point["timeUnixNano"]) // 1_000_000,
                    )


def emf_log_events(
    request: Mapping[str, Any], exporter: Mapping[str, Any], *, environment: str | None
) -> list[dict[str, Any]]:
    """awsemf: one EMF document per (labels, time), with the declared dimension sets that the labels fill.

    `environment`: None for the real collector's output; else the stack's name, and the collector's processors
    are modelled first (`collector_resource`)."""
    groups: dict[tuple[tuple[tuple[str, str], ...], int], dict[str, float]] = defaultdict(dict)
    for name, resource, point, value, millis in data_points(request):
        labels = {k: label_text(v) for k, v in {**collector_resource(resource, environment), **point}.items()}
        key = (tuple(sorted(labels.items())), millis)
        groups[key][name] = groups[key].get(name, 0.0) + value
    events = []
    for (label_items, millis), metrics in groups.items():
        document: dict[str, Any] = dict(label_items)
        document.update(metrics)
        directives = []
        for name in metrics:
            sets = emf_dimension_sets(exporter, name, dict(label_items))
            if sets:
                unit = METRICS_BY_NAME[name].cloudwatch_unit if name in METRICS_BY_NAME else "None"
                directives.append(
                    {
                        "Namespace": exporter["namespace"],
                        "Dimensions": [list(s) for s in sets],
                        "Metrics": [{"Name": name, "Unit": unit}],
                    }
                )
        document["_aws"] = {"Timestamp": millis, "CloudWatchMetrics": directives}
        document["Version"] = "1"
        events.append({"timestamp": millis, "message": json.dumps(document)})
    return events


def cloudwatch_log_events(request: Mapping[str, Any], *, environment: str | None) -> list[dict[str, Any]]:
    """awscloudwatchlogs with raw_log false: one JSON object per log record.

    `environment`: None for the real collector's output; else the stack's name, and the collector's processors
    are modelled first (`collector_resource`)."""
    events = []
    for resource_logs in request.get("resourceLogs", []):
        resource = collector_resource(attributes(resource_logs.get("resource", {}).get("attributes", [])), environment)
        for scope_logs in resource_logs.get("scopeLogs", []):
            for record in scope_logs.get("logRecords", []):
                nanos = int(record.get("timeUnixNano") or record.get("observedTimeUnixNano") or 0)
                body = {
                    "body": any_value(record.get("body", {})),
                    "severity_number": record.get("severityNumber", 0),
                    "attributes": attributes(record.get("attributes", [])),
                    "resource": resource,
                }
                if record.get("severityText"):
                    body["severity_text"] = record["severityText"]
                events.append({"timestamp": nanos // 1_000_000, "message": json.dumps(body)})
    return events


def with_ids(events: list[dict[str, Any]], start: int = 1) -> list[dict[str, Any]]:
    """CloudWatch Logs gives each event an id (56 digits) when it is stored."""
    return [{"id": f"{start + index:056d}", **event} for index, event in enumerate(events)]


def cloudwatch_standard_units() -> set[str]:
    """The `StandardUnit` enum of the CloudWatch API model that botocore ships: the units EMF accepts."""
    model = botocore.session.get_session().get_service_model("cloudwatch")
    return set(model.shape_for("StandardUnit").enum)
