"""The pinned real Claude Code client, run live with the managed settings our stacks *render*, and what it
sends pushed through our pipeline.

Each session is a real `claude -p` against the fake Anthropic API (tests/harness/fake_anthropic.py), with the
settings the offline preview declares in the stack's SSM parameter given as the machine's managed settings
file (/etc/claude-code/managed-settings.json through a private overlay, see claude_client and live_pipeline).
Only the endpoint is replaced by the loopback OTLP receiver, and a headers helper's path by a program the test
provides.

- Path A, dev (identity `none`): a dated model, the default (undated) model, a Write/Edit tool turn and an API
  error. What arrives (headers, temporality, attributes); then each session's exports, replayed as received
  into the real collector running the configuration the dev preview rendered (tests/collector/running.py,
  file exporters standing in for the AWS ones), whose processors set deployment.environment and `unattributed`;
  its output through the AWS exporters' model (tests/exporters.py, no processor modelled) into the aggregator
  (moto) and the Firehose transform: tokens per user, model and type equal what the fake billed; cost is the
  client's own for a model the price table does not know and the table's for one it does; no row is lost.
- Path A, prod (identity `jwt`): the rendered headers helper path runs a script printing a bearer JWT signed
  by a test key with Pulumi.prod.yaml's issuer, audience and claim names; it is on every export request.
- Path B, prod (bearerTokenIngest): the repository's scripts/claude-cloudwatch-key as the headers helper,
  reading the team's key with the AWS CLI from Secrets Manager (a moto server on 127.0.0.1).

Nothing leaves 127.0.0.1: the client's proxies point at a closed loopback port (claude_client), and the AWS
CLI is pointed at moto with AWS_ENDPOINT_URL.
"""

from __future__ import annotations

import base64
import copy
import json
import os
import re
import shutil
import subprocess
from collections import Counter, defaultdict
from collections.abc import Mapping
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import boto3
import jwt
import pytest
import yaml
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from components.collector_config import UNATTRIBUTED
from lambda_src.analytics_transform.handler import Settings as TransformSettings
from lambda_src.analytics_transform.handler import transform
from lambda_src.common import rollups as keys
from lambda_src.common.pricing import DEFAULT_PRICE_TABLE, model_version
from offline.preview import PROJECT_ROOT, PreviewResult
from tests.clock import DEFAULT_START, Clock
from tests.collector.running import Task, post, running_collector
from tests.exporters import with_ids
from tests.harness import claude_client as cc
from tests.harness.fake_anthropic import ApiError, Text, Tools, ToolUse
from tests.harness.live_pipeline import (
    MANAGED_SETTINGS_POSSIBLE,
    LiveRun,
    RenderedSessionSpec,
    collector_config,
    emf_events,
    event_log_events,
    managed_settings,
    plan_of,
)
from tests.harness.record import DATED_MODEL, Point, Record, ledger_totals, token_totals
from tests.lambda_src.rollup_table import Deployed
from tests.telemetry import firehose_event, logs_batch

USER_ID = re.compile(r"^[0-9a-f]{64}$")
UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
DELTA = "AGGREGATION_TEMPORALITY_DELTA"
CUMULATIVE = "AGGREGATION_TEMPORALITY_CUMULATIVE"
TEMPORALITY = "OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE"
ORGANISATION = ("department", "team.id", "cost_center")
# A developer's shell that asks for cumulative counters: the managed settings pin delta, and win.
CUMULATIVE_SHELL = {TEMPORALITY: "cumulative"}
MILLION = Decimal(1_000_000)


def _require_client() -> None:
    try:
        cc.require_client()
    except cc.ClientMissingError as missing:
        pytest.fail(f"{missing}. The live pipeline tests need it: `make client` installs it.")


def _run(spec: cc.SessionSpec) -> LiveRun:
    _require_client()
    run = LiveRun(cc.run_session(spec))
    assert run.result.rejected_exports == [], run.result.rejected_exports
    return run


def _public(rendered: Mapping[str, Any], helper: str | None = None) -> dict[str, Any]:
    """The rendered settings as run_session reports what it handed the client: the receiver as a placeholder."""
    settings = json.loads(json.dumps(rendered))
    settings["env"]["OTEL_EXPORTER_OTLP_ENDPOINT"] = cc.RECEIVER_PLACEHOLDER
    if helper is not None:
        settings["otelHeadersHelper"] = helper
    return settings


