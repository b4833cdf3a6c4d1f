"""Path A end to end, on loopback: the real Claude Code client, the load balancer's `jwt-validation` action
(tests/collector/alb_jwt_proxy.py), the real collector with the prod stack's rendered configuration, the
exporters' model (tests/exporters.py), the aggregator (moto) and the Firehose transform.

- The client runs with the managed settings the prod preview declares (its SSM parameter), as the machine's
  managed settings file; only the endpoint (the proxy, plain http on loopback) and the headers helper's path
  (a script printing a JWT of a test key, with the claims Pulumi.prod.yaml names) are replaced. The developer
  also tries to pass as someone else: `user.email=mallory@example.com,department=spoofed` in their own
  OTEL_RESOURCE_ATTRIBUTES, which the client copies onto every point and record.
- The proxy validates the token as the prod HTTPS listener's rendered action says (issuer, `aud`) against
  the test key's JWKS and forwards the request unchanged; it refuses anything else with 401.
- The collector runs the configuration the prod preview wrote (collector-*.yaml, identity `jwt`), with file
  exporters standing in for awsemf and awscloudwatchlogs (tests/collector/running.py; the Go module
  proxy here serves neither AWS exporter). Its output, OTLP JSON after every processor, goes through the
  exporters' model into the aggregator and the transform.

Two collector tasks behind one load balancer: the same configuration twice, the proxy sending each signal's
requests to the tasks in turn, and a session long enough to export several times. With delta temporality
(what the managed settings pin) the points of both tasks add up to exactly what the API billed; forced to
cumulative, every export repeats the running total, and a sum counts each earlier total again.
"""

from __future__ import annotations

import base64
import json
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any, Literal

import jwt
import pytest
import yaml
from cryptography.hazmat.primitives.asymmetric import rsa
from google.protobuf import json_format
from jwt.algorithms import RSAAlgorithm
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest

from components.collector_config import BEARER_ATTRIBUTE, DIMENSION_SETS
from lambda_src.analytics_transform.handler import Settings as TransformSettings
from lambda_src.analytics_transform.handler import transform
from lambda_src.common import rollups as keys
from lambda_src.common.pricing import DEFAULT_PRICE_TABLE
from lambda_src.common.telemetry import PER_USER_ATTRIBUTES
from offline.preview import PROJECT_ROOT, PreviewResult
from tests.clock import Clock
from tests.collector.alb_jwt_proxy import AlbJwtProxy, Handled, JwtValidation
from tests.collector.running import Task, logs_request, metrics_request, running_collector
from tests.exporters import cloudwatch_log_events, cloudwatch_standard_units, emf_log_events, with_ids
from tests.harness import claude_client as cc
from tests.harness.fake_anthropic import Text, Tools, ToolUse, Turn
from tests.harness.live_pipeline import RenderedSessionSpec, collector_config, managed_settings, plan_of
from tests.harness.record import DATED_MODEL, Point, Record, ledger_totals, log_records, metric_points, token_totals
from tests.lambda_src import conftest as lambda_fixtures
from tests.lambda_src.rollup_table import Deployed
from tests.telemetry import firehose_event, logs_batch

# The moto fixtures of the Lambda tests (a moto server on 127.0.0.1); their `deployed`, a rollup table with the
# aggregator wired to it, is `rollups` here.
moto_endpoint = lambda_fixtures.moto_endpoint
aws_client = lambda_fixtures.aws_client
rollups = lambda_fixtures.deployed

STACK_FILE = PROJECT_ROOT / "Pulumi.prod.yaml"
TEMPORALITY = "OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE"
DELTA = "AGGREGATION_TEMPORALITY_DELTA"
CUMULATIVE = "AGGREGATION_TEMPORALITY_CUMULATIVE"
TOKEN_METRIC = "claude_code.token.usage"
COST_METRIC = "claude_code.cost.usage"
MILLION = Decimal(1_000_000)
TOKEN_LIFETIME_S = 3600

SPOOFED_EMAIL = "mallory@example.com"
SPOOFED_DEPARTMENT = "spoofed"
# The developer's own shell: who they would like to be (the prod settings set no OTEL_RESOURCE_ATTRIBUTES, so
# this is in force), and cumulative counters (which the settings' pin overrides).
SPOOFING_SHELL = {
    "OTEL_RESOURCE_ATTRIBUTES": f"user.email={SPOOFED_EMAIL},department={SPOOFED_DEPARTMENT}",
    TEMPORALITY: "cumulative",
}

