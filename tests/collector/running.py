"""The real collector binary run on loopback: a rendered configuration with loopback ports and file exporters
standing in for the AWS ones (which the Go module proxy here does not serve), started, checked healthy and
stopped by the test; OTLP requests to send it, and readers of what it wrote. Shared by the collector's own
tests, Path A end to end, the live pipeline and the token helper's tests."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord, ResourceLogs, ScopeLogs
from opentelemetry.proto.metrics.v1.metrics_pb2 import (
    AggregationTemporality,
    Metric,
    NumberDataPoint,
    ResourceMetrics,
    ScopeMetrics,
    Sum,
)
from opentelemetry.proto.resource.v1.resource_pb2 import Resource

from components.collector_config import CONFIG_ENV_VAR
from tests.clock import DEFAULT_START
from tests.harness.record import Exports

TIMEOUT_SECONDS = 60


def collector_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """As in an ECS task, the region comes from AWS_REGION; never ask EC2 metadata (no network here)."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("AWS_")}
    env.update({"AWS_REGION": "eu-west-1", "AWS_EC2_METADATA_DISABLED": "true"})
    env.update(extra or {})
    return env


def copied(config: Mapping[str, Any]) -> dict[str, Any]:
    copy: dict[str, Any] = json.loads(json.dumps(config))
    return copy


def dump(config: Mapping[str, Any]) -> str:
    return yaml.safe_dump(dict(config), sort_keys=False, width=1000)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass(frozen=True)
class RunningCollector:
    otlp_http: str
    metrics_file: Path
    events_file: Path


def loopback_config(original: Mapping[str, Any], out: Path) -> tuple[dict[str, Any], RunningCollector, int]:
    """Loopback ports and file exporters (the stand-ins) instead of 0.0.0.0 and CloudWatch; no own metrics."""
    config = copied(original)
    http_port, health_port = free_port(), free_port()
    protocols = config["receivers"]["otlp"]["protocols"]
    protocols["http"]["endpoint"] = f"127.0.0.1:{http_port}"
    if "grpc" in protocols:
        protocols["grpc"]["endpoint"] = f"127.0.0.1:{free_port()}"
    config["extensions"]["health_check"]["endpoint"] = f"127.0.0.1:{health_port}"
    running = RunningCollector(f"http://127.0.0.1:{http_port}", out / "metrics.jsonl", out / "events.jsonl")
    config["exporters"] = {
        "file/metrics": {"path": str(running.metrics_file)},
        "file/events": {"path": str(running.events_file)},
    }
    pipelines = config["service"]["pipelines"]
    pipelines["metrics"]["exporters"] = ["file/metrics"]
    pipelines["logs"]["exporters"] = ["file/events"]
    config["service"]["telemetry"]["metrics"] = {"level": "none"}
    return config, running, health_port


@contextmanager
def running_collector(binary: Path, config: Mapping[str, Any], out: Path) -> Iterator[RunningCollector]:
    """Start the collector, wait for its health check, and stop it (SIGTERM flushes the batches) on exit."""
    loopback, running, health_port = loopback_config(config, out)
    log = out / "collector.log"
    with log.open("w") as log_file:
        process = subprocess.Popen(
            [str(binary), f"--config=env:{CONFIG_ENV_VAR}"],
            env=collector_env({CONFIG_ENV_VAR: dump(loopback)}),
            stdout=log_file,
            stderr=subprocess.STDOUT,
        )
        try:
            wait_healthy(process, f"http://127.0.0.1:{health_port}/", log)
            yield running
            process.send_signal(signal.SIGTERM)
            assert process.wait(timeout=TIMEOUT_SECONDS) == 0, log.read_text()
        finally:
            if process.poll() is None:
                process.kill()
                process.wait(timeout=TIMEOUT_SECONDS)


def wait_healthy(process: subprocess.Popen[bytes], url: str, log: Path, attempts: int = 600) -> None:
    for _ in range(attempts):
        assert process.poll() is None, f"the collector exited with {process.returncode}:\n{log.read_text()}"
        try:
            with urllib.request.urlopen(url, timeout=5) as response:  # noqa: S310 - loopback
                if response.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError):
            pass
        time.sleep(0.05)
    pytest.fail(f"the collector's health check did not answer:\n{log.read_text()}")