# --- Path A, dev: identity mode none ---------------------------------------------------------------------------

WRITE_EDIT: tuple[Tools | Text, ...] = (
    Tools((ToolUse("Write", {"file_path": "{repo}/greet.py", "content": 'def greet():\n    return "hi"\n'}),)),
    Tools(
        (
            ToolUse(
                "Edit",
                {
                    "file_path": "{repo}/greet.py",
                    "old_string": '    return "hi"\n',
                    "new_string": '    name = "you"\n    return f"hi {name}"\n',
                },
            ),
        )
    ),
    Text("Wrote and edited greet.py."),
)


def _dev_specs(rendered: Mapping[str, Any]) -> dict[str, RenderedSessionSpec]:
    hello = (Text("Hello!"),)
    return {
        "dated-model": RenderedSessionSpec(
            prompt="Say hello.", script=hello, model=DATED_MODEL, rendered=rendered, user_env=CUMULATIVE_SHELL
        ),
        "default-model": RenderedSessionSpec(
            prompt="Say hello.", script=hello, rendered=rendered, user_env=CUMULATIVE_SHELL
        ),
        "write-edit": RenderedSessionSpec(
            prompt="Write greet.py, then make it greet by name.",
            script=WRITE_EDIT,
            allowed_tools=("Write", "Edit"),
            rendered=rendered,
            user_env=CUMULATIVE_SHELL,
        ),
        # Two attempts (a developer's CLAUDE_CODE_MAX_RETRIES, not the managed settings), both overloaded.
        "api-error": RenderedSessionSpec(
            prompt="Read the README.",
            script=(
                Tools((ToolUse("Read", {"file_path": "{repo}/README.md"}),)),
                ApiError(529, "overloaded_error", "Overloaded", retry_after_ms=50),
                ApiError(529, "overloaded_error", "Overloaded", retry_after_ms=50),
            ),
            rendered=rendered,
            user_env={**CUMULATIVE_SHELL, "CLAUDE_CODE_MAX_RETRIES": "1"},
        ),
    }


@pytest.fixture(scope="module")
def dev_settings(dev_preview: PreviewResult) -> dict[str, Any]:
    plan = plan_of(dev_preview)
    parameter = plan["outputs"]["managedSettingsParameter"]
    rendered = managed_settings(plan, parameter)
    assert rendered == plan["outputs"]["managedSettings"]
    return rendered


@pytest.fixture(scope="module")
def dev_runs(dev_settings: dict[str, Any]) -> dict[str, LiveRun]:
    return {name: _run(spec) for name, spec in _dev_specs(dev_settings).items()}


def test_dev_sessions_ran_with_the_rendered_settings_and_only_the_endpoint_replaced(
    dev_settings: dict[str, Any], dev_runs: dict[str, LiveRun]
) -> None:
    assert dev_settings["env"]["OTEL_EXPORTER_OTLP_ENDPOINT"] == "https://otel.dev.example.com"
    assert dev_settings["env"][TEMPORALITY] == "delta"
    assert "otelHeadersHelper" not in dev_settings  # identity mode none: no token
    for name, run in dev_runs.items():
        assert run.result.settings == _public(dev_settings), name
        assert run.result.ledger, f"{name}: the fake billed nothing"
    assert dev_runs["api-error"].result.returncode == 1
    assert all(run.result.returncode == 0 for name, run in dev_runs.items() if name != "api-error")


def test_dev_sessions_read_the_settings_as_the_machines_managed_settings(dev_runs: dict[str, LiveRun]) -> None:
    if not MANAGED_SETTINGS_POSSIBLE:
        pytest.fail(
            "the rendered settings were given with --settings, not as /etc/claude-code/managed-settings.json: "
            "that needs root and unshare(1) (util-linux) for a private mount namespace (see claude_client)"
        )
    for name, run in dev_runs.items():
        (resolved,) = run.events("managed_settings_resolved")
        kind, sources = resolved.attributes["managed_settings.sources"]
        assert (kind, sources) == ("array", {"values": [{"stringValue": "file"}]}), name