ADA = {
    "email": "ada@example.com",
    "userId": "00u-ada-lovelace",
    "department": "research",
    "team": "analytical-engines",
    "costCenter": "CC-1843",
}

WRITE_EDIT: tuple[Turn, ...] = (
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


# The identity provider: a test key, its JWKS, tokens with the stack's claim names -----------------------------


def stack_claim_names() -> dict[str, str]:
    """identity.claims of Pulumi.prod.yaml: attribute (email, userId, department, team, costCenter) -> claim."""
    config = yaml.safe_load(STACK_FILE.read_text())["config"]
    claims: dict[str, str] = config["claude-code-monitoring:collector"]["identity"]["claims"]
    return claims


class TestIdentityProvider:
    """An RSA key with its JWKS, signing tokens as the organisation's identity provider would."""

    __test__ = False

    def __init__(self, kid: str = "test-key-1") -> None:
        self.kid = kid
        self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)

    @property
    def jwks(self) -> dict[str, Any]:
        public = json.loads(str(RSAAlgorithm.to_jwk(self.key.public_key())))
        return {"keys": [{**public, "kid": self.kid, "alg": "RS256", "use": "sig"}]}

    def token(self, claims: Mapping[str, Any], algorithm: str = "RS256") -> str:
        key: Any = self.key if algorithm == "RS256" else "a shared secret, not the IdP's key"
        return jwt.encode(dict(claims), key, algorithm=algorithm, headers={"kid": self.kid})


def token_claims(validation: JwtValidation, person: Mapping[str, str], clock: Clock) -> dict[str, Any]:
    """A token as the IdP issues it to `person`: the listener's issuer and audience, valid for an hour."""
    names = stack_claim_names()
    (audience,) = [claim for claim in validation.additional_claims if claim.name == "aud"]
    now = int(clock())
    aud: str | list[str] = audience.values[0] if audience.format != "string-array" else [audience.values[0]]
    return {
        "iss": validation.issuer,
        "aud": aud,
        "iat": now,
        "nbf": now,
        "exp": now + TOKEN_LIFETIME_S,
        **{names[attribute]: value for attribute, value in person.items()},
    }


def headers_helper(token: str) -> str:
    """The otelHeadersHelper: prints the export headers as a JSON object."""
    return "#!/bin/sh\nprintf '%s\\n' '" + json.dumps({"Authorization": f"Bearer {token}"}) + "'\n"


# The prod stack as rendered ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ProdStack:
    settings: dict[str, Any]
    """The Claude Code managed settings the SSM parameter holds."""
    collector: dict[str, Any]
    """The collector configuration of the task definition."""
    validation: JwtValidation
    """The HTTPS listener's jwt-validation action."""

    @property
    def environment(self) -> str:
        (attribute,) = self.collector["processors"]["resource/environment"]["attributes"]
        return str(attribute["value"])

    @property
    def awsemf(self) -> dict[str, Any]:
        exporter: dict[str, Any] = self.collector["exporters"]["awsemf"]
        return exporter

    @property
    def log_groups(self) -> dict[str, Literal["metrics", "events"]]:
        (events,) = [v for k, v in self.collector["exporters"].items() if k.startswith("awscloudwatchlogs")]
        return {str(self.awsemf["log_group_name"]): "metrics", str(events["log_group_name"]): "events"}


@pytest.fixture(scope="module")
def prod(prod_preview: PreviewResult) -> ProdStack:
    plan = plan_of(prod_preview)
    settings = managed_settings(plan, plan["outputs"]["managedSettingsParameter"])
    return ProdStack(settings, collector_config(prod_preview), JwtValidation.of_plan(plan))


@pytest.fixture(scope="module")
def idp() -> TestIdentityProvider:
    return TestIdentityProvider()


def test_the_rendered_stack_validates_tokens_and_pins_delta(prod: ProdStack) -> None:
    assert prod.validation.issuer == "https://login.example.com/oauth2/default"
    assert [(c.name, c.format, c.values) for c in prod.validation.additional_claims] == [
        ("aud", "single-string", ("claude-code-telemetry",))
    ]
    assert "transform/identity" in prod.collector["processors"]
    assert prod.settings["env"][TEMPORALITY] == "delta"
    assert "OTEL_RESOURCE_ATTRIBUTES" not in prod.settings["env"]  # a developer's shell supplies it
    assert prod.settings["otelHeadersHelper"].startswith("/")


