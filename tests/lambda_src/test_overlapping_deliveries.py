"""Two different deliveries that share log events (an overlap): each shared log event counts once, whichever
delivery comes first, however they interleave, across midnight and on retry (the aggregator's claims,
invariant 6 of its ledger). Against moto, except where a failure must be placed between two calls."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from botocore.exceptions import ClientError

from lambda_src.common import rollups as keys
from lambda_src.common.log_records import read_logs_batch
from lambda_src.dashboard_aggregator.handler import (
    CLAIMS_PER_REQUEST,
    UNCLAIMABLE_REASON,
    RollupStore,
    aggregate,
    claim_expression,
    claim_name,
    claim_plan,
    delivery_id,
)
from tests.clock import Clock
from tests.lambda_src.memory_table import ITEM_BYTES, MemoryTable
from tests.lambda_src.rollup_table import SONNET, Deployed, usage
from tests.telemetry import EVENTS_LOG_GROUP, METRICS_LOG_GROUP, Developer, api_request, logs_batch, subscription_event

NOON = datetime(2026, 11, 23, 12, 1, tzinfo=UTC)
DAY = "2026-11-23"
ADA = Developer()
MINUTE_TOKENS = 1000 + 200 + 10_000 + 400  # usage(): a minute's tokens


def tokens_of(deployed: Deployed, day: str = DAY) -> Decimal:
    return Decimal(deployed.item(keys.user_pk("ada@example.com"), f"DAY#{day}")["tokens"])


def duplicates(deployed: Deployed, day: str = DAY, kind: str = "metrics") -> int:
    return int(deployed.items().get((keys.quality_pk(day), f"duplicate#{kind}"), {}).get("log_events", 0))


def minutes(count: int, start: datetime = NOON) -> list[dict[str, Any]]:
    return [event for minute in range(count) for event in usage(start + timedelta(minutes=minute), ADA)]


def test_two_overlapping_deliveries_count_the_shared_log_events_once(deployed: Deployed) -> None:
    events = minutes(3)  # 36 log events
    first, second = events[:24], events[12:]  # 12 shared

    deployed.deliver(logs_batch(METRICS_LOG_GROUP, first))
    summary = deployed.deliver(logs_batch(METRICS_LOG_GROUP, second))

    assert tokens_of(deployed) == 3 * MINUTE_TOKENS
    assert summary["delivered_before"] == 12
    assert duplicates(deployed) == 12
    assert deployed.queued() == []


def test_the_later_delivery_may_hold_all_of_the_earlier_one_or_the_other_way_round(deployed: Deployed) -> None:
    events = minutes(2)
    deployed.deliver(logs_batch(METRICS_LOG_GROUP, events[:6]))
    deployed.deliver(logs_batch(METRICS_LOG_GROUP, events))  # a superset
    deployed.deliver(logs_batch(METRICS_LOG_GROUP, events[3:15]))  # a subset of both
    assert tokens_of(deployed) == 2 * MINUTE_TOKENS
    assert duplicates(deployed) == 6 + 12


def test_an_overlap_of_claude_code_events_counts_once(deployed: Deployed) -> None:
    requests = [
        api_request(NOON + timedelta(seconds=second), ADA, SONNET, (100, 10, 0, 0), 0.001) for second in range(6)
    ]
    counted = [
        deployed.deliver(logs_batch(EVENTS_LOG_GROUP, requests[:4]))["events"],
        deployed.deliver(logs_batch(EVENTS_LOG_GROUP, requests[2:]))["events"],
    ]
    assert counted == [4, 2]
    totals = [item for (pk, sk), item in deployed.items().items() if pk == keys.events_pk(DAY)]
    assert sum(item.get("requests", 0) for item in totals) == 6
    assert duplicates(deployed, kind="events") == 2


def test_retrying_either_overlapping_delivery_adds_nothing(deployed: Deployed) -> None:
    events = minutes(2)
    first, second = logs_batch(METRICS_LOG_GROUP, events[:18]), logs_batch(METRICS_LOG_GROUP, events[6:])
    deployed.deliver(first)
    deployed.deliver(second)
    before = deployed.items()

    for payload in (second, first, second):
        deployed.deliver(payload)

    assert deployed.items() == before
    assert tokens_of(deployed) == 2 * MINUTE_TOKENS


def test_an_overlap_arriving_while_the_first_delivery_is_failing_counts_once(aws_client: Callable[[str], Any]) -> None:
    """The first delivery claims its log events and fails before writing; the overlapping one comes and is
    applied; the first is retried after midnight. The shared log events are the first's, counted once."""
    late = datetime(2026, 11, 23, 23, 57, tzinfo=UTC)
    deployed = Deployed(aws_client, "rollups-overlap-failing", Clock(late + timedelta(minutes=2)))
    events = minutes(2, late)
    first, second = logs_batch(METRICS_LOG_GROUP, events[:18]), logs_batch(METRICS_LOG_GROUP, events[6:])
    failing = RollupStore(NoTransactions(deployed.dynamodb), deployed.table, deployed.clock, pause=lambda _: 0)
    with pytest.raises(ConnectionError):
        aggregate(subscription_event(first), deployed.settings, failing, deployed.queue, deployed.clock)

    overlapping = deployed.deliver(second)
    deployed.clock.set(late + timedelta(hours=1))  # the retry comes after midnight
    retried = deployed.deliver(first)

    assert overlapping["delivered_before"] == 12 and retried["delivered_before"] == 0
    assert tokens_of(deployed, "2026-11-23") == 2 * MINUTE_TOKENS
    assert duplicates(deployed, "2026-11-23") == 12  # counted on the day the overlapping delivery arrived


