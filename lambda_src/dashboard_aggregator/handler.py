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
Not covered: two different deliveries that overlap (some log events in both) count the shared events twice;
CloudWatch Logs redelivers whole deliveries, and a per-event ledger would cost a write per log event.

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
import hashlib
import json
import os
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Context, Decimal
from typing import Any, Literal
from zoneinfo import ZoneInfo

import boto3

from lambda_src.common import dynamodb
from lambda_src.common import rollups as keys
from lambda_src.common.clock import Seconds, wall_clock_seconds
from lambda_src.common.dynamodb import Key, key_value
from lambda_src.common.log_records import (
    MalformedLogEventError,
    UnreadableBatchError,
    batch_shape_problem,
    event_rows,
    metric_rows,
    quarantine_reason,
    read_logs_batch,
)
from lambda_src.common.logs import log
from lambda_src.common.pricing import DEFAULT_PRICE_TABLE, PRICE_TABLE_VARIABLE, PriceTable
from lambda_src.common.telemetry import COST_METRIC, TOKEN_METRIC, TOKEN_TYPES

UserDay = tuple[str, str]  # (user, day)
Kind = Literal["metrics", "events"]

TRANSACTION_ITEMS = 100
BUCKETS_PER_SLICE = 60
TRANSACT_ATTEMPTS = 8
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

    counters: dict[Key, dict[str, Decimal]] = field(default_factory=lambda: defaultdict(lambda: defaultdict(Decimal)))
    labels: dict[Key, dict[str, str]] = field(default_factory=lambda: defaultdict(dict))
    expires: dict[Key, int] = field(default_factory=dict)
    presence: dict[UserDay, set[int]] = field(default_factory=lambda: defaultdict(set))
    """Buckets each user was active in, per day."""
    user_groups: dict[UserDay, dict[str, str]] = field(default_factory=dict)
    quarantined: list[dict[str, Any]] = field(default_factory=list)
    data_points: int = 0
    events: int = 0

    def add(self, key: Key, deltas: Mapping[str, Decimal], expires_at: int) -> None:
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


def epoch_seconds(event_time: str) -> float:
    return datetime.fromisoformat(event_time).timestamp()


def decimal(value: Any) -> Decimal:
    return Decimal(repr(value)) if isinstance(value, float) else Decimal(value)


def usage_deltas(
    metric: str, value: Decimal, values: Mapping[str, Any], prices: PriceTable
) -> dict[str, Decimal] | None:
    """The usage counters a data point adds to; None for a metric Claude Code does not document."""
    if metric == TOKEN_METRIC:
        token_type = values.get("type")
        deltas = {"tokens": value}
        if token_type in TOKEN_TYPES:
            deltas[keys.TOKEN_ATTRIBUTES[token_type]] = value
        price = prices.price(values.get("model_version"), token_type) if token_type in TOKEN_TYPES else None
        if price is None:
            deltas["unpriced_tokens"] = value
        else:
            deltas["cost_usd"] = value * decimal(price) / MILLION
        return deltas
    if metric == COST_METRIC:
        deltas = {"client_cost_usd": value}
        if prices.price(values.get("model_version"), "input") is None:
            deltas["cost_usd"] = value  # the table does not price this model: the client's cost stands
            deltas["unpriced_cost_usd"] = value
        return deltas
    if metric in METRIC_COUNTERS:
        return {METRIC_COUNTERS[metric]: value}
    if metric == "claude_code.lines_of_code.count":
        return {LINES[values["type"]]: value} if values.get("type") in LINES else {}
    if metric == "claude_code.code_edit_tool.decision":
        return {EDIT_DECISIONS[values["decision"]]: value} if values.get("decision") in EDIT_DECISIONS else {}
    return None


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


