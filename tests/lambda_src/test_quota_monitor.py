"""The quota monitor against moto: usage written by the real aggregator, policies as the component stores them,
alerts claimed in the quota table."""

from __future__ import annotations

import json
import threading
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any
from zoneinfo import ZoneInfo

import boto3
import pytest
import urllib3
from botocore.config import Config
from botocore.exceptions import (
    ClientError,
    ConnectionClosedError,
    ConnectTimeoutError,
    EndpointConnectionError,
    NoCredentialsError,
    ReadTimeoutError,
)
from hypothesis import given, settings
from hypothesis import strategies as st

from components.quota import monitor_statements
from lambda_src.common import aws
from lambda_src.common import rollups as keys
from lambda_src.common.dynamodb import plain_item
from lambda_src.common.quota_policies import (
    ALERTS_IN_DOUBT_METRIC,
    MONITOR_METRICS_NAMESPACE,
    POLICIES_SKIPPED_METRIC,
    QUOTA_QUALITY_SK,
    QuotaPolicy,
    policy_item,
)
from lambda_src.quota_monitor import handler as monitor
from lambda_src.quota_monitor.handler import AlertLedger, Claim, Report, Settings, UsageReader, run
from tests.clock import Clock
from tests.lambda_src.iam_grants import allowed, granted_actions, recording
from tests.lambda_src.rollup_table import SONNET, Deployed, create_quota_table, usage
from tests.telemetry import METRICS_LOG_GROUP, Developer, emf_event, logs_batch

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
MINUTE_USD = 0.0105  # one `usage` minute at scale 1: input, output, cache read and cache write of Sonnet 4.5
MINUTE_TOKENS = 11_600
ADA = Developer()


def refused(code: str, operation: str = "Publish", status: int = 400) -> ClientError:
    """An error answer as botocore makes it from an HTTP response."""
    return ClientError(
        {"Error": {"Code": code, "Message": code}, "ResponseMetadata": {"HTTPStatusCode": status}}, operation
    )


class QuotaHarness:
    """A quota table with policies, the monitor wired to it and to the deployed rollup table, alerts recorded."""

    def __init__(self, deployed: Deployed, policies: Iterable[QuotaPolicy], time_zone: str = "UTC") -> None:
        self.deployed = deployed
        self.client = deployed.dynamodb
        self.table = f"quota-{uuid.uuid4().hex[:12]}"
        create_quota_table(self.client, self.table, policies)
        self.settings = Settings(
            deployed.table,
            self.table,
            "arn:aws:sns:eu-west-1:123456789012:quota",
            ZoneInfo(time_zone),
            "Pulumi.test.yaml",
        )
        self.sent: list[tuple[str, str]] = []
        self.lock = threading.Lock()
        self.reader = UsageReader(self.client, deployed.table)

    def record(self, subject: str, body: str) -> str:
        with self.lock:  # the monitor publishes from several threads
            self.sent.append((subject, body))
            return f"message-{len(self.sent)}"

    def run(
        self,
        now: datetime = NOW,
        publish: Callable[[str, str], str] | None = None,
        seconds_left: Callable[[], float] = monitor.no_deadline,
    ) -> Report:
        self.reader = UsageReader(self.client, self.deployed.table)
        ledger = AlertLedger(self.client, self.table, uuid.uuid4().hex)
        return run(now, self.settings, self.reader, ledger, publish or self.record, seconds_left)

    def put(self, *items: dict[str, Any]) -> None:
        """Policy items as they are, however broken (DynamoDB stores anything with a key)."""
        for item in items:
            self.client.put_item(TableName=self.table, Item=item)

    def alert_items(self) -> list[dict[str, Any]]:
        items = self.client.scan(TableName=self.table)["Items"]
        return [plain_item(item) for item in items if item["pk"]["S"].startswith("ALERT#")]

    def alert_states(self) -> dict[str, str]:
        return {f"{item['pk']} {item['sk']}": item["state"] for item in self.alert_items()}

    def due(self, now: datetime) -> monitor.Standing:
        (standing,) = [s for s in self.standings(now) if s.level is not None]
        return standing

    def quality(self, day: str = "2026-11-23") -> dict[str, Any]:
        return self.deployed.item(keys.quota_pk(day), QUOTA_QUALITY_SK)

    def work(self, at: datetime, developer: Developer = ADA, scale: int = 1) -> None:
        self.deployed.deliver(logs_batch(METRICS_LOG_GROUP, usage(at, developer, scale)))

    def near(self, day: str = "2026-11-23") -> dict[str, Any]:
        return self.deployed.item(keys.quota_pk(day), keys.QUOTA_NEAR_SK)

    def standings(self, now: datetime) -> list[monitor.Standing]:
        ledger = AlertLedger(self.client, self.table, "inspect")
        periods = monitor.current_periods(now, self.settings.time_zone)
        return monitor.standings({period: self.reader.users(period) for period in periods}, ledger.policies(), now)

    def subjects(self) -> list[str]:
        return [subject for subject, _ in self.sent]


def test_each_threshold_crossed_alerts_once(deployed: Deployed) -> None:
    quota = QuotaHarness(deployed, [QuotaPolicy("default", daily_usd=100 * MINUTE_USD)])
    quota.work(NOW - timedelta(hours=2), scale=85)
    assert quota.run().alerts_sent == 1
    assert quota.subjects() == ["Claude Code quota: ada@example.com is at 85% of the daily USD limit"]

    quota.work(NOW - timedelta(hours=1), scale=7)
    assert quota.run(NOW + timedelta(minutes=15)).alerts_sent == 1
    quota.work(NOW - timedelta(minutes=30), scale=10)
    assert quota.run(NOW + timedelta(minutes=30)).alerts_sent == 1
    assert quota.subjects()[1:] == [
        "Claude Code quota: ada@example.com is at 92% of the daily USD limit",
        "Claude Code quota: ada@example.com has reached 102% of the daily USD limit",
    ]

    again = quota.run(NOW + timedelta(minutes=45))
    assert (again.alerts_sent, again.already_sent) == (0, 1)
    assert len(quota.sent) == 3


