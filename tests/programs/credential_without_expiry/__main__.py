"""Violates service-credentials-expire: a CloudWatch API key that never expires (it is stored and watched)."""

import json

import pulumi
import pulumi_aws as aws

user = aws.iam.User("platform-ingest", name="platform-ingest")
aws.iam.UserPolicyAttachment(
    "platform-ingest", user=user.name, policy_arn="arn:aws:iam::aws:policy/CloudWatchAPIKeyAccess"
)
key = aws.iam.ServiceSpecificCredential("platform-key", service_name="cloudwatch.amazonaws.com", user_name=user.name)
secret = aws.secretsmanager.Secret("platform-key")
aws.secretsmanager.SecretVersion(
    "platform-key", secret_id=secret.id, secret_string=pulumi.Output.secret(key.service_credential_secret)
)
watcher = aws.lambda_.Function(
    "key-expiry",
    runtime="python3.12",
    handler="index.handler",
    role="arn:aws:iam::123456789012:role/key-expiry",
    code=pulumi.AssetArchive({"index.py": pulumi.StringAsset("def handler(event, context):\n    return None\n")}),
    environment={"variables": {"INGEST_USERS": json.dumps(["platform-ingest"])}},
)
aws.scheduler.Schedule(
    "key-expiry",
    schedule_expression="rate(1 day)",
    flexible_time_window={"mode": "OFF"},
    target={"arn": watcher.arn, "role_arn": "arn:aws:iam::123456789012:role/scheduler"},
)
