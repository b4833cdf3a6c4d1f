"""Dashboard widget function: every custom widget of the dashboard, chosen by its `widget` parameter, rendered as
HTML with server-side SVG charts (charts.py) from the aggregator's rollups.

Each widget reads the dashboard's time range (the zoomed range when there is one), as days of the reporting time
zone, at most MAX_DAYS of them, and reads only the rollup items of its own type for those days: the number of
items it reads depends on the days, buckets, models, groups and the `limit` parameter, never on the number of
users. Time charts have 5- or 15-minute or hourly columns for a range of up to BUCKET_CHART_MAX_DAYS days (from
the 5-minute totals) and a column a day beyond (from the day totals), in the reporting time zone, which they name.
Without data a widget says so, and says why there may be none yet.

Each widget lays itself out for the pixels CloudWatch says it has (`widgetContext.width` and `height`): the
columns of a table that fit, in order of importance, the rows that fit, and what is left over as a count; nothing
scrolls sideways. Colours follow `widgetContext.theme` (light or dark); text and axes use currentColor.

Widgets: active_users, cost, tokens (split: type | model), top_users (measure: tokens | cost_usd, period: day |
month, limit; a click on a user opens everything kept of them), groups (dimension: department | team |
cost_center, view: list | days), api_errors, api_latency, tool_results, data_quality, quota (the quota monitor's
list of users near or over their limits), user (user: one user over the range, the drill-down by parameter).

Whatever goes wrong (parameters of the wrong type or value, a time range that starts after it ends or lies
outside any sensible time, a missing table, throttling, a read that does not finish in time, a bug), the widget
shows a short escaped HTML message saying what is wrong and what to check, and logs it with the request id;
CloudWatch never shows a raw Lambda error.

Environment: TABLE_NAME, TIME_ZONE.
"""

from __future__ import annotations

import json
import math
import os
import re
import time
import traceback
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from botocore.config import Config
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectTimeoutError,
    EndpointConnectionError,
    ReadTimeoutError,
)

from lambda_src.common import aws, dynamodb
from lambda_src.common import rollups as keys
from lambda_src.common.clock import Instant, wall_clock_now
from lambda_src.common.dynamodb import plain_item
from lambda_src.common.logs import log
from lambda_src.common.quota_policies import LIMIT_LABELS, SCOPES
from lambda_src.dashboard_widget import charts
from lambda_src.dashboard_widget.charts import esc

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
STYLE = charts.css()


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

CANVAS_DEFAULT = (600.0, 320.0)
"""Pixels to lay out for when the request does not say (an older console, a test, the Lambda console)."""
CANVAS_LIMITS = (160.0, 4000.0)


@dataclass(frozen=True)
class Canvas:
    """The pixels the widget may fill (`widgetContext.width` and `height`, less a small margin) and the
    console's theme (`widgetContext.theme`: light or dark)."""

    width: float
    height: float
    theme: str = "light"


def canvas_of(context: Mapping[str, Any]) -> Canvas:
    """The widget's box from the context CloudWatch sends; the default for a size that is missing or absurd (it
    comes from the console, not from a person, so it never stops the widget)."""

    def pixels(name: str, default: float) -> float:
        value = context.get(name)
        if isinstance(value, bool) or not isinstance(value, int | float):
            return default
        if isinstance(value, int):  # a huge int does not convert to float
            value = max(int(CANVAS_LIMITS[0]), min(value, int(CANVAS_LIMITS[1])))
        return max(CANVAS_LIMITS[0], min(float(value), CANVAS_LIMITS[1])) if math.isfinite(value) else default

    theme = "dark" if context.get("theme") == "dark" else "light"
    return Canvas(
        pixels("width", CANVAS_DEFAULT[0]) - charts.SAFETY_PX,
        pixels("height", CANVAS_DEFAULT[1]) - charts.SAFETY_PX,
        theme,
    )


@dataclass(frozen=True)
class Ask:
    """Everything a widget renders from: the reads, the range, its parameters, the time zone and its box."""

    reader: RollupReader
    selected: Range
    params: Mapping[str, Any]
    zone: ZoneInfo
    canvas: Canvas = Canvas(*CANVAS_DEFAULT)


def fmt(value: float, unit: str = "") -> str:
    if unit == "$":
        return f"${value:,.2f}"
    if abs(value) >= 1_000_000:
        return f"{value / 1_000_000:,.2f}M"
    if abs(value) >= 10_000:
        return f"{value / 1000:,.1f}k"
    return f"{value:,.0f}" if float(value).is_integer() else f"{value:,.2f}"


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


def text_param(params: Mapping[str, Any], name: str, check: str) -> str:
    """A parameter that names something (a user): non-empty text of at most a DynamoDB key part."""
    value = params.get(name)
    if not isinstance(value, str) or not value.strip():
        raise BadRequestError(f"the {name} parameter is {shown(value)}, not a name", check)
    return value.strip()


def percent(part: float, whole: float) -> str:
    return "n/a" if whole <= 0 else f"{100 * part / whole:.1f}%"


def page(ask: Ask, body: str) -> str:
    """A widget's whole output: the stylesheet, then its body in a box of the widget's width and theme."""
    return f'{STYLE}<div class="cw {ask.canvas.theme}" style="width:{ask.canvas.width:.0f}px">{body}</div>'


def one_line(markup: str, full: str, muted: bool = True) -> str:
    """A line that never wraps: what does not fit ends in an ellipsis, the whole text is its title."""
    return f'<div class="one{" muted" if muted else ""}" title="{esc(full)}">{markup}</div>'


def no_data(what: str, selected: Range) -> str:
    return (
        f'{STYLE}<p class="muted">No data yet: no {esc(what)} between {selected.days[0]} and {selected.days[-1]}. '
        "Rollups appear within a minute or two of Claude Code sending telemetry to the collector; check the "
        "pipeline health widgets if developers are using it.</p>"
    )


# Time, in the reporting time zone ----------------------------------------------------------------------------


def zone_name(zone: ZoneInfo, at: datetime) -> str:
    """The zone as people read it: its IANA name and the abbreviation in force (Europe/Berlin, CET)."""
    key = getattr(zone, "key", str(zone))
    abbreviation = at.astimezone(zone).tzname() or ""
    return key if abbreviation in (key, "") else f"{key}, {abbreviation}"


def day_label(day: str, year: bool = False) -> str:
    value = date.fromisoformat(day)
    return f"{value:%a} {value.day} {value:%b}" + (f" {value.year}" if year else "")


def range_label(selected: Range) -> str:
    first, last = selected.days[0], selected.days[-1]
    text = day_label(last, year=True) if first == last else f"{day_label(first)} – {day_label(last, year=True)}"
    return text + (f" (the last {MAX_DAYS} days of the range)" if selected.truncated else "")


def bucket_epoch(name: str) -> int:
    """The start of a 5-minute bucket from its name (UTC, `2026-11-23T12:05Z`)."""
    return int(datetime.strptime(name[:17], "%Y-%m-%dT%H:%MZ").replace(tzinfo=UTC).timestamp())