def rollup_batch(batch: Mapping[str, Any], settings: Settings, arrival_seconds: float) -> Rollup:
    """The additions of one data message (checked by `batch_shape_problem`). Malformed log events are
    quarantined, never fatal; a log event that appears twice counts once."""
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
        day_counters = {(keys.active_pk(self.day), keys.ACTIVE_DAY_SK)}
        group_counters = {(keys.group_pk(self.day), keys.group_sk(d, v)) for d, v in groups.items()}
        buckets = {(keys.active_pk(self.day), keys.bucket_name(b)) for b in self.buckets}
        return {*user_items(self.user, self.day), *day_counters, *group_counters, *buckets}


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
            if current.slices and len(bound | items) > limit:
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


def number(value: Decimal | int) -> dict[str, str]:
    """A DynamoDB number: exact to 12 decimals (a millionth of a cent), without an exponent."""
    rounded = Decimal(value).quantize(Decimal("1e-12"), context=NUMBER_CONTEXT).normalize(NUMBER_CONTEXT)
    return {"N": format(rounded, "f")}


def update_action(
    table: str,
    key: Key,
    add: Mapping[str, Decimal],
    set_values: Mapping[str, Any],
    add_buckets: Iterable[int] = (),
    condition: tuple[str, Mapping[str, Any]] | None = None,
) -> dict[str, Any]:
    """An Update of a transaction: ADD counters (and buckets), SET labels."""
    names: dict[str, str] = {}
    values: dict[str, Any] = {}
    adds, sets = [], []
    for index, (name, delta) in enumerate(sorted(add.items())):
        names[f"#a{index}"], values[f":a{index}"] = name, number(delta)
        adds.append(f"#a{index} :a{index}")
    buckets = sorted(add_buckets)
    if buckets:
        names["#buckets"], values[":buckets"] = "buckets", {"NS": [str(b) for b in buckets]}
        adds.append("#buckets :buckets")
    for index, (name, value) in enumerate(sorted(set_values.items())):
        names[f"#s{index}"] = name
        values[f":s{index}"] = (
            number(value) if isinstance(value, int) else {"S": keys.clipped(str(value), keys.LABEL_BYTES)}
        )
        sets.append(f"#s{index} = :s{index}")
    expression = " ".join(
        part
        for part in (("ADD " + ", ".join(adds)) if adds else "", ("SET " + ", ".join(sets)) if sets else "")
        if part
    )
    update: dict[str, Any] = {
        "TableName": table,
        "Key": key_value(key),
        "UpdateExpression": expression,
        "ExpressionAttributeNames": names,
        "ExpressionAttributeValues": values,
    }
    if condition is not None:
        text, condition_values = condition
        update["ConditionExpression"] = text
        names["#v"] = "v"
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
    month_adds: dict[Key, dict[str, Decimal]] = {}
    counters: dict[Key, Decimal] = defaultdict(Decimal)
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
            counters[counter_key] += ONE
            counter_expiry[counter_key] = rollup.expires[day_key]
        adds = dict(rollup.counters.get(day_key, {})) if entry["usage"] else {}
        adds["v"] = ONE
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
            totals[(item["pk"]["S"], item["sk"]["S"])] = {
                "user": item.get("user", {}).get("S", item["pk"]["S"].removeprefix("USER#")),
                "source": item.get("source", {}).get("S", "none"),
                "tokens": float(item.get("tokens", {}).get("N", "0")),
                "cost_usd": float(item.get("cost_usd", {}).get("N", "0")),
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
        for user, _ in sorted(by_user.items(), key=lambda pair: (-pair[1][measure], pair[0]))[: keys.TOP_USERS_KEPT]
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
    rollup = rollup_batch(batch, settings, arrival)
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
        "items": len(rollup.counters),
        "users": len({user for user, _ in rollup.presence}),
        **result,
    }
    log("INFO", "aggregated", **summary)
    return summary


def handler(event: Mapping[str, Any], context: Any, clock: Seconds = wall_clock_seconds) -> dict[str, Any]:
    settings = Settings.from_environment(os.environ)
    store = RollupStore(boto3.client("dynamodb"), settings.table_name, clock)
    sqs = boto3.client("sqs")

    def queue(messages: Sequence[str]) -> None:
        send_to_queue(sqs, settings.failed_queue_url, messages)

    return aggregate(event, settings, store, queue, clock)
