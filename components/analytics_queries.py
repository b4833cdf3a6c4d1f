"""The Athena named queries, rendered as Trino SQL (Athena engine 3) from plain settings; no Pulumi here.

Rules every query follows:
- Reads only the partitions it needs: a `dt` range relative to `current_date`, compared as ISO date text, so
  a window that crosses December into January is one contiguous range (never `year = ... AND month IN ...`).
- Sums data points: Claude Code counters are deltas. Requests are `api_request` events, never token rows.
- Attributes a row to `user_key` (email, else user id, else account uuid); rows with none are reported as
  `(unattributed)` so totals add up, and `data_quality` says how many there are.
- Prices come from the `prices` table (one row per model version and token type). `cost_usd` is the dashboard's
  and the quota monitor's cost: tokens at the table's prices, and for a model the table does not price the cost
  Claude Code reported, so current models are never free. `priced_cost_usd` (tokens at the table's prices only;
  NULL for a model without a price) and `reported_cost_usd` (the client's own figure) stand beside it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from lambda_src.common.quota_policies import QuotaPolicy
from lambda_src.common.telemetry import COST_METRIC, TOKEN_METRIC

UNATTRIBUTED_USER = "(unattributed)"


@dataclass(frozen=True)
class QuerySettings:
    time_zone: str = "UTC"
    """Time zone of quota periods and of the hourly activity pattern."""
    quota_policies: Sequence[QuotaPolicy] = field(default_factory=tuple)
    top_users: int = 50


@dataclass(frozen=True)
class NamedQuery:
    description: str
    sql: str


def since(days: int) -> str:
    """Partitions of the last `days` days, today included."""
    return f"dt >= date_format(current_date - INTERVAL '{days - 1}' DAY, '%Y-%m-%d')"


def months_back(months: int) -> str:
    """Partitions from the first day of the month `months` before this one."""
    return f"dt >= date_format(date_trunc('month', current_date) - INTERVAL '{months}' MONTH, '%Y-%m-%d')"


def user_column(alias: str = "") -> str:
    prefix = f"{alias}." if alias else ""
    return f"COALESCE({prefix}user_key, '{UNATTRIBUTED_USER}')"


PRICED_TOKENS = (
    "LEFT JOIN prices p ON m.metric_name = '" + TOKEN_METRIC + "' "
    "AND p.model_version = m.model_version AND p.token_type = m.type"
)
PRICED_COST = f"CASE WHEN m.metric_name = '{TOKEN_METRIC}' THEN m.value * p.usd_per_million_tokens / 1e6 END"
PRICED_MODELS = (
    "LEFT JOIN prices pm ON m.metric_name = '" + COST_METRIC + "' "
    "AND pm.model_version = m.model_version AND pm.token_type = 'input'"
)
"""The models the table prices (by their input price), joined to the client's cost rows."""
COST = (
    f"CASE WHEN m.metric_name = '{TOKEN_METRIC}' THEN m.value * p.usd_per_million_tokens / 1e6 "
    f"WHEN m.metric_name = '{COST_METRIC}' AND pm.model_version IS NULL THEN m.value END"
)
"""The cost the dashboard and the quota monitor count (as the aggregator does): tokens at the table's prices, and
the client's reported cost of a model the table does not price. Needs PRICED_TOKENS and PRICED_MODELS."""


def metric_sum(metric: str, extra: str = "") -> str:
    condition = f"m.metric_name = '{metric}'" + (f" AND {extra}" if extra else "")
    return f"sum(CASE WHEN {condition} THEN m.value END)"


