"""Violates load-balancer-listeners-use-https: port 80 forwards to the targets, bypassing TLS."""

import pulumi_aws as aws

balancer = aws.lb.LoadBalancer("collector", load_balancer_type="application", subnets=["subnet-1", "subnet-2"])
targets = aws.lb.TargetGroup("collector", port=4318, protocol="HTTP", target_type="ip", vpc_id="vpc-12345678")
aws.lb.Listener(
    "http-forward",
    load_balancer_arn=balancer.arn,
    port=80,
    protocol="HTTP",
    default_actions=[{"type": "forward", "target_group_arn": targets.arn}],
)
