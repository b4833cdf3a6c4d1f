"""Violates no-iam-access-keys: a long-lived access key for an ingest user."""

import pulumi_aws as aws

user = aws.iam.User("metrics-writer", name="metrics-writer")
aws.iam.AccessKey("metrics-writer", user=user.name)
