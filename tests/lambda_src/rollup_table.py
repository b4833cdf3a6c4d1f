"""A rollup table and failed-event queue in moto with the aggregator wired to them, and a minute of realistic
Claude Code usage, for the aggregator and widget tests."""

from __future__ import annotations

import json
from collections.abc import Callable, Collection, Iterable, Sequence
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from lambda_src.common import rollups as keys
from lambda_src.common.quota_policies import QuotaPolicy, policy_item
from lambda_src.dashboard_aggregator.handler import Rollup, RollupStore, Settings, aggregate, number, send_to_queue
from tests.clock import Clock
from tests.telemetry import (
    EVENTS_LOG_GROUP,
    METRICS_LOG_GROUP,
    Developer,
    arrival_of,
    emf_event,
    subscription_event,
)

SONNET = "us.anthropic.claude-sonnet-4-5-20250929-v1:0"
SONNET_VERSION = "claude-sonnet-4-5"  # the price table's key for the dated id


def canonical(rollup: Rollup) -> tuple[Any, ...]:
    """A rollup as DynamoDB sees it: numbers as written, every label, expiry, user bucket and quarantine."""
    return (
        {key: {name: number(value)["N"] for name, value in sums.items()} for key, sums in rollup.counters.items()},
        dict(rollup.expires),
        {key: dict(labels) for key, labels in rollup.labels.items() if labels},
        {key: sorted(buckets) for key, buckets in rollup.presence.items()},
        dict(rollup.user_groups),
        rollup.quarantined,
        rollup.data_points,
        rollup.events,
    )


def create_table(dynamodb: Any, name: str) -> None:
    """The rollup table as the Dashboard component declares it with Quota enabled (with the usage index)."""
    dynamodb.create_table(
        TableName=name,
        BillingMode="PAY_PER_REQUEST",
        AttributeDefinitions=[
            {"AttributeName": keys.PARTITION_KEY, "AttributeType": "S"},
            {"AttributeName": keys.SORT_KEY, "AttributeType": "S"},
            {"AttributeName": keys.USAGE_INDEX_KEY, "AttributeType": "S"},
        ],
        KeySchema=[
            {"AttributeName": keys.PARTITION_KEY, "KeyType": "HASH"},
            {"AttributeName": keys.SORT_KEY, "KeyType": "RANGE"},
        ],
        GlobalSecondaryIndexes=[
            {
                "IndexName": keys.USAGE_INDEX,
                "KeySchema": [
                    {"AttributeName": keys.USAGE_INDEX_KEY, "KeyType": "HASH"},
                    {"AttributeName": keys.PARTITION_KEY, "KeyType": "RANGE"},
                ],
                "Projection": {"ProjectionType": "INCLUDE", "NonKeyAttributes": list(keys.USAGE_INDEX_ATTRIBUTES)},
            }
        ],
    )


def create_quota_table(dynamodb: Any, name: str, policies: Iterable[QuotaPolicy]) -> None:
    """The Quota component's state table, with its policy items as `pulumi up` writes them."""
    dynamodb.create_table(
        TableName=name,
        BillingMode="PAY_PER_REQUEST",
        AttributeDefinitions=[
            {"AttributeName": key, "AttributeType": "S"} for key in (keys.PARTITION_KEY, keys.SORT_KEY)
        ],
        KeySchema=[
            {"AttributeName": keys.PARTITION_KEY, "KeyType": "HASH"},
            {"AttributeName": keys.SORT_KEY, "KeyType": "RANGE"},
        ],
    )
    for policy in policies:
        dynamodb.put_item(TableName=name, Item=policy_item(policy))


