"""Collector: the OpenTelemetry collector on ECS Fargate behind an HTTPS load balancer (Path A).

Claude Code sends OTLP over HTTPS to the load balancer, which validates the identity provider's token
(`jwt` identity) before forwarding to collector tasks in private subnets. The collector writes metrics
through awsemf (aggregate dimensions only) and events to CloudWatch Logs; its configuration is rendered
by `components.collector_config` and passed in the task definition, so a change rolls the tasks.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import pulumi
import pulumi_aws as aws
import pulumi_awsx as awsx

from components.claude_settings import DEFAULT_TOKEN_HELPER_SCOPES, TokenHelperSettings, collector_managed_settings
from components.collector_config import (
    CONFIG_ENV_VAR,
    HEALTH_CHECK_PATH,
    HEALTH_CHECK_PORT,
    OTLP_GRPC_PORT,
    OTLP_HTTP_PORT,
    CollectorPipelineSettings,
    IdentityClaimNames,
    collector_config_yaml,
)
from components.collector_release import COLLECTOR_IMAGE
from components.iam import service_trust_policy
from components.s3 import deny_insecure_transport, make_private

COMPONENT_TYPE = "claude-code-monitoring:index:Collector"

DEFAULT_COLLECTOR_IMAGE = COLLECTOR_IMAGE  # the contrib image of the release the tests build and validate with
# repository:<version tag> (starts with a digit, so never `latest`) or repository@sha256:<digest>
PINNED_IMAGE_PATTERN = (
    r"^[a-z0-9]+([._/-][a-z0-9]+)*(:[0-9]+)?(/[a-z0-9]+([._-][a-z0-9]+)*)*"
    r"(:v?[0-9][A-Za-z0-9_.-]{0,127}|@sha256:[0-9a-f]{64})$"
)
TLS_POLICY = "ELBSecurityPolicy-TLS13-1-2-2021-06"
GRPC_PATH_PATTERN = "/opentelemetry.proto.collector.*"
CONTAINER_NAME = "otel-collector"


class InvalidCollectorArgs(pulumi.RunError):
    """Collector arguments that cannot work; the message names the argument and what is allowed."""


@dataclass(frozen=True)
class IdentityArgs:
    """How clients prove who they are."""

    mode: Literal["jwt", "none"]
    """`jwt`: the HTTPS listener validates the bearer token; `none`: unauthenticated (dev only)."""
    issuer: str | None = None
    """Expected `iss` of the identity provider's tokens (https)."""
    jwks_uri: str | None = None
    """The provider's JSON Web Key Set endpoint (https)."""
    audience: str | None = None
    """Expected `aud` claim."""
    audience_format: Literal["single-string", "string-array"] = "single-string"
    """How the provider writes `aud`."""
    claims: IdentityClaimNames = field(default_factory=IdentityClaimNames)
    """Claims that carry the user's email, id, department, team and cost center."""
    client_id: str | None = None
    """The token helper's public client at the provider (required with `jwt`): CLAUDE_OTEL_CLIENT_ID."""
    scopes: Sequence[str] = DEFAULT_TOKEN_HELPER_SCOPES
    """Scopes the token helper requests: CLAUDE_OTEL_SCOPES."""
    token_use: Literal["access", "id"] = "access"  # noqa: S105 (a kind of token, not one)
    """The token the helper sends, `access` or `id` (Amazon Cognito): CLAUDE_OTEL_TOKEN."""
    flow: Literal["auto", "device", "browser"] = "auto"
    """The helper's sign-in flow: CLAUDE_OTEL_FLOW."""
    redirect_uri: str | None = None
    """Loopback redirect of the helper's browser flow (None: its default): CLAUDE_OTEL_REDIRECT_URI."""
    audience_parameter: Literal["audience", "resource"] | None = None
    """Request parameter that also carries the audience: CLAUDE_OTEL_AUDIENCE_PARAMETER."""

    def token_helper(self) -> TokenHelperSettings | None:
        """The settings `scripts/claude-otel-token` reads, for the managed settings; None without token validation."""
        if self.mode != "jwt" or not (self.issuer and self.audience and self.client_id):
            return None
        return TokenHelperSettings(
            issuer=self.issuer,
            client_id=self.client_id,
            audience=self.audience,
            required_claims=list(self.claims.by_attribute().values()),
            scopes=tuple(self.scopes),
            token_use=self.token_use,
            flow=self.flow,
            redirect_uri=self.redirect_uri,
            audience_parameter=self.audience_parameter,
        )


