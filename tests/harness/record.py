"""Record what the real Claude Code client sends: `python -m tests.harness.record` (`make record`).

Runs the sessions of SESSIONS against the fake API and the OTLP receiver (tests/harness/claude_client.py)
and writes, under tests/fixtures/claude-code/<version>/:

- `sessions.json`: one entry per session: what it asked (model, prompt, settings and how they were given,
  the scripted turns), how the client exited, and a summary of the API requests it made;
- `<session>/metrics.json`, `<session>/logs.json`: each OTLP export request, decoded and written as OTLP
  JSON (protobuf's `json_format.MessageToDict`: camelCase names, 64-bit integers as strings);
- `<session>/headers.json`: the headers of each export request (Authorization values other than the test
  helper's fixed `Bearer test-token` redacted; the receiver's port replaced by `<port>`);
- `<session>/ledger.json`: what the fake billed, request by request.

The helpers below (`metric_points`, `log_records`, `shape`) read that OTLP JSON, so the tests use the same
code on fixtures and on live runs.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import sys
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from tests.harness.claude_client import (
    CLIENT_VERSION,
    HEADERS_HELPER_OK,
    PROJECT_ROOT,
    TOOL_SCRIPT,
    SessionResult,
    SessionSpec,
    run_session,
)
from tests.harness.fake_anthropic import ApiError, Text, Tools, ToolUse, Turn

FIXTURES = PROJECT_ROOT / "tests" / "fixtures" / "claude-code" / CLIENT_VERSION
TEST_TOKEN = "Bearer test-token"
DATED_MODEL = "claude-sonnet-4-5-20250929"

CARDINALITY_OFF = {"OTEL_METRICS_INCLUDE_SESSION_ID": "false", "OTEL_METRICS_INCLUDE_ACCOUNT_UUID": "false"}


@dataclass(frozen=True)
class Recording:
    name: str
    description: str
    spec: SessionSpec


SESSIONS: tuple[Recording, ...] = (
    Recording(
        "dated-model",
        "A one-turn text session with a dated model id asked on the command line (--model).",
        SessionSpec(prompt="Say hello.", script=(Text("Hello!"),), model=DATED_MODEL),
    ),
    Recording(
        "default-model",
        "A one-turn text session without --model: the client's default (undated) model id.",
        SessionSpec(prompt="Say hello.", script=(Text("Hello!"),)),
    ),
    Recording(
        "tools-commit-pr",
        "Read, Write, Edit, a Bash `git commit` and a Bash `gh pr create` (a stub gh that prints a PR URL), "
        "tools allowed by --allowedTools; export headers from an otelHeadersHelper.",
        SessionSpec(
            prompt="Add a hello module, commit it and open a pull request.",
            script=TOOL_SCRIPT,
            headers_helper=HEADERS_HELPER_OK,
        ),
    ),
    Recording(
        "api-error",
        "One successful tool turn, then HTTP 529 overloaded_error on every attempt of the next request "
        "(CLAUDE_CODE_MAX_RETRIES=1: two attempts); the session fails.",
        SessionSpec(
            prompt="Read the README.",
            script=(
                Tools((ToolUse("Read", {"file_path": "{repo}/README.md"}),)),
                ApiError(529, "overloaded_error", "Overloaded", retry_after_ms=50),
                ApiError(529, "overloaded_error", "Overloaded", retry_after_ms=50),
            ),
            env={"CLAUDE_CODE_MAX_RETRIES": "1"},
        ),
    ),
    Recording(
        "cardinality-off",
        "A one-turn text session with OTEL_METRICS_INCLUDE_SESSION_ID=false and "
        "OTEL_METRICS_INCLUDE_ACCOUNT_UUID=false (what Path B asks for), the dated model.",
        SessionSpec(prompt="Say hello.", script=(Text("Hello!"),), model=DATED_MODEL, env=CARDINALITY_OFF),
    ),
)


# --- OTLP JSON readers (fixtures and live runs alike) --------------------------------------------------------


def attribute_value(value: Mapping[str, Any]) -> tuple[str, Any]:
    """(type, value) of an OTLP JSON AnyValue: ("string", "x"), ("int", 3), ("double", 0.5), ("bool", True)..."""
    if not value:
        return ("empty", None)
    ((key, raw),) = value.items()
    kind = key.removesuffix("Value")
    if kind == "int":
        return ("int", int(raw))
    return (kind, raw)


def attributes(items: Iterable[Mapping[str, Any]]) -> dict[str, tuple[str, Any]]:
    return {item["key"]: attribute_value(item.get("value", {})) for item in items}


@dataclass(frozen=True)
class Point:
    """One metric data point with its metric's metadata, its resource and its attributes."""

    scope: str
    name: str
    unit: str
    kind: str
    temporality: str
    monotonic: bool
    value_type: str
    value: float
    resource: dict[str, tuple[str, Any]]
    attributes: dict[str, tuple[str, Any]]

    def attr(self, key: str) -> Any:
        return self.attributes[key][1]