def test_a_jump_past_several_thresholds_sends_one_alert_at_the_highest(deployed: Deployed) -> None:
    quota = QuotaHarness(deployed, [QuotaPolicy("default", monthly_tokens=10 * MINUTE_TOKENS)])
    quota.work(NOW - timedelta(hours=1), scale=10)
    assert quota.run().alerts_sent == 1
    assert quota.subjects() == ["Claude Code quota: ada@example.com has reached 100% of the monthly token limit"]


def test_the_alert_says_who_usage_limit_percent_projection_policy_and_how_to_change_it(deployed: Deployed) -> None:
    quota = QuotaHarness(deployed, [QuotaPolicy("department", "engineering", monthly_usd=20 * MINUTE_USD)])
    quota.work(NOW - timedelta(hours=1), scale=18)
    quota.run()
    ((_, body),) = quota.sent
    assert "ada@example.com is at 90.0% of the monthly USD limit (alert level 90%)" in body
    assert "Used:       $0.19" in body and "Limit:      $0.21" in body
    # 22 days and 12 hours of the 30-day month have passed: 0.189 * 30 / 22.5
    assert "Projected:  $0.25 by the end of the period at the current rate (120% of the limit)" in body
    assert "Policy:     the department policy for engineering (thresholds 80%, 90%, 100%)" in body
    assert "Period:     month 2026-11 (UTC), ends 2026-12-01T00:00:00+00:00" in body
    assert "edit Pulumi.test.yaml" in body and "`pulumi up`" in body


def test_idle_users_get_no_repeat_the_next_day_or_run(deployed: Deployed) -> None:
    quota = QuotaHarness(deployed, [QuotaPolicy("default", daily_usd=10 * MINUTE_USD, monthly_usd=20 * MINUTE_USD)])
    quota.work(NOW - timedelta(hours=1), scale=19)
    assert quota.run().alerts_sent == 2  # 190% of the day, 95% of the month
    for days in range(1, 4):  # Ada does not work on the following days
        report = quota.run(NOW + timedelta(days=days))
        assert report.alerts_sent == 0
    assert len(quota.sent) == 2


def test_a_retried_or_overlapping_run_sends_nothing_twice(deployed: Deployed) -> None:
    quota = QuotaHarness(deployed, [QuotaPolicy("default", daily_usd=10 * MINUTE_USD)])
    quota.work(NOW - timedelta(hours=1), scale=9)
    first, retried = quota.run(), quota.run()
    assert (first.alerts_sent, retried.alerts_sent, retried.already_sent) == (1, 0, 1)


def test_an_alert_sns_refused_is_sent_by_the_next_run(deployed: Deployed) -> None:
    quota = QuotaHarness(deployed, [QuotaPolicy("default", daily_usd=10 * MINUTE_USD)])
    quota.work(NOW - timedelta(hours=1), scale=9)

    def unavailable(subject: str, body: str) -> str:
        raise refused("KMSDisabled")

    failed = quota.run(publish=unavailable)
    assert failed.alerts_sent == 0 and len(failed.failed) == 1 and "KMSDisabled" in failed.failed[0]
    assert failed.in_doubt == [] and quota.alert_states() == {}  # the claim is released
    assert quota.run(NOW + timedelta(minutes=15)).alerts_sent == 1
    assert list(quota.alert_states().values()) == ["sent"]


def test_a_run_that_died_between_claim_and_publish_is_taken_over_after_the_lease(deployed: Deployed) -> None:
    quota = QuotaHarness(deployed, [QuotaPolicy("default", daily_usd=10 * MINUTE_USD)])
    quota.work(NOW - timedelta(hours=1), scale=9)
    standing = quota.due(NOW)
    assert AlertLedger(quota.client, quota.table, "dead-run").claim(standing, NOW) is Claim.CLAIMED  # then dies

    assert quota.run(NOW + timedelta(minutes=5)).alerts_sent == 0  # the claim is still fresh
    later = quota.run(NOW + timedelta(seconds=monitor.LEASE_SECONDS + 60))
    assert (later.alerts_sent, later.in_doubt) == (1, [])  # nothing was sent: no loss, no duplicate
    (item,) = quota.alert_items()
    assert (item["state"], item["attempts"]) == ("sent", 2) and item["alert_id"] == monitor.alert_id(standing)
    assert len(quota.sent) == 1 and f"Alert id:   {monitor.alert_id(standing)}" in quota.sent[0][1]


def test_a_run_slower_than_the_lease_does_not_publish_what_another_run_took_over(deployed: Deployed) -> None:
    quota = QuotaHarness(deployed, [QuotaPolicy("default", daily_usd=10 * MINUTE_USD)])
    quota.work(NOW - timedelta(hours=1), scale=9)
    standing = quota.due(NOW)
    slow = AlertLedger(quota.client, quota.table, "slow-run")
    assert slow.claim(standing, NOW) is Claim.CLAIMED
    assert quota.run(NOW + timedelta(seconds=monitor.LEASE_SECONDS + 60)).alerts_sent == 1  # taken over
    assert not slow.start(standing, NOW + timedelta(seconds=monitor.LEASE_SECONDS + 61))  # so it does not publish


