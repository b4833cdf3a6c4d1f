"""The pipeline on what the real Claude Code client sent (recordings in tests/fixtures/claude-code/), as the
collector's exporters write it (tests/exporters.py): the aggregator's rollups and the lake's rows must equal
what the fake Anthropic API billed, and no row is lost.

The recordings never went through a real collector: the exporter model stands in for the collector's processors
as well as its exporters here (`collector_resource`)."""

from __future__ import annotations

import base64
import json
from collections import Counter, defaultdict
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from components.collector_config import CollectorPipelineSettings, render_collector_config
from lambda_src.analytics_transform.handler import Settings as TransformSettings
from lambda_src.analytics_transform.handler import transform
from lambda_src.common import rollups as keys
from lambda_src.common.pricing import DEFAULT_PRICE_TABLE, model_version
from lambda_src.common.telemetry import EVENTS, METRICS_BY_NAME
from tests.clock import Clock
from tests.exporters import (
    cloudwatch_log_events,
    data_points,
    emf_log_events,
    load,
    recorded_sessions,
    with_ids,
)
from tests.lambda_src.rollup_table import Deployed
from tests.telemetry import EVENTS_LOG_GROUP, METRICS_LOG_GROUP, NAMESPACE, firehose_event, logs_batch

SESSIONS = recorded_sessions()
LEDGER_TOKENS = {
    "input": "input_tokens",
    "output": "output_tokens",
    "cacheRead": "cache_read_input_tokens",
    "cacheCreation": "cache_creation_input_tokens",
}


def awsemf() -> dict[str, Any]:
    settings = CollectorPipelineSettings(
        region="eu-west-1",
        environment="test",
        metrics_namespace=NAMESPACE,
        metrics_log_group=METRICS_LOG_GROUP,
        events_log_group=EVENTS_LOG_GROUP,
        identity_mode="none",
    )
    return render_collector_config(settings)["exporters"]["awsemf"]