@dataclass(frozen=True)
class Record:
    """One log record (a Claude Code event) with its scope and resource."""

    scope: str
    body: Any
    severity_number: str | int | None
    severity_text: str | None
    resource: dict[str, tuple[str, Any]]
    attributes: dict[str, tuple[str, Any]]

    @property
    def event(self) -> str:
        return str(self.attributes.get("event.name", ("", ""))[1])

    def attr(self, key: str) -> Any:
        return self.attributes[key][1]


def metric_points(requests: Iterable[Mapping[str, Any]]) -> list[Point]:
    points = []
    for request in requests:
        for resource_metrics in request.get("resourceMetrics", []):
            resource = attributes(resource_metrics.get("resource", {}).get("attributes", []))
            for scope_metrics in resource_metrics.get("scopeMetrics", []):
                scope = scope_metrics.get("scope", {}).get("name", "")
                for metric in scope_metrics.get("metrics", []):
                    kind = next(
                        k for k in ("sum", "gauge", "histogram", "exponentialHistogram", "summary") if k in metric
                    )
                    for point in metric[kind].get("dataPoints", []):
                        value_type = "asDouble" if "asDouble" in point else "asInt" if "asInt" in point else "other"
                        points.append(
                            Point(
                                scope=scope,
                                name=metric["name"],
                                unit=metric.get("unit", ""),
                                kind=kind,
                                temporality=metric[kind].get("aggregationTemporality", ""),
                                monotonic=bool(metric[kind].get("isMonotonic", False)),
                                value_type=value_type,
                                value=float(point.get(value_type, 0)),
                                resource=resource,
                                attributes=attributes(point.get("attributes", [])),
                            )
                        )
    return points


def log_records(requests: Iterable[Mapping[str, Any]]) -> list[Record]:
    records = []
    for request in requests:
        for resource_logs in request.get("resourceLogs", []):
            resource = attributes(resource_logs.get("resource", {}).get("attributes", []))
            for scope_logs in resource_logs.get("scopeLogs", []):
                scope = scope_logs.get("scope", {}).get("name", "")
                for record in scope_logs.get("logRecords", []):
                    records.append(
                        Record(
                            scope=scope,
                            body=attribute_value(record.get("body", {}))[1],
                            severity_number=record.get("severityNumber"),
                            severity_text=record.get("severityText"),
                            resource=resource,
                            attributes=attributes(record.get("attributes", [])),
                        )
                    )
    return records


class Exports:
    """OTLP JSON export requests (`metrics`, `logs`, given by the subclass) read as data points and log records."""

    @property
    def metrics(self) -> list[dict[str, Any]]:
        raise NotImplementedError

    @property
    def logs(self) -> list[dict[str, Any]]:
        raise NotImplementedError

    @property
    def points(self) -> list[Point]:
        return metric_points(self.metrics)

    @property
    def records(self) -> list[Record]:
        return log_records(self.logs)


