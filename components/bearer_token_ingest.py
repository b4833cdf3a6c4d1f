"""BearerTokenIngest component (Path B): per team, an IAM user whose only permission is the CloudWatch API key
policy, an expiring CloudWatch API key kept in Secrets Manager, Claude Code managed settings that read it
through a headers helper, and a daily watcher that warns before a key expires.

Rotation stays within IAM's limit of two service-specific credentials per user and service: each team has
two slots, `a` and `b`. The active slot's key is in the secret; the other slot's key is kept active, kept
inactive, or deleted, as `previous_credential` says.

People are in these series: no server sits between Claude Code and CloudWatch, and the settings can switch
off only `session.id` and `user.account_uuid`. The client puts `user.id` (an installation hash) on every data
point, and for Claude-account logins `user.email` and `organization.id` too; none can be turned off. Use the
Collector (Path A) where per-person labels are not allowed.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import pulumi
import pulumi_aws as aws

from components.alarms import Alarm, raise_alarms
from components.claude_settings import direct_ingest_managed_settings
from components.lambda_code import python_function
from lambda_src.common.telemetry import COST_CENTER, DEPARTMENT, TEAM

CLOUDWATCH_SERVICE = "cloudwatch.amazonaws.com"
CLOUDWATCH_API_KEY_POLICY_ARN = "arn:aws:iam::aws:policy/CloudWatchAPIKeyAccess"
INGEST_USER_PATH = "/claude-code-ingest/"
MAX_CREDENTIAL_AGE_DAYS = 90  # the policy pack's default maximumCredentialAgeDays
CREDENTIAL_SLOTS = ("a", "b")
EXPIRY_FUNCTION = "credential_expiry"
PREVIOUS_KEY_STAGE = "PREVIOUS_KEY"
EXPIRY_SCHEDULE = "cron(0 7 * * ? *)"  # daily, 07:00 UTC


class InvalidIngestArgs(pulumi.RunError):
    """Arguments that cannot work; the message names the argument and what is allowed."""


@dataclass(frozen=True)
class IngestTeam:
    name: str
    """Used in the IAM user name and as `team.id` in the telemetry."""
    department: str | None = None
    cost_center: str | None = None


@dataclass(frozen=True)
class BearerTokenIngestArgs:
    teams: Sequence[IngestTeam]
    credential_age_days: int
    """Days until each key expires (1 to 90): required, a key without it never expires."""
    region: str
    alarm_topic_arn: pulumi.Input[str]
    """Where expiry warnings and the watcher's own failures go."""
    alarm_topic_key_arn: pulumi.Input[str] | None = None
    """The KMS key of an encrypted alarm topic, which the watcher needs to publish."""
    expiry_warning_days: int = 14
    account_guardrail: bool = False
    """Also create an IAM policy that denies creating CloudWatch keys without an age or older than allowed."""
    headers_helper: str = "/usr/local/bin/claude-cloudwatch-key"
    aws_profile: str | None = None
    """The AWS CLI profile the headers helper reads the secret with (CLAUDE_CODE_INGEST_AWS_PROFILE); None: the
    developer's AWS_PROFILE or default credentials."""
    active_credential: Literal["a", "b"] = "a"
    previous_credential: Literal["active", "inactive", "deleted"] = "deleted"
    metrics_namespace: str = "ClaudeCode/Ingest"
    """Namespace of the watcher's DaysToExpiry metric (dimension: Team)."""
    tags: Mapping[str, str] = field(default_factory=dict)

    def problems(self, name: str) -> list[str]:
        found = []
        if not 1 <= self.credential_age_days <= MAX_CREDENTIAL_AGE_DAYS:
            found.append(
                f"credential_age_days must be from 1 to {MAX_CREDENTIAL_AGE_DAYS}, got {self.credential_age_days}"
            )
        if not 1 <= self.expiry_warning_days < self.credential_age_days:
            found.append(
                f"expiry_warning_days must be from 1 to below credential_age_days ({self.credential_age_days}), "
                f"got {self.expiry_warning_days}"
            )
        if not self.teams:
            found.append("teams must name at least one team")
        seen: set[str] = set()
        for team in self.teams:
            user = ingest_user_name(name, team.name)
            if len(user) > 64:
                found.append(f"team {team.name!r} makes the IAM user name {user!r} longer than 64 characters")
            if team.name.lower() in seen:
                found.append(f"team {team.name!r} appears twice")
            seen.add(team.name.lower())
        if self.active_credential not in CREDENTIAL_SLOTS:
            found.append(f"active_credential must be one of {CREDENTIAL_SLOTS}, got {self.active_credential!r}")
        return found


def team_settings(args: BearerTokenIngestArgs, attributes: Mapping[str, str], secret_arn: str) -> dict[str, Any]:
    return direct_ingest_managed_settings(args.region, attributes, args.headers_helper, secret_arn, args.aws_profile)


