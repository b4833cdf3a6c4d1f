"""Quota monitor, run on a schedule: every user with usage today or this month (in the reporting time zone) is
compared with the quota policy that applies to them, and an alert goes out when a threshold is crossed.

Usage is the dashboard aggregator's (one source of truth): the user day and month items, listed through the
rollup table's sparse usage index, so a run reads one item per user and period and nothing else. Policies are
the items the Quota component writes on `pulumi up` (common/quota_policies: user > team > department >
default, the chosen policy whole, a missing or 0 limit off).

Once per user, level and period: before publishing, the run claims an alert item keyed by the user, the period,
the limit and the highest threshold crossed, with a conditional write. A later run, a retried run or a run
that overlaps finds the claim and sends nothing; an idle user's usage does not change, so nothing repeats. A
claim whose publish failed is released so the next run tries again, and one left pending by a run that died
is taken over after LEASE_SECONDS. Only the highest threshold crossed is alerted: a user who jumps from 50% to
100% between runs gets one message, at 100%.

Each run also writes the users at or above their first threshold, sorted by percent, to the rollup table
(QUOTA#<day> / NEAR) for the dashboard's quota widget.

Environment: ROLLUP_TABLE, QUOTA_TABLE, ALERT_TOPIC_ARN, TIME_ZONE, POLICY_SOURCE (where an administrator
changes the policies, named in the alert).
"""

from __future__ import annotations

import json
import os
import re
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal
from zoneinfo import ZoneInfo

import boto3
from botocore.exceptions import BotoCoreError, ClientError

from lambda_src.common import rollups as keys
from lambda_src.common.clock import Instant, wall_clock_now
from lambda_src.common.dynamodb import plain_item
from lambda_src.common.logs import log
from lambda_src.common.quota_policies import (
    ALERT_PK_PREFIX,
    LIMIT_LABELS,
    POLICY_PK,
    PolicyBook,
    QuotaPolicy,
    policy_from_item,
)

