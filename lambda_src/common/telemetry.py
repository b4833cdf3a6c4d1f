"""The telemetry contract: what the real Claude Code client sends, written once. Everything that reads or
declares Claude Code telemetry imports it: the collector configuration (dimension sets, units, identity), the
dashboard body, the lake schema, the aggregator, the transform, the quota monitor, the managed settings and
the tests. Adding a metric is one entry in `METRICS`. No Pulumi and no boto3 here.

Observed from Claude Code 2.1.328 on loopback (recordings in tests/fixtures/claude-code/):

- Metrics, scope `com.anthropic.claude_code`: the 8 counters below, all `sum`, monotonic, doubles, DELTA by
  default. Units as sent: `tokens`, `USD`, `s`, none on the rest.
- Identity is on every data point and log record, not on the resource: `user.id` (a 64-hex installation
  hash) always, `session.id` unless turned off, `terminal.type`; `user.email`, `organization.id`,
  `user.account_uuid` and `user.account_id` only with a Claude-account login (absent with an API key or
  Bedrock). Every `OTEL_RESOURCE_ATTRIBUTES` key is copied onto each point, but the client's own point
  attributes win. `app.version` only with `OTEL_METRICS_INCLUDE_VERSION=true`; `service.version` always on
  the resource.
- Events, scope `com.anthropic.claude_code.events`, body `claude_code.<name>`: counts as ints, `cost_usd` as a
  double, `success`, `duration_ms` (tool_result) and `prompt_length` as strings; about 28 names exist.

In CloudWatch Logs (the collector's exporters): the metrics log group holds one EMF JSON object per log event
(every attribute, resource attributes included, a string field beside the metric values; `_aws.Timestamp` in
milliseconds); the events log group one JSON object per log record with `body`, `severity_text`,
`attributes` and `resource`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

METRICS_SCOPE = "com.anthropic.claude_code"
EVENTS_SCOPE = "com.anthropic.claude_code.events"
EVENT_BODY_PREFIX = "claude_code."

# Identity: on every point and record. A record's user is its user.email, else user.id, else user.account_uuid.
USER_EMAIL, USER_ID, ACCOUNT_UUID, ACCOUNT_ID = "user.email", "user.id", "user.account_uuid", "user.account_id"
ORGANIZATION_ID, SESSION_ID, TERMINAL_TYPE = "organization.id", "session.id", "terminal.type"
APP_VERSION, SERVICE_VERSION = "app.version", "service.version"
PROVIDER = "anthropic.provider"  # firstParty, bedrock, vertex
USER_ATTRIBUTION_ORDER = (USER_EMAIL, USER_ID, ACCOUNT_UUID)

# Every attribute that names a person, an account or a session, as the client spells it: never a metric
# dimension, and replaced from the verified token where the collector validates one.
CLIENT_IDENTITY_ATTRIBUTES = (USER_EMAIL, USER_ID, ACCOUNT_UUID, ACCOUNT_ID, SESSION_ID)
# The same, with the spellings other tools and hand-written settings use; the policy pack keeps its own copy
# (it must stand alone) and a test keeps the two equal.
PER_USER_ATTRIBUTES = (
    *CLIENT_IDENTITY_ATTRIBUTES,
    "user.name",
    "user",
    "account_uuid",
    "UserName",
    "UserEmail",
    "UserId",
    "email",
    "userId",
    "user_email",
    "user_id",
    "session_id",
    "SessionId",
)
# Attributes the client sets on every point itself: an OTEL_RESOURCE_ATTRIBUTES key of the same name loses.
CLIENT_SET_ATTRIBUTES = (*CLIENT_IDENTITY_ATTRIBUTES, ORGANIZATION_ID, TERMINAL_TYPE, APP_VERSION)

# Organisation: resource attributes the managed settings (Path B) or the verified token (Path A) supply.
DEPARTMENT, TEAM, COST_CENTER = "department", "team.id", "cost_center"
ORGANISATION_ATTRIBUTES = (DEPARTMENT, TEAM, COST_CENTER)
UNATTRIBUTED = "unattributed"
"""What an organisation attribute reads when nobody supplied it, so totals by group still add up."""

# Point attributes of the metrics.
MODEL, TYPE, QUERY_SOURCE = "model", "type", "query_source"
TOOL_NAME, DECISION, SOURCE, LANGUAGE = "tool_name", "decision", "source", "language"

TOKEN_TYPES = ("input", "output", "cacheRead", "cacheCreation")
LINE_TYPES = ("added", "removed")
EDIT_DECISIONS = ("accept", "reject")

# The client's units and the CloudWatch unit (StandardUnit) each becomes in EMF; a metric without a unit
# stays "None" in CloudWatch.
CLOUDWATCH_UNITS: Mapping[str | None, str] = {"tokens": "Count", "USD": "None", "s": "Seconds", None: "Count"}


GROUP = "<group>"
GROUPS: Mapping[str, str] = {"team": TEAM, "costCenter": COST_CENTER, "organization": ORGANIZATION_ID}
"""The groups a stack may opt metrics in for (`collector.groupMetrics`), and the attribute of each."""


@dataclass(frozen=True)
class Metric:
    name: str
    client_unit: str | None
    """The unit the client sends (None: no unit)."""
    attributes: tuple[str, ...]
    """Point attributes besides identity and organisation."""
    dimension_sets: tuple[tuple[str, ...], ...]
    """CloudWatch dimension sets the collector declares; () is the total."""
    ceiling: float = 1e9
    """The largest value one data point (one export interval of one client) can honestly carry; a larger,
    negative or non-finite value is quarantined, never summed (every metric is a counter)."""
    group_sets: tuple[tuple[str, ...], ...] = ((GROUP,),)
    """The sets a stack adds when it opts this metric in for a group (team, cost center, organisation):
    GROUP stands for the group's attribute. Off by default: these sets grow with the organisation's size, and
    the dashboard's team views read the rollups instead."""

    @property
    def cloudwatch_unit(self) -> str:
        return CLOUDWATCH_UNITS[self.client_unit]

    def sets_for(self, groups: Iterable[str] = ()) -> tuple[tuple[str, ...], ...]:
        """The declared sets with these group attributes opted in (such as `team.id`)."""
        added = tuple(
            tuple(group if name == GROUP else name for name in s) for group in groups for s in self.group_sets
        )
        return self.dimension_sets + tuple(s for s in added if s not in self.dimension_sets)


