"""Hostile and broken input to the aggregator and the Firehose transform: a value that cannot be stored, a
number that cannot be a count, a time no dashboard shows, a delivery seen again in another form, and shapes
that are not CloudWatch Logs batches. Good data is never lost, nothing is counted twice, and no invocation
raises."""

from __future__ import annotations

import base64
import gzip
import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lambda_src.analytics_transform.handler import Settings as TransformSettings
from lambda_src.analytics_transform.handler import transform
from lambda_src.common import rollups as keys
from lambda_src.dashboard_aggregator.handler import RollupStore, aggregate
from tests.clock import Clock
from tests.lambda_src.memory_table import MemoryTable
from tests.lambda_src.rollup_table import SONNET, Deployed, failing_second_transaction, usage
from tests.telemetry import (
    EVENTS_LOG_GROUP,
    METRICS_LOG_GROUP,
    Developer,
    api_request,
    claude_event,
    emf_event,
    firehose_event,
    log_event,
    logs_batch,
    subscription_event,
)

NOON = datetime(2026, 11, 23, 12, 1, tzinfo=UTC)
DAY = "2026-11-23"
ADA = Developer()


def tokens_of(deployed: Deployed, user: str) -> Decimal:
    return deployed.item(keys.user_pk(user), f"DAY#{DAY}")["tokens"]


# Values that cannot be stored as they are ------------------------------------------------------------------


def test_values_too_long_for_a_key_are_bounded_and_the_delivery_is_applied(deployed: Deployed) -> None:
    long = "x" * 5000
    mallory = Developer(email="m" * 3000 + "@example.com", team="t" * 2000, app_version="9" * 4000)
    batch = [
        emf_event(NOON, mallory, {"claude_code.token.usage": 7}, model=long, type="input"),
        emf_event(NOON, ADA, {"claude_code.code_edit_tool.decision": 1}, tool_name=long, decision="accept"),
        *usage(NOON, ADA)[:2],
    ]
    result = deployed.deliver(logs_batch(METRICS_LOG_GROUP, batch))
    events = [
        claude_event(NOON, ADA, "x" * 3000),
        claude_event(NOON, ADA, "tool_result", tool_name=long, success="true"),
        claude_event(NOON, ADA, "api_error", model=long, status_code=529),
    ]
    assert deployed.deliver(logs_batch(EVENTS_LOG_GROUP, events))["quarantined"] == 0

    assert result["quarantined"] == 0 and tokens_of(deployed, ADA.email or "") == 1200
    long_user = mallory.email or ""
    item = deployed.item(keys.user_pk(long_user), f"DAY#{DAY}")
    assert item["tokens"] == 7 and item["user"].startswith("mmmm")
    assert all(len(pk.encode()) <= 2048 and len(sk.encode()) <= 1024 for pk, sk in deployed.items())
    assert keys.key_part(long) != keys.key_part(long + "y")  # distinct values stay distinct


def test_invalid_unicode_in_a_key_does_not_fail_the_delivery(deployed: Deployed) -> None:
    broken = Developer(email="ada\ud800@example.com")
    message = json.loads(emf_event(NOON, broken, {"claude_code.token.usage": 5}, model=SONNET, type="input")["message"])
    text = json.dumps(message)  # the lone surrogate travels as the JSON escape \ud800
    assert "\\ud800" in text
    result = deployed.deliver(logs_batch(METRICS_LOG_GROUP, [log_event(NOON, text), *usage(NOON, ADA)[:1]]))
    assert result["quarantined"] == 0
    assert tokens_of(deployed, "ada\\ud800@example.com") == 5


@pytest.mark.parametrize(
    ("metric", "value", "reason"),
    [
        ("claude_code.token.usage", -1000, "claude_code.token.usage value -1000.0 is outside 0 to 1e+09"),
        ("claude_code.cost.usage", -5.0, "claude_code.cost.usage value -5.0 is outside 0 to 100000"),
        ("claude_code.lines_of_code.count", -30, "claude_code.lines_of_code.count value -30.0 is outside 0 to 1e+09"),
        ("claude_code.token.usage", 1e300, "claude_code.token.usage value 1e+300 is outside 0 to 1e+09"),
    ],
)
def test_a_counter_that_goes_negative_or_absurd_is_quarantined_not_summed(
    deployed: Deployed, metric: str, value: float, reason: str
) -> None:
    hostile = emf_event(NOON, ADA, {metric: value}, model=SONNET, type="input")
    result = deployed.deliver(logs_batch(METRICS_LOG_GROUP, [hostile, *usage(NOON, ADA)[:2]]))
    assert result["quarantined"] == 1 and tokens_of(deployed, "ada@example.com") == 1200
    assert [message["reason"] for message in deployed.queued()] == [reason]
    assert deployed.item(f"QUALITY#{DAY}", "malformed#metrics")["log_events"] == 1


