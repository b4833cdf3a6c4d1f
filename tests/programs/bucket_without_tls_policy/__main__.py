"""Violates buckets-deny-insecure-transport: the data lake bucket has no policy denying plain HTTP."""

import pulumi_aws as aws

aws.s3.Bucket("data-lake")