def test_dev_exports_are_protobuf_over_http_without_credentials(dev_runs: dict[str, LiveRun]) -> None:
    for name, run in dev_runs.items():
        exports = run.result.exports
        assert {request.path for request in exports} == {"/v1/metrics", "/v1/logs"}, name
        for request in exports:
            assert request.content_type == "application/x-protobuf"
            assert request.content_encoding == ""
            assert request.header("authorization") is None
            assert (request.header("user-agent") or "").startswith("OTel-OTLP-Exporter-JavaScript/")


def test_dev_counters_are_delta_because_the_settings_pin_it(dev_runs: dict[str, LiveRun]) -> None:
    for name, run in dev_runs.items():
        assert run.points, name
        assert {point.temporality for point in run.points} == {DELTA}, name


def test_without_the_pin_a_developers_shell_would_make_them_cumulative(dev_settings: dict[str, Any]) -> None:
    """The control of the test above: the same shell, the rendered settings without the temporality key."""
    unpinned = json.loads(json.dumps(dev_settings))
    del unpinned["env"][TEMPORALITY]
    run = _run(
        RenderedSessionSpec(prompt="Say hello.", script=(Text("Hello!"),), rendered=unpinned, user_env=CUMULATIVE_SHELL)
    )
    assert {point.temporality for point in run.points} == {CUMULATIVE}


def test_dev_points_and_records_carry_identity_model_and_type(dev_runs: dict[str, LiveRun]) -> None:
    for name, run in dev_runs.items():
        assert USER_ID.match(run.user_id), name
        for item in run.items:
            assert UUID.match(str(item.attributes["session.id"][1])), name
            # The dev stack renders no OTEL_RESOURCE_ATTRIBUTES: the collector fills `unattributed`.
            assert not set(ORGANISATION) & (set(item.attributes) | set(item.resource)), name
        billed_models = {entry.model for entry in run.result.ledger}
        tokens = run.named("claude_code.token.usage")
        assert {point.attr("model") for point in tokens} == billed_models, name
        assert {point.attr("type") for point in tokens} == set(keys.TOKEN_ATTRIBUTES), name
        requests = run.events("api_request")
        assert sorted(record.attr("request_id") for record in requests) == sorted(
            entry.request_id for entry in run.result.ledger
        ), name
    assert {entry.model for entry in dev_runs["dated-model"].result.ledger} == {DATED_MODEL}
    (default_model,) = {entry.model for entry in dev_runs["default-model"].result.ledger}
    assert not re.search(r"-\d{8}$", default_model)
    edits = dev_runs["write-edit"]
    decisions = sorted(
        (p.attr("tool_name"), p.attr("decision"), p.value) for p in edits.named("claude_code.code_edit_tool.decision")
    )
    assert decisions == [("Edit", "accept", 1.0), ("Write", "accept", 1.0)]
    assert sorted((r.attr("tool_name"), r.attr("success")) for r in edits.events("tool_result")) == [
        ("Edit", "true"),
        ("Write", "true"),
    ]
    (error,) = dev_runs["api-error"].events("api_error")
    assert (error.attr("status_code"), error.attr("error")) == (529, "Overloaded")


@pytest.fixture(scope="module")
def dev_collected(
    collector_binary: Path,
    dev_preview: PreviewResult,
    dev_runs: dict[str, LiveRun],
    tmp_path_factory: pytest.TempPathFactory,
) -> dict[str, Task]:
    """Each dev session's exports through the real collector with the dev stack's rendered configuration: one
    collector per session (so each session's output is its own), sent every request in the order the client
    sent it, then stopped (SIGTERM flushes its batches to the file exporters)."""
    config = collector_config(dev_preview)
    collected = {}
    for name, run in dev_runs.items():
        out = tmp_path_factory.mktemp(f"dev-collector-{name}")
        with running_collector(collector_binary, config, out) as collector:
            for request in run.result.exports:
                # The body as the client sent it (protobuf, uncompressed: see the test of the exports above).
                post(f"{collector.otlp_http}{request.path}", request.body.SerializeToString(), {})
        collected[name] = Task(collector)
    return collected


