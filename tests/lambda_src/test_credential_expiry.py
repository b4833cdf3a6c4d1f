"""The expiry watcher: pure parts directly; the run against moto (CloudWatch, SNS, SQS), with IAM faked at the
client boundary because moto does not return a credential's ExpirationDate."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest
from botocore.stub import Stubber

from lambda_src.credential_expiry.handler import Settings, TeamExpiry, check, metric_data, team_expiry, warning

NOW = datetime(2026, 12, 30, 8, 0, tzinfo=UTC)


def credential(
    days: float | None, status: str = "Active", credential_id: str = "ACCAQ3EXAMPLEDATA0001"
) -> dict[str, Any]:
    item: dict[str, Any] = {
        "UserName": "ccm-prod-data",
        "Status": status,
        "ServiceUserName": "ccm-prod-data-at-123456789012",
        "CreateDate": NOW - timedelta(days=30),
        "ServiceSpecificCredentialId": credential_id,
        "ServiceName": "cloudwatch.amazonaws.com",
    }
    if days is not None:
        item["ExpirationDate"] = NOW + timedelta(days=days)
    return item


def test_the_newest_active_key_decides_during_a_rotation() -> None:
    report = team_expiry("data", "u", [credential(2, credential_id="OLD"), credential(60, credential_id="NEW")], NOW)
    assert report == TeamExpiry("data", "u", 60.0, "NEW")


def test_inactive_keys_do_not_count() -> None:
    assert team_expiry("data", "u", [credential(60, status="Inactive")], NOW).days_left is None


def test_metric_per_team_without_people() -> None:
    (point,) = metric_data([TeamExpiry("data", "ccm-prod-data", 12.5, "ACCA1")], NOW)
    assert point["Dimensions"] == [{"Name": "Team", "Value": "data"}] and point["Value"] == 12.5


def test_warning_lists_due_teams_most_urgent_first() -> None:
    reports = [
        TeamExpiry("later", "u1", 40.0, "A"),
        TeamExpiry("soon", "u2", 3.0, "B"),
        TeamExpiry("gone", "u3", None, None),
    ]
    subject, body = warning(reports, 14, "prod") or ("", "")
    assert subject == "Claude Code ingest keys in stack prod: 2 team(s) within 14 days of expiry"
    assert body.index("team gone") < body.index("team soon") and "team later" not in body
    assert "key B expires in 3.0 days" in body and "rotation.activeCredential" in body
    assert warning(reports[:1], 14, "prod") is None


def stubbed_iam(responses: dict[str, list[dict[str, Any]]]) -> tuple[Any, Stubber]:
    iam = boto3.client("iam", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x")
    stubber = Stubber(iam)
    for user, credentials in responses.items():
        stubber.add_response(
            "list_service_specific_credentials",
            {"ServiceSpecificCredentials": credentials, "IsTruncated": False},
            {"UserName": user, "ServiceName": "cloudwatch.amazonaws.com"},
        )
    stubber.activate()
    return iam, stubber


@pytest.fixture
def topic_queue(aws_client: Callable[[str], Any]) -> tuple[str, str]:
    sns, sqs = aws_client("sns"), aws_client("sqs")
    topic_arn = sns.create_topic(Name="ops-alarms")["TopicArn"]
    queue_url = sqs.create_queue(QueueName="ops-inbox")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    sns.subscribe(TopicArn=topic_arn, Protocol="sqs", Endpoint=queue_arn, Attributes={"RawMessageDelivery": "true"})
    return topic_arn, queue_url


def test_a_run_publishes_days_per_team_and_one_warning(
    aws_client: Callable[[str], Any], topic_queue: tuple[str, str]
) -> None:
    topic_arn, queue_url = topic_queue
    settings = Settings(
        users={"ccm-prod-data": "data", "ccm-prod-web": "web"},
        namespace="ClaudeCode/prod/Ingest",
        topic_arn=topic_arn,
        warning_days=14,
        stack="prod",
    )
    iam, stubber = stubbed_iam(
        {"ccm-prod-data": [credential(5)], "ccm-prod-web": [credential(50, credential_id="ACCAQ3EXAMPLEWEB00001")]}
    )
    cloudwatch = aws_client("cloudwatch")

    assert check(settings, iam, cloudwatch, aws_client("sns"), NOW) == {"teams": 2, "warned": True}
    stubber.assert_no_pending_responses()

    values = {}
    for team in ("data", "web"):
        statistics = cloudwatch.get_metric_statistics(
            Namespace="ClaudeCode/prod/Ingest",
            MetricName="DaysToExpiry",
            Dimensions=[{"Name": "Team", "Value": team}],
            StartTime=NOW - timedelta(minutes=5),
            EndTime=NOW + timedelta(minutes=5),
            Period=60,
            Statistics=["Minimum"],
        )
        values[team] = [point["Minimum"] for point in statistics["Datapoints"]]
    assert values == {"data": [5.0], "web": [50.0]}

    messages = aws_client("sqs").receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10)["Messages"]
    (body,) = [message["Body"] for message in messages]
    assert (
        "team data (IAM user ccm-prod-data): key ACCAQ3EXAMPLEDATA0001 expires in 5.0 days" in body
        and "team web" not in body
    )


def test_one_unreadable_user_does_not_hide_the_others(
    aws_client: Callable[[str], Any], topic_queue: tuple[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    topic_arn, _ = topic_queue
    settings = Settings({"a-user": "a", "b-user": "b"}, "ClaudeCode/test/Ingest", topic_arn, 14, "test")
    iam = boto3.client("iam", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x")
    stubber = Stubber(iam)
    stubber.add_client_error("list_service_specific_credentials", "NoSuchEntity", "user a-user not found")
    stubber.add_response(
        "list_service_specific_credentials", {"ServiceSpecificCredentials": [credential(40)], "IsTruncated": False}
    )
    stubber.activate()
    with pytest.raises(RuntimeError, match="could not list the credentials of a-user; the others were reported"):
        check(settings, iam, aws_client("cloudwatch"), aws_client("sns"), NOW)
    logged = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert {"level": "info", "team": "b"}.items() <= logged[-1].items()
    assert any(entry["level"] == "error" and entry["user"] == "a-user" for entry in logged)


def test_settings_come_from_the_environment() -> None:
    environment = {
        "INGEST_USERS": json.dumps({"u": "t"}),
        "METRIC_NAMESPACE": "N",
        "TOPIC_ARN": "arn:aws:sns:eu-west-1:1:t",
        "WARNING_DAYS": "7",
    }
    assert Settings.from_environment(environment) == Settings({"u": "t"}, "N", "arn:aws:sns:eu-west-1:1:t", 7, "")
    with pytest.raises(ValueError, match="INGEST_USERS must be a JSON object"):
        Settings.from_environment({**environment, "INGEST_USERS": "[]"})
