"""The aggregator's fast reading of a metrics delivery (a reader of the fields the rollups need, integer sums,
costs applied per price) against the reference reading (a lake row per data point, decimal additions): the same
rollups, the same writes and the same quarantine reasons, for realistic, odd and hostile deliveries."""

from __future__ import annotations

import contextlib
import dataclasses
import gc
import gzip
import io
import json
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lambda_src.common import aws
from lambda_src.common.pricing import ModelPrice, PriceTable
from lambda_src.dashboard_aggregator import handler
from lambda_src.dashboard_aggregator.handler import (
    RollupStore,
    Settings,
    aggregate,
    number,
    reference_rollup_batch,
    rollup_batch,
)
from tests.clock import Clock
from tests.lambda_src.memory_table import MemoryTable
from tests.lambda_src.rollup_table import SONNET, canonical, usage
from tests.telemetry import METRICS_LOG_GROUP, Developer, emf_event, log_event, subscription_event

NOON = datetime(2026, 11, 23, 12, 1, tzinfo=UTC)
ARRIVAL = (NOON + timedelta(minutes=30)).timestamp()
ADA = Developer()
BOB = Developer(email=None, user_id="u-bob", account_uuid="acc-bob", team="data", session="s-2")
NOBODY = Developer(email=None, user_id=None, account_uuid=None, session="s-x")
OPUS = "claude-opus-5-5"  # not in the default price table


def settings_for(time_zone: str = "UTC", prices: PriceTable | None = None) -> Settings:
    chosen = Settings("rollups", {METRICS_LOG_GROUP: "metrics"}, "queue", ZoneInfo(time_zone), 90)
    return chosen if prices is None else dataclasses.replace(chosen, prices=prices)


def document(events: list[Any]) -> dict[str, Any]:
    return {"messageType": "DATA_MESSAGE", "logGroup": METRICS_LOG_GROUP, "logEvents": events}


def both(batch: dict[str, Any], chosen: Settings, arrival: float = ARRIVAL) -> tuple[tuple[Any, ...], ...]:
    with contextlib.redirect_stdout(io.StringIO()):
        return canonical(rollup_batch(batch, chosen, arrival)), canonical(
            reference_rollup_batch(batch, chosen, arrival)
        )


def assert_same(events: list[Any], chosen: Settings | None = None, arrival: float = ARRIVAL) -> tuple[Any, ...]:
    fast, reference = both(document(events), chosen or settings_for(), arrival)
    assert fast == reference
    return fast


@contextlib.contextmanager
def reference_reading() -> Iterator[None]:
    fast = handler.rollup_batch
    handler.rollup_batch = reference_rollup_batch
    try:
        yield
    finally:
        handler.rollup_batch = fast


def applied(payloads: list[bytes], chosen: Settings, arrival: float) -> tuple[dict[Any, Any], list[Any]]:
    table, queued = MemoryTable(), list[str]()
    store = RollupStore(table, "rollups", lambda: arrival, pause=lambda _: None)
    with contextlib.redirect_stdout(io.StringIO()):
        for payload in payloads:
            aggregate(subscription_event(payload), chosen, store, queued.extend, lambda: arrival)
    return table.items, [json.loads(message) for message in queued]


def assert_same_writes(deliveries: list[list[Any]], chosen: Settings | None = None) -> None:
    """Both readings through the whole aggregator: the same table, the same queued messages."""
    chosen = chosen or settings_for()
    payloads = [gzip.compress(json.dumps(document(events)).encode()) for events in deliveries]
    fast = applied(payloads, chosen, ARRIVAL)
    with reference_reading():
        reference = applied(payloads, chosen, ARRIVAL)
    assert fast == reference


# Realistic deliveries ------------------------------------------------------------------------------------------


def test_a_minute_of_every_metric_for_every_kind_of_user() -> None:
    events = usage(NOON, ADA) + usage(NOON, BOB, scale=3) + usage(NOON + timedelta(minutes=7), NOBODY)
    rollup = assert_same(events)
    assert rollup[6] == 3 * 13 and not rollup[5]
    assert_same_writes([events, usage(NOON + timedelta(minutes=2), ADA)])


def test_unknown_metrics_types_and_decisions_are_counted_alike() -> None:
    assert_same(
        [
            emf_event(NOON, ADA, {"claude_code.brand_new.count": 7}),
            emf_event(NOON, ADA, {"claude_code.lines_of_code.count": 4}, type="renamed"),
            emf_event(NOON, ADA, {"claude_code.code_edit_tool.decision": 2}, tool_name="Edit", decision="maybe"),
            emf_event(NOON, ADA, {"claude_code.token.usage": 9}, model=SONNET, type="thinking"),
            emf_event(NOON, ADA, {"claude_code.token.usage": 9}, model=SONNET),
            emf_event(NOON, ADA, {"claude_code.session.count": 1, "claude_code.brand_new.count": 2}),
        ]
    )


