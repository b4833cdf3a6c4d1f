"""The dashboard aggregator against DynamoDB and SQS in moto: exact rollups, idempotent retries, late and malformed
input, users without email."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from types import SimpleNamespace
from typing import Any
from zoneinfo import ZoneInfo

import boto3
import pytest

from components.dashboard import aggregator_statements
from lambda_src.common import aws
from lambda_src.common import rollups as keys
from lambda_src.common.pricing import ModelPrice, PriceTable
from lambda_src.dashboard_aggregator.handler import LEDGER_TTL_SECONDS, RollupStore, aggregate, handler
from tests.clock import Clock
from tests.lambda_src.conftest import REGION
from tests.lambda_src.iam_grants import allowed, granted_actions, recording
from tests.lambda_src.rollup_table import SONNET, SONNET_VERSION, Deployed, failing_second_transaction, usage
from tests.telemetry import (
    EVENTS_LOG_GROUP,
    METRICS_LOG_GROUP,
    Developer,
    api_request,
    claude_event,
    control_message,
    emf_event,
    log_event,
    logs_batch,
    subscription_event,
)

NOON = datetime(2026, 11, 23, 12, 1, tzinfo=UTC)
DAY = "2026-11-23"
ADA = Developer()
BOB = Developer(email=None, user_id="u-bob", account_uuid="acc-bob", team="data", session="s-2")
CAROL = Developer(email=None, user_id=None, account_uuid="acc-carol", department="sales", team="field", session="s-3")


# Sonnet 4.5: input 3, output 15, cache read 0.3, cache write 3.75 USD per million tokens.
MINUTE_COST = Decimal("0.003") + Decimal("0.003") + Decimal("0.003") + Decimal("0.0015")


def test_a_known_batch_gives_exact_rollups_for_every_item_type(deployed: Deployed) -> None:
    result = deployed.deliver(logs_batch(METRICS_LOG_GROUP, usage(NOON, ADA) + usage(NOON, BOB, scale=2)))

    assert result["data_points"] == 26 and result["quarantined"] == 0 and result["users"] == 2
    ada = deployed.item("USER#ada@example.com", f"DAY#{DAY}")
    assert ada["tokens"] == 11_600
    assert (ada["tokens_input"], ada["tokens_output"], ada["tokens_cacheRead"], ada["tokens_cacheCreation"]) == (
        1000,
        200,
        10_000,
        400,
    )
    assert ada["cost_usd"] == MINUTE_COST
    assert ada["client_cost_usd"] == Decimal("0.05")
    assert (ada["sessions"], ada["lines_added"], ada["lines_removed"], ada["commits"], ada["pull_requests"]) == (
        1,
        30,
        5,
        1,
        1,
    )
    assert (ada["active_seconds"], ada["edits_accepted"], ada["edits_rejected"]) == (Decimal("42.5"), 3, 1)
    assert (ada["source"], ada["team"], ada["department"]) == ("user.email", "platform", "engineering")
    assert ada["buckets"] == [int(NOON.replace(minute=0).timestamp())]
    month = deployed.item("USER#ada@example.com", "MONTH#2026-11")
    assert month["tokens"] == 11_600 and month["cost_usd"] == MINUTE_COST

    bob = deployed.item("USER#u-bob", f"DAY#{DAY}")
    assert bob["source"] == "user.id" and bob["tokens"] == 23_200 and bob["cost_usd"] == 2 * MINUTE_COST

    assert deployed.item(f"ACTIVE#{DAY}", "2026-11-23T12:00Z")["users"] == 2
    assert deployed.item(f"ACTIVE#{DAY}", "DAY")["users"] == 2
    platform = deployed.item(f"GROUP#{DAY}", "team#platform")
    assert (platform["tokens"], platform["users"], platform["commits"]) == (11_600, 1, 1)
    engineering = deployed.item(f"GROUP#{DAY}", "department#engineering")
    assert (engineering["tokens"], engineering["users"]) == (34_800, 2)

    cache_reads = deployed.item(f"TOTAL#token.usage#{DAY}", f"2026-11-23T12:00Z#cacheRead#{SONNET_VERSION}")
    assert cache_reads["value"] == 30_000 and cache_reads["cost_usd"] == Decimal("0.009") and cache_reads["points"] == 2
    by_model = deployed.item("DAY#2026-11", f"{DAY}#{SONNET_VERSION}")
    assert by_model["cost_usd"] == 3 * MINUTE_COST and by_model["client_cost_usd"] == Decimal("0.15")
    no_model = deployed.item("DAY#2026-11", f"{DAY}#-")
    assert no_model["sessions"] == 2 and no_model["lines_added"] == 90

    assert deployed.item(f"QUALITY#{DAY}", "source#user.email")["points"] == 13
    assert deployed.item(f"QUALITY#{DAY}", "source#user.id")["tokens"] == 23_200
    assert deployed.item(f"QUALITY#{DAY}", "version#2.0.14")["points"] == 26

    top = json.loads(deployed.item(f"TOP#{DAY}", "RANK")["entries"])
    assert [(entry["user"], entry["tokens"]) for entry in top] == [("ada@example.com", 11_600), ("u-bob", 23_200)]
    assert json.loads(deployed.item("TOP#2026-11", "RANK")["entries"])[1]["cost_usd"] == float(2 * MINUTE_COST)


def test_every_item_expires_after_its_period_plus_the_ttl(deployed: Deployed) -> None:
    deployed.deliver(logs_batch(METRICS_LOG_GROUP, usage(NOON, ADA)))
    day_end = int(datetime(2026, 11, 24, tzinfo=UTC).timestamp()) + 90 * 86400
    month_end = int(datetime(2026, 12, 1, tzinfo=UTC).timestamp()) + 90 * 86400
    for (pk, sk), item in deployed.items().items():
        if pk.startswith(("LEDGER#", "CLAIM#")):  # kept as long as a delivery can be retried
            assert item["expires_at"] == int(deployed.clock()) + LEDGER_TTL_SECONDS, (pk, sk)
        elif sk.startswith("MONTH#") or (pk.startswith(("DAY#", "TOP#2026-11")) and len(pk) == len("TOP#2026-11")):
            assert item["expires_at"] == month_end, (pk, sk)
        else:
            assert item["expires_at"] == day_end, (pk, sk)


def test_the_same_delivery_twice_adds_nothing(deployed: Deployed) -> None:
    payload = logs_batch(METRICS_LOG_GROUP, usage(NOON, ADA) + usage(NOON, BOB))
    deployed.deliver(payload)
    before, written = deployed.items(), deployed.store.items_written

    again = deployed.deliver(payload)

    assert deployed.items() == before
    assert deployed.store.items_written == written
    assert again["chunks_already_applied"] == again["chunks"]


def test_a_delivery_that_failed_half_way_writes_only_what_is_missing_on_retry(
    deployed: Deployed, aws_client: Callable[[str], Any]
) -> None:
    developers = [Developer(email=f"dev{i:03d}@example.com", team=f"team-{i % 7}") for i in range(40)]
    payload = logs_batch(METRICS_LOG_GROUP, [event for dev in developers for event in usage(NOON, dev)[:2]])
    reference = Deployed(aws_client, "rollups-reference", deployed.clock)
    reference.deliver(payload)

    failing = RollupStore(
        failing_second_transaction(deployed.dynamodb), deployed.table, deployed.clock, pause=lambda _: None
    )
    with pytest.raises(ConnectionError):
        aggregate(subscription_event(payload), deployed.settings, failing, lambda _: None, deployed.clock)
    retried = deployed.deliver(payload)

    assert retried["chunks"] >= 2 and retried["chunks_already_applied"] == 1
    strip = {pk_sk: item for pk_sk, item in deployed.items().items() if not pk_sk[0].startswith("LEDGER#")}
    expected = {pk_sk: item for pk_sk, item in reference.items().items() if not pk_sk[0].startswith("LEDGER#")}
    assert {k: {n: v for n, v in i.items() if n != "v"} for k, i in strip.items()} == {
        k: {n: v for n, v in i.items() if n != "v"} for k, i in expected.items()
    }
    assert deployed.item(f"ACTIVE#{DAY}", "DAY")["users"] == 40


def test_distinct_users_are_counted_once_per_bucket_and_day_across_deliveries(deployed: Deployed) -> None:
    deployed.deliver(logs_batch(METRICS_LOG_GROUP, usage(NOON, ADA)[:1]))
    deployed.deliver(logs_batch(METRICS_LOG_GROUP, usage(NOON + timedelta(minutes=2), ADA)[:1]))
    deployed.deliver(logs_batch(METRICS_LOG_GROUP, usage(NOON + timedelta(minutes=10), ADA)[:1]))
    deployed.deliver(logs_batch(METRICS_LOG_GROUP, usage(NOON + timedelta(minutes=10), BOB)[:1]))

    assert deployed.item(f"ACTIVE#{DAY}", "2026-11-23T12:00Z")["users"] == 1
    assert deployed.item(f"ACTIVE#{DAY}", "2026-11-23T12:10Z")["users"] == 2
    assert deployed.item(f"ACTIVE#{DAY}", "DAY")["users"] == 2
    assert deployed.item(f"GROUP#{DAY}", "team#platform")["users"] == 1
    assert deployed.item("USER#ada@example.com", f"DAY#{DAY}")["tokens"] == 3000


def test_a_late_event_lands_in_the_bucket_and_day_of_its_own_time(deployed: Deployed) -> None:
    three_days_ago = NOON - timedelta(days=3, minutes=1)
    deployed.deliver(logs_batch(METRICS_LOG_GROUP, usage(NOON, ADA)[:1] + usage(three_days_ago, ADA)[:1]))

    assert deployed.item("USER#ada@example.com", "DAY#2026-11-20")["tokens"] == 1000
    assert deployed.item("USER#ada@example.com", f"DAY#{DAY}")["tokens"] == 1000
    assert deployed.item("ACTIVE#2026-11-20", "2026-11-20T12:00Z")["users"] == 1
    assert deployed.item("USER#ada@example.com", "MONTH#2026-11")["tokens"] == 2000
    assert deployed.item("TOTAL#token.usage#2026-11-20", f"2026-11-20T12:00Z#input#{SONNET_VERSION}")["value"] == 1000


def test_days_and_months_follow_the_reporting_time_zone(aws_client: Callable[[str], Any], clock: Clock) -> None:
    berlin = Deployed(aws_client, "rollups-berlin", clock, time_zone="Europe/Berlin")
    new_year_in_berlin = datetime(2026, 12, 31, 23, 30, tzinfo=UTC)
    berlin.deliver(logs_batch(METRICS_LOG_GROUP, usage(new_year_in_berlin, ADA)[:1]))

    assert berlin.item("USER#ada@example.com", "MONTH#2027-01")["tokens"] == 1000
    assert berlin.item("ACTIVE#2027-01-01", "2026-12-31T23:30Z")["users"] == 1


def test_users_without_email_are_attributed_by_user_id_then_account_uuid(deployed: Deployed) -> None:
    nobody = Developer(email=None, user_id=None, account_uuid=None, session="s-x")
    deployed.deliver(
        logs_batch(METRICS_LOG_GROUP, usage(NOON, CAROL)[:1] + usage(NOON, BOB)[:1] + usage(NOON, nobody)[:1])
    )

    assert deployed.item("USER#acc-carol", f"DAY#{DAY}")["source"] == "user.account_uuid"
    assert deployed.item("USER#u-bob", f"DAY#{DAY}")["source"] == "user.id"
    assert deployed.item(f"QUALITY#{DAY}", "source#none")["tokens"] == 1000
    assert deployed.item("DAY#2026-11", f"{DAY}#{SONNET_VERSION}")["tokens"] == 3000  # unattributed still counts
    assert deployed.item(f"ACTIVE#{DAY}", "DAY")["users"] == 2


def test_malformed_log_events_are_counted_and_queued_and_the_good_ones_kept(deployed: Deployed) -> None:
    good = usage(NOON, ADA)[:2]
    bad = [
        log_event(NOON, "{not json"),
        log_event(NOON, '{"claude_code.token.usage": NaN, "type": "input"}'),
        log_event(NOON, '{"claude_code.token.usage": Infinity}'),
        log_event(NOON, json.dumps({"_aws": {"Timestamp": 1, "CloudWatchMetrics": [{"Metrics": [{"Name": "x"}]}]}})),
    ]
    unknown_metric = emf_event(NOON, ADA, {"claude_code.brand_new.count": 7})
    no_attributes = log_event(
        NOON, json.dumps({"claude_code.token.usage": 50, "_aws": {"Timestamp": 1_795_000_000_000}})
    )
    deployed.clock.set(datetime(2026, 11, 24, 0, 5, tzinfo=UTC))  # the delivery arrives just after midnight
    result = deployed.deliver(logs_batch(METRICS_LOG_GROUP, [*good, *bad, unknown_metric, no_attributes]))

    assert result["quarantined"] == 4
    assert deployed.item("USER#ada@example.com", f"DAY#{DAY}")["tokens"] == 1200  # good events: their own day
    assert deployed.item("QUALITY#2026-11-24", "malformed#metrics")["log_events"] == 4  # malformed: the arrival day
    assert ("QUALITY#2026-11-23", "malformed#metrics") not in deployed.items()
    assert deployed.item(f"QUALITY#{DAY}", "unknown_metric#claude_code.brand_new.count")["points"] == 1
    unattributed_day = keys.local_day(1_795_000_000, ZoneInfo("UTC"))
    assert deployed.item(f"QUALITY#{unattributed_day}", "source#none")["tokens"] == 50
    assert deployed.item(f"DAY#{unattributed_day[:7]}", f"{unattributed_day}#-")["unpriced_tokens"] == 50
    queued = deployed.queued()
    assert sorted(message["reason"] for message in queued) == [
        "declared metric without a numeric value: x",
        "message is not JSON",
        "non-finite number Infinity",
        "non-finite number NaN",
    ]
    assert all(message["log_group"] == METRICS_LOG_GROUP and message["log_event"]["id"] for message in queued)


def test_an_unreadable_delivery_is_queued_whole_and_counted(deployed: Deployed) -> None:
    truncated = logs_batch(METRICS_LOG_GROUP, usage(NOON, ADA))[:-20]
    assert deployed.deliver(truncated)["status"] == "unreadable"
    assert deployed.deliver({"not": "a subscription event"})["status"] == "unreadable"

    queued = deployed.queued()
    assert [message["reason"] for message in queued] == [
        "not a readable CloudWatch Logs batch (gzip/JSON)",
        "not a CloudWatch Logs subscription event (awslogs.data)",
    ]
    arrival_day = keys.local_day(deployed.clock(), ZoneInfo("UTC"))
    assert deployed.item(f"QUALITY#{arrival_day}", "malformed#delivery")["deliveries"] == 1


def test_control_messages_write_nothing(deployed: Deployed) -> None:
    assert deployed.deliver(control_message(METRICS_LOG_GROUP))["status"] == "control message"
    assert deployed.items() == {}


def test_a_log_group_it_does_not_read_is_quarantined_not_counted(deployed: Deployed) -> None:
    result = deployed.deliver(logs_batch("/somebody/else", usage(NOON, ADA)[:1]))
    assert result["quarantined"] == 1 and result["data_points"] == 0
    assert "is not one the aggregator reads" in deployed.queued()[0]["reason"]


def test_events_become_day_totals_by_model_status_and_tool(deployed: Deployed) -> None:
    events = [
        api_request(NOON, ADA, SONNET, (10, 20, 30, 40), 0.01),
        api_request(NOON, BOB, SONNET, (10, 20, 30, 40), 0.01),
        claude_event(NOON, ADA, "api_error", model=SONNET, status_code="429", error="rate limited", duration_ms="90"),
        claude_event(NOON, ADA, "tool_result", tool_name="Bash", success="true", duration_ms="12"),
        claude_event(NOON, ADA, "tool_result", tool_name="Bash", success="false", duration_ms="40"),
        claude_event(NOON, ADA, "tool_decision", tool_name="Edit", decision="accept", source="config"),
        claude_event(NOON, ADA, "user_prompt", prompt_length="120"),
    ]
    result = deployed.deliver(logs_batch(EVENTS_LOG_GROUP, events))

    assert result["events"] == 7
    requests = deployed.item(f"EVENTS#{DAY}", f"api_request#{SONNET_VERSION}")
    assert (requests["requests"], requests["duration_ms"], requests["latency_le_2000"]) == (2, 2400, 2)
    assert deployed.item(f"EVENTS#{DAY}", f"api_error#{SONNET_VERSION}#429")["errors"] == 1
    bash = deployed.item(f"EVENTS#{DAY}", "tool_result#Bash")
    assert (bash["succeeded"], bash["failed"]) == (1, 1)
    assert deployed.item(f"EVENTS#{DAY}", "tool_decision#Edit#accept")["decisions"] == 1
    assert deployed.item(f"EVENTS#{DAY}", "user_prompt")["prompt_length"] == 120
    assert deployed.item(f"QUALITY#{DAY}", "source#user.id")["events"] == 1


def test_an_oversized_malformed_event_is_queued_with_its_start_and_its_id(deployed: Deployed) -> None:
    huge = log_event(NOON, "{" + "x" * 300_000)
    deployed.deliver(logs_batch(METRICS_LOG_GROUP, [huge]))
    (message,) = deployed.queued()
    assert message["truncated"] is True and message["log_event_id"] == huge["id"]
    assert message["message_start"].startswith("{xxx")


def test_the_handler_reads_its_settings_from_the_environment(
    deployed: Deployed, monkeypatch: pytest.MonkeyPatch, moto_endpoint: str
) -> None:
    from lambda_src.dashboard_aggregator import handler as module

    environment = {
        "TABLE_NAME": deployed.table,
        "METRICS_LOG_GROUP": METRICS_LOG_GROUP,
        "EVENTS_LOG_GROUP": EVENTS_LOG_GROUP,
        "FAILED_QUEUE_URL": deployed.queue_url,
        "TIME_ZONE": "UTC",
        "ROLLUP_TTL_DAYS": "90",
        "AWS_ENDPOINT_URL": moto_endpoint,
    }
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    result = module.handler(
        subscription_event(logs_batch(METRICS_LOG_GROUP, usage(NOON, ADA)[:1])), None, clock=deployed.clock
    )
    assert result["status"] == "ok"
    assert deployed.item("USER#ada@example.com", f"DAY#{DAY}")["tokens"] == 1000


def test_a_model_the_table_does_not_price_costs_what_the_client_reported(deployed: Deployed) -> None:
    opus = "claude-opus-5-5"  # the client's default model, newer than the table
    batch = [
        emf_event(NOON, ADA, {"claude_code.token.usage": 2000}, model=opus, type="input"),
        emf_event(NOON, ADA, {"claude_code.token.usage": 50_000}, model=opus, type="cacheRead"),
        emf_event(NOON, ADA, {"claude_code.cost.usage": 0.125}, model=opus),
        *usage(NOON, ADA)[:5],  # Sonnet: priced by the table, its client cost kept beside
    ]
    deployed.deliver(logs_batch(METRICS_LOG_GROUP, batch))

    ada = deployed.item("USER#ada@example.com", f"DAY#{DAY}")
    sonnet_priced = Decimal("0.003") + Decimal("0.003") + Decimal("0.003") + Decimal("0.0015")
    assert ada["cost_usd"] == Decimal("0.125") + sonnet_priced  # never $0 for what the client priced
    assert ada["client_cost_usd"] == Decimal("0.125") + Decimal("0.05")
    assert ada["unpriced_tokens"] == 52_000
    unpriced = deployed.item(f"QUALITY#{DAY}", f"unpriced#{opus}")
    assert (unpriced["unpriced_tokens"], unpriced["unpriced_cost_usd"]) == (52_000, Decimal("0.125"))
    assert deployed.item("DAY#2026-11", f"{DAY}#{opus}")["cost_usd"] == Decimal("0.125")


def test_a_stack_price_re_prices_tokens_and_the_client_cost_stays_beside(
    aws_client: Callable[[str], Any], clock: Clock
) -> None:
    contract = Deployed(aws_client, "rollups-contract", clock)
    contract.settings = dataclasses.replace(
        contract.settings, prices=PriceTable.with_overrides({"claude-opus-5*": ModelPrice(4, 20, 0.4, 5)})
    )
    batch = [
        emf_event(NOON, ADA, {"claude_code.token.usage": 1_000_000}, model="claude-opus-5-5", type="input"),
        emf_event(NOON, ADA, {"claude_code.cost.usage": 6.0}, model="claude-opus-5-5"),
    ]
    contract.deliver(logs_batch(METRICS_LOG_GROUP, batch))
    ada = contract.item("USER#ada@example.com", f"DAY#{DAY}")
    assert (ada["cost_usd"], ada["client_cost_usd"]) == (4, 6)
    assert "unpriced_tokens" not in ada
    assert contract.item("DAY#2026-11", f"{DAY}#claude-opus-5*")["cost_usd"] == 4


def test_every_aws_call_the_handler_makes_is_an_action_its_role_is_granted(
    deployed: Deployed, moto_endpoint: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """moto does not check IAM here (its enforcement is off by default), so every call of every client the
    deployed handler makes is recorded, over a delivery with a malformed log event (queued), one that overlaps it
    (claims found taken) and a retry. Actions only: the grant's resources are not checked here."""
    called: set[str] = set()

    def make(service: str, **options: Any) -> Any:
        return boto3.client(service, region_name=REGION, endpoint_url=moto_endpoint, **options)

    monkeypatch.setattr(aws, "boto3", SimpleNamespace(client=recording(make, called)))
    environment = {
        "TABLE_NAME": deployed.table,
        "METRICS_LOG_GROUP": METRICS_LOG_GROUP,
        "EVENTS_LOG_GROUP": EVENTS_LOG_GROUP,
        "FAILED_QUEUE_URL": deployed.queue_url,
    }
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    events = [log_event(NOON, "{not json"), *usage(NOON, ADA)]
    deployed.clock.set(NOON + timedelta(minutes=1))
    for batch in (events, events[4:], events):
        handler(subscription_event(logs_batch(METRICS_LOG_GROUP, batch)), None, deployed.clock)

    granted = granted_actions(aggregator_statements("arn:rollups", "arn:queue"))
    assert {"dynamodb:UpdateItem", "dynamodb:PutItem", "dynamodb:BatchGetItem", "sqs:SendMessage"} <= called
    assert sorted(action for action in called if not allowed(action, granted)) == []
