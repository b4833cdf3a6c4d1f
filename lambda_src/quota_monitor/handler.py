"""Quota monitor, run on a schedule: every user with usage today or this month (in the reporting time zone) is
compared with the quota policy that applies to them, and an alert goes out when a threshold is crossed.

Usage is the dashboard aggregator's (one source of truth): the user day and month items, listed through the
rollup table's sparse usage index, so a run reads one item per user and period and nothing else. Policies are
the items the Quota component writes on `pulumi up` (common/quota_policies: user > team > department >
default, the chosen policy whole, a missing or 0 limit off).

At most once per user, limit, level and period, and exactly once unless SNS's answer is lost. SNS standard
topics (the only kind with email and HTTPS subscribers) cannot deduplicate a publish, so the run records what it
is about to do before it does it, in one alert item per user, period, limit and highest threshold crossed:

    claim (conditional write: no item, or a stale `claimed` one)          state claimed
    -> start (conditional on this run's claim)                           state publishing
    -> SNS Publish, without SDK retries (a retried publish is a second message)
    -> mark (conditional on this run's claim)                            state sent, with the message id

- SNS refused the publish (a 4xx answer, or no connection was made): the claim is released, the run fails, and
  the next run (or Lambda's retry of this one) sends the alert.
- The outcome is unknown (the response timed out or the connection dropped after the request went out, or a
  5xx answer): the alert may have gone out, so it is never sent again; its item says `unknown`, the run logs it
  and counts it in the AlertsInDoubt metric, whose alarm pages the operations topic.
- The mark failed after SNS took the message: the item stays `publishing` and the run fails; no run sends it
  again, and a later run reports it in doubt.
- A run died after its claim, before `start`: nothing was sent; another run takes the claim over after
  LEASE_SECONDS and sends it. A run that died after `start`: a later run finds the item still `publishing` after
  LEASE_SECONDS and reports it in doubt instead of sending it again.
- A later run, a retried run or one that overlaps finds the item and sends nothing; an idle user's usage does
  not change, so nothing repeats. Only the highest threshold crossed is alerted: a user who jumps from 50% to
  100% between runs gets one message, at 100%.

Policies are read with the configuration's rules (common/quota_policies): an item that breaks one is skipped
with a log line, counted in the PoliciesSkipped metric (alarmed) and listed in the run's data-quality item; the
users it would apply to are held (not checked against another policy), everyone else is checked.

Each run also writes the users at or above their first threshold, sorted by percent, to the rollup table
(QUOTA#<day> / NEAR) for the dashboard's quota widget, and what it could not do (QUOTA#<day> / QUALITY).

Environment: ROLLUP_TABLE, QUOTA_TABLE, ALERT_TOPIC_ARN, TIME_ZONE, POLICY_SOURCE (where an administrator
changes the policies, named in the alert); AWS_LAMBDA_FUNCTION_NAME (set by Lambda) is the metrics' dimension.
"""

from __future__ import annotations

import contextlib
import enum
import hashlib
import json
import math
import os
import re
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal
from zoneinfo import ZoneInfo

from botocore.config import Config
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectTimeoutError,
    EndpointConnectionError,
    HTTPClientError,
    ProxyConnectionError,
)
from botocore.exceptions import ConnectionError as NoConnectionError

from lambda_src.common import aws, dynamodb
from lambda_src.common import rollups as keys
from lambda_src.common.clock import Instant, wall_clock_now
from lambda_src.common.dynamodb import plain_item
from lambda_src.common.logs import log
from lambda_src.common.quota_policies import (
    ALERT_PK_PREFIX,
    ALERTS_IN_DOUBT_METRIC,
    LIMIT_LABELS,
    MONITOR_METRICS_NAMESPACE,
    POLICIES_SKIPPED_METRIC,
    POLICY_PK,
    QUOTA_QUALITY_SK,
    PolicyBook,
    QuotaPolicy,
    SkippedPolicy,
)

