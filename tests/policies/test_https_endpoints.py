"""load-balancer-listeners-use-https, fed through the analyzer exactly as the engine feeds it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from google.protobuf import struct_pb2
from pulumi.runtime.rpc import UNKNOWN
from pulumi_policy import EnforcementLevel

from offline.engine import Registration
from offline.policy import Violation, evaluate
from offline.preview import PROJECT_ROOT, PreviewResult, Target, preview
from policies.https_endpoints import listener_problem, unauthenticated_collector_problem
from policies.pack import PACK_NAME, POLICIES


def listener(props: dict[str, Any], token: str = "aws:lb/listener:Listener") -> Registration:
    struct = struct_pb2.Struct()
    struct.update(props)
    return Registration(
        urn=f"urn:pulumi:test::p::{token}::l",
        type=token,
        name="l",
        parent=None,
        custom=True,
        properties=struct,
        dependencies=[],
        property_dependencies={},
        provider="",
        protect=False,
        ignore_changes=[],
        delete_before_replace=None,
        additional_secret_outputs=[],
    )


def run(props: dict[str, Any], token: str = "aws:lb/listener:Listener") -> list[Violation]:
    return evaluate([listener(props, token)], PACK_NAME, POLICIES, EnforcementLevel.ADVISORY, {})


REDIRECT = {"type": "redirect", "redirect": {"protocol": "HTTPS", "port": "443", "statusCode": "HTTP_301"}}
FORWARD = {"type": "forward", "targetGroupArn": "arn:aws:elasticloadbalancing:eu-west-1:1:targetgroup/t/1"}


@pytest.mark.parametrize("token", ["aws:lb/listener:Listener", "aws:alb/listener:Listener"])
@pytest.mark.parametrize(
    "props",
    [
        {"protocol": "HTTPS", "port": 443.0, "defaultActions": [FORWARD]},
        {"protocol": "TLS", "port": 443.0, "defaultActions": [FORWARD]},
        {"protocol": "HTTP", "port": 80.0, "defaultActions": [REDIRECT]},
    ],
    ids=["https", "tls", "http-redirect-only"],
)
def test_passing_listener(token: str, props: dict[str, Any]) -> None:
    assert run(props, token) == []


@pytest.mark.parametrize("token", ["aws:lb/listener:Listener", "aws:alb/listener:Listener"])
@pytest.mark.parametrize(
    ("props", "reason"),
    [
        ({"protocol": "HTTP", "port": 80.0, "defaultActions": [FORWARD]}, "forwards with a 'forward' action"),
        ({"port": 80.0, "defaultActions": [FORWARD]}, "HTTP listener on port 80 forwards"),
        ({"protocol": "HTTP", "port": 80.0, "defaultActions": [REDIRECT, FORWARD]}, "[redirect, forward]"),
        (
            {"protocol": "HTTP", "port": 80.0, "defaultActions": [{"type": "redirect", "redirect": {"port": "443"}}]},
            "redirects to protocol '#{protocol}'",
        ),
        ({"protocol": "TCP", "port": 4318.0, "defaultActions": [FORWARD]}, "TCP listener on port 4318 carries"),
    ],
    ids=["http-forward", "no-protocol", "redirect-and-forward", "redirect-keeps-protocol", "tcp"],
)
def test_failing_listener(token: str, props: dict[str, Any], reason: str) -> None:
    (violation,) = run(props, token)
    assert violation.policy == "load-balancer-listeners-use-https"
    assert violation.enforcement_level == "mandatory"
    assert violation.urn == f"urn:pulumi:test::p::{token}::l"
    assert reason in violation.message
    assert "Fix:" in violation.message


def test_other_resources_are_ignored() -> None:
    registration = listener({"protocol": "HTTP"}, token="aws:lb/targetGroup:TargetGroup")
    assert evaluate([registration], PACK_NAME, POLICIES, EnforcementLevel.ADVISORY, {}) == []


def test_unknown_protocol_is_reported_as_advisory_not_a_crash() -> None:
    (violation,) = run({"protocol": UNKNOWN, "port": 80.0, "defaultActions": [FORWARD]})
    assert violation.enforcement_level == "advisory"
    assert "can't run policy" in violation.message


def test_enforcement_level_comes_from_policy_config() -> None:
    registration = listener({"protocol": "HTTP", "defaultActions": [FORWARD]})
    config = {"load-balancer-listeners-use-https": {"enforcementLevel": "advisory"}}
    (violation,) = evaluate([registration], PACK_NAME, POLICIES, EnforcementLevel.ADVISORY, config)
    assert violation.enforcement_level == "advisory"


def test_rule_reads_read_only_mappings_as_the_engine_passes_them() -> None:
    from types import MappingProxyType

    props = MappingProxyType({"protocol": "HTTP", "defaultActions": (MappingProxyType(REDIRECT),)})
    assert listener_problem(props) is None


# collector-validates-client-tokens ---------------------------------------------------------------------

COLLECTOR_CONFIG = {"receivers": {"otlp": {"protocols": {"http": {"endpoint": "0.0.0.0:4318"}}}}, "service": {}}
TASK = (
    "aws:ecs/taskDefinition:TaskDefinition",
    "collector-task",
    {
        "containerDefinitions": json.dumps(
            [{"environment": [{"name": "CFG", "value": yaml.safe_dump(COLLECTOR_CONFIG)}]}]
        )
    },
)
JWT = {
    "type": "jwt-validation",
    "order": 1.0,
    "jwtValidation": {"issuer": "https://idp", "jwksEndpoint": "https://idp/k"},
}
HTTPS_OPEN = ("aws:lb/listener:Listener", "https", {"protocol": "HTTPS", "defaultActions": [FORWARD]})
HTTPS_GUARDED = (
    "aws:lb/listener:Listener",
    "https",
    {"protocol": "HTTPS", "defaultActions": [JWT, {**FORWARD, "order": 2.0}]},
)
HTTP_REDIRECT = ("aws:lb/listener:Listener", "http", {"protocol": "HTTP", "defaultActions": [REDIRECT]})


def test_collector_behind_a_token_checking_listener_passes() -> None:
    assert unauthenticated_collector_problem([TASK, HTTPS_GUARDED, HTTP_REDIRECT]) is None


def test_collector_that_authenticates_itself_passes() -> None:
    config = {"receivers": {"otlp": {"protocols": {"http": {"auth": {"authenticator": "oidc"}}}}}}
    task = (
        TASK[0],
        TASK[1],
        {"containerDefinitions": json.dumps([{"environment": [{"value": yaml.safe_dump(config)}]}])},
    )
    assert unauthenticated_collector_problem([task, HTTPS_OPEN]) is None


def test_collector_behind_an_open_listener_fails() -> None:
    problem = unauthenticated_collector_problem([TASK, HTTPS_OPEN, HTTP_REDIRECT])
    assert problem is not None and "collector-task accepts telemetry without validating a token" in problem
    assert "listeners forwarding without a token check: https" in problem


def test_a_rule_that_forwards_before_checking_fails() -> None:
    rule = ("aws:lb/listenerRule:ListenerRule", "grpc", {"actions": [{**FORWARD, "order": 1.0}, {**JWT, "order": 2.0}]})
    assert unauthenticated_collector_problem([TASK, HTTPS_GUARDED, rule]) is not None


def test_stacks_without_a_collector_are_not_concerned() -> None:
    assert unauthenticated_collector_problem([HTTPS_OPEN]) is None


def test_dev_reports_the_unauthenticated_collector_as_advisory(dev_preview: PreviewResult) -> None:
    reported = [v for v in dev_preview.violations if v.policy == "collector-validates-client-tokens"]
    assert [v.enforcement_level for v in reported] == ["advisory"]


def test_prod_policy_config_makes_it_mandatory(tmp_path: Path) -> None:
    document = yaml.safe_load((PROJECT_ROOT / "Pulumi.prod.yaml").read_text())
    document["config"]["claude-code-monitoring:collector"]["identity"] = {"mode": "none"}
    stack_file = tmp_path / "Pulumi.prod.yaml"
    stack_file.write_text(yaml.safe_dump(document))
    result = preview(Target(PROJECT_ROOT, stack_file, tmp_path / "out", PROJECT_ROOT / "policies/config/prod.json"))
    assert [(v.policy, v.enforcement_level) for v in result.mandatory] == [
        ("collector-validates-client-tokens", "mandatory")
    ]