def _usage_by(column: str, label: str) -> NamedQuery:
    return NamedQuery(
        f"Last 30 days by {label}: active users, sessions, tokens, cost (priced and reported beside it), lines, "
        "commits, "
        "pull requests, active hours",
        f"""
SELECT
  COALESCE(m.{column}, 'unattributed') AS {column},
  count(DISTINCT m.user_key) AS active_users,
  {metric_sum("claude_code.session.count")} AS sessions,
  {metric_sum(TOKEN_METRIC)} AS tokens,
  round(sum({COST}), 4) AS cost_usd,
  round(sum({PRICED_COST}), 4) AS priced_cost_usd,
  round({metric_sum(COST_METRIC)}, 4) AS reported_cost_usd,
  {metric_sum("claude_code.lines_of_code.count", "m.type = 'added'")} AS lines_added,
  {metric_sum("claude_code.lines_of_code.count", "m.type = 'removed'")} AS lines_removed,
  {metric_sum("claude_code.commit.count")} AS commits,
  {metric_sum("claude_code.pull_request.count")} AS pull_requests,
  round({metric_sum("claude_code.active_time.total")} / 3600, 2) AS active_hours
FROM metrics m
{PRICED_TOKENS}
{PRICED_MODELS}
WHERE m.{since(30)}
GROUP BY 1
ORDER BY cost_usd DESC NULLS LAST, 1
""",
    )


def _policies_values(policies: Sequence[QuotaPolicy]) -> str:
    def number(value: float | None) -> str:
        return "CAST(NULL AS double)" if value is None else f"CAST({float(value)!r} AS double)"

    def text(value: str) -> str:
        return "'" + value.replace("'", "''") + "'"

    rows = [
        f"({text(p.scope)}, {text(p.name)}, {number(p.daily_tokens)}, {number(p.monthly_tokens)}, "
        f"{number(p.daily_usd)}, {number(p.monthly_usd)})"
        for p in policies or [QuotaPolicy("default")]
    ]
    return ",\n    ".join(rows)


def _quota_tracking(settings: QuerySettings) -> NamedQuery:
    zone = settings.time_zone.replace("'", "")
    local = f"(m.event_time AT TIME ZONE '{zone}')"
    now = f"(current_timestamp AT TIME ZONE '{zone}')"
    limits = ("daily_tokens", "monthly_tokens", "daily_usd", "monthly_usd")
    effective = ",\n  ".join(
        f"CASE WHEN pu.scope IS NOT NULL THEN pu.{limit} WHEN pt.scope IS NOT NULL THEN pt.{limit} "
        f"WHEN pd.scope IS NOT NULL THEN pd.{limit} ELSE pf.{limit} END AS {limit}"
        for limit in limits
    )

    def percent(used: str, limit: str) -> str:
        return f"CASE WHEN e.{limit} > 0 THEN round(100 * e.{used} / e.{limit}, 1) END"

    return NamedQuery(
        f"This month and today ({zone}) per user against the configured quota limits; the user's policy wins "
        "over the team's, the team's over the department's, the department's over the default; 0 turns a limit off",
        f"""
WITH policies (scope, name, daily_tokens, monthly_tokens, daily_usd, monthly_usd) AS (
  VALUES
    {_policies_values(settings.quota_policies)}
),
usage AS (
  SELECT
    {user_column("m")} AS user_key,
    max_by(m.department, m.event_time) AS department,
    max_by(m.team_id, m.event_time) AS team,
    {metric_sum(TOKEN_METRIC)} AS month_tokens,
    {metric_sum(TOKEN_METRIC, f"date_trunc('day', {local}) = date_trunc('day', {now})")} AS day_tokens,
    sum({COST}) AS month_usd,
    sum(CASE WHEN date_trunc('day', {local}) = date_trunc('day', {now}) THEN {COST} END) AS day_usd
  FROM metrics m
  {PRICED_TOKENS}
  {PRICED_MODELS}
  WHERE m.dt >= date_format(date_trunc('month', current_date) - INTERVAL '1' DAY, '%Y-%m-%d')
    AND m.metric_name IN ('{TOKEN_METRIC}', '{COST_METRIC}')
    AND date_trunc('month', {local}) = date_trunc('month', {now})
  GROUP BY 1
),
effective AS (
  SELECT
    u.*,
    CASE WHEN pu.scope IS NOT NULL THEN 'user ' || pu.name
         WHEN pt.scope IS NOT NULL THEN 'team ' || pt.name
         WHEN pd.scope IS NOT NULL THEN 'department ' || pd.name
         ELSE 'default' END AS policy,
  {effective}
  FROM usage u
  LEFT JOIN policies pu ON pu.scope = 'user' AND pu.name = u.user_key
  LEFT JOIN policies pt ON pt.scope = 'team' AND pt.name = u.team
  LEFT JOIN policies pd ON pd.scope = 'department' AND pd.name = u.department
  LEFT JOIN policies pf ON pf.scope = 'default'
)
SELECT
  e.user_key, e.policy,
  e.month_tokens, e.monthly_tokens, {percent("month_tokens", "monthly_tokens")} AS monthly_tokens_pct,
  round(e.month_usd, 4) AS month_usd, e.monthly_usd, {percent("month_usd", "monthly_usd")} AS monthly_usd_pct,
  e.day_tokens, e.daily_tokens, {percent("day_tokens", "daily_tokens")} AS daily_tokens_pct,
  round(e.day_usd, 4) AS day_usd, e.daily_usd, {percent("day_usd", "daily_usd")} AS daily_usd_pct
FROM effective e
ORDER BY greatest(
  COALESCE({percent("month_tokens", "monthly_tokens")}, 0), COALESCE({percent("month_usd", "monthly_usd")}, 0),
  COALESCE({percent("day_tokens", "daily_tokens")}, 0), COALESCE({percent("day_usd", "daily_usd")}, 0)
) DESC, e.user_key
""",
    )


