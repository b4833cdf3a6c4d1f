"""Stack configuration: the shipped stacks validate, and bad values fail with one actionable message each."""

from __future__ import annotations

import copy
import datetime
import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from infra.config import ConfigError, parse_stack_config
from infra.program import InvalidStackConfig
from offline.preview import PROJECT_ROOT, Target, preview

PROJECT = "claude-code-monitoring"


def stack_document(stack: str) -> dict[str, Any]:
    return yaml.safe_load((PROJECT_ROOT / f"Pulumi.{stack}.yaml").read_text())


def flat(document: dict[str, Any]) -> dict[str, Any]:
    return dict(document["config"])


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_shipped_stacks_validate(stack: str) -> None:
    settings = parse_stack_config(flat(stack_document(stack)), f"Pulumi.{stack}.yaml")
    assert settings.region == "eu-west-1"
    assert settings.default_tags["environment"] == stack


def test_dev_is_cheap_and_prod_is_highly_available() -> None:
    dev = parse_stack_config(flat(stack_document("dev")), "Pulumi.dev.yaml")
    prod = parse_stack_config(flat(stack_document("prod")), "Pulumi.prod.yaml")
    assert dev.collector.desired_count == 1
    assert dev.collector.network.nat_gateways == "single"
    assert dev.collector.log_retention_days <= 7
    assert prod.collector.min_count >= 2 and prod.collector.max_count >= 3
    assert prod.collector.network.availability_zones >= 2 and prod.collector.network.nat_gateways == "onePerAz"
    assert prod.collector.log_retention_days > dev.collector.log_retention_days
    assert prod.dashboard.point_in_time_recovery
    assert prod.collector.identity.mode == "jwt"
    assert all(
        section.enabled
        for section in (prod.collector, prod.dashboard, prod.analytics, prod.quota, prod.bearer_token_ingest)
    )