def token_totals(points: Iterable[Point]) -> dict[tuple[str, str], int]:
    """Sum of claude_code.token.usage by (model, type); DELTA points, so a plain sum."""
    totals: dict[tuple[str, str], int] = {}
    for point in points:
        if point.name == "claude_code.token.usage":
            key = (str(point.attr("model")), str(point.attr("type")))
            totals[key] = totals.get(key, 0) + int(point.value)
    return totals


LEDGER_TYPES = {
    "input": "input_tokens",
    "output": "output_tokens",
    "cacheRead": "cache_read_input_tokens",
    "cacheCreation": "cache_creation_input_tokens",
}


def ledger_totals(ledger: Iterable[Mapping[str, Any]]) -> dict[tuple[str, str], int]:
    """What the fake billed by (model, token type), in the client's type names."""
    totals: dict[tuple[str, str], int] = {}
    for entry in ledger:
        for token_type, field in LEDGER_TYPES.items():
            key = (str(entry["model"]), token_type)
            totals[key] = totals.get(key, 0) + int(entry[field])
    return totals


@dataclass(frozen=True)
class Shape:
    """What a client upgrade must not change silently: per metric its unit, kind and attribute keys (with value
    types), per event its attribute keys with value types, and the resource's keys."""

    metrics: dict[str, dict[str, Any]]
    events: dict[str, dict[str, list[str]]]
    resource: list[str]
    scopes: list[str]


def shape(metrics: Iterable[Mapping[str, Any]], logs: Iterable[Mapping[str, Any]]) -> Shape:
    metric_shapes: dict[str, dict[str, Any]] = {}
    resource_keys: set[str] = set()
    scopes: set[str] = set()
    for point in metric_points(metrics):
        entry = metric_shapes.setdefault(
            point.name,
            {
                "unit": point.unit,
                "kind": point.kind,
                "temporality": point.temporality,
                "monotonic": point.monotonic,
                "value_types": set(),
                "attributes": {},
            },
        )
        entry["value_types"].add(point.value_type)
        for key, (kind, _) in point.attributes.items():
            entry["attributes"].setdefault(key, set()).add(kind)
        resource_keys |= point.resource.keys()
        scopes.add(point.scope)
    event_shapes: dict[str, dict[str, set[str]]] = {}
    for record in log_records(logs):
        event = event_shapes.setdefault(record.event, {})
        for key, (kind, _) in record.attributes.items():
            event.setdefault(key, set()).add(kind)
        resource_keys |= record.resource.keys()
        scopes.add(record.scope)
    return Shape(
        metrics={
            name: {
                **entry,
                "value_types": sorted(entry["value_types"]),
                "attributes": {key: sorted(kinds) for key, kinds in sorted(entry["attributes"].items())},
            }
            for name, entry in sorted(metric_shapes.items())
        },
        events={
            name: {key: sorted(kinds) for key, kinds in sorted(keys.items())}
            for name, keys in sorted(event_shapes.items())
        },
        resource=sorted(resource_keys),
        scopes=sorted(scopes),
    )


# --- writing fixtures ---------------------------------------------------------------------------------------


def redact_headers(headers: Iterable[tuple[str, str]]) -> list[str]:
    """`name: value` lines; Authorization values other than the test helper's redacted, the port replaced."""
    redacted = []
    for name, value in headers:
        if name == "authorization" and value != TEST_TOKEN:
            value = "Bearer <redacted>"
        elif name == "host":
            value = _ports(value)
        redacted.append(f"{name}: {value}")
    return redacted


def parse_header_lines(lines: Iterable[str]) -> list[tuple[str, str]]:
    return [(name, value) for name, _, value in (line.partition(": ") for line in lines)]


def _ports(text: str) -> str:
    return re.sub(r"127\.0\.0\.1:\d+", "127.0.0.1:<port>", text)


def _turn(turn: Turn) -> dict[str, Any]:
    if isinstance(turn, Text):
        return {"text": turn.text}
    if isinstance(turn, Tools):
        return {"tools": [{"name": call.name, "input": dict(call.input)} for call in turn.calls], "text": turn.text}
    return {"error": asdict(turn)}