LEASE_SECONDS = 15 * 60
"""A claim whose run never started publishing is taken over after this long, and an item still `publishing` is
reported in doubt. Longer than the Lambda timeout (300 s), so the run that wrote it has ended."""
PUBLISH_RESERVE_SECONDS = 30
"""A run claims no more alerts when less than this is left before its timeout: a claim, a publish (read timeout
PUBLISH_CLIENT_CONFIG) and a mark must fit, so a timeout does not cut a publish in half."""
PUBLISH_CLIENT_CONFIG = Config(
    retries={"total_max_attempts": 1, "mode": "standard"}, connect_timeout=5, read_timeout=15
)
"""SNS client: no SDK retries (botocore retries a read timeout, which sends the message twice); short timeouts."""
PUBLISH_CONCURRENCY = 16
"""Alerts claimed and published at once: SNS takes 30,000 publishes a second in large regions, DynamoDB far more
conditional writes; 16 keeps a run of 15,000 alerts near a minute (docs/quota.md has the model)."""
CLAIMED, PUBLISHING, SENT, IN_DOUBT = "claimed", "publishing", "sent", "unknown"
LEGACY_SENDING = "sending"
"""The state of a claim by a monitor before `publishing` existed: it may have been published, as `publishing`."""
QUALITY_LIST_MAX = 50
ALERT_KEPT_DAYS = 45
"""Days an alert claim is kept after its period ends (a late retry of that period still finds it)."""
NEAR_KEPT_DAYS = 90
NEAR_LIST_MAX = 50
PROJECTION_MIN_SHARE = 0.05
"""The projection divides by at least this share of the period, so a minute of use at midnight does not
project to a thousand-fold total."""

PeriodKind = Literal["day", "month"]
LIMITS_OF_PERIOD: dict[PeriodKind, tuple[tuple[str, str], ...]] = {
    "day": (("daily_tokens", "tokens"), ("daily_usd", "cost_usd")),
    "month": (("monthly_tokens", "tokens"), ("monthly_usd", "cost_usd")),
}


@dataclass(frozen=True)
class Settings:
    rollup_table: str
    quota_table: str
    topic_arn: str
    time_zone: ZoneInfo
    policy_source: str
    function_name: str = "quota-monitor"

    @classmethod
    def from_environment(cls, environment: Mapping[str, str]) -> Settings:
        return cls(
            rollup_table=environment["ROLLUP_TABLE"],
            quota_table=environment["QUOTA_TABLE"],
            topic_arn=environment["ALERT_TOPIC_ARN"],
            time_zone=ZoneInfo(environment.get("TIME_ZONE", "UTC")),
            policy_source=environment.get("POLICY_SOURCE", "the quota section of the stack configuration"),
            function_name=environment.get("AWS_LAMBDA_FUNCTION_NAME", "quota-monitor"),
        )


# Periods ---------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Period:
    kind: PeriodKind
    name: str
    """2026-11-23 or 2026-11."""
    start: datetime
    end: datetime

    @property
    def sort_key(self) -> str:
        return keys.user_day_sk(self.name) if self.kind == "day" else keys.user_month_sk(self.name)

    def describe(self) -> str:
        return f"{self.kind} {self.name} ({self.start.tzinfo})"


def current_periods(now: datetime, zone: ZoneInfo) -> tuple[Period, Period]:
    """Today and this month in the reporting time zone: the aggregator's days and months (common/rollups)."""
    day = keys.local_day(now.timestamp(), zone)
    month = keys.month_of(day)
    return (
        Period(
            "day",
            day,
            datetime.fromisoformat(day).replace(tzinfo=zone),
            datetime.fromtimestamp(keys.day_end_epoch(day, zone), zone),
        ),
        Period(
            "month",
            month,
            datetime.fromisoformat(f"{month}-01").replace(tzinfo=zone),
            datetime.fromtimestamp(keys.month_end_epoch(month, zone), zone),
        ),
    )


def projected_total(used: float, period: Period, now: datetime) -> float:
    """The period's total if use goes on at its rate so far."""
    length = period.end.timestamp() - period.start.timestamp()  # not end - start: that ignores a DST change
    elapsed = max(now.timestamp() - period.start.timestamp(), length * PROJECTION_MIN_SHARE)
    return used * length / min(elapsed, length)


# Usage and standings ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Usage:
    user: str
    source: str
    """Which attribute identified the user: user.email, user.id or user.account_uuid."""
    team: str | None
    department: str | None
    tokens: float
    cost_usd: float
    unpriced_tokens: float


def usage_from_item(item: Mapping[str, Any]) -> Usage:
    values = plain_item(item)

    def group(name: str) -> str | None:
        value = values.get(name)
        return value if isinstance(value, str) and value != keys.UNATTRIBUTED else None

    return Usage(
        user=values.get("user") or str(values["pk"]).removeprefix("USER#"),
        source=values.get("source") or "none",
        team=group("team"),
        department=group("department"),
        tokens=float(values.get("tokens", 0.0)),
        cost_usd=float(values.get("cost_usd", 0.0)),
        unpriced_tokens=float(values.get("unpriced_tokens", 0.0)),
    )