# Sessions through the proxy ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ProxiedSessionSpec(RenderedSessionSpec):
    """The rendered settings with the endpoint pointed at the proxy (not the harness's receiver), and
    `overrides` laid over the settings' env block (None deletes a key)."""

    proxy: str = ""
    overrides: Mapping[str, str | None] = field(default_factory=dict)
    expect_exports: bool = False  # they go to the proxy; run_session's own receiver sees none

    def settings(self, endpoint: str, helper_path: str | None) -> dict[str, Any]:
        assert self.proxy.startswith("http://127.0.0.1:"), self.proxy
        settings = super().settings(self.proxy, helper_path)
        for key, value in self.overrides.items():
            if value is None:
                settings["env"].pop(key, None)
            else:
                settings["env"][key] = value
        return settings


def run(spec: ProxiedSessionSpec) -> cc.SessionResult:
    try:
        cc.require_client()
    except cc.ClientMissingError as missing:
        pytest.fail(f"{missing}. The Path A end-to-end tests need it: `make client` installs it.")
    result = cc.run_session(spec)
    assert result.ledger, f"the fake billed nothing; stderr: {result.stderr[-2000:]}"
    assert result.returncode == 0, result.stderr[-2000:]
    assert "otelHeadersHelper failed" not in result.stderr
    return result


@dataclass(frozen=True)
class Delivered:
    """One session through the proxy and one or more collector tasks."""

    result: cc.SessionResult
    handled: list[Handled]
    tasks: list[Task]
    token: str

    @property
    def points(self) -> list[Point]:
        return [point for task in self.tasks for point in task.points]

    @property
    def records(self) -> list[Record]:
        return [record for task in self.tasks for record in task.records]

    def sent_points(self) -> list[Point]:
        """What the client sent (the bodies the proxy received), decoded."""
        bodies = [h.body for h in self.handled if h.path == "/v1/metrics"]
        return metric_points(json_format.MessageToDict(ExportMetricsServiceRequest.FromString(b)) for b in bodies)

    def sent_records(self) -> list[Record]:
        bodies = [h.body for h in self.handled if h.path == "/v1/logs"]
        return log_records(json_format.MessageToDict(ExportLogsServiceRequest.FromString(b)) for b in bodies)


def deliver(
    collector_binary: Path,
    prod: ProdStack,
    out: Path,
    clock: Clock,
    spec: ProxiedSessionSpec,
    token: str,
    validation: JwtValidation,
    jwks: Mapping[str, Any],
    tasks: int = 1,
) -> Delivered:
    """Start `tasks` collectors and the proxy in front of them, run the session, stop all (flushing)."""
    with ExitStack() as stack:
        collectors = []
        for index in range(tasks):
            folder = out / f"task-{index}"
            folder.mkdir(parents=True)
            collectors.append(stack.enter_context(running_collector(collector_binary, prod.collector, folder)))
        alb = stack.enter_context(AlbJwtProxy(validation, jwks, [c.otlp_http for c in collectors], clock))
        result = run(replace(spec, proxy=alb.endpoint, headers_helper=headers_helper(token)))
        handled = alb.handled
    # Leaving the stack stopped the proxy, then each collector (SIGTERM flushes its batches to the files).
    return Delivered(result, handled, [Task(c) for c in collectors], token)


# A. One session, one task ------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def path_a(
    collector_binary: Path,
    prod: ProdStack,
    idp: TestIdentityProvider,
    tmp_path_factory: pytest.TempPathFactory,
) -> Delivered:
    clock = Clock()  # the fixed test clock (tests/clock.py): the token's iat/nbf/exp and the proxy's "now"
    token = idp.token(token_claims(prod.validation, ADA, clock))
    spec = ProxiedSessionSpec(
        prompt="Write greet.py, then make it greet by name.",
        script=WRITE_EDIT,
        model=DATED_MODEL,
        allowed_tools=("Write", "Edit"),
        rendered=prod.settings,
        user_env=SPOOFING_SHELL,
    )
    return deliver(
        collector_binary, prod, tmp_path_factory.mktemp("path-a"), clock, spec, token, prod.validation, idp.jwks
    )


def test_every_export_passed_the_load_balancer_with_the_token(path_a: Delivered) -> None:
    assert {h.path for h in path_a.handled} == {"/v1/metrics", "/v1/logs"}
    assert {(h.status, h.reason, h.upstream, h.subject) for h in path_a.handled} == {
        (200, "forwarded", 0, ADA["email"])
    }
    assert all(h.content_type == "application/x-protobuf" for h in path_a.handled)
    assert path_a.points and path_a.records
    # Nothing was lost or added between the client and the collector's output.
    assert len(path_a.points) == len(path_a.sent_points())
    assert len(path_a.records) == len(path_a.sent_records())