def post(url: str, body: bytes, headers: Mapping[str, str]) -> None:
    request = urllib.request.Request(  # noqa: S310 - loopback
        url, data=body, headers={"Content-Type": "application/x-protobuf", **headers}, method="POST"
    )
    with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310 - loopback
        assert response.status == 200


def attributes(values: Mapping[str, str]) -> list[KeyValue]:
    return [KeyValue(key=key, value=AnyValue(string_value=value)) for key, value in values.items()]


FORGED = {
    "user.email": "mallory@example.com",
    "user.id": "u-mallory",
    "department": "finance",
    "team.id": "not-my-team",
    "cost_center": "CC-999",
    "organization.id": "org-1",
    "session.id": "s-1",
    "service.name": "claude-code",
}
START_NANOS = int(DEFAULT_START.timestamp()) * 1_000_000_000


def metrics_request() -> bytes:
    point = NumberDataPoint(
        as_double=1234,
        start_time_unix_nano=START_NANOS,
        time_unix_nano=START_NANOS + 60_000_000_000,
        attributes=attributes({"type": "input", "model": "claude-sonnet-4-5", "user.email": "mallory@example.com"}),
    )
    metric = Metric(
        name="claude_code.token.usage",
        unit="tokens",
        sum=Sum(
            data_points=[point],
            aggregation_temporality=AggregationTemporality.AGGREGATION_TEMPORALITY_DELTA,
            is_monotonic=True,
        ),
    )
    return ExportMetricsServiceRequest(
        resource_metrics=[
            ResourceMetrics(
                resource=Resource(attributes=attributes(FORGED)),
                scope_metrics=[ScopeMetrics(metrics=[metric])],
            )
        ]
    ).SerializeToString()


def logs_request() -> bytes:
    record = LogRecord(
        time_unix_nano=START_NANOS,
        body=AnyValue(string_value="claude_code.user_prompt"),
        attributes=attributes({"event.name": "user_prompt", "prompt_length": "42", "user.email": "eve@example.com"}),
    )
    return ExportLogsServiceRequest(
        resource_logs=[
            ResourceLogs(resource=Resource(attributes=attributes(FORGED)), scope_logs=[ScopeLogs(log_records=[record])])
        ]
    ).SerializeToString()


def otlp_attributes(values: list[dict[str, Any]]) -> dict[str, Any]:
    return {item["key"]: next(iter(item["value"].values()), None) for item in values}


def exported(path: Path, kind: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """(resource attributes, record attributes) of the one data point or log record the file exporter wrote."""
    lines = requests_in(path)
    if kind == "metrics":
        resources = [r for line in lines for r in line["resourceMetrics"]]
        records = [
            point
            for r in resources
            for scope in r["scopeMetrics"]
            for metric in scope["metrics"]
            for point in metric["sum"]["dataPoints"]
        ]
    else:
        resources = [r for line in lines for r in line["resourceLogs"]]
        records = [record for r in resources for scope in r["scopeLogs"] for record in scope["logRecords"]]
    assert len(resources) == 1 and len(records) == 1, lines
    return otlp_attributes(resources[0]["resource"]["attributes"]), otlp_attributes(records[0].get("attributes", []))


def requests_in(path: Path) -> list[dict[str, Any]]:
    """The file exporter's output: one OTLP JSON export request per line."""
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


@dataclass(frozen=True)
class Task(Exports):
    """One collector task's output."""

    collector: RunningCollector

    @property
    def metrics(self) -> list[dict[str, Any]]:
        return requests_in(self.collector.metrics_file)

    @property
    def logs(self) -> list[dict[str, Any]]:
        return requests_in(self.collector.events_file)

    def texts(self) -> dict[str, str]:
        """Everything the task wrote: its metrics and events output and its own log (`collector.log`)."""
        files = (
            self.collector.metrics_file,
            self.collector.events_file,
            self.collector.metrics_file.parent / "collector.log",
        )
        return {path.name: path.read_text() for path in files if path.exists()}