METRICS: tuple[Metric, ...] = (
    Metric(
        "claude_code.token.usage",
        "tokens",
        (MODEL, TYPE, QUERY_SOURCE),
        ((), (TYPE,), (MODEL,), (MODEL, TYPE), (DEPARTMENT,)),
    ),
    Metric("claude_code.cost.usage", "USD", (MODEL, QUERY_SOURCE), ((), (MODEL,), (DEPARTMENT,)), ceiling=1e5),
    Metric("claude_code.session.count", None, (), ((), (DEPARTMENT,)), ceiling=1e4),
    Metric("claude_code.active_time.total", "s", (TYPE,), ((), (DEPARTMENT,)), ceiling=31 * 86400),
    Metric("claude_code.commit.count", None, (), ((), (DEPARTMENT,)), ceiling=1e5),
    Metric("claude_code.pull_request.count", None, (), ((), (DEPARTMENT,)), ceiling=1e5),
    Metric(
        "claude_code.lines_of_code.count",
        None,
        (TYPE,),
        ((), (TYPE,), (DEPARTMENT, TYPE)),
        group_sets=((GROUP, TYPE),),
    ),
    Metric(
        "claude_code.code_edit_tool.decision",
        None,
        (TOOL_NAME, DECISION, SOURCE, LANGUAGE),
        ((), (DECISION,), (TOOL_NAME, DECISION), (LANGUAGE, DECISION)),
        group_sets=((GROUP, DECISION),),
    ),
)
METRICS_BY_NAME: Mapping[str, Metric] = {metric.name: metric for metric in METRICS}
METRIC_NAMES = tuple(METRICS_BY_NAME)
TOKEN_METRIC, COST_METRIC = "claude_code.token.usage", "claude_code.cost.usage"
DIMENSION_NAMES = frozenset(name for metric in METRICS for dims in metric.sets_for(GROUPS.values()) for name in dims)
"""Every attribute a declared set may hold, with every group opted in."""

# Events: the attributes each carries and their types as the client sends them ("int", "double", "string").
EVENTS: Mapping[str, Mapping[str, str]] = {
    "api_request": {
        MODEL: "string",
        "cost_usd": "double",
        "duration_ms": "int",
        "input_tokens": "int",
        "output_tokens": "int",
        "cache_read_tokens": "int",
        "cache_creation_tokens": "int",
    },
    "api_error": {MODEL: "string", "error": "string", "status_code": "int", "duration_ms": "int", "attempt": "int"},
    "tool_result": {
        TOOL_NAME: "string",
        "success": "string",
        "duration_ms": "string",
        "decision_type": "string",
        "decision_source": "string",
    },
    "tool_decision": {TOOL_NAME: "string", DECISION: "string", SOURCE: "string"},
    "user_prompt": {"prompt_length": "string"},
}
EVENT_NAMES = tuple(EVENTS)
EVENT_NUMBER_CEILING = 1e9
"""The largest count, duration or cost one event carries (tokens, milliseconds, USD); larger, negative or
non-finite numbers are not summed: the event is quarantined."""

# Times a pipeline books: from the day the lake's partitions start (Athena's projection range) to shortly
# after the delivery arrived (clients' clocks drift). Outside it an event is quarantined and counted, never
# booked on a day no dashboard or query shows.
EARLIEST_EVENT_DAY = "2025-01-01"
LATEST_EVENT_SKEW_SECONDS = 3600
"""The events the dashboard counts by name; every other event is kept in the lake and counted as `other`."""


def user_key(attributes: Mapping[str, Any]) -> tuple[str | None, str | None]:
    """(who, which attribute said so): the first non-empty of user.email, user.id, user.account_uuid."""
    for name in USER_ATTRIBUTION_ORDER:
        value = attributes.get(name)
        if isinstance(value, str) and value.strip():
            return value.strip(), name
    return None, None