def ingest_user_name(name: str, team: str) -> str:
    return f"{name}-{team}"


@dataclass(frozen=True)
class CredentialSlot:
    slot: str
    status: Literal["Active", "Inactive"]
    in_secret: bool


def credential_slots(
    active: Literal["a", "b"], previous: Literal["active", "inactive", "deleted"]
) -> list[CredentialSlot]:
    """The keys a team holds: always the active slot; the other slot unless it was deleted."""
    slots = [CredentialSlot(active, "Active", True)]
    if previous != "deleted":
        other = next(slot for slot in CREDENTIAL_SLOTS if slot != active)
        slots.append(CredentialSlot(other, "Active" if previous == "active" else "Inactive", False))
    return sorted(slots, key=lambda s: s.slot)


def guardrail_policy(max_age_days: int, account_id: str, partition: str) -> dict[str, Any]:
    """Deny creating a CloudWatch API key that never expires or lives longer than allowed, for any user."""
    users = f"arn:{partition}:iam::{account_id}:user/*"
    service = {"iam:ServiceSpecificCredentialServiceName": CLOUDWATCH_SERVICE}
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "DenyCloudWatchKeysWithoutExpiry",
                "Effect": "Deny",
                "Action": "iam:CreateServiceSpecificCredential",
                "Resource": users,
                "Condition": {"StringEquals": service, "Null": {"iam:ServiceSpecificCredentialAgeDays": "true"}},
            },
            {
                "Sid": "DenyLongLivedCloudWatchKeys",
                "Effect": "Deny",
                "Action": "iam:CreateServiceSpecificCredential",
                "Resource": users,
                "Condition": {
                    "StringEquals": service,
                    "NumericGreaterThan": {"iam:ServiceSpecificCredentialAgeDays": str(max_age_days)},
                },
            },
        ],
    }


def watcher_statements(
    user_arns: Sequence[str], namespace: str, topic_arn: str, topic_key_arn: str | None
) -> list[dict[str, Any]]:
    """List the ingest users' keys, write one metric namespace, publish to one topic."""
    statements: list[dict[str, Any]] = [
        {
            "Sid": "ListIngestKeys",
            "Effect": "Allow",
            "Action": "iam:ListServiceSpecificCredentials",
            "Resource": list(user_arns),
        },
        {
            "Sid": "PublishDaysToExpiry",
            "Effect": "Allow",
            "Action": "cloudwatch:PutMetricData",
            "Resource": "*",  # PutMetricData has no resource type; the namespace condition narrows it
            "Condition": {"StringEquals": {"cloudwatch:namespace": namespace}},
        },
        {"Sid": "WarnOperations", "Effect": "Allow", "Action": "sns:Publish", "Resource": topic_arn},
    ]
    if topic_key_arn:
        statements.append(
            {
                "Sid": "EncryptForTopic",
                "Effect": "Allow",
                "Action": ["kms:GenerateDataKey*", "kms:Decrypt"],
                "Resource": topic_key_arn,
            }
        )
    return statements


