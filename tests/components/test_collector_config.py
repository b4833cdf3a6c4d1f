"""The rendered collector configuration: wiring, identity handling, and no per-user metric dimension ever."""

from __future__ import annotations

from typing import Any

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from components.collector_config import (
    AGGREGATE_DIMENSIONS,
    BEARER_ATTRIBUTE,
    DIMENSION_SETS,
    IDENTITY_ATTRIBUTES,
    REMOVED_CLIENT_IDENTITY,
    IdentityClaimNames,
    collector_config_yaml,
    emf_dimension_sets,
    exported_series,
    render_collector_config,
)
from lambda_src.common.telemetry import ORGANISATION_ATTRIBUTES, PER_USER_ATTRIBUTES
from tests.components.collector_settings import settings_for
from tests.exporters import cloudwatch_standard_units


@pytest.fixture(params=["jwt", "none"])
def config(request: pytest.FixtureRequest) -> dict[str, Any]:
    return yaml.safe_load(collector_config_yaml(settings_for(request.param)))


def test_yaml_round_trips_without_anchors() -> None:
    text = collector_config_yaml(settings_for())
    assert yaml.safe_load(text) == render_collector_config(settings_for())
    assert "&id" not in text and "*id" not in text


def test_every_referenced_component_is_defined(config: dict[str, Any]) -> None:
    service = config["service"]
    assert set(service["extensions"]) <= set(config["extensions"])
    for pipeline in service["pipelines"].values():
        assert set(pipeline["receivers"]) <= set(config["receivers"])
        assert set(pipeline["processors"]) <= set(config["processors"])
        assert set(pipeline["exporters"]) <= set(config["exporters"])
    used = {name for pipeline in service["pipelines"].values() for name in pipeline["processors"]}
    assert used == set(config["processors"]), "a processor is defined but used by no pipeline"


def test_both_pipelines_are_wired(config: dict[str, Any]) -> None:
    pipelines = config["service"]["pipelines"]
    assert pipelines["metrics"]["exporters"] == ["awsemf"]
    assert pipelines["logs"]["exporters"] == ["awscloudwatchlogs/events"]
    for pipeline in pipelines.values():
        assert pipeline["receivers"] == ["otlp"]
        assert pipeline["processors"][0] == "memory_limiter"
        assert pipeline["processors"][-1].startswith("batch/")
        assert "resource/environment" in pipeline["processors"]
    assert config["processors"]["batch/metrics"]["timeout"] == "60s"
    assert config["processors"]["batch/events"]["timeout"] == "5s"


def test_otlp_over_http_on_4318_and_health_check_extension(config: dict[str, Any]) -> None:
    protocols = config["receivers"]["otlp"]["protocols"]
    assert list(protocols) == ["http"]
    assert protocols["http"]["endpoint"] == "0.0.0.0:4318"
    assert config["extensions"]["health_check"]["endpoint"] == "0.0.0.0:13133"
    assert config["service"]["extensions"] == ["health_check"]


def test_stack_is_added_as_deployment_environment(config: dict[str, Any]) -> None:
    (action,) = config["processors"]["resource/environment"]["attributes"]
    assert action == {"key": "deployment.environment", "value": "prod", "action": "upsert"}


def test_metrics_go_to_the_configured_namespace_and_log_group_without_rollup(config: dict[str, Any]) -> None:
    emf = config["exporters"]["awsemf"]
    assert emf["namespace"] == "ClaudeCode"
    assert emf["log_group_name"] == "/ccm-prod-collector/metrics"
    assert emf["dimension_rollup_option"] == "NoDimensionRollup"
    assert emf["resource_to_telemetry_conversion"] == {"included": ["*"]}
    declared = {
        name for declaration in emf["metric_declarations"] for dims in declaration["dimensions"] for name in dims
    }
    assert declared <= AGGREGATE_DIMENSIONS
    assert not declared & set(PER_USER_ATTRIBUTES)
    assert config["exporters"]["awscloudwatchlogs/events"]["log_group_name"] == "/ccm-prod-collector/events"


def test_dollar_signs_are_escaped_for_the_collector(config: dict[str, Any]) -> None:
    """The collector expands `${...}`; a literal `$` is written `$$`."""
    text = yaml.safe_dump(config)
    assert "${" not in text
    selectors = [s for d in config["exporters"]["awsemf"]["metric_declarations"] for s in d["metric_name_selectors"]]
    assert all(selector.endswith("$$") for selector in selectors)