def test_the_collector_keeps_every_point_and_record_and_fills_environment_and_unattributed(
    dev_preview: PreviewResult, dev_runs: dict[str, LiveRun], dev_collected: dict[str, Task]
) -> None:
    """The real collector's processors, not the exporter model, set deployment.environment and fill the
    organisation attributes the dev settings do not send."""
    (environment,) = collector_config(dev_preview)["processors"]["resource/environment"]["attributes"]
    for name, run in dev_runs.items():
        task = dev_collected[name]
        assert len(task.points) == len(run.points), name
        assert len(task.records) == len(run.records), name
        collected: list[Point | Record] = [*task.points, *task.records]
        for item in collected:
            resource = {key: value for key, (_, value) in item.resource.items()}
            assert resource["deployment.environment"] == environment["value"], name
            assert {key: resource[key] for key in ORGANISATION} == dict.fromkeys(ORGANISATION, UNATTRIBUTED), name


class DevPipeline:
    """The dev stack's rendered collector (the real binary, its AWS exporters modelled on its output), the
    aggregator and the transform, fed the dev sessions."""

    def __init__(self, preview: PreviewResult, runs: Mapping[str, LiveRun], collected: Mapping[str, Task]) -> None:
        config = collector_config(preview)
        exporters = config["exporters"]
        (environment_attribute,) = config["processors"]["resource/environment"]["attributes"]
        self.environment = str(environment_attribute["value"])
        self.awsemf: dict[str, Any] = exporters["awsemf"]
        self.metrics_group = str(self.awsemf["log_group_name"])
        (events_exporter,) = [value for key, value in exporters.items() if key.startswith("awscloudwatchlogs")]
        self.events_group = str(events_exporter["log_group_name"])
        self.runs = runs
        # One subscription delivery per session and log group, as CloudWatch Logs would send them.
        self.deliveries: list[tuple[str, list[dict[str, Any]]]] = []
        next_id = 1
        for name in runs:
            task = collected[name]
            for group, events in (
                (self.metrics_group, emf_events(task.metrics, self.awsemf)),
                (self.events_group, event_log_events(task.logs)),
            ):
                assert events
                self.deliveries.append((group, with_ids(events, start=next_id)))
                next_id += len(events)

    @property
    def log_groups(self) -> dict[str, Any]:
        return {self.metrics_group: "metrics", self.events_group: "events"}

    def latest(self) -> datetime:
        """The latest time the client stamped on anything: the pipeline's "now", derived from the data."""
        millis = max(stamp for run in self.runs.values() for stamp in run.timestamps_ms())
        return datetime.fromtimestamp(millis / 1000, UTC)


@pytest.fixture
def dev_pipeline(
    dev_preview: PreviewResult, dev_runs: dict[str, LiveRun], dev_collected: dict[str, Task]
) -> DevPipeline:
    return DevPipeline(dev_preview, dev_runs, dev_collected)


def _billed_by_user_model_type(runs: Mapping[str, LiveRun]) -> dict[tuple[str, str, str], int]:
    totals: Counter[tuple[str, str, str]] = Counter()
    for run in runs.values():
        for (model, token_type), tokens in ledger_totals(e.as_dict() for e in run.result.ledger).items():
            totals[(run.user_id, model, token_type)] += tokens
    return dict(totals)


def _stored(usd: Decimal) -> Decimal:
    """As the rollup table keeps an amount: exact to 12 decimals (a millionth of a cent)."""
    return usd.quantize(Decimal("1e-12"))


def _table_cost(run: LiveRun) -> Decimal:
    """The price table's price of what the fake billed in this session."""
    total = Decimal(0)
    for (model, token_type), tokens in ledger_totals(e.as_dict() for e in run.result.ledger).items():
        price = DEFAULT_PRICE_TABLE.price(DEFAULT_PRICE_TABLE.key_for(model), token_type)
        assert price is not None, model
        total += Decimal(tokens) * Decimal(repr(price)) / MILLION
    return total


def _model_key(model: str) -> str:
    """How the rollups and the lake name a model: its price table key, else its normalised id."""
    return DEFAULT_PRICE_TABLE.key_for(model) or model_version(model) or model