@dataclass(frozen=True)
class NetworkArgs:
    """A new VPC (default) or an existing one."""

    vpc_id: str | None = None
    private_subnet_ids: list[str] = field(default_factory=list)
    """Subnets of the tasks (and of an internal load balancer); at least 2 AZs."""
    public_subnet_ids: list[str] = field(default_factory=list)
    """Subnets of an internet-facing load balancer; at least 2 AZs."""
    cidr_block: str = "10.60.0.0/16"
    availability_zones: int = 2
    nat_gateways: Literal["single", "onePerAz"] = "onePerAz"


@dataclass(frozen=True)
class CollectorArgs:
    """Arguments of the Collector component. Defaults are the secure, highly available choice."""

    region: str
    environment: str
    """Stack name; the collector adds it to all telemetry as `deployment.environment`."""
    domain_name: str
    """DNS name Claude Code sends to; the HTTPS certificate is for this name."""
    identity: IdentityArgs
    hosted_zone_id: str | None = None
    """Route 53 zone of `domain_name`: validates a new certificate and holds the alias record."""
    certificate_arn: str | None = None
    """An existing ACM certificate for `domain_name`, instead of a new one."""
    internet_facing: bool = True
    allowed_cidrs: list[str] = field(default_factory=lambda: ["0.0.0.0/0"])
    """Client networks admitted to ports 443 and 80 (80 only redirects)."""
    idle_timeout_seconds: int = 300
    image: str = DEFAULT_COLLECTOR_IMAGE
    cpu: int = 512
    memory: int = 1024
    cpu_architecture: Literal["ARM64", "X86_64"] = "ARM64"
    desired_count: int = 2
    min_count: int = 2
    max_count: int = 4
    requests_per_target: int = 2000
    cpu_target_percent: int = 60
    container_insights: bool = True
    access_logs: bool = True
    log_retention_days: int = 30
    metrics_namespace: str = "ClaudeCode"
    metrics_log_group_name: str | None = None
    events_log_group_name: str | None = None
    grpc: bool = False
    network: NetworkArgs = field(default_factory=NetworkArgs)
    resource_attributes: dict[str, str] = field(default_factory=dict)
    """Organisation defaults for OTEL_RESOURCE_ATTRIBUTES in the managed settings."""
    group_metrics: dict[str, list[str]] = field(default_factory=dict)
    """Metrics opted in for team, cost-center or organisation dimension sets (`team` -> metric names). Off by
    default: each adds a series per group, and the dashboard's team views read the rollups."""
    otel_headers_helper: str | None = None
    """Script on developer machines that prints the Authorization header (managed settings)."""
    alarm_topic_arn: pulumi.Input[str] | None = None
    """SNS topic for operational alarms."""

    def problems(self) -> list[str]:
        """What is wrong with these arguments, one actionable line each."""
        found = []
        if not re.fullmatch(PINNED_IMAGE_PATTERN, self.image):
            found.append(
                f"image must be pinned (repository:<version> or repository@sha256:<digest>), got {self.image!r}"
            )
        if not self.min_count <= self.desired_count <= self.max_count:
            found.append(
                f"min_count <= desired_count <= max_count is required, got "
                f"{self.min_count} <= {self.desired_count} <= {self.max_count}"
            )
        if not (self.certificate_arn or self.hosted_zone_id):
            found.append("certificate_arn, or hosted_zone_id to validate a new certificate, is required for HTTPS")
        if self.identity.mode == "jwt":
            for name in ("issuer", "jwks_uri"):
                value = getattr(self.identity, name)
                if not (value and value.startswith("https://")):
                    found.append(f"identity.{name} must be an https:// URL when mode is jwt, got {value!r}")
            if not self.identity.audience:
                found.append("identity.audience is required when mode is jwt")
            if not self.identity.client_id:
                found.append(
                    "identity.client_id is required when mode is jwt: the token helper's public client "
                    "(CLAUDE_OTEL_CLIENT_ID in the managed settings)"
                )
        if not 60 < self.idle_timeout_seconds <= 4000:
            found.append(f"idle_timeout_seconds must be from 61 to 4000, got {self.idle_timeout_seconds}")
        return found