# (description, key path to set in Pulumi.prod.yaml's config, value, exact expected message)
BAD_VALUES = [
    (
        "integer as text",
        [f"{PROJECT}:collector", "desiredCount"],
        "two",
        'collector.desiredCount must be an integer from 1 to 20 (Pulumi.prod.yaml), got "two"',
    ),
    (
        "integer out of range",
        [f"{PROJECT}:collector", "desiredCount"],
        30,
        "collector.desiredCount must be an integer from 1 to 20 (Pulumi.prod.yaml), got 30",
    ),
    (
        "value not in an enumeration",
        [f"{PROJECT}:collector", "cpu"],
        300,
        "collector.cpu must be one of 256, 512, 1024, 2048, 4096, 8192, 16384 (Pulumi.prod.yaml), got 300",
    ),
    (
        "retention CloudWatch does not offer",
        [f"{PROJECT}:dashboard", "logRetentionDays"],
        8,
        "dashboard.logRetentionDays must be one of 1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, "
        "1096, 1827, 2192, 2557, 2922, 3288, 3653 (Pulumi.prod.yaml), got 8",
    ),
    (
        "misspelt key",
        [f"{PROJECT}:dashboard", "rollupTtlDay"],
        30,
        "dashboard.rollupTtlDay is not a known setting; allowed keys here: enabled, rollupTtlDays, "
        "pointInTimeRecovery, logRetentionDays (Pulumi.prod.yaml)",
    ),
    (
        "boolean as text",
        [f"{PROJECT}:analytics", "enabled"],
        "yes",
        'analytics.enabled must be true or false (Pulumi.prod.yaml), got "yes"',
    ),
    (
        "plain-HTTP identity provider",
        [f"{PROJECT}:collector", "identity", "jwksUri"],
        "http://login.example.com/keys",
        'collector.identity.jwksUri must be an https:// URL (Pulumi.prod.yaml), got "http://login.example.com/keys"',
    ),
    (
        "unknown time zone",
        [f"{PROJECT}:quota", "timeZone"],
        "Mars/Olympus",
        'quota.timeZone must be an IANA time zone such as UTC or Europe/Berlin (Pulumi.prod.yaml), got "Mars/Olympus"',
    ),
    (
        "thresholds out of order",
        [f"{PROJECT}:quota", "thresholds"],
        [90, 80],
        "quota.thresholds must be strictly ascending percentages from 1 to 100, such as [80, 90, 100] "
        "(Pulumi.prod.yaml), got [90, 80]",
    ),
    (
        "negative limit",
        [f"{PROJECT}:quota", "default", "monthlyUsd"],
        -5,
        "quota.default.monthlyUsd must be a number of at least 0 (Pulumi.prod.yaml), got -5",
    ),
    (
        "unknown group type",
        [f"{PROJECT}:quota", "groups", 0, "groupType"],
        "division",
        'quota.groups[0].groupType must be one of "department", "team" (Pulumi.prod.yaml), got "division"',
    ),
    (
        "threshold over 100",
        [f"{PROJECT}:quota", "thresholds"],
        [80, 120],
        "quota.thresholds[1] must be an integer from 1 to 100 (Pulumi.prod.yaml), got 120",
    ),
    (
        "invalid quota alert email",
        [f"{PROJECT}:quota", "alertEmails", 0],
        "finops.example.com",
        'quota.alertEmails[0] must be an email address (Pulumi.prod.yaml), got "finops.example.com"',
    ),
    (
        "plain-HTTP quota alert endpoint",
        [f"{PROJECT}:quota", "alertHttpsEndpoints"],
        ["http://hooks.example.com/quota"],
        'quota.alertHttpsEndpoints[0] must be an https:// URL (Pulumi.prod.yaml), got "http://hooks.example.com/quota"',
    ),
    (
        "the same user policy twice",
        [f"{PROJECT}:quota", "users"],
        [{"email": "ann@example.com", "dailyUsd": 10}, {"email": "ann@example.com", "monthlyUsd": 100}],
        "quota has a policy more than once (users 'ann@example.com'): keep one entry per user and per group "
        "(Pulumi.prod.yaml)",
    ),
    (
        "invalid email",
        [f"{PROJECT}:alarmEmails", 0],
        "oncall-at-example.com",
        'alarmEmails[0] must be an email address (Pulumi.prod.yaml), got "oncall-at-example.com"',
    ),
    (
        "credential age over the pack maximum",
        [f"{PROJECT}:bearerTokenIngest", "credentialAgeDays"],
        91,
        "bearerTokenIngest.credentialAgeDays must be a number of days from 1 to 90 (Pulumi.prod.yaml), got 91",
    ),
    (
        "credential age missing",
        [f"{PROJECT}:bearerTokenIngest", "credentialAgeDays"],
        None,
        "bearerTokenIngest needs credentialAgeDays (1 to 90) when enabled: a key without it never expires "
        "(Pulumi.prod.yaml)",
    ),
    (
        "another policy for an ingest user",
        [f"{PROJECT}:bearerTokenIngest", "teams", 0, "managedPolicyArns"],
        ["arn:aws:iam::aws:policy/AdministratorAccess"],
        "bearerTokenIngest.teams[0] cannot take managedPolicyArns: an ingest user holds only "
        "arn:aws:iam::aws:policy/CloudWatchAPIKeyAccess, so a leaked key can do nothing but send metrics "
        "(Pulumi.prod.yaml)",
    ),
    (
        "warning after expiry",
        [f"{PROJECT}:bearerTokenIngest", "expiryWarningDays"],
        60,
        "bearerTokenIngest needs expiryWarningDays (60) below credentialAgeDays (60), or the warning fires "
        "the day the key is made (Pulumi.prod.yaml)",
    ),
    (
        "rotation slot unknown",
        [f"{PROJECT}:bearerTokenIngest", "rotation", "activeCredential"],
        "c",
        'bearerTokenIngest.rotation.activeCredential must be one of "a", "b" (Pulumi.prod.yaml), got "c"',
    ),
    (
        "team name IAM cannot use",
        [f"{PROJECT}:bearerTokenIngest", "teams", 0, "name"],
        "data science",
        "bearerTokenIngest.teams[0].name must be 1-48 characters usable in an IAM user name (letters, digits, "
        '+=,.@_-) (Pulumi.prod.yaml), got "data science"',
    ),
    (
        "minimum above maximum",
        [f"{PROJECT}:collector", "minCount"],
        7,
        "collector needs minCount <= desiredCount <= maxCount, got 7 <= 2 <= 6 (Pulumi.prod.yaml)",
    ),
    (
        "image tag latest",
        [f"{PROJECT}:collector", "image"],
        "otel/opentelemetry-collector-contrib:latest",
        "collector.image must be a pinned image: repository:<exact version> (not latest) or "
        'repository@sha256:<digest> (Pulumi.prod.yaml), got "otel/opentelemetry-collector-contrib:latest"',
    ),
    (
        "image without a tag",
        [f"{PROJECT}:collector", "image"],
        "otel/opentelemetry-collector-contrib",
        "collector.image must be a pinned image: repository:<exact version> (not latest) or "
        'repository@sha256:<digest> (Pulumi.prod.yaml), got "otel/opentelemetry-collector-contrib"',
    ),
    (
        "plain-HTTP issuer",
        [f"{PROJECT}:collector", "identity", "issuer"],
        "http://login.example.com",
        'collector.identity.issuer must be an https:// URL (Pulumi.prod.yaml), got "http://login.example.com"',
    ),
    (
        "no identity decision",
        [f"{PROJECT}:collector", "identity"],
        None,
        "collector needs identity when enabled: mode jwt with issuer, jwksUri and audience of your identity "
        "provider, or mode none to accept unauthenticated telemetry (dev only) (Pulumi.prod.yaml)",
    ),
    (
        "token validation without the token helper's client",
        [f"{PROJECT}:collector", "identity", "clientId"],
        None,
        "collector.identity needs clientId when mode is jwt: clientId is the public client (no secret) registered "
        "with your identity provider for the token helper, which the managed settings pass to it as "
        "CLAUDE_OTEL_CLIENT_ID (docs/identity-providers.md) (Pulumi.prod.yaml)",
    ),
    (
        "token validation without a headers helper",
        [f"{PROJECT}:collector", "otelHeadersHelper"],
        None,
        "collector needs otelHeadersHelper when identity.mode is jwt: the path of the script on developer "
        "machines that prints the Authorization header with the identity provider's token (Pulumi.prod.yaml)",
    ),
    (
        "no domain and no certificate",
        [f"{PROJECT}:collector", "hostedZoneId"],
        None,
        "collector needs certificateArn, or domainName with hostedZoneId, when enabled (the certificate of the "
        "HTTPS listener) (Pulumi.prod.yaml)",
    ),
    (
        "a single subnet",
        [f"{PROJECT}:collector", "network"],
        {
            "vpcId": "vpc-0abc1234567890def",
            "privateSubnetIds": ["subnet-0aaa1111111111111"],
            "publicSubnetIds": ["subnet-0ccc3333333333333"],
        },
        "collector.network needs at least 2 privateSubnetIds and 2 publicSubnetIds, in distinct availability "
        "zones, with vpcId (Pulumi.prod.yaml)",
    ),
    (
        "per-user resource attribute",
        [f"{PROJECT}:collector", "resourceAttributes"],
        {"user.email": "someone@example.com"},
        "collector.resourceAttributes must hold organisation defaults only, and user.email name a person or "
        "session (identity comes from the verified token or the client) (Pulumi.prod.yaml)",
    ),
    (
        "resource attribute the client sets itself",
        [f"{PROJECT}:collector", "resourceAttributes"],
        {"organization.id": "example-corp"},
        "collector.resourceAttributes must not set organization.id: Claude Code sets it on every data point itself, "
        "and its own value wins over OTEL_RESOURCE_ATTRIBUTES (Pulumi.prod.yaml)",
    ),
    (
        "reserved namespace",
        [f"{PROJECT}:collector", "metricsNamespace"],
        "AWS/ClaudeCode",
        "collector.metricsNamespace must be a namespace of your own: names starting with AWS/ are reserved "
        '(Pulumi.prod.yaml), got "AWS/ClaudeCode"',
    ),
    (
        "lifecycle out of order",
        [f"{PROJECT}:analytics", "expirationDays"],
        200,
        "analytics needs glacierInstantRetrievalAfterDays < expirationDays, got 365 >= 200 (Pulumi.prod.yaml)",
    ),
    (
        "region that is not one",
        ["aws:region"],
        "europe",
        'aws:region must be an AWS region such as eu-west-1 (Pulumi.prod.yaml), got "europe"',
    ),
    (
        "misspelt section",
        [f"{PROJECT}:colector"],
        {"enabled": True},
        f"{PROJECT}:colector is not a setting of this project; the project's keys are namePrefix, alarmEmails, "
        "collector, dashboard, analytics, quota, bearerTokenIngest, pricing (Pulumi.prod.yaml)",
    ),
    # Hostile and broken input (issue #19): one line per problem, readable paths, input echoed safely.
    (
        "text for a number that may be fractional (one line, no type tags)",
        [f"{PROJECT}:quota", "default", "monthlyUsd"],
        "abc",
        'quota.default.monthlyUsd must be a number of at least 0 (Pulumi.prod.yaml), got "abc"',
    ),
    (
        "infinite USD limit",
        [f"{PROJECT}:quota", "default", "monthlyUsd"],
        float("inf"),
        "quota.default.monthlyUsd must be a number of at least 0 (Pulumi.prod.yaml), got .inf: not a finite number",
    ),
    (
        "infinite group USD limit",
        [f"{PROJECT}:quota", "groups", 0, "dailyUsd"],
        float("-inf"),
        "quota.groups[0].dailyUsd must be a number of at least 0 (Pulumi.prod.yaml), got -.inf: not a finite number",
    ),
    (
        "price that is not a number",
        [f"{PROJECT}:pricing"],
        [{"model": "claude-x", "input": float("nan"), "output": 2, "cacheRead": 0.1, "cacheCreation": 1.25}],
        "pricing[0].input must be USD per million tokens, 0 to 10000 (Pulumi.prod.yaml), got .nan: not a finite number",
    ),
    (
        "infinite whole number",
        [f"{PROJECT}:dashboard", "rollupTtlDays"],
        float("inf"),
        "dashboard.rollupTtlDays must be an integer from 1 to 3650 (Pulumi.prod.yaml), got .inf: not a finite number",
    ),
    (
        "map key that is not an attribute name",
        [f"{PROJECT}:collector", "resourceAttributes"],
        {"team id": "platform"},
        "collector.resourceAttributes has a key that is not allowed: keys must be attribute names of 1-128 "
        'letters, digits or !#$%&\'*+.^_`|~- (such as team.id) (Pulumi.prod.yaml), got "team id"',
    ),
    (
        "map value with a space",
        [f"{PROJECT}:collector", "resourceAttributes"],
        {"team.id": "platform team"},
        'collector.resourceAttributes["team.id"] must be 1-256 printable ASCII characters without spaces, commas, '
        'semicolons, quotes or backslashes (Pulumi.prod.yaml), got "platform team"',
    ),
    (
        "map value of the wrong type",
        ["aws:defaultTags", "tags", "owner"],
        ["platform"],
        'aws:defaultTags["owner"] must be a string (Pulumi.prod.yaml), got ["platform"]',
    ),
    (
        "YAML date",
        [f"{PROJECT}:quota", "timeZone"],
        datetime.date(2026, 1, 1),
        'quota.timeZone must be an IANA time zone such as UTC or Europe/Berlin (Pulumi.prod.yaml), got "2026-01-01"',
    ),
    (
        "YAML timestamp",
        [f"{PROJECT}:dashboard", "rollupTtlDays"],
        datetime.datetime(2026, 1, 1, 12, 30),
        'dashboard.rollupTtlDays must be an integer from 1 to 3650 (Pulumi.prod.yaml), got "2026-01-01 12:30:00"',
    ),
    (
        "unknown key holding a newline",
        [f"{PROJECT}:dashboard", "rollupTtlDays\nenabled"],
        30,
        'dashboard["rollupTtlDays\\nenabled"] is not a known setting; allowed keys here: enabled, rollupTtlDays, '
        "pointInTimeRecovery, logRetentionDays (Pulumi.prod.yaml)",
    ),
    (
        "unknown project key holding a newline",
        [f"{PROJECT}:colector\nX"],
        {"enabled": True},
        f'"{PROJECT}:colector\\nX" is not a setting of this project; the project\'s keys are namePrefix, '
        "alarmEmails, collector, dashboard, analytics, quota, bearerTokenIngest, pricing (Pulumi.prod.yaml)",
    ),
    (
        "value holding terminal escapes and a right-to-left override",
        [f"{PROJECT}:collector", "metricsNamespace"],
        "ClaudeCode\n\x1b[2J\u202eevil",
        "collector.metricsNamespace must be a CloudWatch namespace (letters, digits, . _ # : / -), not starting "
        'with AWS/ (Pulumi.prod.yaml), got "ClaudeCode\\n\\u001b[2J\\u202eevil"',
    ),
    (
        "identity none open to the whole internet",
        [f"{PROJECT}:collector", "identity"],
        {"mode": "none"},
        "collector.allowedCidrs must be narrower than the whole internet when identity.mode is none, because anyone "
        "who reaches the endpoint could send telemetry in any user's name: list your corporate egress ranges (such "
        'as 203.0.113.0/24), or validate tokens with identity.mode jwt (Pulumi.prod.yaml), got ["0.0.0.0/0"]',
    ),
]