def test_a_run_that_died_while_publishing_is_reported_in_doubt_and_not_sent_again(deployed: Deployed) -> None:
    quota = QuotaHarness(deployed, [QuotaPolicy("default", daily_usd=10 * MINUTE_USD)])
    quota.work(NOW - timedelta(hours=1), scale=9)
    standing = quota.due(NOW)
    dead = AlertLedger(quota.client, quota.table, "dead-run")
    assert dead.claim(standing, NOW) is Claim.CLAIMED and dead.start(standing, NOW)  # then dies inside Publish

    fresh = quota.run(NOW + timedelta(minutes=5))
    assert (fresh.alerts_sent, fresh.already_sent, fresh.in_doubt) == (0, 1, [])  # it may still be publishing
    later = quota.run(NOW + timedelta(seconds=monitor.LEASE_SECONDS + 60))
    assert later.alerts_sent == 0 and len(later.in_doubt) == 1 and "ada@example.com daily_usd 90%" in later.in_doubt[0]
    assert later.already_sent == 0  # counted once: in doubt, not also as sent
    assert list(quota.alert_states().values()) == ["unknown"]
    assert quota.quality()["alerts_in_doubt"] == 1
    again = quota.run(NOW + timedelta(hours=1))
    assert (again.alerts_sent, again.in_doubt) == (0, [])  # reported once, never sent
    assert quota.sent == []


def test_a_claim_of_the_previous_monitor_version_left_sending_is_in_doubt_not_resent(deployed: Deployed) -> None:
    quota = QuotaHarness(deployed, [QuotaPolicy("default", daily_usd=10 * MINUTE_USD)])
    quota.work(NOW - timedelta(hours=1), scale=9)
    key = monitor.alert_key(quota.due(NOW))
    old = {"state": {"S": "sending"}, "run_id": {"S": "old"}, "claimed_at": {"N": str(int(NOW.timestamp()) - 3600)}}
    quota.client.put_item(TableName=quota.table, Item={**key, **old})
    report = quota.run()
    assert (report.alerts_sent, len(report.in_doubt)) == (0, 1)


def test_a_failed_mark_after_a_successful_publish_never_sends_the_alert_again(deployed: Deployed) -> None:
    quota = QuotaHarness(deployed, [QuotaPolicy("default", daily_usd=10 * MINUTE_USD)])
    quota.work(NOW - timedelta(hours=1), scale=9)

    def refuse_the_mark(params: dict[str, Any], **_: Any) -> None:
        if {"S": "sent"} in params.get("ExpressionAttributeValues", {}).values():
            raise refused("ProvisionedThroughputExceededException", "UpdateItem")

    quota.client.meta.events.register("before-parameter-build.dynamodb.UpdateItem", refuse_the_mark)
    first = quota.run()
    quota.client.meta.events.unregister("before-parameter-build.dynamodb.UpdateItem", refuse_the_mark)
    assert first.alerts_sent == 1 and len(first.unrecorded) == 1 and "sent as message-1" in first.unrecorded[0]
    assert list(quota.alert_states().values()) == ["publishing"]

    for minutes in (1, 14):  # Lambda's retry of the failed run, the next scheduled run: nothing again
        assert quota.run(NOW + timedelta(minutes=minutes)).alerts_sent == 0
    later = quota.run(NOW + timedelta(seconds=monitor.LEASE_SECONDS + 60))
    assert later.alerts_sent == 0 and len(later.in_doubt) == 1  # reported, not resent
    assert len(quota.sent) == 1


