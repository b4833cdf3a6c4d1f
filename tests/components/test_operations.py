"""Operations component: an encrypted alarm topic that CloudWatch alarms can actually publish to."""

from __future__ import annotations

import json

from components.operations import alarm_topic_key_policy, alarm_topic_policy, subscription_name
from offline.preview import PreviewResult


def by_type(result: PreviewResult, token: str) -> list[dict]:
    """The Operations component's own resources of this type."""
    return [r.inputs() for r in result.run.registrations if r.type == token and "index:Operations$" in r.urn]


def test_key_policy_lets_cloudwatch_use_the_key_for_this_account_only() -> None:
    statements = {s["Sid"]: s for s in alarm_topic_key_policy("111122223333", "aws")["Statement"]}
    cloudwatch = statements["CloudWatchAlarmsPublish"]
    assert cloudwatch["Principal"] == {"Service": "cloudwatch.amazonaws.com"}
    assert cloudwatch["Action"] == ["kms:Decrypt", "kms:GenerateDataKey*"]
    assert cloudwatch["Condition"] == {"StringEquals": {"aws:SourceAccount": "111122223333"}}
    assert statements["AccountAdministersKey"]["Principal"] == {"AWS": "arn:aws:iam::111122223333:root"}


def test_topic_policy_admits_cloudwatch_and_denies_plain_transport() -> None:
    arn = "arn:aws:sns:eu-west-1:111122223333:alarms"
    statements = {s["Sid"]: s for s in alarm_topic_policy(arn, "111122223333")["Statement"]}
    assert statements["CloudWatchAlarmsPublish"]["Action"] == "sns:Publish"
    assert statements["CloudWatchAlarmsPublish"]["Resource"] == arn
    deny = statements["DenyInsecureTransport"]
    assert deny["Effect"] == "Deny" and deny["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}


def test_topic_is_encrypted_with_the_rotating_customer_key(prod_preview: PreviewResult) -> None:
    (key,) = by_type(prod_preview, "aws:kms/key:Key")
    (topic,) = by_type(prod_preview, "aws:sns/topic:Topic")
    assert key["enableKeyRotation"] is True
    assert key["deletionWindowInDays"] == 30.0  # numbers reach policies as floats
    assert topic["kmsMasterKeyId"].startswith("arn:aws:kms:eu-west-1:123456789012:key/")
    assert topic["kmsMasterKeyId"] != "alias/aws/sns"


def test_topic_policy_is_attached_to_the_topic(prod_preview: PreviewResult) -> None:
    (topic_policy,) = by_type(prod_preview, "aws:sns/topicPolicy:TopicPolicy")
    document = json.loads(topic_policy["policy"])
    assert topic_policy["arn"] == document["Statement"][0]["Resource"]


def test_one_email_subscription_per_address(prod_preview: PreviewResult) -> None:
    subscriptions = by_type(prod_preview, "aws:sns/topicSubscription:TopicSubscription")
    assert sorted(s["endpoint"] for s in subscriptions) == ["observability@example.com", "platform-oncall@example.com"]
    assert {s["protocol"] for s in subscriptions} == {"email"}


def test_children_are_parented_to_the_component(prod_preview: PreviewResult) -> None:
    registrations = prod_preview.run.registrations
    (component,) = [r for r in registrations if r.type == "claude-code-monitoring:index:Operations"]
    children = [r for r in registrations if r.parent == component.urn]
    assert {r.type for r in children} >= {"aws:kms/key:Key", "aws:sns/topic:Topic", "aws:sns/topicPolicy:TopicPolicy"}
    assert all(r.name.startswith(component.name) for r in children)


def test_subscription_names_are_stable_per_address() -> None:
    assert subscription_name("Platform.OnCall@Example.com") == "platform-oncall-example-com"
