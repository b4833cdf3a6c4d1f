"""No per-user metric dimensions: a CloudWatch metric per developer multiplies the bill by the team's size.

Per-user data belongs in logs and in the rollup table, not in metric dimensions. These rules find
per-user and per-session attribute names (in any usual spelling) wherever a stack defines metric
dimensions: collector configurations, alarms, log metric filters, dashboards and direct-ingest settings.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any
from urllib.parse import urlsplit

from pulumi_policy import EnforcementLevel, ReportViolation, ResourceValidationArgs, ResourceValidationPolicy

from policies.common import Setting, config_schema, forbidden_names, normalized_name, settings
from policies.documents import claude_code_settings, collector_configs

PER_USER_ATTRIBUTES = Setting(
    "perUserAttributes",
    {
        "type": "array",
        "items": {"type": "string"},
        "description": "Attribute and dimension names that identify a person or a session. Spellings that "
        "differ only in case, dots, underscores, dashes or a `@resource.`/`$.` prefix match too.",
    },
    [
        "user.email",
        "user.id",
        "user.account_uuid",
        "user.account_id",
        "user.name",
        "session.id",
        "user",
        "email",
        "account_uuid",
        "UserEmail",
        "UserId",
        "UserName",
        "SessionId",
    ],
)
EXTRA_PER_USER_ATTRIBUTES = Setting(
    "extraPerUserAttributes",
    {
        "type": "array",
        "items": {"type": "string"},
        "description": "More names to forbid, added to perUserAttributes (e.g. an employee number).",
    },
    [],
)
DIMENSION_SETTINGS = (PER_USER_ATTRIBUTES, EXTRA_PER_USER_ATTRIBUTES)


def configured_forbidden_names(config: Mapping[str, Any] | None) -> dict[str, str]:
    values = settings(config, *DIMENSION_SETTINGS)
    return forbidden_names([*values[PER_USER_ATTRIBUTES.name], *values[EXTRA_PER_USER_ATTRIBUTES.name]])


def per_user_names(names: Iterable[Any], forbidden: Mapping[str, str]) -> list[str]:
    """The names (as written) that are per-user attributes."""
    return [str(name) for name in names if isinstance(name, str) and normalized_name(name) in forbidden]


def _tokens(text: str) -> list[str]:
    """Every name-like word of an expression, including those inside quotes."""
    return re.findall(r"[@$\w][\w.@$-]*", text)


# Collector configurations ------------------------------------------------------------------------------


def emf_exporter_problems(config: Mapping[str, Any], forbidden: Mapping[str, str]) -> list[str]:
    """What makes the collector's awsemf exporters publish per-user dimensions."""
    problems = []
    for name, exporter in (config.get("exporters") or {}).items():
        if str(name).split("/")[0] != "awsemf":
            continue
        exporter = exporter or {}
        rollup = exporter.get("dimension_rollup_option", "ZeroAndSingleDimensionRollup")
        if rollup != "NoDimensionRollup":
            problems.append(
                f"exporter {name}: dimension_rollup_option is {rollup!r}, which adds a dimension set for every "
                "attribute of a data point, user.email and session.id included; set 'NoDimensionRollup'"
            )
        declarations = exporter.get("metric_declarations") or []
        if not declarations:
            problems.append(
                f"exporter {name}: no metric_declarations, so every attribute of a data point becomes a dimension"
            )
        for index, declaration in enumerate(declarations):
            for dimension_set in (declaration or {}).get("dimensions") or []:
                found = per_user_names(dimension_set, forbidden)
                if found:
                    problems.append(
                        f"exporter {name}: metric_declarations[{index}] dimension set {list(dimension_set)} has "
                        f"per-user attribute(s) {found}"
                    )
    return problems