def log_group_names(name: str, args: CollectorArgs) -> dict[str, str]:
    """Names of the metrics, events and collector log groups (explicit, so the configuration can name them)."""
    return {
        "metrics": args.metrics_log_group_name or f"/{name}/metrics",
        "events": args.events_log_group_name or f"/{name}/events",
        "collector": f"/{name}/collector",
    }


def pipeline_settings(name: str, args: CollectorArgs) -> CollectorPipelineSettings:
    groups = log_group_names(name, args)
    return CollectorPipelineSettings(
        region=args.region,
        environment=args.environment,
        metrics_namespace=args.metrics_namespace,
        metrics_log_group=groups["metrics"],
        events_log_group=groups["events"],
        identity_mode=args.identity.mode,
        claims=args.identity.claims,
        grpc=args.grpc,
        group_metrics={group: tuple(names) for group, names in args.group_metrics.items()},
    )


def container_definitions(name: str, args: CollectorArgs) -> list[dict[str, Any]]:
    """The collector container: pinned image, configuration in the environment, read-only root."""
    ports = collector_ports(args)
    return [
        {
            "name": CONTAINER_NAME,
            "image": args.image,
            "essential": True,
            "command": [f"--config=env:{CONFIG_ENV_VAR}"],
            "environment": [{"name": CONFIG_ENV_VAR, "value": collector_config_yaml(pipeline_settings(name, args))}],
            "portMappings": [{"containerPort": port, "protocol": "tcp"} for port in ports],
            "readonlyRootFilesystem": True,
            "stopTimeout": 60,
            "logConfiguration": {
                "logDriver": "awslogs",
                "options": {
                    "awslogs-group": log_group_names(name, args)["collector"],
                    "awslogs-region": args.region,
                    "awslogs-stream-prefix": "collector",
                },
            },
        }
    ]


@dataclass(frozen=True)
class SecurityGroupRule:
    """One rule of the load balancer's (`lb`) or the tasks' (`task`) security group."""

    name: str
    group: Literal["lb", "task"]
    direction: Literal["in", "out"]
    port: int
    peer: str
    """The other group (`lb` or `task`) or an IPv4 CIDR."""
    description: str


def collector_ports(args: CollectorArgs) -> list[int]:
    """Ports the collector container listens on: OTLP/HTTP, health check, and OTLP/gRPC when enabled."""
    return [OTLP_HTTP_PORT, HEALTH_CHECK_PORT, *([OTLP_GRPC_PORT] if args.grpc else [])]


def security_group_rules(args: CollectorArgs) -> list[SecurityGroupRule]:
    """Clients reach the load balancer on 443 (and 80, which redirects); only it reaches the collector ports."""
    rules = [
        SecurityGroupRule(
            f"lb-in-{port}-{index}",
            "lb",
            "in",
            port,
            cidr,
            f"Claude Code clients on {port}" + (" (redirected to 443)" if port == 80 else ""),
        )
        for port in (443, 80)
        for index, cidr in enumerate(args.allowed_cidrs)
    ]
    for port in collector_ports(args):
        rules.append(SecurityGroupRule(f"lb-out-{port}", "lb", "out", port, "task", "To collector tasks"))
        rules.append(SecurityGroupRule(f"task-in-{port}", "task", "in", port, "lb", "From the collector load balancer"))
    rules.append(
        SecurityGroupRule(
            "task-out-https",
            "task",
            "out",
            443,
            "0.0.0.0/0",
            "CloudWatch Logs, the image registry and the identity provider over HTTPS",
        )
    )
    return rules


def https_default_actions(identity: IdentityArgs, target_group_arn: pulumi.Input[str]) -> list[Any]:
    """Validate the bearer token first (jwt), then forward."""
    forward: dict[str, Any] = {"type": "forward", "target_group_arn": target_group_arn}
    if identity.mode != "jwt":
        return [forward]
    return [
        {
            "type": "jwt-validation",
            "order": 1,
            "jwt_validation": {
                "issuer": identity.issuer,
                "jwks_endpoint": identity.jwks_uri,
                "additional_claims": [
                    {"name": "aud", "format": identity.audience_format, "values": [identity.audience]}
                ],
            },
        },
        {**forward, "order": 2},
    ]


