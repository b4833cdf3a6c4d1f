"""Typed stack configuration: the schema of every key, its default, and validation.

The stack files (`Pulumi.<stack>.yaml`) hold one object per component (`collector`, `dashboard`,
`analytics`, `quota`, `bearerTokenIngest`) plus a few scalar keys declared in `Pulumi.yaml`.
`parse_stack_config` validates all of it before any resource is declared and reports every problem as
`<key> must be <what is allowed> (<stack file>), got <value>`.
"""

from __future__ import annotations

import datetime
import difflib
import functools
import ipaddress
import itertools
import json
import math
import re
import types
import unicodedata
import zoneinfo
from collections.abc import Mapping
from typing import Annotated, Any, Literal, NamedTuple, Union, get_args, get_origin

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic.alias_generators import to_camel

from components.bearer_token_ingest import CLOUDWATCH_API_KEY_POLICY_ARN
from components.bearer_token_ingest import MAX_CREDENTIAL_AGE_DAYS as BEARER_CREDENTIAL_AGE_DAYS_MAX
from components.claude_settings import (
    AWS_PROFILE_PATTERN,
    BAGGAGE_KEY_PATTERN,
    BAGGAGE_VALUE_PATTERN,
    DEFAULT_TOKEN_HELPER_SCOPES,
    LOOPBACK_REDIRECT_PATTERN,
    OAUTH_SCOPE_PATTERN,
)
from components.collector import DEFAULT_COLLECTOR_IMAGE, PINNED_IMAGE_PATTERN
from components.operations import EMAIL_PATTERN, HTTPS_URL_PATTERN
from lambda_src.common.pricing import PRICE_TABLE_MAX_BYTES, ModelPrice, PriceTable
from lambda_src.common.quota_policies import (
    THRESHOLD_MAX,
    THRESHOLD_MIN,
    limit_problem,
    limit_rule,
    thresholds_problem,
)
from lambda_src.common.telemetry import CLIENT_SET_ATTRIBUTES, METRIC_NAMES, PER_USER_ATTRIBUTES

PROJECT = "claude-code-monitoring"

CLOUDWATCH_RETENTION_DAYS = (
    1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653,
)  # fmt: skip
FARGATE_CPU_UNITS = (256, 512, 1024, 2048, 4096, 8192, 16384)

_EMAIL = EMAIL_PATTERN
_HOSTNAME = r"^([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$"
_HTTPS_URL = HTTPS_URL_PATTERN
_CIDR = r"^((25[0-5]|2[0-4]\d|1?\d?\d)\.){3}(25[0-5]|2[0-4]\d|1?\d?\d)/(3[0-2]|[12]?\d)$"
_IAM_USER_SAFE = r"^[A-Za-z0-9+=,.@_-]{1,48}$"
_LOG_GROUP_NAME = r"^[A-Za-z0-9_./#-]{1,512}$"

Email = Annotated[str, Field(pattern=_EMAIL, json_schema_extra={"allowed": "an email address"})]
Cidr = Annotated[str, Field(pattern=_CIDR, json_schema_extra={"allowed": "an IPv4 CIDR such as 10.0.0.0/8"})]
HttpsUrl = Annotated[str, Field(pattern=_HTTPS_URL, json_schema_extra={"allowed": "an https:// URL"})]
RetentionDays = Annotated[
    int,
    Field(
        json_schema_extra={
            "allowed": "one of the CloudWatch Logs retention values " + ", ".join(map(str, CLOUDWATCH_RETENTION_DAYS))
        }
    ),
]


class ConfigError(Exception):
    """The stack configuration is invalid; the message lists every problem, one per line."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("\n".join(problems))


class FieldProblemError(ValueError):
    """Raised by a model validator for a check that involves several fields but is about one of them: the
    problem is reported at that field's path, with its value."""

    def __init__(self, field: str, reason: str, value: Any) -> None:
        super().__init__(reason)
        self.field = field
        self.reason = reason
        self.value = value


class _Section(BaseModel):
    """Strict, camelCase, closed: a typo in a key is an error, never a silently ignored setting."""

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        extra="forbid",
        strict=True,
        frozen=True,
    )


def _check_retention(value: int) -> int:
    if value not in CLOUDWATCH_RETENTION_DAYS:
        raise ValueError("allowed: " + ", ".join(map(str, CLOUDWATCH_RETENTION_DAYS)))
    return value


class IdentityClaims(_Section):
    """Names of the claims in the identity provider's token that carry the user's identity."""

    email: str = "email"
    user_id: str = "sub"
    department: str = "department"
    team: str = "team"
    cost_center: str = "cost_center"


