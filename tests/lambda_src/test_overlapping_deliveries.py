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
    LEDGER_TTL_SECONDS,
    UNCLAIMABLE_REASON,
    RollupStore,
    aggregate,
    claim_expression,
    claim_name,
    claim_plan,
    delivery_id,
    item_too_large,
    number,
)
from tests.clock import Clock
from tests.lambda_src.memory_table import ITEM_BYTES, MemoryTable, item_bytes
from tests.lambda_src.rollup_table import SONNET, Deployed, Failing, usage
from tests.telemetry import EVENTS_LOG_GROUP, METRICS_LOG_GROUP, Developer, api_request, logs_batch, subscription_event

NOON = datetime(2026, 11, 23, 12, 1, tzinfo=UTC)
DAY = "2026-11-23"
ADA = Developer()
MINUTE_TOKENS = 1000 + 200 + 10_000 + 400  # usage(): a minute's tokens
CLAIM_BYTES = 12 + 8  # a claim's attribute name and its owner
NETWORK_GONE = ConnectionError("the network went away")


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
    with pytest.raises(ConnectionError):
        delivered_through(Failing(deployed.dynamodb, "transact_write_items", NETWORK_GONE), deployed, first)

    overlapping = deployed.deliver(second)
    deployed.clock.set(late + timedelta(hours=1))  # the retry comes after midnight
    retried = deployed.deliver(first)

    assert overlapping["delivered_before"] == 12 and retried["delivered_before"] == 0
    assert tokens_of(deployed, "2026-11-23") == 2 * MINUTE_TOKENS
    assert duplicates(deployed, "2026-11-23") == 12  # counted on the day the overlapping delivery arrived


def test_concurrent_overlapping_claims_give_each_log_event_one_owner() -> None:
    """Two deliveries share 200 log events stamped in two seconds, listed in opposite order, and claim at once,
    their requests alternating: the first wins the first second's shared events, the second the other's, and
    each log event ends with exactly one owner."""
    table = MemoryTable()
    clock = Clock(NOON + timedelta(minutes=5))

    def stamped(events: list[dict[str, Any]], second: int) -> list[dict[str, Any]]:
        return [{**event, "timestamp": int(NOON.timestamp() + second) * 1000} for event in events]

    events = minutes(17)  # 204
    early, late, own = stamped(events[:100], 0), stamped(events[100:200], 1), stamped(events[200:202], 2)
    first, second = batch_of([*early, *late, own[0]]), batch_of([*late, *early, own[1]])
    plans = [claim_plan(batch, delivery_id(batch)) for batch in (first, second)]
    alternating = Alternating(table)
    with ThreadPoolExecutor(2) as pool:
        runs = [pool.submit(alternating.run, n, RollupStore(alternating, "rollups", clock), plans[n]) for n in (0, 1)]
        claims = [run.result() for run in runs]

    assert claims[0].taken == {event["id"] for event in late}
    assert claims[1].taken == {event["id"] for event in early}
    assert [claim.requests for claim in claims] == [3, 3]  # one a second
    assert alternating.turns == 6


def test_a_claim_expression_stays_within_dynamodbs_expression_limits() -> None:
    expression = claim_expression(CLAIMS_PER_REQUEST)
    assert len(expression.encode()) <= 4096  # the longest expression DynamoDB takes
    assert expression.count("if_not_exists") + expression.count("=") <= 300  # operators and functions


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


