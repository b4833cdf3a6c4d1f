"""Both stacks build under mocks and pass the policy pack with zero mandatory violations."""

from __future__ import annotations

import dataclasses
import json

import pytest
import yaml

from components.collector import CollectorArgs, IdentityArgs, NetworkArgs
from components.collector_config import IdentityClaimNames
from infra.config import CollectorConfig, IdentityClaims, IdentityConfig, NetworkConfig, parse_stack_config
from infra.stack import collector_args
from offline.preview import PROJECT_ROOT, PreviewResult


@pytest.mark.parametrize("fixture", ["dev_preview", "prod_preview"])
def test_stack_previews_offline_without_mandatory_violations(fixture: str, request: pytest.FixtureRequest) -> None:
    result: PreviewResult = request.getfixturevalue(fixture)
    assert result.mandatory == []
    assert result.seconds < 30  # a regression guard, loose enough for a loaded CI machine


@pytest.mark.parametrize("fixture", ["dev_preview", "prod_preview"])
def test_every_resource_is_inside_the_stack(fixture: str, request: pytest.FixtureRequest) -> None:
    registrations = request.getfixturevalue(fixture).run.registrations
    urns = {r.urn for r in registrations}
    roots = [r for r in registrations if r.parent is None]
    assert [r.type for r in roots] == ["pulumi:pulumi:Stack"]
    assert all(r.parent in urns for r in registrations if r.parent is not None)


def test_stack_outputs_users_need(prod_preview: PreviewResult) -> None:
    outputs = prod_preview.run.outputs
    assert outputs["region"] == "eu-west-1"
    assert outputs["operationsTopicArn"].startswith("arn:aws:sns:eu-west-1:123456789012:ccm-prod-ops-alarms")
    assert outputs["enabledComponents"] == ["collector", "dashboard", "analytics", "quota", "bearerTokenIngest"]


def test_names_derive_from_prefix_and_stack(dev_preview: PreviewResult) -> None:
    names = [r.name for r in dev_preview.run.registrations if r.type != "pulumi:pulumi:Stack"]
    assert names and all(name.startswith("ccm-dev-") for name in names)


def test_apply_callbacks_ran(prod_preview: PreviewResult) -> None:
    """The key policy is rendered inside an apply: a skipped apply would leave it unknown or missing."""
    key = next(r for r in prod_preview.run.registrations if r.type == "aws:kms/key:Key")
    policy = json.loads(key.inputs()["policy"])
    assert policy["Statement"][0]["Principal"]["AWS"] == "arn:aws:iam::123456789012:root"


@pytest.mark.parametrize("fixture", ["dev_preview", "prod_preview"])
def test_every_cloud_resource_belongs_to_a_component_and_is_named_from_it(
    fixture: str, request: pytest.FixtureRequest
) -> None:
    registrations = request.getfixturevalue(fixture).run.registrations
    components = {r.urn: r for r in registrations if r.type.startswith("claude-code-monitoring:index:")}
    cloud = [r for r in registrations if r.custom]
    assert cloud and all(r.parent in components for r in cloud)
    assert all(r.name.startswith(components[str(r.parent)].name) for r in cloud)


def test_collector_outputs(prod_preview: PreviewResult) -> None:
    outputs = prod_preview.run.outputs
    assert outputs["collectorEndpoint"] == "https://otel.example.com"
    assert outputs["managedSettingsParameter"] == "/ccm-prod-collector/claude-code/managed-settings"
    assert set(outputs["collectorLogGroups"]) == {"metrics", "events", "collector"}


def test_collector_section_and_component_arguments_name_the_same_settings() -> None:
    """`collector_args` passes the section through by name: a key the component lacks, or an argument the
    section lacks, would be lost silently, so both sides must list the same settings."""
    args = {f.name: f for f in dataclasses.fields(CollectorArgs)}
    section = dict(CollectorConfig.model_fields)
    assert set(section) - {"enabled"} == set(args) - {"region", "environment", "alarm_topic_arn"}
    assert set(NetworkConfig.model_fields) == {f.name for f in dataclasses.fields(NetworkArgs)}
    assert set(IdentityConfig.model_fields) == {f.name for f in dataclasses.fields(IdentityArgs)}
    assert IdentityClaims().model_dump() == dataclasses.asdict(IdentityClaimNames())


def test_collector_args_carry_the_stack_files_settings() -> None:
    document = yaml.safe_load((PROJECT_ROOT / "Pulumi.prod.yaml").read_text())["config"]
    settings = parse_stack_config(document, "Pulumi.prod.yaml")
    args = collector_args(settings.collector, settings.region, "prod", "arn:aws:sns:eu-west-1:1:t")
    assert (args.min_count, args.max_count, args.cpu, args.memory) == (2, 6, 1024, 2048)
    assert args.network.nat_gateways == "onePerAz" and args.network.availability_zones == 3
    assert args.identity.mode == "jwt" and args.identity.claims.cost_center == "cost_center"
    assert args.otel_headers_helper == "/usr/local/bin/claude-otel-token"
    assert args.problems() == []
