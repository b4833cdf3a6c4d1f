"""Composition: which components a stack gets, wired from its configuration sections.

Each component plugs in here with its section of `StackConfig`; a component's module never reads
configuration itself, so it stays reusable in other programs.
"""

from __future__ import annotations

import pulumi

from components.collector import Collector, CollectorArgs, IdentityArgs, NetworkArgs
from components.collector_config import IdentityClaimNames
from components.operations import Operations, OperationsArgs
from infra.config import SECTION_KEYS, CollectorConfig, StackConfig

# Sections whose component this version of the program does not deploy yet, with the issue that adds it.
PENDING_COMPONENTS = {
    "dashboard": 4,
    "analytics": 5,
    "quota": 6,
    "bearerTokenIngest": 7,
}


def enabled_sections(settings: StackConfig) -> list[str]:
    """Config keys of the component sections this stack enables, in SECTION_KEYS order."""
    by_alias = {field.alias: name for name, field in StackConfig.model_fields.items()}
    return [key for key in SECTION_KEYS if getattr(settings, by_alias[key]).enabled]


def compose(settings: StackConfig, stack: str) -> dict[str, pulumi.Input[object]]:
    """Declare the stack's resources; return its outputs."""
    prefix = f"{settings.name_prefix}-{stack}"
    operations = Operations(f"{prefix}-ops", OperationsArgs(alarm_emails=list(settings.alarm_emails)))

    enabled = enabled_sections(settings)
    for section in enabled:
        if section in PENDING_COMPONENTS:
            pulumi.log.warn(
                f"{section} is enabled in Pulumi.{stack}.yaml, but this version of the program "
                f"does not deploy it yet (issue #{PENDING_COMPONENTS[section]}); nothing is "
                "created for it"
            )

    outputs: dict[str, pulumi.Input[object]] = {
        "region": settings.region,
        "operationsTopicArn": operations.topic_arn,
        "enabledComponents": enabled,
    }
    if settings.collector.enabled:
        collector = Collector(
            f"{prefix}-collector",
            collector_args(settings.collector, settings.region, stack, operations.topic_arn),
        )
        outputs.update(
            {
                "collectorEndpoint": collector.endpoint,
                "collectorLoadBalancerDnsName": collector.load_balancer_dns_name,
                "collectorLogGroups": collector.log_group_names,
                "managedSettingsParameter": collector.managed_settings_parameter,
                "managedSettings": collector.managed_settings,
            }
        )
    return outputs


def collector_args(
    section: CollectorConfig, region: str, stack: str, alarm_topic_arn: pulumi.Input[str]
) -> CollectorArgs:
    """The Collector's arguments from the stack's `collector` section (validated already)."""
    identity = section.identity
    if identity is None:  # CollectorConfig refuses an enabled collector without one; other callers get told
        raise ValueError("collector.identity is required when the collector is enabled")
    claims = identity.claims
    network = section.network
    return CollectorArgs(
        region=region,
        environment=stack,
        domain_name=str(section.domain_name),
        hosted_zone_id=section.hosted_zone_id,
        certificate_arn=section.certificate_arn,
        internet_facing=section.internet_facing,
        allowed_cidrs=list(section.allowed_cidrs),
        idle_timeout_seconds=section.idle_timeout_seconds,
        image=section.image,
        cpu=section.cpu,
        memory=section.memory,
        cpu_architecture=section.cpu_architecture,
        desired_count=section.desired_count,
        min_count=section.min_count,
        max_count=section.max_count,
        requests_per_target=section.requests_per_target,
        cpu_target_percent=section.cpu_target_percent,
        container_insights=section.container_insights,
        access_logs=section.access_logs,
        log_retention_days=section.log_retention_days,
        metrics_namespace=section.metrics_namespace,
        metrics_log_group_name=section.metrics_log_group_name,
        events_log_group_name=section.events_log_group_name,
        grpc=section.grpc,
        network=NetworkArgs(
            vpc_id=network.vpc_id,
            private_subnet_ids=list(network.private_subnet_ids),
            public_subnet_ids=list(network.public_subnet_ids),
            cidr_block=network.cidr_block,
            availability_zones=network.availability_zones,
            nat_gateways=network.nat_gateways,
        ),
        identity=IdentityArgs(
            mode=identity.mode,
            issuer=identity.issuer,
            jwks_uri=identity.jwks_uri,
            audience=identity.audience,
            audience_format=identity.audience_format,
            claims=IdentityClaimNames(
                email=claims.email,
                user_id=claims.user_id,
                department=claims.department,
                team=claims.team,
                cost_center=claims.cost_center,
            ),
        ),
        resource_attributes=dict(section.resource_attributes),
        otel_headers_helper=section.otel_headers_helper,
        alarm_topic_arn=alarm_topic_arn,
    )
