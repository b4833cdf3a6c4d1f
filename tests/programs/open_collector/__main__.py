"""Violates collector-validates-client-tokens (mandatory under policies/config/prod.json): the HTTPS listener
forwards to a collector that checks no token, so anyone who reaches it can report usage as anyone."""

import json

import pulumi_aws as aws
import yaml

IMAGE = "ghcr.io/open-telemetry/opentelemetry-collector-releases/opentelemetry-collector-contrib:0.161.0"
collector_config = {
    "receivers": {"otlp": {"protocols": {"http": {"endpoint": "0.0.0.0:4318"}}}},
    "exporters": {"debug": {}},
    "service": {"pipelines": {"metrics": {"receivers": ["otlp"], "exporters": ["debug"]}}},
}
aws.ecs.TaskDefinition(
    "collector",
    family="collector",
    cpu="512",
    memory="1024",
    network_mode="awsvpc",
    requires_compatibilities=["FARGATE"],
    container_definitions=json.dumps(
        [
            {
                "name": "otel",
                "image": IMAGE,
                "command": ["--config=env:OTELCOL_CONFIG"],
                "environment": [{"name": "OTELCOL_CONFIG", "value": yaml.safe_dump(collector_config)}],
            }
        ]
    ),
)
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
