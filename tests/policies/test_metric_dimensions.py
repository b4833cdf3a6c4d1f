"""No per-user metric dimensions: each rule with a passing and a failing resource, in the engine's shape."""

from __future__ import annotations

import json
from typing import Any, Literal

import pytest
import yaml

from components.collector_config import collector_config_yaml
from policies.metric_dimensions import promql_label_names
from tests.components.collector_settings import settings_for
from tests.policies.engine_shape import UNKNOWN, resource, secret, urn, violations_of

TASK = "aws:ecs/taskDefinition:TaskDefinition"
PARAMETER = "aws:ssm/parameter:Parameter"
ALARM = "aws:cloudwatch/metricAlarm:MetricAlarm"
FILTER = "aws:cloudwatch/logMetricFilter:LogMetricFilter"
DASHBOARD = "aws:cloudwatch/dashboard:Dashboard"


def collector_config(dimension_sets: list[list[str]], rollup: str | None = "NoDimensionRollup") -> dict[str, Any]:
    exporter: dict[str, Any] = {
        "namespace": "ClaudeCode",
        "metric_declarations": [
            {"metric_name_selectors": ["^claude_code\\.token\\.usage$"], "dimensions": dimension_sets}
        ],
    }
    if rollup is not None:
        exporter["dimension_rollup_option"] = rollup
    return {"receivers": {"otlp": {"protocols": {"http": {}}}}, "exporters": {"awsemf": exporter}}


def in_task(config: dict[str, Any]) -> dict[str, Any]:
    containers = [{"name": "otel", "environment": [{"name": "OTELCOL_CONFIG", "value": yaml.safe_dump(config)}]}]
    return {"containerDefinitions": json.dumps(containers)}


# collector-metrics-have-no-per-user-dimensions ----------------------------------------------------------


@pytest.mark.parametrize("identity_mode", ["jwt", "none"])
def test_the_rendered_collector_configuration_passes(identity_mode: Literal["jwt", "none"]) -> None:
    settings = settings_for(identity_mode)
    config = yaml.safe_load(collector_config_yaml(settings))
    assert violations_of("collector-metrics-have-no-per-user-dimensions", [resource(TASK, "t", in_task(config))]) == []


@pytest.mark.parametrize(
    ("token", "props"),
    [
        (TASK, in_task(collector_config([["user.email", "model"]]))),
        (PARAMETER, {"value": secret(yaml.safe_dump(collector_config([["UserEmail"]])))}),
        ("aws:s3/bucketObjectv2:BucketObjectv2", {"content": yaml.safe_dump(collector_config([["session_id"]]))}),
    ],
    ids=["task-environment", "ssm-secret", "bucket-object"],
)
def test_a_per_user_dimension_set_fails_wherever_the_configuration_is_stored(token: str, props: dict) -> None:
    (violation,) = violations_of("collector-metrics-have-no-per-user-dimensions", [resource(token, "c", props)])
    assert violation.enforcement_level == "mandatory" and violation.urn == urn(token, "c")
    assert "has per-user attribute(s)" in violation.message


@pytest.mark.parametrize(
    ("rollup", "reason"),
    [
        (None, "dimension_rollup_option is 'ZeroAndSingleDimensionRollup'"),
        ("SingleDimensionRollupOnly", "dimension_rollup_option is 'SingleDimensionRollupOnly'"),
    ],
)
def test_a_roll_up_that_adds_sets_fails(rollup: str | None, reason: str) -> None:
    props = in_task(collector_config([["team.id"]], rollup=rollup))
    (violation,) = violations_of("collector-metrics-have-no-per-user-dimensions", [resource(TASK, "t", props)])
    assert reason in violation.message and "collector configuration in containerDefinitions[otel]" in violation.message


def test_no_metric_declarations_fails() -> None:
    config = collector_config([])
    config["exporters"]["awsemf"].pop("metric_declarations")
    (violation,) = violations_of(
        "collector-metrics-have-no-per-user-dimensions", [resource(TASK, "t", in_task(config))]
    )
    assert "every attribute of a data point becomes a dimension" in violation.message