def test_dev_rollups_equal_what_the_api_billed(dev_pipeline: DevPipeline, deployed: Deployed) -> None:
    runs = dev_pipeline.runs
    deployed.settings = replace(deployed.settings, log_groups=dev_pipeline.log_groups)
    deployed.clock.set(dev_pipeline.latest())
    summaries = [deployed.deliver(logs_batch(group, events)) for group, events in dev_pipeline.deliveries]
    assert {summary["status"] for summary in summaries} == {"ok"}
    assert sum(summary["quarantined"] for summary in summaries) == 0
    points = sum(len(run.points) for run in runs.values())
    records = sum(len(run.records) for run in runs.values())
    assert sum(summary["data_points"] for summary in summaries) == points
    assert sum(summary["events"] for summary in summaries) == records
    assert deployed.queued() == []

    user_tokens: Counter[tuple[str, str]] = Counter()
    model_tokens: Counter[tuple[str, str]] = Counter()
    cost: dict[str, Decimal] = defaultdict(Decimal)
    client_cost: dict[str, Decimal] = defaultdict(Decimal)
    counted: dict[tuple[str, str], Decimal] = defaultdict(Decimal)  # (event or quality item, counter) -> total
    for (pk, sk), item in deployed.items().items():
        kind = pk.split("#", 1)[0]
        if kind == "USER" and sk.startswith("DAY#"):
            user = pk.removeprefix("USER#")
            assert item["source"] == "user.id"  # an API-key login: the installation hash identifies
            for token_type, attribute in keys.TOKEN_ATTRIBUTES.items():
                user_tokens[(user, token_type)] += int(item.get(attribute, 0))
            cost[user] += item.get("cost_usd", Decimal(0))
            client_cost[user] += item.get("client_cost_usd", Decimal(0))
        elif kind == "DAY" and not sk.endswith(f"#{keys.NO_VALUE}"):
            for token_type, attribute in keys.TOKEN_ATTRIBUTES.items():
                model_tokens[(sk.split("#", 1)[1], token_type)] += int(item.get(attribute, 0))
        elif kind in ("EVENTS", "QUALITY"):
            for name, value in item.items():
                if isinstance(value, Decimal) and name != keys.TTL_ATTRIBUTE:
                    counted[(sk, name)] += value

    # Tokens by user, model and type. A user's day item has no model: each session is a user of its own (a HOME
    # of its own) with one model, so the user names the model; the day items by model hold every user's.
    assert len({run.user_id for run in runs.values()}) == len(runs)
    assert all(len({entry.model for entry in run.result.ledger}) == 1 for run in runs.values())
    user_model = {run.user_id: _model_key(run.result.ledger[0].model) for run in runs.values()}
    billed = Counter(
        {(user, _model_key(model), kind): n for (user, model, kind), n in _billed_by_user_model_type(runs).items()}
    )
    assert {(user, user_model[user], kind): n for (user, kind), n in user_tokens.items()} == billed
    billed_models: Counter[tuple[str, str]] = Counter()
    for (_, model, kind), tokens in billed.items():
        billed_models[(model, kind)] += tokens
    assert +model_tokens == +billed_models

    # Cost: the table's price where it has one, else the client's own cost (never $0); the client's always beside.
    priced = {name for name, run in runs.items() if DEFAULT_PRICE_TABLE.key_for(run.result.ledger[0].model)}
    assert "dated-model" in priced and priced != set(runs), "the sessions need both a priced and an unpriced model"
    unpriced_tokens: Counter[str] = Counter()
    for name, run in runs.items():
        user = run.user_id
        assert client_cost[user] == _stored(run.client_cost) > 0, name
        if name in priced:
            assert cost[user] == _stored(_table_cost(run)), name
            assert cost[user] == pytest.approx(client_cost[user], rel=Decimal("1e-6")), name  # our list price
        else:
            assert cost[user] == _stored(run.client_cost), name
            unpriced_tokens[user_model[user]] += sum(n for (u, _, _), n in billed.items() if u == user)
    assert {
        sk.removeprefix("unpriced#"): int(value)
        for (sk, name), value in counted.items()
        if sk.startswith("unpriced#") and name == "unpriced_tokens"
    } == unpriced_tokens  # data quality counts them

    # The events: one api_request per billed answer, the API error, and every point and record accounted for.
    requests_by_model = Counter(_model_key(e.model) for run in runs.values() for e in run.result.ledger)
    assert {
        sk.removeprefix("api_request#"): int(value)
        for (sk, name), value in counted.items()
        if sk.startswith("api_request#") and name == "requests"
    } == requests_by_model
    assert sum(value for (sk, name), value in counted.items() if sk.startswith("api_error#") and name == "errors") == 1
    assert (counted[("source#user.id", "points")], counted[("source#user.id", "events")]) == (points, records)


