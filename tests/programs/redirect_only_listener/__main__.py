"""Complies: HTTPS terminates TLS, and port 80 only redirects to it. A secret in config stays a secret."""

import pulumi
import pulumi_aws as aws

config = pulumi.Config()
balancer = aws.lb.LoadBalancer("collector", load_balancer_type="application", subnets=["subnet-1", "subnet-2"])
targets = aws.lb.TargetGroup("collector", port=4318, protocol="HTTP", target_type="ip", vpc_id="vpc-12345678")
aws.lb.Listener(
    "https",
    load_balancer_arn=balancer.arn,
    port=443,
    protocol="HTTPS",
    ssl_policy="ELBSecurityPolicy-TLS13-1-2-2021-06",
    certificate_arn="arn:aws:acm:eu-west-1:123456789012:certificate/00000000-0000-4000-a000-000000000000",
    default_actions=[{"type": "forward", "target_group_arn": targets.arn}],
)
aws.lb.Listener(
    "http-redirect",
    load_balancer_arn=balancer.arn,
    port=80,
    protocol="HTTP",
    default_actions=[{"type": "redirect", "redirect": {"protocol": "HTTPS", "port": "443", "status_code": "HTTP_301"}}],
)
aws.ssm.Parameter("webhook-token", type="SecureString", value=config.require_secret("webhookToken"))
aws.cloudwatch.Dashboard(
    "usage",
    dashboard_name="usage",
    dashboard_body=targets.arn_suffix.apply(
        lambda suffix: pulumi.Output.json_dumps({"widgets": [{"type": "text", "properties": {"markdown": suffix}}]})
    ),
)
aws.athena.NamedQuery("top-users", database="claude_code", query="SELECT 1")
pulumi.export("listenerCount", 2)