class IdentityConfig(_Section):
    """How the collector authenticates Claude Code clients."""

    mode: Literal["jwt", "none"] = Field(
        description="`jwt`: the load balancer validates the IdP's bearer token; `none`: no check (dev only)"
    )
    issuer: HttpsUrl | None = Field(None, description="Token issuer (`iss`) of the identity provider")
    jwks_uri: HttpsUrl | None = Field(None, description="JWKS endpoint of the identity provider")
    audience: str | None = Field(None, description="Expected `aud` claim")
    audience_format: Literal["single-string", "string-array"] = Field(
        "single-string", description="How the IdP writes `aud`: one string, or an array of strings"
    )
    claims: IdentityClaims = IdentityClaims()
    # The token helper's settings (scripts/claude-otel-token), written into the managed settings' env block.
    client_id: str | None = Field(
        None,
        pattern=r"^[A-Za-z0-9][A-Za-z0-9._~:/@+-]{0,255}$",
        json_schema_extra={"allowed": "the client ID your identity provider gave the token helper's public client"},
    )
    scopes: list[
        Annotated[
            str,
            Field(
                pattern=OAUTH_SCOPE_PATTERN,
                json_schema_extra={"allowed": "an OAuth scope: printable ASCII without spaces, quotes or backslashes"},
            ),
        ]
    ] = Field(
        list(DEFAULT_TOKEN_HELPER_SCOPES),
        min_length=1,
        json_schema_extra={"allowed": "a non-empty list of OAuth scopes such as [openid, offline_access]"},
    )
    token_use: Literal["access", "id"] = Field(
        "access", description="Which token the helper sends: `access`, or `id` (Amazon Cognito)"
    )
    flow: Literal["auto", "device", "browser"] = Field(
        "auto", description="Sign-in flow of `claude-otel-token login`: device grant, browser (PKCE), or auto"
    )
    redirect_uri: str | None = Field(
        None,
        pattern=LOOPBACK_REDIRECT_PATTERN,
        json_schema_extra={
            "allowed": "a loopback http URL with a port, such as http://localhost:8976/callback (registered with the "
            "identity provider)"
        },
    )
    audience_parameter: Literal["audience", "resource"] | None = Field(
        None, description="Also send the audience as this request parameter (Auth0: audience; RFC 8707: resource)"
    )

    @model_validator(mode="after")
    def _jwt_needs_provider(self) -> IdentityConfig:
        helper_keys = ("client_id", "scopes", "token_use", "flow", "redirect_uri", "audience_parameter")
        if self.mode == "jwt":
            missing = [
                name
                for name, value in (
                    ("issuer", self.issuer),
                    ("jwksUri", self.jwks_uri),
                    ("audience", self.audience),
                    ("clientId", self.client_id),
                )
                if not value
            ]
            if missing:
                why = (
                    ": clientId is the public client (no secret) registered with your identity provider for the "
                    "token helper, which the managed settings pass to it as CLAUDE_OTEL_CLIENT_ID "
                    "(docs/identity-providers.md)"
                    if "clientId" in missing
                    else ""
                )
                raise ValueError(f"needs {', '.join(missing)} when mode is jwt{why}")
            if self.token_use == "id" and "openid" not in self.scopes:  # noqa: S105 (a kind of token)
                raise FieldProblemError(
                    "scopes",
                    "a list holding openid when tokenUse is id: identity providers issue an ID token only for the "
                    "openid scope",
                    self.scopes,
                )
        else:
            given = [to_camel(name) for name in helper_keys if name in self.model_fields_set]
            if given:
                one = len(given) == 1
                raise ValueError(
                    f"has {', '.join(given)}, the token helper's {'setting' if one else 'settings'}, which "
                    f"{'applies' if one else 'apply'} only when mode is jwt (with mode none no token is sent): "
                    f"remove {'it' if one else 'them'}, or set mode jwt"
                )
        return self


class NetworkConfig(_Section):
    """A new VPC, or an existing one."""

    vpc_id: str | None = Field(
        None, pattern=r"^vpc-[0-9a-f]{8,17}$", json_schema_extra={"allowed": "a VPC id such as vpc-0abc12345"}
    )
    private_subnet_ids: list[Annotated[str, Field(pattern=r"^subnet-[0-9a-f]{8,17}$")]] = []
    public_subnet_ids: list[Annotated[str, Field(pattern=r"^subnet-[0-9a-f]{8,17}$")]] = []
    cidr_block: Cidr = "10.60.0.0/16"
    availability_zones: int = Field(2, ge=2, le=3, description="AZs of a new VPC")
    nat_gateways: Literal["single", "onePerAz"] = "single"

    @model_validator(mode="after")
    def _existing_vpc_needs_subnets(self) -> NetworkConfig:
        if self.vpc_id and (len(self.private_subnet_ids) < 2 or len(self.public_subnet_ids) < 2):
            raise ValueError(
                "needs at least 2 privateSubnetIds and 2 publicSubnetIds, in distinct availability zones, with vpcId"
            )
        if not self.vpc_id and (self.private_subnet_ids or self.public_subnet_ids):
            raise ValueError("needs vpcId when subnet ids are given")
        return self