def test_dev_lake_keeps_every_point_and_every_event(dev_pipeline: DevPipeline, clock: Clock) -> None:
    clock.set(dev_pipeline.latest())
    settings = TransformSettings(dev_pipeline.log_groups)
    put_back: list[bytes] = []

    def put(records: list[bytes]) -> list[bool]:
        put_back.extend(records)
        return [True] * len(records)

    payloads = [logs_batch(group, events) for group, events in dev_pipeline.deliveries]
    response = transform(firehose_event(payloads), settings, put, clock)
    assert {record["result"] for record in response["records"]} <= {"Ok", "Dropped"}
    rows = [
        json.loads(line)
        for record in response["records"]
        if record["result"] == "Ok"
        for line in base64.b64decode(record["data"]).splitlines()
    ] + [json.loads(line) for data in put_back for line in data.splitlines() if b'"row_id"' in line]
    metric_rows = [row for row in rows if "metric_name" in row]
    event_rows = [row for row in rows if "event_name" in row]
    runs = dev_pipeline.runs.values()
    assert len(metric_rows) == sum(len(run.points) for run in runs)
    assert len(event_rows) == sum(len(run.records) for run in runs)
    lake: Counter[tuple[str, str, str]] = Counter()
    for row in metric_rows:
        if row["metric_name"] == "claude_code.token.usage":
            lake[(row["user_id"], row["model"], row["type"])] += int(row["value"])
    assert dict(lake) == _billed_by_user_model_type(dev_pipeline.runs)

    for row in metric_rows:
        assert row["user_key_source"] == "user.id" and row["deployment_environment"] == dev_pipeline.environment
        assert (row["department"], row["team_id"], row["cost_center"]) == ("unattributed",) * 3


# --- Path A, prod: identity mode jwt ---------------------------------------------------------------------------

PROD_IDENTITY = {
    "email": "ada.lovelace@example.com",
    "userId": "00u1ada2lovelace3",
    "department": "research",
    "team": "platform",
    "costCenter": "CC-2040",
}


def _stack_setting(stack: str, key: str) -> Any:
    return yaml.safe_load((PROJECT_ROOT / f"Pulumi.{stack}.yaml").read_text())["config"][
        f"claude-code-monitoring:{key}"
    ]


@pytest.fixture(scope="module")
def signing_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="module")
def prod_token(signing_key: rsa.RSAPrivateKey) -> str:
    """A token as the identity provider would issue it: RS256, Pulumi.prod.yaml's issuer, audience and claim names.

    Its times come from the test clock's fixed start, not the wall clock (nothing here validates them)."""
    identity = _stack_setting("prod", "collector")["identity"]
    issued = DEFAULT_START
    payload: dict[str, Any] = {
        "iss": identity["issuer"],
        "aud": identity["audience"],
        "iat": int(issued.timestamp()),
        "exp": int((issued + timedelta(hours=1)).timestamp()),
        **{identity["claims"][field]: value for field, value in PROD_IDENTITY.items()},
    }
    pem = signing_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return jwt.encode(payload, pem, algorithm="RS256", headers={"kid": "test-key"})


@pytest.fixture(scope="module")
def prod_run(prod_preview: PreviewResult, prod_token: str) -> tuple[dict[str, Any], LiveRun]:
    plan = plan_of(prod_preview)
    rendered = managed_settings(plan, plan["outputs"]["managedSettingsParameter"])
    helper = f"#!/bin/sh\nprintf '%s\\n' '{{\"Authorization\": \"Bearer {prod_token}\"}}'\n"
    spec = RenderedSessionSpec(prompt="Say hello.", script=(Text("Hello!"),), rendered=rendered, headers_helper=helper)
    return rendered, _run(spec)