def test_event_numbers_that_cannot_be_counts_quarantine_the_event(deployed: Deployed) -> None:
    events = [
        api_request(NOON, ADA, SONNET, (-10, 20, 30, 40), 0.01),
        api_request(NOON, ADA, SONNET, (10, 20, 30, 40), -0.01),
        api_request(NOON, ADA, SONNET, (10, 20, 30, 40), 0.01),
    ]
    result = deployed.deliver(logs_batch(EVENTS_LOG_GROUP, events))
    assert (result["events"], result["quarantined"]) == (1, 2)
    assert sorted(message["reason"] for message in deployed.queued()) == [
        "cost_usd -0.01 is outside 0 to 1e+09",
        "input_tokens -10 is outside 0 to 1e+09",
    ]


# Times no dashboard or query shows ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("when", "reason"),
    [
        (datetime(2024, 12, 31, 23, 59, tzinfo=UTC), "timestamp before 2025-01-01"),
        (datetime(2031, 1, 1, tzinfo=UTC), "timestamp more than 3600 s after the delivery arrived"),
    ],
)
def test_usage_stamped_outside_the_window_is_quarantined_not_booked(
    deployed: Deployed, when: datetime, reason: str
) -> None:
    deployed.clock.set(NOON + timedelta(minutes=5))
    payload = logs_batch(METRICS_LOG_GROUP, [*usage(when, ADA)[:1], *usage(NOON, ADA)[:1]])
    result = aggregate(subscription_event(payload), deployed.settings, deployed.store, deployed.queue, deployed.clock)
    assert result["quarantined"] == 1 and tokens_of(deployed, "ada@example.com") == 1000
    assert [message["reason"] for message in deployed.queued()] == [reason]

    records = transform(firehose_event([payload]), TransformSettings({METRICS_LOG_GROUP: "metrics"}), accept, Clock())
    (record,) = records["records"]
    assert record["result"] == "Dropped"  # one row and one quarantine record, both put back


def accept(batch: list[bytes]) -> list[bool]:
    return [True] * len(batch)


# The same content, delivered again in another form ---------------------------------------------------------


def test_the_same_events_recompressed_or_reserialised_count_once(deployed: Deployed) -> None:
    events = usage(NOON, ADA)
    payload = logs_batch(METRICS_LOG_GROUP, events)
    deployed.deliver(payload)
    before = deployed.items()
    document = json.loads(gzip.decompress(payload))
    document["logEvents"].reverse()
    recompressed = gzip.compress(gzip.decompress(payload), compresslevel=1)
    reserialised = gzip.compress(json.dumps(document, indent=2, sort_keys=True).encode())
    assert recompressed != payload and reserialised != payload
    for again in (recompressed, reserialised):
        assert deployed.deliver(again)["chunks_already_applied"] >= 1
    assert deployed.items() == before


def test_a_log_event_twice_in_one_delivery_counts_once(deployed: Deployed) -> None:
    first = usage(NOON, ADA)[0]
    deployed.deliver(logs_batch(METRICS_LOG_GROUP, [first, first, *usage(NOON, ADA)[1:2]]))
    assert tokens_of(deployed, "ada@example.com") == 1200
    assert deployed.item(f"QUALITY#{DAY}", "duplicate#metrics")["log_events"] == 1