class CollectorConfig(_Section):
    """Path A: the OpenTelemetry collector behind an HTTPS load balancer."""

    enabled: bool = False
    desired_count: int = Field(1, ge=1, le=20, description="Collector tasks at deployment")
    min_count: int = Field(1, ge=1, le=20, description="Autoscaling minimum")
    max_count: int = Field(2, ge=1, le=50, description="Autoscaling maximum")
    cpu: Literal[FARGATE_CPU_UNITS] = Field(512, description="Fargate CPU units per task")  # type: ignore[valid-type]
    memory: int = Field(1024, ge=512, le=122880, description="Fargate memory per task, MiB")
    log_retention_days: RetentionDays = 30
    domain_name: str | None = Field(
        None,
        pattern=_HOSTNAME,
        max_length=253,
        json_schema_extra={"allowed": "a lower-case DNS name such as otel.example.com"},
    )
    hosted_zone_id: str | None = Field(
        None, pattern=r"^Z[A-Z0-9]{4,32}$", json_schema_extra={"allowed": "a Route 53 hosted zone id such as Z0123ABC"}
    )
    certificate_arn: str | None = Field(
        None,
        pattern=r"^arn:aws[a-z-]*:acm:[a-z0-9-]+:\d{12}:certificate/[0-9a-f-]{36}$",
        json_schema_extra={"allowed": "an ACM certificate ARN"},
    )
    internet_facing: bool = True
    allowed_cidrs: list[Cidr] = Field(["0.0.0.0/0"], min_length=1)
    idle_timeout_seconds: int = Field(300, ge=61, le=4000, description="Load balancer idle timeout")
    container_insights: bool = False
    access_logs: bool = Field(True, description="Load balancer access logs to an encrypted S3 bucket")
    image: str = Field(
        DEFAULT_COLLECTOR_IMAGE,
        pattern=PINNED_IMAGE_PATTERN,
        json_schema_extra={
            "allowed": "a pinned image: repository:<exact version> (not latest) or repository@sha256:<digest>"
        },
    )
    cpu_architecture: Literal["ARM64", "X86_64"] = Field("ARM64", description="Graviton tasks cost about 20% less")
    grpc: bool = Field(False, description="Also accept OTLP over gRPC (port 4317)")
    requests_per_target: int = Field(
        2000, ge=100, le=100_000, description="Scale out above this many requests per task per minute"
    )
    cpu_target_percent: int = Field(60, ge=20, le=90, description="Scale out above this average CPU")
    metrics_namespace: str = Field(
        "ClaudeCode",
        pattern=r"^[A-Za-z0-9._#:/-]{1,255}$",
        json_schema_extra={"allowed": "a CloudWatch namespace (letters, digits, . _ # : / -), not starting with AWS/"},
    )
    metrics_log_group_name: str | None = Field(
        None, pattern=_LOG_GROUP_NAME, json_schema_extra={"allowed": "a log group name such as /claude-code/metrics"}
    )
    events_log_group_name: str | None = Field(
        None, pattern=_LOG_GROUP_NAME, json_schema_extra={"allowed": "a log group name such as /claude-code/events"}
    )
    resource_attributes: dict[
        Annotated[
            str,
            Field(
                pattern=BAGGAGE_KEY_PATTERN,
                json_schema_extra={
                    "allowed": "attribute names of 1-128 letters, digits or !#$%&'*+.^_`|~- (such as team.id)"
                },
            ),
        ],
        Annotated[
            str,
            Field(
                pattern=BAGGAGE_VALUE_PATTERN,
                json_schema_extra={
                    "allowed": "1-256 printable ASCII characters without spaces, commas, semicolons, quotes or "
                    "backslashes"
                },
            ),
        ],
    ] = Field(
        {},
        json_schema_extra={
            "allowed": "a map of organisation defaults for OTEL_RESOURCE_ATTRIBUTES (no spaces, commas, quotes)"
        },
    )
    group_metrics: dict[
        Literal["team", "costCenter", "organization"],
        list[
            Annotated[
                str,
                Field(
                    pattern="^(" + "|".join(re.escape(name) for name in METRIC_NAMES) + ")$",
                    json_schema_extra={"allowed": "a Claude Code metric: " + ", ".join(METRIC_NAMES)},
                ),
            ]
        ],
    ] = Field(
        {},
        json_schema_extra={
            "allowed": "team, costCenter or organization, each with the metrics to chart per group in CloudWatch "
            "(each adds a series per group and metric; the dashboard's team views read the rollups without it)"
        },
    )
    otel_headers_helper: str | None = Field(
        None,
        min_length=1,
        description="Path of the script on developer machines that prints the Authorization header",
    )
    network: NetworkConfig = NetworkConfig()
    identity: IdentityConfig | None = None

    _retention = field_validator("log_retention_days")(_check_retention)

    @field_validator("metrics_namespace")
    @classmethod
    def _not_aws_namespace(cls, value: str) -> str:
        if value.startswith("AWS/"):
            raise ValueError("a namespace of your own: names starting with AWS/ are reserved")
        return value

    @field_validator("resource_attributes")
    @classmethod
    def _no_identity_attributes(cls, value: dict[str, str]) -> dict[str, str]:
        personal = sorted(key for key in value if key.startswith("user.") or key in PER_USER_ATTRIBUTES)
        if personal:
            raise ValueError(
                f"must hold organisation defaults only, and {', '.join(personal)} name a person or session "
                "(identity comes from the verified token or the client)"
            )
        overridden = sorted(key for key in value if key in CLIENT_SET_ATTRIBUTES)
        if overridden:
            raise ValueError(
                f"must not set {', '.join(overridden)}: Claude Code sets it on every data point itself, and its "
                "own value wins over OTEL_RESOURCE_ATTRIBUTES"
            )
        return value

    @model_validator(mode="after")
    def _consistent(self) -> CollectorConfig:
        if not self.min_count <= self.desired_count <= self.max_count:
            raise ValueError(
                f"needs minCount <= desiredCount <= maxCount, got {self.min_count} <= "
                f"{self.desired_count} <= {self.max_count}"
            )
        if self.enabled and not (self.certificate_arn or (self.domain_name and self.hosted_zone_id)):
            raise ValueError(
                "needs certificateArn, or domainName with hostedZoneId, when enabled "
                "(the certificate of the HTTPS listener)"
            )
        if self.enabled and not self.domain_name:
            raise ValueError("needs domainName when enabled (the endpoint Claude Code sends to)")
        if self.enabled and self.identity is None:
            raise ValueError(
                "needs identity when enabled: mode jwt with issuer, jwksUri and audience of your identity provider, "
                "or mode none to accept unauthenticated telemetry (dev only)"
            )
        if self.enabled and self.identity and self.identity.mode == "none" and _whole_internet(self.allowed_cidrs):
            raise FieldProblemError(
                "allowedCidrs",
                "narrower than the whole internet when identity.mode is none, because anyone who reaches the "
                "endpoint could send telemetry in any user's name: list your corporate egress ranges (such as "
                "203.0.113.0/24), or validate tokens with identity.mode jwt",
                self.allowed_cidrs,
            )
        if self.enabled and self.identity and self.identity.mode == "jwt" and not self.otel_headers_helper:
            raise ValueError(
                "needs otelHeadersHelper when identity.mode is jwt: the path of the script on developer machines "
                "that prints the Authorization header with the identity provider's token"
            )
        return self


