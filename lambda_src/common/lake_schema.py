"""The data lake's tables: one definition that the transform writes, Glue declares, Firehose converts to Parquet
with, and the tests write their Parquet files from.

Every attribute Claude Code sends is kept: the documented ones in their own typed columns, any other in the
`attributes` map (and, for events, resource attributes in `resource_attributes`). A value that does not fit its
column's type stays in the map as text, so nothing is lost to a type mismatch.
Both telemetry tables are partitioned by the event's own time: `dt` (yyyy-MM-dd, UTC) and `hour` (00-23).
"""

from __future__ import annotations

from dataclasses import dataclass

from lambda_src.common.telemetry import (
    ACCOUNT_ID,
    ACCOUNT_UUID,
    APP_VERSION,
    COST_CENTER,
    DECISION,
    DEPARTMENT,
    ORGANIZATION_ID,
    PROVIDER,
    SERVICE_VERSION,
    SESSION_ID,
    SOURCE,
    TEAM,
    TERMINAL_TYPE,
    USER_EMAIL,
    USER_ID,
)


@dataclass(frozen=True)
class Column:
    name: str
    type: str
    """Glue / Hive type: string, double, bigint, int, boolean, timestamp, map<string,string>."""
    comment: str = ""
    attribute: str | None = None
    """The Claude Code (or OpenTelemetry resource) attribute the column holds, if any."""
    also: tuple[str, ...] = ()
    """Other attribute names that fill the column when `attribute` is absent (the same fact, named per event)."""

    @property
    def attributes(self) -> tuple[str, ...]:
        return () if self.attribute is None else (self.attribute, *self.also)


PARTITION_KEYS = (
    Column("dt", "string", "UTC date of the event, yyyy-MM-dd"),
    Column("hour", "int", "UTC hour of the event, 0-23 (stored as hour=00 to hour=23)"),
)

_IDENTITY = (
    Column("user_key", "string", "user.email, else user.id, else user.account_uuid"),
    Column("user_key_source", "string", "Which attribute user_key came from; NULL when none"),
    Column("user_email", "string", attribute=USER_EMAIL),
    Column(
        "user_id", "string", "Installation hash; `unattributed` when a verified token named nobody", attribute=USER_ID
    ),
    Column("user_account_uuid", "string", attribute=ACCOUNT_UUID),
    Column("user_account_id", "string", attribute=ACCOUNT_ID),
    Column("organization_id", "string", attribute=ORGANIZATION_ID),
    Column("session_id", "string", attribute=SESSION_ID),
    Column("app_version", "string", "Claude Code version: app.version, else service.version", attribute=APP_VERSION),
    Column("terminal_type", "string", attribute=TERMINAL_TYPE),
    Column("provider", "string", "firstParty (Anthropic API), bedrock or vertex", attribute=PROVIDER),
    Column("department", "string", attribute=DEPARTMENT),
    Column("team_id", "string", attribute=TEAM),
    Column("cost_center", "string", attribute=COST_CENTER),
)

_RESOURCE = (
    Column("service_name", "string", attribute="service.name"),
    Column("service_version", "string", attribute=SERVICE_VERSION),
    Column("os_type", "string", attribute="os.type"),
    Column("os_version", "string", attribute="os.version"),
    Column("host_arch", "string", attribute="host.arch"),
    Column("deployment_environment", "string", "The stack that collected it", attribute="deployment.environment"),
)

_MODEL = (
    Column("model", "string", "Model as reported", attribute="model"),
    Column(
        "model_version",
        "string",
        "The prices table's key for the model (such as claude-sonnet-4-5); the normalised id when none matches",
    ),
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
    Column("tool_name", "string", "Write, Edit, MultiEdit, NotebookEdit, ...", attribute="tool_name"),
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
    Column(
        "decision",
        "string",
        "tool_decision: decision; tool_result: decision_type",
        attribute=DECISION,
        also=("decision_type",),
    ),
    Column(
        "decision_source",
        "string",
        "tool_decision: source; tool_result: decision_source",
        attribute=SOURCE,
        also=("decision_source",),
    ),
    Column("tool_parameters", "string", attribute="tool_parameters"),
    Column("prompt_length", "bigint", attribute="prompt_length"),
    *_RESOURCE,
    Column("attributes", "map<string,string>", "Every other attribute of the event"),
    Column("resource_attributes", "map<string,string>", "Every other resource attribute"),
    *_ORIGIN,
)

PRICES_COLUMNS = (
    Column("model_version", "string", "Model id, undated id, or prefix ending in *"),
    Column("token_type", "string", "input, output, cacheRead or cacheCreation"),
    Column("usd_per_million_tokens", "double"),
)

TABLES = {"metrics": METRICS_COLUMNS, "events": EVENTS_COLUMNS, "prices": PRICES_COLUMNS}
PARTITIONED_TABLES = ("metrics", "events")