def test_jwt_identity_comes_from_the_token_and_the_token_is_dropped() -> None:
    config = render_collector_config(settings_for("jwt", claims=IdentityClaimNames(email="upn", team="grp")))
    assert config["receivers"]["otlp"]["protocols"]["http"]["include_metadata"] is True
    for pipeline in config["service"]["pipelines"].values():
        processors = pipeline["processors"]
        assert processors.index("resource/bearer") < processors.index("transform/identity")
        assert processors.index("transform/identity") < processors.index("resource/drop-bearer")
        assert processors.index("resource/drop-bearer") < processors.index(pipeline["processors"][-1])
    bearer = config["processors"]["resource/bearer"]["attributes"]
    assert bearer[0] == {"key": BEARER_ATTRIBUTE, "action": "delete"}, (
        "a client-set attribute must not pose as the token"
    )
    assert bearer[1]["from_context"] == "metadata.authorization"
    assert config["processors"]["resource/drop-bearer"]["attributes"] == [{"key": BEARER_ATTRIBUTE, "action": "delete"}]
    resource_statements = config["processors"]["transform/identity"]["metric_statements"][0]["statements"]
    text = "\n".join(resource_statements)
    assert 'resource.cache["claims"]["upn"]' in text and 'resource.cache["claims"]["grp"]' in text
    for attribute in IDENTITY_ATTRIBUTES:
        delete = f'delete_key(resource.attributes, "{attribute}")'
        assert delete in resource_statements
        setter = next(s for s in resource_statements if s.startswith(f'set(resource.attributes["{attribute}"]'))
        assert resource_statements.index(delete) < resource_statements.index(setter)
    for block, scope in (("metric_statements", "datapoint"), ("log_statements", "log")):
        record_level = config["processors"]["transform/identity"][block][1]
        assert record_level["context"] == scope
        assert record_level["statements"] == [
            f'delete_key({scope}.attributes, "{a}")' for a in (*IDENTITY_ATTRIBUTES, *REMOVED_CLIENT_IDENTITY)
        ]
    for attribute in REMOVED_CLIENT_IDENTITY:  # no token vouches for the client's account attributes
        assert f'delete_key(resource.attributes, "{attribute}")' in resource_statements
        assert not any(s.startswith(f'set(resource.attributes["{attribute}"]') for s in resource_statements)
    assert resource_statements[-1] == (
        'set(resource.attributes["user.id"], "unattributed") '
        'where resource.attributes["user.email"] == nil and resource.attributes["user.id"] == nil'
    )


def test_without_identity_provider_no_token_handling() -> None:
    config = render_collector_config(settings_for("none"))
    assert config["receivers"]["otlp"]["protocols"]["http"]["include_metadata"] is False
    assert not {"resource/bearer", "transform/identity", "resource/drop-bearer"} & set(config["processors"])


def test_missing_organisation_attributes_become_unattributed(config: dict[str, Any]) -> None:
    statements = config["processors"]["transform/unattributed"]["metric_statements"][0]["statements"]
    assert len(statements) == len(ORGANISATION_ATTRIBUTES)
    assert all('"unattributed") where' in statement for statement in statements)


# Dimension sets ------------------------------------------------------------------------------------------

EMF = render_collector_config(settings_for())["exporters"]["awsemf"]
CLAUDE_CODE_METRICS = sorted(DIMENSION_SETS)

attribute_names = st.one_of(
    st.sampled_from(PER_USER_ATTRIBUTES),
    st.sampled_from(sorted(AGGREGATE_DIMENSIONS)),
    st.sampled_from(["organization.id", "terminal.type", "app.version", "service.version", "os.type", "OTelLib"]),
    st.text(min_size=1, max_size=20),
)
label_maps = st.dictionaries(attribute_names, st.text(min_size=1, max_size=30), max_size=25)