def test_extra_forbidden_attributes_come_from_the_policy_config() -> None:
    props = in_task(collector_config([["employee.number"]]))
    assert violations_of("collector-metrics-have-no-per-user-dimensions", [resource(TASK, "t", props)]) == []
    config = {"collector-metrics-have-no-per-user-dimensions": {"extraPerUserAttributes": ["employee.number"]}}
    (violation,) = violations_of("collector-metrics-have-no-per-user-dimensions", [resource(TASK, "t", props)], config)
    assert "['employee.number']" in violation.message


def test_unknown_container_definitions_are_advisory() -> None:
    (violation,) = violations_of(
        "collector-metrics-have-no-per-user-dimensions", [resource(TASK, "t", {"containerDefinitions": UNKNOWN})]
    )
    assert violation.enforcement_level == "advisory" and ".containerDefinitions can't be known" in violation.message


# alarms-have-no-per-user-dimensions ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("props", "failing"),
    [
        ({"namespace": "ClaudeCode", "dimensions": {"team.id": "platform"}}, False),
        ({"namespace": "ClaudeCode", "dimensions": {"user.email": "a@example.com"}}, True),
        ({"metricQueries": [{"id": "m", "metric": {"dimensions": {"UserId": "42"}}}]}, True),
        ({"metricQueries": [{"id": "e", "expression": "SEARCH('{ClaudeCode,user_email} cost', 'Sum', 300)"}]}, True),
        ({"metricQueries": [{"id": "b", "expression": "ANOMALY_DETECTION_BAND(m1, 2)"}]}, False),
    ],
    ids=["team", "email", "query-dimension", "search-expression", "anomaly-band"],
)
def test_alarm_dimensions(props: dict[str, Any], failing: bool) -> None:
    violations = violations_of("alarms-have-no-per-user-dimensions", [resource(ALARM, "a", props)])
    assert len(violations) == failing
    if failing:
        assert violations[0].urn == urn(ALARM, "a") and "per-user dimensions in" in violations[0].message


# log-metric-filters-have-no-per-user-dimensions -------------------------------------------------------------


@pytest.mark.parametrize(
    ("dimensions", "failing"),
    [
        ({"Team": "$.team"}, False),
        ({"User": "$.user"}, True),
        ({"Who": "$.attributes['user.email']"}, True),
        ({"Session": "$.resource.session.id"}, True),
    ],
    ids=["team", "user-name", "email-selector", "session-selector"],
)
def test_log_metric_filter_dimensions(dimensions: dict[str, str], failing: bool) -> None:
    props = {"pattern": '{ $.event = "api_request" }', "metricTransformation": {"dimensions": dimensions}}
    violations = violations_of("log-metric-filters-have-no-per-user-dimensions", [resource(FILTER, "f", props)])
    assert len(violations) == failing


# dashboards-have-no-per-user-dimensions -----------------------------------------------------------------------


def dashboard(*widgets: dict[str, Any]) -> dict[str, Any]:
    return {"dashboardName": "usage", "dashboardBody": json.dumps({"widgets": list(widgets)})}


def metric_widget(*metrics: list[Any]) -> dict[str, Any]:
    return {"type": "metric", "properties": {"title": "Tokens", "metrics": list(metrics)}}


def promql_widget(query: str) -> dict[str, Any]:
    queries = [{"type": "cloudwatch-metrics", "language": "PromQL", "query": query, "step": 60}]
    return {"type": "chart", "properties": {"title": "By team", "data": {"queries": queries}}}