def task_role_policy(log_group_arns: list[str]) -> dict[str, Any]:
    """The collector writes to its metrics and events log groups and nothing else.

    awsemf sends metrics as EMF log events (CloudWatch extracts the metrics), so no PutMetricData.
    """
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "WriteTelemetryLogs",
                "Effect": "Allow",
                "Action": ["logs:CreateLogStream", "logs:DescribeLogStreams", "logs:PutLogEvents"],
                "Resource": [resource for arn in log_group_arns for resource in (arn, f"{arn}:log-stream:*")],
            }
        ],
    }


def execution_role_policy(collector_log_group_arn: str) -> dict[str, Any]:
    """Starting a task: write the container's own logs (the image is public, so no registry access)."""
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "WriteContainerLogs",
                "Effect": "Allow",
                "Action": ["logs:CreateLogStream", "logs:PutLogEvents"],
                "Resource": [collector_log_group_arn, f"{collector_log_group_arn}:log-stream:*"],
            }
        ],
    }


def access_log_bucket_policy(bucket_arn: str, account_id: str, elb_account_arn: str) -> dict[str, Any]:
    """The load balancer writes its access logs; nothing reaches the bucket without TLS."""
    objects = f"{bucket_arn}/alb/AWSLogs/{account_id}/*"
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "LoadBalancerWritesAccessLogs",
                "Effect": "Allow",
                "Principal": {"AWS": elb_account_arn},
                "Action": "s3:PutObject",
                "Resource": objects,
            },
            {
                "Sid": "LogDeliveryWritesAccessLogs",
                "Effect": "Allow",
                "Principal": {"Service": "logdelivery.elasticloadbalancing.amazonaws.com"},
                "Action": "s3:PutObject",
                "Resource": objects,
            },
            deny_insecure_transport(bucket_arn),
        ],
    }


@dataclass(frozen=True)
class _Network:
    vpc_id: pulumi.Input[str]
    private_subnet_ids: pulumi.Input[Sequence[str]]
    public_subnet_ids: pulumi.Input[Sequence[str]]