def test_a_run_near_its_timeout_leaves_the_remaining_alerts_unclaimed_for_the_next_run(
    deployed: Deployed, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(monitor, "PUBLISH_CONCURRENCY", 1)  # the time left is checked before each batch: one alert
    quota = QuotaHarness(deployed, [QuotaPolicy("default", daily_usd=10 * MINUTE_USD)])
    people = [Developer(f"dev{n}@example.com", f"u-{n}", f"a-{n}") for n in range(3)]
    for developer in people:
        quota.work(NOW - timedelta(hours=1), developer, scale=9)
    budget = iter([100.0, 100.0, 10.0])  # seconds left before each claim
    cut = quota.run(seconds_left=lambda: next(budget))
    assert (cut.alerts_sent, cut.deferred, quota.quality()["alerts_not_sent"]) == (2, 1, 1)
    assert quota.run(NOW + timedelta(minutes=15)).alerts_sent == 1


def test_the_handler_reads_the_time_left_from_the_lambda_context() -> None:
    assert monitor.remaining_seconds(SimpleNamespace(get_remaining_time_in_millis=lambda: 12_500))() == 12.5
    assert monitor.remaining_seconds(None) is monitor.no_deadline


def test_periods_follow_the_time_zone_across_the_month_and_day_rollover(
    aws_client: Callable[[str], Any], clock: Clock
) -> None:
    berlin = Deployed(aws_client, f"rollups-{uuid.uuid4().hex[:12]}", clock, time_zone="Europe/Berlin")
    quota = QuotaHarness(
        berlin, [QuotaPolicy("default", daily_usd=10 * MINUTE_USD, monthly_usd=10 * MINUTE_USD)], "Europe/Berlin"
    )
    quota.work(datetime(2026, 11, 30, 22, 30, tzinfo=UTC), scale=9)  # 23:30 in Berlin, still November
    quota.work(datetime(2026, 11, 30, 23, 30, tzinfo=UTC), scale=2)  # 00:30 on 1 December in Berlin

    december = quota.run(datetime(2026, 11, 30, 23, 45, tzinfo=UTC))
    assert (december.users, december.alerts_sent) == (1, 0)  # 20% of both limits: November's use is not December's
    near = quota.near("2026-12-01")
    assert near["users_checked"] == 1 and json.loads(near["entries"]) == []

    november = quota.run(datetime(2026, 11, 30, 22, 45, tzinfo=UTC))
    assert november.alerts_sent == 2  # 90% of the day and of the month
    bodies = "\n".join(body for _, body in quota.sent)
    assert "Period:     day 2026-11-30 (Europe/Berlin), ends 2026-12-01T00:00:00+01:00" in bodies
    assert "Period:     month 2026-11 (Europe/Berlin), ends 2026-12-01T00:00:00+01:00" in bodies


def test_precedence_user_over_team_over_department_over_default(deployed: Deployed) -> None:
    alert_at = (10, 100)
    policies = [
        QuotaPolicy("default", daily_usd=100 * MINUTE_USD, thresholds=alert_at),
        QuotaPolicy("department", "research", daily_usd=20 * MINUTE_USD, thresholds=alert_at),
        QuotaPolicy("team", "interns", daily_usd=40 * MINUTE_USD, thresholds=alert_at),
        # The user policy applies whole: the lead has no daily limit, whatever the team or department have.
        QuotaPolicy("user", "lead@example.com", monthly_usd=1000 * MINUTE_USD, thresholds=alert_at),
    ]
    quota = QuotaHarness(deployed, policies)
    people = [
        Developer("plain@example.com", "u-1", "a-1", "engineering", "platform"),
        Developer("scientist@example.com", "u-2", "a-2", "research", "ml"),
        Developer("intern@example.com", "u-3", "a-3", "research", "interns"),
        Developer("lead@example.com", "u-4", "a-4", "research", "interns"),
    ]
    for developer in people:
        quota.work(NOW - timedelta(hours=1), developer, scale=18)
    quota.run()
    entries = {
        entry["user"]: (entry["policy"], entry["limit"], entry["percent"])
        for entry in json.loads(quota.near()["entries"])
    }
    assert entries == {
        "scientist@example.com": ("department#research", "daily_usd", 90.0),
        "intern@example.com": ("team#interns", "daily_usd", 45.0),
        "plain@example.com": ("default", "daily_usd", 18.0),
    }
    assert sorted(quota.subjects()) == [
        "Claude Code quota: intern@example.com is at 45% of the daily USD limit",
        "Claude Code quota: plain@example.com is at 18% of the daily USD limit",
        "Claude Code quota: scientist@example.com is at 90% of the daily USD limit",
    ]


def test_usd_quotas_price_cache_reads_and_cache_writes(deployed: Deployed) -> None:
    quota = QuotaHarness(deployed, [QuotaPolicy("default", monthly_usd=0.675)])
    at = NOW - timedelta(hours=1)
    events = [
        emf_event(at, ADA, {"claude_code.token.usage": 1_000_000}, model=SONNET, type="cacheRead"),  # $0.30
        emf_event(at, ADA, {"claude_code.token.usage": 100_000}, model=SONNET, type="cacheCreation"),  # $0.375
    ]
    deployed.deliver(logs_batch(METRICS_LOG_GROUP, events))
    quota.run()
    ((subject, body),) = quota.sent
    assert subject == "Claude Code quota: ada@example.com has reached 100% of the monthly USD limit"
    assert "Used:       $0.68" in body


def test_a_limit_of_zero_is_off(deployed: Deployed) -> None:
    quota = QuotaHarness(
        deployed,
        [
            QuotaPolicy("default", daily_usd=MINUTE_USD),
            QuotaPolicy("user", "ada@example.com", daily_usd=0, daily_tokens=0),
        ],
    )
    quota.work(NOW - timedelta(hours=1), scale=50)
    report = quota.run()
    assert (report.standings, report.alerts_sent) == (0, 0)


def test_users_without_email_are_checked_by_user_id(deployed: Deployed) -> None:
    quota = QuotaHarness(deployed, [QuotaPolicy("default", daily_usd=10 * MINUTE_USD)])
    quota.work(NOW - timedelta(hours=1), Developer(email=None, user_id="u-anon"), scale=10)
    quota.run()
    ((subject, body),) = quota.sent
    assert subject == "Claude Code quota: u-anon has reached 100% of the daily USD limit"
    assert "Identified: by user.id (no user.email in this user's telemetry)" in body


def test_many_users_one_read_per_user_and_period(deployed: Deployed) -> None:
    quota = QuotaHarness(deployed, [QuotaPolicy("default", daily_usd=100 * MINUTE_USD)])
    people = [
        Developer(f"dev{n:03d}@example.com", f"u-{n}", f"a-{n}", "engineering", f"team-{n % 7}") for n in range(120)
    ]
    events = [event for n, who in enumerate(people) for event in usage(NOW - timedelta(hours=1), who, scale=n)]
    for start in range(0, len(events), 5000):
        deployed.deliver(logs_batch(METRICS_LOG_GROUP, events[start : start + 5000]))
    report = quota.run()
    assert report.users == 120  # dev000 worked at scale 0: no tokens, but a session
    assert report.alerts_sent == 40  # devNNN uses NNN% of the limit: dev080 to dev119 crossed a threshold
    assert quota.reader.items_read == 2 * report.users  # a day and a month item per user, nothing else
    near = quota.near()
    entries = json.loads(near["entries"])
    assert [e["user"] for e in entries[:3]] == ["dev119@example.com", "dev118@example.com", "dev117@example.com"]
    assert near["users_near"] == 40 and near["users_over"] == 20 and len(entries) == 40


class Wired:
    """The handler against moto as Lambda runs it: its environment, the boto3 clients it makes (with any hooks a
    test registers: botocore events, so a failure happens where it would), and the alert topic with an SQS queue
    subscribed as the inbox."""

    def __init__(self, quota: QuotaHarness, moto_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> None:
        self.endpoint = moto_endpoint
        self.hooks: dict[str, list[tuple[str, Callable[..., Any]]]] = defaultdict(list)
        sns, self.sqs = self.client("sns"), self.client("sqs")
        self.topic = sns.create_topic(Name=f"quota-{uuid.uuid4().hex[:8]}")["TopicArn"]
        self.queue = self.sqs.create_queue(QueueName=f"inbox-{uuid.uuid4().hex[:8]}")["QueueUrl"]
        queue_arn = self.sqs.get_queue_attributes(QueueUrl=self.queue, AttributeNames=["QueueArn"])["Attributes"]
        sns.subscribe(TopicArn=self.topic, Protocol="sqs", Endpoint=queue_arn["QueueArn"])
        for name, value in {
            "ROLLUP_TABLE": quota.deployed.table,
            "QUOTA_TABLE": quota.table,
            "ALERT_TOPIC_ARN": self.topic,
            "TIME_ZONE": "UTC",
            "POLICY_SOURCE": "Pulumi.dev.yaml",
            "AWS_LAMBDA_FUNCTION_NAME": "ccm-dev-quota-monitor",
        }.items():
            monkeypatch.setenv(name, value)
        monkeypatch.setattr(aws, "boto3", SimpleNamespace(client=self.client))
        self.delivered: list[str] = []

    def client(self, service: str, **options: Any) -> Any:
        made = boto3.client(service, region_name="eu-west-1", endpoint_url=self.endpoint, **options)
        for event, hook in self.hooks[service]:
            made.meta.events.register(event, hook)
        return made

    def invoke(self, now: datetime, context: Any = None) -> dict[str, Any]:
        result: dict[str, Any] = monitor.handler({}, context, now=lambda: now)
        return result

    def inbox(self) -> list[str]:
        """The subjects of every alert delivered so far."""
        while received := self.sqs.receive_message(QueueUrl=self.queue, MaxNumberOfMessages=10).get("Messages"):
            for message in received:
                self.delivered.append(json.loads(message["Body"])["Subject"])
                self.sqs.delete_message(QueueUrl=self.queue, ReceiptHandle=message["ReceiptHandle"])
        return self.delivered


def log_lines(captured: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in captured.splitlines() if line.startswith("{")]


def answer_lost(request: Any, **_: Any) -> None:
    """SNS receives the publish and sends the message; its answer never reaches the client."""
    urllib3.PoolManager().request(request.method, request.url, body=request.body, headers=dict(request.headers))
    raise ReadTimeoutError(endpoint_url=request.url)


AT_90 = "Claude Code quota: ada@example.com is at 90% of the daily USD limit"
BOB_AT_90 = "Claude Code quota: bob@example.com is at 90% of the daily USD limit"
BOB = Developer("bob@example.com", "u-bob", "a-bob")


@pytest.fixture
def ada_at_90(
    deployed: Deployed, aws_client: Callable[[str], Any], moto_endpoint: str, monkeypatch: pytest.MonkeyPatch
) -> tuple[QuotaHarness, Wired]:
    """Ada at 90% of a daily USD limit, and the handler wired to moto."""
    quota = QuotaHarness(deployed, [QuotaPolicy("default", daily_usd=10 * MINUTE_USD)])
    quota.work(NOW - timedelta(minutes=1), scale=9)
    return quota, Wired(quota, moto_endpoint, monkeypatch)


def refuse_once(wired: Wired, user: str, error: Exception) -> None:
    """SNS refuses the first publish of `user`'s alert with `error`."""
    refusals = iter([error])

    def refuse(params: dict[str, Any], **_: Any) -> None:
        if f"{user} is at" in params["Subject"] and (found := next(refusals, None)):
            raise found

    wired.hooks["sns"].append(("before-parameter-build.sns.Publish", refuse))


def test_the_handler_publishes_to_sns(ada_at_90: tuple[QuotaHarness, Wired]) -> None:
    quota, wired = ada_at_90
    summary = wired.invoke(NOW)
    assert summary["alerts_sent"] == 1 and summary["items_read"] == 2
    assert wired.inbox() == [AT_90]
    assert wired.invoke(NOW + timedelta(minutes=15))["alerts_sent"] == 0
    assert list(quota.alert_states().values()) == ["sent"]


def test_a_publish_sns_took_whose_answer_was_lost_is_reported_in_doubt_and_never_sent_again(
    ada_at_90: tuple[QuotaHarness, Wired], capsys: pytest.CaptureFixture[str]
) -> None:
    quota, wired = ada_at_90
    wired.hooks["sns"].append(("before-send.sns.Publish", answer_lost))

    summary = wired.invoke(NOW)  # does not fail: the alarm on AlertsInDoubt pages instead
    assert (summary["alerts_sent"], summary["in_doubt"], summary["failed"]) == (0, 1, 0)
    assert wired.inbox() == [AT_90]  # SNS sent it, once: the client did not retry the publish
    (item,) = quota.alert_items()
    assert item["state"] == "unknown" and "ReadTimeoutError" in item["doubt"]
    lines = log_lines(capsys.readouterr().out)
    (doubt,) = [line for line in lines if line["message"].startswith("quota alert in doubt")]
    assert doubt["user"] == "ada@example.com" and doubt["alert_id"] == item["alert_id"]
    (metrics,) = [line for line in lines if "_aws" in line]
    assert metrics[ALERTS_IN_DOUBT_METRIC] == 1 and metrics["AlertsSent"] == 0
    assert quota.quality()["alerts_in_doubt"] == 1

    wired.hooks["sns"].clear()  # SNS answers again: still nothing is sent twice
    for later in (timedelta(minutes=1), timedelta(minutes=15), timedelta(seconds=monitor.LEASE_SECONDS + 60)):
        again = wired.invoke(NOW + later)
        assert (again["alerts_sent"], again["in_doubt"]) == (0, 0)
    assert wired.inbox() == [AT_90]


def test_an_sdk_retry_of_a_lost_answer_would_send_the_alert_twice(
    deployed: Deployed, aws_client: Callable[[str], Any], moto_endpoint: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Why the monitor's SNS client does not retry: botocore retries a read timeout, which publishes again."""
    wired = Wired(QuotaHarness(deployed, []), moto_endpoint, monkeypatch)
    wired.hooks["sns"].append(("before-send.sns.Publish", answer_lost))
    retrying = wired.client("sns", config=Config(retries={"total_max_attempts": 2, "mode": "standard"}))
    with pytest.raises(ReadTimeoutError):
        retrying.publish(TopicArn=wired.topic, Subject="retried", Message="once")
    assert wired.inbox() == ["retried", "retried"]
    monitors = wired.client("sns", config=monitor.PUBLISH_CLIENT_CONFIG)
    with pytest.raises(ReadTimeoutError):
        monitors.publish(TopicArn=wired.topic, Subject="not retried", Message="once")
    assert wired.inbox()[2:] == ["not retried"]


def test_a_retried_invocation_sends_what_sns_refused_and_nothing_twice(ada_at_90: tuple[QuotaHarness, Wired]) -> None:
    quota, wired = ada_at_90
    quota.work(NOW - timedelta(minutes=1), BOB, scale=9)
    refuse_once(wired, "bob@example.com", refused("Throttled", status=429))
    with pytest.raises(RuntimeError, match="1 quota alerts not sent"):  # Lambda retries a failed invocation
        wired.invoke(NOW)
    assert wired.inbox() == [AT_90]
    retried = wired.invoke(NOW + timedelta(minutes=1))
    assert (retried["alerts_sent"], retried["already_sent"]) == (1, 1)
    assert wired.invoke(NOW + timedelta(minutes=15))["alerts_sent"] == 0
    assert sorted(wired.inbox()) == [AT_90, BOB_AT_90]


def test_the_run_log_line_carries_its_metrics_in_embedded_metric_format(
    ada_at_90: tuple[QuotaHarness, Wired], capsys: pytest.CaptureFixture[str]
) -> None:
    _, wired = ada_at_90
    wired.invoke(NOW)
    (line,) = [line for line in log_lines(capsys.readouterr().out) if line["message"] == "quota run"]
    (directive,) = line["_aws"]["CloudWatchMetrics"]
    assert line["_aws"]["Timestamp"] == int(NOW.timestamp() * 1000)
    assert directive["Namespace"] == MONITOR_METRICS_NAMESPACE and directive["Dimensions"] == [["FunctionName"]]
    names = [metric["Name"] for metric in directive["Metrics"]]
    assert {POLICIES_SKIPPED_METRIC, ALERTS_IN_DOUBT_METRIC, "AlertsSent"} <= set(names)
    assert all(isinstance(line[name], int) for name in names)
    assert line["FunctionName"] == "ccm-dev-quota-monitor" and line["AlertsSent"] == 1


def test_every_aws_call_the_handler_makes_is_an_action_its_role_is_granted(
    deployed: Deployed, aws_client: Callable[[str], Any], moto_endpoint: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """moto does not check IAM here (its enforcement is off by default): a call the component's grant leaves out
    passes every other test and is AccessDenied on AWS. So every operation of every client the handler makes is
    recorded (botocore's before-parameter-build event) over runs that send, find sent, release a refused claim and
    find an abandoned one. Actions only: the grant's resources and conditions are not checked here."""
    quota = QuotaHarness(deployed, [QuotaPolicy("default", daily_usd=10 * MINUTE_USD)])
    carol = Developer("carol@example.com", "u-carol", "a-carol")
    quota.work(NOW - timedelta(minutes=1), carol, scale=9)
    abandoned = AlertLedger(quota.client, quota.table, "dead-run")
    standing = quota.due(NOW)
    abandoned.claim(standing, NOW)
    assert abandoned.start(standing, NOW)  # it had the claim, and then it dies inside SNS Publish
    for developer in (ADA, BOB):
        quota.work(NOW - timedelta(minutes=1), developer, scale=9)
    wired = Wired(quota, moto_endpoint, monkeypatch)
    refuse_once(wired, "bob@example.com", refused("Throttled", status=429))
    called: set[str] = set()
    # every client the handler makes, from all its threads
    monkeypatch.setattr(aws, "boto3", SimpleNamespace(client=recording(wired.client, called)))

    with pytest.raises(RuntimeError, match="1 quota alerts not sent"):  # SNS refused Bob's: his claim is released
        wired.invoke(NOW)
    later = wired.invoke(NOW + timedelta(seconds=monitor.LEASE_SECONDS + 60))
    assert (later["alerts_sent"], later["already_sent"], later["in_doubt"]) == (1, 1, 1)  # Bob's; Ada's; Carol's
    assert sorted(wired.inbox()) == [AT_90, BOB_AT_90]
    assert sorted(quota.alert_states().values()) == ["sent", "sent", "unknown"]  # Carol's found abandoned

    granted = granted_actions(monitor_statements("arn:rollups", "arn:quota", "arn:topic"))
    assert {"dynamodb:Query", "dynamodb:UpdateItem", "dynamodb:DeleteItem", "sns:Publish"} <= called
    assert sorted(action for action in called if not allowed(action, granted)) == []


def test_publish_outcomes_sns_refused_are_retried_and_lost_ones_are_not() -> None:
    not_sent = [
        refused("KMSDisabled"),
        refused("Throttled", status=429),
        EndpointConnectionError(endpoint_url="https://sns"),
        ConnectTimeoutError(endpoint_url="https://sns"),
        NoCredentialsError(),
    ]
    maybe_sent = [
        ReadTimeoutError(endpoint_url="https://sns"),
        ConnectionClosedError(endpoint_url="https://sns"),
        refused("InternalError", status=500),
        ClientError({"Error": {"Code": "Unknown"}}, "Publish"),  # no HTTP status: cannot tell
    ]
    assert all(monitor.definitely_not_sent(error) for error in not_sent)
    assert not any(monitor.definitely_not_sent(error) for error in maybe_sent)


# Hostile policy items ---------------------------------------------------------------------------------------


def broken(policy: QuotaPolicy, **changes: Any) -> dict[str, Any]:
    """The stored item of `policy` with attributes changed (None removes one)."""
    item = policy_item(policy)
    for name, value in changes.items():
        if value is None:
            item.pop(name)
        else:
            item[name] = value
    return item


def test_malformed_policies_are_skipped_loudly_and_everyone_else_is_still_checked(
    deployed: Deployed,
    aws_client: Callable[[str], Any],
    moto_endpoint: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    quota = QuotaHarness(deployed, [QuotaPolicy("default", daily_usd=10 * MINUTE_USD)])
    quota.put(
        broken(QuotaPolicy("team", "interns", daily_usd=1), daily_usd={"S": "lots"}),  # text where a number belongs
        broken(QuotaPolicy("user", "lead@example.com", daily_usd=5), scope=None),  # no scope
        broken(QuotaPolicy("department", "research", daily_usd=1), thresholds={"L": [{"N": "80.5"}]}),
        broken(QuotaPolicy("user", "neg@example.com"), daily_usd={"N": "-1"}),  # was: no limit, silently
    )
    people = {
        "ada@example.com": ("engineering", "platform"),  # the default: checked
        "intern@example.com": ("research", "interns"),  # held by the team policy
        "lead@example.com": ("research", "interns"),  # held by their own policy
        "scientist@example.com": ("research", "ml"),  # held by the department policy
        "neg@example.com": ("engineering", "platform"),  # held by their own policy
    }
    for n, (email, (department, team)) in enumerate(people.items()):
        quota.work(NOW - timedelta(minutes=1), Developer(email, f"u-{n}", f"a-{n}", department, team), scale=9)
    wired = Wired(quota, moto_endpoint, monkeypatch)

    summary = wired.invoke(NOW)  # the run succeeds: the policy-problems alarm pages instead
    assert (summary["policies"], summary["policies_skipped"], summary["users_held"]) == (1, 4, 4)
    assert wired.inbox() == [AT_90]
    lines = log_lines(capsys.readouterr().out)
    skipped = {line["policy"]: line["reason"] for line in lines if line["message"].startswith("quota policy item")}
    assert skipped == {
        "team#interns": 'daily_usd must be a number of at least 0, got {"S": "lots"}',
        "user#lead@example.com": "scope is missing",
        "department#research": 'thresholds[0] must be an integer from 1 to 100, got {"N": "80.5"}',
        "user#neg@example.com": 'daily_usd must be a number of at least 0, got {"N": "-1"}',
    }
    (metrics,) = [line for line in lines if "_aws" in line]
    assert (metrics[POLICIES_SKIPPED_METRIC], metrics["UsersHeld"]) == (4, 4)
    quality = quota.quality()
    assert (quality["policies"], quality["policies_skipped"], quality["users_held"]) == (1, 4, 4)
    assert {entry["policy"]: entry["reason"] for entry in json.loads(quality["skipped"])} == skipped
    assert {entry["user"] for entry in json.loads(quality["held"])} == set(people) - {"ada@example.com"}

    quota.put(policy_item(QuotaPolicy("team", "interns", daily_usd=10 * MINUTE_USD)))  # `pulumi up` fixes one
    fixed = wired.invoke(NOW + timedelta(minutes=15))
    assert (fixed["policies_skipped"], fixed["alerts_sent"]) == (3, 1)  # the intern, now checked
    assert quota.quality()["policies_skipped"] == 3  # the item shows the latest run


def test_a_stored_policy_item_that_is_not_even_an_object_of_the_table_is_skipped(deployed: Deployed) -> None:
    quota = QuotaHarness(deployed, [QuotaPolicy("default", daily_usd=10 * MINUTE_USD)])
    quota.put({"pk": {"S": "POLICY"}, "sk": {"S": "hand-written"}, "note": {"S": "someone's test"}})
    quota.work(NOW - timedelta(minutes=1), scale=9)
    report = quota.run()
    assert [(s.key, s.reason) for s in report.skipped_policies] == [(None, "scope is missing")]
    assert (report.alerts_sent, report.held_users) == (1, {})  # it applies to nobody


STORABLE_BREAKS: dict[str, dict[str, Any]] = {
    "scope missing": {"scope": None},
    "scope a number": {"scope": {"N": "2"}},
    "scope unknown": {"scope": {"S": "squad"}},
    "limit as text": {"daily_usd": {"S": "100"}},
    "limit a boolean": {"daily_usd": {"BOOL": True}},
    "negative limit": {"daily_usd": {"N": "-0.01"}},
    "fractional token limit": {"daily_tokens": {"N": "0.5"}},
    "huge limit of tokens, fractional": {"daily_tokens": {"N": "1" * 30 + ".5"}},
    "fractional threshold": {"thresholds": {"L": [{"N": "80.5"}, {"N": "90"}]}},
    "threshold 0": {"thresholds": {"L": [{"N": "0"}]}},
    "huge threshold": {"thresholds": {"L": [{"N": "9" * 38}]}},
    "thresholds out of order": {"thresholds": {"L": [{"N": "90"}, {"N": "80"}]}},
    "thresholds as text": {"thresholds": {"S": "80,90,100"}},
    "no thresholds at all": {"thresholds": {"L": []}},
}
SLOTS = ("team#victims", "department#research", "user#carol@example.com", "default", "junk")


def test_hostile_policy_items_never_stop_the_run_and_good_policies_still_alert(deployed: Deployed) -> None:
    bob = Developer("bob@example.com", "u-bob", "a-bob", "engineering", "victims")
    for developer in (ADA, bob):
        quota_usage = QuotaHarness(deployed, [])
        quota_usage.work(NOW - timedelta(minutes=1), developer, scale=9)

    @settings(max_examples=20, deadline=None)
    @given(
        hostile=st.lists(
            st.tuples(st.sampled_from(SLOTS), st.sampled_from(sorted(STORABLE_BREAKS))),
            min_size=1,
            max_size=len(SLOTS),
            unique_by=lambda pair: pair[0],
        )
    )
    def check(hostile: list[tuple[str, str]]) -> None:
        good = [
            QuotaPolicy("user", "ada@example.com", daily_usd=10 * MINUTE_USD),
            QuotaPolicy("default", daily_usd=10 * MINUTE_USD),
        ]
        quota = QuotaHarness(deployed, good)
        for slot, how in hostile:
            scope, _, name = slot.partition("#")
            policy = QuotaPolicy("team", "x") if slot == "junk" else QuotaPolicy(scope, name, daily_usd=1.0)
            item = broken(policy, **STORABLE_BREAKS[how])
            if slot == "junk":
                item["sk"] = {"S": "not a policy key"}
            quota.put(item)

        report = quota.run()  # never raises

        slots = {slot for slot, _ in hostile}
        assert {s.key or "junk" for s in report.skipped_policies} == slots
        assert all(s.reason for s in report.skipped_policies)
        assert AT_90 in quota.subjects()  # ada's policy is good: she is always checked
        bob_held = "team#victims" in slots or "default" in slots
        assert ("bob@example.com" in report.held_users) is bob_held
        assert any("bob@" in subject for subject in quota.subjects()) is not bob_held

    check()


def test_periods_are_calendar_days_and_months_of_the_time_zone() -> None:
    berlin = ZoneInfo("Europe/Berlin")
    day, month = monitor.current_periods(datetime(2026, 12, 31, 23, 30, tzinfo=UTC), berlin)  # 00:30 on New Year's Day
    assert (day.name, month.name) == ("2027-01-01", "2027-01")
    assert month.end == datetime(2027, 2, 1, tzinfo=berlin)
    day, month = monitor.current_periods(datetime(2026, 3, 29, 12, 0, tzinfo=UTC), berlin)  # the day clocks go forward
    assert day.end.timestamp() - day.start.timestamp() == 23 * 3600
    assert month.name == "2026-03"
    assert (month.start, month.end) == (datetime(2026, 3, 1, tzinfo=berlin), datetime(2026, 4, 1, tzinfo=berlin))


def test_the_projection_extends_the_rate_so_far_but_not_from_the_first_minutes() -> None:
    day, _ = monitor.current_periods(datetime(2026, 11, 23, 12, 0, tzinfo=UTC), ZoneInfo("UTC"))
    assert monitor.projected_total(10.0, day, datetime(2026, 11, 23, 12, 0, tzinfo=UTC)) == 20.0
    assert monitor.projected_total(1.0, day, datetime(2026, 11, 23, 0, 1, tzinfo=UTC)) == 20.0  # as if 5% had passed
    assert monitor.projected_total(7.0, day, datetime(2026, 11, 24, 0, 0, tzinfo=UTC)) == 7.0


def test_an_sns_subject_is_printable_ascii_under_100_characters() -> None:
    subject = monitor.sns_subject("Claude Code quota: jörg@example.com\n" + "x" * 200)
    assert subject.startswith("Claude Code quota: j?rg@example.com?x") and len(subject) == 99


def test_alerts_go_out_concurrently_and_alerts_already_sent_cost_no_write(deployed: Deployed) -> None:
    quota = QuotaHarness(deployed, [QuotaPolicy("default", daily_usd=10 * MINUTE_USD)])
    people = [Developer(f"dev{n:02d}@example.com", f"u-{n}", f"a-{n}") for n in range(40)]
    for developer in people:
        quota.work(NOW - timedelta(hours=1), developer, scale=9)
    first = quota.run()
    assert first.alerts_sent == 40 and len(set(quota.sent)) == 40  # every alert once, from 16 workers

    calls: list[str] = []
    client = quota.client
    real_update = client.update_item

    def counting_update(**request: Any) -> Any:
        calls.append(request["Key"]["pk"]["S"])
        return real_update(**request)

    client.update_item = counting_update
    try:
        again = quota.run(NOW + timedelta(minutes=15))
    finally:
        client.update_item = real_update
    assert (again.alerts_sent, again.already_sent) == (0, 40)
    assert calls == []  # read in batches: no failed conditional write per alert already sent