@dataclass(frozen=True)
class Standing:
    """A user's use of one limit in one period."""

    usage: Usage
    period: Period
    limit_name: str
    used: float
    limit: float
    projected: float
    policy: QuotaPolicy

    @property
    def percent(self) -> float:
        # Rounded so that exact decimal usage at a threshold (0.84 of 1.05) is not 79.99999999999999 in binary.
        return round(100 * self.used / self.limit, 9)

    @property
    def level(self) -> int | None:
        """The highest threshold crossed, if any."""
        crossed = [threshold for threshold in self.policy.thresholds if self.percent >= threshold]
        return max(crossed) if crossed else None

    @property
    def in_usd(self) -> bool:
        return self.limit_name.endswith("_usd")


def applicable(
    usage: Mapping[Period, Mapping[str, Usage]], book: PolicyBook
) -> Iterator[tuple[Period, Usage, QuotaPolicy | SkippedPolicy]]:
    """Every user's usage in every period with the policy that applies (or the skipped item that would). The
    team and department are the latest the user was seen with this month."""
    month_usage = next((users for period, users in usage.items() if period.kind == "month"), {})
    for period, users in usage.items():
        for user, used in users.items():
            labels = month_usage.get(user, used)
            yield period, used, book.effective(user, labels.team, labels.department)


def standings(usage: Mapping[Period, Mapping[str, Usage]], book: PolicyBook, now: datetime) -> list[Standing]:
    """Every user's standing against every limit of their policy, in every period; held users have none."""
    found = []
    for period, used, policy in applicable(usage, book):
        if isinstance(policy, SkippedPolicy):
            continue
        for limit_name, measure in LIMITS_OF_PERIOD[period.kind]:
            limit = policy.limit(limit_name)
            if limit is None:
                continue
            amount = getattr(used, measure)
            projected = projected_total(amount, period, now)
            found.append(Standing(used, period, limit_name, amount, limit, projected, policy))
    return found


def held_users(usage: Mapping[Period, Mapping[str, Usage]], book: PolicyBook) -> dict[str, str]:
    """Users whose policy was skipped, with that policy's key: they are not checked until it is fixed."""
    return {
        used.user: policy.key or "?" for _, used, policy in applicable(usage, book) if isinstance(policy, SkippedPolicy)
    }


# Messages --------------------------------------------------------------------------------------------------


def amount_text(value: float, in_usd: bool) -> str:
    return f"${value:,.2f}" if in_usd else f"{value:,.0f} tokens"


def alert_message(standing: Standing, policy_source: str) -> tuple[str, str]:
    """(subject, body): who, the usage, the limit, the percent, the projection, the policy and how to change it."""
    s = standing
    level = s.level
    verb = "has reached" if level is not None and level >= 100 else "is at"
    subject = f"Claude Code quota: {s.usage.user} {verb} {s.percent:.0f}% of the {LIMIT_LABELS[s.limit_name]}"
    lines = [
        f"{s.usage.user} {verb} {s.percent:.1f}% of the {LIMIT_LABELS[s.limit_name]} (alert level {level}%).",
        "",
        f"Period:     {s.period.describe()}, ends {s.period.end.isoformat()}",
        f"Used:       {amount_text(s.used, s.in_usd)}",
        f"Limit:      {amount_text(s.limit, s.in_usd)}",
        f"Projected:  {amount_text(s.projected, s.in_usd)} by the end of the period at the current rate "
        f"({100 * s.projected / s.limit:.0f}% of the limit)",
        f"Policy:     {s.policy.describe()} (thresholds {', '.join(f'{t}%' for t in s.policy.thresholds)})",
        f"Alert id:   {alert_id(s)} (the same for any copy of this alert)",
    ]
    if s.usage.source != "user.email":
        lines.append(f"Identified: by {s.usage.source} (no user.email in this user's telemetry)")
    if s.in_usd and s.usage.unpriced_tokens:
        lines.append(
            f"Note:       {s.usage.unpriced_tokens:,.0f} tokens of models without a price are not in the USD figure"
        )
    lines += [
        "",
        f"To change the limits, edit {policy_source} (quota.users, quota.groups or quota.default) and run "
        "`pulumi up`. A user policy wins over a team policy, a team policy over a department policy, and those "
        "over the default; a limit of 0 turns it off.",
    ]
    return sns_subject(subject), "\n".join(lines)