class BearerTokenIngest(pulumi.ComponentResource):
    """Expiring CloudWatch API keys per team for direct OTLP ingest, with settings, rotation and warnings."""

    def __init__(self, name: str, args: BearerTokenIngestArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("claude-code-monitoring:index:BearerTokenIngest", name, None, opts)
        problems = args.problems(name)
        if problems:
            raise InvalidIngestArgs(f"BearerTokenIngest {name}: " + "; ".join(problems))
        child = pulumi.ResourceOptions(parent=self)
        invoke = pulumi.InvokeOutputOptions(parent=self)
        identity = aws.get_caller_identity_output(opts=invoke)
        partition = aws.get_partition_output(opts=invoke)
        tags = {**args.tags, "component": "BearerTokenIngest"}

        users: dict[str, aws.iam.User] = {}
        secrets: dict[str, aws.secretsmanager.Secret] = {}
        settings_parameters: dict[str, aws.ssm.Parameter] = {}
        managed_settings: dict[str, pulumi.Output[Any]] = {}
        for team in args.teams:
            resource = f"{name}-{team.name}"
            user = aws.iam.User(
                resource,
                name=ingest_user_name(name, team.name),
                path=INGEST_USER_PATH,
                force_destroy=True,  # deleting the user deletes its keys with it
                tags={**tags, "team": team.name},
                opts=child,
            )
            attachment = aws.iam.UserPolicyAttachment(
                resource, user=user.name, policy_arn=CLOUDWATCH_API_KEY_POLICY_ARN, opts=child
            )
            secret = aws.secretsmanager.Secret(
                resource,
                description=f"CloudWatch API key of team {team.name} for Claude Code telemetry (Bearer token)",
                recovery_window_in_days=7,
                tags={**tags, "team": team.name},
                opts=child,
            )
            for slot in credential_slots(args.active_credential, args.previous_credential):
                key = aws.iam.ServiceSpecificCredential(
                    f"{resource}-key-{slot.slot}",
                    service_name=CLOUDWATCH_SERVICE,
                    user_name=user.name,
                    credential_age_days=args.credential_age_days,
                    status=slot.status,
                    opts=pulumi.ResourceOptions(
                        parent=self,
                        depends_on=[attachment],
                        additional_secret_outputs=["servicePassword", "serviceCredentialSecret"],
                    ),
                )
                # The active key is the secret's current value; a key kept during a rotation stays stored
                # under its own label (never in plaintext state outputs), so it can be restored.
                aws.secretsmanager.SecretVersion(
                    resource if slot.in_secret else f"{resource}-previous",
                    secret_id=secret.id,
                    secret_string=pulumi.Output.secret(key.service_credential_secret),  # type: ignore[arg-type]
                    version_stages=None if slot.in_secret else [PREVIOUS_KEY_STAGE],
                    opts=child,
                )
            attributes = {TEAM: team.name}
            if team.department:
                attributes[DEPARTMENT] = team.department
            if team.cost_center:
                attributes[COST_CENTER] = team.cost_center
            settings = secret.arn.apply(functools.partial(team_settings, args, attributes))
            settings_parameters[team.name] = aws.ssm.Parameter(
                f"{resource}-settings",
                name=f"/{name}/claude-code/managed-settings/{team.name}",
                type="String",
                insecure_value=settings.apply(lambda document: json.dumps(document, indent=2)),
                description=f"Claude Code managed settings for team {team.name} (direct ingest, no secrets)",
                tags=tags,
                opts=child,
            )
            users[team.name], secrets[team.name], managed_settings[team.name] = user, secret, settings

        if args.account_guardrail:
            guardrail = aws.iam.Policy(
                f"{name}-guardrail",
                description=f"Denies CloudWatch API keys older than {args.credential_age_days} days or without expiry",
                policy=pulumi.Output.all(identity.account_id, partition.partition).apply(
                    lambda values: json.dumps(guardrail_policy(args.credential_age_days, values[0], values[1]))
                ),
                tags=tags,
                opts=child,
            )
            self.guardrail_policy_arn: pulumi.Output[str] | None = guardrail.arn
        else:
            self.guardrail_policy_arn = None

        expiry = python_function(
            f"{name}-key-expiry",
            folder=EXPIRY_FUNCTION,
            description="Daily: days to expiry of the Claude Code ingest keys per team, and a warning before expiry",
            environment={
                "INGEST_USERS": pulumi.Output.all(*[user.name for user in users.values()]).apply(
                    lambda names: json.dumps(dict(zip(names, users, strict=True)))
                ),
                "METRIC_NAMESPACE": args.metrics_namespace,
                "TOPIC_ARN": args.alarm_topic_arn,
                "WARNING_DAYS": str(args.expiry_warning_days),
                "STACK": pulumi.get_stack(),
            },
            account_id=identity.account_id,
            parent=self,
            tags=tags,
        )
        watcher = expiry.function
        expiry.allow(
            pulumi.Output.all(
                pulumi.Output.all(*[user.arn for user in users.values()]),
                args.alarm_topic_arn,
                args.alarm_topic_key_arn,
            ).apply(lambda values: watcher_statements(values[0], args.metrics_namespace, values[1], values[2]))
        )
        expiry.run_on_schedule(EXPIRY_SCHEDULE, "Checks the Claude Code ingest keys every day", tags)
        raise_alarms(
            name,
            [
                Alarm(
                    "key-expiry-errors",
                    "The ingest key watcher failed: key expiry is not being checked",
                    "AWS/Lambda",
                    "Errors",
                    {"FunctionName": watcher.name},
                    period=86_400,
                )
            ],
            args.alarm_topic_arn,
            tags,
            parent=self,
        )

        self.user_names = pulumi.Output.all(**{team: user.name for team, user in users.items()})
        self.secret_arns = pulumi.Output.all(**{team: secret.arn for team, secret in secrets.items()})
        self.settings_parameters = pulumi.Output.all(
            **{team: parameter.name for team, parameter in settings_parameters.items()}
        )
        self.managed_settings = pulumi.Output.all(**managed_settings)
        self.watcher_function_name = watcher.name
        self.register_outputs(
            {
                "userNames": self.user_names,
                "secretArns": self.secret_arns,
                "settingsParameters": self.settings_parameters,
                "managedSettings": self.managed_settings,
                "guardrailPolicyArn": self.guardrail_policy_arn,
                "watcherFunctionName": self.watcher_function_name,
            }
        )