@pytest.mark.parametrize(
    ("widget", "failing"),
    [
        (metric_widget(["ClaudeCode", "claude_code.token.usage", "team.id", "platform", {"stat": "Sum"}]), False),
        (metric_widget(["ClaudeCode", "claude_code.token.usage", "user.email", "a@example.com"]), True),
        (metric_widget(["ClaudeCode", "x", "team.id", "a"], ["...", "UserEmail", "b"]), True),
        (metric_widget([{"expression": 'SELECT SUM(cost) FROM ClaudeCode GROUP BY "user.email"'}]), True),
        (promql_widget('sum by ("@resource.team.id") (rate(claude_code_token_usage[5m]))'), False),
        (promql_widget('sum by ("@resource.user.email") (rate(claude_code_token_usage[5m]))'), True),
        (promql_widget('claude_code_token_usage{"@resource.session.id"=~".+"}'), True),
    ],
    ids=["team", "email", "shorthand", "metrics-insights", "promql-team", "promql-by-user", "promql-matcher"],
)
def test_dashboard_widgets(widget: dict[str, Any], failing: bool) -> None:
    violations = violations_of("dashboards-have-no-per-user-dimensions", [resource(DASHBOARD, "d", dashboard(widget))])
    assert len(violations) == failing
    if failing:
        assert violations[0].urn == urn(DASHBOARD, "d")


def test_a_dashboard_body_that_is_not_json_is_reported() -> None:
    bad = resource(DASHBOARD, "d", {"dashboardName": "x", "dashboardBody": "{"})
    (violation,) = violations_of("dashboards-have-no-per-user-dimensions", [bad])
    assert "dashboardBody is not JSON" in violation.message


def test_promql_label_names() -> None:
    query = 'sum without (a, "b.c") (m{d="1", "e.f"!~"x"}) / on(g) group_left(h) n'
    assert promql_label_names(query) == ["a", "b.c", "g", "h", "d", "e.f"]


# direct-ingest-settings-exclude-users -------------------------------------------------------------------------

DIRECT = {
    "CLAUDE_CODE_ENABLE_TELEMETRY": "1",
    "OTEL_METRICS_EXPORTER": "otlp",
    "OTEL_EXPORTER_OTLP_ENDPOINT": "https://monitoring.eu-west-1.amazonaws.com",
    "OTEL_RESOURCE_ATTRIBUTES": "team.id=platform,department=eng,cost_center=cc-1",
    "OTEL_METRICS_INCLUDE_SESSION_ID": "false",
    "OTEL_METRICS_INCLUDE_ACCOUNT_UUID": "false",
}


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({}, None),
        ({"OTEL_RESOURCE_ATTRIBUTES": "team.id=platform,user.email=a@example.com"}, "per-user key(s) ['user.email']"),
        ({"OTEL_METRICS_INCLUDE_SESSION_ID": "true"}, "OTEL_METRICS_INCLUDE_SESSION_ID is 'true'"),
        ({"OTEL_METRICS_INCLUDE_ACCOUNT_UUID": None}, "OTEL_METRICS_INCLUDE_ACCOUNT_UUID is not set"),
    ],
    ids=["compliant", "user-attribute", "session-id", "account-uuid-default"],
)
def test_direct_ingest_settings(change: dict[str, Any], reason: str | None) -> None:
    env = {key: value for key, value in {**DIRECT, **change}.items() if value is not None}
    stored = resource(PARAMETER, "team-settings", {"insecureValue": json.dumps({"env": env})})
    violations = violations_of("direct-ingest-settings-exclude-users", [stored])
    assert [reason in v.message for v in violations] == ([] if reason is None else [True])


def test_collector_settings_are_not_direct_ingest() -> None:
    env = {**DIRECT, "OTEL_EXPORTER_OTLP_ENDPOINT": "https://otel.example.com", "OTEL_METRICS_INCLUDE_SESSION_ID": "1"}
    stored = resource(PARAMETER, "collector-settings", {"insecureValue": json.dumps({"env": env})})
    assert violations_of("direct-ingest-settings-exclude-users", [stored]) == []


def test_the_pack_forbids_exactly_the_contracts_per_user_attributes() -> None:
    """The pack keeps its own list (it must stand alone); this keeps it equal to the telemetry contract's."""
    from lambda_src.common.telemetry import PER_USER_ATTRIBUTES as CONTRACT
    from policies.common import forbidden_names
    from policies.metric_dimensions import PER_USER_ATTRIBUTES as PACK

    assert set(forbidden_names(PACK.default)) == set(forbidden_names(CONTRACT))