def _whole_internet(cidrs: list[str]) -> bool:
    """The ranges together admit every IPv4 address (0.0.0.0/0, or halves and quarters that add up to it)."""
    networks = ipaddress.collapse_addresses(ipaddress.IPv4Network(cidr, strict=False) for cidr in cidrs)
    return any(network.prefixlen == 0 for network in networks)


class DashboardConfig(_Section):
    """DynamoDB rollups, the aggregator and widget functions, and the CloudWatch dashboard."""

    enabled: bool = False
    rollup_ttl_days: int = Field(400, ge=1, le=3650, description="Days a rollup item is kept")
    point_in_time_recovery: bool = False
    log_retention_days: RetentionDays = 30

    _retention = field_validator("log_retention_days")(_check_retention)


class AnalyticsConfig(_Section):
    """Firehose to an S3 Parquet data lake, Glue tables and an Athena workgroup."""

    enabled: bool = False
    buffering_interval_seconds: int = Field(300, ge=60, le=900)
    buffering_size_mb: int = Field(128, ge=64, le=128, description="Parquet conversion needs at least 64 MiB")
    infrequent_access_after_days: int | None = Field(90, ge=30)
    glacier_instant_retrieval_after_days: int | None = Field(None, ge=90)
    expiration_days: int | None = Field(730, ge=1)
    results_expiration_days: int = Field(7, ge=1, le=365)
    bytes_scanned_cutoff_mb: int = Field(10240, ge=10, le=10_000_000, description="Athena per-query scan limit")
    log_retention_days: RetentionDays = 30

    _retention = field_validator("log_retention_days")(_check_retention)

    @model_validator(mode="after")
    def _lifecycle_in_order(self) -> AnalyticsConfig:
        steps = [
            (name, days)
            for name, days in (
                ("infrequentAccessAfterDays", self.infrequent_access_after_days),
                ("glacierInstantRetrievalAfterDays", self.glacier_instant_retrieval_after_days),
                ("expirationDays", self.expiration_days),
            )
            if days is not None
        ]
        for (first, first_days), (second, second_days) in itertools.pairwise(steps):
            if first_days >= second_days:
                raise ValueError(f"needs {first} < {second}, got {first_days} >= {second_days}")
        return self


class QuotaLimits(_Section):
    """Limits of one policy. 0 disables a limit; a missing limit is not enforced. The rule is
    lambda_src/common/quota_policies.py's, which the quota monitor applies again to the stored items."""

    daily_tokens: int | None = Field(None, json_schema_extra={"allowed": limit_rule("daily_tokens")})
    monthly_tokens: int | None = Field(None, json_schema_extra={"allowed": limit_rule("monthly_tokens")})
    daily_usd: float | int | None = Field(None, json_schema_extra={"allowed": limit_rule("daily_usd")})
    monthly_usd: float | int | None = Field(None, json_schema_extra={"allowed": limit_rule("monthly_usd")})

    @field_validator("daily_tokens", "monthly_tokens", "daily_usd", "monthly_usd")
    @classmethod
    def _valid_limit(cls, value: float | None, info: ValidationInfo) -> float | None:
        problem = limit_problem(str(info.field_name), value)
        if problem:
            raise ValueError(problem)
        return value


class GroupQuota(QuotaLimits):
    group_type: Literal["department", "team"]
    name: str = Field(min_length=1)


class UserQuota(QuotaLimits):
    email: Email


class QuotaConfig(_Section):
    """Per-user token and cost quotas: default, group and user policies."""

    enabled: bool = False
    time_zone: str = Field("UTC", json_schema_extra={"allowed": "an IANA time zone such as UTC or Europe/Berlin"})
    schedule_minutes: int = Field(15, ge=5, le=1440)
    thresholds: list[Annotated[int, Field(ge=THRESHOLD_MIN, le=THRESHOLD_MAX)]] = Field([80, 90, 100], min_length=1)
    alert_emails: list[Email] = []
    alert_https_endpoints: list[HttpsUrl] = []
    default: QuotaLimits = QuotaLimits()
    groups: list[GroupQuota] = []
    users: list[UserQuota] = []
    log_retention_days: RetentionDays = 30

    _retention = field_validator("log_retention_days")(_check_retention)

    @field_validator("time_zone")
    @classmethod
    def _known_time_zone(cls, value: str) -> str:
        try:
            zoneinfo.ZoneInfo(value)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            raise ValueError("an IANA time zone such as UTC or Europe/Berlin") from None
        return value

    @field_validator("thresholds")
    @classmethod
    def _ascending(cls, value: list[int]) -> list[int]:
        problem = thresholds_problem(value)
        if problem:
            raise ValueError(problem)
        return value

    @model_validator(mode="after")
    def _each_policy_once(self) -> QuotaConfig:
        named = [f"groups {g.group_type} {g.name!r}" for g in self.groups] + [f"users {u.email!r}" for u in self.users]
        repeated = sorted({name for name in named if named.count(name) > 1})
        if repeated:
            raise ValueError(
                f"has a policy more than once ({', '.join(repeated)}): keep one entry per user and per group"
            )
        return self


class BearerTeam(_Section):
    name: str = Field(
        pattern=_IAM_USER_SAFE,
        json_schema_extra={"allowed": "1-48 characters usable in an IAM user name (letters, digits, +=,.@_-)"},
    )
    department: str | None = Field(
        None,
        pattern=BAGGAGE_VALUE_PATTERN,
        json_schema_extra={"allowed": "printable ASCII without spaces, commas, semicolons, quotes or backslashes"},
    )
    cost_center: str | None = Field(
        None,
        pattern=BAGGAGE_VALUE_PATTERN,
        json_schema_extra={"allowed": "printable ASCII without spaces, commas, semicolons, quotes or backslashes"},
    )

    @model_validator(mode="before")
    @classmethod
    def _no_extra_policies(cls, values: Any) -> Any:
        if isinstance(values, dict):
            for key in ("policies", "policyArns", "managedPolicyArns", "inlinePolicies"):
                if key in values:
                    raise ValueError(
                        f"cannot take {key}: an ingest user holds only {CLOUDWATCH_API_KEY_POLICY_ARN}, so a leaked "
                        "key can do nothing but send metrics"
                    )
        return values