def with_value(document: dict[str, Any], path: list[Any], value: Any) -> dict[str, Any]:
    changed = copy.deepcopy(document)
    node = changed["config"]
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    return changed


@pytest.mark.parametrize(
    ("path", "value", "message"), [case[1:] for case in BAD_VALUES], ids=[case[0] for case in BAD_VALUES]
)
def test_bad_value_fails_the_program_with_one_clear_message(
    tmp_path: Path, path: list[Any], value: Any, message: str
) -> None:
    """The real program, run as the preview runs it, on a copy of Pulumi.prod.yaml with one bad value."""
    stack_file = tmp_path / "Pulumi.prod.yaml"
    stack_file.write_text(yaml.safe_dump(with_value(stack_document("prod"), path, value)))
    with pytest.raises(InvalidStackConfig) as failure:
        preview(Target(PROJECT_ROOT, stack_file, tmp_path / "out", None))
    assert str(failure.value) == message


def test_missing_region_is_named() -> None:
    with pytest.raises(ConfigError) as failure:
        parse_stack_config({f"{PROJECT}:namePrefix": "ccm"}, "Pulumi.dev.yaml")
    assert failure.value.problems == ["aws:region must be set to an AWS region such as eu-west-1 (Pulumi.dev.yaml)"]


def test_every_problem_is_reported_at_once() -> None:
    raw = {"aws:region": "eu-west-1", f"{PROJECT}:collector": {"desiredCount": 0, "cpu": 1}}
    with pytest.raises(ConfigError) as failure:
        parse_stack_config(raw, "Pulumi.dev.yaml")
    assert len(failure.value.problems) == 2


