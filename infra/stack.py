"""Composition: which components a stack gets, wired from its configuration sections.

Each component plugs in here with its section of `StackConfig`; a component's module never reads
configuration itself, so it stays reusable in other programs.
"""

from __future__ import annotations

import pulumi

from components.analytics import Analytics, AnalyticsArgs
from components.analytics_queries import QuerySettings
from components.bearer_token_ingest import BearerTokenIngest, BearerTokenIngestArgs, IngestTeam
from components.collector import Collector, CollectorArgs, IdentityArgs, NetworkArgs
from components.collector_config import IdentityClaimNames
from components.dashboard import Dashboard, DashboardArgs
from components.operations import Operations, OperationsArgs
from components.quota import Quota, QuotaArgs
from infra.config import (
    SECTION_KEYS,
    AnalyticsConfig,
    BearerTokenIngestConfig,
    CollectorConfig,
    DashboardConfig,
    QuotaConfig,
    StackConfig,
)
from lambda_src.common.pricing import PriceTable
from lambda_src.common.quota_policies import QuotaPolicy


def enabled_sections(settings: StackConfig) -> list[str]:
    """Config keys of the component sections this stack enables, in SECTION_KEYS order."""
    by_alias = {field.alias: name for name, field in StackConfig.model_fields.items()}
    return [key for key in SECTION_KEYS if getattr(settings, by_alias[key]).enabled]


def compose(settings: StackConfig, stack: str) -> dict[str, pulumi.Input[object]]:
    """Declare the stack's resources; return its outputs."""
    prefix = f"{settings.name_prefix}-{stack}"
    operations = Operations(f"{prefix}-ops", OperationsArgs(alarm_emails=list(settings.alarm_emails)))

    enabled = enabled_sections(settings)
    outputs: dict[str, pulumi.Input[object]] = {
        "region": settings.region,
        "operationsTopicArn": operations.topic_arn,
        "enabledComponents": enabled,
    }
    collector: Collector | None = None
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
    if settings.dashboard.enabled:
        if collector is None:  # StackConfig refuses this; other callers get told
            raise ValueError("the dashboard needs the collector: it reads the collector's log groups")
        dashboard = Dashboard(
            f"{prefix}-dashboard",
            dashboard_args(settings, collector, operations.topic_arn),
        )
        outputs.update(
            {
                "dashboardName": dashboard.dashboard_name,
                "dashboardRollupTable": dashboard.table_name,
                "dashboardFailedEventQueue": dashboard.failed_queue_url,
                "dashboardViewerPolicyArn": dashboard.viewer_policy_arn,
            }
        )
        if settings.quota.enabled:
            quota = Quota(
                f"{prefix}-quota",
                quota_args(settings, stack, dashboard, operations.topic_arn),
            )
            outputs.update(
                {
                    "quotaTable": quota.table_name,
                    "quotaAlertTopicArn": quota.alert_topic_arn,
                    "quotaMonitorFunction": quota.monitor_function_name,
                }
            )
    elif settings.quota.enabled:  # StackConfig refuses this; other callers get told
        raise ValueError("quota needs the dashboard: the monitor reads the usage the aggregator rolls up")
    if settings.analytics.enabled:
        if collector is None:  # StackConfig refuses this; other callers get told
            raise ValueError("analytics needs the collector: it reads the collector's log groups")
        analytics = Analytics(
            f"{prefix}-analytics",
            analytics_args(
                settings.analytics,
                settings.quota,
                settings.region,
                collector.telemetry_log_groups,
                operations.topic_arn,
                settings.price_table(),
            ),
        )
        outputs.update(
            {
                "analyticsLakeBucket": analytics.lake_bucket,
                "analyticsResultsBucket": analytics.results_bucket,
                "analyticsDatabase": analytics.database_name,
                "analyticsWorkgroup": analytics.workgroup_name,
                "analyticsNamedQueries": analytics.named_query_names,
                "analyticsAnalystPolicyArn": analytics.analyst_policy_arn,
            }
        )
    if settings.bearer_token_ingest.enabled:
        ingest = BearerTokenIngest(
            f"{prefix}-ingest",
            bearer_token_ingest_args(
                settings.bearer_token_ingest, settings.region, stack, operations.topic_arn, operations.topic_key_arn
            ),
        )
        outputs.update(
            {
                "ingestUserNames": ingest.user_names,
                "ingestSecretArns": ingest.secret_arns,
                "ingestSettingsParameters": ingest.settings_parameters,
                "ingestManagedSettings": ingest.managed_settings,
                "ingestGuardrailPolicyArn": ingest.guardrail_policy_arn,
            }
        )
    return outputs


