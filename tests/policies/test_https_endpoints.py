"""HTTPS endpoints, fed through the analyzer exactly as the engine feeds it."""

from __future__ import annotations

import json
from pathlib import Path
from types import MappingProxyType
from typing import Any

import pytest
import yaml

from offline.preview import PROJECT_ROOT, PreviewResult, Target, preview
from policies.https_endpoints import denies_insecure_transport, listener_problem, unauthenticated_collector_problem
from tests.policies.engine_shape import UNKNOWN, resource, secret, urn, violations_of

LISTENER = "aws:lb/listener:Listener"
TLS13 = "ELBSecurityPolicy-TLS13-1-2-2021-06"
REDIRECT = {"type": "redirect", "redirect": {"protocol": "HTTPS", "port": "443", "statusCode": "HTTP_301"}}
FORWARD = {"type": "forward", "targetGroupArn": "arn:aws:elasticloadbalancing:eu-west-1:1:targetgroup/t/1"}


def listener_violations(props: dict[str, Any], token: str = LISTENER, config: dict | None = None) -> list:
    return violations_of("load-balancer-listeners-use-https", [resource(token, "l", props)], config)


# load-balancer-listeners-use-https ---------------------------------------------------------------------


@pytest.mark.parametrize("token", [LISTENER, "aws:alb/listener:Listener"])
@pytest.mark.parametrize(
    "props",
    [
        {"protocol": "HTTPS", "port": 443.0, "sslPolicy": TLS13, "defaultActions": [FORWARD]},
        {"protocol": "TLS", "port": 443.0, "sslPolicy": "ELBSecurityPolicy-TLS13-1-3-2021-06"},
        {"protocol": "HTTP", "port": 80.0, "defaultActions": [REDIRECT]},
    ],
    ids=["https", "tls", "http-redirect-only"],
)
def test_passing_listener(token: str, props: dict[str, Any]) -> None:
    assert listener_violations(props, token) == []


@pytest.mark.parametrize("token", [LISTENER, "aws:alb/listener:Listener"])
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
        ({"protocol": "HTTPS", "port": 443.0, "defaultActions": [FORWARD]}, "applies ELBSecurityPolicy-2016-08"),
        (
            {"protocol": "HTTPS", "port": 443.0, "sslPolicy": "ELBSecurityPolicy-TLS-1-1-2017-01"},
            "'ELBSecurityPolicy-TLS-1-1-2017-01', which is not in the allowed list",
        ),
    ],
    ids=["http-forward", "no-protocol", "redirect-and-forward", "redirect-keeps-protocol", "tcp", "no-policy", "tls11"],
)
def test_failing_listener(token: str, props: dict[str, Any], reason: str) -> None:
    (violation,) = listener_violations(props, token)
    assert violation.enforcement_level == "mandatory"
    assert violation.urn == urn(token, "l")
    assert reason in violation.message
    assert "Fix:" in violation.message


def test_allowed_security_policies_come_from_the_policy_config() -> None:
    props = {"protocol": "HTTPS", "sslPolicy": TLS13}
    config = {"load-balancer-listeners-use-https": {"allowedSslPolicies": ["ELBSecurityPolicy-TLS13-1-3-2021-06"]}}
    (violation,) = listener_violations(props, config=config)
    assert f"{TLS13!r}, which is not in the allowed list" in violation.message


def test_other_resources_are_ignored() -> None:
    assert listener_violations({"protocol": "HTTP"}, token="aws:lb/targetGroup:TargetGroup") == []


def test_unknown_protocol_is_reported_as_advisory_not_a_crash() -> None:
    (violation,) = listener_violations({"protocol": UNKNOWN, "port": 80.0, "defaultActions": [FORWARD]})
    assert violation.enforcement_level == "advisory"
    assert "can't run policy" in violation.message and ".protocol can't be known during preview" in violation.message