def sns_subject(text: str) -> str:
    """SNS takes a subject of printable ASCII without line breaks, under 100 characters."""
    return re.sub(r"[^\x20-\x7e]", "?", text)[:99]


# The dashboard's view --------------------------------------------------------------------------------------


def near_quota_item(found: Sequence[Standing], day: Period, now: datetime) -> dict[str, Any]:
    """Users at or above the first threshold of their policy, each with their highest percent, most first."""
    highest: dict[str, Standing] = {}
    for standing in found:
        if standing.percent >= standing.policy.thresholds[0]:
            known = highest.get(standing.usage.user)
            if known is None or standing.percent > known.percent:
                highest[standing.usage.user] = standing
    ranked = sorted(highest.values(), key=lambda s: (-s.percent, s.usage.user))
    entries = [
        {
            "user": s.usage.user,
            "limit": s.limit_name,
            "used": round(s.used, 4),
            "quota": s.limit,
            "percent": round(s.percent, 1),
            "projected_percent": round(100 * s.projected / s.limit, 1),
            "policy": s.policy.key,
        }
        for s in ranked[:NEAR_LIST_MAX]
    ]
    return {
        "pk": {"S": keys.quota_pk(day.name)},
        "sk": {"S": keys.QUOTA_NEAR_SK},
        "entries": {"S": json.dumps(entries, sort_keys=True, separators=(",", ":"))},
        "users_near": {"N": str(len(ranked))},
        "users_over": {"N": str(sum(1 for s in ranked if s.percent >= 100))},
        "users_checked": {"N": str(len({s.usage.user for s in found}))},
        "updated_at": {"S": now.astimezone(UTC).isoformat(timespec="seconds")},
        keys.TTL_ATTRIBUTE: {"N": str(int(day.end.timestamp()) + NEAR_KEPT_DAYS * 86400)},
    }


# DynamoDB and SNS ------------------------------------------------------------------------------------------


class UsageReader:
    """Users with usage in a period, from the rollup table's usage index: one item per user, in shards."""

    def __init__(self, client: Any, table: str) -> None:
        self.client, self.table = client, table
        self.items_read = 0
        self.requests = 0

    def users(self, period: Period) -> dict[str, Usage]:
        found: dict[str, Usage] = {}
        for partition in keys.usage_periods(period.sort_key):
            request: dict[str, Any] = {
                "TableName": self.table,
                "IndexName": keys.USAGE_INDEX,
                "KeyConditionExpression": "#period = :period",
                "ExpressionAttributeNames": {"#period": keys.USAGE_INDEX_KEY},
                "ExpressionAttributeValues": {":period": {"S": partition}},
            }
            while True:
                response = self.client.query(**request)
                self.requests += 1
                for item in response.get("Items", []):
                    usage = usage_from_item(item)
                    found[usage.user] = usage
                self.items_read += len(response.get("Items", []))
                if "LastEvaluatedKey" not in response:
                    break
                request["ExclusiveStartKey"] = response["LastEvaluatedKey"]
        return found

    def write(self, item: Mapping[str, Any]) -> None:
        """One of the monitor's QUOTA#<day> items (the only ones its role may write in the rollup table)."""
        self.client.put_item(TableName=self.table, Item=dict(item))


def alert_key(standing: Standing) -> dict[str, Any]:
    return {
        "pk": {"S": f"{ALERT_PK_PREFIX}{standing.usage.user}"},
        "sk": {"S": f"{standing.period.sort_key}#{standing.limit_name}#{standing.level}"},
    }


def alert_id(standing: Standing) -> str:
    """A stable id of the alert (user, period, limit, level): every attempt and every copy carries the same."""
    key = alert_key(standing)
    return hashlib.sha256(f"{key['pk']['S']}\n{key['sk']['S']}".encode()).hexdigest()[:20]


def attribute(item: Mapping[str, Any] | None, name: str, kind: str) -> Any:
    value = (item or {}).get(name)
    return value.get(kind) if isinstance(value, Mapping) else None


class Claim(enum.Enum):
    """What a claim found."""

    CLAIMED = "claimed"
    """This run may send the alert."""
    TAKEN = "taken"
    """Sent, in doubt, or being sent by another run within its lease."""
    DOUBTED = "doubted"
    """Left `publishing` by a run that ended: this run marked it in doubt (it is never sent again)."""


