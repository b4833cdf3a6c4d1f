"""Dashboard widget function: every custom widget of the dashboard, chosen by its `widget` parameter, rendered as
HTML from the aggregator's rollups.

Each widget reads the dashboard's time range (the zoomed range when there is one), as days of the reporting time
zone, at most MAX_DAYS of them, and reads only the rollup items of its own type for those days: the number of
items it reads depends on the days, models, groups and the `limit` parameter, never on the number of users.
Without data it says so, and says why there may be none yet.

Widgets: active_users, cost, top_users (measure: tokens | cost_usd, period: day | month, limit), groups
(dimension: department | team | cost_center), api_errors, api_latency, tool_results, data_quality, quota (the
quota monitor's list of users near or over their limits).

Whatever goes wrong (parameters of the wrong type or value, a time range that starts after it ends or lies
outside any sensible time, a missing table, throttling, a read that does not finish in time, a bug), the widget
shows a short escaped HTML message saying what is wrong and what to check, and logs it with the request id;
CloudWatch never shows a raw Lambda error.

Environment: TABLE_NAME, TIME_ZONE.
"""

from __future__ import annotations

import html
import json
import math
import os
import re
import time
import traceback
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import boto3
from botocore.config import Config
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectTimeoutError,
    EndpointConnectionError,
    ReadTimeoutError,
)

from lambda_src.common import dynamodb
from lambda_src.common import rollups as keys
from lambda_src.common.clock import Instant, wall_clock_now
from lambda_src.common.dynamodb import plain_item
from lambda_src.common.logs import log
from lambda_src.common.quota_policies import LIMIT_LABELS

MAX_DAYS = 93
BUCKET_CHART_MAX_DAYS = 2
TOP_LIMIT_MAX = keys.TOP_USERS_KEPT
GROUP_ROWS_MAX = 50
FURTHEST_AHEAD = timedelta(days=366)
"""A time range may end at most this far after now; beyond that it is a mistake, not a plan."""
RESERVE_SECONDS = 2.0
"""Reads stop when less than this is left of the invocation, so the widget can still say why."""
ECHO_CHARS = 60
CLIENT_CONFIG = Config(connect_timeout=3, read_timeout=5, retries={"max_attempts": 3, "mode": "standard"})
"""A DynamoDB call that hangs fails in seconds, well inside the function's 30 s, instead of at botocore's 60 s."""
THROTTLING_CODES = frozenset(
    {"ProvisionedThroughputExceededException", "ThrottlingException", "RequestLimitExceeded", "Throttling"}
)
ACCESS_CODES = frozenset({"AccessDeniedException", "UnrecognizedClientException", "KMSAccessDeniedException"})
STYLE = (
    "<style>table{width:100%;border-collapse:collapse}th,td{padding:2px 6px;text-align:right}"
    "th:first-child,td:first-child{text-align:left}.bar{background:#3b82f6;height:10px;display:inline-block}"
    ".muted{color:#888}.big{font-size:1.6em;font-weight:600}</style>"
)


class BadRequestError(ValueError):
    """The widget's parameters or the dashboard's time range cannot be used; `problem` and `check` are shown."""

    def __init__(self, problem: str, check: str) -> None:
        super().__init__(problem)
        self.problem = problem
        self.check = check


class OutOfTimeError(TimeoutError):
    """Too little of the invocation is left to finish reading; stop and say so rather than be killed."""


def shown(value: Any) -> str:
    """A value a caller sent, as JSON text, cut short: echoed in messages (escaped when rendered)."""
    try:
        text = json.dumps(value, default=repr, ensure_ascii=True, allow_nan=True)
    except (TypeError, ValueError, RecursionError):
        text = repr(type(value))
    return text if len(text) <= ECHO_CHARS else text[: ECHO_CHARS - 1] + "…"


RANGE_CHECK = "Pick a time range in the dashboard's time picker (or zoom) that starts before it ends."


