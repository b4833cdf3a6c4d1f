"""Operations: the encrypted SNS topic that every operational alarm of the stack publishes to.

CloudWatch alarms cannot publish to a topic encrypted with the AWS managed key `alias/aws/sns` (its key
policy does not admit CloudWatch), so the topic gets a customer managed key whose policy does.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import pulumi
import pulumi_aws as aws

COMPONENT_TYPE = "claude-code-monitoring:index:Operations"
EMAIL_PATTERN = r"^[A-Za-z0-9._%+'-]+@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}$"
HTTPS_URL_PATTERN = r"^https://[^\s/:]+(:\d+)?(/\S*)?$"
"""What a topic subscriber may be: an email address, or an HTTPS endpoint (never plain HTTP)."""


@dataclass(frozen=True)
class OperationsArgs:
    """Arguments of the Operations component."""

    alarm_emails: list[str] = field(default_factory=list)
    """Addresses subscribed to operational alarms (each confirms its subscription by email)."""

    key_deletion_window_days: int = 30
    """Days before a deleted topic key is destroyed; the longest window AWS allows, to recover from mistakes."""


def alarm_topic_key_policy(account_id: str, partition: str) -> dict[str, Any]:
    """Key policy: the account administers the key; CloudWatch alarms of this account may encrypt to it."""
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "AccountAdministersKey",
                "Effect": "Allow",
                "Principal": {"AWS": f"arn:{partition}:iam::{account_id}:root"},
                "Action": "kms:*",
                "Resource": "*",
            },
            {
                "Sid": "CloudWatchAlarmsPublish",
                "Effect": "Allow",
                "Principal": {"Service": "cloudwatch.amazonaws.com"},
                "Action": ["kms:Decrypt", "kms:GenerateDataKey*"],
                "Resource": "*",
                "Condition": {"StringEquals": {"aws:SourceAccount": account_id}},
            },
        ],
    }


def alarm_topic_policy(topic_arn: str, account_id: str) -> dict[str, Any]:
    """Topic policy: CloudWatch alarms of this account publish; nothing reaches the topic without TLS."""
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "CloudWatchAlarmsPublish",
                "Effect": "Allow",
                "Principal": {"Service": "cloudwatch.amazonaws.com"},
                "Action": "sns:Publish",
                "Resource": topic_arn,
                "Condition": {"StringEquals": {"aws:SourceAccount": account_id}},
            },
            topic_denies_insecure_transport(topic_arn),
        ],
    }


def topic_denies_insecure_transport(topic_arn: str) -> dict[str, Any]:
    """Topic policy statement: nothing is published to, subscribed to or received from the topic without TLS."""
    return {
        "Sid": "DenyInsecureTransport",
        "Effect": "Deny",
        "Principal": "*",
        "Action": ["sns:Publish", "sns:Subscribe", "sns:Receive"],
        "Resource": topic_arn,
        "Condition": {"Bool": {"aws:SecureTransport": "false"}},
    }


def subscription_name(email: str) -> str:
    """A stable logical name per address, so reordering the list replaces nothing."""
    return re.sub(r"[^a-z0-9-]", "-", email.lower())


def subscribe(
    prefix: str,
    topic_arn: pulumi.Input[str],
    parent: pulumi.Resource,
    emails: Sequence[str] = (),
    https_endpoints: Sequence[str] = (),
) -> None:
    """Email and HTTPS subscriptions of a topic, named `<prefix>-<address>` and `<prefix>-https-<hash>`. Each
    subscriber confirms its subscription (SNS sends the confirmation)."""
    child = pulumi.ResourceOptions(parent=parent)
    for email in emails:
        aws.sns.TopicSubscription(
            f"{prefix}-{subscription_name(email)}", topic=topic_arn, protocol="email", endpoint=email, opts=child
        )
    for url in https_endpoints:
        aws.sns.TopicSubscription(
            f"{prefix}-https-{hashlib.sha256(url.encode()).hexdigest()[:8]}",
            topic=topic_arn,
            protocol="https",
            endpoint=url,
            opts=child,
        )


class Operations(pulumi.ComponentResource):
    """The stack's operational alarm topic, KMS-encrypted, with email subscriptions."""

    topic_arn: pulumi.Output[str]

    def __init__(self, name: str, args: OperationsArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__(COMPONENT_TYPE, name, None, opts)
        child = pulumi.ResourceOptions(parent=self)

        identity = aws.get_caller_identity_output(opts=pulumi.InvokeOutputOptions(parent=self))
        partition = aws.get_partition_output(opts=pulumi.InvokeOutputOptions(parent=self))

        key = aws.kms.Key(
            f"{name}-alarms-key",
            description=f"Encrypts the operational alarm topic of {name}",
            enable_key_rotation=True,
            deletion_window_in_days=args.key_deletion_window_days,
            policy=pulumi.Output.all(identity.account_id, partition.partition).apply(
                lambda values: json.dumps(alarm_topic_key_policy(values[0], values[1]))
            ),
            opts=child,
        )
        aws.kms.Alias(f"{name}-alarms-key-alias", name=f"alias/{name}-alarms", target_key_id=key.key_id, opts=child)
        topic = aws.sns.Topic(f"{name}-alarms", kms_master_key_id=key.arn, opts=child)
        aws.sns.TopicPolicy(
            f"{name}-alarms-policy",
            arn=topic.arn,
            policy=pulumi.Output.all(topic.arn, identity.account_id).apply(
                lambda values: json.dumps(alarm_topic_policy(values[0], values[1]))
            ),
            opts=child,
        )
        subscribe(f"{name}-alarms", topic.arn, self, emails=args.alarm_emails)

        self.topic_arn = topic.arn
        self.topic_key_arn = key.arn
        """Publishers need kms:GenerateDataKey* and kms:Decrypt on this key (the key policy defers to IAM)."""
        self.register_outputs({"topicArn": topic.arn, "topicKeyArn": key.arn})