def test_a_half_applied_delivery_retried_after_midnight_matches_a_clean_run(
    aws_client: Callable[[str], Any],
) -> None:
    developers = [Developer(email=f"dev{i:03d}@example.com", team=f"team-{i % 7}") for i in range(40)]
    late = datetime(2026, 11, 23, 23, 58, tzinfo=UTC)
    bad = log_event(late, "{not json")  # counted on the arrival day: the day must not move on retry
    payload = logs_batch(METRICS_LOG_GROUP, [bad, *(e for dev in developers for e in usage(late, dev)[:2])])
    reference = Deployed(aws_client, "rollups-midnight-reference", Clock(late + timedelta(minutes=1)))
    reference.deliver(payload)

    retried = Deployed(aws_client, "rollups-midnight", Clock(late + timedelta(minutes=1)))

    failing = RollupStore(failing_second_transaction(retried.dynamodb), retried.table, retried.clock, pause=lambda _: 0)
    with pytest.raises(ConnectionError):
        aggregate(subscription_event(payload), retried.settings, failing, lambda _: None, retried.clock)
    retried.clock.set(late + timedelta(hours=1))  # the retry comes after midnight
    assert retried.deliver(payload)["chunks_already_applied"] == 1

    def without_ledger(deployed: Deployed) -> dict[tuple[str, str], dict[str, Any]]:
        return {
            key: {n: v for n, v in item.items() if n not in ("v", "expires_at")}
            for key, item in deployed.items().items()
            if not key[0].startswith("LEDGER#")
        }

    assert without_ledger(retried) == without_ledger(reference)
    assert retried.item("QUALITY#2026-11-23", "malformed#metrics")["log_events"] == 1


# Shapes that are not CloudWatch Logs batches ---------------------------------------------------------------


ODD_SHAPES = {
    "gzip of null": gzip.compress(b"null"),
    "gzip of a list": gzip.compress(b"[1, 2]"),
    "gzip of a number": gzip.compress(b"42"),
    "no messageType": gzip.compress(json.dumps({"logGroup": METRICS_LOG_GROUP, "logEvents": []}).encode()),
    "lower-case messageType": gzip.compress(
        json.dumps({"messageType": "data_message", "logGroup": METRICS_LOG_GROUP, "logEvents": []}).encode()
    ),
    "logGroup not a string": gzip.compress(
        json.dumps({"messageType": "DATA_MESSAGE", "logGroup": ["x"], "logEvents": []}).encode()
    ),
    "logEvents not a list": gzip.compress(
        json.dumps({"messageType": "DATA_MESSAGE", "logGroup": METRICS_LOG_GROUP, "logEvents": {"a": 1}}).encode()
    ),
}


@pytest.mark.parametrize("name", sorted(ODD_SHAPES))
def test_an_odd_delivery_is_counted_and_queued_never_ignored(deployed: Deployed, name: str) -> None:
    result = deployed.deliver(ODD_SHAPES[name])
    assert result["status"] == "unreadable"
    (message,) = deployed.queued()
    assert message["reason"] and base64.b64decode(message["payload"]) == ODD_SHAPES[name]
    day = keys.local_day(deployed.clock(), deployed.settings.time_zone)
    assert deployed.item(f"QUALITY#{day}", "malformed#delivery")["deliveries"] == 1


@pytest.mark.parametrize("name", sorted(ODD_SHAPES))
def test_an_odd_record_fails_alone_in_the_transform(name: str) -> None:
    good = logs_batch(METRICS_LOG_GROUP, usage(NOON, ADA)[:1])
    records = transform(
        firehose_event([ODD_SHAPES[name], good]),
        TransformSettings({METRICS_LOG_GROUP: "metrics"}),
        accept,
        Clock(NOON),
    )["records"]
    assert [record["result"] for record in records] == ["ProcessingFailed", "Ok"]


def test_log_events_that_are_not_objects_are_quarantined_alone(deployed: Deployed) -> None:
    payload = gzip.compress(
        json.dumps(
            {
                "messageType": "DATA_MESSAGE",
                "logGroup": METRICS_LOG_GROUP,
                "logEvents": ["a string", 42, None, [1], *usage(NOON, ADA)[:1]],
            }
        ).encode()
    )
    result = deployed.deliver(payload)
    assert result["quarantined"] == 4 and tokens_of(deployed, "ada@example.com") == 1000
    records = transform(
        firehose_event([payload]), TransformSettings({METRICS_LOG_GROUP: "metrics"}), accept, Clock(NOON)
    )["records"]
    assert [record["result"] for record in records] == ["Dropped"]  # its row and 4 quarantine records put back


# Property: random batches, splits, repeats and hostile values ------------------------------------------------