class IngestRotation(_Section):
    """Which of a team's two credential slots is in use, and what became of the other one."""

    active_credential: Literal["a", "b"] = "a"
    previous_credential: Literal["active", "inactive", "deleted"] = "deleted"


class BearerTokenIngestConfig(_Section):
    """Path B: CloudWatch API keys for direct OTLP ingest, per team."""

    enabled: bool = False
    credential_age_days: int | None = Field(
        None,
        ge=1,
        le=BEARER_CREDENTIAL_AGE_DAYS_MAX,
        json_schema_extra={"allowed": f"a number of days from 1 to {BEARER_CREDENTIAL_AGE_DAYS_MAX}"},
    )
    expiry_warning_days: int = Field(14, ge=1, le=60)
    account_guardrail: bool = False
    headers_helper: str = Field(
        "/usr/local/bin/claude-cloudwatch-key",
        pattern=r"^/[^\s]+$",
        json_schema_extra={"allowed": "an absolute path on the developer's machine, without spaces"},
    )
    aws_profile: str | None = Field(
        None,
        pattern=AWS_PROFILE_PATTERN,
        json_schema_extra={
            "allowed": "an AWS CLI profile name every developer machine has (letters, digits, _.@+-), such as "
            "claude-code-ingest"
        },
    )
    rotation: IngestRotation = IngestRotation()
    teams: list[BearerTeam] = []

    @field_validator("teams")
    @classmethod
    def _unique_names(cls, teams: list[BearerTeam]) -> list[BearerTeam]:
        seen: set[str] = set()
        for team in teams:
            if team.name.lower() in seen:
                raise ValueError(f"unique team names, and {team.name!r} appears twice")
            seen.add(team.name.lower())
        return teams

    @model_validator(mode="after")
    def _age_is_chosen(self) -> BearerTokenIngestConfig:
        if self.enabled and self.credential_age_days is None:
            raise ValueError(
                f"needs credentialAgeDays (1 to {BEARER_CREDENTIAL_AGE_DAYS_MAX}) when enabled: "
                "a key without it never expires"
            )
        if self.enabled and not self.teams:
            raise ValueError("needs at least one team when enabled")
        if (
            self.enabled
            and self.credential_age_days is not None
            and self.expiry_warning_days >= self.credential_age_days
        ):
            raise ValueError(
                f"needs expiryWarningDays ({self.expiry_warning_days}) below credentialAgeDays "
                f"({self.credential_age_days}), or the warning fires the day the key is made"
            )
        return self


UsdPerMillion = Annotated[
    float,
    Field(ge=0, le=10_000, allow_inf_nan=False, json_schema_extra={"allowed": "USD per million tokens, 0 to 10000"}),
]


class ModelPriceConfig(_Section):
    """One entry of the stack's price table: re-prices tokens at your contract or Bedrock rates."""

    model: str = Field(
        pattern=r"^[a-z0-9][a-z0-9.:_-]{0,127}[*]?$",
        json_schema_extra={
            "allowed": "a model id as Claude Code reports it (claude-sonnet-4-5-20250929), an undated id "
            "(claude-sonnet-4-5), or a prefix ending in * (claude-opus-5*), in lower case"
        },
    )
    input: UsdPerMillion
    output: UsdPerMillion
    cache_read: UsdPerMillion
    cache_creation: UsdPerMillion


# The AWS provider's configuration keys (`aws:<key>`), as pulumi-aws 7.51.1 declares them in
# sdk/python/pulumi_aws/config/vars.py. The program reads region and defaultTags (and honours skipRegionValidation);
# the provider reads all of them. Any other `aws:` key is an error here, named with the known keys, so that a
# misspelt one (aws:regoin) fails the offline preview instead of passing it.
AWS_PROVIDER_KEYS = (
    "accessKey", "allowedAccountIds", "assumeRoleWithWebIdentity", "assumeRoles", "customCaBundle", "defaultTags",
    "ec2MetadataServiceEndpoint", "ec2MetadataServiceEndpointMode", "endpoints", "forbiddenAccountIds", "httpProxy",
    "httpsProxy", "ignoreTags", "insecure", "maxRetries", "noProxy", "profile", "region", "retryMode",
    "s3UsEast1RegionalEndpoint", "s3UsePathStyle", "secretKey", "sharedConfigFiles", "sharedCredentialsFiles",
    "skipCredentialsValidation", "skipMetadataApiCheck", "skipRegionValidation", "skipRequestingAccountId",
    "stsRegion", "tagPolicyCompliance", "token", "tokenBucketRateLimiterCapacity", "useDualstackEndpoint",
    "useFipsEndpoint", "userAgents",
)  # fmt: skip
REGION_SHAPE = r"^[a-z]{2,4}(-gov|-iso[a-z]?)?(-[a-z]+)+-\d$"
SKIP_REGION_VALIDATION = "skipRegionValidation"


@functools.cache
def known_regions() -> tuple[str, ...]:
    """Every region botocore (the AWS SDK this project pins) knows EC2 in, in every partition (aws, aws-cn,
    aws-us-gov, the ISO partitions, aws-eusc): the regions the collector's VPC and tasks can be deployed to."""
    import botocore.session  # loaded on first use (about 0.5 s with the EC2 endpoint data)

    session = botocore.session.Session()
    return tuple(
        sorted(
            {
                region
                for partition in session.get_available_partitions()
                for region in session.get_available_regions("ec2", partition_name=partition)
            }
        )
    )


