"""Dashboard aggregator: CloudWatch Logs subscription deliveries (the collector's metrics and events log groups)
become exact rollups in DynamoDB.

One delivery is read with the same parser as the data lake (log_records), then reduced to additions per item
(`rollup_batch`, pure): per 5-minute bucket totals by metric, type and model; per user per day and per month;
per team, department and cost center per day; per day by model; the events' day totals; data quality; and the
distinct active users per bucket and per day. Cost (`cost_usd`) is the stack's price table applied to tokens
(common/pricing); for a model the table does not price it is the client's own cost (`claude_code.cost.usage`),
and those tokens and that cost are counted in data quality (`unpriced#<model>`). The client's cost of every
model is kept beside it (`client_cost_usd`), so cost is never $0 for usage the client priced.

Exactly once. The ledger's invariants, each tested:
1. A delivery is identified by what it delivers: its log group and the set of its log events' ids (content
   for an event without one). Re-compressed, re-serialised or reordered, it is the same delivery.
2. A log event that appears twice in one delivery counts once (and is counted in data quality).
3. The additions are written in transactions of at most 100 items, each with a ledger item keyed by the
   delivery and the chunk: a retried delivery finds its ledger items and writes nothing, and one that failed
   half way writes only the chunks it had not written.
4. The plan of chunks depends only on the delivery and its first arrival, which the ledger keeps
   (`ARRIVAL`): a retry after midnight makes the same additions.
5. Every value that reaches a key is valid UTF-8 of bounded length (common/rollups.key_part), every number
   is finite, not negative and under its metric's ceiling (common/log_records), and every event lies in
   the window the dashboards show: so no write can fail for one event's sake, and an event that breaks
   these rules is quarantined alone.
6. A log event belongs to the first delivery that claims it, so two different deliveries that share log
   events (an overlap) count each shared one once. Before reading, a delivery claims its log events in claim
   items, one per log stream and second of the events' timestamps (`#id = if_not_exists(#id, :delivery)`,
   atomic per log event, 100 a request), and reads only those it owns; the others count as `duplicate` in
   data quality. Claims are kept as long as the ledger, so a retry owns the same log events and makes the
   same additions, and a concurrent overlap gives each log event one owner. A log event whose claim item is
   full (400 KB: about 20,000 log events of one stream in one second) is quarantined with that reason, and
   so by every delivery of it (a claim takes the same 20 bytes for every log event, and an item only grows).
   A delivery that fails for good owns the log events it claimed: they are counted when it is redriven
   from the failed-event queue within those 3 days. `make bench` measures the claims' write units; each
   request is charged the whole item's size, so their cost per log event grows with the log events a
   stream carries per second.

Reading. A metrics delivery is read by `rollup_batch` from the dozen EMF fields the rollups need, with whole
number sums and one cost per price and user; `reference_rollup_batch`, the lake's rows and decimal additions,
is what it must equal, and what reads an events delivery or one whose sums the fast reading cannot give
exactly (a log event of an odd shape is read by log_records' own reader). tests/lambda_src/test_fast_rollups.py
compares the two.

Distinct users are exact: a user's day item records
the buckets the user was active in, read before and checked (optimistic locking) in the same transaction that
adds the user to the bucket and day counts. Late events land in the bucket and day of their own timestamp.

A log event that cannot be read is counted (data quality), logged and sent to the failed-event queue with the
reason; the rest of its delivery goes on. A delivery that cannot be read at all goes to the queue whole. Both
are counted on the day the delivery arrives (in TIME_ZONE), since a malformed event has no timestamp that can
be trusted: the handler reads the wall clock once per delivery and passes it down (`clock`). If
DynamoDB or the queue fails, the invocation fails: Lambda retries it, then sends it to the same queue.

Environment: TABLE_NAME, METRICS_LOG_GROUP, EVENTS_LOG_GROUP, FAILED_QUEUE_URL, TIME_ZONE, ROLLUP_TTL_DAYS.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import functools
import gc
import hashlib
import heapq
import json
import os
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import (
    Context,
    Decimal,
    DecimalException,
    Inexact,
    InvalidOperation,
    Rounded,
    getcontext,
    localcontext,
)
from typing import Any, Literal
from zoneinfo import ZoneInfo

import orjson
from botocore.config import Config
from botocore.exceptions import ClientError

from lambda_src.common import aws, dynamodb
from lambda_src.common import rollups as keys
from lambda_src.common.clock import Seconds, wall_clock_seconds
from lambda_src.common.dynamodb import Key, key_value
from lambda_src.common.lake_schema import METRICS_COLUMNS
from lambda_src.common.log_records import (
    EARLIEST_EVENT_MILLISECONDS,
    EMF_FORMAT_FIELDS,
    MalformedLogEventError,
    UnreadableBatchError,
    batch_shape_problem,
    event_rows,
    metric_rows,
    quarantine_reason,
    read_logs_batch,
)
from lambda_src.common.log_records import model_key as log_model_key
from lambda_src.common.logs import log
from lambda_src.common.pricing import DEFAULT_PRICE_TABLE, PRICE_TABLE_VARIABLE, PriceTable
from lambda_src.common.telemetry import (
    COST_METRIC,
    EVENT_NUMBER_CEILING,
    LATEST_EVENT_SKEW_SECONDS,
    METRICS,
    TOKEN_METRIC,
    TOKEN_TYPES,
    USER_ATTRIBUTION_ORDER,
)

UserDay = tuple[str, str]  # (user, day)
Kind = Literal["metrics", "events"]

TRANSACTION_ITEMS = 100
BUCKETS_PER_SLICE = 60
TRANSACT_ATTEMPTS = 8
EMPTY: Mapping[str, Any] = {}
LEDGER_TTL_SECONDS = 3 * 86400  # longer than Lambda keeps retrying an asynchronous event (6 hours)
ARRIVAL_SK = "ARRIVAL"  # the ledger item with a delivery's first arrival; its chunks are numbered
QUEUE_MESSAGE_BYTES = 250_000  # SQS takes 256 KiB per message and per SendMessageBatch
MILLION = Decimal(1_000_000)
ZERO = Decimal(0)
ONE = Decimal(1)

METRIC_COUNTERS = {
    "claude_code.session.count": "sessions",
    "claude_code.commit.count": "commits",
    "claude_code.pull_request.count": "pull_requests",
    "claude_code.active_time.total": "active_seconds",
}
LINES = {"added": "lines_added", "removed": "lines_removed"}
EDIT_DECISIONS = {"accept": "edits_accepted", "reject": "edits_rejected"}


@dataclass(frozen=True)
class Settings:
    table_name: str
    log_groups: Mapping[str, Kind]
    failed_queue_url: str
    time_zone: ZoneInfo
    ttl_days: int
    prices: PriceTable = DEFAULT_PRICE_TABLE

    @classmethod
    def from_environment(cls, environment: Mapping[str, str]) -> Settings:
        return cls(
            table_name=environment["TABLE_NAME"],
            log_groups={environment["METRICS_LOG_GROUP"]: "metrics", environment["EVENTS_LOG_GROUP"]: "events"},
            failed_queue_url=environment["FAILED_QUEUE_URL"],
            time_zone=ZoneInfo(environment.get("TIME_ZONE", "UTC")),
            ttl_days=int(environment.get("ROLLUP_TTL_DAYS", "400")),
            prices=PriceTable.from_json(environment.get(PRICE_TABLE_VARIABLE)),
        )


@dataclass
class Rollup:
    """The additions one delivery makes, per item."""

    counters: dict[Key, dict[str, Decimal | int]] = field(
        default_factory=lambda: defaultdict(lambda: defaultdict(Decimal))
    )
    labels: dict[Key, dict[str, str]] = field(default_factory=lambda: defaultdict(dict))
    expires: dict[Key, int] = field(default_factory=dict)
    presence: dict[UserDay, set[int]] = field(default_factory=lambda: defaultdict(set))
    """Buckets each user was active in, per day."""
    user_groups: dict[UserDay, dict[str, str]] = field(default_factory=dict)
    quarantined: list[dict[str, Any]] = field(default_factory=list)
    data_points: int = 0
    events: int = 0

    def add(self, key: Key, deltas: Mapping[str, Decimal | int], expires_at: int) -> None:
        counters = self.counters[key]
        for name, delta in deltas.items():
            counters[name] += delta
        self.expires[key] = expires_at


# Reading a delivery ---------------------------------------------------------------------------------------


def decode_delivery(event: Mapping[str, Any]) -> bytes:
    try:
        return base64.b64decode(event["awslogs"]["data"], validate=True)
    except (KeyError, TypeError, binascii.Error, ValueError):
        raise UnreadableBatchError("not a CloudWatch Logs subscription event (awslogs.data)") from None


def batch_id(payload: bytes) -> str:
    """An unreadable delivery's id: its bytes are all there is to go by."""
    return hashlib.sha256(payload).hexdigest()[:40]


def log_event_key(log_event: Any) -> str:
    """What identifies a log event: the id CloudWatch Logs gave it; without one, its content."""
    if isinstance(log_event, dict) and isinstance(log_event.get("id"), str) and log_event["id"]:
        return log_event["id"]
    return "content:" + hashlib.sha256(json.dumps(log_event, sort_keys=True, default=str).encode()).hexdigest()