USERS = [Developer(email=f"p{i}@example.com", user_id=f"u-{i}", session=f"s-{i}") for i in range(4)]
HOSTILE = [
    lambda at: log_event(at, "{not json"),
    lambda at: log_event(at, '{"claude_code.token.usage": NaN, "type": "input"}'),
    lambda at: emf_event(at, USERS[0], {"claude_code.token.usage": -50}, model=SONNET, type="input"),
    lambda at: emf_event(at, USERS[1], {"claude_code.token.usage": 1e12}, model=SONNET, type="input"),
    lambda at: emf_event(datetime(2020, 1, 1, tzinfo=UTC), USERS[2], {"claude_code.token.usage": 9}, type="input"),
]


@st.composite
def deliveries(draw: st.DrawFn) -> tuple[list[list[dict[str, Any]]], dict[str, int], int]:
    """Valid token points and hostile events, cut into deliveries at random, some delivered again, and random
    stretches of them delivered once more in deliveries that overlap the others, in any order."""
    good = [
        emf_event(
            NOON + timedelta(minutes=draw(st.integers(0, 50))),
            user,
            {"claude_code.token.usage": draw(st.integers(0, 10_000))},
            model=SONNET,
            type=draw(st.sampled_from(["input", "output", "cacheRead", "cacheCreation"])),
        )
        for user in draw(st.lists(st.sampled_from(USERS), min_size=1, max_size=12))
    ]
    hostile = [draw(st.sampled_from(HOSTILE))(NOON) for _ in range(draw(st.integers(0, 4)))]
    events = draw(st.permutations([*good, *hostile]))
    cuts = sorted(draw(st.lists(st.integers(0, len(events)), max_size=4)))
    pieces = [events[a:b] for a, b in zip([0, *cuts], [*cuts, len(events)], strict=True) if events[a:b]]
    repeats = draw(st.lists(st.sampled_from(pieces), max_size=3)) if pieces else []
    bounds = st.integers(0, len(events))
    overlaps = [events[min(a, b) : max(a, b)] for a, b in draw(st.lists(st.tuples(bounds, bounds), max_size=3))]
    order = draw(st.permutations([*pieces, *repeats, *(overlap for overlap in overlaps if overlap)]))
    expected: dict[str, int] = {}
    for event in good:
        document = json.loads(event["message"])
        expected[document["user.email"]] = expected.get(document["user.email"], 0) + int(
            document["claude_code.token.usage"]
        )
    return order, expected, len(hostile)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(deliveries())
def test_totals_equal_the_valid_input_once_whatever_the_cuts_repeats_and_overlaps(
    case: tuple[list[list[dict[str, Any]]], dict[str, int], int],
) -> None:
    pieces, expected, hostile = case
    table, queued = MemoryTable(), []
    clock = Clock(NOON + timedelta(hours=1))
    store = RollupStore(table, "rollups", clock, pause=lambda _: None)
    settings_ = Deployed.settings_for("rollups", queue_url="queue")
    seen_hostile: set[str] = set()
    for piece in pieces:
        for compress in (gzip.compress, lambda data: gzip.compress(data, compresslevel=1)):
            payload = compress(json.dumps(logs_document(piece)).encode())
            aggregate(subscription_event(payload), settings_, store, queued.extend, clock)
        seen_hostile |= {event["id"] for event in piece if is_hostile(event)}
    totals = {
        item["user"]["S"]: int(Decimal(item["tokens"]["N"]))
        for (pk, sk), item in table.items.items()
        if pk.startswith("USER#") and sk.startswith("DAY#")
    }
    assert totals == expected
    reasons = [json.loads(message) for message in queued]
    assert {message["log_event"]["id"] for message in reasons} == seen_hostile
    assert all(message["reason"] for message in reasons)
    assert len(seen_hostile) <= hostile


def logs_document(events: list[dict[str, Any]]) -> dict[str, Any]:
    return {"messageType": "DATA_MESSAGE", "logGroup": METRICS_LOG_GROUP, "logEvents": events}


def is_hostile(event: dict[str, Any]) -> bool:
    try:
        document = json.loads(event["message"])
    except ValueError:
        return True
    value = document.get("claude_code.token.usage")
    timestamp = document.get("_aws", {}).get("Timestamp", 0)
    return not isinstance(value, int | float) or not 0 <= value <= 1e9 or timestamp < 1_735_689_600_000