def test_enforcement_level_comes_from_policy_config() -> None:
    config = {"load-balancer-listeners-use-https": {"enforcementLevel": "advisory"}}
    (violation,) = listener_violations({"protocol": "HTTP", "defaultActions": [FORWARD]}, config=config)
    assert violation.enforcement_level == "advisory"


def test_rule_reads_read_only_mappings_as_the_engine_passes_them() -> None:
    props = MappingProxyType({"protocol": "HTTP", "defaultActions": (MappingProxyType(REDIRECT),)})
    assert listener_problem(props) is None


AWSX_ALB = "awsx:lb:ApplicationLoadBalancer"


@pytest.mark.parametrize(
    ("token", "props", "reason"),
    [
        (AWSX_ALB, {"subnetIds": ["s-1", "s-2"]}, "listener alb-0: HTTP listener on port 80 forwards"),
        (AWSX_ALB, {"listener": {"port": 8080.0}}, "HTTP listener on port 8080 forwards"),
        (AWSX_ALB, {"listener": {"port": 443.0}}, "HTTPS listener on port 443 sets no sslPolicy"),
        (
            AWSX_ALB,
            {"listeners": [{"port": 443.0, "sslPolicy": TLS13}, {"port": 80.0}]},
            "listener alb-1: HTTP listener on port 80 forwards",
        ),
        ("awsx:lb:NetworkLoadBalancer", {}, "TCP listener on port 80 carries traffic unencrypted"),
    ],
    ids=["alb-default", "alb-port-8080", "alb-443-no-policy", "alb-second-listener", "nlb-default"],
)
def test_awsx_listener_arguments_are_checked(token: str, props: dict[str, Any], reason: str) -> None:
    (violation,) = violations_of("load-balancer-listeners-use-https", [resource(token, "alb", props)])
    assert reason in violation.message and "(awsx listener arguments)" in violation.message


def test_awsx_load_balancer_with_https_and_redirect_passes() -> None:
    props = {"listeners": [{"port": 443.0, "sslPolicy": TLS13}, {"port": 80.0, "defaultActions": [REDIRECT]}]}
    assert violations_of("load-balancer-listeners-use-https", [resource(AWSX_ALB, "alb", props)]) == []


# claude-code-settings-use-https --------------------------------------------------------------------------


def settings_json(endpoint: str, **env: str) -> str:
    return json.dumps({"env": {"CLAUDE_CODE_ENABLE_TELEMETRY": "1", "OTEL_EXPORTER_OTLP_ENDPOINT": endpoint, **env}})


@pytest.mark.parametrize(
    ("token", "props"),
    [
        ("aws:ssm/parameter:Parameter", {"insecureValue": settings_json("{endpoint}")}),
        ("aws:ssm/parameter:Parameter", {"value": secret(settings_json("{endpoint}"))}),
        ("aws:s3/bucketObjectv2:BucketObjectv2", {"content": settings_json("{endpoint}")}),
        ("aws:secretsmanager/secretVersion:SecretVersion", {"secretString": secret(settings_json("{endpoint}"))}),
    ],
    ids=["ssm", "ssm-secret", "bucket-object", "secret"],
)
@pytest.mark.parametrize(
    ("endpoint", "failing"),
    [("https://otel.example.com", False), ("http://otel.example.com:4318", True)],
    ids=["https", "http"],
)
def test_settings_endpoints(token: str, props: dict[str, Any], endpoint: str, failing: bool) -> None:
    filled = json.loads(json.dumps(props).replace("{endpoint}", endpoint))
    violations = violations_of("claude-code-settings-use-https", [resource(token, "settings", filled)])
    assert len(violations) == failing
    if failing:
        assert "env.OTEL_EXPORTER_OTLP_ENDPOINT is 'http://otel.example.com:4318'" in violations[0].message
        assert violations[0].enforcement_level == "mandatory"