def test_the_client_tried_to_spoof_and_the_token_decides_who_it_is(path_a: Delivered) -> None:
    sent: list[Point | Record] = [*path_a.sent_points(), *path_a.sent_records()]
    assert sent
    for item in sent:  # the client copied the developer's OTEL_RESOURCE_ATTRIBUTES onto everything it sent
        assert item.attributes["user.email"] == ("string", SPOOFED_EMAIL)
        assert item.attributes["department"] == ("string", SPOOFED_DEPARTMENT)
        assert item.resource["user.email"] == ("string", SPOOFED_EMAIL)
    received: list[Point | Record] = [*path_a.points, *path_a.records]
    for item in received:
        resource = {key: value for key, (_, value) in item.resource.items()}
        assert resource["user.email"] == ADA["email"]
        assert resource["user.id"] == ADA["userId"]
        assert resource["department"] == ADA["department"]
        assert resource["team.id"] == ADA["team"]
        assert resource["cost_center"] == ADA["costCenter"]
        assert not {"user.email", "user.id", "department", "team.id", "cost_center"} & set(item.attributes)
        assert BEARER_ATTRIBUTE not in resource
        assert "session.id" in item.attributes  # telemetry, not identity: kept as sent
    # The developer's shell also asked for cumulative counters; the managed settings' delta won.
    assert temporalities(path_a.points) == {DELTA}
    for text in path_a.tasks[0].texts().values():
        assert SPOOFED_EMAIL not in text
        assert SPOOFED_DEPARTMENT not in text


def exported_events(delivered: Delivered, prod: ProdStack) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """What awsemf and awscloudwatchlogs would write for the collector's output (tests/exporters.py).

    The output already went through the collector's processors: the model applies none of them again
    (environment None), so what the rows carry (deployment.environment, identity) is the real collector's."""
    emf = [
        event
        for task in delivered.tasks
        for request in task.metrics
        for event in emf_log_events(request, prod.awsemf, environment=None)
    ]
    logs = [
        event
        for task in delivered.tasks
        for request in task.logs
        for event in cloudwatch_log_events(request, environment=None)
    ]
    return with_ids(emf), with_ids(logs, start=len(emf) + 1)


def test_the_token_and_the_authorization_header_reach_no_output(path_a: Delivered, prod: ProdStack) -> None:
    """Not in the collector's output files, its own log, or what the AWS exporters would write."""
    emf, logs = exported_events(path_a, prod)
    texts = {**path_a.tasks[0].texts(), "emf": json.dumps(emf), "events": json.dumps(logs)}
    assert len(texts) == 5
    payload = path_a.token.split(".")[1]
    for where, text in texts.items():
        assert path_a.token not in text, where
        assert payload not in text, where
        assert "bearer" not in text.lower(), where
        assert "authorization" not in text.lower(), where
        assert BEARER_ATTRIBUTE not in text, where


def test_emf_dimension_sets_are_declared_aggregates_with_cloudwatch_units(path_a: Delivered, prod: ProdStack) -> None:
    """Per the exporter model: only declared sets, none with a per-user attribute, every unit a StandardUnit."""
    emf, _ = exported_events(path_a, prod)
    units = cloudwatch_standard_units()
    declared = {name: {tuple(sorted(s)) for s in sets} for name, sets in DIMENSION_SETS.items()}
    seen: set[str] = set()
    assert emf
    for event in emf:
        document = json.loads(event["message"])
        assert document["user.email"] == ADA["email"]  # per-user attributes stay in the log event
        for directive in document["_aws"]["CloudWatchMetrics"]:
            assert directive["Namespace"] == prod.awsemf["namespace"]
            for metric in directive["Metrics"]:
                seen.add(metric["Name"])
                assert metric["Unit"] in units, metric
                for dimension_set in directive["Dimensions"]:
                    assert tuple(sorted(dimension_set)) in declared[metric["Name"]], (metric, dimension_set)
                    assert not set(dimension_set) & set(PER_USER_ATTRIBUTES), dimension_set
                    for dimension in dimension_set:
                        assert document[dimension] != SPOOFED_DEPARTMENT
    assert {TOKEN_METRIC, COST_METRIC, "claude_code.code_edit_tool.decision"} <= seen
    assert seen == {point.name for point in path_a.points}  # every metric the client sent became a metric


