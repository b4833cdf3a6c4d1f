"""Violates bearer-credentials-are-stored-and-watched: an expiring key kept in Secrets Manager, but nobody
is warned before it expires."""

import pulumi
import pulumi_aws as aws

user = aws.iam.User("platform-ingest", name="platform-ingest")
key = aws.iam.ServiceSpecificCredential(
    "platform-key", service_name="cloudwatch.amazonaws.com", user_name=user.name, credential_age_days=30
)
secret = aws.secretsmanager.Secret("platform-key")
aws.secretsmanager.SecretVersion(
    "platform-key",
    secret_id=secret.id,
    secret_string=pulumi.Output.secret(key.service_credential_secret),
)