def test_concurrent_overlapping_claims_give_each_log_event_one_owner() -> None:
    """Two deliveries claim the same second's log events at once, their requests alternating: each log event
    ends with one owner, and the two deliveries' owned sets split the shared events between them."""
    table = MemoryTable()
    clock = Clock(NOON + timedelta(minutes=5))
    at = int(NOON.timestamp() * 1000)
    events = [{**event, "timestamp": at} for event in minutes(30)]  # 360 log events stamped in one second
    first, second = batch_of(events[:300]), batch_of(events[60:])
    plans = [claim_plan(batch, delivery_id(batch)) for batch in (first, second)]
    alternating = Alternating(table)
    with ThreadPoolExecutor(2) as pool:
        runs = [pool.submit(alternating.run, n, RollupStore(alternating, "rollups", clock), plans[n]) for n in (0, 1)]
        claims = [run.result() for run in runs]

    ids = [{event["id"] for event in batch["logEvents"]} for batch in (first, second)]
    owned = [ids[n] - claims[n].taken for n in (0, 1)]
    assert owned[0] & owned[1] == set()
    assert owned[0] | owned[1] == {event["id"] for event in events}
    assert claims[0].taken | claims[1].taken == ids[0] & ids[1]
    assert claims[0].taken and claims[1].taken  # the alternation let each claim some shared ones first
    assert [claim.requests for claim in claims] == [3, 3]  # 100 claims a request
    assert alternating.turns > 3


def test_a_claim_expression_stays_within_dynamodbs_expression_limits() -> None:
    expression = claim_expression(CLAIMS_PER_REQUEST)
    assert len(expression.encode()) <= 4096  # the longest expression DynamoDB takes
    assert expression.count("if_not_exists") <= 300 - 1  # operators and functions, with the TTL's `=`


def test_hostile_ids_and_timestamps_are_claimed_without_error(deployed: Deployed) -> None:
    good = usage(NOON, ADA)
    hostile = [
        {**good[0], "id": "\ud800" * 3},  # a lone surrogate: a str in JSON, not valid UTF-8
        {**good[1], "id": 7},  # not a string: identified by its content
        {**good[2], "id": "x" * 100_000},
        {**good[3], "timestamp": "noon"},
        {**good[4], "timestamp": 10**30},
    ]
    payload = logs_batch(METRICS_LOG_GROUP, [*hostile, *good[5:]])

    deployed.deliver(payload)
    again = deployed.deliver(payload)

    assert again["delivered_before"] == 0  # its own claims, found again
    assert tokens_of(deployed) == MINUTE_TOKENS
    assert len({claim_name(event_id) for event_id in ("\ud800", "\udc00", "a", "b")}) == 4