def test_a_claim_item_with_room_for_some_claims_gives_the_rest_to_no_delivery() -> None:
    """The item has room for 2 of a second's 4 log events: the first delivery owns 2 and quarantines 2, and an
    overlapping one finds the same: no log event is both quarantined and counted, none counted twice."""
    table, queued = MemoryTable(), []
    clock = Clock(NOON + timedelta(minutes=5))
    store = RollupStore(table, "rollups", clock, pause=lambda _: None)
    at = int(NOON.timestamp() * 1000)
    events = [{**event, "timestamp": at} for event in usage(NOON, ADA)[:4]]
    batch = batch_of(events)
    ((key, _),) = claim_plan(batch, delivery_id(batch)).items.items()
    claimed = {"pk": {"S": key[0]}, "sk": {"S": key[1]}, "expires_at": number(int(clock()) + LEDGER_TTL_SECONDS)}
    room = ITEM_BYTES - item_bytes(claimed) - len("filler") - 2 * CLAIM_BYTES  # filler leaves room for 2 claims
    table.items[key] = {**claimed, "filler": {"B": b"\0" * room}}
    settings = Deployed.settings_for("rollups", queue_url="queue")

    first = aggregate(subscription_event(logs_batch(METRICS_LOG_GROUP, events)), settings, store, queued.extend, clock)
    second = aggregate(
        subscription_event(logs_batch(METRICS_LOG_GROUP, events[1:])), settings, store, queued.extend, clock
    )

    assert (first["quarantined"], first["delivered_before"]) == (2, 0)
    quarantined = {json.loads(message)["log_event"]["id"] for message in queued}
    assert len(quarantined) == 2
    counted = {event["id"] for event in events} - quarantined
    assert second["delivered_before"] == len(counted & {event["id"] for event in events[1:]})
    assert second["quarantined"] == len(quarantined & {event["id"] for event in events[1:]})
    tokens = sum(json.loads(event["message"])["claude_code.token.usage"] for event in events if event["id"] in counted)
    assert table.items[(keys.user_pk("ada@example.com"), f"DAY#{DAY}")]["tokens"] == {"N": str(float(tokens))}


def test_a_delivery_that_failed_while_claiming_and_an_overlap_that_came_meanwhile_count_once(
    deployed: Deployed,
) -> None:
    """The first delivery's second claim request fails (its first second is claimed, its second is not); the
    overlapping delivery claims the rest; the first, retried, owns what it claimed first."""
    events = minutes(2)  # two seconds of log events, one claim request each
    first, second = logs_batch(METRICS_LOG_GROUP, events), logs_batch(METRICS_LOG_GROUP, events[6:])
    with pytest.raises(ConnectionError):
        delivered_through(Failing(deployed.dynamodb, "update_item", NETWORK_GONE, calls={2}), deployed, first)

    overlapping = deployed.deliver(second)
    retried = deployed.deliver(first)

    assert overlapping["delivered_before"] == 6  # the first minute's second half, claimed before the failure
    assert retried["delivered_before"] == 12  # the second minute, claimed by the overlap meanwhile
    assert tokens_of(deployed) == 2 * MINUTE_TOKENS


def test_only_a_full_item_is_taken_for_a_full_item(deployed: Deployed) -> None:
    """Any other refusal of a claim is a bug: the invocation fails (Lambda retries, then queues the delivery)
    rather than quarantining the log events under a wrong reason."""
    full = "Item size to update has exceeded the maximum allowed size"
    other = "Invalid UpdateExpression: Expression size has exceeded the maximum allowed size"
    assert item_too_large(ClientError({"Error": {"Code": "ValidationException", "Message": full}}, "UpdateItem"))
    refusal = ClientError({"Error": {"Code": "ValidationException", "Message": other}}, "UpdateItem")
    assert not item_too_large(refusal)
    payload = logs_batch(METRICS_LOG_GROUP, usage(NOON, ADA))
    with pytest.raises(ClientError, match="Expression size"):
        delivered_through(Failing(deployed.dynamodb, "update_item", refusal), deployed, payload)
    assert deployed.queued() == []


# Helpers ---------------------------------------------------------------------------------------------------


def delivered_through(client: Any, deployed: Deployed, payload: bytes) -> dict[str, Any]:
    """Deliver `payload` to the deployed aggregator with `client` in place of its DynamoDB client."""
    store = RollupStore(client, deployed.table, deployed.clock, pause=lambda _: 0)
    return aggregate(subscription_event(payload), deployed.settings, store, deployed.queue, deployed.clock)


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
            turn = self.changed.wait_for(lambda: self.turn == number or (1 - number) in self.finished, timeout=30)
            assert turn, "the other claiming thread never took its turn"
            response = self.table.update_item(**request)
            self.turn, self.turns = 1 - number, self.turns + 1
            self.changed.notify_all()
        return response