def instant(value: Any, what: str, now: datetime) -> datetime | None:
    """A time of the dashboard's range (epoch milliseconds), or None when it is not given."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise BadRequestError(
            f"the time range's {what} is {shown(value)}, not a time in epoch milliseconds", RANGE_CHECK
        )
    latest = now + FURTHEST_AHEAD
    finite = not isinstance(value, float) or math.isfinite(value)  # math.isfinite overflows on huge ints
    if not finite or value < 0 or value > latest.timestamp() * 1000:
        when = shown(value)
        if finite and 0 <= value < 253_402_300_800_000:  # a datetime can say when it is
            when = datetime.fromtimestamp(value / 1000, UTC).strftime("%Y-%m-%d %H:%M UTC")
        raise BadRequestError(
            f"the time range's {what} ({when}) is not a usable time: it must lie between 1970 and {latest:%Y-%m-%d}",
            "Pick a time range in the dashboard's time picker (or zoom) between 1970 and a year from now.",
        )
    return datetime.fromtimestamp(value / 1000, UTC)


def mapping(value: Any, what: str, check: str) -> Mapping[str, Any]:
    """An object of the request; an absent one is empty, any other type is a bad request."""
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise BadRequestError(f"{what} is {shown(value)}, not an object", check)
    return value


@dataclass(frozen=True)
class Range:
    days: list[str]
    """Days of the reporting time zone the range touches, oldest first (at most MAX_DAYS)."""
    start: datetime
    end: datetime
    truncated: bool


def time_range(context: Mapping[str, Any], zone: ZoneInfo, now: datetime) -> Range:
    """The dashboard's (zoomed) time range; three hours up to now when the widget is called without one.

    Raises BadRequestError for a range of the wrong type, outside 1970 to a year from now, or starting after it ends."""
    check = "Invoke the function from a CloudWatch custom widget, which sends the dashboard's time range."
    selected = mapping(context.get("timeRange"), "widgetContext.timeRange", check)
    zoom = mapping(selected.get("zoom"), "widgetContext.timeRange.zoom", check)
    end = instant(zoom.get("end") if zoom.get("end") is not None else selected.get("end"), "end", now) or now
    start = instant(zoom.get("start") if zoom.get("start") is not None else selected.get("start"), "start", now)
    start = start or end - timedelta(hours=3)
    if start > end:
        raise BadRequestError(
            f"the time range starts ({start:%Y-%m-%d %H:%M} UTC) after it ends ({end:%Y-%m-%d %H:%M} UTC)", RANGE_CHECK
        )
    first, last = start.astimezone(zone).date(), end.astimezone(zone).date()
    truncated = (last - first).days + 1 > MAX_DAYS
    if truncated:
        first = last - timedelta(days=MAX_DAYS - 1)
    return Range(keys.days_between(first.isoformat(), last.isoformat()), start, end, truncated)


class RollupReader:
    """Reads of the rollup table, counted (the benchmark and the tests check the count).

    `remaining` gives the seconds left of the invocation (Lambda's context knows them): no read starts, and no
    backoff pause begins, when fewer than RESERVE_SECONDS would be left, so a throttled or slow table ends in a
    message instead of the function's timeout."""

    def __init__(
        self,
        client: Any,
        table: str,
        *,
        remaining: Callable[[], float] | None = None,
        pause: Callable[[float], None] = time.sleep,
    ) -> None:
        self.client = client
        self.table = table
        self.items_read = 0
        self.remaining = remaining
        self.sleep = pause

    def in_time(self, needed: float = 0.0) -> None:
        if self.remaining is not None and self.remaining() - needed < RESERVE_SECONDS:
            raise OutOfTimeError(f"less than {RESERVE_SECONDS:g} s of the invocation left for reads of {self.table}")

    def pause(self, seconds: float) -> None:
        self.in_time(seconds)
        self.sleep(seconds)

    def query(self, pk: str, prefix: str | None = None, between: tuple[str, str] | None = None) -> list[dict[str, Any]]:
        condition = "pk = :pk"
        values: dict[str, Any] = {":pk": {"S": pk}}
        if prefix is not None:
            condition += " AND begins_with(sk, :prefix)"
            values[":prefix"] = {"S": prefix}
        elif between is not None:
            condition += " AND sk BETWEEN :first AND :last"
            values[":first"], values[":last"] = {"S": between[0]}, {"S": between[1]}
        items: list[dict[str, Any]] = []
        request: dict[str, Any] = {
            "TableName": self.table,
            "KeyConditionExpression": condition,
            "ExpressionAttributeValues": values,
        }
        while True:
            self.in_time()
            response = self.client.query(**request)
            items.extend(plain_item(item) for item in response.get("Items", []))
            if "LastEvaluatedKey" not in response:
                break
            request["ExclusiveStartKey"] = response["LastEvaluatedKey"]
        self.items_read += len(items)
        return items

    def get(self, pk: str, sk: str) -> dict[str, Any] | None:
        self.in_time()
        item = self.client.get_item(TableName=self.table, Key={"pk": {"S": pk}, "sk": {"S": sk}}).get("Item")
        self.items_read += 1 if item else 0
        return plain_item(item) if item else None

    def get_many(self, wanted: Sequence[tuple[str, str]]) -> dict[tuple[str, str], dict[str, Any]]:
        self.in_time()
        found = {
            (item["pk"]["S"], item["sk"]["S"]): plain_item(item)
            for item in dynamodb.batch_get(self.client, self.table, wanted, pause=self.pause)
        }
        self.items_read += len(found)
        return found


def add_up(items: Iterable[Mapping[str, Any]], names: Sequence[str] | None = None) -> dict[str, float]:
    totals: dict[str, float] = defaultdict(float)
    for item in items:
        for name, value in item.items():
            if isinstance(value, float) and name not in ("expires_at", "v") and (names is None or name in names):
                totals[name] += value
    return totals


# Rendering -----------------------------------------------------------------------------------------------


def esc(value: Any) -> str:
    return html.escape(str(value))


def fmt(value: float, unit: str = "") -> str:
    if unit == "$":
        return f"${value:,.2f}"
    if abs(value) >= 1_000_000:
        return f"{value / 1_000_000:,.2f}M"
    if abs(value) >= 10_000:
        return f"{value / 1000:,.1f}k"
    return f"{value:,.0f}" if float(value).is_integer() else f"{value:,.2f}"


def bar(value: float, largest: float) -> str:
    width = 0 if largest <= 0 else max(1, round(100 * value / largest))
    return f'<span class="bar" style="width:{width}px"></span>'


def message(problem: str, check: str) -> str:
    """Why a widget cannot be shown, and what to check, in the dashboard's own style."""
    return f'{STYLE}<p>Cannot show this widget: {esc(problem)}.</p><p class="muted">{esc(check)}</p>'


def choice(params: Mapping[str, Any], name: str, allowed: Iterable[str], default: str) -> str:
    """A parameter that takes one of a few words; absent (or null) means the default."""
    value = params.get(name)
    options = list(allowed)
    if value is None:
        return default
    if not isinstance(value, str) or value not in options:
        raise BadRequestError(f"the {name} parameter is {shown(value)}", f"Set {name} to one of {', '.join(options)}.")
    return value


def whole_number(params: Mapping[str, Any], name: str, default: int, low: int, high: int) -> int:
    """A count parameter: a whole number (or its digits as text), held between low and high."""
    value = params.get(name)
    if value is None:
        return default
    if isinstance(value, str) and re.fullmatch(r"\s*-?\d{1,9}\s*", value):
        value = int(value)
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or (isinstance(value, float) and not value.is_integer())  # also NaN and infinities
    ):
        raise BadRequestError(
            f"the {name} parameter is {shown(value)}, not a whole number",
            f"Set {name} to a number from {low} to {high}.",
        )
    return max(low, min(int(value), high))