def latest(delivered: Delivered) -> datetime:
    """The latest time the client stamped on a point: the pipeline's "now", taken from the data."""
    nanos = max(
        int(point["timeUnixNano"])
        for task in delivered.tasks
        for request in task.metrics
        for resource in request["resourceMetrics"]
        for scope in resource["scopeMetrics"]
        for metric in scope["metrics"]
        for point in metric["sum"]["dataPoints"]
    )
    return datetime.fromtimestamp(nanos / 1e9, UTC)


def billed_cost(ledger: Iterable[cc.Billed]) -> Decimal:
    """The price table's price of what the fake billed (every model here is one the table prices)."""
    total = Decimal(0)
    for (model, token_type), tokens in ledger_totals(entry.as_dict() for entry in ledger).items():
        price = DEFAULT_PRICE_TABLE.price(DEFAULT_PRICE_TABLE.key_for(model), token_type)
        assert price is not None, model
        total += Decimal(tokens) * Decimal(repr(price)) / MILLION
    return total


def test_rollups_book_what_the_api_billed_to_the_tokens_user(
    path_a: Delivered, prod: ProdStack, rollups: Deployed
) -> None:
    """Tokens by type and cost land on the token's user (its email claim) with its groups; mallory has nothing."""
    emf, logs = exported_events(path_a, prod)
    rollups.settings = replace(rollups.settings, log_groups=prod.log_groups)
    rollups.clock.set(latest(path_a))
    metrics_group, events_group = list(prod.log_groups)
    summaries = [rollups.deliver(logs_batch(metrics_group, emf)), rollups.deliver(logs_batch(events_group, logs))]
    assert [s["status"] for s in summaries] == ["ok", "ok"]
    assert sum(s["quarantined"] for s in summaries) == 0
    assert rollups.queued() == []

    items = rollups.items()
    assert {pk for pk, _ in items if pk.startswith("USER#")} == {keys.user_pk(ADA["email"])}
    days = [item for (pk, sk), item in items.items() if pk.startswith("USER#") and sk.startswith("DAY#")]
    assert days
    for day in days:
        assert (day["user"], day["source"]) == (ADA["email"], "user.email")
        assert (day["department"], day["team"], day["cost_center"]) == (
            ADA["department"],
            ADA["team"],
            ADA["costCenter"],
        )
    by_type: Counter[str] = Counter()
    for (_, token_type), tokens in ledger_totals(entry.as_dict() for entry in path_a.result.ledger).items():
        by_type[token_type] += tokens
    booked = {t: sum(int(day.get(a, 0)) for day in days) for t, a in keys.TOKEN_ATTRIBUTES.items()}
    assert booked == dict(by_type)
    cost = sum(Decimal(day.get("cost_usd", 0)) for day in days)
    client_cost = sum(Decimal(day.get("client_cost_usd", 0)) for day in days)
    assert cost == pytest.approx(billed_cost(path_a.result.ledger), rel=Decimal("1e-12"))
    sent_cost = sum(Decimal(repr(p.value)) for p in path_a.sent_points() if p.name == COST_METRIC)
    assert client_cost == pytest.approx(sent_cost, rel=Decimal("1e-12")) and client_cost > 0
    everything = json.dumps([[pk, sk, item] for (pk, sk), item in items.items()], default=str)
    assert SPOOFED_EMAIL not in everything
    assert SPOOFED_DEPARTMENT not in everything


def test_the_lake_keeps_every_point_and_event_under_the_tokens_identity(
    path_a: Delivered, prod: ProdStack, clock: Clock
) -> None:
    emf, logs = exported_events(path_a, prod)
    clock.set(latest(path_a))
    metrics_group, events_group = list(prod.log_groups)
    put_back: list[bytes] = []

    def put(records: list[bytes]) -> list[bool]:
        put_back.extend(records)
        return [True] * len(records)

    payloads = [logs_batch(metrics_group, emf), logs_batch(events_group, logs)]
    response = transform(firehose_event(payloads), TransformSettings(prod.log_groups), put, clock)
    assert {record["result"] for record in response["records"]} <= {"Ok", "Dropped"}
    rows = [
        json.loads(line)
        for record in response["records"]
        if record["result"] == "Ok"
        for line in base64.b64decode(record["data"]).splitlines()
    ] + [json.loads(line) for data in put_back for line in data.splitlines() if b'"row_id"' in line]
    metric_rows = [row for row in rows if "metric_name" in row]
    event_rows = [row for row in rows if "event_name" in row]
    assert len(metric_rows) == len(path_a.points)
    assert len(event_rows) == len(path_a.records)
    for row in rows:
        assert row["deployment_environment"] == prod.environment  # set by the collector, not the model
        assert (row["user_key"], row["user_key_source"]) == (ADA["email"], "user.email")
        assert (row["user_email"], row["user_id"]) == (ADA["email"], ADA["userId"])
        assert (row["department"], row["team_id"], row["cost_center"]) == (
            ADA["department"],
            ADA["team"],
            ADA["costCenter"],
        )
    lake: Counter[tuple[str, str]] = Counter()
    for row in metric_rows:
        if row["metric_name"] == TOKEN_METRIC:
            lake[(row["model"], row["type"])] += int(row["value"])
    assert dict(lake) == ledger_totals(entry.as_dict() for entry in path_a.result.ledger)