def test_a_per_signal_endpoint_over_http_fails() -> None:
    value = settings_json("https://otel.example.com", OTEL_EXPORTER_OTLP_LOGS_ENDPOINT="http://logs:4318")
    (violation,) = violations_of(
        "claude-code-settings-use-https", [resource("aws:ssm/parameter:Parameter", "s", {"value": value})]
    )
    assert "OTEL_EXPORTER_OTLP_LOGS_ENDPOINT is 'http://logs:4318'" in violation.message


def test_parameters_that_are_not_settings_are_ignored() -> None:
    plain = resource("aws:ssm/parameter:Parameter", "p", {"value": "http://not-settings.example.com"})
    assert violations_of("claude-code-settings-use-https", [plain]) == []


# sns-subscriptions-use-https, firehose-http-endpoints-use-https ----------------------------------------------

SUBSCRIPTION = "aws:sns/topicSubscription:TopicSubscription"
FIREHOSE = "aws:kinesis/firehoseDeliveryStream:FirehoseDeliveryStream"


@pytest.mark.parametrize(
    ("props", "failing"),
    [
        ({"protocol": "http", "endpoint": "http://hooks.example.com/alerts"}, True),
        ({"protocol": "https", "endpoint": "https://hooks.example.com/alerts"}, False),
        ({"protocol": "email", "endpoint": "ops@example.com"}, False),
    ],
    ids=["http", "https", "email"],
)
def test_sns_subscription_protocols(props: dict[str, Any], failing: bool) -> None:
    violations = violations_of("sns-subscriptions-use-https", [resource(SUBSCRIPTION, "hook", props)])
    assert len(violations) == failing
    if failing:
        assert "'http://hooks.example.com/alerts' with protocol 'http'" in violations[0].message


@pytest.mark.parametrize(
    ("url", "failing"), [("http://ingest.example.com", True), ("https://ingest.example.com", False)]
)
def test_firehose_http_endpoint(url: str, failing: bool) -> None:
    props = {"destination": "http_endpoint", "httpEndpointConfiguration": {"url": url, "name": "x"}}
    violations = violations_of("firehose-http-endpoints-use-https", [resource(FIREHOSE, "lake", props)])
    assert len(violations) == failing


def test_firehose_to_s3_is_not_concerned() -> None:
    props = {"destination": "extended_s3", "extendedS3Configuration": {"bucketArn": "arn:aws:s3:::b"}}
    assert violations_of("firehose-http-endpoints-use-https", [resource(FIREHOSE, "lake", props)]) == []


# buckets-deny-insecure-transport ---------------------------------------------------------------------------

BUCKET = "aws:s3/bucket:Bucket"
BUCKET_POLICY = "aws:s3/bucketPolicy:BucketPolicy"
TLS_ONLY = {
    "Version": "2012-10-17",
    "Statement": [
        {
            "Effect": "Deny",
            "Principal": "*",
            "Action": "s3:*",
            "Resource": ["arn:aws:s3:::logs", "arn:aws:s3:::logs/*"],
            "Condition": {"Bool": {"aws:SecureTransport": "false"}},
        }
    ],
}


def bucket_with_policy(policy: Any) -> list:
    bucket = resource(BUCKET, "logs", {"bucket": "logs"})
    linked = resource(
        BUCKET_POLICY, "logs", {"bucket": "logs", "policy": policy}, property_dependencies={"bucket": [bucket.urn]}
    )
    return [bucket, linked]


def test_bucket_with_a_tls_only_policy_passes() -> None:
    assert violations_of("buckets-deny-insecure-transport", bucket_with_policy(json.dumps(TLS_ONLY))) == []