def test_enabled_collector_needs_a_certificate_source() -> None:
    raw = {"aws:region": "eu-west-1", f"{PROJECT}:collector": {"enabled": True, "domainName": "otel.example.com"}}
    with pytest.raises(ConfigError) as failure:
        parse_stack_config(raw, "Pulumi.dev.yaml")
    assert failure.value.problems == [
        "collector needs certificateArn, or domainName with hostedZoneId, when enabled "
        "(the certificate of the HTTPS listener) (Pulumi.dev.yaml)"
    ]


def test_sections_arrive_as_json_text_as_pulumi_passes_them() -> None:
    raw = {"aws:region": "eu-west-1", f"{PROJECT}:dashboard": '{"enabled": false, "rollupTtlDays": 30}'}
    assert parse_stack_config(raw, "Pulumi.dev.yaml").dashboard.rollup_ttl_days == 30


def test_the_dashboard_needs_the_collector() -> None:
    raw = {"aws:region": "eu-west-1", f"{PROJECT}:dashboard": {"enabled": True}}
    with pytest.raises(ConfigError, match=r"dashboard.enabled needs collector.enabled"):
        parse_stack_config(raw, "Pulumi.dev.yaml")


def test_quota_needs_the_dashboard() -> None:
    raw = {"aws:region": "eu-west-1", f"{PROJECT}:quota": {"enabled": True}}
    with pytest.raises(ConfigError, match=r"quota.enabled needs dashboard.enabled"):
        parse_stack_config(raw, "Pulumi.dev.yaml")