def test_a_log_event_whose_claim_item_is_full_is_quarantined_and_the_rest_applied(deployed: Deployed) -> None:
    """DynamoDB refuses an item over 400 KB: those log events are queued with the reason, never lost."""
    crowded, other = usage(NOON, ADA)[:4], usage(NOON + timedelta(seconds=1), ADA)[4:]
    payload = logs_batch(METRICS_LOG_GROUP, [*crowded, *other])
    batch = read_logs_batch(payload)
    ((key, _),) = (
        (key, names) for key, names in claim_plan(batch, delivery_id(batch)).items.items() if len(names) == 4
    )
    fill_to_the_limit(deployed, key)

    summary = deployed.deliver(payload)

    assert summary["quarantined"] == 4
    queued = deployed.queued()
    assert [message["reason"] for message in queued] == [UNCLAIMABLE_REASON] * 4
    assert {message["log_event"]["id"] for message in queued} == {event["id"] for event in crowded}
    assert deployed.item(keys.quality_pk(DAY), "malformed#metrics")["log_events"] == 4
    assert deployed.item(keys.user_pk("ada@example.com"), f"DAY#{DAY}")["sessions"] == 1  # from `other`


# Helpers ---------------------------------------------------------------------------------------------------


def fill_to_the_limit(deployed: Deployed, key: tuple[str, str]) -> None:
    """Store at `key` the largest item the table takes (found by bisection: moto counts sizes its own way)."""
    fits, too_big = 0, ITEM_BYTES + 1
    while too_big - fits > 1:
        size = (fits + too_big) // 2
        item = {"pk": {"S": key[0]}, "sk": {"S": key[1]}, "filler": {"B": b"\0" * size}}
        try:
            deployed.dynamodb.put_item(TableName=deployed.table, Item=item)
        except ClientError as error:
            if error.response["Error"]["Code"] != "ValidationException":
                raise
            too_big = size
        else:
            fits = size
    deployed.dynamodb.put_item(
        TableName=deployed.table, Item={"pk": {"S": key[0]}, "sk": {"S": key[1]}, "filler": {"B": b"\0" * fits}}
    )


def batch_of(events: list[dict[str, Any]]) -> dict[str, Any]:
    return json.loads(json.dumps({"logGroup": METRICS_LOG_GROUP, "logStream": "claude-code", "logEvents": events}))


class NoTransactions:
    """A DynamoDB client whose transactions fail in the network: a delivery that claimed and wrote nothing."""

    def __init__(self, client: Any) -> None:
        self.client = client
        self.exceptions = client.exceptions

    def transact_write_items(self, **_: Any) -> Any:
        raise ConnectionError("the network went away")

    def __getattr__(self, name: str) -> Any:
        return getattr(self.client, name)


class Alternating:
    """An in-memory table shared by two claiming threads whose UpdateItem calls take turns (while both run)."""

    def __init__(self, table: MemoryTable) -> None:
        self.table = table
        self.turn = 0
        self.turns = 0
        self.finished: set[int] = set()
        self.changed = threading.Condition()
        self.local = threading.local()

    def run(self, number: int, store: RollupStore, plan: Any) -> Any:
        self.local.number = number
        try:
            return store.claim(plan)
        finally:
            with self.changed:
                self.finished.add(number)
                self.changed.notify_all()

    def update_item(self, **request: Any) -> dict[str, Any]:
        number = self.local.number
        with self.changed:
            self.changed.wait_for(lambda: self.turn == number or (1 - number) in self.finished, timeout=10)
            response = self.table.update_item(**request)
            self.turn, self.turns = 1 - number, self.turns + 1
            self.changed.notify_all()
        return response