def test_unpriced_models_and_a_stack_price_cost_alike() -> None:
    events = [
        emf_event(NOON, ADA, {"claude_code.token.usage": 2000}, model=OPUS, type="input"),
        emf_event(NOON, ADA, {"claude_code.token.usage": 50_000}, model=OPUS, type="cacheRead"),
        emf_event(NOON, ADA, {"claude_code.cost.usage": 0.125}, model=OPUS),
        emf_event(NOON, BOB, {"claude_code.cost.usage": 0.011340000000000001}, model=SONNET),
        *usage(NOON, ADA)[:5],
    ]
    assert_same(events)
    contract = PriceTable.with_overrides({"claude-opus-5*": ModelPrice(4, 20, 0.4, 5.000001)})
    assert_same(events, settings_for(prices=contract))


@pytest.mark.parametrize(
    "zone", ["UTC", "Europe/Berlin", "Asia/Kathmandu", "Pacific/Chatham", "America/St_Johns", "Australia/Lord_Howe"]
)
def test_days_months_and_buckets_in_any_reporting_time_zone(zone: str) -> None:
    moments = [
        datetime(2026, 12, 31, 23, 59, 59, tzinfo=UTC),
        datetime(2027, 1, 1, 0, 0, 0, 1000, tzinfo=UTC),
        datetime(2026, 10, 25, 0, 59, 59, tzinfo=UTC),  # Berlin's clocks go back at 01:00 UTC
        datetime(2026, 10, 25, 1, 0, 0, tzinfo=UTC),
        datetime(2026, 4, 4, 15, 30, tzinfo=UTC),  # Lord Howe moves by half an hour
        datetime(2026, 11, 23, 18, 14, 59, 999_000, tzinfo=UTC),  # Kathmandu's midnight, +5:45
    ]
    events = [event for moment in moments for event in usage(moment, ADA)[:2]]
    assert_same(events, settings_for(zone), arrival=datetime(2027, 1, 1, 0, 30, tzinfo=UTC).timestamp())


def test_values_too_long_for_a_key_and_invalid_unicode() -> None:
    long = "x" * 5000
    mallory = Developer(email="m" * 3000 + "@example.com", team="t" * 2000, app_version="9" * 4000)
    broken = json.loads(emf_event(NOON, ADA, {"claude_code.token.usage": 5}, model=SONNET, type="input")["message"])
    broken["user.email"] = "ada\ud800@example.com"
    assert_same(
        [
            emf_event(NOON, mallory, {"claude_code.token.usage": 7}, model=long, type="input"),
            emf_event(NOON, ADA, {"claude_code.code_edit_tool.decision": 1}, tool_name=long, decision="accept"),
            log_event(NOON, json.dumps(broken)),
            emf_event(NOON, Developer(email="  padded@example.com  "), {"claude_code.token.usage": 1}, type="input"),
        ]
    )


# Odd and hostile log events ------------------------------------------------------------------------------------


def emf(changes: dict[str, Any], drop: tuple[str, ...] = (), at: datetime = NOON) -> dict[str, Any]:
    """A token usage log event with its EMF document changed (values the exporter would never write)."""
    message = json.loads(emf_event(at, ADA, {"claude_code.token.usage": 100}, model=SONNET, type="input")["message"])
    for name in drop:
        message.pop(name, None)
    message.update(changes)
    return log_event(at, json.dumps(message))


def nested(depth: int) -> dict[str, Any]:
    """A token usage log event with an array nested `depth` deep in its EMF metadata."""
    message = emf_event(NOON, ADA, {"claude_code.token.usage": 100}, model=SONNET, type="input")["message"]
    deep = '"Deep": ' + "[" * depth + '"deep"' + "]" * depth + ", "
    return log_event(NOON, message.replace('"_aws": {', '"_aws": {' + deep, 1))