def test_quotas_by_email_need_a_verified_token() -> None:
    raw = flat(stack_document("prod"))
    raw[f"{PROJECT}:collector"] = {
        **raw[f"{PROJECT}:collector"],
        "identity": {"mode": "none"},
        "allowedCidrs": ["203.0.113.0/24"],  # no identity needs a narrower range than the whole internet
    }
    raw[f"{PROJECT}:collector"].pop("otelHeadersHelper", None)
    with pytest.raises(ConfigError, match=r"quota.users keys users by email, which only a verified token supplies"):
        parse_stack_config(raw, "Pulumi.prod.yaml")
    raw[f"{PROJECT}:quota"] = {**raw[f"{PROJECT}:quota"], "users": []}
    assert parse_stack_config(raw, "Pulumi.prod.yaml").quota.groups  # groups and the default still work


def test_a_stack_sets_its_own_prices_and_the_functions_get_them() -> None:
    raw = flat(stack_document("prod"))
    raw[f"{PROJECT}:pricing"] = [
        {"model": "claude-opus-5*", "input": 4, "output": 20, "cacheRead": 0.4, "cacheCreation": 5},
        {"model": "claude-sonnet-4-5", "input": 2.7, "output": 13.5, "cacheRead": 0.27, "cacheCreation": 3.375},
    ]
    table = parse_stack_config(raw, "Pulumi.prod.yaml").price_table()
    assert table.price(table.key_for("claude-opus-5-5"), "output") == 20
    assert table.price(table.key_for("us.anthropic.claude-sonnet-4-5-20250929-v1:0"), "input") == 2.7
    assert table.price(table.key_for("claude-haiku-4-5-20251001"), "input") == 1.0  # defaults stay


