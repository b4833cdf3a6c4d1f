"""Daily check of the CloudWatch API keys of the ingest users: days to expiry as a metric per team, and one
SNS warning listing every team whose key expires within the warning window (or has no active key).

Environment: INGEST_USERS (JSON object, IAM user name -> team), METRIC_NAMESPACE, TOPIC_ARN, WARNING_DAYS,
STACK (named in the warning).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from lambda_src.common import aws
from lambda_src.common.clock import Instant, wall_clock_now
from lambda_src.common.logs import log

SERVICE_NAME = "cloudwatch.amazonaws.com"
METRIC_NAME = "DaysToExpiry"
SECONDS_PER_DAY = 86_400


@dataclass(frozen=True)
class Settings:
    users: Mapping[str, str]
    namespace: str
    topic_arn: str
    warning_days: int
    stack: str

    @classmethod
    def from_environment(cls, environment: Mapping[str, str]) -> Settings:
        users = json.loads(environment["INGEST_USERS"])
        if not isinstance(users, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in users.items()):
            raise ValueError("INGEST_USERS must be a JSON object of IAM user name -> team")
        return cls(
            users=users,
            namespace=environment["METRIC_NAMESPACE"],
            topic_arn=environment["TOPIC_ARN"],
            warning_days=int(environment["WARNING_DAYS"]),
            stack=environment.get("STACK", ""),
        )


@dataclass(frozen=True)
class TeamExpiry:
    team: str
    user: str
    days_left: float | None
    """Days until the active key that lasts longest expires; None when the team has no active key."""
    credential_id: str | None


def days_to_expiry(credential: Mapping[str, Any], now: datetime) -> float | None:
    expiration = credential.get("ExpirationDate")
    if not isinstance(expiration, datetime):
        return None  # a key without an expiry: the policy pack forbids it, but report it rather than crash
    return (expiration - now).total_seconds() / SECONDS_PER_DAY


def team_expiry(team: str, user: str, credentials: Iterable[Mapping[str, Any]], now: datetime) -> TeamExpiry:
    """The team's outlook: during a rotation two keys are active, and the newer one is what clients use."""
    active = [
        c for c in credentials if c.get("Status") == "Active" and c.get("ServiceName", SERVICE_NAME) == SERVICE_NAME
    ]
    dated = [(days, c) for c in active if (days := days_to_expiry(c, now)) is not None]
    if dated:
        days, credential = max(dated, key=lambda pair: pair[0])
        return TeamExpiry(team, user, round(days, 2), credential.get("ServiceSpecificCredentialId"))
    if active:
        return TeamExpiry(team, user, float("inf"), active[0].get("ServiceSpecificCredentialId"))
    return TeamExpiry(team, user, None, None)


def metric_data(reports: Sequence[TeamExpiry], now: datetime) -> list[dict[str, Any]]:
    """One DaysToExpiry data point per team (0 without an active key); never a dimension naming a person."""
    return [
        {
            "MetricName": METRIC_NAME,
            "Dimensions": [{"Name": "Team", "Value": report.team}],
            "Timestamp": now,
            "Value": 0.0 if report.days_left is None else min(report.days_left, 36_600.0),
            "Unit": "Count",
        }
        for report in reports
    ]


def warning(reports: Sequence[TeamExpiry], warning_days: int, stack: str) -> tuple[str, str] | None:
    """(subject, body) of the SNS warning, or None when every key lasts longer than the window."""
    due = sorted(
        (r for r in reports if r.days_left is None or r.days_left <= warning_days),
        key=lambda r: -1.0 if r.days_left is None else r.days_left,
    )
    if not due:
        return None
    lines = [
        f"- team {r.team} (IAM user {r.user}): "
        + (
            "no active CloudWatch API key; telemetry from this team is rejected"
            if r.days_left is None
            else f"key {r.credential_id} expires in {max(r.days_left, 0):.1f} days"
        )
        for r in due
    ]
    where = f" in stack {stack}" if stack else ""
    body = "\n".join(
        [
            f"CloudWatch API keys for Claude Code direct ingest{where} need rotating:",
            *lines,
            "",
            "To rotate: switch bearerTokenIngest.rotation.activeCredential to the other slot with "
            "previousCredential: active and run `pulumi up` (a new key is made and the secret updated); once "
            "clients have refreshed, set previousCredential: deleted and run `pulumi up` again.",
        ]
    )
    subject = f"Claude Code ingest keys{where}: {len(due)} team(s) within {warning_days} days of expiry"
    return subject[:100], body


def list_credentials(iam: Any, user: str) -> list[dict[str, Any]]:
    credentials: list[dict[str, Any]] = []
    request: dict[str, Any] = {"UserName": user, "ServiceName": SERVICE_NAME}
    while True:
        page = iam.list_service_specific_credentials(**request)
        credentials.extend(page.get("ServiceSpecificCredentials", []))
        if not page.get("IsTruncated"):
            return credentials
        request["Marker"] = page["Marker"]


def check(settings: Settings, iam: Any, cloudwatch: Any, sns: Any, now: datetime) -> dict[str, Any]:
    reports = []
    failed = []
    for user, team in sorted(settings.users.items()):
        try:
            reports.append(team_expiry(team, user, list_credentials(iam, user), now))
        except Exception as error:  # noqa: BLE001 (one unreadable user must not hide the others' expiry)
            failed.append(user)
            log("error", "could not list the user's credentials", user=user, team=team, error=repr(error))
    data = metric_data(reports, now)
    for start in range(0, len(data), 1000):
        cloudwatch.put_metric_data(Namespace=settings.namespace, MetricData=data[start : start + 1000])
    message = warning(reports, settings.warning_days, settings.stack)
    if message:
        sns.publish(TopicArn=settings.topic_arn, Subject=message[0], Message=message[1])
    for report in reports:
        log("info", "key expiry", team=report.team, user=report.user, days_left=report.days_left)
    if failed:
        raise RuntimeError(f"could not list the credentials of {', '.join(failed)}; the others were reported")
    return {"teams": len(reports), "warned": bool(message)}


def handler(event: Mapping[str, Any], context: Any, now: Instant = wall_clock_now) -> dict[str, Any]:
    settings = Settings.from_environment(os.environ)
    return check(settings, aws.client("iam"), aws.client("cloudwatch"), aws.client("sns"), now())