def table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    head = "".join(f"<th>{esc(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{cell}</td>" for cell in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def no_data(what: str, selected: Range) -> str:
    return (
        f'{STYLE}<p class="muted">No data yet: no {esc(what)} between {selected.days[0]} and {selected.days[-1]}. '
        "Rollups appear within a minute or two of Claude Code sending telemetry to the collector; check the "
        "pipeline health widgets if developers are using it.</p>"
    )


def note(selected: Range) -> str:
    days = f"{selected.days[0]} to {selected.days[-1]}" if len(selected.days) > 1 else selected.days[0]
    extra = f" (the last {MAX_DAYS} days of the range)" if selected.truncated else ""
    return f'<p class="muted">{esc(days)}{extra}</p>'


def percent(part: float, whole: float) -> str:
    return "n/a" if whole <= 0 else f"{100 * part / whole:.1f}%"


# Widgets -------------------------------------------------------------------------------------------------


def active_users(reader: RollupReader, selected: Range, params: Mapping[str, Any], zone: ZoneInfo) -> str:
    per_day = {
        day: (reader.get(keys.active_pk(day), keys.ACTIVE_DAY_SK) or {}).get("users", 0.0) for day in selected.days
    }
    if not any(per_day.values()):
        return no_data("active users", selected)
    if len(selected.days) <= BUCKET_CHART_MAX_DAYS:
        first, last = (
            keys.bucket_name(keys.bucket_start(selected.start.timestamp())),
            keys.bucket_name(keys.bucket_start(selected.end.timestamp())),
        )
        points = [
            (item["sk"], item.get("users", 0.0))
            for day in selected.days
            for item in reader.query(keys.active_pk(day), between=(first, last))
        ]
        label = "Distinct users per 5 minutes (UTC)"
    else:
        points = list(per_day.items())
        label = "Distinct users per day"
    largest = max((users for _, users in points), default=0.0)
    rows = [[esc(when), fmt(users), bar(users, largest)] for when, users in points]
    latest_day = selected.days[-1]
    headline = (
        f'<p><span class="big">{fmt(per_day[latest_day])}</span> distinct users on {esc(latest_day)}; '
        f"busiest day in range: {fmt(max(per_day.values()))}</p>"
    )
    return STYLE + headline + f"<h4>{label}</h4>" + table(["When", "Users", ""], rows) + note(selected)


def period_days(end_day: str) -> dict[str, list[str]]:
    today = date.fromisoformat(end_day)
    week_start = today - timedelta(days=today.weekday())
    return {
        "today": [end_day],
        "this week": keys.days_between(week_start.isoformat(), end_day),
        "this month": keys.days_between(today.replace(day=1).isoformat(), end_day),
    }


def cost(reader: RollupReader, selected: Range, params: Mapping[str, Any], zone: ZoneInfo) -> str:
    """Today, this week and this month up to the range's last day, and cost per model over the range."""
    periods = period_days(selected.days[-1])
    wanted_days = set(selected.days) | {day for days in periods.values() for day in days}
    by_day_model: dict[tuple[str, str], dict[str, Any]] = {}
    for month in sorted({keys.month_of(day) for day in wanted_days}):
        for item in reader.query(keys.day_pk(month)):
            day, model = item["sk"].split("#", 1)
            if day in wanted_days:
                by_day_model[(day, model)] = item
    if not by_day_model:
        return no_data("usage", selected)
    summary_rows = []
    for label, days in periods.items():
        totals = add_up(item for (day, _), item in by_day_model.items() if day in days)
        summary_rows.append(
            [
                esc(label),
                f'<span class="big">{fmt(totals["cost_usd"], "$")}</span>',
                fmt(totals["client_cost_usd"], "$"),
                fmt(totals["tokens"]),
                fmt(totals["unpriced_tokens"]),
            ]
        )
    models: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    for (day, model), item in by_day_model.items():
        if day in selected.days and model != keys.NO_VALUE:
            for name, value in add_up([item]).items():
                models[model][name] += value
    largest = max((m["cost_usd"] for m in models.values()), default=0.0)
    model_rows = [
        [
            esc(model),
            fmt(m["cost_usd"], "$"),
            bar(m["cost_usd"], largest),
            fmt(m["client_cost_usd"], "$"),
            fmt(m["tokens"]),
        ]
        for model, m in sorted(models.items(), key=lambda pair: -pair[1]["cost_usd"])
    ]
    return (
        STYLE
        + table(["Period", "Estimated cost", "Client-reported", "Tokens", "Tokens without a price"], summary_rows)
        + "<h4>By model, selected range</h4>"
        + table(["Model", "Estimated cost", "", "Client-reported", "Tokens"], model_rows)
        + '<p class="muted">Estimated from the price table per model version and token type; the client-reported '
        "cost is Claude Code's own estimate.</p>"
    )


USER_COLUMNS = (
    ("tokens", "Tokens", ""),
    ("cost_usd", "Cost", "$"),
    ("sessions", "Sessions", ""),
    ("lines_added", "Lines +", ""),
    ("lines_removed", "Lines -", ""),
    ("commits", "Commits", ""),
    ("pull_requests", "PRs", ""),
    ("active_seconds", "Active h", "h"),
    ("edits_accepted", "Edits accepted", ""),
    ("edits_rejected", "Edits rejected", ""),
)


def top_users(reader: RollupReader, selected: Range, params: Mapping[str, Any], zone: ZoneInfo) -> str:
    measure = choice(params, "measure", ("tokens", "cost_usd"), "tokens")
    monthly = choice(params, "period", ("day", "month"), "day") == "month"
    limit = whole_number(params, "limit", 10, 1, TOP_LIMIT_MAX)
    last_day = selected.days[-1]
    period = keys.month_of(last_day) if monthly else last_day
    top = reader.get(keys.top_pk(period), keys.TOP_SK)
    entries = json.loads(top["entries"]) if top else []
    if not entries:
        return no_data("usage by user", selected)
    ranked = sorted(entries, key=lambda entry: (-entry[measure], entry["user"]))[:limit]
    sort_key = keys.user_month_sk(period) if monthly else keys.user_day_sk(period)
    details = reader.get_many([(keys.user_pk(entry["user"]), sort_key) for entry in ranked])
    largest = max(entry[measure] for entry in ranked)
    rows = []
    for entry in ranked:
        item = details.get((keys.user_pk(entry["user"]), sort_key), {})
        cells = [
            esc(entry["user"])
            + ("" if entry["source"] == "user.email" else f' <span class="muted">({esc(entry["source"])})</span>')
        ]
        for name, _, unit in USER_COLUMNS:
            value = float(item.get(name, entry.get(name, 0.0)))
            cells.append(fmt(value / 3600 if unit == "h" else value, "$" if unit == "$" else ""))
        cells.append(bar(entry[measure], largest))
        rows.append(cells)
    what = "cost" if measure == "cost_usd" else "tokens"
    title = f"Top {len(ranked)} by {what}, {'month' if monthly else 'day'} {period}"
    return STYLE + f"<p>{esc(title)}</p>" + table(["User", *[label for _, label, _ in USER_COLUMNS], ""], rows)


def groups(reader: RollupReader, selected: Range, params: Mapping[str, Any], zone: ZoneInfo) -> str:
    dimension = choice(params, "dimension", keys.GROUP_DIMENSIONS, "team")
    totals: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    for day in selected.days:
        for item in reader.query(keys.group_pk(day), prefix=f"{dimension}#"):
            name = item["sk"].split("#", 1)[1]
            for counter, value in add_up([item]).items():
                totals[name][counter] += value
    if not totals:
        return no_data(f"usage by {dimension}", selected)
    ranked = sorted(totals.items(), key=lambda pair: -pair[1]["cost_usd"])[:GROUP_ROWS_MAX]
    largest = max(t["cost_usd"] for _, t in ranked)
    rows = [
        [
            esc(name),
            fmt(t["cost_usd"], "$"),
            bar(t["cost_usd"], largest),
            fmt(t["tokens"]),
            fmt(t["users"]),
            fmt(t["sessions"]),
            fmt(t["lines_added"]),
            fmt(t["commits"]),
            fmt(t["pull_requests"]),
        ]
        for name, t in ranked
    ]
    users_note = '<p class="muted">Users: distinct users per day, added up over the days of the range.</p>'
    return (
        STYLE
        + table([dimension, "Cost", "", "Tokens", "User-days", "Sessions", "Lines +", "Commits", "PRs"], rows)
        + users_note
        + note(selected)
    )


def events_of(reader: RollupReader, selected: Range, kind: str) -> dict[str, dict[str, float]]:
    totals: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    for day in selected.days:
        for item in reader.query(keys.events_pk(day), prefix=f"{kind}#"):
            for counter, value in add_up([item]).items():
                totals[item["sk"].split("#", 1)[1]][counter] += value
    return totals


def api_errors(reader: RollupReader, selected: Range, params: Mapping[str, Any], zone: ZoneInfo) -> str:
    errors = events_of(reader, selected, "api_error")
    requests = events_of(reader, selected, "api_request")
    if not errors and not requests:
        return no_data("API requests", selected)
    if not errors:
        total = sum(r["requests"] for r in requests.values())
        return f"{STYLE}<p>No API errors in {fmt(total)} requests.</p>{note(selected)}"
    rows = []
    for key, counts in sorted(errors.items(), key=lambda pair: -pair[1]["errors"]):
        model, status = key.rsplit("#", 1)
        made = requests.get(model, {}).get("requests", 0.0)
        rows.append(
            [esc(model), esc(status), fmt(counts["errors"]), percent(counts["errors"], made + counts["errors"])]
        )
    return STYLE + table(["Model", "Status", "Errors", "Share of calls"], rows) + note(selected)


def quantile_bound(counts: Mapping[str, float], share: float) -> str:
    total = sum(counts.get(name, 0.0) for name, _ in keys.latency_bins())
    if total <= 0:
        return "n/a"
    running = 0.0
    for name, bound in keys.latency_bins():
        running += counts.get(name, 0.0)
        if running >= share * total:
            return f"> {keys.LATENCY_BOUNDS_MS[-1] / 1000:g} s" if bound == float("inf") else f"≤ {bound / 1000:g} s"
    return "n/a"


def api_latency(reader: RollupReader, selected: Range, params: Mapping[str, Any], zone: ZoneInfo) -> str:
    requests = events_of(reader, selected, "api_request")
    if not requests:
        return no_data("API requests", selected)
    rows = [
        [
            esc(model),
            fmt(r["requests"]),
            "n/a" if not r["timed"] else f"{r['duration_ms'] / r['timed'] / 1000:.2f} s",
            quantile_bound(r, 0.5),
            quantile_bound(r, 0.95),
        ]
        for model, r in sorted(requests.items(), key=lambda pair: -pair[1]["requests"])
    ]
    return STYLE + table(["Model", "Requests", "Mean", "p50", "p95"], rows) + note(selected)


def tool_results(reader: RollupReader, selected: Range, params: Mapping[str, Any], zone: ZoneInfo) -> str:
    tools = events_of(reader, selected, "tool_result")
    if not tools:
        return no_data("tool results", selected)
    rows = []
    for tool, t in sorted(tools.items(), key=lambda pair: -(pair[1]["succeeded"] + pair[1]["failed"])):
        known = t["succeeded"] + t["failed"]
        rows.append(
            [esc(tool), fmt(known + t["unknown_outcome"]), percent(t["succeeded"], known), bar(t["succeeded"], known)]
        )
    return STYLE + table(["Tool", "Runs", "Success rate", ""], rows) + note(selected)


def data_quality(reader: RollupReader, selected: Range, params: Mapping[str, Any], zone: ZoneInfo) -> str:
    aspects: dict[str, dict[str, dict[str, float]]] = defaultdict(lambda: defaultdict(lambda: defaultdict(float)))
    for day in selected.days:
        for item in reader.query(keys.quality_pk(day)):
            aspect, value = item["sk"].split("#", 1)
            for counter, amount in add_up([item]).items():
                aspects[aspect][value][counter] += amount
    if not aspects:
        return no_data("telemetry", selected)
    sources = aspects["source"]
    points = sum(s["points"] for s in sources.values())
    tokens = sum(s["tokens"] for s in sources.values())
    events = sum(s["events"] for s in sources.values())
    source_rows = [
        [esc(source), percent(s["points"], points), percent(s["tokens"], tokens), percent(s["events"], events)]
        for source, s in sorted(sources.items())
    ]
    version_rows = [
        [esc(version), fmt(v["points"]), fmt(v["events"])]
        for version, v in sorted(aspects["version"].items(), key=lambda pair: -(pair[1]["points"] + pair[1]["events"]))[
            :20
        ]
    ]
    problems = [
        [esc(f"unknown metric {name}"), fmt(v["points"])] for name, v in sorted(aspects["unknown_metric"].items())
    ] + [
        [esc(f"malformed ({name})"), fmt(v["log_events"] + v["deliveries"])]
        for name, v in sorted(aspects["malformed"].items())
    ]
    unpriced = [
        [esc(model), fmt(v["unpriced_tokens"]), fmt(v["unpriced_cost_usd"], "$")]
        for model, v in sorted(aspects["unpriced"].items(), key=lambda pair: -pair[1]["unpriced_tokens"])
    ]
    other_events = [[esc(name), fmt(v["events"])] for name, v in sorted(aspects["unknown_event"].items())]
    unattributed = sources.get("none", {})
    headline = (
        f'<p><span class="big">{percent(unattributed.get("tokens", 0.0), tokens)}</span> of tokens without a user '
        "(no user.email, user.id or user.account_uuid)</p>"
    )
    return (
        STYLE
        + headline
        + "<h4>Attributed by</h4>"
        + table(["Attribute", "Data points", "Tokens", "Events"], source_rows)
        + "<h4>Client versions seen</h4>"
        + table(["app.version", "Data points", "Events"], version_rows)
        + ("<h4>Not counted</h4>" + table(["What", "Count"], problems) if problems else "")
        + (
            "<h4>Models without a price: costed at the client's figure</h4>"
            + table(["Model", "Tokens", "Client cost"], unpriced)
            if unpriced
            else ""
        )
        + (
            "<h4>Events kept in the lake, not charted</h4>" + table(["Event", "Count"], other_events)
            if other_events
            else ""
        )
        + note(selected)
    )


def quota(reader: RollupReader, selected: Range, params: Mapping[str, Any], zone: ZoneInfo) -> str:
    """Users at or above the first alert threshold of their quota, most first, as of the quota monitor's latest
    run on the range's last day."""
    day = selected.days[-1]
    near = reader.get(keys.quota_pk(day), keys.QUOTA_NEAR_SK)
    if near is None:
        return (
            f'{STYLE}<p class="muted">No data yet: the quota monitor has not recorded a run for {esc(day)}. It writes '
            "this list on every scheduled run once the Quota component is enabled; if it is, check the monitor's "
            "errors.</p>"
        )
    entries = json.loads(near["entries"])
    headline = (
        f'<p><span class="big">{fmt(near.get("users_over", 0.0))}</span> over quota, '
        f'<span class="big">{fmt(near.get("users_near", 0.0))}</span> at or above their first alert threshold, '
        f"of {fmt(near.get('users_checked', 0.0))} users with usage; updated {esc(near.get('updated_at', ''))}</p>"
    )
    if not entries:
        return STYLE + headline + '<p class="muted">Nobody is near a quota limit.</p>'
    rows = []
    for entry in entries:
        usd = entry["limit"].endswith("_usd")
        unit = "$" if usd else ""
        rows.append(
            [
                esc(entry["user"]),
                esc(LIMIT_LABELS.get(entry["limit"], entry["limit"])),
                fmt(float(entry["used"]), unit),
                fmt(float(entry["quota"]), unit),
                f"{float(entry['percent']):.0f}%",
                bar(min(float(entry["percent"]), 150.0), 150.0),
                f"{float(entry['projected_percent']):.0f}%",
                esc(entry["policy"]),
            ]
        )
    shown = "" if len(entries) >= near.get("users_near", 0.0) else f'<p class="muted">The first {len(entries)}.</p>'
    return (
        STYLE + headline + table(["User", "Limit", "Used", "Quota", "Percent", "", "Projected", "Policy"], rows) + shown
    )


Widget = Callable[[RollupReader, Range, Mapping[str, Any], ZoneInfo], str]
WIDGETS: dict[str, Widget] = {
    "active_users": active_users,
    "cost": cost,
    "top_users": top_users,
    "groups": groups,
    "api_errors": api_errors,
    "api_latency": api_latency,
    "tool_results": tool_results,
    "data_quality": data_quality,
    "quota": quota,
}

DESCRIPTION = (
    "## Claude Code usage widgets\n\nOne function for every custom widget of the dashboard. Parameters:\n\n"
    "- `widget`: " + ", ".join(f"`{name}`" for name in WIDGETS) + "\n"
    "- `top_users`: `measure` (`tokens` or `cost_usd`), `period` (`day` or `month`), `limit` (1-25)\n"
    "- `groups`: `dimension` (`department`, `team` or `cost_center`)\n\n"
    f"Every widget follows the dashboard's time range (at most {MAX_DAYS} days) in the reporting time zone."
)


REQUEST_CHECK = "Invoke the function from a CloudWatch custom widget, with the widget's parameters in params."


def parse_request(event: Any) -> tuple[str, Mapping[str, Any], Mapping[str, Any]]:
    """(widget name, its parameters, the widget context) of a request, or BadRequestError."""
    request = mapping(event, "the request", REQUEST_CHECK)
    context = mapping(request.get("widgetContext"), "widgetContext", REQUEST_CHECK)
    params = mapping(context.get("params"), "widgetContext.params", REQUEST_CHECK) or request
    name = params.get("widget")
    if not isinstance(name, str) or name not in WIDGETS:
        problem = "no widget parameter" if name is None else f"unknown widget {shown(name)}"
        raise BadRequestError(problem, f"Set the widget parameter to one of {', '.join(WIDGETS)}.")
    return name, params, context


def requested_widget(event: Any) -> str | None:
    """The widget a request names, for the log, or None when it names none."""
    try:
        return parse_request(event)[0]
    except BadRequestError:
        return None


def explain(error: BaseException, table: str, request_id: str | None) -> tuple[str, str, str]:
    """(log level, what is wrong, what to check) for anything that stopped a widget."""
    in_log = "the widget function's log" + (f" (request id {request_id})" if request_id else "")
    throttled = (
        f"DynamoDB is throttling reads of the rollup table {table}",
        "Refresh in a minute. If it lasts, check the rollup-read-throttles alarm and the table's metrics.",
    )
    if isinstance(error, BadRequestError):
        return "WARNING", error.problem, error.check
    if isinstance(error, ClientError):
        code = str(error.response.get("Error", {}).get("Code", "unknown"))
        if code == "ResourceNotFoundException":
            return (
                "ERROR",
                f"the rollup table {table} does not exist",
                "Check the function's TABLE_NAME, and that the Dashboard component is deployed in this account "
                "and region.",
            )
        if code in THROTTLING_CODES:
            return ("ERROR", *throttled)
        if code in ACCESS_CODES:
            return (
                "ERROR",
                f"the widget function may not read the rollup table {table} ({code})",
                "Check the function's role: it needs dynamodb:Query, GetItem and BatchGetItem on the table (and its "
                "key, if encrypted with one).",
            )
        return "ERROR", f"DynamoDB refused to read the rollup table {table} ({code})", f"Check {in_log}."
    if isinstance(error, dynamodb.UnprocessedKeysError):
        return "ERROR", throttled[0] + f" (keys still unread after {dynamodb.ATTEMPTS} attempts)", throttled[1]
    if isinstance(error, OutOfTimeError | ReadTimeoutError | ConnectTimeoutError | EndpointConnectionError):
        return (
            "ERROR",
            f"DynamoDB did not answer in time for the rollup table {table}",
            "Refresh in a minute, or pick a shorter time range. If it lasts, check DynamoDB in this region and "
            f"{in_log}.",
        )
    if isinstance(error, BotoCoreError):
        return "ERROR", f"the widget function could not read DynamoDB ({type(error).__name__})", f"Check {in_log}."
    return "ERROR", f"the widget failed ({type(error).__name__})", f"Check {in_log}."


def render(
    event: Mapping[str, Any],
    reader: RollupReader,
    zone: ZoneInfo,
    now: datetime,
    *,
    request_id: str | None = None,
) -> str | dict[str, str]:
    """The widget's HTML (or the function's description). Never raises: whatever stops the widget is shown as a
    short message saying what is wrong and what to check, and logged."""
    try:
        if isinstance(event, Mapping) and event.get("describe"):
            return {"markdown": DESCRIPTION}
        name, params, context = parse_request(event)
        return WIDGETS[name](reader, time_range(context, zone, now), params, zone)
    except Exception as error:  # noqa: BLE001  every failure becomes a readable widget, never a raw Lambda error
        level, problem, check = explain(error, reader.table, request_id)
        log(
            level,
            "widget not rendered",
            widget=requested_widget(event),
            problem=problem,
            error=type(error).__name__,
            detail=str(error)[:500],
            trace=traceback.format_exc(limit=8) if level == "ERROR" else None,
            items_read=reader.items_read,
            request_id=request_id,
        )
        return message(problem, check)


def remaining_seconds(context: Any) -> Callable[[], float] | None:
    """Seconds left of this invocation, from Lambda's context object (None outside Lambda)."""
    left = getattr(context, "get_remaining_time_in_millis", None)
    return (lambda: left() / 1000) if callable(left) else None


def handler(event: Mapping[str, Any], context: Any, now: Instant = wall_clock_now) -> str | dict[str, str]:
    request_id = getattr(context, "aws_request_id", None)
    request_id = request_id if isinstance(request_id, str) else None
    try:
        table_name = os.environ["TABLE_NAME"]
        zone = ZoneInfo(os.environ.get("TIME_ZONE", "UTC"))
    except (KeyError, ValueError) as error:  # ZoneInfoNotFoundError is a KeyError
        log("ERROR", "widget not rendered", problem="environment", error=repr(error), request_id=request_id)
        return message(
            f"the function's environment is incomplete ({type(error).__name__}: {error})",
            "Check the function's TABLE_NAME and TIME_ZONE (an IANA zone); the Dashboard component sets both.",
        )
    client = boto3.client("dynamodb", config=CLIENT_CONFIG)
    reader = RollupReader(client, table_name, remaining=remaining_seconds(context))
    output = render(event, reader, zone, now(), request_id=request_id)
    log("INFO", "rendered", widget=requested_widget(event), items_read=reader.items_read, request_id=request_id)
    return output
