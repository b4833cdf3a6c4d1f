"""The real Claude Code client (client/, `make client`), run live on loopback, and its recorded fixtures.

Each session is a real `claude -p` run against the fake Anthropic API and the OTLP receiver (about a second
each). What is asserted here is what the rest of the project relies on (../shared/DESIGN.md, "What the real
client sends"); the fixture tests fail when a client upgrade changes the shape of what it sends, until the
fixtures are re-recorded (`make record`) and the difference is reviewed.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest
from google.protobuf import json_format
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2

from tests.harness import claude_client as cc
from tests.harness.fake_anthropic import Text
from tests.harness.live_pipeline import LiveRun as Live
from tests.harness.record import (
    DATED_MODEL,
    FIXTURES,
    SESSIONS,
    TEST_TOKEN,
    ledger_totals,
    metric_points,
    parse_header_lines,
    shape,
    token_totals,
)

METRICS_SCOPE = "com.anthropic.claude_code"
EVENTS_SCOPE = "com.anthropic.claude_code.events"
USER_ID = re.compile(r"^[0-9a-f]{64}$")
UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
DATED = re.compile(r"-\d{8}$")

UNITS = {
    "claude_code.session.count": "",
    "claude_code.lines_of_code.count": "",
    "claude_code.pull_request.count": "",
    "claude_code.commit.count": "",
    "claude_code.cost.usage": "USD",
    "claude_code.token.usage": "tokens",
    "claude_code.code_edit_tool.decision": "",
    "claude_code.active_time.total": "s",
}

RESOURCE_ON_POINTS = {"department": "engineering", "team.id": "platform", "cost_center": "cc-100"}
# On every point and record of an API-key session, besides the resource attributes copied onto them.
STANDARD = {"user.id", "session.id", "terminal.type", "anthropic.provider", "anthropic.custom_base_url"}
# Each metric's own attributes in the tool session (default model, which takes an effort level).
OWN_ATTRIBUTES = {
    "claude_code.session.count": {"start_type"},
    "claude_code.lines_of_code.count": {"type", "model"},
    "claude_code.pull_request.count": set(),
    "claude_code.commit.count": set(),
    "claude_code.cost.usage": {"model", "query_source", "effort"},
    "claude_code.token.usage": {"model", "query_source", "effort", "type"},
    "claude_code.code_edit_tool.decision": {"tool_name", "decision", "source", "language"},
    "claude_code.active_time.total": {"type"},
}
CLAUDE_ACCOUNT_ONLY = {"user.email", "organization.id", "user.account_uuid", "user.account_id"}

# Value types of the event attributes that downstream code reads (the rest is covered by the fixture shapes).
EVENT_TYPES: dict[str, dict[str, str]] = {
    "user_prompt": {"prompt_length": "string", "prompt": "string"},
    "api_request": {
        "model": "string",
        "input_tokens": "int",
        "output_tokens": "int",
        "cache_read_tokens": "int",
        "cache_creation_tokens": "int",
        "cost_usd": "double",
        "duration_ms": "int",
        "request_id": "string",
        "query_source": "string",
    },
    "api_error": {"model": "string", "error": "string", "status_code": "int", "attempt": "int", "duration_ms": "int"},
    "tool_decision": {"tool_name": "string", "decision": "string", "source": "string"},
    "tool_result": {"tool_name": "string", "success": "string", "duration_ms": "string"},
    "assistant_response": {"model": "string", "response_length": "int"},
}
EVENT_COMMON = {"event.name": "string", "event.timestamp": "string", "event.sequence": "int"}


def _run(spec: cc.SessionSpec) -> Live:
    try:
        cc.require_client()
    except cc.ClientMissingError as missing:
        pytest.fail(f"{missing}. The live client tests need it: `make client` installs it.")
    return Live(cc.run_session(spec))


@pytest.fixture(scope="module")
def live() -> Callable[[str], Live]:
    """The recorded sessions (tests/harness/record.py), each run live once, on first use."""
    runs: dict[str, Live] = {}
    specs = {recording.name: recording.spec for recording in SESSIONS}

    def get(name: str) -> Live:
        if name not in runs:
            runs[name] = _run(specs[name])
        return runs[name]

    return get


def _fixture(name: str, file: str) -> Any:
    return json.loads((FIXTURES / name / file).read_text())


# --- metrics ------------------------------------------------------------------------------------------------


def test_the_eight_counters_are_delta_double_sums_in_the_claude_code_scope(live: Callable[[str], Live]) -> None:
    points = live("tools-commit-pr").points
    assert {point.name for point in points} == set(UNITS)
    for point in points:
        assert (point.scope, point.kind, point.monotonic) == (METRICS_SCOPE, "sum", True), point.name
        assert point.temporality == "AGGREGATION_TEMPORALITY_DELTA", point.name
        assert point.value_type == "asDouble", point.name
        assert point.unit == UNITS[point.name], point.name


def test_each_metric_carries_its_own_attributes_besides_identity_and_resource(live: Callable[[str], Live]) -> None:
    for point in live("tools-commit-pr").points:
        expected = STANDARD | set(RESOURCE_ON_POINTS) | OWN_ATTRIBUTES[point.name]
        assert set(point.attributes) == expected, point.name
    token_types = {point.attr("type") for point in live("tools-commit-pr").named("claude_code.token.usage")}
    assert token_types == {"input", "output", "cacheRead", "cacheCreation"}
    assert {point.attr("type") for point in live("tools-commit-pr").named("claude_code.active_time.total")} <= {
        "cli",
        "user",
    }
    # A model without effort levels: no `effort` on its token and cost points.
    for point in live("dated-model").named("claude_code.token.usage"):
        assert "effort" not in point.attributes


def test_identity_is_on_every_point_and_record_and_never_on_the_resource(live: Callable[[str], Live]) -> None:
    for name in ("tools-commit-pr", "dated-model", "api-error"):
        run = live(name)
        items = run.items
        user_ids = {item.attributes["user.id"] for item in items}
        session_ids = {item.attributes["session.id"] for item in items}
        assert len(user_ids) == 1 and len(session_ids) == 1, name
        ((user_kind, user_id),) = user_ids
        ((session_kind, session_id),) = session_ids
        assert user_kind == "string" and USER_ID.match(user_id), user_id
        assert session_kind == "string" and UUID.match(session_id), session_id
        for item in items:
            assert not ({"user.id", "session.id"} & set(item.resource)), name
            # An API key login: none of the Claude-account identity.
            assert not (CLAUDE_ACCOUNT_ONLY & set(item.attributes)), name
            assert "app.version" not in item.attributes
        # The same ids the client gives the API: the device id in the request metadata, the session header.
        request = run.result.api_requests[0]
        assert json.loads(request.body["metadata"]["user_id"])["device_id"] == user_id
        assert dict(request.headers)["x-claude-code-session-id"] == session_id


def test_session_id_can_be_turned_off_but_the_user_id_cannot(live: Callable[[str], Live]) -> None:
    run = live("cardinality-off")
    assert run.points and run.records
    for item in run.items:
        # OTEL_METRICS_INCLUDE_SESSION_ID=false takes session.id off the events too, not only the metrics.
        assert "session.id" not in item.attributes
        assert "user.account_uuid" not in item.attributes
        assert USER_ID.match(item.attributes["user.id"][1])


def test_resource_attributes_are_on_the_resource_and_copied_onto_every_point(live: Callable[[str], Live]) -> None:
    run = live("tools-commit-pr")
    for item in run.items:
        resource = {key: value for key, (_, value) in item.resource.items()}
        assert resource["service.name"] == "claude-code"
        assert resource["service.version"] == cc.CLIENT_VERSION
        assert resource["os.type"] == "linux"
        assert {"os.version", "host.arch"} <= set(resource)
        for key, value in RESOURCE_ON_POINTS.items():
            assert resource[key] == value
            assert item.attributes[key] == ("string", value)


def test_the_clients_own_attributes_win_over_resource_attributes_but_others_are_copied_as_given() -> None:
    spoofing = "department=engineering,user.id=spoofed,user.email=mallory@example.com,model=spoofed,type=spoofed"
    run = _run(
        cc.SessionSpec(prompt="Say hello.", script=(Text("Hello!"),), env={"OTEL_RESOURCE_ATTRIBUTES": spoofing})
    )
    assert run.points
    for point in run.points:
        assert USER_ID.match(point.attr("user.id"))
        # Not set by the client with an API key, so whatever OTEL_RESOURCE_ATTRIBUTES says is on every point.
        assert point.attr("user.email") == "mallory@example.com"
    for point in run.named("claude_code.token.usage"):
        assert point.attr("type") in {"input", "output", "cacheRead", "cacheCreation"}
        assert point.attr("model") != "spoofed"
    assert {point.attr("type") for point in run.named("claude_code.cost.usage")} == {"spoofed"}
    assert {point.attr("model") for point in run.named("claude_code.session.count")} == {"spoofed"}


# --- events -------------------------------------------------------------------------------------------------


def test_events_are_log_records_named_in_body_and_attributes_with_stable_value_types(
    live: Callable[[str], Live],
) -> None:
    records = [*live("tools-commit-pr").records, *live("api-error").records]
    names = {record.event for record in records}
    assert set(EVENT_TYPES) <= names
    assert {"managed_settings_resolved", "plugin_loaded", "api_retries_exhausted"} <= names
    for record in records:
        assert record.scope == EVENTS_SCOPE
        assert record.body == f"claude_code.{record.event}"
        assert record.severity_number in (None, 0, "SEVERITY_NUMBER_UNSPECIFIED")
        assert not record.severity_text
        for key, kind in {**EVENT_COMMON, **EVENT_TYPES.get(record.event, {})}.items():
            assert record.attributes[key][0] == kind, (record.event, key, record.attributes.get(key))
    for record in live("tools-commit-pr").events("user_prompt"):
        assert record.attr("prompt") == "<REDACTED>"
    sequences = [record.attr("event.sequence") for record in live("tools-commit-pr").records]
    assert sorted(sequences) == list(range(len(sequences)))


def test_tool_events_follow_the_script(live: Callable[[str], Live]) -> None:
    run = live("tools-commit-pr")
    decisions = [(r.attr("tool_name"), r.attr("decision"), r.attr("source")) for r in run.events("tool_decision")]
    assert decisions == [(tool, "accept", "config") for tool in ("Read", "Write", "Edit", "Bash", "Bash")]
    results = [(r.attr("tool_name"), r.attr("success")) for r in run.events("tool_result")]
    assert results == [(tool, "true") for tool in ("Read", "Write", "Edit", "Bash", "Bash")]


# --- tokens, cost and what the fake billed ----------------------------------------------------------------------


@pytest.mark.parametrize("name", [recording.name for recording in SESSIONS])
def test_token_usage_per_model_and_type_equals_what_the_api_billed(live: Callable[[str], Live], name: str) -> None:
    run = live(name)
    billed = [entry.as_dict() for entry in run.result.ledger]
    assert billed, "the fake billed nothing"
    assert token_totals(run.points) == ledger_totals(billed)
    # One api_request event per billed answer, carrying its request id and the same model and counts.
    event_keys = ("model", "input_tokens", "output_tokens", "cache_read_tokens", "cache_creation_tokens")
    ledger_keys = ("model", "input_tokens", "output_tokens", "cache_read_input_tokens", "cache_creation_input_tokens")
    events = {r.attr("request_id"): tuple(r.attr(key) for key in event_keys) for r in run.events("api_request")}
    assert events == {entry["request_id"]: tuple(entry[key] for key in ledger_keys) for entry in billed}
    cost = sum(point.value for point in run.named("claude_code.cost.usage"))
    assert cost == pytest.approx(sum(r.attr("cost_usd") for r in run.events("api_request")))
    assert cost > 0


def test_models_are_reported_as_asked_and_the_default_is_an_undated_id(live: Callable[[str], Live]) -> None:
    dated = live("dated-model")
    assert {point.attr("model") for point in dated.named("claude_code.token.usage")} == {DATED_MODEL}
    default = live("default-model")
    asked = {request.body["model"] for request in default.result.api_requests}
    reported = {point.attr("model") for point in default.named("claude_code.token.usage")}
    assert asked == reported and len(reported) == 1
    (model,) = reported
    assert model.startswith("claude-") and not DATED.search(model), model
    recorded = {entry["model"] for entry in _fixture("default-model", "ledger.json")}
    assert reported == recorded, "the client's default model changed: re-record (make record)"


# --- commits, pull requests, lines, edit decisions, errors --------------------------------------------------------


def test_a_bash_git_commit_and_gh_pr_create_count_once_each(live: Callable[[str], Live]) -> None:
    run = live("tools-commit-pr")
    assert run.result.git_log[0] == "Add hello"
    assert run.result.gh_calls == ["pr create --title Add hello --body Adds hello.py"]
    assert sum(point.value for point in run.named("claude_code.commit.count")) == 1
    assert sum(point.value for point in run.named("claude_code.pull_request.count")) == 1
    lines = Counter[str]()
    for point in run.named("claude_code.lines_of_code.count"):
        lines[point.attr("type")] += int(point.value)
        assert point.attr("model") == run.result.ledger[0].model
    # Write of a 5-line file (ending in a newline) counts 6 added; the Edit replaces 1 line with 2.
    assert lines == {"added": 8, "removed": 1}
    decisions = sorted(
        (p.attr("tool_name"), p.attr("decision"), p.attr("source"), p.attr("language"), p.value)
        for p in run.named("claude_code.code_edit_tool.decision")
    )
    assert decisions == [("Edit", "accept", "config", "Python", 1.0), ("Write", "accept", "config", "Python", 1.0)]


def test_an_api_error_is_reported_once_retries_are_exhausted(live: Callable[[str], Live]) -> None:
    run = live("api-error")
    assert run.result.returncode == 1
    assert [request.status for request in run.result.api_requests] == [200, 529, 529]
    (error,) = run.events("api_error")
    assert (error.attr("status_code"), error.attr("attempt"), error.attr("error")) == (529, 2, "Overloaded")
    assert error.attr("model") == run.result.ledger[0].model
    (exhausted,) = run.events("api_retries_exhausted")
    assert (exhausted.attr("status_code"), exhausted.attr("total_attempts")) == (529, 2)
    assert len(run.events("api_request")) == len(run.result.ledger) == 1


# --- export headers and the headers helper -------------------------------------------------------------------------


def test_the_headers_helper_output_is_the_authorization_of_every_export(live: Callable[[str], Live]) -> None:
    with_helper = live("tools-commit-pr").result.exports
    assert {request.signal for request in with_helper} == {"metrics", "logs"}
    for request in with_helper:
        assert request.header("authorization") == TEST_TOKEN
        assert request.content_type == "application/x-protobuf"
        assert (request.header("user-agent") or "").startswith("OTel-OTLP-Exporter-JavaScript/")
    for request in live("dated-model").result.exports:
        assert request.header("authorization") is None


def test_a_failing_headers_helper_means_nothing_is_exported() -> None:
    run = _run(
        cc.SessionSpec(
            prompt="Say hello.",
            script=(Text("Hello!"),),
            headers_helper=cc.HEADERS_HELPER_FAILING,
            expect_exports=False,
        )
    )
    assert run.result.returncode == 0 and run.result.ledger, "the session itself ran"
    assert run.result.exports == []
    assert "otelHeadersHelper failed" in run.result.stderr


def test_managed_settings_win_for_the_keys_they_set_and_only_those() -> None:
    """/etc/claude-code/managed-settings.json (through a private overlay, see claude_client) against a shell."""
    run = _run(
        cc.SessionSpec(
            prompt="Say hello.",
            script=(Text("Hello!"),),
            settings_source="managed",
            user_env={
                "OTEL_EXPORTER_OTLP_ENDPOINT": cc.CLOSED_PROXY,
                "OTEL_RESOURCE_ATTRIBUTES": "department=mine,team.id=mine,cost_center=mine",
                "OTEL_METRICS_EXPORTER": "none",
                "OTEL_METRICS_INCLUDE_VERSION": "true",  # a key the managed settings leave alone
            },
        )
    )
    assert run.points and run.records, "exported to the managed endpoint"
    for item in run.items:
        assert item.attributes["department"] == ("string", "engineering")
        assert item.attributes["app.version"] == ("string", cc.CLIENT_VERSION)


@pytest.mark.parametrize(
    ("env", "content_type", "encoding"),
    [
        ({"OTEL_EXPORTER_OTLP_PROTOCOL": "http/json"}, "application/json", ""),
        ({"OTEL_EXPORTER_OTLP_COMPRESSION": "gzip"}, "application/x-protobuf", "gzip"),
    ],
)
def test_json_and_gzip_exports_carry_the_same_telemetry(env: dict[str, str], content_type: str, encoding: str) -> None:
    (default,) = [recording.spec for recording in SESSIONS if recording.name == "default-model"]
    run = _run(cc.SessionSpec(prompt=default.prompt, script=default.script, env=env))
    assert {(r.content_type, r.content_encoding) for r in run.result.exports} == {(content_type, encoding)}
    assert run.result.rejected_exports == []
    assert token_totals(run.points) == ledger_totals([entry.as_dict() for entry in run.result.ledger])
    recorded = shape(_fixture("default-model", "metrics.json"), _fixture("default-model", "logs.json"))
    assert shape(run.metrics, run.logs) == recorded


# --- the recorded fixtures -------------------------------------------------------------------------------------


def test_the_fixtures_are_otlp_json_and_agree_with_their_ledgers() -> None:
    index = json.loads((FIXTURES / "sessions.json").read_text())
    assert index["client_version"] == cc.CLIENT_VERSION
    assert [entry["name"] for entry in index["sessions"]] == [recording.name for recording in SESSIONS]
    for entry in index["sessions"]:
        name = entry["name"]
        metrics, logs = _fixture(name, "metrics.json"), _fixture(name, "logs.json")
        for body in metrics:
            json_format.ParseDict(body, metrics_service_pb2.ExportMetricsServiceRequest())
        for body in logs:
            json_format.ParseDict(body, logs_service_pb2.ExportLogsServiceRequest())
        assert token_totals(metric_points(metrics)) == ledger_totals(_fixture(name, "ledger.json")), name
        for request in _fixture(name, "headers.json"):
            headers = dict(parse_header_lines(request["headers"]))
            assert headers["content-type"] == "application/x-protobuf"
            assert headers.get("authorization") in (None, TEST_TOKEN, "Bearer <redacted>")
        assert entry["settings"]["env"]["OTEL_EXPORTER_OTLP_ENDPOINT"] == cc.RECEIVER_PLACEHOLDER


@pytest.mark.parametrize("name", [recording.name for recording in SESSIONS])
def test_a_live_run_has_the_shape_of_its_fixture(live: Callable[[str], Live], name: str) -> None:
    run = live(name)
    recorded = shape(_fixture(name, "metrics.json"), _fixture(name, "logs.json"))
    now = shape(run.metrics, run.logs)
    hint = f"the client's telemetry changed shape in session {name!r}: review it, then re-record (make record)"
    assert now.scopes == recorded.scopes, hint
    assert now.resource == recorded.resource, hint
    assert now.metrics == recorded.metrics, hint
    assert now.events == recorded.events, hint
