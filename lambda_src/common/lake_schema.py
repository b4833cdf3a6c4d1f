"""The data lake's tables: one definition that the transform writes, Glue declares, Firehose converts to Parquet
with, and the tests write their Parquet files from.

Every attribute Claude Code sends is kept: the documented ones in their own typed columns, any other in the
`attributes` map (and, for events, resource attributes in `resource_attributes`). A value that does not fit its
column's type stays in the map as text, so nothing is lost to a type mismatch.
Both telemetry tables are partitioned by the event's own time: `dt` (yyyy-MM-dd, UTC) and `hour` (00-23).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Column:
    name: str
    type: str
    """Glue / Hive type: string, double, bigint, int, boolean, timestamp, map<string,string>."""
    comment: str = ""
    attribute: str | None = None
    """The Claude Code (or OpenTelemetry resource) attribute the column holds, if any."""


PARTITION_KEYS = (
    Column("dt", "string", "UTC date of the event, yyyy-MM-dd"),
    Column("hour", "int", "UTC hour of the event, 0-23 (stored as hour=00 to hour=23)"),
)

_IDENTITY = (
    Column("user_key", "string", "user.email, else user.id, else user.account_uuid"),
    Column("user_key_source", "string", "Which attribute user_key came from; NULL when none"),
    Column("user_email", "string", attribute="user.email"),
    Column("user_id", "string", attribute="user.id"),
    Column("user_account_uuid", "string", attribute="user.account_uuid"),
    Column("organization_id", "string", attribute="organization.id"),
    Column("session_id", "string", attribute="session.id"),
    Column("app_version", "string", "Claude Code version", attribute="app.version"),
    Column("terminal_type", "string", attribute="terminal.type"),
    Column("department", "string", attribute="department"),
    Column("team_id", "string", attribute="team.id"),
    Column("cost_center", "string", attribute="cost_center"),
)

_RESOURCE = (
    Column("service_name", "string", attribute="service.name"),
    Column("service_version", "string", attribute="service.version"),
    Column("os_type", "string", attribute="os.type"),
    Column("os_version", "string", attribute="os.version"),
    Column("host_arch", "string", attribute="host.arch"),
    Column("deployment_environment", "string", "The stack that collected it", attribute="deployment.environment"),
)

_MODEL = (
    Column("model", "string", "Model as reported", attribute="model"),
    Column("model_version", "string", "Canonical model version, the key of the prices table"),
)

_ORIGIN = (
    Column("log_event_id", "string", "CloudWatch Logs event id"),
    Column("row_id", "string", "Unique per row: log event id and position, for de-duplication"),
)

METRICS_COLUMNS = (
    Column("event_time", "timestamp", "Time of the data point (UTC)"),
    Column("metric_name", "string", "For example claude_code.token.usage"),
    Column("value", "double", "The data point's value: a delta, so sum it"),
    Column("unit", "string"),
    *_IDENTITY,
    *_MODEL,
    Column(
        "type",
        "string",
        "Token type (input, output, cacheRead, cacheCreation) or lines (added, removed)",
        attribute="type",
    ),
    Column("tool", "string", attribute="tool"),
    Column("decision", "string", attribute="decision"),
    Column("language", "string", attribute="language"),
    *_RESOURCE,
    Column("attributes", "map<string,string>", "Every other attribute of the data point"),
    *_ORIGIN,
)

EVENTS_COLUMNS = (
    Column("event_time", "timestamp", "event.timestamp, else the log record's time (UTC)"),
    Column("event_name", "string", "api_request, api_error, tool_result, tool_decision, user_prompt, ..."),
    Column("event_sequence", "bigint", attribute="event.sequence"),
    Column("body", "string"),
    Column("severity_text", "string"),
    *_IDENTITY,
    *_MODEL,
    Column("cost_usd", "double", "Client-side estimate", attribute="cost_usd"),
    Column("duration_ms", "double", attribute="duration_ms"),
    Column("input_tokens", "bigint", attribute="input_tokens"),
    Column("output_tokens", "bigint", attribute="output_tokens"),
    Column("cache_read_tokens", "bigint", attribute="cache_read_tokens"),
    Column("cache_creation_tokens", "bigint", attribute="cache_creation_tokens"),
    Column("error", "string", attribute="error"),
    Column("status_code", "string", attribute="status_code"),
    Column("attempt", "int", attribute="attempt"),
    Column("tool_name", "string", attribute="tool_name"),
    Column("success", "boolean", attribute="success"),
    Column("decision", "string", attribute="decision"),
    Column("decision_source", "string", attribute="source"),
    Column("tool_parameters", "string", attribute="tool_parameters"),
    Column("prompt_length", "bigint", attribute="prompt_length"),
    *_RESOURCE,
    Column("attributes", "map<string,string>", "Every other attribute of the event"),
    Column("resource_attributes", "map<string,string>", "Every other resource attribute"),
    *_ORIGIN,
)

PRICES_COLUMNS = (
    Column("model_version", "string"),
    Column("token_type", "string", "input, output, cacheRead or cacheCreation"),
    Column("usd_per_million_tokens", "double"),
)

TABLES = {"metrics": METRICS_COLUMNS, "events": EVENTS_COLUMNS, "prices": PRICES_COLUMNS}
PARTITIONED_TABLES = ("metrics", "events")