def _validate_collector_dimensions(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
    forbidden = configured_forbidden_names(args.get_config())
    for stored in collector_configs(args.resource_type, args.props):
        for problem in emf_exporter_problems(stored.document, forbidden):
            report_violation(f"{args.name}: collector configuration in {stored.where}: {problem}.", None)


collector_metrics_have_no_per_user_dimensions = ResourceValidationPolicy(
    name="collector-metrics-have-no-per-user-dimensions",
    description=(
        "A collector's awsemf exporter must publish only declared, aggregate dimension sets: no per-user or "
        "per-session attribute in any metric_declarations dimension set, and dimension_rollup_option "
        "'NoDimensionRollup' (the default roll-up adds a set per attribute, user.email included). Applies wherever "
        "the configuration is stored (container environment, SSM parameter, bucket object, secret). Fix: remove "
        "the attribute from the dimension sets (keep per-user data in the events log and the rollup table) and "
        "set dimension_rollup_option: NoDimensionRollup."
    ),
    enforcement_level=EnforcementLevel.MANDATORY,
    validate=_validate_collector_dimensions,
    config_schema=config_schema(*DIMENSION_SETTINGS),
)

# Alarms -------------------------------------------------------------------------------------------------

METRIC_ALARM_TYPE = "aws:cloudwatch/metricAlarm:MetricAlarm"


def alarm_problems(props: Mapping[str, Any], forbidden: Mapping[str, str]) -> list[str]:
    problems = []
    found = per_user_names(props.get("dimensions") or {}, forbidden)
    if found:
        problems.append(f"dimensions {found}")
    for query in props.get("metricQueries") or []:
        query_id = query.get("id")
        metric = query.get("metric") or {}
        found = per_user_names(metric.get("dimensions") or {}, forbidden)
        if found:
            problems.append(f"metric query {query_id!r} dimensions {found}")
        expression = query.get("expression")
        found = per_user_names(_tokens(expression), forbidden) if isinstance(expression, str) else []
        if found:
            problems.append(f"metric query {query_id!r} expression {expression!r} names {found}")
    return problems


def _validate_alarm(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
    if args.resource_type != METRIC_ALARM_TYPE:
        return
    problems = alarm_problems(args.props, configured_forbidden_names(args.get_config()))
    if problems:
        report_violation(f"{args.name}: per-user dimensions in {'; '.join(problems)}.", None)


alarms_have_no_per_user_dimensions = ResourceValidationPolicy(
    name="alarms-have-no-per-user-dimensions",
    description=(
        "CloudWatch metric alarms (and anomaly-detection alarms, through their metric queries) must not select "
        "or group by a per-user or per-session dimension: one alarm per developer does not scale and implies "
        "per-user metrics. Fix: alarm on aggregate dimensions (team, model, type); alert on a person through the "
        "Quota component."
    ),
    enforcement_level=EnforcementLevel.MANDATORY,
    validate=_validate_alarm,
    config_schema=config_schema(*DIMENSION_SETTINGS),
)

# Log metric filters ---------------------------------------------------------------------------------------

LOG_METRIC_FILTER_TYPE = "aws:cloudwatch/logMetricFilter:LogMetricFilter"


def metric_filter_problems(props: Mapping[str, Any], forbidden: Mapping[str, str]) -> list[str]:
    dimensions = (props.get("metricTransformation") or {}).get("dimensions") or {}
    return [
        f"dimension {name!r} from {selector!r}"
        for name, selector in dimensions.items()
        if per_user_names([name, str(selector)], forbidden)
    ]


def _validate_metric_filter(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
    if args.resource_type != LOG_METRIC_FILTER_TYPE:
        return
    problems = metric_filter_problems(args.props, configured_forbidden_names(args.get_config()))
    if problems:
        report_violation(f"{args.name}: metricTransformation has per-user {', '.join(problems)}.", None)


log_metric_filters_have_no_per_user_dimensions = ResourceValidationPolicy(
    name="log-metric-filters-have-no-per-user-dimensions",
    description=(
        "Log metric filters must not turn a per-user or per-session field into a metric dimension (by its "
        "dimension name or its $.selector): each distinct value becomes a billed custom metric. Fix: drop the "
        "dimension, or use an aggregate field such as team or model."
    ),
    enforcement_level=EnforcementLevel.MANDATORY,
    validate=_validate_metric_filter,
    config_schema=config_schema(*DIMENSION_SETTINGS),
)

# Dashboards ---------------------------------------------------------------------------------------------

DASHBOARD_TYPE = "aws:cloudwatch/dashboard:Dashboard"
PROMQL_LABEL_LISTS = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\(([^)]*)\)")
PROMQL_MATCHERS = re.compile(r"([A-Za-z_@][\w.@]*|\"[^\"]*\")\s*(?:=~|!~|!=|=)")


def promql_label_names(query: str) -> list[str]:
    """Label names a PromQL query groups by or matches on (UTF-8 quoted names included)."""
    names = [
        label.strip().strip('"')
        for group in PROMQL_LABEL_LISTS.findall(query)
        for label in group.split(",")
        if label.strip()
    ]
    for selector in re.findall(r"\{([^}]*)\}", query):
        names.extend(name.strip('"') for name in PROMQL_MATCHERS.findall(selector))
    return names


def _metric_entries(metrics: Any) -> Iterable[Sequence[Any]]:
    return (entry for entry in metrics or [] if isinstance(entry, Sequence) and not isinstance(entry, str))


def dashboard_problems(body: Mapping[str, Any], forbidden: Mapping[str, str]) -> list[str]:
    problems = []
    for index, widget in enumerate(body.get("widgets") or []):
        properties = widget.get("properties") or {}
        title = properties.get("title") or f"widget {index}"
        for entry in _metric_entries(properties.get("metrics")):
            # [namespace, metric, name, value, ...]; ["...", name, value] repeats the previous entry's head
            names_and_values = entry[1:] if entry and entry[0] == "..." else entry[2:]
            words = [item for item in names_and_values if isinstance(item, str)]
            for item in entry:
                if isinstance(item, Mapping) and isinstance(item.get("expression"), str):
                    words.extend(_tokens(item["expression"]))
            found = per_user_names(words, forbidden)
            if found:
                problems.append(f"{title!r} metric {list(entry)} uses {found}")
        for query in (properties.get("data") or {}).get("queries") or []:
            text = query.get("query")
            if isinstance(text, str) and str(query.get("language", "PromQL")).lower() == "promql":
                found = per_user_names(promql_label_names(text), forbidden)
                if found:
                    problems.append(f"{title!r} PromQL {text!r} groups or matches on {found}")
    return problems


def _validate_dashboard(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
    if args.resource_type != DASHBOARD_TYPE:
        return
    try:
        body = json.loads(args.props.get("dashboardBody") or "{}")
    except json.JSONDecodeError as error:
        report_violation(f"{args.name}: dashboardBody is not JSON ({error}), so it could not be checked.", None)
        return
    problems = dashboard_problems(
        body if isinstance(body, Mapping) else {}, configured_forbidden_names(args.get_config())
    )
    if problems:
        report_violation(f"{args.name}: per-user dimensions in {'; '.join(problems)}.", None)


dashboards_have_no_per_user_dimensions = ResourceValidationPolicy(
    name="dashboards-have-no-per-user-dimensions",
    description=(
        "Dashboard metric widgets must not chart per-user or per-session dimensions (metric arrays, SEARCH and "
        "Metrics Insights expressions), and PromQL chart queries must not group by or match on them: per-user "
        "metrics cost a series per developer and PromQL stops at 500 series. Fix: chart team, department or "
        "model; show people in a custom widget that reads the rollup table."
    ),
    enforcement_level=EnforcementLevel.MANDATORY,
    validate=_validate_dashboard,
    config_schema=config_schema(*DIMENSION_SETTINGS),
)

# Direct-ingest settings -----------------------------------------------------------------------------------

OFF_SWITCHES = ("OTEL_METRICS_INCLUDE_SESSION_ID", "OTEL_METRICS_INCLUDE_ACCOUNT_UUID")


def resource_attribute_keys(value: str) -> list[str]:
    """Keys of an OTEL_RESOURCE_ATTRIBUTES value (`k1=v1,k2=v2`)."""
    return [pair.split("=", 1)[0].strip() for pair in value.split(",") if pair.strip()]


def sends_directly_to_cloudwatch(env: Mapping[str, Any]) -> bool:
    endpoint = env.get("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT") or env.get("OTEL_EXPORTER_OTLP_ENDPOINT")
    host = urlsplit(str(endpoint or "")).hostname or ""
    return host.startswith("monitoring.") and (host.endswith(".amazonaws.com") or host.endswith(".amazonaws.com.cn"))


def direct_ingest_problems(env: Mapping[str, Any], forbidden: Mapping[str, str]) -> list[str]:
    if not sends_directly_to_cloudwatch(env):
        return []
    problems = []
    keys = resource_attribute_keys(str(env.get("OTEL_RESOURCE_ATTRIBUTES") or ""))
    found = [key for key in keys if key.lower().startswith("user.") or per_user_names([key], forbidden)]
    if found:
        problems.append(f"OTEL_RESOURCE_ATTRIBUTES has per-user key(s) {found}")
    for switch in OFF_SWITCHES:
        value = env.get(switch)
        if str(value).strip().lower() != "false":
            problems.append(f"{switch} is {value!r}, not 'false'" if value is not None else f"{switch} is not set")
    return problems


def _validate_direct_ingest_settings(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
    forbidden = configured_forbidden_names(args.get_config())
    for stored in claude_code_settings(args.resource_type, args.props):
        problems = direct_ingest_problems(stored.document["env"], forbidden)
        if problems:
            report_violation(f"{args.name}: direct-ingest settings in {stored.where}: {'; '.join(problems)}.", None)


direct_ingest_settings_exclude_users = ResourceValidationPolicy(
    name="direct-ingest-settings-exclude-users",
    description=(
        "Claude Code settings that send metrics straight to CloudWatch (https://monitoring.<region>.amazonaws.com) "
        "must switch off what settings can: no user.* key in OTEL_RESOURCE_ATTRIBUTES, and "
        "OTEL_METRICS_INCLUDE_SESSION_ID and OTEL_METRICS_INCLUDE_ACCOUNT_UUID set to 'false' (both default to "
        "true). Fix: set both to 'false' and keep only team, department and cost center in the resource attributes. "
        "Settings cannot remove user.id (an installation hash on every point) nor, for Claude-account logins, "
        "user.email and organization.id: series on this path stay per installation. Where per-person labels are "
        "not allowed, send through a collector that drops them."
    ),
    enforcement_level=EnforcementLevel.MANDATORY,
    validate=_validate_direct_ingest_settings,
    config_schema=config_schema(*DIMENSION_SETTINGS),
)

POLICIES = [
    collector_metrics_have_no_per_user_dimensions,
    alarms_have_no_per_user_dimensions,
    log_metric_filters_have_no_per_user_dimensions,
    dashboards_have_no_per_user_dimensions,
    direct_ingest_settings_exclude_users,
]