@pytest.mark.parametrize(
    "change",
    [
        {"Effect": "Allow"},
        {"Action": "s3:GetObject"},
        {"Principal": {"AWS": "arn:aws:iam::123456789012:root"}},
        {"Condition": {"Bool": {"aws:SecureTransport": "true"}}},
    ],
    ids=["allow", "one-action", "one-principal", "wrong-condition"],
)
def test_bucket_policy_that_does_not_deny_plain_http_fails(change: dict[str, Any]) -> None:
    document = {**TLS_ONLY, "Statement": [{**TLS_ONLY["Statement"][0], **change}]}
    (violation,) = violations_of("buckets-deny-insecure-transport", bucket_with_policy(json.dumps(document)))
    assert violation.urn == urn(BUCKET, "logs") and violation.enforcement_level == "mandatory"
    assert "bucket logs has no bucket policy that denies requests without TLS" in violation.message


def test_bucket_without_any_policy_fails() -> None:
    (violation,) = violations_of("buckets-deny-insecure-transport", [resource(BUCKET, "lake", {})])
    assert violation.urn == urn(BUCKET, "lake")


def test_denial_accepts_the_spellings_iam_accepts() -> None:
    statement = {**TLS_ONLY["Statement"][0], "Principal": {"AWS": ["*"]}, "Action": ["s3:*"]}
    assert denies_insecure_transport({"Statement": statement, "Condition": None})
    statement["Condition"] = {"BoolIfExists": {"aws:SecureTransport": False}}
    assert denies_insecure_transport({"Statement": [statement]})


def test_unknown_bucket_policy_is_advisory_and_other_buckets_are_still_checked() -> None:
    unknown = bucket_with_policy(UNKNOWN)
    bare = resource(BUCKET, "bare", {})
    violations = violations_of("buckets-deny-insecure-transport", [*unknown, bare])
    assert sorted((v.enforcement_level, v.urn) for v in violations) == [
        ("advisory", None),
        ("mandatory", urn(BUCKET, "bare")),
    ]
    (advisory,) = [v for v in violations if v.enforcement_level == "advisory"]
    assert "could not check logs" in advisory.message


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
HTTPS_OPEN = (LISTENER, "https", {"protocol": "HTTPS", "defaultActions": [FORWARD]})
HTTPS_GUARDED = (LISTENER, "https", {"protocol": "HTTPS", "defaultActions": [JWT, {**FORWARD, "order": 2.0}]})
HTTP_REDIRECT = (LISTENER, "http", {"protocol": "HTTP", "defaultActions": [REDIRECT]})


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


def test_collector_rule_through_the_engine_with_an_unknown_listener() -> None:
    resources = [resource(*TASK), resource(*HTTPS_OPEN), resource(LISTENER, "later", {"protocol": UNKNOWN})]
    violations = violations_of("collector-validates-client-tokens", resources)
    assert sorted(v.enforcement_level for v in violations) == ["advisory", "advisory"]  # the rule is advisory
    assert any("could not check later" in v.message for v in violations)
    assert any("collector-task accepts telemetry" in v.message for v in violations)


def test_dev_reports_the_unauthenticated_collector_as_advisory(dev_preview: PreviewResult) -> None:
    reported = [v for v in dev_preview.violations if v.policy == "collector-validates-client-tokens"]
    assert [v.enforcement_level for v in reported] == ["advisory"]


def test_prod_policy_config_makes_it_mandatory(tmp_path: Path) -> None:
    document = yaml.safe_load((PROJECT_ROOT / "Pulumi.prod.yaml").read_text())
    document["config"]["claude-code-monitoring:collector"]["identity"] = {"mode": "none"}
    document["config"]["claude-code-monitoring:collector"]["allowedCidrs"] = ["203.0.113.0/24"]  # none needs it
    document["config"]["claude-code-monitoring:quota"]["users"] = []  # quotas by email need a verified token
    stack_file = tmp_path / "Pulumi.prod.yaml"
    stack_file.write_text(yaml.safe_dump(document))
    result = preview(Target(PROJECT_ROOT, stack_file, tmp_path / "out", PROJECT_ROOT / "policies/config/prod.json"))
    assert [(v.policy, v.enforcement_level) for v in result.mandatory] == [
        ("collector-validates-client-tokens", "mandatory")
    ]