def test_prod_settings_name_the_headers_helper_and_pin_delta(prod_run: tuple[dict[str, Any], LiveRun]) -> None:
    rendered, run = prod_run
    assert _stack_setting("prod", "collector")["identity"]["mode"] == "jwt"
    assert rendered["otelHeadersHelper"] == _stack_setting("prod", "collector")["otelHeadersHelper"]
    assert rendered["env"]["OTEL_EXPORTER_OTLP_ENDPOINT"] == "https://otel.example.com"
    assert run.result.settings == _public(rendered, helper="<otel-headers-helper.sh>")
    assert run.result.returncode == 0 and run.result.ledger
    assert {point.temporality for point in run.points} == {DELTA}
    assert token_totals(run.points) == ledger_totals(e.as_dict() for e in run.result.ledger)
    # Identity is the token's alone: the settings put no organisation attributes on the client's telemetry.
    for item in run.items:
        assert not set(ORGANISATION) & (set(item.attributes) | set(item.resource))


def test_prod_every_export_carries_the_identity_providers_token(
    prod_run: tuple[dict[str, Any], LiveRun], prod_token: str, signing_key: rsa.RSAPrivateKey
) -> None:
    _, run = prod_run
    exports = run.result.exports
    assert {request.path for request in exports} == {"/v1/metrics", "/v1/logs"}
    assert [request.header("authorization") for request in exports] == [f"Bearer {prod_token}"] * len(exports)
    identity = _stack_setting("prod", "collector")["identity"]
    (authorization,) = {request.header("authorization") for request in exports}
    assert authorization is not None
    claims = jwt.decode(
        authorization.removeprefix("Bearer "),
        signing_key.public_key(),
        algorithms=["RS256"],
        audience=identity["audience"],
        issuer=identity["issuer"],
        options={"verify_exp": False, "verify_iat": False, "verify_nbf": False},  # no wall clock in tests
    )
    assert {field: claims[identity["claims"][field]] for field in PROD_IDENTITY} == PROD_IDENTITY
    assert claims["exp"] > claims["iat"]


# --- Path B, prod: bearer-token direct ingest --------------------------------------------------------------------

INGEST_TEAM = "pilot-data-science"
INGEST_KEY = "ACWKtest+Key/For=Loopback0123456789"
HEADERS_SCRIPT = PROJECT_ROOT / "scripts" / "claude-cloudwatch-key"


def _aws_cli() -> str:
    found = shutil.which("aws", path=os.environ.get("PATH"))
    if found is None:
        pytest.fail(
            "the AWS CLI is not on PATH: scripts/claude-cloudwatch-key needs it (the PyPI package `awscli`, "
            "for example `.tools/bin/uv add --dev awscli==1.46.3`, which matches the locked botocore)"
        )
    return found