def dashboard_args(settings: StackConfig, collector: Collector, alarm_topic_arn: pulumi.Input[str]) -> DashboardArgs:
    """The Dashboard arguments from the `dashboard` section; days and months follow `quota.timeZone`, so the quota
    periods and the dashboard's agree. Prod-like stacks (point-in-time recovery on) also get deletion protection."""
    section: DashboardConfig = settings.dashboard
    return DashboardArgs(
        **section.model_dump(exclude={"enabled"}),
        deletion_protection=section.point_in_time_recovery,
        metrics_log_group=collector.telemetry_log_groups["metrics"],
        events_log_group=collector.telemetry_log_groups["events"],
        collector_health=collector.health_dimensions,
        region=settings.region,
        metrics_namespace=settings.collector.metrics_namespace,
        alarm_topic_arn=alarm_topic_arn,
        time_zone=settings.quota.time_zone,
        promql_teams=settings.bearer_token_ingest.enabled,
        quota=settings.quota.enabled,
        prices=settings.price_table(),
    )


def quota_args(
    settings: StackConfig, stack: str, dashboard: Dashboard, alarm_topic_arn: pulumi.Input[str]
) -> QuotaArgs:
    """The Quota arguments from the `quota` section; the periods are the dashboard's (both follow
    `quota.timeZone`), and the state table is protected like the rollup table."""
    section = settings.quota
    return QuotaArgs(
        rollup_table_name=dashboard.table_name,
        rollup_table_arn=dashboard.table_arn,
        alarm_topic_arn=alarm_topic_arn,
        policies=quota_policy_rows(section),
        time_zone=section.time_zone,
        schedule_minutes=section.schedule_minutes,
        alert_emails=list(section.alert_emails),
        alert_https_endpoints=list(section.alert_https_endpoints),
        policy_source=f"Pulumi.{stack}.yaml (key claude-code-monitoring:quota)",
        point_in_time_recovery=settings.dashboard.point_in_time_recovery,
        deletion_protection=settings.dashboard.point_in_time_recovery,
        log_retention_days=section.log_retention_days,
    )


def analytics_args(
    section: AnalyticsConfig,
    quota: QuotaConfig,
    region: str,
    log_groups: dict[str, pulumi.Output[str]],
    alarm_topic_arn: pulumi.Input[str],
    prices: PriceTable,
) -> AnalyticsArgs:
    """The Analytics arguments from the `analytics` section; the quota section gives the quota query its limits
    and time zone, the stack's price table the prices the queries join on."""
    return AnalyticsArgs(
        **section.model_dump(exclude={"enabled"}),
        metrics_log_group=log_groups["metrics"],
        events_log_group=log_groups["events"],
        region=region,
        alarm_topic_arn=alarm_topic_arn,
        prices=prices,
        queries=QuerySettings(
            time_zone=quota.time_zone,
            quota_policies=quota_policy_rows(quota),
        ),
    )


def quota_policy_rows(quota: QuotaConfig) -> list[QuotaPolicy]:
    """The quota section's default, group and user policies, each with the section's thresholds."""
    thresholds = tuple(quota.thresholds)
    return [
        QuotaPolicy("default", **quota.default.model_dump(), thresholds=thresholds),
        *[
            QuotaPolicy(g.group_type, g.name, **g.model_dump(exclude={"group_type", "name"}), thresholds=thresholds)
            for g in quota.groups
        ],
        *[QuotaPolicy("user", u.email, **u.model_dump(exclude={"email"}), thresholds=thresholds) for u in quota.users],
    ]


def bearer_token_ingest_args(
    section: BearerTokenIngestConfig,
    region: str,
    stack: str,
    alarm_topic_arn: pulumi.Input[str],
    alarm_topic_key_arn: pulumi.Input[str],
) -> BearerTokenIngestArgs:
    """The BearerTokenIngest arguments from the stack's `bearerTokenIngest` section (validated already)."""
    if section.credential_age_days is None:  # the section refuses this when enabled; other callers get told
        raise ValueError("bearerTokenIngest.credentialAgeDays is required when bearerTokenIngest is enabled")
    return BearerTokenIngestArgs(
        **section.model_dump(exclude={"enabled", "teams", "rotation", "credential_age_days"}),
        credential_age_days=section.credential_age_days,
        teams=[IngestTeam(**team.model_dump()) for team in section.teams],
        active_credential=section.rotation.active_credential,
        previous_credential=section.rotation.previous_credential,
        region=region,
        alarm_topic_arn=alarm_topic_arn,
        alarm_topic_key_arn=alarm_topic_key_arn,
        metrics_namespace=f"ClaudeCode/{stack}/Ingest",
    )


def collector_args(
    section: CollectorConfig, region: str, stack: str, alarm_topic_arn: pulumi.Input[str]
) -> CollectorArgs:
    """The Collector's arguments from the stack's `collector` section (validated already).

    The section's keys are the arguments' names (camelCase in the file); `enabled` is the only key the
    component does not take.
    """
    identity = section.identity
    if identity is None:  # CollectorConfig refuses an enabled collector without one; other callers get told
        raise ValueError("collector.identity is required when the collector is enabled")
    return CollectorArgs(
        **section.model_dump(exclude={"enabled", "network", "identity"}),
        region=region,
        environment=stack,
        network=NetworkArgs(**section.network.model_dump()),
        identity=IdentityArgs(
            **identity.model_dump(exclude={"claims"}), claims=IdentityClaimNames(**identity.claims.model_dump())
        ),
        alarm_topic_arn=alarm_topic_arn,
    )