@settings(max_examples=300, deadline=None)
@given(metric=st.sampled_from([*CLAUDE_CODE_METRICS, "claude_code.unknown.metric"]), labels=label_maps)
def test_no_per_user_attribute_reaches_a_dimension_set(metric: str, labels: dict[str, str]) -> None:
    for dimension_set in emf_dimension_sets(EMF, metric, labels):
        assert set(dimension_set) <= AGGREGATE_DIMENSIONS
        assert not set(dimension_set) & set(PER_USER_ATTRIBUTES)


def test_the_model_catches_the_default_rollup() -> None:
    """With the exporter's default roll-up, session.id and user.email become dimensions: the check above bites."""
    default_rollup = {**EMF, "dimension_rollup_option": "ZeroAndSingleDimensionRollup"}
    labels = {"model": "claude-sonnet-4-5", "session.id": "s-1", "user.email": "a@example.com"}
    sets = emf_dimension_sets(default_rollup, "claude_code.cost.usage", labels)
    assert ("session.id",) in sets and ("user.email",) in sets
    assert emf_dimension_sets(EMF, "claude_code.cost.usage", labels) == [(), ("model",)]


def fleet_points(users: int) -> list[tuple[str, dict[str, str]]]:
    points = []
    for user in range(users):
        labels = {
            "user.email": f"dev{user}@example.com",
            "session.id": f"session-{user}",
            "department": f"dept-{user % 4}",
            "team.id": f"team-{user % 10}",
            "cost_center": f"cc-{user % 3}",
            "model": "claude-sonnet-4-5",
            "type": "input",
        }
        points.append(("claude_code.token.usage", labels))
    return points


def test_series_do_not_grow_with_users() -> None:
    assert len(exported_series(EMF, fleet_points(50))) == len(exported_series(EMF, fleet_points(500)))


def test_every_metric_reaches_emf_with_a_cloudwatch_unit() -> None:
    exporter = render_collector_config(settings_for("none"))["exporters"]["awsemf"]
    descriptors = {d["metric_name"]: d for d in exporter["metric_descriptors"]}
    assert set(descriptors) == set(DIMENSION_SETS)  # every metric the collector declares has a unit
    assert all(d["overwrite"] is True for d in descriptors.values())  # the client's own unit is replaced
    assert {d["unit"] for d in descriptors.values()} <= cloudwatch_standard_units()
    assert descriptors["claude_code.token.usage"]["unit"] == "Count"  # the client sends "tokens"
    assert descriptors["claude_code.active_time.total"]["unit"] == "Seconds"  # the client sends "s"
    assert descriptors["claude_code.cost.usage"]["unit"] == "None"  # the client sends "USD"


def test_delta_values_are_passed_through_without_a_retained_first_value() -> None:
    # With delta temporality (pinned by the managed settings) awsemf passes values through. The option to
    # keep a cumulative series' first value would count that series' whole history once per collector task.
    exporter = render_collector_config(settings_for("jwt"))["exporters"]["awsemf"]
    assert "retain_initial_value_of_delta_metric" not in exporter


def test_series_are_bounded_by_default_and_grow_only_by_the_groups_a_stack_opts_in() -> None:
    from benchmarks.collector_series import ALL_GROUPS_FOR_USAGE, exporter, fleet_day
    from components.collector_config import EXAMPLE_ORGANISATION_VALUES, declared_dimension_sets, series_count

    points = fleet_day(300)  # every value of the example organisation occurs
    for groups in ({}, ALL_GROUPS_FOR_USAGE):
        simulated = len(exported_series(exporter("NoDimensionRollup", groups), points))
        assert series_count(declared_dimension_sets(groups), EXAMPLE_ORGANISATION_VALUES) == simulated
    assert series_count(declared_dimension_sets(), EXAMPLE_ORGANISATION_VALUES) == 116 <= 150
    declared = declared_dimension_sets({"team": ["claude_code.lines_of_code.count"]})
    assert declared["claude_code.lines_of_code.count"][-1] == ["team.id", "type"]
    assert all("team.id" not in s for name, sets in declared.items() if name != "claude_code.lines_of_code.count"
               for s in sets)  # fmt: skip
    rendered = render_collector_config(settings_for("jwt", group_metrics={"costCenter": ["claude_code.cost.usage"]}))
    cost = next(
        d for d in rendered["exporters"]["awsemf"]["metric_declarations"] if "cost" in d["metric_name_selectors"][0]
    )
    assert ["cost_center"] in cost["dimensions"]