@pytest.fixture(scope="module")
def ingest_run(prod_preview: PreviewResult, moto_endpoint: str) -> tuple[dict[str, Any], LiveRun]:
    _aws_cli()
    plan = plan_of(prod_preview)
    rendered = managed_settings(plan, plan["outputs"]["ingestSettingsParameters"][INGEST_TEAM])
    secret_arn = rendered["env"]["CLAUDE_CODE_INGEST_SECRET_ARN"]
    assert secret_arn == plan["outputs"]["ingestSecretArns"][INGEST_TEAM]
    region = secret_arn.split(":")[3]
    secrets = boto3.client(
        "secretsmanager",
        region_name=region,
        endpoint_url=moto_endpoint,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    # moto names a secret's ARN with a random suffix but finds a full ARN by its last part: a secret named so
    # answers the ARN the settings render (moto's account, 123456789012, is the mocks' account too).
    secrets.create_secret(Name=secret_arn.rsplit(":", 1)[1], SecretString=INGEST_KEY)
    developer_shell = {
        "PATH": os.environ.get("PATH", ""),
        "AWS_ENDPOINT_URL": moto_endpoint,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_EC2_METADATA_DISABLED": "true",
    }
    # The helper run by hand first, as a developer checks it: it prints the header, and the AWS CLI's first start
    # (compiling its bytecode, seconds on a fresh machine) is behind us before the client's short exit flush.
    by_hand = subprocess.run(
        [str(HEADERS_SCRIPT)],
        env={**developer_shell, "CLAUDE_CODE_INGEST_SECRET_ARN": secret_arn},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert by_hand.returncode == 0, by_hand.stderr
    assert json.loads(by_hand.stdout) == {"Authorization": f"Bearer {INGEST_KEY}"}
    # One change besides the endpoint: a 1 s export interval (rendered: 60 s) and a turn that runs a few seconds,
    # so the helper and an export run during the session. At exit the client gives the helper and the last export
    # only its shutdown timeout (about 2 s, CLAUDE_CODE_OTEL_SHUTDOWN_TIMEOUT_MS in 2.1.328): the AWS CLI v1 on a
    # loaded machine can miss it, and a real laptop with a slow credential process would too (docs say so).
    during_session = copy.deepcopy(rendered)
    during_session["env"]["OTEL_METRIC_EXPORT_INTERVAL"] = "1000"
    spec = RenderedSessionSpec(
        prompt="Say hello after a moment.",
        script=(Tools((ToolUse("Bash", {"command": "sleep 4"}),)), Text("Hello!")),
        model=DATED_MODEL,
        rendered=during_session,
        helper_command=str(HEADERS_SCRIPT),
        # The developer's shell: their AWS credentials (throwaway here) and moto as every AWS endpoint. The
        # secret's ARN is not in it: the helper gets CLAUDE_CODE_INGEST_SECRET_ARN from the settings' env block.
        user_env={key: value for key, value in developer_shell.items() if key != "PATH"},
        expect_exports=False,  # metrics only: run_session would wait for logs
    )
    return rendered, _run(spec)


def test_ingest_settings_are_the_rendered_ones(ingest_run: tuple[dict[str, Any], LiveRun]) -> None:
    rendered, run = ingest_run
    assert rendered["otelHeadersHelper"] == "/usr/local/bin/claude-cloudwatch-key"
    during_session = copy.deepcopy(rendered)
    during_session["env"]["OTEL_METRIC_EXPORT_INTERVAL"] = "1000"  # the one change besides the endpoint
    assert run.result.settings == _public(during_session, helper=str(HEADERS_SCRIPT))
    assert run.result.returncode == 0 and run.result.ledger
    assert "otelHeadersHelper failed" not in run.result.stderr


def test_ingest_exports_metrics_only_with_the_teams_key(ingest_run: tuple[dict[str, Any], LiveRun]) -> None:
    rendered, run = ingest_run
    exports = run.result.exports
    assert exports, "nothing exported"
    # Logs are off in the settings; the metrics path is CloudWatch's OTLP path once the real endpoint is put back.
    assert {request.path for request in exports} == {"/v1/metrics"}
    region = rendered["env"]["CLAUDE_CODE_INGEST_SECRET_ARN"].split(":")[3]
    assert rendered["env"]["OTEL_EXPORTER_OTLP_ENDPOINT"] + "/v1/metrics" == (
        f"https://monitoring.{region}.amazonaws.com/v1/metrics"
    )
    for request in exports:
        assert request.header("authorization") == f"Bearer {INGEST_KEY}"
        assert request.content_type == "application/x-protobuf"
    assert {point.temporality for point in run.points} == {DELTA}
    assert token_totals(run.points) == ledger_totals(e.as_dict() for e in run.result.ledger)


def test_ingest_points_carry_the_team_and_the_installation_but_no_session(
    ingest_run: tuple[dict[str, Any], LiveRun],
) -> None:
    rendered, run = ingest_run
    team = dict(pair.split("=", 1) for pair in rendered["env"]["OTEL_RESOURCE_ATTRIBUTES"].split(","))
    assert team["team.id"] == INGEST_TEAM
    assert run.points
    for point in run.points:
        assert "session.id" not in point.attributes  # OTEL_METRICS_INCLUDE_SESSION_ID=false
        assert "user.account_uuid" not in point.attributes  # OTEL_METRICS_INCLUDE_ACCOUNT_UUID=false
        # What the README must say: user.id cannot be turned off, so every Path B series is per installation.
        assert USER_ID.match(str(point.attr("user.id")))
        assert {key: point.attr(key) for key in team} == team
        assert {key: value for key, (_, value) in point.resource.items() if key in team} == team