def region_problem(value: str) -> str | None:
    """None for a region botocore knows; else what is allowed, with the known regions nearest to `value`."""
    known = known_regions()
    if value in known:
        return None
    nearest = sorted(
        difflib.get_close_matches(value, known, n=3, cutoff=0.5)
        or [region for region in known if region.split("-")[0] == value.split("-")[0]][:3]
        or ["eu-west-1", "us-east-1"]
    )
    listed = ", ".join(nearest[:-1]) + f" or {nearest[-1]}" if len(nearest) > 1 else nearest[0]
    return (
        f"a region AWS has, such as {listed} (botocore knows {len(known)} regions with EC2; set "
        f"aws:{SKIP_REGION_VALIDATION}: true for one newer than this botocore)"
    )


class StackConfig(_Section):
    """Everything the program reads from a stack."""

    region: str = Field(json_schema_extra={"allowed": "an AWS region such as eu-west-1"})

    @field_validator("region")
    @classmethod
    def _known_region(cls, value: str, info: ValidationInfo) -> str:
        if not re.fullmatch(REGION_SHAPE, value):
            raise ValueError("an AWS region such as eu-west-1")
        if info.context and info.context.get(SKIP_REGION_VALIDATION):  # the provider's own opt-out
            return value
        problem = region_problem(value)
        if problem:
            raise ValueError(problem)
        return value

    default_tags: dict[str, str] = {}
    name_prefix: str = Field(
        "ccm",
        pattern=r"^[a-z][a-z0-9-]{1,14}$",
        json_schema_extra={"allowed": "2-15 lower-case letters, digits or hyphens, starting with a letter"},
    )
    alarm_emails: list[Email] = []
    collector: CollectorConfig = CollectorConfig()
    dashboard: DashboardConfig = DashboardConfig()
    analytics: AnalyticsConfig = AnalyticsConfig()
    quota: QuotaConfig = QuotaConfig()
    bearer_token_ingest: BearerTokenIngestConfig = BearerTokenIngestConfig()
    pricing: list[ModelPriceConfig] = []

    @field_validator("pricing")
    @classmethod
    def _one_entry_per_model(cls, entries: list[ModelPriceConfig]) -> list[ModelPriceConfig]:
        models = [entry.model for entry in entries]
        repeated = sorted({model for model in models if models.count(model) > 1})
        if repeated:
            raise ValueError(f"pricing names {', '.join(repeated)} more than once; give each model one entry")
        size = len(PriceTable.with_overrides({e.model: ModelPrice(0, 0, 0, 0) for e in entries}).to_json())
        if size > PRICE_TABLE_MAX_BYTES:
            raise ValueError(
                f"pricing has too many entries: the table must fit {PRICE_TABLE_MAX_BYTES} bytes of a Lambda "
                f"environment, got about {size}; use prefixes ending in * for families of models"
            )
        return entries

    def price_table(self) -> PriceTable:
        """The defaults with this stack's entries added or replacing theirs."""
        return PriceTable.with_overrides(
            {
                entry.model: ModelPrice(entry.input, entry.output, entry.cache_read, entry.cache_creation)
                for entry in self.pricing
            }
        )

    @model_validator(mode="after")
    def _readers_of_the_collector(self) -> StackConfig:
        for section, enabled in (("dashboard", self.dashboard.enabled), ("analytics", self.analytics.enabled)):
            if enabled and not self.collector.enabled:
                raise ValueError(
                    f"{section}.enabled needs collector.enabled: {section} reads the collector's metrics and events "
                    "log groups"
                )
        if self.quota.users and not (self.collector.identity and self.collector.identity.mode == "jwt"):
            raise ValueError(
                "quota.users keys users by email, which only a verified token supplies (collector.identity.mode: "
                "jwt); without one a user is identified by the installation hash Claude Code sends as user.id "
                "(and by user.email only for Claude-account logins, which the client sets itself): use quota groups "
                "and the default, or enable identity"
            )
        if self.quota.enabled and not self.dashboard.enabled:
            raise ValueError(
                "quota.enabled needs dashboard.enabled: the quota monitor reads the usage the dashboard's aggregator "
                "rolls up (one source of truth)"
            )
        return self


# Keys in the project namespace that hold one object each, and the scalar keys declared in Pulumi.yaml.
SECTION_KEYS = ("collector", "dashboard", "analytics", "quota", "bearerTokenIngest")
TABLE_KEYS = ("pricing",)  # a list of objects each, declared here like the sections
SCALAR_KEYS = ("namePrefix", "alarmEmails")


