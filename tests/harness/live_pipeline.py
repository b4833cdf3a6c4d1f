"""The real client run with a stack's *rendered* managed settings, and what it sent pushed through our pipeline:
helpers for tests/harness/test_live_pipeline.py.

- `managed_settings(plan, parameter)` reads the settings a stack stores for device management from the
  offline preview's plan.json (the SSM parameter's inputs, exactly as `pulumi up` would write them);
  `collector_config(preview)` reads the collector configuration the preview wrote beside it.
- `RenderedSessionSpec` runs a session with those settings as the machine's managed settings
  (/etc/claude-code/managed-settings.json, see claude_client), replacing only the endpoint (and the headers
  helper's path, which names a program installed on developer machines). That needs root and unshare(1) (a
  private mount namespace); elsewhere the same settings go through `--settings`, which the client honours for
  the `env` block and `otelHeadersHelper` alike, and the one test that checks the source fails, saying so.
- `LiveRun` reads what the receiver captured with the fixture readers of tests/harness/record.py. The tests
  replay those requests into the real collector (tests/collector/running.py's `running_collector`, on the
  stack's rendered configuration with file exporters standing in for the AWS ones); `emf_events` /
  `event_log_events` write the collector's output as its AWS exporters would (tests/exporters.py), applying
  none of its processors again.
"""

from __future__ import annotations

import copy
import json
import os
import shutil
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from functools import cached_property
from typing import Any, Literal

import yaml

from offline.preview import PreviewResult
from tests.exporters import cloudwatch_log_events, emf_log_events
from tests.harness.claude_client import SessionResult, SessionSpec
from tests.harness.record import Exports, Point, Record

SSM_PARAMETER = "aws:ssm/parameter:Parameter"
MANAGED_SETTINGS_POSSIBLE = os.geteuid() == 0 and shutil.which("unshare") is not None
SETTINGS_SOURCE: Literal["flag", "managed"] = "managed" if MANAGED_SETTINGS_POSSIBLE else "flag"
ENDPOINT_VARIABLE = "OTEL_EXPORTER_OTLP_ENDPOINT"


def plan_of(preview: PreviewResult) -> dict[str, Any]:
    """The preview's plan.json (resources with their inputs, the stack's outputs)."""
    (plan,) = [path for path in preview.artifacts if path.name == "plan.json"]
    document: dict[str, Any] = json.loads(plan.read_text())
    return document


def managed_settings(plan: Mapping[str, Any], parameter_name: str) -> dict[str, Any]:
    """The Claude Code managed settings stored in the SSM parameter `parameter_name`, as the preview declared it."""
    found = [
        resource["inputs"]
        for resource in plan["resources"]
        if resource["type"] == SSM_PARAMETER and resource["inputs"].get("name") == parameter_name
    ]
    assert len(found) == 1, f"the preview declares {len(found)} SSM parameters named {parameter_name!r}"
    (inputs,) = found
    settings: dict[str, Any] = json.loads(inputs.get("insecureValue") or inputs["value"])
    return settings


def collector_config(preview: PreviewResult) -> dict[str, Any]:
    """The collector configuration of the stack's task definition, as the preview wrote it (collector-*.yaml)."""
    (path,) = [path for path in preview.artifacts if path.name.startswith("collector-") and path.suffix == ".yaml"]
    config: dict[str, Any] = yaml.safe_load(path.read_text())
    return config


@dataclass(frozen=True)
class RenderedSessionSpec(SessionSpec):
    """A session run with a stack's rendered managed settings, given as the machine's managed settings file.

    Only the endpoint is replaced, by the loopback receiver's. The rendered settings name an `otelHeadersHelper`
    installed on developer machines; the session runs `headers_helper` (a script text, written to a temporary
    file) or `helper_command` (a program of this repository) in its place.
    """

    rendered: Mapping[str, Any] = field(default_factory=dict)
    helper_command: str | None = None
    settings_source: Literal["flag", "managed"] = SETTINGS_SOURCE

    def settings(self, endpoint: str, helper_path: str | None) -> dict[str, Any]:
        settings: dict[str, Any] = copy.deepcopy(dict(self.rendered))
        assert settings["env"][ENDPOINT_VARIABLE].startswith("https://")
        # The client needs plain http here because the loopback receiver has no TLS (the rendered value is
        # https://, and the policy pack and claude_settings refuse anything else for a real endpoint).
        settings["env"][ENDPOINT_VARIABLE] = endpoint
        helper = helper_path or self.helper_command
        if helper is not None:
            assert "otelHeadersHelper" in settings, "the rendered settings name no headers helper"
            settings["otelHeadersHelper"] = helper
        return settings


@dataclass(frozen=True)
class LiveRun(Exports):
    """One session's result, read as OTLP JSON with the fixture readers."""

    result: SessionResult

    @cached_property
    def metrics(self) -> list[dict[str, Any]]:
        return [request.body_dict() for request in self.result.of("metrics")]

    @cached_property
    def logs(self) -> list[dict[str, Any]]:
        return [request.body_dict() for request in self.result.of("logs")]

    @property
    def items(self) -> list[Point | Record]:
        """Every metric point and every log record."""
        return [*self.points, *self.records]

    def named(self, metric: str) -> list[Point]:
        return [point for point in self.points if point.name == metric]

    def events(self, name: str) -> list[Record]:
        return [record for record in self.records if record.event == name]

    @property
    def user_id(self) -> str:
        """The installation hash on every point and record (one per session: each has a HOME of its own)."""
        (user,) = {str(item.attributes["user.id"][1]) for item in self.items}
        return user

    @property
    def client_cost(self) -> Decimal:
        """The client's own price of the session (`claude_code.cost.usage`), each point's value as sent."""
        return sum((Decimal(repr(point.value)) for point in self.named("claude_code.cost.usage")), Decimal(0))

    def timestamps_ms(self) -> list[int]:
        """Every point's and record's time, in milliseconds since the epoch (as the client stamped them)."""
        times = [
            int(point["timeUnixNano"]) // 1_000_000
            for request in self.metrics
            for resource in request.get("resourceMetrics", [])
            for scope in resource.get("scopeMetrics", [])
            for metric in scope.get("metrics", [])
            for point in metric.get("sum", {}).get("dataPoints", [])
        ]
        times += [
            int(record.get("timeUnixNano") or record.get("observedTimeUnixNano") or 0) // 1_000_000
            for request in self.logs
            for resource in request.get("resourceLogs", [])
            for scope in resource.get("scopeLogs", [])
            for record in scope.get("logRecords", [])
        ]
        return times


def emf_events(requests: Iterable[Mapping[str, Any]], awsemf: Mapping[str, Any]) -> list[dict[str, Any]]:
    """What the awsemf exporter writes to the metrics log group for the collector's metrics output (OTLP JSON
    after every processor: deployment.environment and `unattributed` are the collector's, not modelled)."""
    return [event for request in requests for event in emf_log_events(request, awsemf, environment=None)]


def event_log_events(requests: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """What the awscloudwatchlogs exporter writes to the events log group for the collector's logs output."""
    return [event for request in requests for event in cloudwatch_log_events(request, environment=None)]