def delivery_id(batch: Mapping[str, Any]) -> str:
    """The same delivered content has the same id, however it was compressed, serialised or ordered, and
    whenever it arrives: the log group and the set of its log events' ids."""
    ids = sorted({log_event_key(log_event) for log_event in batch["logEvents"]})
    return hashlib.sha256(json.dumps([batch["logGroup"], ids]).encode()).hexdigest()[:40]


# Claims: which delivery a log event belongs to ----------------------------------------------------------------


CLAIMS_PER_REQUEST = 100
"""Log events claimed by one UpdateItem: an update expression holds at most 300 operators and functions and
4 KB of text, and each claim is `#iN = if_not_exists(#iN, :d), ` (one function, at most 32 characters)."""
LAST_CLAIM_SECOND = 10**13
"""Seconds from this one (about the year 318,000) are not a time: log events stamped so late, or not with a
whole number of milliseconds, have their claims in one item, `other`."""


@dataclass(frozen=True)
class ClaimPlan:
    """The claims one delivery makes: per claim item (log stream and second), the attribute of each of its log
    events, and the log events each attribute stands for (a log event can appear twice in a delivery)."""

    items: dict[Key, dict[str, set[str]]]
    owner: bytes


def claim_name(identity: str) -> str:
    """A log event's attribute in its claim item: a 72-bit digest of its identity in 12 characters, which no
    other attribute's name has (20 bytes with its owner's 8)."""
    digest = hashlib.sha256(identity.encode("utf-8", "surrogatepass")).digest()[:9]
    return base64.urlsafe_b64encode(digest).decode()