# Requests without a valid token ------------------------------------------------------------------------------------


def send(url: str, body: bytes, headers: Mapping[str, str]) -> int:
    request = urllib.request.Request(  # noqa: S310 - loopback
        url, data=body, headers={"Content-Type": "application/x-protobuf", **headers}, method="POST"
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310 - loopback
            return int(response.status)
    except urllib.error.HTTPError as error:
        return int(error.code)


def invalid_requests(
    prod: ProdStack, idp: TestIdentityProvider, clock: Clock
) -> Iterator[tuple[str, dict[str, str], str]]:
    """(case, headers, the proxy's reason) for requests the load balancer must refuse."""
    valid = token_claims(prod.validation, ADA, clock)
    now = int(clock())

    def bearer(
        claims: Mapping[str, Any], signer: TestIdentityProvider = idp, algorithm: str = "RS256"
    ) -> dict[str, str]:
        return {"Authorization": f"Bearer {signer.token(claims, algorithm)}"}

    def without(name: str) -> dict[str, Any]:
        return {key: value for key, value in valid.items() if key != name}

    yield "no Authorization header", {}, "no Authorization header"
    yield "basic credentials", {"Authorization": "Basic YWRhOnNlY3JldA=="}, "not a bearer token"
    yield "wrong key", bearer(valid, TestIdentityProvider(kid=idp.kid)), "signature does not verify"
    yield "HS256", bearer(valid, algorithm="HS256"), "algorithm 'HS256'"
    yield "expired", bearer({**valid, "exp": now - 1}), "expired"
    yield "expires now", bearer({**valid, "exp": now}), "expired"
    yield "no exp", bearer(without("exp")), "no exp claim"
    yield "not yet valid", bearer({**valid, "nbf": now + 60}), "not yet valid"
    yield "issued in the future", bearer({**valid, "iat": now + 60}), "issued in the future"
    yield "wrong issuer", bearer({**valid, "iss": "https://evil.example.com/"}), "issuer"
    yield "wrong audience", bearer({**valid, "aud": "another-api"}), "aud 'another-api' does not match"
    yield "audience as an array", bearer({**valid, "aud": ["claude-code-telemetry"]}), "does not match"
    yield "no audience", bearer(without("aud")), "no aud claim"
    yield "a forged payload", {"Authorization": f"Bearer {forged(idp.token(valid))}"}, "signature does not verify"


def forged(token: str) -> str:
    """The token with its payload replaced (someone else's email), the signature kept."""
    header, payload, signature = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    claims["email"] = SPOOFED_EMAIL
    encoded = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    return f"{header}.{encoded}.{signature}"


def test_requests_without_a_valid_token_never_reach_the_collector(
    collector_binary: Path, prod: ProdStack, idp: TestIdentityProvider, clock: Clock, tmp_path: Path
) -> None:
    """Each invalid request is refused with 401 for the reason the action gives; only the valid control passes."""
    cases = list(invalid_requests(prod, idp, clock))
    valid = {"Authorization": f"Bearer {idp.token(token_claims(prod.validation, ADA, clock))}"}
    with (
        running_collector(collector_binary, prod.collector, tmp_path) as collector,
        AlbJwtProxy(prod.validation, idp.jwks, [collector.otlp_http], clock) as alb,
    ):
        for case, headers, _ in cases:
            assert send(f"{alb.endpoint}/v1/metrics", metrics_request(), headers) == 401, case
            assert send(f"{alb.endpoint}/v1/logs", logs_request(), headers) == 401, case
        # The control: the same request with a valid token passes.
        assert send(f"{alb.endpoint}/v1/metrics", metrics_request(), valid) == 200
        handled = alb.handled
    refused = handled[:-1]
    assert len(refused) == 2 * len(cases)
    for (case, _, reason), handled_pair in zip(cases, zip(refused[::2], refused[1::2], strict=True), strict=True):
        for one in handled_pair:
            assert (one.status, one.upstream) == (401, None), case
            assert reason in one.reason, (case, one.reason)
    assert (handled[-1].status, handled[-1].upstream, handled[-1].subject) == (200, 0, ADA["email"])
    task = Task(collector)
    assert task.records == []  # no log request was valid
    (point,) = task.points  # only the control's one data point reached the collector
    assert point.resource["user.email"] == ("string", ADA["email"])


def test_a_client_with_an_invalid_token_exports_nothing(
    collector_binary: Path, prod: ProdStack, idp: TestIdentityProvider, clock: Clock, tmp_path: Path
) -> None:
    """The real client whose helper prints an expired token: the load balancer refuses every export."""
    expired = {**token_claims(prod.validation, ADA, clock), "exp": int(clock()) - 60}
    spec = ProxiedSessionSpec(
        prompt="Say hello.", script=(Text("Hello!"),), model=DATED_MODEL, rendered=prod.settings, user_env={}
    )
    delivered = deliver(collector_binary, prod, tmp_path, clock, spec, idp.token(expired), prod.validation, idp.jwks)
    assert {h.path for h in delivered.handled} == {"/v1/metrics", "/v1/logs"}
    assert {(h.status, h.reason, h.upstream) for h in delivered.handled} == {(401, "expired", None)}
    assert delivered.points == [] and delivered.records == []


# B. Two collector tasks behind one load balancer ------------------------------------------------------------------

EXPORT_INTERVAL_MS = "200"
# Several turns, each a Bash call that takes a while, so the client exports several times within the session.
SLOW_TURNS: tuple[Turn, ...] = (
    *(Tools((ToolUse("Bash", {"command": "sleep 0.3", "description": f"Wait {turn}"}),)) for turn in range(1, 4)),
    Text("Waited three times."),
)
GRACE = {
    "email": "grace@example.com",
    "userId": "00u-grace",
    "department": "navy",
    "team": "cobol",
    "costCenter": "CC-1959",
}


@dataclass(frozen=True)
class Fleet:
    delta: Delivered
    cumulative: Delivered


@pytest.fixture(scope="module")
def fleet(
    collector_binary: Path,
    prod: ProdStack,
    idp: TestIdentityProvider,
    tmp_path_factory: pytest.TempPathFactory,
) -> Fleet:
    clock = Clock()
    token = idp.token(token_claims(prod.validation, GRACE, clock))
    spec = ProxiedSessionSpec(
        prompt="Wait three times.",
        script=SLOW_TURNS,
        model=DATED_MODEL,
        allowed_tools=("Bash",),
        rendered=prod.settings,
        # The developer's shell asks for cumulative counters both times.
        user_env={TEMPORALITY: "cumulative"},
        overrides={"OTEL_METRIC_EXPORT_INTERVAL": EXPORT_INTERVAL_MS},
    )
    unpinned = replace(spec, overrides={**spec.overrides, TEMPORALITY: None})
    runs = {}
    for name, session in (("delta", spec), ("cumulative", unpinned)):
        out = tmp_path_factory.mktemp(f"fleet-{name}")
        runs[name] = deliver(collector_binary, prod, out, clock, session, token, prod.validation, idp.jwks, tasks=2)
    return Fleet(**runs)


# The collector's file exporter writes OTLP JSON as the OTLP specification says, enums as integers; the
# harness decodes the client's protobuf with enum names.
TEMPORALITIES = {1: DELTA, 2: CUMULATIVE, DELTA: DELTA, CUMULATIVE: CUMULATIVE}


def temporalities(points: Iterable[Point]) -> set[str]:
    return {TEMPORALITIES[point.temporality] for point in points}


def series_key(point: Point) -> tuple[str, tuple[tuple[str, Any], ...], tuple[tuple[str, Any], ...]]:
    return (point.name, tuple(sorted(point.resource.items())), tuple(sorted(point.attributes.items())))


def metric_exports(delivered: Delivered) -> Counter[int]:
    """Metric export requests per task."""
    return Counter(h.upstream for h in delivered.handled if h.path == "/v1/metrics" and h.upstream is not None)


def test_both_tasks_receive_metrics_and_every_run_exports_several_times(fleet: Fleet) -> None:
    """Each signal's requests alternate between the tasks, and the client exported metrics several times."""
    for name, delivered in (("delta", fleet.delta), ("cumulative", fleet.cumulative)):
        assert {h.status for h in delivered.handled} == {200}, name
        exports = metric_exports(delivered)
        assert set(exports) == {0, 1}, name
        assert sum(exports.values()) >= 3, (name, exports)
        for task in delivered.tasks:
            assert any(point.name == TOKEN_METRIC for point in task.points), name
        assert len(delivered.result.ledger) >= len(SLOW_TURNS), name


def test_delta_points_of_both_tasks_add_up_to_what_was_billed(fleet: Fleet) -> None:
    """Delta (the managed settings pin it, over a developer's shell asking for cumulative): each point is new
    usage, so the points of both tasks, summed, are exactly what the API billed."""
    delivered = fleet.delta
    assert temporalities(delivered.points) == {DELTA}  # the managed settings' pin beat the shell
    billed = ledger_totals(entry.as_dict() for entry in delivered.result.ledger)
    per_task = [token_totals(task.points) for task in delivered.tasks]
    assert all(per_task), "each task saw a part of the usage"
    assert all(task != billed for task in per_task)  # neither task alone has the whole
    assert token_totals(delivered.points) == billed  # exactly
    cost = sum(Decimal(repr(p.value)) for p in delivered.points if p.name == COST_METRIC)
    client = sum(Decimal(repr(r.attr("cost_usd"))) for r in delivered.records if r.event == "api_request")
    assert cost == pytest.approx(client, rel=Decimal("1e-12"))
    assert cost == pytest.approx(billed_cost(delivered.result.ledger), rel=Decimal("1e-6"))


def awsemf_cumulative_to_delta(tasks: Sequence[Task], retain_initial_value: bool) -> dict[tuple[str, str], int]:
    """Token totals as awsemf would write them for cumulative sums: each exporter process keeps the previous
    value of each series and writes the difference, dropping a series' first point unless
    `retain_initial_value_of_delta_metric` (exporter/awsemfexporter/datapoint.go, numberDataPointSlice)."""
    totals: Counter[tuple[str, str]] = Counter()
    for task in tasks:
        previous: dict[Any, float] = {}
        for point in task.points:  # in the order the task received them
            if point.name != TOKEN_METRIC:
                continue
            key = series_key(point)
            if key in previous:
                delta = point.value - previous[key]
                totals[(str(point.attr("model")), str(point.attr("type")))] += int(delta if delta >= 0 else point.value)
            elif retain_initial_value:
                totals[(str(point.attr("model")), str(point.attr("type")))] += int(point.value)
            previous[key] = point.value
    return dict(totals)


def test_cumulative_points_summed_overcount_which_is_why_the_settings_pin_delta(fleet: Fleet) -> None:
    """Cumulative (the same shell, the settings without the pin): every export repeats each series' running
    total, so a sum counts each earlier total again."""
    delivered = fleet.cumulative
    assert temporalities(delivered.points) == {CUMULATIVE}  # without the pin the shell wins
    billed = ledger_totals(entry.as_dict() for entry in delivered.result.ledger)
    billed_total = sum(billed.values())
    tokens = [point for point in delivered.points if point.name == TOKEN_METRIC]

    # The data itself is right: each series' running total (its largest value: the sums are monotonic) is
    # what was billed, whichever task received it.
    running: dict[Any, Point] = {}
    for point in tokens:
        key = series_key(point)
        if key not in running or point.value > running[key].value:
            running[key] = point
    assert token_totals(running.values()) == billed
    repeated = sum(len([p for p in tokens if series_key(p) == key]) - 1 for key in running)
    assert repeated > 0, "no series was exported more than once"

    # Summing it, as the rollups sum deltas, counts every earlier running total again: the excess is exactly
    # the sum of the points that were not a series' last.
    summed = token_totals(tokens)
    excess = sum(summed.values()) - billed_total
    assert excess == sum(int(p.value) for p in tokens) - sum(int(p.value) for p in running.values())
    assert excess > 0
    assert all(summed[key] >= billed[key] for key in billed)

    # Nor would awsemf's own conversion of cumulative sums (a delta to the previous value, per exporter process)
    # be right behind two tasks: by default each task drops the first point of every series it sees, and
    # keeping it (retain_initial_value_of_delta_metric) counts a series' history once per task.
    dropped = sum(awsemf_cumulative_to_delta(delivered.tasks, retain_initial_value=False).values())
    retained = sum(awsemf_cumulative_to_delta(delivered.tasks, retain_initial_value=True).values())
    assert dropped != billed_total
    assert retained > billed_total