@pytest.mark.parametrize(
    ("entries", "message"),
    [
        (
            [{"model": "claude-opus-5*", "input": -1, "output": 20, "cacheRead": 0.4, "cacheCreation": 5}],
            "pricing[0].input must be",
        ),
        (
            [{"model": "Claude Opus", "input": 1, "output": 2, "cacheRead": 0.1, "cacheCreation": 1.25}],
            "pricing[0].model must be a model id as Claude Code reports it",
        ),
        (
            [{"model": "claude-x", "input": 1, "output": 2, "cacheRead": 0.1, "cacheCreation": 1.25}] * 2,
            "pricing names claude-x more than once; give each model one entry",
        ),
        ([{"model": "claude-x", "input": 1, "output": 2}], "pricing[0].cacheRead"),
    ],
)
def test_bad_prices_are_refused_with_the_key(entries: list[dict[str, Any]], message: str) -> None:
    raw = flat(stack_document("prod"))
    raw[f"{PROJECT}:pricing"] = entries
    with pytest.raises(ConfigError) as error:
        parse_stack_config(raw, "Pulumi.prod.yaml")
    assert message in str(error.value) and "(Pulumi.prod.yaml)" in str(error.value)


@pytest.mark.parametrize(
    ("cidrs", "refused"),
    [
        (["0.0.0.0/0"], True),
        (["203.0.113.0/24", "0.0.0.0/0"], True),
        (["0.0.0.0/1", "128.0.0.0/1"], True),  # two halves are the whole internet
        (["0.0.0.1/0"], True),  # host bits set: still the whole internet
        (["0.0.0.0/1"], False),
        (["10.0.0.0/8", "198.51.100.0/24"], False),
    ],
)
def test_a_collector_without_identity_is_not_open_to_the_whole_internet(cidrs: list[str], refused: bool) -> None:
    raw = flat(stack_document("dev"))
    raw[f"{PROJECT}:collector"] = {**raw[f"{PROJECT}:collector"], "allowedCidrs": cidrs}
    if not refused:
        assert parse_stack_config(raw, "Pulumi.dev.yaml").collector.allowed_cidrs == cidrs
        return
    with pytest.raises(ConfigError) as failure:
        parse_stack_config(raw, "Pulumi.dev.yaml")
    (problem,) = failure.value.problems
    assert problem.startswith("collector.allowedCidrs must be narrower than the whole internet when identity.mode")
    assert problem.endswith(f"(Pulumi.dev.yaml), got {json.dumps(cidrs)}")


def test_the_dev_stack_admits_only_its_listed_ranges() -> None:
    dev = parse_stack_config(flat(stack_document("dev")), "Pulumi.dev.yaml")
    assert dev.collector.identity is not None and dev.collector.identity.mode == "none"
    assert "0.0.0.0/0" not in dev.collector.allowed_cidrs


