"""The quota monitor against moto: usage written by the real aggregator, policies as the component stores them,
alerts claimed in the quota table."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from botocore.exceptions import ClientError

from lambda_src.common import rollups as keys
from lambda_src.common.quota_policies import QuotaPolicy
from lambda_src.quota_monitor import handler as monitor
from lambda_src.quota_monitor.handler import AlertLedger, Report, Settings, UsageReader, run
from tests.clock import Clock
from tests.lambda_src.rollup_table import SONNET, Deployed, create_quota_table, usage
from tests.telemetry import METRICS_LOG_GROUP, Developer, emf_event, logs_batch

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
MINUTE_USD = 0.0105  # one `usage` minute at scale 1: input, output, cache read and cache write of Sonnet 4.5
MINUTE_TOKENS = 11_600
ADA = Developer()


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
        self.reader = UsageReader(self.client, deployed.table)

    def record(self, subject: str, body: str) -> str:
        self.sent.append((subject, body))
        return f"message-{len(self.sent)}"

    def run(self, now: datetime = NOW, publish: Callable[[str, str], str] | None = None) -> Report:
        self.reader = UsageReader(self.client, self.deployed.table)
        ledger = AlertLedger(self.client, self.table, uuid.uuid4().hex)
        return run(now, self.settings, self.reader, ledger, publish or self.record)

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


def test_an_alert_that_could_not_be_published_is_sent_by_the_next_run(deployed: Deployed) -> None:
    quota = QuotaHarness(deployed, [QuotaPolicy("default", daily_usd=10 * MINUTE_USD)])
    quota.work(NOW - timedelta(hours=1), scale=9)

    def unavailable(subject: str, body: str) -> str:
        raise ClientError({"Error": {"Code": "KMSDisabled", "Message": "key disabled"}}, "Publish")

    failed = quota.run(publish=unavailable)
    assert failed.alerts_sent == 0 and len(failed.failed) == 1 and "KMSDisabled" in failed.failed[0]
    assert quota.run(NOW + timedelta(minutes=15)).alerts_sent == 1


def test_a_claim_left_by_a_run_that_died_is_taken_over_after_the_lease(deployed: Deployed) -> None:
    quota = QuotaHarness(deployed, [QuotaPolicy("default", daily_usd=10 * MINUTE_USD)])
    quota.work(NOW - timedelta(hours=1), scale=9)
    standing = next(s for s in quota.standings(NOW) if s.level is not None)
    assert AlertLedger(quota.client, quota.table, "dead-run").claim(standing, NOW)  # it dies before publishing

    assert quota.run(NOW + timedelta(minutes=5)).alerts_sent == 0  # the claim is still fresh
    assert quota.run(NOW + timedelta(seconds=monitor.LEASE_SECONDS + 60)).alerts_sent == 1


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


def test_the_handler_publishes_to_sns(
    deployed: Deployed, aws_client: Callable[[str], Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    quota = QuotaHarness(deployed, [QuotaPolicy("default", daily_usd=10 * MINUTE_USD)])
    quota.work(NOW - timedelta(minutes=1), scale=9)
    sns, sqs = aws_client("sns"), aws_client("sqs")
    topic = sns.create_topic(Name=f"quota-{uuid.uuid4().hex[:8]}")["TopicArn"]
    inbox = sqs.create_queue(QueueName=f"inbox-{uuid.uuid4().hex[:8]}")["QueueUrl"]
    inbox_arn = sqs.get_queue_attributes(QueueUrl=inbox, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=inbox_arn)
    for name, value in {
        "ROLLUP_TABLE": deployed.table,
        "QUOTA_TABLE": quota.table,
        "ALERT_TOPIC_ARN": topic,
        "TIME_ZONE": "UTC",
        "POLICY_SOURCE": "Pulumi.dev.yaml",
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setattr(monitor, "boto3", SimpleNamespace(client=aws_client))

    summary = monitor.handler({}, None, now=lambda: NOW)
    assert summary["alerts_sent"] == 1 and summary["items_read"] == 2
    (message,) = sqs.receive_message(QueueUrl=inbox, MaxNumberOfMessages=10)["Messages"]
    notification = json.loads(message["Body"])
    assert notification["Subject"] == "Claude Code quota: ada@example.com is at 90% of the daily USD limit"
    assert monitor.handler({}, None, now=lambda: NOW + timedelta(minutes=15))["alerts_sent"] == 0


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
