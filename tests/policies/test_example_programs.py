"""Example programs under tests/programs, each breaking one rule, previewed as `make preview PROGRAM=...` does."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from offline.preview import EXIT_MANDATORY, EXIT_OK, PROJECT_ROOT, main
from policies.pack import POLICIES
from tests.conftest import PROGRAMS, make_preview

VIOLATIONS = {
    "http_forwarding_listener": ("load-balancer-listeners-use-https", "aws:lb/listener:Listener::http-forward"),
    "alb_token_listener": ("load-balancer-listeners-use-https", "aws:alb/listener:Listener::http-to-http"),
    "http_settings_endpoint": ("claude-code-settings-use-https", "aws:ssm/parameter:Parameter::managed-settings"),
    "http_sns_subscription": ("sns-subscriptions-use-https", "aws:sns/topicSubscription:TopicSubscription::webhook"),
    "http_firehose_endpoint": (
        "firehose-http-endpoints-use-https",
        "aws:kinesis/firehoseDeliveryStream:FirehoseDeliveryStream::usage-export",
    ),
    "bucket_without_tls_policy": ("buckets-deny-insecure-transport", "aws:s3/bucket:Bucket::data-lake"),
    "per_user_emf_dimension": (
        "collector-metrics-have-no-per-user-dimensions",
        "aws:ssm/parameter:Parameter::collector-config",
    ),
    "per_user_alarm": ("alarms-have-no-per-user-dimensions", "aws:cloudwatch/metricAlarm:MetricAlarm::alice-cost"),
    "per_user_metric_filter": (
        "log-metric-filters-have-no-per-user-dimensions",
        "aws:cloudwatch/logMetricFilter:LogMetricFilter::api-requests-per-user",
    ),
    "per_user_dashboard": ("dashboards-have-no-per-user-dimensions", "aws:cloudwatch/dashboard:Dashboard::usage"),
    "direct_ingest_with_session_id": (
        "direct-ingest-settings-exclude-users",
        "aws:s3/bucketObjectv2:BucketObjectv2::platform-settings",
    ),
    "credential_without_expiry": (
        "service-credentials-expire",
        "aws:iam/serviceSpecificCredential:ServiceSpecificCredential::platform-key",
    ),
    "iam_access_key": ("no-iam-access-keys", "aws:iam/accessKey:AccessKey::metrics-writer"),
}
# Advisory by default, mandatory under prod's policy configuration: the collector rule (dev runs without identity)
# and the structural credential rule (another program may keep and watch its keys where the rule cannot see).
VIOLATIONS_UNDER_PROD_POLICY = {
    "open_collector": ("collector-validates-client-tokens", None),
    "unwatched_credential": (
        "bearer-credentials-are-stored-and-watched",
        "aws:iam/serviceSpecificCredential:ServiceSpecificCredential::platform-key",
    ),
}
PROD_POLICY_CONFIG = PROJECT_ROOT / "policies" / "config" / "prod.json"


def preview_exit(name: str, out: Path, policy_config: Path | None = None) -> tuple[int, list[dict]]:
    program = PROGRAMS / name
    arguments = ["--program", str(program), "--config", str(program / "Pulumi.test.yaml"), "--out", str(out)]
    status = main([*arguments, *(["--policy-config", str(policy_config)] if policy_config else [])])
    return status, json.loads((out / "plan.json").read_text())["violations"]


def test_every_rule_has_a_failing_example() -> None:
    shown = {rule for rule, _ in [*VIOLATIONS.values(), *VIOLATIONS_UNDER_PROD_POLICY.values()]}
    assert shown == {policy.name for policy in POLICIES}


@pytest.mark.parametrize("name", sorted(VIOLATIONS))
def test_example_fails_with_one_mandatory_violation_on_the_right_resource(name: str, tmp_path: Path) -> None:
    rule, resource = VIOLATIONS[name]
    status, violations = preview_exit(name, tmp_path)
    assert status == EXIT_MANDATORY
    assert [(v["policy"], v["enforcementLevel"]) for v in violations] == [(rule, "mandatory")]
    assert violations[0]["urn"].endswith(f"::{resource}")


def test_open_collector_fails_under_prods_policy_config_and_is_advisory_by_default(tmp_path: Path) -> None:
    status, violations = preview_exit("open_collector", tmp_path / "prod", PROD_POLICY_CONFIG)
    assert status == EXIT_MANDATORY
    assert [(v["policy"], v["enforcementLevel"], v["urn"]) for v in violations] == [
        ("collector-validates-client-tokens", "mandatory", None)  # a stack rule: it names the stack, not a resource
    ]
    assert "collector collector accepts telemetry without validating a token" in violations[0]["message"]
    status, violations = preview_exit("open_collector", tmp_path / "default")
    assert status == EXIT_OK and [v["enforcementLevel"] for v in violations] == ["advisory"]


def test_unwatched_credential_fails_under_prods_policy_config_and_is_advisory_by_default(tmp_path: Path) -> None:
    rule, resource = VIOLATIONS_UNDER_PROD_POLICY["unwatched_credential"]
    status, violations = preview_exit("unwatched_credential", tmp_path / "prod", PROD_POLICY_CONFIG)
    assert status == EXIT_MANDATORY
    assert [(v["policy"], v["enforcementLevel"]) for v in violations] == [(rule, "mandatory")]
    assert violations[0]["urn"].endswith(f"::{resource}")
    assert "no scheduled function warns before it expires" in violations[0]["message"]
    status, violations = preview_exit("unwatched_credential", tmp_path / "default")
    assert status == EXIT_OK
    assert [(v["policy"], v["enforcementLevel"]) for v in violations] == [(rule, "advisory")]


def test_compliant_example_has_no_violation(tmp_path: Path) -> None:
    assert preview_exit("compliant_monitoring", tmp_path) == (EXIT_OK, [])


def test_make_preview_program_passes_the_compliant_example(tmp_path: Path) -> None:
    completed = make_preview("compliant_monitoring", tmp_path)
    assert completed.returncode == 0, completed.stdout + completed.stderr
    assert "Policy verdict: passed (0 mandatory, 0 advisory)" in completed.stdout


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_both_stacks_pass_with_their_policy_config(stack: str, request: pytest.FixtureRequest) -> None:
    result = request.getfixturevalue(f"{stack}_preview")
    assert result.mandatory == []