def test_yaml_dates_and_timestamps_given_to_the_parser_are_named_with_their_key() -> None:
    """What yaml.safe_load makes of unquoted dates, handed straight to the parser (the preview and the CLI pass
    them as their text): each reported with its key and what the key takes, never a TypeError."""
    raw = flat(stack_document("prod"))
    raw[f"{PROJECT}:quota"] = {**raw[f"{PROJECT}:quota"], "timeZone": datetime.date(2026, 1, 1)}
    raw[f"{PROJECT}:dashboard"] = {
        **raw[f"{PROJECT}:dashboard"],
        "rollupTtlDays": datetime.datetime(2026, 1, 1, 12, 30, tzinfo=datetime.UTC),
    }
    with pytest.raises(ConfigError) as failure:
        parse_stack_config(raw, "Pulumi.prod.yaml")
    assert failure.value.problems == [
        "dashboard.rollupTtlDays must be an integer from 1 to 3650 (Pulumi.prod.yaml), got "
        "2026-01-01T12:30:00+00:00 (a YAML timestamp): quote it if you mean the text",
        "quota.timeZone must be an IANA time zone such as UTC or Europe/Berlin (Pulumi.prod.yaml), got 2026-01-01 "
        "(a YAML date): quote it if you mean the text",
    ]


def test_each_problem_is_one_line_whatever_the_input() -> None:
    raw = flat(stack_document("prod"))
    raw[f"{PROJECT}:collector"] = {
        **raw[f"{PROJECT}:collector"],
        "domainName": "otel.example.com\r\nX-Injected: 1",
        "image\u2028": "x",
        "resourceAttributes": {"team\n": "a\x85b"},
    }
    raw[f"{PROJECT}:quota"] = {**raw[f"{PROJECT}:quota"], "default": {"dailyUsd": "1\n2", "monthlyUsd": float("nan")}}
    with pytest.raises(ConfigError) as failure:
        parse_stack_config(raw, "Pulumi.prod.yaml")
    problems = failure.value.problems
    assert len(problems) == 6 and str(failure.value).count("\n") == 5
    assert all(line.isprintable() for line in problems), problems
    assert 'collector.domainName must be a lower-case DNS name such as otel.example.com (Pulumi.prod.yaml), got ' \
        '"otel.example.com\\r\\nX-Injected: 1"' in problems  # fmt: skip


# The token helper's settings in collector.identity, and the key helper's AWS profile -------------------------------

IDENTITY_PROBLEMS: list[tuple[dict[str, Any], str]] = [
    (
        {"tokenUse": "id", "scopes": ["offline_access"]},
        "collector.identity.scopes must be a list holding openid when tokenUse is id: identity providers issue an ID "
        'token only for the openid scope (Pulumi.prod.yaml), got ["offline_access"]',
    ),
    (
        {"tokenUse": "id_token"},
        'collector.identity.tokenUse must be one of "access", "id" (Pulumi.prod.yaml), got "id_token"',
    ),
    (
        {"scopes": "openid offline_access"},
        "collector.identity.scopes must be a non-empty list of OAuth scopes such as [openid, offline_access] "
        '(Pulumi.prod.yaml), got "openid offline_access"',
    ),
    (
        {"scopes": []},
        "collector.identity.scopes must be a non-empty list of OAuth scopes such as [openid, offline_access] "
        "(Pulumi.prod.yaml), got []",
    ),
    (
        {"scopes": ["openid offline_access"]},
        "collector.identity.scopes[0] must be an OAuth scope: printable ASCII without spaces, quotes or backslashes "
        '(Pulumi.prod.yaml), got "openid offline_access"',
    ),
    (
        {"clientId": "my client"},
        "collector.identity.clientId must be the client ID your identity provider gave the token helper's public "
        'client (Pulumi.prod.yaml), got "my client"',
    ),
    (
        {"flow": "pkce"},
        'collector.identity.flow must be one of "auto", "device", "browser" (Pulumi.prod.yaml), got "pkce"',
    ),
    (
        {"redirectUri": "https://localhost:8976/callback"},
        "collector.identity.redirectUri must be a loopback http URL with a port, such as "
        "http://localhost:8976/callback (registered with the identity provider) (Pulumi.prod.yaml), got "
        '"https://localhost:8976/callback"',
    ),
    (
        {"audienceParameter": "aud"},
        'collector.identity.audienceParameter must be one of "audience", "resource" (Pulumi.prod.yaml), got "aud"',
    ),
]


