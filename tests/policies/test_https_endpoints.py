"""load-balancer-listeners-use-https, fed through the analyzer exactly as the engine feeds it."""

from __future__ import annotations

from typing import Any

import pytest
from google.protobuf import struct_pb2
from pulumi.runtime.rpc import UNKNOWN
from pulumi_policy import EnforcementLevel

from offline.engine import Registration
from offline.policy import Violation, evaluate
from policies.https_endpoints import listener_problem
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
