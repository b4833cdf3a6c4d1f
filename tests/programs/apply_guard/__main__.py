"""An input rendered inside an apply on an output (hostedZoneId) that the offline mocks do not return."""

import pulumi_aws as aws

bucket = aws.s3.Bucket("data")
aws.sns.Topic("rendered", display_name=bucket.hosted_zone_id.apply(lambda zone: f"rendered in an apply: {zone}"))
