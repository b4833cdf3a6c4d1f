"""Violates load-balancer-listeners-use-https through the legacy `aws:alb` token: it redirects to HTTP."""

import pulumi_aws as aws

balancer = aws.alb.LoadBalancer("collector", subnets=["subnet-1", "subnet-2"])
aws.alb.Listener(
    "http-to-http",
    load_balancer_arn=balancer.arn,
    port=80,
    default_actions=[{"type": "redirect", "redirect": {"protocol": "HTTP", "port": "8080", "status_code": "HTTP_301"}}],
)