@dataclass(frozen=True)
class Timeline:
    """The columns of a time chart over the range: days of the reporting zone, or slots of `step` seconds that
    start on the zone's wall clock (5 or 15 minutes, or hours)."""

    slots: list[charts.Slot]
    starts: list[int]
    step: int | None
    """Seconds per slot; None for days."""
    days: list[str]
    zone_label: str

    def index(self, epoch: float, day: str) -> int | None:
        if self.step is None:
            return self.days.index(day) if day in self.days else None
        if not self.starts or epoch < self.starts[0]:
            return None
        found = int((epoch - self.starts[0]) // self.step)
        return found if found < len(self.starts) else None

    @property
    def unit(self) -> str:
        if self.step is None:
            return "day"
        return "hour" if self.step == 3600 else f"{self.step // 60} minutes"


def timeline(selected: Range, zone: ZoneInfo, step: int | None = None) -> Timeline:
    """Days for a range of more than BUCKET_CHART_MAX_DAYS days; else hours, or 15 or 5 minutes for a range
    of at most 12 or 3 hours (`step` forces a size: active users are counted per 5 minutes only)."""
    label = zone_name(zone, selected.end)
    if step is None and len(selected.days) > BUCKET_CHART_MAX_DAYS:
        return Timeline(day_slots(selected), [], None, list(selected.days), label)
    span = (selected.end - selected.start).total_seconds()
    size = step or (300 if span <= 3 * 3600 else 900 if span <= 12 * 3600 else 3600)
    local = selected.start.astimezone(zone)
    minute = local.minute - local.minute % (size // 60) if size < 3600 else 0
    first = local.replace(minute=minute, second=0, microsecond=0)
    start, end = int(first.timestamp()), selected.end.timestamp()
    slots: list[charts.Slot] = []
    starts: list[int] = []
    while (start < end or not starts) and len(starts) < 2 * 24 * 12 + 24:
        at = datetime.fromtimestamp(start, zone)
        until = datetime.fromtimestamp(start + size, zone)
        text = f"{at:%a} {at.day} {at:%b} {at:%H:%M}–{until:%H:%M} {at.tzname()}"
        midnight = at.hour == 0 and at.minute == 0
        tick = f"{at:%a} {at.day}" if midnight else (f"{at:%H:%M}" if at.minute % 15 == 0 else None)
        slots.append(charts.Slot(text, tick=tick, rank=_time_rank(at)))
        starts.append(start)
        start += size
    return Timeline(slots, starts, size, list(selected.days), label)


def _time_rank(at: datetime) -> int:
    """Midnight first, then 6-, 3-, 1-hourly, half and quarter hours."""
    if at.minute:
        return 4 if at.minute == 30 else 5
    return 0 if at.hour == 0 else 1 if at.hour % 6 == 0 else 2 if at.hour % 3 == 0 else 3


def _day_rank(day: str) -> int:
    """The first of a month first, then Mondays, then every day."""
    value = date.fromisoformat(day)
    return 0 if value.day == 1 else 1 if value.weekday() == 0 else 2


def day_slots(selected: Range) -> list[charts.Slot]:
    """One slot a day of the range: the day as its label, ticks and their priority for the axis."""
    return [
        charts.Slot(day_label(day, year=True), tick=_day_tick(day, len(selected.days)), rank=_day_rank(day))
        for day in selected.days
    ]


def _day_tick(day: str, days: int) -> str:
    value = date.fromisoformat(day)
    return f"{value:%a} {value.day}" if days <= 10 else f"{value.day} {value:%b}"


# Series from the rollups -----------------------------------------------------------------------------------------

SERIES_MAX = 6
"""Series of a stacked chart: the largest five, and the rest together as one grey series."""
TOKEN_TYPE_LABELS = {"input": "input", "output": "output", "cacheRead": "cache read", "cacheCreation": "cache write"}


def stacked(values: Mapping[str, list[float]], limit: int = SERIES_MAX, rest: str = "other") -> list[charts.Series]:
    """Series largest first, at most `limit`: the smallest ones add up into one grey `rest` series."""
    ranked = sorted(values.items(), key=lambda pair: (-sum(pair[1]), pair[0]))
    kept = ranked if len(ranked) <= limit else ranked[: limit - 1]
    series = [
        charts.Series(name, list(points), index if index < charts.OTHER else index + 1)
        for index, (name, points) in enumerate(kept)
    ]
    if len(kept) < len(ranked):
        length = len(ranked[0][1])
        summed = [sum(points[i] for _, points in ranked[len(kept) :]) for i in range(length)]
        series.append(charts.Series(f"{len(ranked) - len(kept)} {rest}", summed, charts.OTHER))
    return series


def model_name(model: str) -> str:
    return "no model" if model == keys.NO_VALUE else model


def usage_over_time(ask: Ask, line: Timeline, measure: str, split: str) -> dict[str, list[float]]:
    """cost_usd or tokens per slot, by model or by token type: from the 5-minute totals for a range of hours,
    from the day totals by model for days. Both are items per bucket or day, never per user."""
    series: dict[str, list[float]] = defaultdict(lambda: [0.0] * len(line.slots))
    if line.step is None:
        for month in sorted({keys.month_of(day) for day in line.days}):
            for item in ask.reader.query(keys.day_pk(month)):
                day, model = item["sk"].split("#", 1)
                index = line.index(0, day)
                if index is None:
                    continue
                if split == "type":
                    for token_type, attribute in keys.TOKEN_ATTRIBUTES.items():
                        series[TOKEN_TYPE_LABELS.get(token_type, token_type)][index] += item.get(attribute, 0.0)
                else:
                    series[model_name(model)][index] += item.get(measure, 0.0)
        return dict(series)
    first = keys.bucket_name(keys.bucket_start(line.starts[0]))
    last = keys.bucket_name(keys.bucket_start(line.starts[-1] + line.step))
    metrics = ["token.usage", "cost.usage"] if measure == "cost_usd" else ["token.usage"]
    for metric in metrics:
        for day in line.days:
            for item in ask.reader.query(keys.total_pk(metric, day), between=(first, last)):
                bucket, token_type, model = item["sk"].split("#", 2)
                index = line.index(bucket_epoch(bucket), day)
                if index is None:
                    continue
                name = TOKEN_TYPE_LABELS.get(token_type, token_type) if split == "type" else model_name(model)
                series[name][index] += item.get("cost_usd" if measure == "cost_usd" else "value", 0.0)
    return dict(series)


# Layout helpers ------------------------------------------------------------------------------------------------


def kpis(items: Sequence[tuple[str, str]], width: float) -> tuple[str, float]:
    """Headline numbers side by side (big value, small caption), wrapped to the width; (markup, height)."""
    widths = [max(len(big) * 12.5, len(small) * 6.4) + 18 for big, small in items]
    lines, used = 1, 0.0
    for w in widths:
        if used and used + w > width:
            lines, used = lines + 1, 0.0
        used += w
    cells = "".join(
        f'<div class="kpi" style="max-width:{width:.0f}px" title="{esc(small)}"><span class="big">{esc(big)}</span>'
        f"<small>{esc(small)}</small></div>"
        for big, small in items
    )
    return f'<div class="kpis">{cells}</div>', lines * 40.0 + 4


@dataclass
class Grid:
    """Table columns chosen for a width: the fixed ones that fit, in order of priority, and the flexible ones
    (names) sharing the rest, each at least its minimum."""

    width: float
    columns: list[charts.Column] = field(default_factory=list)
    full: bool = False
    """A column did not fit: the later (less important) ones are not added either, so the order is the priority."""

    def fixed_px(self) -> float:
        return sum(c.px for c in self.columns if c.px is not None)

    def widen(self, index: int, flexible_max: float) -> None:
        """Give the fixed column at `index` what the flexible ones would have beyond `flexible_max` pixels each."""
        flexible = [c for c in self.columns if c.px is None]
        spare = self.width - self.fixed_px() - flexible_max * len(flexible)
        column = self.columns[index]
        if spare > 0 and column.px is not None:
            column.px += spare

    def need(self, column: charts.Column) -> None:
        """A column the widget cannot do without: always shown, however narrow (it squeezes the flexible ones)."""
        self.columns.append(column)

    def add(self, column: charts.Column, flexible_min: float) -> bool:
        """Add a fixed column if the flexible ones keep `flexible_min` pixels; False when it does not fit, or when
        an earlier one did not."""
        if self.full or (column.px is not None and self.fixed_px() + column.px + flexible_min > self.width):
            self.full = True
            return False
        self.columns.append(column)
        return True


def rows_that_fit(height: float, reserved: float) -> int:
    """Table rows (besides the header) that fit below `reserved` pixels of other content."""
    return max(1, int((height - reserved - charts.ROW_PX) // charts.ROW_PX))


def more_line(shown: int, total: int, what: str) -> str:
    return "" if shown >= total else one_line(f"and {total - shown} more {esc(what)}", f"{total - shown} more {what}")


# Widgets -------------------------------------------------------------------------------------------------


def active_users(ask: Ask) -> str:
    selected, zone, canvas = ask.selected, ask.zone, ask.canvas
    per_day = {
        day: (ask.reader.get(keys.active_pk(day), keys.ACTIVE_DAY_SK) or {}).get("users", 0.0) for day in selected.days
    }
    if not any(per_day.values()):
        return no_data("active users", selected)
    latest = selected.days[-1]
    busiest = max(selected.days, key=lambda day: (per_day[day], day))
    headline = [(fmt(per_day[latest]), f"distinct users on {day_label(latest)}")]
    if len(selected.days) <= BUCKET_CHART_MAX_DAYS:
        line = timeline(selected, zone, step=keys.BUCKET_SECONDS)
        first, last = keys.bucket_name(line.starts[0]), keys.bucket_name(line.starts[-1])
        values = [0.0] * len(line.slots)
        for day in selected.days:
            for item in ask.reader.query(keys.active_pk(day), between=(first, last)):
                index = line.index(bucket_epoch(item["sk"]), day)
                if index is not None:
                    values[index] += item.get("users", 0.0)
        peak = max(range(len(values)), key=lambda i: (values[i], -i))
        peak_at = datetime.fromtimestamp(line.starts[peak], zone)
        headline.append((fmt(values[peak]), f"most at once (5 minutes from {peak_at:%a} {peak_at:%H:%M})"))
        caption = f"Distinct users per 5 minutes · times in {line.zone_label}"
    else:
        line = timeline(selected, zone)
        values = [per_day[day] for day in selected.days]
        working = [v for v in values if v > 0]
        headline.append((fmt(per_day[busiest]), f"busiest day ({day_label(busiest)})"))
        headline.append((f"{sum(working) / len(working):.1f}", "a day, on days with use"))
        caption = f"Distinct users per day · days in {line.zone_label}"
    top, top_height = kpis(headline, canvas.width)
    chart_height = canvas.height - top_height - charts.LINE_PX
    chart = charts.time_chart(
        line.slots,
        [charts.Series("users", values, 0)],
        canvas.width,
        chart_height,
        area=len(values) > 72,
        what="distinct users",
        centred=line.step is None,
    )
    full = f"{caption} · {range_label(selected)}"
    return page(ask, top + chart + one_line(esc(full), full))


def period_days(end_day: str) -> dict[str, list[str]]:
    today = date.fromisoformat(end_day)
    week_start = today - timedelta(days=today.weekday())
    return {
        "today": [end_day],
        "this week": keys.days_between(week_start.isoformat(), end_day),
        "this month": keys.days_between(today.replace(day=1).isoformat(), end_day),
    }


def chart_block(ask: Ask, line: Timeline, series: list[charts.Series], unit: str, height: float, what: str) -> str:
    """A stacked time chart with its legend (each series' total over the range) below it."""
    entries = [charts.Entry(s.name, charts.compact(sum(s.values), unit), s.colour) for s in series]
    legend_rows = 1 if height < 200 else 2
    legend_height = charts.legend_lines(entries, ask.canvas.width, legend_rows) * charts.LINE_PX
    chart = charts.time_chart(
        line.slots,
        series,
        ask.canvas.width,
        height - legend_height - 4,
        unit=unit,
        what=what,
        centred=line.step is None,
    )
    return chart + charts.legend(entries, ask.canvas.width, legend_rows)


def cost(ask: Ask) -> str:
    """Today, this week and this month up to the range's last day; the range's cost over time by model."""
    selected, canvas = ask.selected, ask.canvas
    periods = period_days(selected.days[-1])
    wanted_days = set(selected.days) | {day for days in periods.values() for day in days}
    by_day_model: dict[tuple[str, str], dict[str, Any]] = {}
    for month in sorted({keys.month_of(day) for day in wanted_days}):
        for item in ask.reader.query(keys.day_pk(month)):
            day, model = item["sk"].split("#", 1)
            if day in wanted_days:
                by_day_model[(day, model)] = item
    if not by_day_model:
        return no_data("usage", selected)
    headline = []
    for label, days in periods.items():
        totals = add_up(item for (day, _), item in by_day_model.items() if day in days)
        headline.append(
            (fmt(totals["cost_usd"], "$"), f"{label} · client-reported {fmt(totals['client_cost_usd'], '$')}")
        )
    top, top_height = kpis(headline, canvas.width)
    line = timeline(selected, ask.zone)
    if line.step is None:
        values: dict[str, list[float]] = defaultdict(lambda: [0.0] * len(line.slots))
        for (day, model), item in by_day_model.items():
            index = line.index(0, day)
            if index is not None and item.get("cost_usd", 0.0):
                values[model_name(model)][index] += item["cost_usd"]
        over_time = dict(values)
    else:
        over_time = usage_over_time(ask, line, "cost_usd", "model")
    unpriced = sum(item.get("unpriced_tokens", 0.0) for (day, _), item in by_day_model.items() if day in selected.days)
    caption = f"Estimated cost per {line.unit} by model, from the price table · times in {line.zone_label}"
    if unpriced:
        caption += f" · {fmt(unpriced)} tokens without a price, at the client's cost"
    full = f"{caption} · {range_label(selected)}"
    height = canvas.height - top_height - charts.LINE_PX
    series = stacked({name: points for name, points in over_time.items() if sum(points) > 0})
    if not series:
        return page(ask, top + f'<p class="muted">No cost in {esc(range_label(selected))}.</p>')
    return page(ask, top + chart_block(ask, line, series, "$", height, "") + one_line(esc(full), full))


def tokens(ask: Ask) -> str:
    """Tokens over the range by type (or by model, `split`), in hours or days of the reporting zone."""
    split = choice(ask.params, "split", ("type", "model"), "type")
    selected, canvas = ask.selected, ask.canvas
    line = timeline(selected, ask.zone)
    over_time = {name: points for name, points in usage_over_time(ask, line, "tokens", split).items() if sum(points)}
    if not over_time:
        return no_data("tokens", selected)
    total = sum(sum(points) for points in over_time.values())
    read = sum(over_time.get("cache read", []))
    fresh = sum(over_time.get("input", [])) + sum(over_time.get("cache write", []))
    headline = [(fmt(total), "tokens in the range")]
    if split == "type":
        headline.append((percent(read, read + fresh), "of input served from the cache"))
        headline.append((fmt(sum(over_time.get("output", []))), "output tokens"))
    top, top_height = kpis(headline, canvas.width)
    if split == "type":
        order = [label for label in TOKEN_TYPE_LABELS.values() if label in over_time]
        series = [charts.Series(name, over_time[name], index) for index, name in enumerate(order)]
    else:
        series = stacked(over_time)
    full = f"Tokens per {line.unit} by {split} · times in {line.zone_label} · {range_label(selected)}"
    chart = chart_block(ask, line, series, "", canvas.height - top_height - charts.LINE_PX, "tokens")
    return page(ask, top + chart + one_line(esc(full), full))


USER_COLUMNS = (
    ("tokens", "Tokens", ""),
    ("cost_usd", "Cost", "$"),
    ("sessions", "Sessions", ""),
    ("lines_added", "Lines added", ""),
    ("lines_removed", "Lines removed", ""),
    ("commits", "Commits", ""),
    ("pull_requests", "Pull requests", ""),
    ("active_seconds", "Active hours", "h"),
    ("edits_accepted", "Edits accepted", ""),
    ("edits_rejected", "Edits rejected", ""),
)


def user_value(item: Mapping[str, Any], name: str, unit: str) -> str:
    value = float(item.get(name, 0.0))
    return fmt(value / 3600 if unit == "h" else value, "$" if unit == "$" else "")


def hourly_activity(buckets: Iterable[float], zone: ZoneInfo) -> list[float]:
    """Minutes active per hour of the reporting zone's day, from the 5-minute buckets of a user's day item."""
    minutes = [0.0] * 24
    for bucket in buckets:
        minutes[datetime.fromtimestamp(bucket, zone).hour] += keys.BUCKET_SECONDS / 60
    return minutes


def user_detail(user: str, item: Mapping[str, Any], activity: str, period_label: str, theme: str) -> str:
    """Everything the aggregator keeps of a user in a period: shown in a popup when the user is clicked."""
    labels = " · ".join(
        esc(f"{name.replace('_', ' ')} {item[name]}") for name in keys.GROUP_DIMENSIONS if item.get(name)
    )
    rows = "".join(
        f'<tr><td class="l">{esc(label)}</td><td>{user_value(item, name, unit)}</td></tr>'
        for name, label, unit in USER_COLUMNS
    )
    return (
        f'<cwdb-action action="html" display="popup"><div class="cw {theme}"><p><b>{esc(user)}</b></p>'
        f'<p class="muted">{esc(period_label)}{" · " + labels if labels else ""}</p>{activity}'
        f'<table class="t" style="width:320px"><tbody>{rows}</tbody></table></div></cwdb-action>'
    )


def hour_window(rows: Iterable[Sequence[float]], least: int = 8) -> range:
    """The hours of the day in which anyone of the rows was active, at least `least` of them: the columns of
    the activity sparklines, the same for every row so that they compare."""
    active = [hour for row in rows for hour, minutes in enumerate(row) if minutes > 0]
    first, last = (min(active), max(active)) if active else (9, 17)
    while last - first + 1 < least:
        first, last = (first - 1, last) if first > 0 and (last == 23 or (last - first) % 2) else (first, last + 1)
    return range(first, last + 1)


def top_users(ask: Ask) -> str:
    """The top list of the day or month: the columns that fit the width, the rows that fit the height; a click on
    a user shows everything the rollups keep of them in a popup."""
    params, selected, canvas, zone = ask.params, ask.selected, ask.canvas, ask.zone
    measure = choice(params, "measure", ("tokens", "cost_usd"), "tokens")
    monthly = choice(params, "period", ("day", "month"), "day") == "month"
    limit = whole_number(params, "limit", 10, 1, TOP_LIMIT_MAX)
    last_day = selected.days[-1]
    period = keys.month_of(last_day) if monthly else last_day
    top = ask.reader.get(keys.top_pk(period), keys.TOP_SK)
    entries = json.loads(top["entries"]) if top else []
    if not entries:
        return no_data("usage by user", selected)
    ranked = sorted(entries, key=lambda entry: (-entry[measure], entry["user"]))[:limit]
    shown_rows = ranked[: rows_that_fit(canvas.height, 2 * charts.LINE_PX)]
    sort_key = keys.user_month_sk(period) if monthly else keys.user_day_sk(period)
    details = ask.reader.get_many([(keys.user_pk(entry["user"]), sort_key) for entry in shown_rows])
    items = [{**entry, **details.get((keys.user_pk(entry["user"]), sort_key), {})} for entry in shown_rows]
    unit = "$" if measure == "cost_usd" else ""
    measure_label, other, other_label, other_unit = (
        ("Cost", "tokens", "Tokens", "") if measure == "cost_usd" else ("Tokens", "cost_usd", "Cost", "$")
    )
    month_days = keys.days_between(f"{period}-01", last_day) if monthly else []
    hourly = [hourly_activity(item.get("buckets", ()), zone) for item in items]
    window = hour_window(hourly)
    spark_header = f"{measure_label} per day" if monthly else f"Active {window[0]:02d}–{window[-1] + 1:02d} h"
    grid = Grid(canvas.width)
    name_min = 170.0
    grid.need(charts.Column("#", 26))
    grid.need(charts.Column("User", None, left=True))
    grid.need(charts.Column("", max(60.0, min(canvas.width * 0.18, 170.0)), left=True))
    grid.need(charts.Column(measure_label, 64))
    optional = [
        (other, charts.Column(other_label, 64)),
        ("team", charts.Column("Team", 104, left=True)),
        ("activity", charts.Column(spark_header, 104)),
        ("sessions", charts.Column("Sessions", 62)),
        ("active_seconds", charts.Column("Active h", 62)),
        ("lines_added", charts.Column("Lines +", 62)),
        ("commits", charts.Column("Commits", 62)),
        ("pull_requests", charts.Column("PRs", 40)),
    ]
    extra = [(name, column) for name, column in optional if grid.add(column, name_min)]
    grid.widen(2, 340.0)
    daily: dict[str, dict[str, float]] = {}
    if monthly:
        for entry in shown_rows:  # each user's day items of the month: one query each, at most 31 items
            found = ask.reader.query(
                keys.user_pk(entry["user"]), between=(keys.user_day_sk(month_days[0]), keys.user_day_sk(last_day))
            )
            daily[entry["user"]] = {item["sk"].removeprefix("DAY#"): item.get(measure, 0.0) for item in found}
    largest = max(entry[measure] for entry in shown_rows)
    when = f"month {period}" if monthly else day_label(period, year=True)
    for position, (entry, item, hours) in enumerate(zip(shown_rows, items, hourly, strict=True), start=1):
        user = entry["user"]
        if monthly:
            values = [daily.get(user, {}).get(day, 0.0) for day in month_days]
            labels = [f"{day_label(d)}: {fmt(v, unit)}" for d, v in zip(month_days, values, strict=True)]
        else:
            values = [hours[hour] for hour in window]
            labels = [f"{hour:02d}:00–{hour + 1:02d}:00: {hours[hour]:.0f} min active" for hour in window]
        source = entry.get("source", "")
        team = str(item.get("team", ""))
        popup = user_detail(user, item, charts.sparkline(values, labels, 300, 40, 0), when, canvas.theme)
        via = "" if source == "user.email" else f' <span class="muted">({esc(source)})</span>'
        cells = {
            "#": str(position),
            "User": f'<a class="u" title="{esc(user)}: click for details">{esc(user)}</a>{popup}{via}',
            "": charts.hbar([charts.Segment(entry[measure], 0, fmt(entry[measure], unit))], largest),
            measure_label: fmt(entry[measure], unit),
        }
        for column in grid.columns[:4]:
            column.cells.append(cells[column.header])
        for name, column in extra:
            if name == "activity":
                column.cells.append(charts.sparkline(values, labels, 96, 16, 0))
            elif name == "team":
                column.cells.append(f'<span title="{esc(team)}">{esc(team)}</span>')
            elif name == "active_seconds":
                column.cells.append(f"{float(item.get(name, 0.0)) / 3600:.1f}")
            else:
                column.cells.append(user_value(item, name, other_unit if name == other else ""))
    what = "cost" if measure == "cost_usd" else "tokens"
    caption = f"Top {len(ranked)} by {what}, {when}, days in {zone_name(zone, selected.end)} · click a user for details"
    return page(
        ask,
        charts.table(grid.columns, canvas.width)
        + more_line(len(shown_rows), len(ranked), "users: make the widget taller")
        + one_line(esc(caption), caption),
    )


GROUP_LABELS = {"department": "Department", "team": "Team", "cost_center": "Cost center"}


def group_totals(ask: Ask, dimension: str) -> tuple[dict[str, dict[str, float]], dict[str, list[float]]]:
    """Each group's totals over the range, and its cost per day."""
    totals: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    per_day: dict[str, list[float]] = defaultdict(lambda: [0.0] * len(ask.selected.days))
    for index, day in enumerate(ask.selected.days):
        for item in ask.reader.query(keys.group_pk(day), prefix=f"{dimension}#"):
            name = item["sk"].split("#", 1)[1]
            for counter, value in add_up([item]).items():
                totals[name][counter] += value
            per_day[name][index] += item.get("cost_usd", 0.0)
    return totals, per_day


def groups(ask: Ask) -> str:
    dimension = choice(ask.params, "dimension", keys.GROUP_DIMENSIONS, "team")
    view = choice(ask.params, "view", ("list", "days"), "list")
    selected, canvas = ask.selected, ask.canvas
    totals, per_day = group_totals(ask, dimension)
    if not totals:
        return no_data(f"usage by {dimension}", selected)
    label = GROUP_LABELS[dimension]
    zone_label = zone_name(ask.zone, selected.end)
    if view == "days":
        slots = day_slots(selected)
        series = stacked(
            {name: points for name, points in per_day.items() if sum(points)}, limit=8, rest=f"other {dimension}s"
        )
        adjusted = Timeline(slots, [], None, list(selected.days), zone_label)
        full = f"Estimated cost per day by {label.lower()} · days in {zone_label} · {range_label(selected)}"
        return page(
            ask, chart_block(ask, adjusted, series, "$", canvas.height - charts.LINE_PX, "") + one_line(esc(full), full)
        )
    ranked = sorted(totals.items(), key=lambda pair: (-pair[1]["cost_usd"], pair[0]))[:GROUP_ROWS_MAX]
    fit = rows_that_fit(canvas.height, 2 * charts.LINE_PX)
    shown_rows = ranked[:fit]
    whole = sum(t["cost_usd"] for t in totals.values())
    largest = max(t["cost_usd"] for _, t in shown_rows)
    grid = Grid(canvas.width)
    flexible = 90.0
    grid.need(charts.Column(label, None, left=True))
    grid.need(charts.Column("", max(50.0, min(canvas.width * 0.22, 200.0)), left=True))
    grid.need(charts.Column("Cost", 64))
    optional: list[tuple[str, charts.Column]] = [
        ("share", charts.Column("Share", 52)),
        ("tokens", charts.Column("Tokens", 60)),
        ("users", charts.Column("User-days", 70)),
    ]
    if len(selected.days) >= 3:
        optional.append(("trend", charts.Column("Cost per day", 88)))
    optional += [
        ("sessions", charts.Column("Sessions", 62)),
        ("lines_added", charts.Column("Lines +", 62)),
        ("commits", charts.Column("Commits", 62)),
        ("pull_requests", charts.Column("PRs", 44)),
    ]
    extra = [(name, column) for name, column in optional if grid.add(column, flexible)]
    for name, t in shown_rows:
        grid.columns[0].cells.append(f'<span title="{esc(name)}">{esc(name)}</span>')
        grid.columns[1].cells.append(charts.hbar([charts.Segment(t["cost_usd"], 0, fmt(t["cost_usd"], "$"))], largest))
        grid.columns[2].cells.append(fmt(t["cost_usd"], "$"))
        for key, column in extra:
            if key == "share":
                column.cells.append(percent(t["cost_usd"], whole))
            elif key == "trend":
                labels = [f"{day_label(d)}: {fmt(v, '$')}" for d, v in zip(selected.days, per_day[name], strict=True)]
                column.cells.append(charts.sparkline(per_day[name], labels, 80, 16, 0))
            else:
                column.cells.append(fmt(t[key]))
    more = ""
    if len(totals) > len(shown_rows):
        hidden = len(totals) - len(shown_rows)
        hidden_cost = whole - sum(t["cost_usd"] for _, t in shown_rows)
        more = one_line(f"and {hidden} more, {fmt(hidden_cost, '$')} together", f"{hidden} more {dimension}s")
    users_note = "User-days: distinct users per day, added up" if any(k == "users" for k, _ in extra) else ""
    caption = " · ".join(filter(None, [f"Days in {zone_label}", range_label(selected), users_note]))
    return page(ask, charts.table(grid.columns, canvas.width) + more + one_line(esc(caption), caption))


def events_by_day(reader: RollupReader, selected: Range, kind: str) -> list[dict[str, dict[str, float]]]:
    """The day totals of one event kind, per day of the range: what it is counted by -> counter -> value."""
    days: list[dict[str, dict[str, float]]] = []
    for day in selected.days:
        totals: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
        for item in reader.query(keys.events_pk(day), prefix=f"{kind}#"):
            for counter, value in add_up([item]).items():
                totals[item["sk"].split("#", 1)[1]][counter] += value
        days.append(totals)
    return days


def events_of(reader: RollupReader, selected: Range, kind: str) -> dict[str, dict[str, float]]:
    return summed(events_by_day(reader, selected, kind))


def summed(days: Sequence[Mapping[str, Mapping[str, float]]]) -> dict[str, dict[str, float]]:
    totals: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    for day in days:
        for name, counters in day.items():
            for counter, value in counters.items():
                totals[name][counter] += value
    return totals


STATUS_NAMES = {
    "400": "bad request",
    "401": "unauthorized",
    "403": "forbidden",
    "404": "not found",
    "408": "timeout",
    "413": "request too large",
    "429": "rate limited",
    "500": "server error",
    "502": "bad gateway",
    "503": "unavailable",
    "504": "gateway timeout",
    "529": "overloaded",
    keys.NO_VALUE: "no status",
}


def status_label(status: str) -> str:
    name = STATUS_NAMES.get(status)
    return status if name is None else (name if status == keys.NO_VALUE else f"{status} {name}")


def api_errors(ask: Ask) -> str:
    selected, canvas = ask.selected, ask.canvas
    errors_per_day = events_by_day(ask.reader, selected, "api_error")
    errors = summed(errors_per_day)
    requests = events_of(ask.reader, selected, "api_request")
    if not errors and not requests:
        return no_data("API requests", selected)
    made = sum(r["requests"] for r in requests.values())
    failed_calls = sum(e["errors"] for e in errors.values())
    headline = [
        (fmt(failed_calls), "API errors"),
        (percent(failed_calls, made + failed_calls), f"of {fmt(made + failed_calls)} calls"),
    ]
    top, top_height = kpis(headline, canvas.width)
    caption = f"{range_label(selected)} · days in {zone_name(ask.zone, selected.end)}"
    if not errors:
        return page(
            ask, top + f'<p class="muted">No API errors in {fmt(made)} requests.</p>' + one_line(esc(caption), caption)
        )
    rows = []
    for key, counts in errors.items():
        model, status = key.rsplit("#", 1)
        rows.append((model, status, counts["errors"], requests.get(model, {}).get("requests", 0.0)))
    rows.sort(key=lambda row: (-row[2], row[0], row[1]))
    statuses = sorted({row[1] for row in rows}, key=lambda s: -sum(r[2] for r in rows if r[1] == s))
    colour = {s: (charts.BAD, charts.WARN, 4, 5, 6, 8, 9)[i] if i < 7 else charts.OTHER for i, s in enumerate(statuses)}
    chart = ""
    if len(selected.days) > BUCKET_CHART_MAX_DAYS and canvas.height >= 300:  # errors over time: per day
        by_status = {
            status_label(status): [
                sum(c["errors"] for key, c in day.items() if key.rsplit("#", 1)[1] == status) for day in errors_per_day
            ]
            for status in statuses
        }
        series = [
            charts.Series(name, values, colour[status])
            for (name, values), status in zip(by_status.items(), statuses, strict=True)
        ]
        line = timeline(selected, ask.zone)
        chart = charts.time_chart(
            line.slots, series, canvas.width, min(140.0, canvas.height * 0.35), what="errors", centred=True
        )
        top_height += min(140.0, canvas.height * 0.35)
    fit = rows_that_fit(canvas.height, top_height + 2 * charts.LINE_PX)
    grid = Grid(canvas.width)
    grid.need(charts.Column("Model", None, left=True))
    grid.need(charts.Column("Status", 130, left=True))
    grid.need(charts.Column("", max(50.0, min(canvas.width * 0.2, 160.0)), left=True))
    grid.need(charts.Column("Errors", 56))
    share = grid.add(charts.Column("Of calls", 62), 110)
    largest = rows[0][2]
    for model, status, count, made_by_model in rows[:fit]:
        label = status_label(status)
        grid.columns[0].cells.append(f'<span title="{esc(model)}">{esc(model)}</span>')
        grid.columns[1].cells.append(f'<i class="sw s{colour[status]}"></i>{esc(label)}')
        grid.columns[2].cells.append(
            charts.hbar([charts.Segment(count, colour[status], f"{fmt(count)} {label}")], largest)
        )
        grid.columns[3].cells.append(fmt(count))
        if share:
            grid.columns[4].cells.append(percent(count, made_by_model + count))
    return page(
        ask,
        top
        + chart
        + charts.table(grid.columns, canvas.width)
        + more_line(fit, len(rows), "model and status pairs")
        + one_line(esc(caption), caption),
    )


def quantile_bound(counts: Mapping[str, float], share: float) -> str:
    total = sum(counts.get(name, 0.0) for name, _ in keys.latency_bins())
    if total <= 0:
        return "n/a"
    running = 0.0
    for name, bound in keys.latency_bins():
        running += counts.get(name, 0.0)
        if running >= share * total:
            return latency_bin_label(bound)
    return "n/a"


def latency_bin_label(bound: float) -> str:
    return f"> {keys.LATENCY_BOUNDS_MS[-1] / 1000:g} s" if bound == float("inf") else f"≤ {bound / 1000:g} s"


def api_latency(ask: Ask) -> str:
    selected, canvas = ask.selected, ask.canvas
    requests = events_of(ask.reader, selected, "api_request")
    if not requests:
        return no_data("API requests", selected)
    bins = keys.latency_bins()
    entries = [
        charts.Entry(latency_bin_label(bound), "", index, sequential=True) for index, (_, bound) in enumerate(bins)
    ]
    legend_rows = 3 if canvas.width < 480 else 2
    legend_height = charts.legend_lines(entries, canvas.width, legend_rows) * charts.LINE_PX
    ranked = sorted(requests.items(), key=lambda pair: (-pair[1]["requests"], pair[0]))
    fit = rows_that_fit(canvas.height, legend_height + 2 * charts.LINE_PX)
    grid = Grid(canvas.width)
    name_min = 130.0
    grid.need(charts.Column("Model", None, left=True))
    grid.need(charts.Column("Requests", 66))
    grid.need(charts.Column("p50", 56))
    grid.need(charts.Column("p95", 62))
    spread = grid.add(
        charts.Column("Share of requests by latency", max(80.0, min(canvas.width * 0.3, 260.0)), left=True), name_min
    )
    mean = grid.add(charts.Column("Mean", 60), name_min)
    for model, r in ranked[:fit]:
        timed = sum(r.get(name, 0.0) for name, _ in bins)
        grid.columns[0].cells.append(f'<span title="{esc(model)}">{esc(model)}</span>')
        grid.columns[1].cells.append(fmt(r["requests"]))
        grid.columns[2].cells.append(quantile_bound(r, 0.5))
        grid.columns[3].cells.append(quantile_bound(r, 0.95))
        segments = [
            charts.Segment(
                r.get(name, 0.0), index, f"{latency_bin_label(bound)}: {percent(r.get(name, 0.0), timed)}", True
            )
            for index, (name, bound) in enumerate(bins)
        ]
        if spread:
            grid.columns[4].cells.append(charts.hbar(segments, timed))
        if mean:
            grid.columns[5].cells.append("n/a" if not r["timed"] else f"{r['duration_ms'] / r['timed'] / 1000:.2f} s")
    caption = f"Percentiles are bin bounds of a fixed histogram · {range_label(selected)}"
    return page(
        ask,
        charts.table(grid.columns, canvas.width)
        + more_line(fit, len(ranked), "models")
        + charts.legend(entries, canvas.width, legend_rows)
        + one_line(esc(caption), caption),
    )


def tool_results(ask: Ask) -> str:
    selected, canvas = ask.selected, ask.canvas
    tools = events_of(ask.reader, selected, "tool_result")
    if not tools:
        return no_data("tool results", selected)
    ranked = sorted(
        tools.items(),
        key=lambda pair: (-(pair[1]["succeeded"] + pair[1]["failed"] + pair[1]["unknown_outcome"]), pair[0]),
    )
    succeeded = sum(t["succeeded"] for t in tools.values())
    known = succeeded + sum(t["failed"] for t in tools.values())
    top, top_height = kpis([(percent(succeeded, known), f"of {fmt(known)} tool runs succeeded")], canvas.width)
    fit = rows_that_fit(canvas.height, top_height + 2 * charts.LINE_PX)
    largest = max(t["succeeded"] + t["failed"] + t["unknown_outcome"] for _, t in ranked[:fit])
    grid = Grid(canvas.width)
    grid.need(charts.Column("Tool", None, left=True))
    grid.need(charts.Column("", max(60.0, min(canvas.width * 0.3, 240.0)), left=True))
    grid.need(charts.Column("Runs", 56))
    grid.need(charts.Column("Success", 62))
    failed_column = grid.add(charts.Column("Failed", 56), 90)
    for tool, t in ranked[:fit]:
        runs = t["succeeded"] + t["failed"] + t["unknown_outcome"]
        grid.columns[0].cells.append(f'<span title="{esc(tool)}">{esc(tool)}</span>')
        grid.columns[1].cells.append(
            charts.hbar(
                [
                    charts.Segment(t["succeeded"], charts.GOOD, f"{fmt(t['succeeded'])} succeeded"),
                    charts.Segment(t["failed"], charts.BAD, f"{fmt(t['failed'])} failed"),
                    charts.Segment(
                        t["unknown_outcome"], charts.OTHER, f"{fmt(t['unknown_outcome'])} without an outcome"
                    ),
                ],
                largest,
            )
        )
        grid.columns[2].cells.append(fmt(runs))
        grid.columns[3].cells.append(percent(t["succeeded"], t["succeeded"] + t["failed"]))
        if failed_column:
            grid.columns[4].cells.append(fmt(t["failed"]))
    caption = f"Green succeeded, red failed · {range_label(selected)}"
    return page(
        ask,
        top
        + charts.table(grid.columns, canvas.width)
        + more_line(fit, len(ranked), "tools")
        + one_line(esc(caption), caption),
    )


SOURCE_LABELS = {
    "user.email": "email",
    "user.id": "installation id",
    "user.account_uuid": "account id",
    "none": "no user",
}


def data_quality(ask: Ask) -> str:
    selected, canvas = ask.selected, ask.canvas
    aspects: dict[str, dict[str, dict[str, float]]] = defaultdict(lambda: defaultdict(lambda: defaultdict(float)))
    for day in selected.days:
        for item in ask.reader.query(keys.quality_pk(day)):
            aspect, value = item["sk"].split("#", 1)
            for counter, amount in add_up([item]).items():
                aspects[aspect][value][counter] += amount
    if not aspects:
        return no_data("telemetry", selected)
    sources = aspects["source"]
    points = sum(s["points"] for s in sources.values())
    token_total = sum(s["tokens"] for s in sources.values())
    events = sum(s["events"] for s in sources.values())
    unattributed = sources.get("none", {})
    headline = [
        (percent(unattributed.get("tokens", 0.0), token_total), "of tokens without a user"),
        (fmt(points), "data points"),
        (fmt(events), "events"),
    ]
    top, used = kpis(headline, canvas.width)
    parts = [top]
    ordered = sorted(sources.items(), key=lambda pair: (pair[0] == "none", -pair[1]["tokens"] - pair[1]["events"]))
    colours = {"user.email": charts.GOOD, "user.id": 0, "user.account_uuid": 4, "none": charts.BAD}
    segments = [
        charts.Segment(
            s["tokens"],
            colours.get(name, charts.OTHER),
            f"{SOURCE_LABELS.get(name, name)}: {percent(s['tokens'], token_total)} of tokens",
        )
        for name, s in ordered
    ]
    entries = [
        charts.Entry(SOURCE_LABELS.get(name, name), percent(s["tokens"], token_total), colours.get(name, charts.OTHER))
        for name, s in ordered
    ]
    parts.append(
        "<h5>Tokens attributed by</h5>" + charts.hbar(segments, token_total) + charts.legend(entries, canvas.width, 1)
    )
    used += 22 + 10 + charts.LINE_PX + 4
    problems = (
        [
            (f"unknown metric {name}", v["points"], "data points")
            for name, v in sorted(aspects["unknown_metric"].items())
        ]
        + [
            (f"malformed ({name})", v["log_events"] + v["deliveries"], "rejected")
            for name, v in sorted(aspects["malformed"].items())
        ]
        + [(f"duplicate ({name})", v["log_events"], "counted once") for name, v in sorted(aspects["duplicate"].items())]
    )
    unpriced = sorted(aspects["unpriced"].items(), key=lambda pair: -pair[1]["unpriced_tokens"])
    other_events = sorted(aspects["unknown_event"].items())
    sections: list[tuple[str, list[tuple[str, str]]]] = []
    if problems:
        sections.append(("Not counted", [(what, f"{fmt(count)} {unit}") for what, count, unit in problems]))
    if unpriced:
        sections.append(
            (
                "Models without a price: costed at the client's figure",
                [
                    (model, f"{fmt(v['unpriced_tokens'])} tokens, {fmt(v['unpriced_cost_usd'], '$')}")
                    for model, v in unpriced
                ],
            )
        )
    if other_events:
        sections.append(
            ("Events kept in the lake, not charted", [(name, fmt(v["events"])) for name, v in other_events])
        )
    versions = sorted(aspects["version"].items(), key=lambda pair: (-(pair[1]["points"] + pair[1]["events"]), pair[0]))
    sections.append(
        (
            "Client versions seen",
            [(version, f"{fmt(v['points'])} points, {fmt(v['events'])} events") for version, v in versions],
        )
    )
    room = canvas.height - used - charts.LINE_PX
    for title, rows in sections:
        if room < 2 * charts.ROW_PX:
            parts.append(one_line(f"{esc(title)}: {len(rows)} (make the widget taller to list them)", title))
            room -= charts.LINE_PX
            continue
        fit = max(1, int((room - 22) // charts.ROW_PX) - (1 if len(rows) > 1 else 0))
        shown_rows = rows[:fit]
        name_col = charts.Column(
            title, None, left=True, cells=[f'<span title="{esc(name)}">{esc(name)}</span>' for name, _ in shown_rows]
        )
        value_col = charts.Column("", min(220.0, canvas.width * 0.5), cells=[esc(value) for _, value in shown_rows])
        parts.append(
            charts.table([name_col, value_col], canvas.width) + more_line(len(shown_rows), len(rows), "entries")
        )
        room -= charts.ROW_PX * (len(shown_rows) + 1) + (charts.LINE_PX if len(shown_rows) < len(rows) else 0) + 2
    caption = range_label(selected)
    parts.append(one_line(esc(caption), caption))
    return page(ask, "".join(parts))


def policy_label(key: str) -> str:
    """A quota policy's key (`team#support-tools`, `default`) as people say it: Team policy: support-tools."""
    if key == "default":
        return "Default policy"
    scope, _, name = key.partition("#")
    if scope == "user" and name:
        return "Own policy"
    return f"{scope.capitalize()} policy: {name}" if scope in SCOPES and name else key


def quota(ask: Ask) -> str:
    """Users at or above the first alert threshold of their quota, most first, as of the quota monitor's latest
    run on the range's last day."""
    selected, canvas, zone = ask.selected, ask.canvas, ask.zone
    day = selected.days[-1]
    near = ask.reader.get(keys.quota_pk(day), keys.QUOTA_NEAR_SK)
    if near is None:
        return (
            f'{STYLE}<p class="muted">No data yet: the quota monitor has not recorded a run for {esc(day)}. It writes '
            "this list on every scheduled run once the Quota component is enabled; if it is, check the monitor's "
            "errors.</p>"
        )
    entries = json.loads(near["entries"])
    updated = str(near.get("updated_at", ""))
    try:
        at = datetime.fromisoformat(updated).astimezone(zone)
        updated = f"{at:%a} {at.day} {at:%b} {at:%H:%M} {at.tzname()}"
    except ValueError:
        pass
    headline = [
        (fmt(near.get("users_over", 0.0)), "over quota"),
        (fmt(near.get("users_near", 0.0)), "at or above their first alert threshold"),
        (fmt(near.get("users_checked", 0.0)), f"users with usage, checked {updated}"),
    ]
    top, top_height = kpis(headline, canvas.width)
    if not entries:
        return page(ask, top + '<p class="muted">Nobody is near a quota limit.</p>')
    fit = rows_that_fit(canvas.height, top_height + 2 * charts.LINE_PX)
    grid = Grid(canvas.width)
    name_min = 150.0
    grid.need(charts.Column("User", None, left=True))
    limit_column = grid.add(charts.Column("Limit", 136, left=True), name_min)
    grid.need(charts.Column("Used", 52))
    gauge_column = len(grid.columns)
    grid.need(charts.Column("Used of the limit: line 100%, dots projected", 150, left=True))
    optional = [
        ("projected", charts.Column("Projected", 72)),
        ("amount", charts.Column("Used / limit", 150)),
        ("policy", charts.Column("Policy", 190, left=True)),
    ]
    extra = [(name, column) for name, column in optional if grid.add(column, name_min)]
    grid.widen(gauge_column, 300.0)
    for entry in entries[:fit]:
        usd = str(entry["limit"]).endswith("_usd")
        unit = "$" if usd else ""
        used_percent = float(entry["percent"])
        projected = float(entry["projected_percent"])
        limit_label = LIMIT_LABELS.get(entry["limit"], str(entry["limit"]))
        colour = charts.BAD if used_percent >= 100 else charts.WARN
        cells = [
            f'<span title="{esc(entry["user"])}">{esc(entry["user"])}</span>',
            *([esc(limit_label)] if limit_column else []),
            f"{used_percent:.0f}%",
            charts.gauge(
                used_percent,
                colour,
                projected,
                f"{used_percent:.0f}% of the {limit_label}, {projected:.0f}% projected by the end of the period",
            ),
        ]
        for column, cell in zip(grid.columns, cells, strict=False):
            column.cells.append(cell)
        for name, column in extra:
            if name == "amount":
                column.cells.append(f"{fmt(float(entry['used']), unit)} / {fmt(float(entry['quota']), unit)}")
            elif name == "projected":
                column.cells.append(f"{projected:.0f}%")
            else:
                label = policy_label(str(entry["policy"]))
                column.cells.append(f'<span title="{esc(label)}">{esc(label)}</span>')
    listed = len(entries)
    more = more_line(fit, listed, "users: make the widget taller")
    if listed < near.get("users_near", 0.0):
        more += one_line(f"The monitor lists the first {listed}.", f"The monitor lists the first {listed}.")
    caption = f"The quota monitor's latest run on {day_label(day, year=True)}, days in {zone_name(zone, selected.end)}"
    return page(ask, top + charts.table(grid.columns, canvas.width) + more + one_line(esc(caption), caption))


def user(ask: Ask) -> str:
    """One user over the range, by name (`user` parameter): a drill-down from the top lists."""
    name = text_param(
        ask.params, "user", "Set the user parameter to a user's email (or user id) as the top lists show it."
    )
    selected, canvas, zone = ask.selected, ask.canvas, ask.zone
    found = ask.reader.query(
        keys.user_pk(name), between=(keys.user_day_sk(selected.days[0]), keys.user_day_sk(selected.days[-1]))
    )
    if not found:
        return no_data(f"usage by {name}", selected)
    by_day = {item["sk"].removeprefix("DAY#"): item for item in found}
    totals = add_up(found)
    labels: Mapping[str, Any] = next((item for item in reversed(found) if item.get("team")), {})
    headline = [
        (fmt(totals["cost_usd"], "$"), "estimated cost"),
        (fmt(totals["tokens"]), "tokens"),
        (fmt(totals["sessions"]), "sessions"),
        (f"{totals['active_seconds'] / 3600:.1f}", "hours of active time"),
    ]
    top, top_height = kpis(headline, canvas.width)
    who = " · ".join(esc(f"{GROUP_LABELS[d]} {labels[d]}") for d in keys.GROUP_DIMENSIONS if labels.get(d))
    if len(selected.days) <= BUCKET_CHART_MAX_DAYS:
        values = [0.0] * 24 * len(selected.days)
        slots = []
        for offset, day in enumerate(selected.days):
            hours = hourly_activity(by_day.get(day, {}).get("buckets", ()), zone)
            for hour, minutes in enumerate(hours):
                values[offset * 24 + hour] = minutes
                slots.append(
                    charts.Slot(
                        f"{day_label(day)} {hour:02d}:00–{hour + 1:02d}:00",
                        tick=(day_label(day) if hour == 0 else f"{hour:02d}:00"),
                        rank=0 if hour == 0 else 1 if hour % 6 == 0 else 2 if hour % 3 == 0 else 3,
                    )
                )
        series = [charts.Series("minutes active", values, 0)]
        what, unit = "minutes active", ""
    else:
        slots = day_slots(selected)
        series = [charts.Series("cost", [by_day.get(d, {}).get("cost_usd", 0.0) for d in selected.days], 0)]
        what, unit = "", "$"
    chart = charts.time_chart(
        slots,
        series,
        canvas.width,
        canvas.height - top_height - 2 * charts.LINE_PX,
        unit=unit,
        what=what,
        centred=unit == "$",
    )
    caption = (
        "Minutes with activity per hour, in 5-minute buckets" if unit == "" else "Estimated cost per day"
    ) + f" · {zone_name(zone, selected.end)} · {range_label(selected)}"
    return page(
        ask, one_line(f"<b>{esc(name)}</b> {who}", name, muted=False) + top + chart + one_line(esc(caption), caption)
    )


Widget = Callable[[Ask], str]
WIDGETS: dict[str, Widget] = {
    "active_users": active_users,
    "cost": cost,
    "tokens": tokens,
    "top_users": top_users,
    "groups": groups,
    "api_errors": api_errors,
    "api_latency": api_latency,
    "tool_results": tool_results,
    "data_quality": data_quality,
    "quota": quota,
    "user": user,
}

DESCRIPTION = (
    "## Claude Code usage widgets\n\nOne function for every custom widget of the dashboard. Parameters:\n\n"
    "- `widget`: " + ", ".join(f"`{name}`" for name in WIDGETS) + "\n"
    "- `tokens`: `split` (`type` or `model`)\n"
    "- `top_users`: `measure` (`tokens` or `cost_usd`), `period` (`day` or `month`), `limit` (1-25)\n"
    "- `groups`: `dimension` (`department`, `team` or `cost_center`), `view` (`list` or `days`)\n"
    "- `user`: `user` (an email or user id, as the top lists show it)\n\n"
    f"Every widget follows the dashboard's time range (at most {MAX_DAYS} days) in the reporting time zone, and "
    "fits the size it is given."
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
        return WIDGETS[name](Ask(reader, time_range(context, zone, now), params, zone, canvas_of(context)))
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
    client = aws.client("dynamodb", CLIENT_CONFIG)
    reader = RollupReader(client, table_name, remaining=remaining_seconds(context))
    output = render(event, reader, zone, now(), request_id=request_id)
    log("INFO", "rendered", widget=requested_widget(event), items_read=reader.items_read, request_id=request_id)
    return output