class Deployed:
    """The aggregator wired to a fresh table and queue in moto."""

    def __init__(self, aws_client: Callable[[str], Any], name: str, clock: Clock, time_zone: str = "UTC") -> None:
        self.dynamodb = aws_client("dynamodb")
        self.sqs = aws_client("sqs")
        create_table(self.dynamodb, name)
        self.queue_url = self.sqs.create_queue(QueueName=f"{name}-failed")["QueueUrl"]
        self.table = name
        self.settings = self.settings_for(name, self.queue_url, time_zone)
        self.clock = clock
        self.store = RollupStore(self.dynamodb, name, clock, pause=lambda _: None)

    @staticmethod
    def settings_for(table: str, queue_url: str, time_zone: str = "UTC") -> Settings:
        return Settings(
            table_name=table,
            log_groups={METRICS_LOG_GROUP: "metrics", EVENTS_LOG_GROUP: "events"},
            failed_queue_url=queue_url,
            time_zone=ZoneInfo(time_zone),
            ttl_days=90,
        )

    def queue(self, messages: Sequence[str]) -> None:
        send_to_queue(self.sqs, self.queue_url, messages)

    def deliver(self, payload: bytes | dict[str, Any]) -> dict[str, Any]:
        """Deliver as CloudWatch Logs does: after the events were written. The clock moves forward to a minute
        after the newest log event if it is earlier (a test that sets a later arrival keeps it)."""
        if isinstance(payload, bytes):
            arrival = datetime.fromtimestamp(arrival_of(payload) / 1000, UTC)
            if arrival > self.clock.now():
                self.clock.set(arrival)
        event = payload if isinstance(payload, dict) else subscription_event(payload)
        return aggregate(
            event,
            self.settings,
            self.store,
            self.queue,
            self.clock,
        )

    def item(self, pk: str, sk: str) -> dict[str, Any]:
        found = self.dynamodb.get_item(TableName=self.table, Key={"pk": {"S": pk}, "sk": {"S": sk}}).get("Item")
        assert found is not None, f"no item {pk} / {sk}"
        return {name: plain(value) for name, value in found.items()}

    def items(self) -> dict[tuple[str, str], dict[str, Any]]:
        scanned: dict[tuple[str, str], dict[str, Any]] = {}
        for page in self.dynamodb.get_paginator("scan").paginate(TableName=self.table):
            for item in page["Items"]:
                scanned[(item["pk"]["S"], item["sk"]["S"])] = {name: plain(value) for name, value in item.items()}
        return scanned

    def queued(self) -> list[dict[str, Any]]:
        messages: list[dict[str, Any]] = []
        while True:
            received = self.sqs.receive_message(QueueUrl=self.queue_url, MaxNumberOfMessages=10).get("Messages", [])
            if not received:
                return messages
            messages.extend(json.loads(message["Body"]) for message in received)


def plain(value: dict[str, Any]) -> Any:
    kind, content = next(iter(value.items()))
    if kind == "N":
        return Decimal(content)
    if kind == "NS":
        return sorted(int(v) for v in content)
    return content


def usage(at: datetime, developer: Developer, scale: int = 1) -> list[dict[str, Any]]:
    """A minute of work: tokens of every type, a session, lines, a commit, active time, edit decisions."""
    return [
        emf_event(at, developer, {"claude_code.token.usage": 1000 * scale}, model=SONNET, type="input"),
        emf_event(at, developer, {"claude_code.token.usage": 200 * scale}, model=SONNET, type="output"),
        emf_event(at, developer, {"claude_code.token.usage": 10_000 * scale}, model=SONNET, type="cacheRead"),
        emf_event(at, developer, {"claude_code.token.usage": 400 * scale}, model=SONNET, type="cacheCreation"),
        emf_event(at, developer, {"claude_code.cost.usage": 0.05 * scale}, model=SONNET),
        emf_event(at, developer, {"claude_code.session.count": 1}),
        emf_event(at, developer, {"claude_code.lines_of_code.count": 30 * scale}, type="added"),
        emf_event(at, developer, {"claude_code.lines_of_code.count": 5 * scale}, type="removed"),
        emf_event(at, developer, {"claude_code.commit.count": 1, "claude_code.pull_request.count": 1}),
        emf_event(at, developer, {"claude_code.active_time.total": 42.5}),
        emf_event(at, developer, {"claude_code.code_edit_tool.decision": 3}, tool_name="Edit", decision="accept"),
        emf_event(at, developer, {"claude_code.code_edit_tool.decision": 1}, tool_name="Write", decision="reject"),
    ]


class Failing:
    """A DynamoDB client whose `operation` raises `error` on the calls numbered in `calls` (from 1), or on every
    call: the network going away half way through a delivery, or DynamoDB refusing a request."""

    def __init__(self, client: Any, operation: str, error: Exception, calls: Collection[int] | None = None) -> None:
        self.client, self.operation, self.error, self.calls = client, operation, error, calls
        self.exceptions = client.exceptions
        self.made = 0

    def __getattr__(self, name: str) -> Any:
        if name != self.operation:
            return getattr(self.client, name)

        def call(**request: Any) -> Any:
            self.made += 1
            if self.calls is None or self.made in self.calls:
                raise self.error
            return getattr(self.client, name)(**request)

        return call


def failing_second_transaction(client: Any) -> Failing:
    """A client whose second transaction fails in the network: a delivery applied half way."""
    return Failing(client, "transact_write_items", ConnectionError("the network went away"), calls={2})