@pytest.mark.parametrize(("change", "message"), IDENTITY_PROBLEMS, ids=[next(iter(c)) for c, _ in IDENTITY_PROBLEMS])
def test_the_token_helpers_settings_are_checked_with_the_key_named(change: dict[str, Any], message: str) -> None:
    raw = flat(stack_document("prod"))
    collector = copy.deepcopy(raw[f"{PROJECT}:collector"])
    collector["identity"].update(change)
    raw[f"{PROJECT}:collector"] = collector
    with pytest.raises(ConfigError) as failure:
        parse_stack_config(raw, "Pulumi.prod.yaml")
    assert failure.value.problems == [message]


def test_the_token_helpers_settings_with_mode_none_are_refused_not_ignored() -> None:
    raw = flat(stack_document("dev"))
    collector = copy.deepcopy(raw[f"{PROJECT}:collector"])
    collector["identity"] = {"mode": "none", "clientId": "0oa1", "tokenUse": "access"}
    raw[f"{PROJECT}:collector"] = collector
    with pytest.raises(ConfigError) as failure:
        parse_stack_config(raw, "Pulumi.dev.yaml")
    assert failure.value.problems == [
        "collector.identity has clientId, tokenUse, the token helper's settings, which apply only when mode is jwt "
        "(with mode none no token is sent): remove them, or set mode jwt (Pulumi.dev.yaml)"
    ]


def test_the_prod_identity_gives_the_token_helper_its_client_and_defaults() -> None:
    identity = parse_stack_config(flat(stack_document("prod")), "Pulumi.prod.yaml").collector.identity
    assert identity is not None and identity.client_id
    assert (identity.scopes, identity.token_use, identity.flow) == (["openid", "offline_access"], "access", "auto")
    assert identity.redirect_uri is None and identity.audience_parameter is None


def test_the_ingest_aws_profile_is_optional_and_checked() -> None:
    raw = flat(stack_document("prod"))
    assert parse_stack_config(raw, "Pulumi.prod.yaml").bearer_token_ingest.aws_profile is None
    raw[f"{PROJECT}:bearerTokenIngest"] = {**raw[f"{PROJECT}:bearerTokenIngest"], "awsProfile": "claude-code-ingest"}
    assert parse_stack_config(raw, "Pulumi.prod.yaml").bearer_token_ingest.aws_profile == "claude-code-ingest"
    raw[f"{PROJECT}:bearerTokenIngest"] = {**raw[f"{PROJECT}:bearerTokenIngest"], "awsProfile": "my profile"}
    with pytest.raises(ConfigError) as failure:
        parse_stack_config(raw, "Pulumi.prod.yaml")
    assert failure.value.problems == [
        "bearerTokenIngest.awsProfile must be an AWS CLI profile name every developer machine has (letters, "
        'digits, _.@+-), such as claude-code-ingest (Pulumi.prod.yaml), got "my profile"'
    ]


def test_group_metrics_name_claude_code_metrics() -> None:
    raw = flat(stack_document("prod"))
    raw[f"{PROJECT}:collector"] = {**raw[f"{PROJECT}:collector"], "groupMetrics": {"team": ["claude_code.token.usage"]}}
    assert parse_stack_config(raw, "Pulumi.prod.yaml").collector.group_metrics == {"team": ["claude_code.token.usage"]}
    raw[f"{PROJECT}:collector"]["groupMetrics"] = {"team": ["tokens"]}
    with pytest.raises(ConfigError, match=re.escape('collector.groupMetrics["team"][0] must be a Claude Code metric')):
        parse_stack_config(raw, "Pulumi.prod.yaml")
    raw[f"{PROJECT}:collector"]["groupMetrics"] = {"user": ["claude_code.token.usage"]}
    with pytest.raises(ConfigError, match=r"collector.groupMetrics"):
        parse_stack_config(raw, "Pulumi.prod.yaml")