LEASE_SECONDS = 15 * 60
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

    @classmethod
    def from_environment(cls, environment: Mapping[str, str]) -> Settings:
        return cls(
            rollup_table=environment["ROLLUP_TABLE"],
            quota_table=environment["QUOTA_TABLE"],
            topic_arn=environment["ALERT_TOPIC_ARN"],
            time_zone=ZoneInfo(environment.get("TIME_ZONE", "UTC")),
            policy_source=environment.get("POLICY_SOURCE", "the quota section of the stack configuration"),
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


def standings(usage: Mapping[Period, Mapping[str, Usage]], book: PolicyBook, now: datetime) -> list[Standing]:
    """Every user's standing against every limit of their policy, in every period. The team and department are
    the latest the user was seen with this month."""
    month_usage = next((users for period, users in usage.items() if period.kind == "month"), {})
    found = []
    for period, users in usage.items():
        for user, used in users.items():
            labels = month_usage.get(user, used)
            policy = book.effective(user, labels.team, labels.department)
            for limit_name, measure in LIMITS_OF_PERIOD[period.kind]:
                limit = policy.limit(limit_name)
                if limit is None:
                    continue
                amount = getattr(used, measure)
                projected = projected_total(amount, period, now)
                found.append(Standing(used, period, limit_name, amount, limit, projected, policy))
    return found


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

    def write_near_quota(self, item: Mapping[str, Any]) -> None:
        self.client.put_item(TableName=self.table, Item=dict(item))


def alert_key(standing: Standing) -> dict[str, Any]:
    return {
        "pk": {"S": f"{ALERT_PK_PREFIX}{standing.usage.user}"},
        "sk": {"S": f"{standing.period.sort_key}#{standing.limit_name}#{standing.level}"},
    }


class AlertLedger:
    """Alert claims in the quota table: a conditional write makes each alert once, across runs and retries."""

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
        return PolicyBook.of(policy_from_item(item) for item in items)

    def claim(self, standing: Standing, now: datetime) -> bool:
        """True when this run may send the alert: nobody has, and no other run is sending it."""
        expires = int(standing.period.end.timestamp()) + ALERT_KEPT_DAYS * 86400
        try:
            self.client.put_item(
                TableName=self.table,
                Item={
                    **alert_key(standing),
                    "state": {"S": "sending"},
                    "run_id": {"S": self.run_id},
                    "claimed_at": {"N": str(int(now.timestamp()))},
                    "percent": {"N": f"{standing.percent:.2f}"},
                    keys.TTL_ATTRIBUTE: {"N": str(expires)},
                },
                ConditionExpression="attribute_not_exists(pk) OR (#state = :sending AND claimed_at < :stale)",
                ExpressionAttributeNames={"#state": "state"},
                ExpressionAttributeValues={
                    ":sending": {"S": "sending"},
                    ":stale": {"N": str(int(now.timestamp()) - LEASE_SECONDS)},
                },
            )
        except self.client.exceptions.ConditionalCheckFailedException:
            return False
        return True

    def mark_sent(self, standing: Standing, message_id: str) -> None:
        self.client.update_item(
            TableName=self.table,
            Key=alert_key(standing),
            UpdateExpression="SET #state = :sent, message_id = :message",
            ConditionExpression="run_id = :run",
            ExpressionAttributeNames={"#state": "state"},
            ExpressionAttributeValues={
                ":sent": {"S": "sent"},
                ":message": {"S": message_id},
                ":run": {"S": self.run_id},
            },
        )

    def release(self, standing: Standing) -> None:
        self.client.delete_item(
            TableName=self.table,
            Key=alert_key(standing),
            ConditionExpression="run_id = :run AND #state = :sending",
            ExpressionAttributeNames={"#state": "state"},
            ExpressionAttributeValues={":run": {"S": self.run_id}, ":sending": {"S": "sending"}},
        )


@dataclass
class Report:
    users: int = 0
    standings: int = 0
    crossed: int = 0
    alerts_sent: int = 0
    already_sent: int = 0
    failed: list[str] = field(default_factory=list)


def run(
    now: datetime,
    settings: Settings,
    reader: UsageReader,
    ledger: AlertLedger,
    publish: Callable[[str, str], str],
) -> Report:
    """One monitor run. `publish(subject, body)` returns the message id."""
    book = ledger.policies()
    day, month = current_periods(now, settings.time_zone)
    usage = {month: reader.users(month), day: reader.users(day)}
    found = standings(usage, book, now)
    report = Report(users=len(usage[month] | usage[day]), standings=len(found))
    for standing in alerts_due(found):
        report.crossed += 1
        if not ledger.claim(standing, now):
            report.already_sent += 1
            continue
        subject, body = alert_message(standing, settings.policy_source)
        try:
            message_id = publish(subject, body)
        except (BotoCoreError, ClientError) as error:  # the claim is released: the next run sends it
            ledger.release(standing)
            report.failed.append(f"{standing.usage.user} {standing.limit_name}: {type(error).__name__}: {error}")
            continue
        ledger.mark_sent(standing, message_id)
        report.alerts_sent += 1
        log("INFO", "quota alert sent", user=standing.usage.user, limit=standing.limit_name, alert_level=standing.level,
            percent=round(standing.percent, 1), period=standing.period.name, policy=standing.policy.key)  # fmt: skip
    reader.write_near_quota(near_quota_item(found, day, now))
    return report


def alerts_due(found: Iterable[Standing]) -> list[Standing]:
    return sorted((s for s in found if s.level is not None), key=lambda s: (s.usage.user, s.limit_name))


def handler(event: Mapping[str, Any], context: Any, now: Instant = wall_clock_now) -> dict[str, Any]:
    settings = Settings.from_environment(os.environ)
    dynamodb, sns = boto3.client("dynamodb"), boto3.client("sns")
    reader = UsageReader(dynamodb, settings.rollup_table)
    ledger = AlertLedger(dynamodb, settings.quota_table, uuid.uuid4().hex)  # Lambda's retries reuse the request id

    def publish(subject: str, body: str) -> str:
        return str(sns.publish(TopicArn=settings.topic_arn, Subject=subject, Message=body)["MessageId"])

    report = run(now(), settings, reader, ledger, publish)
    summary = {
        "users": report.users,
        "standings": report.standings,
        "crossed": report.crossed,
        "alerts_sent": report.alerts_sent,
        "already_sent": report.already_sent,
        "failed": len(report.failed),
        "items_read": reader.items_read,
        "read_requests": reader.requests,
    }
    if report.failed:
        log("ERROR", "quota alerts could not be sent; they are retried on the next run", **summary,
            failures=report.failed[:20])  # fmt: skip
        raise RuntimeError(f"{len(report.failed)} quota alerts could not be sent")
    log("INFO", "quota run", **summary)
    return summary