class AlertLedger:
    """Alert items in the quota table: conditional writes make each alert at most once, across runs and retries
    (the states and what each failure leaves are in the module's docstring)."""

    def __init__(self, client: Any, table: str, run_id: str) -> None:
        self.client, self.table, self.run_id = client, table, run_id

    def policies(self) -> PolicyBook:
        items: list[dict[str, Any]] = []
        request: dict[str, Any] = {
            "TableName": self.table,
            "KeyConditionExpression": "pk = :pk",
            "ExpressionAttributeValues": {":pk": {"S": POLICY_PK}},
            "ConsistentRead": True,
        }
        while True:
            response = self.client.query(**request)
            items.extend(response.get("Items", []))
            if "LastEvaluatedKey" not in response:
                break
            request["ExclusiveStartKey"] = response["LastEvaluatedKey"]
        return PolicyBook.read(items)

    def settled(self, due: Sequence[Standing], now: datetime) -> set[str]:
        """Alert ids of the due alerts no claim can change now: sent, in doubt, or claimed or publishing by a run
        within its lease. Read in batches of 100, so a run does not spend a failed conditional write on each
        alert it sent before; what is left (no item, or a lapsed claim) goes to `claim`."""
        stale = int(now.timestamp()) - LEASE_SECONDS
        by_key = {(k["pk"]["S"], k["sk"]["S"]): alert_id(s) for s in due for k in (alert_key(s),)}
        found = dynamodb.batch_get(
            self.client,
            self.table,
            sorted(by_key),
            projection="pk, sk, #state, claimed_at, publishing_at",
            names={"#state": "state"},
            consistent=True,
        )
        settled = set()
        for item in found:
            state = attribute(item, "state", "S")
            started = attribute(item, "publishing_at", "N") or attribute(item, "claimed_at", "N") or "0"
            lapsed = state in (CLAIMED, PUBLISHING, LEGACY_SENDING) and float(started) < stale
            if not lapsed:
                settled.add(by_key[(item["pk"]["S"], item["sk"]["S"])])
        return settled

    def claim(self, standing: Standing, now: datetime) -> Claim:
        """CLAIMED when this run may send the alert: nobody has, nobody is, and no run died while sending it."""
        at = int(now.timestamp())
        try:
            self.client.update_item(
                TableName=self.table,
                Key=alert_key(standing),
                UpdateExpression="SET #state = :claimed, #run = :run, #claimed_at = :now, #alert = :alert, "
                "#percent = :percent, #expires = :expires ADD #attempts :one",
                ConditionExpression="attribute_not_exists(pk) OR (#state = :claimed AND #claimed_at < :stale)",
                ExpressionAttributeNames={
                    "#state": "state",
                    "#run": "run_id",
                    "#claimed_at": "claimed_at",
                    "#alert": "alert_id",
                    "#percent": "percent",
                    "#expires": keys.TTL_ATTRIBUTE,
                    "#attempts": "attempts",
                },
                ExpressionAttributeValues={
                    ":claimed": {"S": CLAIMED},
                    ":run": {"S": self.run_id},
                    ":now": {"N": str(at)},
                    ":alert": {"S": alert_id(standing)},
                    ":percent": {"N": f"{standing.percent:.2f}"},
                    ":expires": {"N": str(int(standing.period.end.timestamp()) + ALERT_KEPT_DAYS * 86400)},
                    ":one": {"N": "1"},
                    ":stale": {"N": str(at - LEASE_SECONDS)},
                },
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
        except self.client.exceptions.ConditionalCheckFailedException as error:
            return Claim.DOUBTED if self._notice_abandoned(standing, error.response.get("Item"), at) else Claim.TAKEN
        return Claim.CLAIMED

    def _notice_abandoned(self, standing: Standing, found: Mapping[str, Any] | None, at: int) -> bool:
        """An item left `publishing` past the lease: its run ended mid-publish or could not mark it. It may
        have been sent, so it is marked in doubt (once, by whichever run gets there first: True for that run),
        never sent again."""
        state = attribute(found, "state", "S")
        started = attribute(found, "publishing_at", "N") or attribute(found, "claimed_at", "N")
        owner = attribute(found, "run_id", "S")
        if state not in (PUBLISHING, LEGACY_SENDING) or owner is None or started is None:
            return False
        if float(started) >= at - LEASE_SECONDS:
            return False  # its run may still be publishing
        try:
            self._transition(standing, owner, state, {"state": {"S": IN_DOUBT}, "doubted_at": {"N": str(at)},
                             "doubt": {"S": "left publishing: its run ended or could not record it"}})  # fmt: skip
        except self.client.exceptions.ConditionalCheckFailedException:
            return False
        return True

    def start(self, standing: Standing, now: datetime) -> bool:
        """Record that this run is about to publish; False when another run has taken the claim over."""
        try:
            self._transition(
                standing,
                self.run_id,
                CLAIMED,
                {"state": {"S": PUBLISHING}, "publishing_at": {"N": str(int(now.timestamp()))}},
            )
        except self.client.exceptions.ConditionalCheckFailedException:
            return False
        return True

    def mark_sent(self, standing: Standing, message_id: str, now: datetime) -> None:
        self._transition(
            standing,
            self.run_id,
            PUBLISHING,
            {"state": {"S": SENT}, "message_id": {"S": message_id}, "sent_at": {"N": str(int(now.timestamp()))}},
        )

    def mark_in_doubt(self, standing: Standing, why: str, now: datetime) -> None:
        self._transition(
            standing,
            self.run_id,
            PUBLISHING,
            {"state": {"S": IN_DOUBT}, "doubt": {"S": why[:1000]}, "doubted_at": {"N": str(int(now.timestamp()))}},
        )

    def release(self, standing: Standing) -> None:
        """SNS refused the message: drop the claim, so that the next run sends it."""
        self.client.delete_item(
            TableName=self.table,
            Key=alert_key(standing),
            ConditionExpression="#run = :run AND #state = :publishing",
            ExpressionAttributeNames={"#run": "run_id", "#state": "state"},
            ExpressionAttributeValues={":run": {"S": self.run_id}, ":publishing": {"S": PUBLISHING}},
        )

    def _transition(self, standing: Standing, owner: str, state: str, values: Mapping[str, Any]) -> None:
        """Set `values` on the alert item if it is still in `state` under the run `owner`."""
        names = {f"#a{n}": name for n, name in enumerate(values)}
        self.client.update_item(
            TableName=self.table,
            Key=alert_key(standing),
            UpdateExpression="SET " + ", ".join(f"#a{n} = :a{n}" for n in range(len(values))),
            ConditionExpression="#run = :owner AND #state = :from",
            ExpressionAttributeNames={**names, "#run": "run_id", "#state": "state"},
            ExpressionAttributeValues={
                **{f":a{n}": value for n, value in enumerate(values.values())},
                ":owner": {"S": owner},
                ":from": {"S": state},
            },
        )


# Publishing ------------------------------------------------------------------------------------------------


def definitely_not_sent(error: BotoCoreError | ClientError) -> bool:
    """True when SNS cannot have accepted the message: it answered 4xx, or no connection was made, or the SDK
    failed before sending (credentials, parameters). A lost or 5xx answer, a dropped connection: maybe sent."""
    if isinstance(error, ClientError):
        status = error.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        return isinstance(status, int) and 400 <= status < 500
    if isinstance(error, EndpointConnectionError | ConnectTimeoutError | ProxyConnectionError):
        return True
    return not isinstance(error, HTTPClientError | NoConnectionError)  # raised before a request went out


@dataclass
class Report:
    users: int = 0
    standings: int = 0
    crossed: int = 0
    alerts_sent: int = 0
    already_sent: int = 0
    failed: list[str] = field(default_factory=list)
    """Not sent (SNS refused): the next run, or Lambda's retry of this one, sends them."""
    unrecorded: list[str] = field(default_factory=list)
    """Sent, but the alert item could not be marked: never sent again, reported in doubt by a later run."""
    in_doubt: list[str] = field(default_factory=list)
    """Maybe sent (the outcome was lost): never sent again; the AlertsInDoubt alarm."""
    deferred: int = 0
    """Not tried: the run was near its timeout. Unclaimed, so the next run sends them."""
    policies: int = 0
    skipped_policies: list[SkippedPolicy] = field(default_factory=list)
    held_users: dict[str, str] = field(default_factory=dict)

    def merge(self, alert: Report) -> None:
        """Add one alert's outcome (claim_and_send) to the run's."""
        self.alerts_sent += alert.alerts_sent
        self.already_sent += alert.already_sent
        self.failed += alert.failed
        self.unrecorded += alert.unrecorded
        self.in_doubt += alert.in_doubt


def no_deadline() -> float:
    return math.inf


def run(
    now: datetime,
    settings: Settings,
    reader: UsageReader,
    ledger: AlertLedger,
    publish: Callable[[str, str], str],
    seconds_left: Callable[[], float] = no_deadline,
) -> Report:
    """One monitor run. `publish(subject, body)` returns the message id; `seconds_left()` the time before the
    run is cut off."""
    book = ledger.policies()
    for skipped in book.skipped:
        log("WARNING", "quota policy item skipped: the users it applies to are not checked until it is fixed",
            policy=skipped.key, reason=skipped.reason, fix=f"{settings.policy_source}, then `pulumi up`")  # fmt: skip
    day, month = current_periods(now, settings.time_zone)
    usage = {month: reader.users(month), day: reader.users(day)}
    found = standings(usage, book, now)
    due = alerts_due(found)
    report = Report(
        users=len(usage[month] | usage[day]),
        standings=len(found),
        crossed=len(due),
        policies=len(book.policies),
        skipped_policies=list(book.skipped),
        held_users=held_users(usage, book),
    )
    settled = ledger.settled(due, now)
    report.already_sent += sum(1 for standing in due if alert_id(standing) in settled)
    pending = [standing for standing in due if alert_id(standing) not in settled]
    with ThreadPoolExecutor(max_workers=PUBLISH_CONCURRENCY) as pool:
        for start in range(0, len(pending), PUBLISH_CONCURRENCY):
            if seconds_left() < PUBLISH_RESERVE_SECONDS:
                report.deferred = len(pending) - start
                log("WARNING", "quota run near its timeout: the remaining alerts are left to the next run",
                    deferred=report.deferred)  # fmt: skip
                break
            batch = pending[start : start + PUBLISH_CONCURRENCY]
            for outcome in pool.map(lambda s: claim_and_send(s, settings, ledger, publish, now), batch):
                report.merge(outcome)
    reader.write(near_quota_item(found, day, now))
    reader.write(quality_item(report, day, now))
    return report


def claim_and_send(
    standing: Standing,
    settings: Settings,
    ledger: AlertLedger,
    publish: Callable[[str, str], str],
    now: datetime,
) -> Report:
    """One alert, on a worker thread: claim, start, publish, mark (see the module's docstring). Its outcome comes
    back as a Report of its own, merged by the run (no shared state between workers but the ledger's thread-safe
    client)."""
    outcome = Report()
    who = describe_alert(standing)
    claim = ledger.claim(standing, now)
    if claim is Claim.DOUBTED:
        outcome.in_doubt.append(f"{who}: left publishing (its run ended or could not record it)")
        log("ERROR", "quota alert in doubt: left publishing by a run that ended or could not record it; not sent again",
            **alert_fields(standing))  # fmt: skip
        return outcome
    if claim is not Claim.CLAIMED or not ledger.start(standing, now):
        outcome.already_sent += 1
        return outcome
    subject, body = alert_message(standing, settings.policy_source)
    try:
        message_id = publish(subject, body)
    except (BotoCoreError, ClientError) as error:
        what = f"{who}: {type(error).__name__}: {error}"
        if definitely_not_sent(error):
            outcome.failed.append(what)
            try:
                ledger.release(standing)
            except (BotoCoreError, ClientError) as stuck:  # it stays `publishing`: a later run reports it in doubt
                outcome.failed.append(f"{who}: the claim could not be released ({type(stuck).__name__}: {stuck})")
            return outcome
        outcome.in_doubt.append(what)
        log("ERROR", "quota alert in doubt: SNS may have sent it; it is not sent again", **alert_fields(standing),
            error=f"{type(error).__name__}: {error}")  # fmt: skip
        with contextlib.suppress(BotoCoreError, ClientError):  # else it stays `publishing`: a later run marks it
            ledger.mark_in_doubt(standing, what, now)
        return outcome
    outcome.alerts_sent += 1
    try:
        ledger.mark_sent(standing, message_id, now)
    except (BotoCoreError, ClientError) as error:
        outcome.unrecorded.append(f"{who}: sent as {message_id}, not recorded: {type(error).__name__}: {error}")
        log("ERROR", "quota alert sent but not recorded; it is not sent again", **alert_fields(standing),
            message_id=message_id, error=f"{type(error).__name__}: {error}")  # fmt: skip
        return outcome
    log("INFO", "quota alert sent", **alert_fields(standing), message_id=message_id)
    return outcome


def describe_alert(standing: Standing) -> str:
    return f"{standing.usage.user} {standing.limit_name} {standing.level}% {standing.period.name}"


def alert_fields(standing: Standing) -> dict[str, Any]:
    return {
        "user": standing.usage.user,
        "limit": standing.limit_name,
        "alert_level": standing.level,
        "percent": round(standing.percent, 1),
        "period": standing.period.name,
        "policy": standing.policy.key,
        "alert_id": alert_id(standing),
    }


def alerts_due(found: Iterable[Standing]) -> list[Standing]:
    return sorted((s for s in found if s.level is not None), key=lambda s: (s.usage.user, s.limit_name))


def quality_item(report: Report, day: Period, now: datetime) -> dict[str, Any]:
    """What the run could not do: policy items skipped and why, users held by them, alerts in doubt or not sent."""

    def listed(entries: Sequence[Mapping[str, Any] | str]) -> dict[str, str]:
        return {"S": json.dumps(list(entries[:QUALITY_LIST_MAX]), sort_keys=True, separators=(",", ":"))}

    return {
        "pk": {"S": keys.quota_pk(day.name)},
        "sk": {"S": QUOTA_QUALITY_SK},
        "policies": {"N": str(report.policies)},
        "policies_skipped": {"N": str(len(report.skipped_policies))},
        "skipped": listed([{"policy": s.key, "reason": s.reason} for s in report.skipped_policies]),
        "users_held": {"N": str(len(report.held_users))},
        "held": listed([{"user": user, "policy": key} for user, key in sorted(report.held_users.items())]),
        "alerts_in_doubt": {"N": str(len(report.in_doubt))},
        "in_doubt": listed(report.in_doubt),
        "alerts_not_sent": {"N": str(len(report.failed) + report.deferred)},
        "alerts_not_recorded": {"N": str(len(report.unrecorded))},
        "updated_at": {"S": now.astimezone(UTC).isoformat(timespec="seconds")},
        keys.TTL_ATTRIBUTE: {"N": str(int(day.end.timestamp()) + NEAR_KEPT_DAYS * 86400)},
    }


def metric_fields(settings: Settings, report: Report, at: datetime) -> dict[str, Any]:
    """The run's counts as embedded metric format: CloudWatch Logs turns the log line into metrics, so the role
    needs no cloudwatch:PutMetricData."""
    values = {
        POLICIES_SKIPPED_METRIC: len(report.skipped_policies),
        "UsersHeld": len(report.held_users),
        "AlertsSent": report.alerts_sent,
        ALERTS_IN_DOUBT_METRIC: len(report.in_doubt),
        "AlertsNotSent": len(report.failed) + report.deferred,
    }
    directive = {
        "Namespace": MONITOR_METRICS_NAMESPACE,
        "Dimensions": [["FunctionName"]],
        "Metrics": [{"Name": name, "Unit": "Count"} for name in values],
    }
    return {
        "_aws": {"Timestamp": int(at.timestamp() * 1000), "CloudWatchMetrics": [directive]},
        "FunctionName": settings.function_name,
        **values,
    }


def remaining_seconds(context: Any) -> Callable[[], float]:
    remaining = getattr(context, "get_remaining_time_in_millis", None)
    if not callable(remaining):
        return no_deadline
    return lambda: float(remaining()) / 1000


def handler(event: Mapping[str, Any], context: Any, now: Instant = wall_clock_now) -> dict[str, Any]:
    settings = Settings.from_environment(os.environ)
    tables, sns = aws.client("dynamodb"), aws.client("sns", PUBLISH_CLIENT_CONFIG)
    reader = UsageReader(tables, settings.rollup_table)
    ledger = AlertLedger(tables, settings.quota_table, uuid.uuid4().hex)  # Lambda's retries reuse the request id

    def publish(subject: str, body: str) -> str:
        return str(sns.publish(TopicArn=settings.topic_arn, Subject=subject, Message=body)["MessageId"])

    started = now()
    report = run(started, settings, reader, ledger, publish, remaining_seconds(context))
    summary = {
        "users": report.users,
        "standings": report.standings,
        "crossed": report.crossed,
        "alerts_sent": report.alerts_sent,
        "already_sent": report.already_sent,
        "failed": len(report.failed),
        "unrecorded": len(report.unrecorded),
        "in_doubt": len(report.in_doubt),
        "deferred": report.deferred,
        "policies": report.policies,
        "policies_skipped": len(report.skipped_policies),
        "users_held": len(report.held_users),
        "items_read": reader.items_read,
        "read_requests": reader.requests,
    }
    metrics = metric_fields(settings, report, started)
    if report.failed or report.unrecorded:
        log("ERROR", "quota alerts could not be sent or recorded; those not sent are sent by the next run", **summary,
            failures=(report.failed + report.unrecorded)[:20], **metrics)  # fmt: skip
        raise RuntimeError(
            f"{len(report.failed)} quota alerts not sent, {len(report.unrecorded)} sent but not recorded"
        )
    log("INFO", "quota run", **summary, **metrics)
    return summary
