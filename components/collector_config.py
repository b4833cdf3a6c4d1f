"""The OpenTelemetry collector's configuration, rendered from plain settings (no Pulumi here).

What the rendered configuration guarantees:

- Metrics reach CloudWatch through the awsemf exporter with *declared* dimension sets only. The exporter's
  default roll-up (`ZeroAndSingleDimensionRollup`) adds a one-dimension set for every label a data point
  carries, `session.id` and `user.email` included, on top of the declared sets; `NoDimensionRollup` turns
  that off. Every attribute still lands in the EMF log event, so per-user analysis reads the logs.
- Aggregate dimensions that a client did not send are filled with `unattributed`, so a declared set never
  silently drops out and totals by department, team or cost center add up to the overall total.
- With `jwt` identity, the user's identity comes from the bearer token the load balancer has verified:
  the claims are decoded from the token's payload and overwrite whatever identity attributes the client
  sent; the token itself is removed before anything is exported.

`emf_dimension_sets` models which dimension sets the exporter emits for one data point (the logic of
`groupedMetricToCWMeasurementsWithFilters` and `dimensionRollup` in awsemfexporter), so tests and the
series benchmark can check the rendered configuration without a collector.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import yaml

from lambda_src.common.telemetry import (
    ACCOUNT_ID,
    ACCOUNT_UUID,
    COST_CENTER,
    DEPARTMENT,
    DIMENSION_NAMES,
    GROUPS,
    METRICS,
    ORGANISATION_ATTRIBUTES,
    TEAM,
    UNATTRIBUTED,
    USER_EMAIL,
    USER_ID,
)

OTLP_HTTP_PORT = 4318
OTLP_GRPC_PORT = 4317
HEALTH_CHECK_PORT = 13133
HEALTH_CHECK_PATH = "/"
CONFIG_ENV_VAR = "OTELCOL_CONFIG"

METRICS_BATCH_TIMEOUT = "60s"
EVENTS_BATCH_TIMEOUT = "5s"

# Identity attributes the verified token replaces: the ones it fills from claims, and the client's own
# account attributes, which no token vouches for and which are therefore removed.
IDENTITY_ATTRIBUTES = (USER_EMAIL, USER_ID, DEPARTMENT, TEAM, COST_CENTER)
REMOVED_CLIENT_IDENTITY = (ACCOUNT_UUID, ACCOUNT_ID)

BEARER_ATTRIBUTE = "ccm.bearer"


def declared_dimension_sets(group_metrics: Mapping[str, Sequence[str]] | None = None) -> dict[str, list[list[str]]]:
    """metric name -> declared dimension sets (the telemetry contract's), with the groups each metric is opted in
    for (`group_metrics`: group, such as `team`, -> metric names). `[]` is the total without dimensions."""
    groups_of: dict[str, list[str]] = {}
    for group, names in (group_metrics or {}).items():
        for name in names:
            groups_of.setdefault(name, []).append(GROUPS[group])
    return {metric.name: [list(s) for s in metric.sets_for(groups_of.get(metric.name, ()))] for metric in METRICS}


DIMENSION_SETS = declared_dimension_sets()
"""The default sets: no metric opted in for a group."""

AGGREGATE_DIMENSIONS = DIMENSION_NAMES


@dataclass(frozen=True)
class IdentityClaimNames:
    """Token claims that carry each identity attribute."""

    email: str = "email"
    user_id: str = "sub"
    department: str = "department"
    team: str = "team"
    cost_center: str = "cost_center"

    def by_attribute(self) -> dict[str, str]:
        return {
            "user.email": self.email,
            "user.id": self.user_id,
            DEPARTMENT: self.department,
            TEAM: self.team,
            COST_CENTER: self.cost_center,
        }


@dataclass(frozen=True)
class CollectorPipelineSettings:
    """What the rendered configuration depends on."""

    region: str
    environment: str
    """Stack name, added to every resource as `deployment.environment`."""
    metrics_namespace: str
    metrics_log_group: str
    events_log_group: str
    identity_mode: Literal["jwt", "none"]
    claims: IdentityClaimNames = field(default_factory=IdentityClaimNames)
    grpc: bool = False
    group_metrics: Mapping[str, Sequence[str]] = field(default_factory=dict)
    """Metrics opted in for a group's dimension sets (`team`, `costCenter`, `organization` -> metric names)."""


def render_collector_config(settings: CollectorPipelineSettings) -> dict[str, Any]:
    """The collector configuration as a mapping (dump it with `collector_config_yaml`)."""
    protocols: dict[str, Any] = {
        "http": {"endpoint": f"0.0.0.0:{OTLP_HTTP_PORT}", "include_metadata": settings.identity_mode == "jwt"}
    }
    if settings.grpc:
        protocols["grpc"] = {
            "endpoint": f"0.0.0.0:{OTLP_GRPC_PORT}",
            "include_metadata": settings.identity_mode == "jwt",
        }

    processors: dict[str, Any] = {
        "memory_limiter": {"check_interval": "1s", "limit_percentage": 80, "spike_limit_percentage": 20},
        "resource/environment": {
            "attributes": [{"key": "deployment.environment", "value": settings.environment, "action": "upsert"}]
        },
    }
    identity: list[str] = []
    if settings.identity_mode == "jwt":
        processors["resource/bearer"] = {
            "attributes": [
                {"key": BEARER_ATTRIBUTE, "action": "delete"},
                {"key": BEARER_ATTRIBUTE, "from_context": "metadata.authorization", "action": "upsert"},
            ]
        }
        processors["transform/identity"] = _identity_transform(settings.claims)
        processors["resource/drop-bearer"] = {"attributes": [{"key": BEARER_ATTRIBUTE, "action": "delete"}]}
        identity = ["resource/bearer", "transform/identity", "resource/drop-bearer"]
    processors["transform/unattributed"] = _unattributed_transform()
    processors["batch/metrics"] = {
        "timeout": METRICS_BATCH_TIMEOUT,
        "send_batch_size": 1000,
        "send_batch_max_size": 2000,
    }
    processors["batch/events"] = {"timeout": EVENTS_BATCH_TIMEOUT, "send_batch_size": 500, "send_batch_max_size": 1000}

    exporters = {
        "awsemf": {
            "region": settings.region,
            "namespace": settings.metrics_namespace,
            "log_group_name": settings.metrics_log_group,
            "log_stream_name": "claude-code-metrics",
            "dimension_rollup_option": "NoDimensionRollup",
            # Resource attributes (team, department, cost center from the token) become labels; `included: ["*"]`
            # replaces the deprecated `enabled: true` (an error under the exporter.awsemf.DisableLegacy... gate).
            "resource_to_telemetry_conversion": {"included": ["*"]},
            # Claude Code's units (tokens, USD, s) are not CloudWatch units: EMF carries the contract's mapping.
            "metric_descriptors": [
                {"metric_name": metric.name, "unit": metric.cloudwatch_unit, "overwrite": True} for metric in METRICS
            ],
            "metric_declarations": [
                {"metric_name_selectors": [_config_literal(f"^{re.escape(name)}$")], "dimensions": dimension_sets}
                for name, dimension_sets in declared_dimension_sets(settings.group_metrics).items()
            ],
        },
        "awscloudwatchlogs/events": {
            "region": settings.region,
            "log_group_name": settings.events_log_group,
            "log_stream_name": "claude-code-events",
            "raw_log": False,
        },
    }
    first = ["memory_limiter", "resource/environment", *identity]
    return {
        "extensions": {"health_check": {"endpoint": f"0.0.0.0:{HEALTH_CHECK_PORT}", "path": HEALTH_CHECK_PATH}},
        "receivers": {"otlp": {"protocols": protocols}},
        "processors": processors,
        "exporters": exporters,
        "service": {
            "extensions": ["health_check"],
            "telemetry": {"logs": {"level": "info", "encoding": "json"}},
            "pipelines": {
                "metrics": {
                    "receivers": ["otlp"],
                    "processors": [*first, "transform/unattributed", "batch/metrics"],
                    "exporters": ["awsemf"],
                },
                "logs": {
                    "receivers": ["otlp"],
                    "processors": [*first, "transform/unattributed", "batch/events"],
                    "exporters": ["awscloudwatchlogs/events"],
                },
            },
        },
    }


def _identity_transform(claims: IdentityClaimNames) -> dict[str, Any]:
    """Decode the verified token's payload; its claims replace the identity attributes a client sent.

    The load balancer has checked the token's signature, issuer, expiry and audience before the request
    reaches a task, and tasks accept traffic only from the load balancer, so decoding without a second
    signature check is sound here. The client puts identity on every data point and log record, so those
    are removed there (with the account attributes no token vouches for) and set on the resource from the
    claims. A claim the token lacks removes the attribute rather than keep a client's value; a token with
    neither an email nor a subject makes the user `unattributed`.
    """
    bearer = f'resource.attributes["{BEARER_ATTRIBUTE}"]'
    payload = 'resource.cache["payload"]'
    payload_pattern = "^[Bb]earer [A-Za-z0-9_-]+[.](?P<payload>[A-Za-z0-9_-]+)[.]"
    resource = [
        f'merge_maps(resource.cache, ExtractPatterns({bearer}, "{payload_pattern}"), "upsert") where {bearer} != nil',
        f'set(resource.cache["claims"], ParseJSON(Decode({payload}, "base64-raw-url"))) where {payload} != nil',
    ]
    for attribute in (*IDENTITY_ATTRIBUTES, *REMOVED_CLIENT_IDENTITY):
        resource.append(f'delete_key(resource.attributes, "{attribute}")')
    for attribute, claim in claims.by_attribute().items():
        resource.append(
            f'set(resource.attributes["{attribute}"], resource.cache["claims"]["{claim}"]) '
            'where resource.cache["claims"] != nil'
        )
    resource.append(
        f'set(resource.attributes["{USER_ID}"], "{UNATTRIBUTED}") '
        f'where resource.attributes["{USER_EMAIL}"] == nil and resource.attributes["{USER_ID}"] == nil'
    )
    record_level = [
        f'delete_key({{scope}}.attributes, "{attribute}")'
        for attribute in (*IDENTITY_ATTRIBUTES, *REMOVED_CLIENT_IDENTITY)
    ]
    return {
        "error_mode": "ignore",
        "metric_statements": [
            {"context": "resource", "statements": resource},
            {"context": "datapoint", "statements": [s.format(scope="datapoint") for s in record_level]},
        ],
        "log_statements": [
            {"context": "resource", "statements": resource},
            {"context": "log", "statements": [s.format(scope="log") for s in record_level]},
        ],
    }


def _unattributed_transform() -> dict[str, Any]:
    """Organisation dimensions a client did not send become `unattributed`, so no declared set drops out."""
    statements = [
        f'set(resource.attributes["{name}"], "{UNATTRIBUTED}") where resource.attributes["{name}"] == nil'
        for name in ORGANISATION_ATTRIBUTES
    ]
    return {
        "error_mode": "ignore",
        "metric_statements": [{"context": "resource", "statements": statements}],
        "log_statements": [{"context": "resource", "statements": statements}],
    }


def _config_literal(text: str) -> str:
    """The collector expands `${...}` in its configuration; `$$` is how a literal `$` is written."""
    return text.replace("$", "$$")


class _NoAliasDumper(yaml.SafeDumper):
    def ignore_aliases(self, data: Any) -> bool:
        return True


def collector_config_yaml(settings: CollectorPipelineSettings) -> str:
    """The configuration as YAML, without anchors, as the task receives it."""
    return yaml.dump(
        render_collector_config(settings), Dumper=_NoAliasDumper, sort_keys=False, width=1000, allow_unicode=True
    )


# The exporter's dimension logic, for tests and the series benchmark -------------------------------------


def emf_dimension_sets(
    exporter: Mapping[str, Any], metric_name: str, labels: Mapping[str, str]
) -> list[tuple[str, ...]]:
    """Dimension sets awsemf emits for one data point of `metric_name` with these labels.

    Declared sets apply when every dimension is a label of the point; the roll-up option then appends
    sets built from *all* labels (the point's attributes and, with resource_to_telemetry_conversion, its
    resource attributes): `[]` and one set per label for ZeroAndSingleDimensionRollup.
    """
    declarations = list(exporter.get("metric_declarations") or [])
    matching = [
        declaration
        for declaration in declarations
        if any(re.search(selector.replace("$$", "$"), metric_name) for selector in declaration["metric_name_selectors"])
    ]
    if declarations and not matching:
        return []  # no declaration names the metric: the exporter drops it from metrics (it stays in the log)
    if declarations:
        declared = [
            tuple(sorted(set(dimension_set)))
            for declaration in matching
            for dimension_set in declaration["dimensions"]
            if all(name in labels for name in dimension_set)
        ]
    else:
        declared = [tuple(sorted(labels))]
    rollup_option = exporter.get("dimension_rollup_option", "ZeroAndSingleDimensionRollup")
    rolled_up: list[tuple[str, ...]] = []
    if rollup_option == "ZeroAndSingleDimensionRollup" and labels:
        rolled_up.append(())
    if rollup_option in ("ZeroAndSingleDimensionRollup", "SingleDimensionRollupOnly"):
        rolled_up.extend((name,) for name in sorted(labels))
    return list(dict.fromkeys([*declared, *rolled_up]))


EXAMPLE_ORGANISATION = "8 departments, 40 teams, 12 cost centers, 3 models"
EXAMPLE_ORGANISATION_VALUES: Mapping[str, Mapping[str, int]] = {
    "*": {
        "model": 3,
        "type": 4,
        "department": 8,
        "team.id": 40,
        "cost_center": 12,
        "organization.id": 1,
        "decision": 2,
        "tool_name": 3,
        "language": 6,
    },
    "claude_code.lines_of_code.count": {"type": 2},
}
"""How many values each attribute takes in the example organisation (the series benchmark's fleet)."""


def series_count(declared: Mapping[str, Sequence[Sequence[str]]], values: Mapping[str, Mapping[str, int]]) -> int:
    """CloudWatch series the declared sets make when every combination of values occurs: per metric and set, the
    product of how many values each dimension takes (`values[metric][attribute]`, else `values["*"][attribute]`).
    The series benchmark checks this against `exported_series` on a synthetic fleet."""
    total = 0
    for metric, sets in declared.items():
        for dimension_set in sets:
            count = 1
            for name in dimension_set:
                count *= values.get(metric, {}).get(name, values["*"][name])
            total += count
    return total


def exported_series(
    exporter: Mapping[str, Any], points: Sequence[tuple[str, Mapping[str, str]]]
) -> set[tuple[str, tuple[tuple[str, str], ...]]]:
    """Distinct CloudWatch metric series (name and dimension values) that these data points create."""
    series: set[tuple[str, tuple[tuple[str, str], ...]]] = set()
    for metric_name, labels in points:
        for dimension_set in emf_dimension_sets(exporter, metric_name, labels):
            series.add((metric_name, tuple((name, labels[name]) for name in dimension_set)))
    return series