HOSTILE: dict[str, Any] = {
    "not json": log_event(NOON, "{not json"),
    "NaN": log_event(NOON, '{"claude_code.token.usage": NaN, "type": "input"}'),
    "Infinity": log_event(NOON, '{"claude_code.token.usage": Infinity}'),
    "1e999": log_event(NOON, '{"claude_code.token.usage": 1e999}'),
    "negative": emf({"claude_code.token.usage": -50}),
    "negative zero": emf({"claude_code.token.usage": -0.0}),
    "absurd": emf({"claude_code.token.usage": 1e12}),
    "a cost over its ceiling": emf({"claude_code.cost.usage": 100_001.0}),
    "an integer of 25 digits": emf({"claude_code.token.usage": 10**24}),
    "a negative integer of 20 digits": emf({"claude_code.token.usage": -(10**19)}),
    "an attribute of 25 digits": log_event(
        NOON, '{"claude_code.token.usage": 5, "team.id": 1234567890123456789012345}'
    ),
    "not an object": log_event(NOON, "[1, 2]"),
    "no value": emf({}, drop=("claude_code.token.usage",)),
    "a declared metric without a value": emf({"claude_code.token.usage": "100"}),
    "a summary": emf({"claude_code.token.usage": {"Sum": 40, "Count": 2}}),
    "a summary of a flag": emf({"claude_code.token.usage": {"Sum": True}}),
    "a flag": emf({"claude_code.token.usage": True}),
    "a flag attribute": emf({"organization.id": False}),
    "a structured attribute": emf({"team.id": {"name": "platform"}, "os.type": ["darwin"]}),
    "null attributes": emf({"user.email": None, "model": None, "team.id": None}),
    "a number named like an attribute": emf({"model": 3, "type": 1.5}),
    "a numeric Version": emf({"Version": 7}),
    "_aws not an object": emf({"_aws": "EMF"}),
    "no _aws": emf({}, drop=("_aws",)),
    "a float timestamp": emf({"_aws": {"Timestamp": 1_795_435_260_000.5}}),
    "a zero timestamp": emf({"_aws": {"Timestamp": 0}}),
    "a flag timestamp": emf({"_aws": {"Timestamp": True}}),
    "a text timestamp": emf({"_aws": {"Timestamp": "now"}}),
    "odd directives": emf({"_aws": {"Timestamp": 1_795_435_260_000, "CloudWatchMetrics": [{"Metrics": "x"}]}}),
    "directives of the wrong kind": emf({"_aws": {"Timestamp": 1_795_435_260_000, "CloudWatchMetrics": "x"}}),
    "a directive that is a list": emf({"_aws": {"Timestamp": 1_795_435_260_000, "CloudWatchMetrics": [[1]]}}),
    "a declared metric of another name": emf(
        {"_aws": {"Timestamp": 1_795_435_260_000, "CloudWatchMetrics": [{"Metrics": [{"Name": "Version"}]}]}}
    ),
    "a metric declared as a number": emf(
        {"_aws": {"Timestamp": 1_795_435_260_000, "CloudWatchMetrics": [{"Metrics": [{"Name": 5}]}]}}
    ),
    "before 2025": emf({}, at=datetime(2024, 12, 31, 23, 59, tzinfo=UTC)),
    "after the arrival": emf({}, at=NOON + timedelta(hours=3)),
    "nested 200 deep": nested(200),
    "nested 1000 deep": nested(1000),
    "not a log event": "a string",
    "a number": 42,
    "no message": {"id": "x", "timestamp": 1},
    "a message that is not text": {"id": "y", "timestamp": 1, "message": {"a": 1}},
}


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_an_odd_log_event_beside_good_ones_gives_the_same_rollups_and_reasons(name: str) -> None:
    rollup = assert_same([HOSTILE[name], *usage(NOON, ADA)[:3]])
    assert rollup[6] >= 3


def test_every_odd_log_event_at_once_through_the_whole_aggregator() -> None:
    events = [*HOSTILE.values(), *usage(NOON, ADA), usage(NOON, ADA)[0]]  # and a duplicate
    assert_same(events)
    assert_same_writes([events])


# Sums the reference rounds -------------------------------------------------------------------------------------


def test_sums_beyond_28_digits_are_left_to_the_reference(monkeypatch: pytest.MonkeyPatch) -> None:
    events = [
        emf_event(NOON, ADA, {"claude_code.cost.usage": 5e4}, model=SONNET),
        emf_event(NOON, ADA, {"claude_code.cost.usage": 1.2345678901234567e-20}, model=SONNET),
        emf_event(NOON, ADA, {"claude_code.token.usage": 0.5}, model=SONNET, type="input"),
    ]
    used: list[bool] = []
    real = handler.reference_rollup_batch

    def spy(*args: Any) -> handler.Rollup:
        used.append(True)
        return real(*args)

    monkeypatch.setattr(handler, "reference_rollup_batch", spy)
    with contextlib.redirect_stdout(io.StringIO()):
        fast = canonical(handler.rollup_batch(document(events), settings_for(), ARRIVAL))
    assert used  # the fast reading found a sum it cannot give as the reference does
    assert fast == canonical(real(document(events), settings_for(), ARRIVAL))


def test_non_integral_values_and_tokens_sum_exactly() -> None:
    events = [
        emf_event(NOON, ADA, {"claude_code.token.usage": 0.5}, model=SONNET, type="input"),
        emf_event(NOON, ADA, {"claude_code.token.usage": 1e9}, model=SONNET, type="output"),
        emf_event(NOON, ADA, {"claude_code.active_time.total": 0.1, "claude_code.cost.usage": 0.2}, model=SONNET),
        emf_event(NOON, ADA, {"claude_code.active_time.total": 0.30000000000000004}),
    ]
    rollup = assert_same(events)
    assert rollup[0][("USER#ada@example.com", "DAY#2026-11-23")]["active_seconds"] == "0.4"