def parse_stack_config(raw: Mapping[str, Any], stack_file: str) -> StackConfig:
    """Validate a stack's configuration, given as {"aws:region": ..., "<project>:<key>": ...}.

    Object values may be given parsed or as the JSON text Pulumi passes to programs.
    Raises ConfigError naming each bad key, the stack file and what is allowed, one line per problem.
    """
    problems: list[str] = []
    document: dict[str, Any] = {}
    skip_region_validation = False
    for full_key, value in raw.items():
        namespace, _, key = str(full_key).partition(":")
        if namespace == "aws":
            if key == "region":
                document["region"] = value
            elif key == "defaultTags":
                tags = _maybe_json(value)
                document["defaultTags"] = tags.get("tags", {}) if isinstance(tags, dict) else tags
            elif key == SKIP_REGION_VALIDATION:
                skip_region_validation = _maybe_json(value) is True
            elif key not in AWS_PROVIDER_KEYS:
                problems.append(_unknown_provider_key(str(full_key), key, stack_file))
        elif namespace == PROJECT:
            if key in SECTION_KEYS or key in TABLE_KEYS or key == "alarmEmails":
                document[key] = _maybe_json(value)
            elif key in SCALAR_KEYS:
                document[key] = value
            else:
                problems.append(
                    f"{_name(str(full_key))} is not a setting of this project; the project's keys are "
                    f"{', '.join(SCALAR_KEYS + SECTION_KEYS + TABLE_KEYS)} ({stack_file})"
                )
    if "region" not in document:
        problems.append(f"aws:region must be set to an AWS region such as eu-west-1 ({stack_file})")
    if problems:
        raise ConfigError([_one_line(problem) for problem in problems])
    unusable = _unusable_values(document)
    settings: StackConfig | None = None
    errors: list[Any] = []
    try:
        settings = StackConfig.model_validate(document, context={SKIP_REGION_VALIDATION: skip_region_validation})
    except ValidationError as error:
        errors = list(error.errors())
    if settings is not None and not unusable:
        return settings
    # A value no setting takes is reported in words that fit it, in the place of pydantic's own errors there.
    special = {_place(loc).path: _unusable_problem(loc, value, stack_file) for loc, value in unusable}
    lines: list[str] = []
    for item in errors:
        path = _place(tuple(item["loc"])).path
        inside = [done for done in special if path == done or path.startswith((f"{done}.", f"{done}["))]
        if inside:
            lines.extend(special[done] for done in inside)
        else:
            lines.append(_describe(item, stack_file))
    lines.extend(special.values())  # also those the schema let through, once each (duplicates are dropped)
    raise ConfigError(list(dict.fromkeys(_one_line(line) for line in lines)))


def _unknown_provider_key(full_key: str, key: str, stack_file: str) -> str:
    """A misspelt or unknown `aws:` key: the provider would ignore it silently, so it is named here."""
    guess = difflib.get_close_matches(key, AWS_PROVIDER_KEYS, n=1, cutoff=0.6)
    hint = f" (did you mean aws:{guess[0]}?)" if guess else ""
    return (
        f"{_name(full_key)} is not a setting of the AWS provider{hint}; its keys are "
        f"{', '.join(AWS_PROVIDER_KEYS)} ({stack_file})"
    )


def _maybe_json(value: Any) -> Any:
    if isinstance(value, str):
        try:
            return json.loads(value)
        except json.JSONDecodeError:
            return value
    return value


# Reporting: readable key paths, and input echoed safely -------------------------------------------------------

_UNPRINTABLE = frozenset({"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"})
_PLAIN_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]*$")
_ECHO_CHARS = 200


def _one_line(text: str) -> str:
    """Control, format and line-separator characters written as escapes, so a problem stays one plain line."""
    return "".join(
        char.encode("unicode_escape").decode("ascii") if unicodedata.category(char) in _UNPRINTABLE else char
        for char in text
    )


def _shown(value: Any) -> str:
    """A value from the stack file as it is echoed after `got`: JSON, or what YAML calls it when JSON has no
    such value (.inf, .nan, dates and timestamps), without control characters, cut short when long."""
    if isinstance(value, float) and not math.isfinite(value):
        text = ".nan" if math.isnan(value) else (".inf" if value > 0 else "-.inf")
    elif isinstance(value, datetime.datetime | datetime.time):
        text = f"{value.isoformat()} (a YAML timestamp)"
    elif isinstance(value, datetime.date):
        text = f"{value.isoformat()} (a YAML date)"
    else:
        text = json.dumps(value, ensure_ascii=False, default=repr)
    text = _one_line(text)
    return text if len(text) <= _ECHO_CHARS else text[: _ECHO_CHARS - 1] + "…"


def _name(key: str) -> str:
    """A key as written in a message: as is when plain, else quoted with its special characters escaped."""
    return key if re.fullmatch(r"[A-Za-z0-9_.:-]+", key) else _shown(key)


def _segment(part: int | str, kind: str) -> str:
    if kind == "index":
        return f"[{part}]"
    if kind == "map" or not (isinstance(part, str) and _PLAIN_KEY.match(part)):
        return f"[{_shown(part)}]"
    return f".{part}"


class _Place(NamedTuple):
    """Where an error location points in the schema, as the stack file's reader sees it."""

    path: str
    """Readable key path: collector.identity.issuer, quota.groups[0].name, collector.resourceAttributes["team"]."""
    annotation: Any
    """The type at that place; None when the place is not in the schema."""
    info: Any
    """The field's FieldInfo (None inside lists and maps)."""
    map_key: bool
    """The location names a map's key (the key itself is wrong), and `path` is the map's."""


def _place(loc: tuple[int | str, ...]) -> _Place:
    """Walk the schema along a pydantic error location. Map keys become ["key"], list items [n], and the tags
    pydantic adds for the members of a union (`.float`, `.int`) are dropped."""
    annotation: Any = StackConfig
    info: Any = None
    path = ""
    parts = list(loc)
    index = 0
    while index < len(parts):
        part = parts[index]
        index += 1
        base = _bare(annotation)
        if _is_model(base):
            fields = {f.alias or name: f for name, f in base.model_fields.items()}
            if not path and part in ("region", "defaultTags"):
                path = f"aws:{part}"
            else:
                path += str(part) if not path and isinstance(part, str) else _segment(part, "field")
            info = fields.get(part) if isinstance(part, str) else None
            annotation = info.annotation if info is not None else None
        elif get_origin(base) is list and isinstance(part, int):
            path += _segment(part, "index")
            annotation, info = get_args(base)[0], None
        elif get_origin(base) is dict:
            key_type, value_type = get_args(base)
            if index < len(parts) and parts[index] == "[key]":
                return _Place(path, key_type, None, True)
            path += _segment(part, "map")
            annotation, info = value_type, None
        elif get_origin(base) in (Union, types.UnionType):
            continue  # a union member's tag: the place stays the field
        else:
            path += _segment(part, "field")
            annotation, info = None, None
    return _Place(path, annotation, info, False)


