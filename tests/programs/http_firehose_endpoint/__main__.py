"""Violates firehose-http-endpoints-use-https: usage rows are delivered to an http:// endpoint."""

import pulumi_aws as aws

backup = aws.s3.Bucket("backup")
role_arn = "arn:aws:iam::123456789012:role/firehose"
aws.kinesis.FirehoseDeliveryStream(
    "usage-export",
    destination="http_endpoint",
    http_endpoint_configuration={
        "url": "http://ingest.example.com/claude-code",
        "name": "usage-warehouse",
        "role_arn": role_arn,
        "s3_configuration": {"role_arn": role_arn, "bucket_arn": backup.arn},
    },
)
aws.s3.BucketPolicy(
    "backup",
    bucket=backup.id,
    policy=backup.arn.apply(
        lambda arn: (
            '{"Version":"2012-10-17","Statement":[{"Effect":"Deny","Principal":"*","Action":"s3:*",'
            f'"Resource":["{arn}","{arn}/*"],"Condition":{{"Bool":{{"aws:SecureTransport":"false"}}}}}}]}}'
        )
    ),
)