def claim_second(log_event: Any) -> str:
    timestamp = log_event.get("timestamp") if isinstance(log_event, dict) else None
    if type(timestamp) is int and 0 <= timestamp < LAST_CLAIM_SECOND * 1000:
        return str(timestamp // 1000)
    return "other"


def claim_plan(batch: Mapping[str, Any], delivery: str) -> ClaimPlan:
    """Pure: the claim items of a data message's log events, keyed by what every delivery of the same log event
    computes alike (its log group and stream, the second of its timestamp and its identity)."""
    stream = hashlib.sha256(json.dumps([batch["logGroup"], batch.get("logStream")], default=str).encode())
    stream_part = stream.hexdigest()[:32]
    items: dict[Key, dict[str, set[str]]] = defaultdict(lambda: defaultdict(set))
    for log_event in batch["logEvents"]:
        identity = log_event_key(log_event)
        key = (keys.claim_pk(stream_part, claim_second(log_event)), keys.CLAIM_SK)
        items[key][claim_name(identity)].add(identity)
    return ClaimPlan(items, bytes.fromhex(delivery[:16]))


@functools.lru_cache(maxsize=CLAIMS_PER_REQUEST)
def claim_expression(count: int) -> str:
    claims = ", ".join(f"#i{index} = if_not_exists(#i{index}, :d)" for index in range(count))
    return f"SET {claims}, #x = :x"


@dataclass
class Claims:
    """What a delivery's claims found: the log events another delivery claimed first, and those whose claim
    item is full (DynamoDB's 400 KB), which cannot be recorded as delivered and so are not booked."""

    taken: set[str] = field(default_factory=set)
    unclaimable: set[str] = field(default_factory=set)
    requests: int = 0

    def owned(self, batch: Mapping[str, Any]) -> dict[str, Any]:
        """The delivery with only the log events it owns (each as often as it was delivered)."""
        excluded = self.taken | self.unclaimable
        if not excluded:
            return dict(batch)
        return {**batch, "logEvents": [e for e in batch["logEvents"] if log_event_key(e) not in excluded]}


def account_claims(
    rollup: Rollup, batch: Mapping[str, Any], claims: Claims, settings: Settings, arrival_seconds: float
) -> None:
    """Add to `rollup` (no I/O): the log events another delivery owns, counted as duplicates, and those without
    a claim, quarantined; both on the arrival day, the latter as malformed and with the reason."""
    if not claims.taken and not claims.unclaimable:
        return
    periods = Periods(settings)
    day = periods.day(arrival_seconds)
    kind = settings.log_groups.get(batch["logGroup"]) or "unknown"
    for log_event in batch["logEvents"]:
        identity = log_event_key(log_event)
        if identity in claims.taken:
            aspect = keys.quality_sk("duplicate", kind)
        elif identity in claims.unclaimable:
            aspect = f"malformed#{kind}"
            rollup.quarantined.append(
                {"log_group": batch["logGroup"], "reason": UNCLAIMABLE_REASON, "log_event": log_event}
            )
        else:
            continue
        rollup.add((keys.quality_pk(day), aspect), {"log_events": ONE}, periods.day_expiry(day))


def item_too_large(error: ClientError) -> bool:
    """DynamoDB's refusal of an update that would take the item past 400 KB ("Item size to update has exceeded
    the maximum allowed size"); any other ValidationException is a bug, not a full item."""
    details = error.response.get("Error", {})
    return details.get("Code") == "ValidationException" and "Item size" in str(details.get("Message", ""))


UNCLAIMABLE_REASON = (
    "its claim item (the log events of its log stream stamped in the same second) is at DynamoDB's 400 KB item "
    "limit, so it cannot be recorded as delivered and is not counted"
)


def epoch_seconds(event_time: str) -> float:
    return datetime.fromisoformat(event_time).timestamp()


def decimal(value: Any) -> Decimal:
    return Decimal(repr(value)) if isinstance(value, float) else Decimal(value)


UsageTerms = dict[str, float | None]
"""The counters a data point adds to, each with its price (USD per million tokens; None: the value itself)."""


def usage_terms(
    metric: str, token_type: Any, model_key: str | None, decision: Any, prices: PriceTable
) -> UsageTerms | None:
    """What a data point adds, without its value; None for a metric Claude Code does not document."""
    if metric == TOKEN_METRIC:
        terms: UsageTerms = {"tokens": None}
        if token_type in TOKEN_TYPES:
            terms[keys.TOKEN_ATTRIBUTES[token_type]] = None
        price = prices.price(model_key, token_type) if token_type in TOKEN_TYPES else None
        if price is None:
            terms["unpriced_tokens"] = None
        else:
            terms["cost_usd"] = price
        return terms
    if metric == COST_METRIC:
        terms = {"client_cost_usd": None}
        if prices.price(model_key, "input") is None:
            terms["cost_usd"] = None  # the table does not price this model: the client's cost stands
            terms["unpriced_cost_usd"] = None
        return terms
    if metric in METRIC_COUNTERS:
        return {METRIC_COUNTERS[metric]: None}
    if metric == "claude_code.lines_of_code.count":
        return {LINES[token_type]: None} if token_type in LINES else {}
    if metric == "claude_code.code_edit_tool.decision":
        return {EDIT_DECISIONS[decision]: None} if decision in EDIT_DECISIONS else {}
    return None


def usage_deltas(
    metric: str, value: Decimal, values: Mapping[str, Any], prices: PriceTable
) -> dict[str, Decimal] | None:
    """The usage counters a data point adds to; None for a metric Claude Code does not document."""
    terms = usage_terms(metric, values.get("type"), values.get("model_version"), values.get("decision"), prices)
    if terms is None:
        return None
    return {name: value if price is None else value * decimal(price) / MILLION for name, price in terms.items()}


class Periods:
    """Day, month, bucket and expiry of a moment, in the reporting time zone (cached: a batch has few days)."""

    def __init__(self, settings: Settings) -> None:
        self.zone = settings.time_zone
        self.ttl = settings.ttl_days * 86400
        self.prices = settings.prices
        self._day_end: dict[str, int] = {}
        self._month_end: dict[str, int] = {}

    def day(self, seconds: float) -> str:
        return keys.local_day(seconds, self.zone)

    def day_expiry(self, day: str) -> int:
        if day not in self._day_end:
            self._day_end[day] = keys.day_end_epoch(day, self.zone) + self.ttl
        return self._day_end[day]

    def month_expiry(self, month: str) -> int:
        if month not in self._month_end:
            self._month_end[month] = keys.month_end_epoch(month, self.zone) + self.ttl
        return self._month_end[month]


def add_metric_row(rollup: Rollup, values: Mapping[str, Any], periods: Periods) -> None:
    seconds = epoch_seconds(values["event_time"])
    day = periods.day(seconds)
    month = keys.month_of(day)
    day_expiry = periods.day_expiry(day)
    metric = values["metric_name"]
    value = decimal(values["value"])
    source = values.get("user_key_source") or "none"
    quality = keys.quality_pk(day)
    rollup.data_points += 1
    deltas = usage_deltas(metric, value, values, periods.prices)
    rollup.add(
        (quality, keys.quality_sk("source", source)),
        {"points": ONE, "tokens": deltas.get("tokens", ZERO) if deltas else ZERO},
        day_expiry,
    )
    rollup.add(
        (quality, keys.quality_sk("version", values.get("app_version") or keys.NO_VALUE)), {"points": ONE}, day_expiry
    )
    if deltas is None:
        rollup.add((quality, keys.quality_sk("unknown_metric", metric)), {"points": ONE}, day_expiry)
        return
    model = values.get("model_version") or values.get("model")
    unpriced: dict[str, Decimal] = {n: deltas[n] for n in ("unpriced_tokens", "unpriced_cost_usd") if n in deltas}
    if unpriced:
        rollup.add((quality, keys.quality_sk("unpriced", model or keys.NO_VALUE)), unpriced, day_expiry)
    bucket = keys.bucket_start(seconds)
    short_name = metric.removeprefix("claude_code.")
    total = {"value": value, "points": ONE}
    if "cost_usd" in deltas:
        total["cost_usd"] = deltas["cost_usd"]
    rollup.add((keys.total_pk(short_name, day), keys.total_sk(bucket, values.get("type"), model)), total, day_expiry)
    rollup.add((keys.day_pk(month), keys.day_sk(day, model)), deltas, periods.month_expiry(month))
    groups = {dimension: values.get(column) or keys.UNATTRIBUTED for dimension, column in keys.GROUP_DIMENSIONS.items()}
    for dimension, group in groups.items():
        rollup.add((keys.group_pk(day), keys.group_sk(dimension, group)), deltas, day_expiry)
    user = values.get("user_key")
    if not user:
        return
    labels = {"user": user, "source": source, **groups}
    for sort_key, expiry in (
        (keys.user_day_sk(day), day_expiry),
        (keys.user_month_sk(month), periods.month_expiry(month)),
    ):
        item = (keys.user_pk(user), sort_key)
        rollup.add(item, deltas, expiry)
        rollup.labels[item].update(labels)
        rollup.labels[item][keys.USAGE_INDEX_KEY] = keys.usage_period(sort_key, user)
    rollup.presence[(user, day)].add(bucket)
    rollup.user_groups.setdefault((user, day), groups)


def add_event_row(rollup: Rollup, values: Mapping[str, Any], periods: Periods) -> None:
    seconds = epoch_seconds(values["event_time"])
    day = periods.day(seconds)
    expiry = periods.day_expiry(day)
    rollup.events += 1
    quality = keys.quality_pk(day)
    rollup.add((quality, keys.quality_sk("source", values.get("user_key_source") or "none")), {"events": ONE}, expiry)
    rollup.add(
        (quality, keys.quality_sk("version", values.get("app_version") or keys.NO_VALUE)), {"events": ONE}, expiry
    )
    name = values.get("event_name") or keys.NO_VALUE
    model = values.get("model_version") or values.get("model") or keys.NO_VALUE
    duration = values.get("duration_ms")
    events = keys.events_pk(day)
    if name == "api_request":
        deltas = {"requests": ONE}
        if isinstance(duration, float) and duration >= 0:
            deltas.update({"duration_ms": decimal(duration), "timed": ONE, keys.latency_bin(duration): ONE})
        rollup.add((events, keys.events_sk("api_request", model)), deltas, expiry)
    elif name == "api_error":
        status = values.get("status_code") or keys.NO_VALUE
        rollup.add((events, keys.events_sk("api_error", model, status)), {"errors": ONE}, expiry)
    elif name == "tool_result":
        success = values.get("success")
        outcome = "unknown_outcome" if success is None else "succeeded" if success else "failed"
        rollup.add(
            (events, keys.events_sk("tool_result", values.get("tool_name") or keys.NO_VALUE)), {outcome: ONE}, expiry
        )
    elif name == "tool_decision":
        tool, decision = values.get("tool_name") or keys.NO_VALUE, values.get("decision") or keys.NO_VALUE
        rollup.add((events, keys.events_sk("tool_decision", tool, decision)), {"decisions": ONE}, expiry)
    elif name == "user_prompt":
        length = values.get("prompt_length")
        deltas = {"prompts": ONE}
        if isinstance(length, int):
            deltas["prompt_length"] = Decimal(length)
        rollup.add((events, "user_prompt"), deltas, expiry)
    else:  # kept whole in the lake; counted here by name, and in data quality as not read by the dashboard
        rollup.add((events, keys.events_sk("other", name)), {"events": ONE}, expiry)
        rollup.add((quality, keys.quality_sk("unknown_event", name)), {"events": ONE}, expiry)


def reference_rollup_batch(batch: Mapping[str, Any], settings: Settings, arrival_seconds: float) -> Rollup:
    """The additions of one data message (checked by `batch_shape_problem`), read through the lake's rows one
    data point at a time: the definition `rollup_batch` must equal. Malformed log events are quarantined,
    never fatal; a log event that appears twice counts once."""
    rollup = Rollup()
    periods = Periods(settings)
    log_group = batch["logGroup"]
    kind = settings.log_groups.get(log_group)
    seen: set[str] = set()
    for log_event in batch["logEvents"]:
        identity = log_event_key(log_event)
        if identity in seen:
            day = periods.day(arrival_seconds)
            rollup.add(
                (keys.quality_pk(day), keys.quality_sk("duplicate", kind or "unknown")),
                {"log_events": ONE},
                periods.day_expiry(day),
            )
            continue
        seen.add(identity)
        try:
            if kind is None:
                raise MalformedLogEventError(f"log group {log_group!r} is not one the aggregator reads")
            if not isinstance(log_event, dict) or not isinstance(log_event.get("message"), str):
                raise MalformedLogEventError("a log event needs a message")
            if kind == "metrics":
                for row in metric_rows(log_event, arrival_seconds * 1000, settings.prices):
                    add_metric_row(rollup, row.values, periods)
            else:
                for row in event_rows(log_event, arrival_seconds * 1000, settings.prices):
                    add_event_row(rollup, row.values, periods)
        except Exception as error:  # noqa: BLE001  one bad log event must never fail the rest of its delivery
            reason = quarantine_reason(error)
            rollup.quarantined.append({"log_group": log_group, "reason": reason, "log_event": log_event})
            day = periods.day(arrival_seconds)
            rollup.add(
                (keys.quality_pk(day), f"malformed#{kind or 'unknown'}"), {"log_events": ONE}, periods.day_expiry(day)
            )
            log("WARN", "malformed log event", log_group=log_group, reason=reason, log_event_id=_event_id(log_event))
    return rollup


def _event_id(log_event: Any) -> Any:
    return log_event.get("id") if isinstance(log_event, dict) else None


def unreadable_rollup(settings: Settings, arrival_seconds: float) -> Rollup:
    rollup = Rollup()
    periods = Periods(settings)
    day = periods.day(arrival_seconds)
    rollup.add((keys.quality_pk(day), "malformed#delivery"), {"deliveries": ONE}, periods.day_expiry(day))
    return rollup


# Reading a metrics delivery fast --------------------------------------------------------------------------
#
# The same additions as `reference_rollup_batch`, from the dozen fields of an EMF log event the rollups need
# rather than a lake row per data point. Counters are summed as integers where the values are whole, exactly
# (decimals) where they are not; the additions a user's log events of a day share are summed once per
# delivery and then spread over the user's, groups' and day's items, and tokens at a price are costed once
# per such sum, not per data point. At the end every sum is checked to be what the reference's 28-digit
# decimal additions give. A log event of an unusual shape, or one the checks of log_records would refuse, is
# read by log_records itself (the same reasons), and a delivery whose sums could differ in the last digit is
# read the reference way.

EXACT = Context(prec=120, traps=[Inexact, InvalidOperation])
"""Wide enough for every realistic sum; Inexact means the delivery is read the reference way."""
Amount = Decimal | int
COLUMN_ATTRIBUTES = {column.name: column.attribute for column in METRICS_COLUMNS if column.attribute}
MODEL, TYPE, DECISION = (COLUMN_ATTRIBUTES[name] for name in ("model", "type", "decision"))
APP_VERSION, SERVICE_VERSION = COLUMN_ATTRIBUTES["app_version"], COLUMN_ATTRIBUTES["service_version"]
USER_ATTRIBUTES = tuple(
    (COLUMN_ATTRIBUTES[column], source)
    for column, source in zip(("user_email", "user_id", "user_account_uuid"), USER_ATTRIBUTION_ORDER, strict=True)
)
"""(attribute, what user_key_source says) in the order log_records.identity_columns attributes a user."""
GROUP_ATTRIBUTES = tuple(COLUMN_ATTRIBUTES[column] for column in keys.GROUP_DIMENSIONS.values())
READ_ATTRIBUTES = frozenset(
    {MODEL, TYPE, DECISION, APP_VERSION, SERVICE_VERSION, *(name for name, _ in USER_ATTRIBUTES), *GROUP_ATTRIBUTES}
)
CEILINGS = {metric.name: metric.ceiling for metric in METRICS}
MAX_VALUE = max(EVENT_NUMBER_CEILING, *CEILINGS.values())
SKEW_MILLISECONDS = LATEST_EVENT_SKEW_SECONDS * 1000
CONTAINERS_BOUND = 256
DEEP_MESSAGE_CHARACTERS = 1800
"""json refuses nesting from about 900 levels on (it depends on the Python version), orjson from 1024: a
message of fewer characters, or fewer brackets, cannot nest that deep."""
BUCKET_MILLISECONDS = keys.BUCKET_SECONDS * 1000


UNKNOWN = object()


class InexactRollupError(ArithmeticError):
    """A sum the reference's decimal additions would round: the delivery is read the reference way."""


@dataclass(frozen=True)
class PointPlan:
    """What a data point of one metric, type, model and decision adds (its value aside)."""

    short_name: str
    terms: tuple[str | tuple[str, int], ...] | None
    """Counters of the usage items: a name adds the value, (name, price) the value at that price (an index
    into the accumulator's prices); None for a metric Claude Code does not document."""
    quality_tokens: bool
    unpriced: tuple[str, ...]
    total_cost: str | tuple[str, int] | None


BucketPeriods = tuple[str, str, int, int, str]
"""(day, month, day expiry, month expiry, bucket name) of a 5-minute bucket."""
Reading = tuple[BucketPeriods, int, Any, str, str, tuple[str, str, str], Any, Any, Any, Any, list[tuple[str, Amount]]]
"""What one log event adds: periods, bucket, user, source, version, groups, model as reported, model key, type,
decision, and its (metric, value) points."""


def amount(value: float) -> Amount:
    """A data point's value as the reference adds it (Decimal(repr(value))), as an integer when it is one."""
    return int(value) if value.is_integer() else Decimal(repr(value))


class EventContext:
    """What the log events of one user, day, version and groups share: their additions to the data quality,
    group and user items, summed here and spread over those items when the delivery has been read."""

    __slots__ = (
        "day_expiry",
        "day_key",
        "day_labels",
        "deltas",
        "groups",
        "month_key",
        "month_labels",
        "points",
        "source_key",
        "tokens",
        "usage",
        "used",
        "version_key",
    )

    def __init__(self, source_key: Key, version_key: Key, day_expiry: int, groups: dict[str, str]) -> None:
        self.source_key, self.version_key, self.day_expiry, self.groups = source_key, version_key, day_expiry, groups
        self.points = 0
        self.tokens: Amount = 0
        self.deltas: dict[Any, Amount] = defaultdict(int)
        self.used = False
        """Some data point of the context adds usage (a metric Claude Code documents)."""
        self.usage: list[tuple[Key, int]] = []
        self.day_key: Key = ("", "")
        self.month_key: Key = ("", "")
        self.day_labels: dict[str, Any] = {}
        self.month_labels: dict[str, Any] = {}


class MetricsAccumulator:
    """The additions of one metrics delivery, summed per item and counter."""

    def __init__(self, settings: Settings, arrival_seconds: float) -> None:
        self.settings = settings
        self.prices = settings.prices
        self.periods = Periods(settings)
        self.arrival_seconds = arrival_seconds
        self.arrival_milliseconds = arrival_seconds * 1000
        self.latest_milliseconds = self.arrival_milliseconds + SKEW_MILLISECONDS
        self.rollup = Rollup()
        self.sums: dict[Key, dict[Any, Amount]] = {}
        self.price_list: list[Decimal] = []
        self.price_index: dict[float, int] = {}
        self.plans: dict[tuple[str, Any, Any, Any], PointPlan] = {}
        self.buckets: dict[int, BucketPeriods] = {}
        self.split_buckets: set[int] = set()
        self.keys: dict[tuple[Any, ...], Any] = {}
        self.contexts: dict[tuple[Any, ...], EventContext] = {}
        self.model_usage: dict[tuple[str, str], dict[Any, Amount]] = {}
        self.model_items: list[tuple[Key, int, dict[Any, Amount]]] = []
        self.totals: dict[tuple[Any, ...], dict[Any, Amount]] = {}
        self.model_keys: dict[Any, Any] = {}
        self.warnings: list[dict[str, Any]] = []

    # Reading -----------------------------------------------------------------------------------------------

    def read(self, batch: Mapping[str, Any]) -> None:
        log_group = batch["logGroup"]
        seen: set[str] = set()
        for log_event in batch["logEvents"]:
            identity = log_event_key(log_event)
            if identity in seen:
                self._count_arrival_day(keys.quality_sk("duplicate", "metrics"))
                continue
            seen.add(identity)
            if not isinstance(log_event, dict) or not isinstance(log_event.get("message"), str):
                self._quarantine(log_group, log_event, MalformedLogEventError("a log event needs a message"))
                continue
            try:
                reading = self._read_emf(log_event)
            except Exception:  # noqa: BLE001  log_records reads it, and says why it cannot
                reading = None
            if reading is not None:
                self._add(*reading)
                continue
            try:
                rows = metric_rows(log_event, self.arrival_milliseconds, self.prices)
            except Exception as error:  # noqa: BLE001  one bad log event must never fail the rest of its delivery
                self._quarantine(log_group, log_event, error)
                continue
            for row in rows:
                self._add_row(row.values)

    def _count_arrival_day(self, sort_key: str) -> None:
        day = self.periods.day(self.arrival_seconds)
        self._item((keys.quality_pk(day), sort_key), self.periods.day_expiry(day))["log_events"] += 1

    def _quarantine(self, log_group: str, log_event: Any, error: Exception) -> None:
        reason = quarantine_reason(error)
        self.rollup.quarantined.append({"log_group": log_group, "reason": reason, "log_event": log_event})
        self._count_arrival_day("malformed#metrics")
        self.warnings.append({"log_group": log_group, "reason": reason, "log_event_id": _event_id(log_event)})

    def _read_emf(self, log_event: Mapping[str, Any]) -> Reading | None:
        """The fields the rollups need, when the log event has the usual shape and passes every check of
        log_records.metric_rows; None leaves it to metric_rows."""
        message = log_event["message"]
        if len(message) >= DEEP_MESSAGE_CHARACTERS and message.count("[") + message.count("{") >= CONTAINERS_BOUND:
            return None  # it could nest deep enough for json and orjson to disagree on refusing it
        document = orjson.loads(message)
        if type(document) is not dict:
            return None
        points: list[tuple[str, Amount]] = []
        for name, value in document.items():
            kind = type(value)
            if kind is str or value is None:
                continue
            if kind is int or kind is float:
                if name in EMF_FORMAT_FIELDS:
                    continue
                if not 0 <= value <= CEILINGS.get(name, EVENT_NUMBER_CEILING) or name in READ_ATTRIBUTES:
                    return None
                points.append((name, value if kind is int else amount(value)))
            elif name not in EMF_FORMAT_FIELDS:
                return None  # a summary, a flag, a structure: as log_records reads them
        if not points:
            return None
        emf = document.get("_aws")
        if emf is None:
            timestamp = None
        elif type(emf) is dict:
            if not self._declared(emf, document):
                return None
            timestamp = emf.get("Timestamp")
        else:
            return None
        if timestamp is None:
            timestamp = log_event.get("timestamp")
        elif type(timestamp) is not int or timestamp <= 0:
            return None
        if type(timestamp) is not int or not EARLIEST_EVENT_MILLISECONDS <= timestamp <= self.latest_milliseconds:
            return None
        bucket = timestamp // BUCKET_MILLISECONDS * keys.BUCKET_SECONDS
        periods = self.buckets.get(bucket)
        if periods is None:
            if bucket in self.split_buckets:
                return None
            periods = self._bucket(bucket)
            if periods is None:
                return None
        get = document.get
        (email, email_source), (user_id, id_source), (account, account_source) = USER_ATTRIBUTES
        user, source = get(email), email_source
        if not (user and user.strip()):
            user, source = get(user_id), id_source
            if not (user and user.strip()):
                user, source = get(account), account_source
                if not (user and user.strip()):
                    user, source = None, "none"
        model = get(MODEL)
        model_key = self.model_keys.get(model, UNKNOWN)
        if model_key is UNKNOWN:
            model_key = self.model_keys[model] = log_model_key(self.prices, model)
        department, team, cost_center = GROUP_ATTRIBUTES
        if len(points) > 1:
            points.sort()
        return (
            periods,
            bucket,
            user.strip() if user else None,
            source,
            get(APP_VERSION) or get(SERVICE_VERSION) or keys.NO_VALUE,
            (
                get(department) or keys.UNATTRIBUTED,
                get(team) or keys.UNATTRIBUTED,
                get(cost_center) or keys.UNATTRIBUTED,
            ),
            model,
            model_key,
            get(TYPE),
            get(DECISION),
            points,
        )

    @staticmethod
    def _declared(emf: Mapping[str, Any], document: Mapping[str, Any]) -> bool:
        """Every metric the EMF directives declare has a number (else log_records refuses the log event)."""
        directives = emf.get("CloudWatchMetrics")
        if directives is None:
            return True
        if type(directives) is not list:
            return False
        for directive in directives:
            if type(directive) is not dict:
                return False
            declared = directive.get("Metrics")
            if declared is None:
                continue
            if type(declared) is not list:
                return False
            for metric in declared:
                if type(metric) is not dict:
                    return False
                name = metric.get("Name")
                if type(name) is not str or type(document.get(name)) not in (int, float) or name in EMF_FORMAT_FIELDS:
                    return False
        return True

    def _bucket(self, bucket: int) -> BucketPeriods | None:
        """The periods of a bucket, if all of it lies in one local day at one UTC offset (always, for zones
        whose offsets are whole multiples of 5 minutes); None, and every event reads its own day."""
        zone = self.settings.time_zone
        first = datetime.fromtimestamp(bucket, zone)
        last = datetime.fromtimestamp(bucket + keys.BUCKET_SECONDS - 0.001, zone)
        found: BucketPeriods | None = None
        if first.date() == last.date() and first.utcoffset() == last.utcoffset():
            found = self._periods(self.periods.day(bucket), bucket)
        if found is None:
            self.split_buckets.add(bucket)
        else:
            self.buckets[bucket] = found
        return found

    def _periods(self, day: str, bucket: int) -> BucketPeriods:
        month = keys.month_of(day)
        return day, month, self.periods.day_expiry(day), self.periods.month_expiry(month), keys.bucket_name(bucket)

    def _add_row(self, values: Mapping[str, Any]) -> None:
        """One lake row of a log event log_records read (as add_metric_row reads it)."""
        seconds = epoch_seconds(values["event_time"])
        bucket = keys.bucket_start(seconds)
        periods = self._periods(self.periods.day(seconds), bucket)
        groups = tuple(values.get(column) or keys.UNATTRIBUTED for column in keys.GROUP_DIMENSIONS.values())
        self._add(
            periods,
            bucket,
            values.get("user_key"),
            values.get("user_key_source") or "none",
            values.get("app_version") or keys.NO_VALUE,
            (groups[0], groups[1], groups[2]),
            values.get("model"),
            values.get("model_version"),
            values.get("type"),
            values.get("decision"),
            [(values["metric_name"], amount(values["value"]))],
        )

    # Adding ----------------------------------------------------------------------------------------------

    def _plan(self, metric: str, token_type: Any, model_key: Any, decision: Any) -> PointPlan:
        terms = usage_terms(metric, token_type, model_key, decision, self.prices)
        planned = None if terms is None else tuple(self._term(name, price) for name, price in terms.items())
        plan = PointPlan(
            short_name=metric.removeprefix("claude_code."),
            terms=planned,
            quality_tokens=terms is not None and "tokens" in terms,
            unpriced=tuple(name for name in ("unpriced_tokens", "unpriced_cost_usd") if terms and name in terms),
            total_cost=None if not terms or "cost_usd" not in terms else self._term("cost_usd", terms["cost_usd"]),
        )
        self.plans[(metric, token_type, model_key, decision)] = plan
        return plan

    def _term(self, name: str, price: float | None) -> str | tuple[str, int]:
        if price is None:
            return name
        index = self.price_index.get(price)
        if index is None:
            index = self.price_index[price] = len(self.price_list)
            self.price_list.append(decimal(price))
        return (name, index)

    def _item(self, key: Key, expires_at: int) -> dict[Any, Amount]:
        found = self.sums.get(key)
        if found is None:
            found = self.sums[key] = defaultdict(int)
            self.rollup.expires[key] = expires_at
        return found

    def _key(self, *parts: Any) -> Any:
        """Item keys, built once per delivery."""
        found = self.keys.get(parts)
        if found is None:
            found = self.keys[parts] = self._build_key(parts)
        return found

    @staticmethod
    def _build_key(parts: tuple[Any, ...]) -> Any:
        kind = parts[0]
        if kind == "quality":
            return (keys.quality_pk(parts[1]), keys.quality_sk(parts[2], parts[3]))
        if kind == "total":
            _, short_name, day, bucket_text, token_type, model = parts
            total_sk = f"{bucket_text}#{keys.key_part(token_type or keys.NO_VALUE)}#{keys.key_part(model)}"
            return (keys.total_pk(short_name, day), total_sk)
        if kind == "groups":
            _, day, groups = parts
            return tuple(
                (keys.group_pk(day), keys.group_sk(d, g)) for d, g in zip(keys.GROUP_DIMENSIONS, groups, strict=True)
            )
        if kind == "user":
            _, user, day, month = parts
            day_sk, month_sk = keys.user_day_sk(day), keys.user_month_sk(month)
            shard = keys.usage_shard(user)
            return (
                (keys.user_pk(user), day_sk),
                (keys.user_pk(user), month_sk),
                f"{day_sk}#{shard}",
                f"{month_sk}#{shard}",
            )
        raise ValueError(kind)

    def _add(
        self,
        periods: BucketPeriods,
        bucket: int,
        user: Any,
        source: str,
        version: str,
        groups: tuple[str, str, str],
        model_reported: Any,
        model_key: Any,
        token_type: Any,
        decision: Any,
        points: list[tuple[str, Amount]],
    ) -> None:
        model = model_key or model_reported or keys.NO_VALUE
        day = periods[0]
        context = self.contexts.get((day, user, source, version, groups))
        if context is None:
            context = self._context(periods, user, source, version, groups)
        plans, totals = self.plans, self.totals
        by_model: dict[Any, Amount] | None = None
        self.rollup.data_points += len(points)
        context.points += len(points)
        used = False
        for metric, value in points:
            plan = plans.get((metric, token_type, model_key, decision)) or self._plan(
                metric, token_type, model_key, decision
            )
            if plan.quality_tokens:
                context.tokens += value
            terms = plan.terms
            if terms is None:
                unknown = self._item(self._key("quality", day, "unknown_metric", metric), periods[2])
                unknown["points"] += 1
                continue
            if plan.unpriced:
                unpriced = self._item(self._key("quality", day, "unpriced", model), periods[2])
                for name in plan.unpriced:
                    unpriced[name] += value
            total_key = (plan.short_name, periods[4], token_type, model, day)
            total = totals.get(total_key)
            if total is None:
                total = totals[total_key] = self._item(
                    self._key("total", plan.short_name, day, periods[4], token_type, model), periods[2]
                )
            total["value"] += value
            total["points"] += 1
            if plan.total_cost is not None:
                total[plan.total_cost] += value
            deltas = context.deltas
            for term in terms:
                deltas[term] += value
            if by_model is None:
                by_model = self.model_usage.get((day, model))
                if by_model is None:
                    by_model = self._model_usage(periods, model)
            for term in terms:
                by_model[term] += value
            used = True
        if used:
            if not context.used:
                context.used = True
                if user:
                    self.rollup.user_groups.setdefault((user, day), context.groups)
            if user:
                self.rollup.presence[(user, day)].add(bucket)
                labels = self.rollup.labels
                labels[context.day_key] = context.day_labels
                labels[context.month_key] = context.month_labels

    def _model_usage(self, periods: BucketPeriods, model: str) -> dict[Any, Amount]:
        """The additions to a day's totals of one model (its item is written when the delivery has been read)."""
        day, month, _, month_expiry, _ = periods
        usage: dict[Any, Amount] = defaultdict(int)
        self.model_usage[(day, model)] = usage
        self.model_items.append(((keys.day_pk(month), keys.day_sk(day, model)), month_expiry, usage))
        return usage

    def _context(
        self,
        periods: BucketPeriods,
        user: Any,
        source: str,
        version: str,
        groups: tuple[str, str, str],
    ) -> EventContext:
        day, month, day_expiry, month_expiry, _ = periods
        context = EventContext(
            self._key("quality", day, "source", source),
            self._key("quality", day, "version", version),
            day_expiry,
            dict(zip(keys.GROUP_DIMENSIONS, groups, strict=True)),
        )
        context.usage = [(group_key, day_expiry) for group_key in self._key("groups", day, groups)]
        if user:
            day_key, month_key, day_period, month_period = self._key("user", user, day, month)
            context.usage += [(day_key, day_expiry), (month_key, month_expiry)]
            context.day_key, context.month_key = day_key, month_key
            common = {"user": user, "source": source, **context.groups}
            context.day_labels = {**common, keys.USAGE_INDEX_KEY: day_period}
            context.month_labels = {**common, keys.USAGE_INDEX_KEY: month_period}
        self.contexts[(day, user, source, version, groups)] = context
        return context

    # The rollup --------------------------------------------------------------------------------------------

    def finish(self, digits: int) -> Rollup:
        """The rollup, with every counter a sum the reference's `digits`-digit decimal additions give exactly,
        else Rounded (or InexactRollupError). Costs are applied here, once per price and context (or 5-minute
        total), to the tokens summed at that price; a cost's exponent (that of its price per token) is at most
        that of any one data point's cost, so an exact sum whose digits fit in `digits` is what the
        reference's additions give, whatever their order."""
        if (self.rollup.data_points + len(self.rollup.quarantined) + 1) * MAX_VALUE >= 10**digits:
            raise InexactRollupError("whole numbers this large are not summed here")
        per_token = [price / MILLION for price in self.price_list]
        for context in self.contexts.values():
            source = self._item(context.source_key, context.day_expiry)
            source["points"] += context.points
            source["tokens"] += context.tokens
            self._item(context.version_key, context.day_expiry)["points"] += context.points
            if context.used:
                deltas = _costed(context.deltas, per_token)
                for usage_key, expires_at in context.usage:
                    _add_all(self._item(usage_key, expires_at), deltas)
        for usage_key, expires_at, usage in self.model_items:
            _add_all(self._item(usage_key, expires_at), _costed(usage, per_token))
        exact = Context(prec=digits, traps=[Rounded]).plus  # whole numbers lose no digit below 10**digits
        counters = self.rollup.counters  # an item's sums are defaultdicts, as the reference's are
        for item_key, item_sums in self.sums.items():
            counted: dict[Any, Amount] = item_sums
            for term, total in item_sums.items():
                if type(term) is not str:
                    counted = _costed(item_sums, per_token)  # a 5-minute total's cost
                    for value in counted.values():
                        if type(value) is not int:
                            exact(value)
                    break
                if type(total) is not int:
                    exact(total)  # the sum's exponent is that of its terms' smallest: its digits must fit
            counters[item_key] = counted
        return self.rollup

    def log_warnings(self) -> None:
        for warning in self.warnings:
            log("WARN", "malformed log event", **warning)


def _add_all(sums: dict[Any, Amount], deltas: Mapping[str, Amount]) -> None:
    for name, value in deltas.items():
        sums[name] += value


def _costed(sums: Mapping[Any, Amount], per_token: Sequence[Decimal]) -> dict[str, Amount]:
    """Sums with the tokens summed at a price turned into their cost (added to the counter they cost)."""
    costed: dict[str, Amount] = defaultdict(int)
    for term, total in sums.items():
        if type(term) is str:
            costed[term] += total
        else:
            costed[term[0]] += total * per_token[term[1]]
    return costed


def rollup_batch(batch: Mapping[str, Any], settings: Settings, arrival_seconds: float) -> Rollup:
    """The additions of one data message (checked by `batch_shape_problem`): what `reference_rollup_batch` gives,
    read fast for a metrics delivery. Malformed log events are quarantined, never fatal; a log event that
    appears twice counts once."""
    if settings.log_groups.get(batch["logGroup"]) != "metrics":
        return reference_rollup_batch(batch, settings, arrival_seconds)
    digits = getcontext().prec
    accumulator = MetricsAccumulator(settings, arrival_seconds)
    try:
        with localcontext(EXACT):
            accumulator.read(batch)
            rollup = accumulator.finish(digits)
    except (DecimalException, InexactRollupError):  # a sum the reference's additions round: read it that way
        return reference_rollup_batch(batch, settings, arrival_seconds)
    accumulator.log_warnings()
    return rollup


# Planning the transactions ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class UserSlice:
    """Part of one user's day: at most BUCKETS_PER_SLICE buckets; the first slice also carries the usage."""

    user: str
    day: str
    buckets: tuple[int, ...]
    first: bool
    """The first slice of the user's day: it adds the day's usage."""
    adds_month: bool
    """The first slice of the user's first day of a month in this delivery: it adds the month's usage."""

    def item_bound(self, groups: Mapping[str, str]) -> set[Key]:
        """Every item this slice may write, whatever the table holds."""
        active = keys.active_pk(self.day)
        group = keys.group_pk(self.day)
        return {
            *user_items(self.user, self.day),
            (active, keys.ACTIVE_DAY_SK),
            *((group, keys.group_sk(d, v)) for d, v in groups.items()),
            *((active, keys.bucket_name(b)) for b in self.buckets),
        }


def user_items(user: str, day: str) -> tuple[Key, Key]:
    return (keys.user_pk(user), keys.user_day_sk(day)), (keys.user_pk(user), keys.user_month_sk(keys.month_of(day)))


@dataclass
class Chunk:
    """One transaction's worth of the delivery: user slices, or plain additions. Its number is its ledger key."""

    number: int
    slices: list[UserSlice] = field(default_factory=list)
    plain: list[Key] = field(default_factory=list)


def plan_chunks(rollup: Rollup) -> list[Chunk]:
    """Deterministic for a delivery, so a retry finds the same chunk numbers in the ledger."""
    limit = TRANSACTION_ITEMS - 1  # one item of each transaction is its ledger item
    chunks: list[Chunk] = []
    current = Chunk(0)
    bound: set[Key] = set()
    months_seen: set[tuple[str, str]] = set()
    for (user, day), buckets in sorted(rollup.presence.items()):
        ordered = sorted(buckets)
        for start in range(0, len(ordered), BUCKETS_PER_SLICE):
            adds_month = start == 0 and (user, keys.month_of(day)) not in months_seen
            months_seen.add((user, keys.month_of(day)))
            piece = UserSlice(user, day, tuple(ordered[start : start + BUCKETS_PER_SLICE]), start == 0, adds_month)
            items = piece.item_bound(rollup.user_groups[(user, day)])
            if current.slices and len(bound) + sum(item not in bound for item in items) > limit:
                chunks.append(current)
                current, bound = Chunk(len(chunks)), set()
            current.slices.append(piece)
            bound |= items
    if current.slices:
        chunks.append(current)
    user_keys = {item for user, day in rollup.presence for item in user_items(user, day)}
    plain = sorted(key for key in rollup.counters if key not in user_keys)
    for start in range(0, len(plain), limit):
        chunks.append(Chunk(len(chunks), plain=plain[start : start + limit]))
    return chunks


# DynamoDB ------------------------------------------------------------------------------------------------


NUMBER_CONTEXT = Context(prec=38)  # DynamoDB numbers hold 38 significant digits
WHOLE_NUMBER_LIMIT = 10**26  # a whole number below this keeps its 12 decimals within 38 digits


def number(value: Decimal | int) -> dict[str, str]:
    """A DynamoDB number: exact to 12 decimals (a millionth of a cent), without an exponent."""
    if type(value) is int:
        if 0 <= value < WHOLE_NUMBER_LIMIT:
            return {"N": str(value)}  # what the quantize and normalize below make of it
    elif type(value) is Decimal and value.is_finite():
        text = str(value)
        if "E" not in text:  # plain notation: at most 12 decimals need no rounding, and normalising is trimming
            whole, point, fraction = text.partition(".")
            if len(fraction) <= 12 and len(whole) <= 26:
                return {"N": text.rstrip("0").rstrip(".") if point else text}
    rounded = Decimal(value).quantize(Decimal("1e-12"), context=NUMBER_CONTEXT).normalize(NUMBER_CONTEXT)
    return {"N": format(rounded, "f")}


@dataclass(frozen=True)
class UpdateShape:
    """The parts of an Update that depend only on its attribute names: built once, shared (never changed)."""

    expression: str
    names: dict[str, str]
    add_values: tuple[str, ...]
    set_values: tuple[str, ...]


_UPDATE_SHAPES: dict[tuple[tuple[str, ...], tuple[str, ...], bool, bool], UpdateShape] = {}


def update_shape(adds: tuple[str, ...], sets: tuple[str, ...], buckets: bool, conditional: bool) -> UpdateShape:
    shape = _UPDATE_SHAPES.get((adds, sets, buckets, conditional))
    if shape is not None:
        return shape
    names: dict[str, str] = {}
    added, set_ = [], []
    for index, name in enumerate(adds):
        names[f"#a{index}"] = name
        added.append(f"#a{index} :a{index}")
    if buckets:
        names["#buckets"] = "buckets"
        added.append("#buckets :buckets")
    for index, name in enumerate(sets):
        names[f"#s{index}"] = name
        set_.append(f"#s{index} = :s{index}")
    if conditional:
        names["#v"] = "v"
    expression = " ".join(
        part
        for part in (("ADD " + ", ".join(added)) if added else "", ("SET " + ", ".join(set_)) if set_ else "")
        if part
    )
    shape = UpdateShape(
        expression,
        names,
        tuple(f":a{index}" for index in range(len(adds))),
        tuple(f":s{index}" for index in range(len(sets))),
    )
    if len(_UPDATE_SHAPES) >= 4096:
        _UPDATE_SHAPES.clear()
    _UPDATE_SHAPES[(adds, sets, buckets, conditional)] = shape
    return shape


_LABELS: dict[str, str] = {}


def label_value(value: str) -> dict[str, str]:
    """A label as DynamoDB stores it (clipped; cached, the same users, teams and periods recur)."""
    found = _LABELS.get(value)
    if found is None:
        if len(_LABELS) >= 100_000:
            _LABELS.clear()
        found = _LABELS[value] = keys.clipped(value, keys.LABEL_BYTES)
    return {"S": found}


def update_action(
    table: str,
    key: Key,
    add: Mapping[str, Decimal | int],
    set_values: Mapping[str, Any],
    add_buckets: Iterable[int] = (),
    condition: tuple[str, Mapping[str, Any]] | None = None,
) -> dict[str, Any]:
    """An Update of a transaction: ADD counters (and buckets), SET labels. Its expression and names are shared
    by every update of the same attributes (cached, never changed)."""
    adds = tuple(sorted(add))
    sets = tuple(sorted(set_values))
    buckets = sorted(add_buckets)
    shape = update_shape(adds, sets, bool(buckets), condition is not None)
    values: dict[str, Any] = {
        placeholder: {"N": str(delta)}  # number()'s own first case, without the call
        if type(delta := add[name]) is int and 0 <= delta < WHOLE_NUMBER_LIMIT
        else number(delta)
        for placeholder, name in zip(shape.add_values, adds)  # noqa: B905  the shape has one placeholder a name
    }
    if buckets:
        values[":buckets"] = {"NS": [str(b) for b in buckets]}
    for placeholder, name in zip(shape.set_values, sets, strict=True):
        value = set_values[name]
        values[placeholder] = number(value) if isinstance(value, int) else label_value(str(value))
    update: dict[str, Any] = {
        "TableName": table,
        "Key": key_value(key),
        "UpdateExpression": shape.expression,
        "ExpressionAttributeNames": shape.names,
        "ExpressionAttributeValues": values,
    }
    if condition is not None:
        text, condition_values = condition
        update["ConditionExpression"] = text
        values.update(condition_values)
    return {"Update": update}


@dataclass(frozen=True)
class UserDayState:
    exists: bool
    version: int
    buckets: frozenset[int]


def user_chunk_actions(
    table: str, rollup: Rollup, chunk: Chunk, states: Mapping[Key, UserDayState]
) -> list[dict[str, Any]]:
    """Updates of a user chunk, given the user day items as read: only buckets new to a user are counted."""
    day_updates: dict[Key, dict[str, Any]] = {}
    month_adds: dict[Key, dict[str, Decimal | int]] = {}
    counters: dict[Key, int] = defaultdict(int)
    counter_expiry: dict[Key, int] = {}
    for piece in chunk.slices:
        day_key, month_key = user_items(piece.user, piece.day)
        entry = day_updates.setdefault(day_key, {"buckets": set(), "usage": False, "piece": piece})
        entry["buckets"].update(piece.buckets)
        entry["usage"] = entry["usage"] or piece.first
        if piece.adds_month:
            month_adds[month_key] = dict(rollup.counters.get(month_key, {}))
    actions = []
    for day_key, entry in sorted(day_updates.items()):
        piece = entry["piece"]
        state = states.get(day_key, UserDayState(False, 0, frozenset()))
        new_buckets = entry["buckets"] - state.buckets
        new_counts = [(keys.active_pk(piece.day), keys.bucket_name(bucket)) for bucket in new_buckets]
        if not state.exists:
            new_counts.append((keys.active_pk(piece.day), keys.ACTIVE_DAY_SK))
            groups = rollup.user_groups[(piece.user, piece.day)]
            new_counts.extend((keys.group_pk(piece.day), keys.group_sk(d, g)) for d, g in groups.items())
        for counter_key in new_counts:
            counters[counter_key] += 1
            counter_expiry[counter_key] = rollup.expires[day_key]
        adds = dict(rollup.counters.get(day_key, {})) if entry["usage"] else {}
        adds["v"] = 1
        condition = (
            ("#v = :expected", {":expected": number(state.version)})
            if state.exists
            else ("attribute_not_exists(#v)", {})
        )
        labels = {**rollup.labels.get(day_key, {}), "expires_at": rollup.expires[day_key]}
        actions.append(update_action(table, day_key, adds, labels, new_buckets, condition))
    for month_key, adds in sorted(month_adds.items()):
        labels = {**rollup.labels.get(month_key, {}), "expires_at": rollup.expires[month_key]}
        actions.append(update_action(table, month_key, adds, labels))
    for counter_key, delta in sorted(counters.items()):
        actions.append(update_action(table, counter_key, {"users": delta}, {"expires_at": counter_expiry[counter_key]}))
    return actions


def plain_chunk_actions(table: str, rollup: Rollup, chunk: Chunk) -> list[dict[str, Any]]:
    return [update_action(table, key, rollup.counters[key], {"expires_at": rollup.expires[key]}) for key in chunk.plain]


class RollupStore:
    """Applies a delivery's rollup to the table, exactly once per chunk."""

    def __init__(
        self,
        client: Any,
        table: str,
        clock: Seconds,
        pause: Callable[[float], None] = time.sleep,
    ) -> None:
        self.client = client
        self.table = table
        self.clock = clock
        self.pause = pause
        self.items_written = 0
        self.transactions = 0

    def arrival(self, delivery: str, now: float) -> float:
        """When this delivery first arrived: stored on its first attempt, read back on every retry."""
        key = key_value((keys.ledger_pk(delivery), ARRIVAL_SK))
        for _ in range(2):
            found = self.client.get_item(TableName=self.table, Key=key, ConsistentRead=True).get("Item")
            if found is not None:
                return float(found["arrival"]["N"])
            try:
                self.client.put_item(
                    TableName=self.table,
                    Item={
                        **key,
                        "arrival": number(Decimal(repr(now))),
                        "expires_at": number(int(now) + LEDGER_TTL_SECONDS),
                    },
                    ConditionExpression="attribute_not_exists(pk)",
                )
            except self.client.exceptions.ConditionalCheckFailedException:
                continue  # another attempt stored it first: read theirs
            self.items_written += 1
            return now
        raise RuntimeError(f"the arrival of delivery {delivery} could not be read or stored")

    def claim(self, plan: ClaimPlan) -> Claims:
        """Claim each log event for this delivery unless another delivery has (one atomic `if_not_exists` per
        log event, CLAIMS_PER_REQUEST a request); what the item holds afterwards says who owns each. Claims
        are kept as long as the ledger, so every retry of the delivery finds the same owners. A request the
        item has no room for is made again one log event at a time: every claim takes the same 20 bytes, so
        the log events that do not fit then will never fit, for any delivery."""
        claims = Claims()
        owner = {"B": plan.owner}
        expires = number(int(self.clock()) + LEDGER_TTL_SECONDS)
        for key, names in plan.items.items():
            ordered = sorted(names)
            for start in range(0, len(ordered), CLAIMS_PER_REQUEST):
                part = ordered[start : start + CLAIMS_PER_REQUEST]
                found = self._claim(key, part, owner, expires, claims)
                if found is None and len(part) > 1:
                    answers = {name: self._claim(key, [name], owner, expires, claims) for name in part}
                else:
                    answers = dict.fromkeys(part, found)
                for name, item in answers.items():
                    if item is None:
                        claims.unclaimable.update(names[name])
                    elif item.get(name) != owner:
                        claims.taken.update(names[name])
        return claims

    def _claim(
        self, key: Key, names: list[str], owner: Mapping[str, Any], expires: Mapping[str, str], claims: Claims
    ) -> dict[str, Any] | None:
        """The claim item after claiming `names`, or None when the item has no room for them."""
        claims.requests += 1
        try:
            found: dict[str, Any] = self.client.update_item(
                TableName=self.table,
                Key=key_value(key),
                UpdateExpression=claim_expression(len(names)),
                ExpressionAttributeNames={
                    **{f"#i{index}": name for index, name in enumerate(names)},
                    "#x": keys.TTL_ATTRIBUTE,
                },
                ExpressionAttributeValues={":d": owner, ":x": expires},
                ReturnValues="ALL_NEW",
            )["Attributes"]
        except ClientError as error:
            if not item_too_large(error):
                raise
            log("ERROR", "claim item full", key=key[0], claims=len(names), reason=str(error))
            return None
        return found

    def apply(self, delivery: str, rollup: Rollup) -> dict[str, int]:
        chunks = plan_chunks(rollup)
        done = self.applied_chunks(delivery, len(chunks))
        for chunk in chunks:
            if chunk.number not in done:
                self.apply_chunk(delivery, rollup, chunk)
        ranked = self.rank_users(rollup)
        return {"chunks": len(chunks), "chunks_already_applied": len(done), "top_lists_updated": ranked}

    def applied_chunks(self, delivery: str, count: int) -> set[int]:
        keys_ = [(keys.ledger_pk(delivery), str(number_)) for number_ in range(count)]
        return {int(item["sk"]["S"]) for item in self.batch_get(keys_, "pk, sk")}

    def apply_chunk(self, delivery: str, rollup: Rollup, chunk: Chunk) -> None:
        ledger = {
            "Put": {
                "TableName": self.table,
                "Item": {
                    **key_value((keys.ledger_pk(delivery), str(chunk.number))),
                    "expires_at": number(int(self.clock()) + LEDGER_TTL_SECONDS),
                },
                "ConditionExpression": "attribute_not_exists(pk)",
            }
        }
        for attempt in range(TRANSACT_ATTEMPTS):
            if chunk.slices:
                actions = user_chunk_actions(self.table, rollup, chunk, self.user_day_states(chunk))
            else:
                actions = plain_chunk_actions(self.table, rollup, chunk)
            try:
                self.client.transact_write_items(TransactItems=[ledger, *actions])
            except self.client.exceptions.TransactionCanceledException as error:
                reasons = [reason.get("Code") for reason in error.response.get("CancellationReasons", [])]
                if reasons and reasons[0] == "ConditionalCheckFailed":
                    return  # the ledger has this chunk: an earlier attempt wrote it
                log("INFO", "transaction cancelled, retrying", reasons=reasons, chunk=chunk.number, attempt=attempt)
                self.pause(dynamodb.backoff_seconds(attempt))
                continue
            self.transactions += 1
            self.items_written += len(actions) + 1
            return
        raise RuntimeError(
            f"chunk {chunk.number} of delivery {delivery} kept conflicting after {TRANSACT_ATTEMPTS} attempts"
        )

    def user_day_states(self, chunk: Chunk) -> dict[Key, UserDayState]:
        wanted = sorted({user_items(piece.user, piece.day)[0] for piece in chunk.slices})
        states = {}
        for item in self.batch_get(wanted, "pk, sk, #v, #buckets", {"#v": "v", "#buckets": "buckets"}):
            states[(item["pk"]["S"], item["sk"]["S"])] = UserDayState(
                True,
                int(item.get("v", {}).get("N", "0")),
                frozenset(int(b) for b in item.get("buckets", {}).get("NS", [])),
            )
        return states

    def batch_get(
        self, wanted: Sequence[Key], projection: str, names: Mapping[str, str] | None = None
    ) -> Iterator[dict[str, Any]]:
        """Consistent reads of these items (those that exist)."""
        return dynamodb.batch_get(
            self.client, self.table, wanted, projection=projection, names=names, consistent=True, pause=self.pause
        )

    # Top users ----------------------------------------------------------------------------------------

    def rank_users(self, rollup: Rollup) -> int:
        """Merge the delivery's users, with their totals as stored now, into the day's and month's top lists."""
        periods: dict[str, set[Key]] = defaultdict(set)
        for user, day in rollup.presence:
            day_key, month_key = user_items(user, day)
            periods[day].add(day_key)
            periods[keys.month_of(day)].add(month_key)
        expiries = {period: rollup.expires[next(iter(items))] for period, items in periods.items()}
        wanted = sorted({item for items in periods.values() for item in items})
        totals: dict[Key, dict[str, Any]] = {}
        projection = "pk, sk, #user, #source, tokens, cost_usd"
        for item in self.batch_get(wanted, projection, {"#user": "user", "#source": "source"}):
            pk = item["pk"]["S"]
            labelled: Mapping[str, Any] = item.get("user") or EMPTY
            source: Mapping[str, Any] = item.get("source") or EMPTY
            tokens: Mapping[str, Any] = item.get("tokens") or EMPTY
            cost: Mapping[str, Any] = item.get("cost_usd") or EMPTY
            totals[(pk, item["sk"]["S"])] = {
                "user": labelled["S"] if "S" in labelled else pk.removeprefix("USER#"),
                "source": source.get("S", "none"),
                "tokens": float(tokens.get("N", "0")),
                "cost_usd": float(cost.get("N", "0")),
            }
        for period, items in sorted(periods.items()):
            self.merge_top(period, [totals[item] for item in sorted(items) if item in totals], expiries[period])
        return len(periods)

    def merge_top(self, period: str, entries: list[dict[str, Any]], expires_at: int) -> None:
        key = (keys.top_pk(period), keys.TOP_SK)
        for attempt in range(TRANSACT_ATTEMPTS):
            response = self.client.get_item(TableName=self.table, Key=key_value(key), ConsistentRead=True)
            item = response.get("Item")
            current = json.loads(item["entries"]["S"]) if item else []
            merged = merge_top_entries(current, entries)
            if merged == current:
                return
            put: dict[str, Any] = {
                "TableName": self.table,
                "Item": {
                    **key_value(key),
                    "entries": {"S": json.dumps(merged, sort_keys=True, separators=(",", ":"))},
                    "v": number(int(item["v"]["N"]) + 1 if item else 1),
                    "expires_at": number(expires_at),
                },
                "ExpressionAttributeNames": {"#v": "v"},
            }
            if item:
                put["ConditionExpression"] = "#v = :expected"
                put["ExpressionAttributeValues"] = {":expected": item["v"]}
            else:
                put["ConditionExpression"] = "attribute_not_exists(#v)"
            try:
                self.client.put_item(**put)
            except self.client.exceptions.ConditionalCheckFailedException:
                self.pause(dynamodb.backoff_seconds(attempt))
                continue
            self.items_written += 1
            return
        raise RuntimeError(f"top list {period} kept conflicting after {TRANSACT_ATTEMPTS} attempts")


def merge_top_entries(current: list[dict[str, Any]], updates: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Totals only grow, so the larger of two readings is the newer: keep the top users by tokens and by cost."""
    by_user = {entry["user"]: dict(entry) for entry in current}
    for entry in updates:
        known = by_user.get(entry["user"])
        if known is None:
            by_user[entry["user"]] = dict(entry)
        else:
            known["tokens"] = max(known["tokens"], entry["tokens"])
            known["cost_usd"] = max(known["cost_usd"], entry["cost_usd"])
            known["source"] = entry["source"]
    kept = {
        user
        for measure in ("tokens", "cost_usd")
        for user, _ in heapq.nsmallest(
            keys.TOP_USERS_KEPT, by_user.items(), key=lambda pair: (-pair[1][measure], pair[0])
        )
    }
    return [by_user[user] for user in sorted(kept)]


# The failed-event queue ---------------------------------------------------------------------------------


def queue_messages(quarantined: Sequence[Mapping[str, Any]]) -> list[str]:
    """One message per malformed log event; one too large for SQS keeps its start and says where the rest is."""
    messages = []
    for entry in quarantined:
        body = json.dumps(entry, default=str)
        if len(body.encode()) > QUEUE_MESSAGE_BYTES:
            raw_event = entry.get("log_event")
            log_event: Mapping[str, Any] = raw_event if isinstance(raw_event, dict) else {}
            body = json.dumps(
                {
                    "log_group": entry.get("log_group"),
                    "reason": entry.get("reason"),
                    "truncated": True,
                    "note": "the whole log event is in its log group (and the lake's errors/ prefix)",
                    "log_event_id": log_event.get("id"),
                    "timestamp": log_event.get("timestamp"),
                    "message_start": str(log_event.get("message", entry.get("payload", "")))[
                        : QUEUE_MESSAGE_BYTES // 2
                    ],
                },
                default=str,
            )
        messages.append(body)
    return messages


def send_to_queue(client: Any, queue_url: str, messages: Sequence[str]) -> None:
    """Every message is accepted, or this raises (and Lambda retries the delivery)."""
    batch: list[str] = []
    size = 0
    batches = []
    for message in messages:
        length = len(message.encode())
        if batch and (len(batch) == 10 or size + length > QUEUE_MESSAGE_BYTES):
            batches.append(batch)
            batch, size = [], 0
        batch.append(message)
        size += length
    if batch:
        batches.append(batch)
    for entries in batches:
        pending = {str(index): body for index, body in enumerate(entries)}
        for _ in range(3):
            response = client.send_message_batch(
                QueueUrl=queue_url, Entries=[{"Id": i, "MessageBody": body} for i, body in pending.items()]
            )
            pending = {failure["Id"]: pending[failure["Id"]] for failure in response.get("Failed", [])}
            if not pending:
                break
        else:
            raise RuntimeError(f"the failed-event queue refused {len(pending)} messages")


# Handler -------------------------------------------------------------------------------------------------


@contextlib.contextmanager
def collector_paused() -> Iterator[None]:
    """The cyclic garbage collector off while one delivery is read and written. What a delivery allocates
    holds no reference cycles and reference counting frees it; the collector would only walk every live
    object again and again (the SDK's service models, and in the benchmark the in-memory table)."""
    if not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


@collector_paused()
def aggregate(
    event: Mapping[str, Any],
    settings: Settings,
    store: RollupStore,
    queue: Callable[[Sequence[str]], None],
    clock: Seconds,
) -> dict[str, Any]:
    """One subscription delivery. `clock` gives the arrival time: the day a malformed log event or an
    unreadable delivery is counted on (their own timestamps cannot be trusted), the latest event time booked,
    and the ledger's expiry. A retried delivery keeps the arrival of its first attempt (the ledger has it),
    so a retry after midnight makes the same additions."""
    try:
        payload = decode_delivery(event)
    except UnreadableBatchError as error:
        queue(queue_messages([{"reason": str(error), "payload": json.dumps(event, default=str)[:QUEUE_MESSAGE_BYTES]}]))
        log("ERROR", "unreadable delivery sent to the failed-event queue", reason=str(error))
        return {"status": "unreadable"}
    try:
        batch = read_logs_batch(payload)
        problem = batch_shape_problem(batch)
        if problem is not None:
            raise UnreadableBatchError(problem)
    except UnreadableBatchError as error:
        delivery = batch_id(payload)
        arrival = store.arrival(delivery, clock())
        store.apply(delivery, unreadable_rollup(settings, arrival))
        queue(queue_messages([{"reason": str(error), "payload": base64.b64encode(payload).decode()}]))
        log("ERROR", "unreadable delivery sent to the failed-event queue", reason=str(error), delivery=delivery)
        return {"status": "unreadable", "delivery": delivery}
    if batch["messageType"] == "CONTROL_MESSAGE":
        return {"status": "control message"}
    delivery = delivery_id(batch)
    arrival = store.arrival(delivery, clock())
    claims = store.claim(claim_plan(batch, delivery))
    rollup = rollup_batch(claims.owned(batch), settings, arrival)
    account_claims(rollup, batch, claims, settings, arrival)
    result = store.apply(delivery, rollup)
    if rollup.quarantined:
        queue(queue_messages(rollup.quarantined))
    summary = {
        "status": "ok",
        "delivery": delivery,
        "log_group": batch["logGroup"],
        "data_points": rollup.data_points,
        "events": rollup.events,
        "quarantined": len(rollup.quarantined),
        "delivered_before": len(claims.taken),
        "claim_requests": claims.requests,
        "items": len(rollup.counters),
        "users": len({user for user, _ in rollup.presence}),
        **result,
    }
    log("INFO", "aggregated", **summary)
    return summary


DYNAMODB_CONFIG = Config(parameter_validation=False)
"""Every request this function makes is built here, in the shapes DynamoDB takes (keys, numbers as text of at
most 38 digits, labels clipped, at most 100 items a transaction): botocore's parameter validation would only
check them again, at three times the client's CPU per item written (see docs/dashboard.md)."""


def handler(event: Mapping[str, Any], context: Any, clock: Seconds = wall_clock_seconds) -> dict[str, Any]:
    settings = Settings.from_environment(os.environ)
    store = RollupStore(aws.client("dynamodb", DYNAMODB_CONFIG), settings.table_name, clock)
    sqs = aws.client("sqs")

    def queue(messages: Sequence[str]) -> None:
        send_to_queue(sqs, settings.failed_queue_url, messages)

    return aggregate(event, settings, store, queue, clock)