class Collector(pulumi.ComponentResource):
    """The collector service, its load balancer, network, log groups, alarms and managed settings."""

    endpoint: pulumi.Output[str]
    load_balancer_dns_name: pulumi.Output[str]
    log_group_names: dict[str, str]
    managed_settings: dict[str, Any]
    managed_settings_parameter: pulumi.Output[str]

    def __init__(self, name: str, args: CollectorArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__(COMPONENT_TYPE, name, None, opts)
        problems = args.problems()
        if problems:
            raise InvalidCollectorArgs(f"Collector {name}: " + "; ".join(problems))
        child = pulumi.ResourceOptions(parent=self)
        account_id = aws.get_caller_identity().account_id
        network = self._network(name, args.network, child)

        # Log groups ---------------------------------------------------------------------------------
        self.log_group_names = log_group_names(name, args)
        log_groups = {
            kind: aws.cloudwatch.LogGroup(
                f"{name}-{kind}-logs", name=group_name, retention_in_days=args.log_retention_days, opts=child
            )
            for kind, group_name in self.log_group_names.items()
        }
        # The names as outputs of the log groups, so a subscription waits for its log group to exist.
        self.telemetry_log_groups: dict[str, pulumi.Output[str]] = {
            kind: log_groups[kind].name for kind in ("metrics", "events")
        }

        # Security groups: clients -> load balancer (443, 80) -> tasks (collector ports only) -----------
        lb_security_group = aws.ec2.SecurityGroup(
            f"{name}-lb-sg",
            vpc_id=network.vpc_id,
            description="Collector load balancer: HTTPS from clients",
            opts=child,
        )
        task_security_group = aws.ec2.SecurityGroup(
            f"{name}-task-sg",
            vpc_id=network.vpc_id,
            description="Collector tasks: collector ports from the load balancer only",
            opts=child,
        )
        groups = {"lb": lb_security_group.id, "task": task_security_group.id}
        for rule in security_group_rules(args):
            rule_args: dict[str, Any] = {
                "security_group_id": groups[rule.group],
                "ip_protocol": "tcp",
                "from_port": rule.port,
                "to_port": rule.port,
                "description": rule.description,
                "opts": child,
            }
            if rule.peer in groups:
                rule_args["referenced_security_group_id"] = groups[rule.peer]
            else:
                rule_args["cidr_ipv4"] = rule.peer
            resource = aws.vpc.SecurityGroupIngressRule if rule.direction == "in" else aws.vpc.SecurityGroupEgressRule
            resource(f"{name}-{rule.name}", **rule_args)

        # Certificate, load balancer, listeners ------------------------------------------------------
        certificate_arn = self._certificate(name, args, child)
        access_logs = self._access_log_bucket(name, account_id, child) if args.access_logs else None
        # The load balancer checks it may write to the bucket when access logs are turned on.
        load_balancer = aws.lb.LoadBalancer(
            f"{name}-lb",
            load_balancer_type="application",
            internal=not args.internet_facing,
            security_groups=[lb_security_group.id],
            subnets=network.public_subnet_ids if args.internet_facing else network.private_subnet_ids,
            idle_timeout=args.idle_timeout_seconds,
            drop_invalid_header_fields=True,
            desync_mitigation_mode="strictest",
            access_logs={"bucket": access_logs[0].bucket, "prefix": "alb", "enabled": True} if access_logs else None,
            opts=pulumi.ResourceOptions(parent=self, depends_on=list(access_logs) if access_logs else []),
        )
        target_group = aws.lb.TargetGroup(
            f"{name}-otlp-http",
            port=OTLP_HTTP_PORT,
            protocol="HTTP",
            target_type="ip",
            vpc_id=network.vpc_id,
            deregistration_delay=30,
            health_check={
                "path": HEALTH_CHECK_PATH,
                "port": str(HEALTH_CHECK_PORT),
                "protocol": "HTTP",
                "matcher": "200",
                "interval": 15,
                "timeout": 5,
                "healthy_threshold": 2,
                "unhealthy_threshold": 3,
            },
            opts=child,
        )
        https_listener = aws.lb.Listener(
            f"{name}-https",
            load_balancer_arn=load_balancer.arn,
            port=443,
            protocol="HTTPS",
            ssl_policy=TLS_POLICY,
            certificate_arn=certificate_arn,
            default_actions=https_default_actions(args.identity, target_group.arn),
            opts=child,
        )
        aws.lb.Listener(
            f"{name}-http-redirect",
            load_balancer_arn=load_balancer.arn,
            port=80,
            protocol="HTTP",
            default_actions=[
                {"type": "redirect", "redirect": {"port": "443", "protocol": "HTTPS", "status_code": "HTTP_301"}}
            ],
            opts=child,
        )
        service_load_balancers: list[Any] = [
            {"target_group_arn": target_group.arn, "container_name": CONTAINER_NAME, "container_port": OTLP_HTTP_PORT}
        ]
        listener_dependencies: list[pulumi.Resource] = [https_listener]
        if args.grpc:
            grpc_group = aws.lb.TargetGroup(
                f"{name}-otlp-grpc",
                port=OTLP_GRPC_PORT,
                protocol="HTTP",
                protocol_version="GRPC",
                target_type="ip",
                vpc_id=network.vpc_id,
                deregistration_delay=30,
                # An unknown gRPC method answers 12 (UNIMPLEMENTED): the collector's gRPC server is up.
                health_check={"path": "/AWS.ALB/healthcheck", "protocol": "HTTP", "matcher": "12"},
                opts=child,
            )
            listener_dependencies.append(
                aws.lb.ListenerRule(
                    f"{name}-grpc",
                    listener_arn=https_listener.arn,
                    priority=10,
                    conditions=[{"path_pattern": {"values": [GRPC_PATH_PATTERN]}}],
                    actions=https_default_actions(args.identity, grpc_group.arn),
                    opts=child,
                )
            )
            service_load_balancers.append(
                {"target_group_arn": grpc_group.arn, "container_name": CONTAINER_NAME, "container_port": OTLP_GRPC_PORT}
            )
        if args.hosted_zone_id:
            aws.route53.Record(
                f"{name}-alias",
                zone_id=args.hosted_zone_id,
                name=args.domain_name,
                type="A",
                aliases=[
                    {"name": load_balancer.dns_name, "zone_id": load_balancer.zone_id, "evaluate_target_health": True}
                ],
                opts=child,
            )

        # Roles --------------------------------------------------------------------------------------
        trust = json.dumps(service_trust_policy("ecs-tasks.amazonaws.com", account_id))
        execution_role = aws.iam.Role(
            f"{name}-execution", assume_role_policy=trust, description="Starts collector tasks", opts=child
        )
        aws.iam.RolePolicy(
            f"{name}-execution",
            role=execution_role.id,
            policy=log_groups["collector"].arn.apply(lambda arn: json.dumps(execution_role_policy(arn))),
            opts=child,
        )
        task_role = aws.iam.Role(
            f"{name}-task", assume_role_policy=trust, description="The collector's own AWS access", opts=child
        )
        aws.iam.RolePolicy(
            f"{name}-task",
            role=task_role.id,
            policy=pulumi.Output.all(log_groups["metrics"].arn, log_groups["events"].arn).apply(
                lambda arns: json.dumps(task_role_policy(list(arns)))
            ),
            opts=child,
        )

        # Cluster, task definition, service, autoscaling ------------------------------------------------
        cluster = aws.ecs.Cluster(
            f"{name}-cluster",
            settings=[{"name": "containerInsights", "value": "enabled" if args.container_insights else "disabled"}],
            opts=child,
        )
        task_definition = aws.ecs.TaskDefinition(
            f"{name}-task",
            family=f"{name}-collector",
            requires_compatibilities=["FARGATE"],
            network_mode="awsvpc",
            cpu=str(args.cpu),
            memory=str(args.memory),
            runtime_platform={"operating_system_family": "LINUX", "cpu_architecture": args.cpu_architecture},
            execution_role_arn=execution_role.arn,
            task_role_arn=task_role.arn,
            container_definitions=json.dumps(container_definitions(name, args)),
            opts=child,
        )
        service = aws.ecs.Service(
            f"{name}-service",
            cluster=cluster.arn,
            task_definition=task_definition.arn,
            desired_count=args.desired_count,
            launch_type="FARGATE",
            platform_version="1.4.0",
            network_configuration={
                "subnets": network.private_subnet_ids,
                "security_groups": [task_security_group.id],
                "assign_public_ip": False,
            },
            load_balancers=service_load_balancers,
            deployment_circuit_breaker={"enable": True, "rollback": True},
            deployment_minimum_healthy_percent=100,
            deployment_maximum_percent=200,
            health_check_grace_period_seconds=60,
            propagate_tags="SERVICE",
            enable_ecs_managed_tags=True,
            opts=pulumi.ResourceOptions(parent=self, depends_on=listener_dependencies, ignore_changes=["desiredCount"]),
        )
        scaling_target = aws.appautoscaling.Target(
            f"{name}-scaling",
            service_namespace="ecs",
            scalable_dimension="ecs:service:DesiredCount",
            resource_id=pulumi.Output.concat("service/", cluster.name, "/", service.name),
            min_capacity=args.min_count,
            max_capacity=args.max_count,
            opts=child,
        )
        scaling_policies: list[tuple[str, Any, int]] = [
            ("cpu", {"predefined_metric_type": "ECSServiceAverageCPUUtilization"}, args.cpu_target_percent),
            (
                "requests",
                {
                    "predefined_metric_type": "ALBRequestCountPerTarget",
                    "resource_label": pulumi.Output.concat(load_balancer.arn_suffix, "/", target_group.arn_suffix),
                },
                args.requests_per_target,
            ),
        ]
        for suffix, metric, target in scaling_policies:
            aws.appautoscaling.Policy(
                f"{name}-scale-{suffix}",
                policy_type="TargetTrackingScaling",
                service_namespace=scaling_target.service_namespace,
                scalable_dimension=scaling_target.scalable_dimension,
                resource_id=scaling_target.resource_id,
                target_tracking_scaling_policy_configuration={
                    "predefined_metric_specification": metric,
                    "target_value": target,
                    "scale_in_cooldown": 300,
                    "scale_out_cooldown": 60,
                },
                opts=child,
            )

        self._alarms(name, args, load_balancer, target_group, cluster, service, child)

        # Managed settings for developer machines ------------------------------------------------------
        self.endpoint = pulumi.Output.from_input(f"https://{args.domain_name}")
        self.managed_settings = collector_managed_settings(
            f"https://{args.domain_name}",
            args.resource_attributes,
            args.otel_headers_helper,
            args.identity.token_helper(),
        )
        parameter = aws.ssm.Parameter(
            f"{name}-managed-settings",
            name=f"/{name}/claude-code/managed-settings",
            type="String",
            tier="Standard",
            insecure_value=json.dumps(self.managed_settings, indent=2),  # no secret in it: keep it reviewable
            description="Claude Code managed settings (env block) for the telemetry collector",
            opts=child,
        )
        self.managed_settings_parameter = parameter.name
        self.load_balancer_dns_name = load_balancer.dns_name
        self.health_dimensions: dict[str, pulumi.Output[str]] = {
            "load_balancer_arn_suffix": load_balancer.arn_suffix,
            "target_group_arn_suffix": target_group.arn_suffix,
            "cluster_name": cluster.name,
            "service_name": service.name,
        }
        """What the dashboard's collector health widgets chart."""

        self.register_outputs(
            {
                "endpoint": self.endpoint,
                "loadBalancerDnsName": self.load_balancer_dns_name,
                "logGroupNames": self.log_group_names,
                "managedSettingsParameter": self.managed_settings_parameter,
            }
        )

    def _network(self, name: str, network: NetworkArgs, opts: pulumi.ResourceOptions) -> _Network:
        if network.vpc_id:
            _require_distinct_zones(name, "private_subnet_ids", network.private_subnet_ids)
            _require_distinct_zones(name, "public_subnet_ids", network.public_subnet_ids)
            return _Network(network.vpc_id, network.private_subnet_ids, network.public_subnet_ids)
        strategy = (
            awsx.ec2.NatGatewayStrategy.ONE_PER_AZ
            if network.nat_gateways == "onePerAz"
            else awsx.ec2.NatGatewayStrategy.SINGLE
        )
        vpc = awsx.ec2.Vpc(
            f"{name}-vpc",
            cidr_block=network.cidr_block,
            number_of_availability_zones=network.availability_zones,
            nat_gateways={"strategy": strategy},
            subnet_specs=[
                {"type": awsx.ec2.SubnetType.PUBLIC, "cidr_mask": 24},
                {"type": awsx.ec2.SubnetType.PRIVATE, "cidr_mask": 20},
            ],
            enable_dns_hostnames=True,
            opts=opts,
        )
        return _Network(vpc.vpc_id, vpc.private_subnet_ids, vpc.public_subnet_ids)

    def _certificate(self, name: str, args: CollectorArgs, opts: pulumi.ResourceOptions) -> pulumi.Input[str]:
        if args.certificate_arn:
            return args.certificate_arn
        certificate = aws.acm.Certificate(
            f"{name}-certificate", domain_name=args.domain_name, validation_method="DNS", opts=opts
        )
        option = certificate.domain_validation_options[0]
        record = aws.route53.Record(
            f"{name}-certificate-validation",
            zone_id=str(args.hosted_zone_id),
            name=option.resource_record_name,
            type=option.resource_record_type,
            records=[option.resource_record_value],
            ttl=300,
            allow_overwrite=True,
            opts=opts,
        )
        validation = aws.acm.CertificateValidation(
            f"{name}-certificate", certificate_arn=certificate.arn, validation_record_fqdns=[record.fqdn], opts=opts
        )
        return validation.certificate_arn

    def _access_log_bucket(
        self, name: str, account_id: str, opts: pulumi.ResourceOptions
    ) -> tuple[aws.s3.Bucket, aws.s3.BucketPolicy]:
        bucket = aws.s3.Bucket(f"{name}-access-logs", bucket_prefix=f"{name}-lb-logs-"[:37], opts=opts)
        make_private(f"{name}-access-logs", bucket, opts)
        # Load balancer access logs support SSE-S3 only.
        aws.s3.BucketServerSideEncryptionConfiguration(
            f"{name}-access-logs",
            bucket=bucket.id,
            rules=[{"apply_server_side_encryption_by_default": {"sse_algorithm": "AES256"}}],
            opts=opts,
        )
        aws.s3.BucketLifecycleConfiguration(
            f"{name}-access-logs",
            bucket=bucket.id,
            rules=[{"id": "expire-access-logs", "status": "Enabled", "filter": {}, "expiration": {"days": 90}}],
            opts=opts,
        )
        elb_account_arn = aws.elb.get_service_account().arn
        policy = aws.s3.BucketPolicy(
            f"{name}-access-logs",
            bucket=bucket.id,
            policy=bucket.arn.apply(lambda arn: json.dumps(access_log_bucket_policy(arn, account_id, elb_account_arn))),
            opts=opts,
        )
        return bucket, policy

    def _alarms(
        self,
        name: str,
        args: CollectorArgs,
        load_balancer: aws.lb.LoadBalancer,
        target_group: aws.lb.TargetGroup,
        cluster: aws.ecs.Cluster,
        service: aws.ecs.Service,
        opts: pulumi.ResourceOptions,
    ) -> None:
        actions = [args.alarm_topic_arn] if args.alarm_topic_arn is not None else []
        target = {"LoadBalancer": load_balancer.arn_suffix, "TargetGroup": target_group.arn_suffix}
        tasks = {"ClusterName": cluster.name, "ServiceName": service.name}
        alarms: list[dict[str, Any]] = [
            {
                "suffix": "no-healthy-targets",
                "description": "No collector task passes its health check: telemetry is being rejected.",
                "namespace": "AWS/ApplicationELB",
                "metric_name": "HealthyHostCount",
                "dimensions": target,
                "statistic": "Minimum",
                "comparison_operator": "LessThanThreshold",
                "threshold": 1,
                "evaluation_periods": 2,
                "treat_missing_data": "breaching",
            },
            {
                "suffix": "lb-5xx",
                "description": "The load balancer answered 5xx (no target, or a target failed).",
                "namespace": "AWS/ApplicationELB",
                "metric_name": "HTTPCode_ELB_5XX_Count",
                "dimensions": {"LoadBalancer": load_balancer.arn_suffix},
                "statistic": "Sum",
                "comparison_operator": "GreaterThanThreshold",
                "threshold": 10,
                "period": 300,
                "evaluation_periods": 1,
            },
            {
                "suffix": "target-5xx",
                "description": "Collector tasks answered 5xx: exports are failing or tasks are overloaded.",
                "namespace": "AWS/ApplicationELB",
                "metric_name": "HTTPCode_Target_5XX_Count",
                "dimensions": target,
                "statistic": "Sum",
                "comparison_operator": "GreaterThanThreshold",
                "threshold": 10,
                "period": 300,
                "evaluation_periods": 1,
            },
            {
                "suffix": "response-time",
                "description": "p99 collector response time above 2 s for 5 minutes.",
                "namespace": "AWS/ApplicationELB",
                "metric_name": "TargetResponseTime",
                "dimensions": target,
                "extended_statistic": "p99",
                "comparison_operator": "GreaterThanThreshold",
                "threshold": 2,
                "evaluation_periods": 5,
            },
            {
                "suffix": "cpu-high",
                "description": "Collector CPU above 85% for 5 minutes although autoscaling should add tasks.",
                "namespace": "AWS/ECS",
                "metric_name": "CPUUtilization",
                "dimensions": tasks,
                "statistic": "Average",
                "comparison_operator": "GreaterThanThreshold",
                "threshold": 85,
                "evaluation_periods": 5,
            },
            {
                "suffix": "memory-high",
                "description": "Collector memory above 85% for 5 minutes: the memory limiter will start refusing data.",
                "namespace": "AWS/ECS",
                "metric_name": "MemoryUtilization",
                "dimensions": tasks,
                "statistic": "Average",
                "comparison_operator": "GreaterThanThreshold",
                "threshold": 85,
                "evaluation_periods": 5,
            },
        ]
        for alarm in alarms:
            suffix = alarm.pop("suffix")
            description = alarm.pop("description")
            aws.cloudwatch.MetricAlarm(
                f"{name}-{suffix}",
                alarm_description=f"{description} ({name})",
                period=alarm.pop("period", 60),
                treat_missing_data=alarm.pop("treat_missing_data", "notBreaching"),
                alarm_actions=actions,
                ok_actions=actions,
                **alarm,
                opts=opts,
            )


def _require_distinct_zones(name: str, argument: str, subnet_ids: list[str]) -> None:
    zones = {aws.ec2.get_subnet(id=subnet_id).availability_zone for subnet_id in subnet_ids}
    if len(subnet_ids) < 2 or len(zones) < 2:
        raise InvalidCollectorArgs(
            f"Collector {name}: network.{argument} needs subnets in at least 2 availability zones for the load "
            f"balancer and the tasks, got {len(subnet_ids)} subnet(s) in {len(zones)} zone(s): {', '.join(subnet_ids)}"
        )