# Property: random deliveries -------------------------------------------------------------------------------------

DEVELOPERS = [ADA, BOB, NOBODY, Developer(email="eve@example.com", department="sales", app_version="2.1.0")]
METRICS = [
    "claude_code.token.usage",
    "claude_code.cost.usage",
    "claude_code.session.count",
    "claude_code.active_time.total",
    "claude_code.lines_of_code.count",
    "claude_code.code_edit_tool.decision",
    "claude_code.commit.count",
    "claude_code.future.metric",
]
VALUES = st.one_of(
    st.integers(0, 10**9),
    st.integers(-5, 10**10),
    st.floats(0, 1e9, allow_nan=False),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([0.0, -0.0, 0.5, 1e-7, 1.5e-12, 0.30000000000000004, 10**20]),
)


@st.composite
def log_events(draw: st.DrawFn) -> dict[str, Any]:
    at = NOON + timedelta(minutes=draw(st.integers(-3 * 1440, 90)), milliseconds=draw(st.integers(0, 59_999)))
    metrics = {
        metric: draw(VALUES) for metric in draw(st.lists(st.sampled_from(METRICS), min_size=0, max_size=2, unique=True))
    }
    attributes = {
        "model": draw(st.sampled_from([SONNET, OPUS, "", None, "claude-haiku-4-5"])),
        "type": draw(st.sampled_from(["input", "output", "cacheRead", "cacheCreation", "added", "removed", None])),
        "decision": draw(st.sampled_from(["accept", "reject", None])),
    }
    developer = draw(st.sampled_from(DEVELOPERS))
    message = json.loads(
        emf_event(at, developer, {"claude_code.token.usage": 1}, **{k: v for k, v in attributes.items() if v})[
            "message"
        ]
    )
    message.pop("claude_code.token.usage")
    message["_aws"]["CloudWatchMetrics"][0]["Metrics"] = [{"Name": name} for name in metrics]
    message.update(metrics)
    return log_event(at, json.dumps(message))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(log_events(), min_size=1, max_size=25), st.sampled_from(["UTC", "Asia/Kathmandu", "America/New_York"]))
def test_random_deliveries_give_the_same_rollups(events: list[dict[str, Any]], zone: str) -> None:
    events = events + events[: len(events) // 3]  # some log events twice
    assert_same(events, settings_for(zone))


def test_the_benchmark_hour_starts_the_same(benchmark_deliveries: Callable[[], list[bytes]]) -> None:
    payloads = benchmark_deliveries()
    chosen = settings_for()
    for payload in payloads:
        batch = json.loads(gzip.decompress(payload))
        fast, reference = both(batch, chosen, (NOON + timedelta(hours=2)).timestamp())
        assert fast == reference


@pytest.fixture
def benchmark_deliveries() -> Callable[[], list[bytes]]:
    from benchmarks.dashboard import deliveries

    return lambda: deliveries(60, active_minutes=3)[0][:4]


def test_the_deployed_client_skips_botocore_parameter_validation(monkeypatch: pytest.MonkeyPatch) -> None:
    made: dict[str, Any] = {}

    class Queue:
        def send_message_batch(self, **_: Any) -> dict[str, Any]:
            return {}

    def client(service: str, **options: Any) -> Any:
        made[service] = options
        return MemoryTable() if service == "dynamodb" else Queue()

    monkeypatch.setattr(aws.boto3, "client", client)
    for name, value in {
        "TABLE_NAME": "t",
        "METRICS_LOG_GROUP": METRICS_LOG_GROUP,
        "EVENTS_LOG_GROUP": "/e",
        "FAILED_QUEUE_URL": "q",
    }.items():
        monkeypatch.setenv(name, value)
    with contextlib.redirect_stdout(io.StringIO()):
        handler.handler({"awslogs": {"data": "not base64!"}}, None, clock=Clock(NOON))
    assert made["dynamodb"]["config"].parameter_validation is False
    assert Decimal(number(10**25)["N"]) == 10**25


def test_the_cyclic_garbage_collector_is_paused_for_a_delivery_and_back_after() -> None:
    during: list[bool] = []
    store = RollupStore(MemoryTable(), "rollups", Clock(NOON), pause=lambda _: None)
    with contextlib.redirect_stdout(io.StringIO()):
        aggregate({"awslogs": {"data": "not base64!"}}, settings_for(), store, lambda _: during.append(gc.isenabled()),
                  Clock(NOON))  # fmt: skip
    assert during == [False] and gc.isenabled()
