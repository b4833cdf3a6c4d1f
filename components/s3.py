"""S3 pieces more than one component needs: a private bucket's settings and the TLS-only policy statement."""

from __future__ import annotations

from typing import Any

import pulumi
import pulumi_aws as aws


def deny_insecure_transport(bucket_arn: str) -> dict[str, Any]:
    """The bucket policy statement that refuses any request without TLS."""
    return {
        "Sid": "DenyInsecureTransport",
        "Effect": "Deny",
        "Principal": "*",
        "Action": "s3:*",
        "Resource": [bucket_arn, f"{bucket_arn}/*"],
        "Condition": {"Bool": {"aws:SecureTransport": "false"}},
    }


def make_private(name: str, bucket: aws.s3.Bucket, opts: pulumi.ResourceOptions) -> aws.s3.BucketPublicAccessBlock:
    """Block every form of public access and disable ACLs (the bucket owner owns every object)."""
    public_access = aws.s3.BucketPublicAccessBlock(
        name,
        bucket=bucket.id,
        block_public_acls=True,
        block_public_policy=True,
        ignore_public_acls=True,
        restrict_public_buckets=True,
        opts=opts,
    )
    aws.s3.BucketOwnershipControls(name, bucket=bucket.id, rule={"object_ownership": "BucketOwnerEnforced"}, opts=opts)
    return public_access