def named_queries(settings: QuerySettings) -> dict[str, NamedQuery]:
    """Query name -> description and SQL. Table names are bare: each named query runs in the Glue database."""
    top = settings.top_users
    zone = settings.time_zone.replace("'", "")
    queries = {
        "top_users_by_tokens": NamedQuery(
            f"Last 30 days: the {top} users with the most tokens, by token type",
            f"""
SELECT
  {user_column("m")} AS user_key,
  sum(m.value) AS total_tokens,
  sum(CASE WHEN m.type = 'input' THEN m.value ELSE 0 END) AS input_tokens,
  sum(CASE WHEN m.type = 'output' THEN m.value ELSE 0 END) AS output_tokens,
  sum(CASE WHEN m.type = 'cacheRead' THEN m.value ELSE 0 END) AS cache_read_tokens,
  sum(CASE WHEN m.type = 'cacheCreation' THEN m.value ELSE 0 END) AS cache_creation_tokens
FROM metrics m
WHERE m.{since(30)} AND m.metric_name = '{TOKEN_METRIC}'
GROUP BY 1
ORDER BY total_tokens DESC, 1
LIMIT {top}
""",
        ),
        "top_users_by_cost": NamedQuery(
            f"Last 30 days: the {top} users with the highest cost (tokens priced per model version and token type; "
            "for a model without a price, the cost Claude Code reported), beside the cost Claude Code reported; "
            "tokens of models without a price are counted apart",
            f"""
SELECT
  {user_column("m")} AS user_key,
  round(sum({COST}), 4) AS cost_usd,
  round(sum({PRICED_COST}), 4) AS priced_cost_usd,
  round({metric_sum(COST_METRIC)}, 4) AS reported_cost_usd,
  COALESCE({metric_sum(TOKEN_METRIC, "p.usd_per_million_tokens IS NULL")}, 0) AS unpriced_tokens
FROM metrics m
{PRICED_TOKENS}
{PRICED_MODELS}
WHERE m.{since(30)} AND m.metric_name IN ('{TOKEN_METRIC}', '{COST_METRIC}')
GROUP BY 1
ORDER BY cost_usd DESC, 1
LIMIT {top}
""",
        ),
        "tokens_by_model_and_type": NamedQuery(
            "Last 30 days: tokens per model version and token type, with each one's share of all tokens",
            f"""
SELECT
  COALESCE(m.model_version, m.model, 'unknown') AS model,
  m.type AS token_type,
  sum(m.value) AS tokens,
  round(100 * sum(m.value) / sum(sum(m.value)) OVER (), 2) AS share_pct
FROM metrics m
WHERE m.{since(30)} AND m.metric_name = '{TOKEN_METRIC}'
GROUP BY 1, 2
ORDER BY tokens DESC, 1, 2
""",
        ),
        "hourly_activity_pattern": NamedQuery(
            f"Last 30 days: API requests, active users and tokens by hour of day ({zone})",
            f"""
SELECT
  hour(e.event_time AT TIME ZONE '{zone}') AS hour_of_day,
  count(*) AS requests,
  count(DISTINCT e.user_key) AS active_users,
  sum(COALESCE(e.input_tokens, 0) + COALESCE(e.output_tokens, 0)
      + COALESCE(e.cache_read_tokens, 0) + COALESCE(e.cache_creation_tokens, 0)) AS tokens
FROM events e
WHERE e.{since(30)} AND e.event_name = 'api_request'
GROUP BY 1
ORDER BY 1
""",
        ),
        "usage_by_department": _usage_by("department", "department"),
        "usage_by_team": _usage_by("team_id", "team"),
        "usage_by_cost_center": _usage_by("cost_center", "cost center"),
        "session_analysis": NamedQuery(
            "Last 7 days per user: sessions, their average length, requests, prompts and errors per session",
            f"""
WITH sessions AS (
  SELECT
    e.session_id,
    max(e.user_key) AS user_key,
    min(e.event_time) AS started,
    max(e.event_time) AS ended,
    count_if(e.event_name = 'api_request') AS requests,
    count_if(e.event_name = 'user_prompt') AS prompts,
    count_if(e.event_name = 'api_error') AS errors,
    sum(e.cost_usd) AS reported_cost_usd
  FROM events e
  WHERE e.{since(7)} AND e.session_id IS NOT NULL
  GROUP BY 1
)
SELECT
  {user_column("s")} AS user_key,
  count(*) AS sessions,
  round(avg(date_diff('second', s.started, s.ended)) / 60, 1) AS avg_session_minutes,
  round(avg(s.requests), 1) AS avg_requests,
  round(avg(s.prompts), 1) AS avg_prompts,
  sum(s.errors) AS errors,
  round(sum(s.reported_cost_usd), 4) AS reported_cost_usd
FROM sessions s
GROUP BY 1
ORDER BY sessions DESC, 1
""",
        ),
        "cost_per_user_and_model": NamedQuery(
            "Last 30 days per user and model version: tokens and cost of each token type, priced from the prices "
            "table, and the total",
            f"""
SELECT
  {user_column("m")} AS user_key,
  COALESCE(m.model_version, m.model, 'unknown') AS model,
  sum(m.value) AS tokens,
  round(sum(CASE WHEN m.type = 'input' THEN {PRICED_COST} END), 4) AS input_usd,
  round(sum(CASE WHEN m.type = 'output' THEN {PRICED_COST} END), 4) AS output_usd,
  round(sum(CASE WHEN m.type = 'cacheRead' THEN {PRICED_COST} END), 4) AS cache_read_usd,
  round(sum(CASE WHEN m.type = 'cacheCreation' THEN {PRICED_COST} END), 4) AS cache_creation_usd,
  round(sum({PRICED_COST}), 4) AS priced_cost_usd,
  bool_and(p.usd_per_million_tokens IS NOT NULL) AS priced
FROM metrics m
{PRICED_TOKENS}
WHERE m.{since(30)} AND m.metric_name = '{TOKEN_METRIC}'
GROUP BY 1, 2
ORDER BY priced_cost_usd DESC NULLS LAST, 1, 2
""",
        ),
        "requests_per_minute_and_peak": NamedQuery(
            "Last 7 days per UTC day: API requests (api_request events, not token rows), average requests per "
            "active minute, and the peak minute",
            f"""
WITH per_minute AS (
  SELECT date_trunc('minute', e.event_time) AS minute, count(*) AS requests, count(DISTINCT e.user_key) AS users
  FROM events e
  WHERE e.{since(7)} AND e.event_name = 'api_request'
  GROUP BY 1
)
SELECT
  date_format(minute, '%Y-%m-%d') AS day,
  sum(requests) AS requests,
  count(*) AS active_minutes,
  round(sum(requests) / CAST(count(*) AS double), 2) AS avg_requests_per_active_minute,
  max(requests) AS peak_requests_per_minute,
  date_format(max_by(minute, requests), '%H:%i') AS peak_minute,
  max(users) AS peak_users_per_minute
FROM per_minute
GROUP BY 1
ORDER BY 1
""",
        ),
        "monthly_cost_per_user": NamedQuery(
            "This month and the two before (UTC months): tokens and cost per user, priced and reported cost beside it",
            f"""
SELECT
  date_format(m.event_time, '%Y-%m') AS month,
  {user_column("m")} AS user_key,
  {metric_sum(TOKEN_METRIC)} AS tokens,
  round(sum({COST}), 4) AS cost_usd,
  round(sum({PRICED_COST}), 4) AS priced_cost_usd,
  round({metric_sum(COST_METRIC)}, 4) AS reported_cost_usd
FROM metrics m
{PRICED_TOKENS}
{PRICED_MODELS}
WHERE m.{months_back(2)} AND m.metric_name IN ('{TOKEN_METRIC}', '{COST_METRIC}')
GROUP BY 1, 2
ORDER BY 1, cost_usd DESC NULLS LAST, 2
""",
        ),
        "quota_tracking": _quota_tracking(settings),
        "api_error_rate_by_model_and_status": NamedQuery(
            "Last 7 days: API errors per model version and status code, as a share of all attempts of the model",
            f"""
WITH attempts AS (
  SELECT
    COALESCE(e.model_version, e.model, 'unknown') AS model,
    count_if(e.event_name = 'api_request') AS requests,
    count_if(e.event_name = 'api_error') AS errors
  FROM events e
  WHERE e.{since(7)} AND e.event_name IN ('api_request', 'api_error')
  GROUP BY 1
),
by_status AS (
  SELECT COALESCE(e.model_version, e.model, 'unknown') AS model, COALESCE(e.status_code, 'none') AS status_code,
         count(*) AS errors
  FROM events e
  WHERE e.{since(7)} AND e.event_name = 'api_error'
  GROUP BY 1, 2
)
SELECT
  a.model,
  s.status_code,
  s.errors,
  a.requests + a.errors AS attempts,
  round(100 * s.errors / CAST(a.requests + a.errors AS double), 2) AS error_rate_pct,
  round(100 * a.errors / CAST(a.requests + a.errors AS double), 2) AS model_error_rate_pct
FROM attempts a
JOIN by_status s ON s.model = a.model
ORDER BY s.errors DESC, 1, 2
""",
        ),
        "tool_success_rate_and_duration": NamedQuery(
            "Last 7 days per tool: runs, success rate, average and longest duration (tool_result events)",
            f"""
SELECT
  e.tool_name,
  count(*) AS runs,
  count_if(e.success) AS succeeded,
  round(100 * count_if(e.success) / CAST(count(*) AS double), 2) AS success_rate_pct,
  round(avg(e.duration_ms), 1) AS avg_duration_ms,
  max(e.duration_ms) AS max_duration_ms
FROM events e
WHERE e.{since(7)} AND e.event_name = 'tool_result'
GROUP BY 1
ORDER BY runs DESC, 1
""",
        ),
        "code_acceptance_by_language": NamedQuery(
            "Last 30 days per language: code edits accepted and rejected, and the acceptance rate",
            f"""
SELECT
  COALESCE(m.language, 'unknown') AS language,
  {metric_sum("claude_code.code_edit_tool.decision", "m.decision = 'accept'")} AS accepted,
  {metric_sum("claude_code.code_edit_tool.decision", "m.decision = 'reject'")} AS rejected,
  round(100 * {metric_sum("claude_code.code_edit_tool.decision", "m.decision = 'accept'")}
        / {metric_sum("claude_code.code_edit_tool.decision")}, 2) AS acceptance_rate_pct
FROM metrics m
WHERE m.{since(30)} AND m.metric_name = 'claude_code.code_edit_tool.decision'
GROUP BY 1
ORDER BY accepted + rejected DESC, 1
""",
        ),
        "developer_activity": NamedQuery(
            "Last 30 days per user: sessions, active hours, lines added and removed, commits, pull requests, edits",
            f"""
SELECT
  {user_column("m")} AS user_key,
  {metric_sum("claude_code.session.count")} AS sessions,
  round({metric_sum("claude_code.active_time.total")} / 3600, 2) AS active_hours,
  {metric_sum("claude_code.lines_of_code.count", "m.type = 'added'")} AS lines_added,
  {metric_sum("claude_code.lines_of_code.count", "m.type = 'removed'")} AS lines_removed,
  {metric_sum("claude_code.commit.count")} AS commits,
  {metric_sum("claude_code.pull_request.count")} AS pull_requests,
  {metric_sum("claude_code.code_edit_tool.decision", "m.decision = 'accept'")} AS edits_accepted,
  {metric_sum("claude_code.code_edit_tool.decision", "m.decision = 'reject'")} AS edits_rejected
FROM metrics m
WHERE m.{since(30)}
GROUP BY 1
ORDER BY active_hours DESC NULLS LAST, 1
""",
        ),
        "data_quality": NamedQuery(
            "Last 7 days per table and day: rows, rows without user.email, rows without any user attribution "
            "and their share, token rows of models without a price, client versions seen",
            f"""
WITH metric_rows AS (
  SELECT m.dt, m.user_email, m.user_key, m.app_version,
         CASE WHEN m.metric_name = '{TOKEN_METRIC}' AND p.model_version IS NULL THEN 1 ELSE 0 END AS unpriced
  FROM metrics m
  LEFT JOIN (SELECT DISTINCT model_version FROM prices) p ON p.model_version = m.model_version
  WHERE m.{since(7)}
),
all_rows AS (
  SELECT 'metrics' AS source, dt, user_email, user_key, app_version, unpriced FROM metric_rows
  UNION ALL
  SELECT 'events' AS source, e.dt, e.user_email, e.user_key, e.app_version, 0 AS unpriced
  FROM events e
  WHERE e.{since(7)}
)
SELECT
  source,
  dt AS day,
  count(*) AS row_count,
  count_if(user_email IS NULL) AS rows_without_email,
  count_if(user_key IS NULL) AS rows_without_user,
  round(100 * count_if(user_key IS NULL) / CAST(count(*) AS double), 2) AS without_user_pct,
  sum(unpriced) AS unpriced_token_rows,
  count(DISTINCT app_version) AS client_versions
FROM all_rows
GROUP BY 1, 2
ORDER BY 2, 1
""",
        ),
        "client_versions": NamedQuery(
            "Last 30 days: Claude Code versions in use, with their users and when each was last seen",
            f"""
SELECT
  COALESCE(e.app_version, 'unknown') AS app_version,
  count(DISTINCT e.user_key) AS users,
  count(*) AS events,
  max(e.event_time) AS last_seen
FROM events e
WHERE e.{since(30)}
GROUP BY 1
ORDER BY users DESC, 1
""",
        ),
    }
    return {name: NamedQuery(query.description, query.sql.strip() + "\n") for name, query in queries.items()}