def _bare(annotation: Any) -> Any:
    """`X | None` and `Annotated[X, ...]` -> X."""
    annotation = _strip_optional(annotation)
    if get_origin(annotation) is Annotated:
        annotation = _strip_optional(get_args(annotation)[0])
    return annotation


def _unusable_values(document: Any, loc: tuple[int | str, ...] = ()) -> list[tuple[tuple[int | str, ...], Any]]:
    """Values no setting takes, wherever they are in the schema: numbers that are not finite (YAML's .inf and
    .nan) and the dates and timestamps YAML reads from unquoted text such as 2026-01-01."""
    if isinstance(document, dict):
        return [found for key, value in document.items() for found in _unusable_values(value, (*loc, key))]
    if isinstance(document, list):
        return [found for index, value in enumerate(document) for found in _unusable_values(value, (*loc, index))]
    unusable = (isinstance(document, float) and not math.isfinite(document)) or isinstance(
        document, datetime.date | datetime.time
    )
    return [(loc, document)] if unusable and _place(loc).annotation is not None else []


def _unusable_problem(loc: tuple[int | str, ...], value: Any, stack_file: str) -> str:
    place = _place(loc)
    allowed = _allowed(place.annotation, place.info) or "a value of its documented type"
    why = "not a finite number" if isinstance(value, float) else "quote it if you mean the text"
    return f"{place.path} must be {allowed} ({stack_file}), got {_shown(value)}: {why}"


def _is_model(candidate: Any) -> bool:
    return isinstance(candidate, type) and issubclass(candidate, BaseModel)


def _strip_optional(annotation: Any) -> Any:
    """`X | None` -> `X`; anything else unchanged."""
    if get_origin(annotation) in (Union, types.UnionType):
        args = [a for a in get_args(annotation) if a is not type(None)]
        if len(args) == 1:
            return args[0]
    return annotation


def _allowed(annotation: Any, info: Any) -> str | None:
    """What a field accepts, in words, from its annotation and constraints."""
    extra = getattr(info, "json_schema_extra", None)
    if isinstance(extra, dict) and "allowed" in extra:
        return str(extra["allowed"])
    metadata = list(getattr(info, "metadata", []) or [])
    base = _strip_optional(annotation)
    if get_origin(base) is Annotated:
        inner, *more = get_args(base)
        for item in more:
            if (
                hasattr(item, "json_schema_extra")
                and isinstance(item.json_schema_extra, dict)
                and "allowed" in item.json_schema_extra
            ):
                return str(item.json_schema_extra["allowed"])
            metadata.extend(getattr(item, "metadata", []) or [])
        base = inner
    low = next((getattr(m, "ge", None) for m in metadata if getattr(m, "ge", None) is not None), None)
    high = next((getattr(m, "le", None) for m in metadata if getattr(m, "le", None) is not None), None)
    if get_origin(base) is Literal:
        return "one of " + ", ".join(json.dumps(v) for v in get_args(base))
    numeric = {int: "an integer", float: "a number"}
    kinds = [a for a in (get_args(base) or (base,)) if a in numeric]
    if kinds:
        noun = numeric[float] if float in kinds else numeric[int]
        if low is not None and high is not None:
            return f"{noun} from {low} to {high}"
        if low is not None:
            return f"{noun} of at least {low}"
        if high is not None:
            return f"{noun} of at most {high}"
        return noun
    if base is bool:
        return "true or false"
    if base is str:
        return "a string"
    if get_origin(base) is list:
        return "a list"
    if get_origin(base) is dict:
        return "a map of strings"
    if _is_model(base):
        return "an object with the keys " + ", ".join(f.alias or n for n, f in base.model_fields.items())
    return None


def _describe(error: Any, stack_file: str) -> str:
    loc = tuple(error["loc"])
    kind = error["type"]
    value = error.get("input")
    if kind == "extra_forbidden":
        parent = _place(loc[:-1]) if len(loc) > 1 else _Place("", StackConfig, None, False)
        model = _bare(parent.annotation)
        known = ", ".join(f.alias or n for n, f in model.model_fields.items()) if _is_model(model) else ""
        key = loc[-1]
        path = parent.path + _segment(key, "field") if parent.path else _name(str(key))
        return f"{path} is not a known setting; allowed keys here: {known} ({stack_file})"
    place = _place(loc)
    if kind == "missing":
        allowed = _allowed(place.annotation, place.info) or "set"
        return f"{place.path} is required: it must be {allowed} ({stack_file})"
    if kind == "value_error":
        cause = error.get("ctx", {}).get("error")
        if isinstance(cause, FieldProblemError):
            path = _place((*loc, cause.field)).path if loc else cause.field
            return f"{path} must be {cause.reason} ({stack_file}), got {_shown(cause.value)}"
        reason = str(cause if cause is not None else error["msg"])
        if reason.startswith("allowed: "):
            reason = "one of " + reason.removeprefix("allowed: ")
        if isinstance(value, dict) or not loc:
            return f"{place.path or 'configuration'} {reason} ({stack_file})"
        return f"{place.path} must be {reason} ({stack_file}), got {_shown(value)}"
    if place.map_key:
        allowed = _allowed(place.annotation, None) or "strings"
        return f"{place.path} has a key that is not allowed: keys must be {allowed} ({stack_file}), got {_shown(value)}"
    allowed = _allowed(place.annotation, place.info) or error["msg"].lower()
    return f"{place.path} must be {allowed} ({stack_file}), got {_shown(value)}"


def stack_file_name(stack: str) -> str:
    return f"Pulumi.{stack}.yaml"