def _api_request_summary(result: SessionResult) -> list[dict[str, Any]]:
    summary = []
    for request in result.api_requests:
        body = request.body if isinstance(request.body, dict) else {}
        summary.append(
            {
                "method": request.method,
                "path": request.path,
                "status": request.status,
                "role": request.role,
                "model": body.get("model"),
                "stream": body.get("stream"),
            }
        )
    return summary


def _api_headers(result: SessionResult) -> list[str]:
    """The first API request's headers (`name: value`), the API key redacted and the port replaced."""
    if not result.api_requests:
        return []
    headers = []
    for name, value in result.api_requests[0].headers:
        if name in ("x-api-key", "authorization"):
            value = "<redacted>"
        elif name == "host":
            value = _ports(value)
        elif name == "content-length":
            value = "<n>"
        headers.append(f"{name}: {value}")
    return headers


def _dump(path: Path, data: Any) -> None:
    path.write_text(json.dumps(data, indent=1, sort_keys=False) + "\n")


def write_session(recording: Recording, result: SessionResult, out: Path) -> dict[str, Any]:
    folder = out / recording.name
    folder.mkdir(parents=True, exist_ok=True)
    _dump(folder / "metrics.json", [request.body_dict() for request in result.of("metrics")])
    _dump(folder / "logs.json", [request.body_dict() for request in result.of("logs")])
    _dump(
        folder / "headers.json",
        [{"path": request.path, "headers": redact_headers(request.headers)} for request in result.exports],
    )
    _dump(folder / "ledger.json", [entry.as_dict() for entry in result.ledger])
    spec = recording.spec
    return {
        "name": recording.name,
        "description": recording.description,
        "client_version": CLIENT_VERSION,
        "model_asked": spec.model,
        "prompt": spec.prompt,
        "settings_source": "--settings <file>" if spec.settings_source == "flag" else "managed-settings.json",
        "settings": result.settings,
        "allowed_tools": list(spec.allowed_tools),
        "script": [_turn(turn) for turn in spec.script],
        "returncode": result.returncode,
        "stdout": _ports(result.stdout),
        "exports": {signal: len(result.of(signal)) for signal in ("metrics", "logs", "traces")},
        "api_requests": _api_request_summary(result),
        "api_request_headers": _api_headers(result),
        "gh_calls": result.gh_calls,
        "git_log": result.git_log,
        "files": sorted(f"{recording.name}/{p.name}" for p in folder.iterdir()),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--out", type=Path, default=FIXTURES, help="folder to write (replaced)")
    parser.add_argument("--only", action="append", help="record only this session (repeatable); keeps the others")
    args = parser.parse_args(argv)
    out: Path = args.out
    chosen = [r for r in SESSIONS if not args.only or r.name in args.only]
    index: dict[str, Any] = {}
    if args.only and (out / "sessions.json").exists():
        index = {entry["name"]: entry for entry in json.loads((out / "sessions.json").read_text())["sessions"]}
    elif out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)
    for recording in chosen:
        result = run_session(recording.spec)
        if recording.spec.expect_exports and not result.exports:
            print(f"{recording.name}: the client exported nothing; stderr: {result.stderr}", file=sys.stderr)
            return 1
        if (out / recording.name).exists():
            shutil.rmtree(out / recording.name)
        index[recording.name] = write_session(recording, result, out)
        print(
            f"{recording.name}: exit {result.returncode}, {len(result.exports)} exports, "
            f"{len(result.ledger)} billed requests, {result.duration_s:.1f} s"
        )
    order = [r.name for r in SESSIONS]
    sessions = sorted(index.values(), key=lambda entry: order.index(entry["name"]) if entry["name"] in order else 99)
    _dump(out / "sessions.json", {"client_version": CLIENT_VERSION, "sessions": sessions})
    size = sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
    print(f"wrote {out.relative_to(PROJECT_ROOT)} ({size / 1024:.0f} KiB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