def exported(session: Path) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The recorded session as CloudWatch Logs would hold it.

    The recordings are the client's raw OTLP requests, never through a real collector: the exporter model
    (tests/exporters.py) models the collector's processors here too (`collector_resource`: deployment.environment
    `test`, `unattributed` organisation). The real collector's processors are checked by tests/collector/ and
    tests/harness/test_live_pipeline.py."""
    metrics = [
        e for request in load(session / "metrics.json") for e in emf_log_events(request, awsemf(), environment="test")
    ]
    events = [e for request in load(session / "logs.json") for e in cloudwatch_log_events(request, environment="test")]
    return with_ids(metrics), with_ids(events, start=len(metrics) + 1)


def billed(session: Path) -> dict[tuple[str, str], int]:
    """(price table key or normalised model, token type) -> tokens the fake API billed."""
    totals: Counter[tuple[str, str]] = Counter()
    for request in load(session / "ledger.json"):
        model = DEFAULT_PRICE_TABLE.key_for(request["model"]) or model_version(request["model"])
        assert model is not None
        for token_type, field in LEDGER_TOKENS.items():
            totals[(model, token_type)] += request[field]
    return dict(totals)


def client_cost(session: Path) -> Decimal:
    total = Decimal(0)
    for request in load(session / "metrics.json"):
        for name, _, _, value, _ in data_points(request):
            if name == "claude_code.cost.usage":
                total += Decimal(repr(value))
    return total


@pytest.mark.parametrize("name", sorted(SESSIONS))
def test_rollups_equal_what_the_api_billed(name: str, deployed: Deployed) -> None:
    session = SESSIONS[name]
    metrics, events = exported(session)
    deployed.clock.set(deployed.clock.now().replace(year=2026, month=11, day=29))
    result = deployed.deliver(logs_batch(METRICS_LOG_GROUP, metrics))
    assert result["quarantined"] == 0
    if events:
        assert deployed.deliver(logs_batch(EVENTS_LOG_GROUP, events))["quarantined"] == 0

    by_model: dict[tuple[str, str], int] = defaultdict(int)
    users = set()
    cost = Decimal(0)
    for (pk, sk), item in deployed.items().items():
        if pk.startswith("DAY#") and not sk.endswith("#-"):
            model = sk.split("#", 1)[1]
            for token_type in LEDGER_TOKENS:
                by_model[(model, token_type)] += int(item.get(keys.TOKEN_ATTRIBUTES[token_type], 0))
        if pk.startswith("USER#") and sk.startswith("DAY#"):
            users.add(pk)
            cost += item.get("cost_usd", Decimal(0))
            assert item["source"] == "user.id"  # an API-key login: no email, the installation hash identifies
    assert {k: v for k, v in by_model.items() if v} == {k: v for k, v in billed(session).items() if v}
    assert len(users) == 1
    if "claude-opus-5-5" in {model for model, _ in billed(session)}:
        assert cost == client_cost(session) > 0  # a model the table does not price costs what the client said
    else:
        assert cost == pytest.approx(
            client_cost(session), rel=Decimal("1e-6")
        )  # the table agrees with the client's list price


@pytest.mark.parametrize("name", sorted(SESSIONS))
def test_the_lake_keeps_every_point_and_every_event_typed(name: str) -> None:
    session = SESSIONS[name]
    metrics, events = exported(session)
    settings = TransformSettings({METRICS_LOG_GROUP: "metrics", EVENTS_LOG_GROUP: "events"})
    points = sum(1 for request in load(session / "metrics.json") for _ in data_points(request))
    payloads = [logs_batch(METRICS_LOG_GROUP, metrics)] + ([logs_batch(EVENTS_LOG_GROUP, events)] if events else [])
    put_back: list[bytes] = []
    records = transform(firehose_event(payloads), settings, lambda b: put_back.extend(b) or [True] * len(b), Clock())
    rows = [
        json.loads(line)
        for record in records["records"]
        if record["result"] == "Ok"
        for line in base64.b64decode(record["data"]).splitlines()
    ] + [json.loads(line) for data in put_back for line in data.splitlines() if b'"row_id"' in line]
    assert all(record["result"] in ("Ok", "Dropped") for record in records["records"])
    metric_rows = [row for row in rows if "metric_name" in row]
    event_rows = [row for row in rows if "event_name" in row]
    assert len(metric_rows) == points  # rows out equal data points in
    assert len(event_rows) == len(events)  # every event, the ones the dashboard does not read included
    for row in metric_rows:
        assert row["user_id"] and len(row["user_id"]) == 64 and row["user_key_source"] == "user.id"
        assert row["app_version"] == "2.1.328"  # from service.version: app.version is opt-in
        if row["metric_name"] == "claude_code.code_edit_tool.decision":
            assert row["tool_name"] in ("Write", "Edit", "MultiEdit", "NotebookEdit")
    for row in event_rows:
        if row["event_name"] == "api_request":
            assert isinstance(row["input_tokens"], int) and isinstance(row["cost_usd"], float)
            assert isinstance(row["duration_ms"], float)
        if row["event_name"] == "tool_result":
            assert row["success"] in (True, False) and isinstance(row["duration_ms"], float)
        if row["event_name"] == "user_prompt":
            assert isinstance(row["prompt_length"], int)


def test_the_contract_matches_what_the_client_sent() -> None:
    """Every metric's unit and attributes, and every declared event attribute's type, as recorded."""
    seen_units: dict[str, str | None] = {}
    seen_attributes: dict[str, set[str]] = defaultdict(set)
    event_types: dict[tuple[str, str], set[str]] = defaultdict(set)
    for session in SESSIONS.values():
        for request in load(session / "metrics.json"):
            for resource_metrics in request["resourceMetrics"]:
                for scope_metrics in resource_metrics["scopeMetrics"]:
                    for metric in scope_metrics["metrics"]:
                        seen_units[metric["name"]] = metric.get("unit")
                        assert metric["sum"]["aggregationTemporality"] == "AGGREGATION_TEMPORALITY_DELTA"
        for request in load(session / "metrics.json"):
            for name, _, point, _, _ in data_points(request):
                seen_attributes[name] |= set(point)
        for request in load(session / "logs.json"):
            for resource_logs in request["resourceLogs"]:
                for scope_logs in resource_logs["scopeLogs"]:
                    for record in scope_logs["logRecords"]:
                        name = record["body"]["stringValue"].removeprefix("claude_code.")
                        for pair in record["attributes"]:
                            event_types[(name, pair["key"])].add(next(iter(pair["value"])))
    assert set(seen_units) == set(METRICS_BY_NAME)
    for name, unit in seen_units.items():
        contract = METRICS_BY_NAME[name]
        assert contract.client_unit == unit, name
        assert set(contract.attributes) - {"query_source", "source", "language"} <= seen_attributes[name], name
    kinds = {"int": "intValue", "double": "doubleValue", "string": "stringValue"}
    for event, declared in EVENTS.items():
        for attribute, kind in declared.items():
            if (event, attribute) in event_types:
                assert event_types[(event, attribute)] == {kinds[kind]}, (event, attribute)
    assert {event for event, _ in event_types} >= {"api_request", "tool_result", "tool_decision", "user_prompt"}


def recorded_points() -> dict[str, tuple[dict[str, str], dict[str, str], dict[str, Any]]]:
    """metric -> (resource attribute kinds, point attribute kinds, the metric's own fields), as recorded."""
    found: dict[str, tuple[dict[str, str], dict[str, str], dict[str, Any]]] = {}
    for session in SESSIONS.values():
        for request in load(session / "metrics.json"):
            for resource_metrics in request["resourceMetrics"]:
                resource = {a["key"]: next(iter(a["value"])) for a in resource_metrics["resource"]["attributes"]}
                for scope_metrics in resource_metrics["scopeMetrics"]:
                    for metric in scope_metrics["metrics"]:
                        for point in metric["sum"]["dataPoints"]:
                            kinds = {a["key"]: next(iter(a["value"])) for a in point["attributes"]}
                            shape = {k: v for k, v in metric.items() if k not in ("sum", "description")}
                            shape["sum"] = {k: v for k, v in metric["sum"].items() if k != "dataPoints"}
                            shape["value"] = next(k for k in point if k.startswith("as"))
                            found[metric["name"]] = (resource, kinds, shape)
    return found


# Attributes the recordings carry because of how they were made (a custom base URL) or that a metric adds
# beside the contract's list; the generator need not produce them.
RECORDING_EXTRAS = {"anthropic.custom_base_url", "effort", "start_type", "model"}


def test_the_generator_sends_what_the_client_sends() -> None:
    """The synthetic generator (tests/telemetry.py) against the recordings: resource, identity on points,
    value kinds, units, temporality; for an API-key login, as recorded."""
    from tests.telemetry import Developer, logs_request, metrics_request

    api_key_login = Developer(email=None, user_id="9" * 64, account_uuid=None)
    at = datetime(2026, 11, 29, 2, 51, tzinfo=UTC)
    for name, (resource, kinds, shape) in recorded_points().items():
        contract_attributes = {a: "x" for a in METRICS_BY_NAME[name].attributes if a in kinds}
        generated = metrics_request(at, api_key_login, {name: 1.0}, **contract_attributes)
        (resource_metrics,) = generated["resourceMetrics"]
        generated_resource = {a["key"]: next(iter(a["value"])) for a in resource_metrics["resource"]["attributes"]}
        assert generated_resource == resource, name
        (metric,) = resource_metrics["scopeMetrics"][0]["metrics"]
        (point,) = metric["sum"]["dataPoints"]
        generated_kinds = {a["key"]: next(iter(a["value"])) for a in point["attributes"]}
        assert {k: kinds[k] for k in generated_kinds if k in kinds} == generated_kinds, name
        assert set(kinds) - set(generated_kinds) <= RECORDING_EXTRAS | set(METRICS_BY_NAME[name].attributes), name
        assert metric.get("unit") == shape.get("unit"), name
        assert metric["sum"]["aggregationTemporality"] == shape["sum"]["aggregationTemporality"], name
        assert metric["sum"]["isMonotonic"] == shape["sum"].get("isMonotonic"), name
        assert next(k for k in point if k.startswith("as")) == shape["value"], name

    recorded_events: dict[str, dict[str, str]] = defaultdict(dict)
    for session in SESSIONS.values():
        for request in load(session / "logs.json"):
            for resource_logs in request["resourceLogs"]:
                for scope_logs in resource_logs["scopeLogs"]:
                    for record in scope_logs["logRecords"]:
                        event = record["body"]["stringValue"].removeprefix("claude_code.")
                        recorded_events[event].update({a["key"]: next(iter(a["value"])) for a in record["attributes"]})
    for event, declared in EVENTS.items():
        if event not in recorded_events:
            continue
        values = {
            attribute: 7 if kind == "int" else 0.5 if kind == "double" else "x" for attribute, kind in declared.items()
        }
        generated = logs_request(at, api_key_login, event, **values)
        (record,) = generated["resourceLogs"][0]["scopeLogs"][0]["logRecords"]
        generated_kinds = {a["key"]: next(iter(a["value"])) for a in record["attributes"]}
        recorded = recorded_events[event]
        assert {k: recorded[k] for k in generated_kinds if k in recorded} == {
            k: v for k, v in generated_kinds.items() if k in recorded
        }, event
        assert "user.id" in generated_kinds and "user.id" in recorded  # identity on the record, not the resource
