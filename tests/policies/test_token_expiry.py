"""Token-expiry limits, each rule with a passing and a failing resource in the engine's shape."""

from __future__ import annotations

from typing import Any

import pytest
from pulumi_policy import EnforcementLevel

from offline.engine import Registration
from offline.policy import load_policy_config
from offline.preview import PROJECT_ROOT
from policies.pack import POLICIES
from tests.policies.engine_shape import UNKNOWN, resource, secret, urn, violations_of

USER = "aws:iam/user:User"
CREDENTIAL = "aws:iam/serviceSpecificCredential:ServiceSpecificCredential"
SECRET_VERSION = "aws:secretsmanager/secretVersion:SecretVersion"
FUNCTION = "aws:lambda/function:Function"
RULE = "aws:cloudwatch/eventRule:EventRule"
TARGET = "aws:cloudwatch/eventTarget:EventTarget"
SCHEDULE = "aws:scheduler/schedule:Schedule"


def credential(**props: Any) -> Registration:
    return resource(
        CREDENTIAL, "team-a-key", {"serviceName": "cloudwatch.amazonaws.com", "userName": "team-a", **props}
    )


# service-credentials-expire ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("props", "config", "reason"),
    [
        ({"credentialAgeDays": 90.0}, None, None),
        ({"credentialAgeDays": 30.0}, {"maximumCredentialAgeDays": 30}, None),
        ({}, None, "sets no credentialAgeDays, so the key never expires"),
        ({"credentialAgeDays": 365.0}, None, "credentialAgeDays is 365, more than the allowed 90 days"),
        ({"credentialAgeDays": 60.0}, {"maximumCredentialAgeDays": 30}, "more than the allowed 30 days"),
    ],
    ids=["default-maximum", "configured-maximum", "never-expires", "a-year", "over-configured-maximum"],
)
def test_credential_age(props: dict[str, Any], config: dict[str, Any] | None, reason: str | None) -> None:
    policy_config = {"service-credentials-expire": config} if config else None
    violations = violations_of("service-credentials-expire", [credential(**props)], policy_config)
    assert [reason in v.message for v in violations] == ([] if reason is None else [True])
    if reason:
        assert violations[0].enforcement_level == "mandatory" and violations[0].urn == urn(CREDENTIAL, "team-a-key")
        assert "team-a-key (cloudwatch.amazonaws.com)" in violations[0].message


def test_unknown_age_is_advisory() -> None:
    (violation,) = violations_of("service-credentials-expire", [credential(credentialAgeDays=UNKNOWN)])
    assert violation.enforcement_level == "advisory"


# no-iam-access-keys ------------------------------------------------------------------------------------------


def test_an_access_key_fails_and_users_alone_pass() -> None:
    key = resource("aws:iam/accessKey:AccessKey", "ci", {"user": "ci-bot"})
    (violation,) = violations_of("no-iam-access-keys", [resource(USER, "ci-bot", {"name": "ci-bot"}), key])
    assert violation.urn == urn("aws:iam/accessKey:AccessKey", "ci") and "'ci-bot' never expires" in violation.message
    assert violations_of("no-iam-access-keys", [resource(USER, "ci-bot", {"name": "ci-bot"})]) == []


# bearer-credentials-are-stored-and-watched --------------------------------------------------------------------


def watched_stack(*, stored: bool = True, watcher: bool = True, scheduler: str | None = "rule") -> list[Registration]:
    user = resource(USER, "team-a", {"name": "team-a"})
    key = credential(credentialAgeDays=90.0)
    key = resource(CREDENTIAL, key.name, key.inputs(), property_dependencies={"userName": [user.urn]})
    resources = [user, key]
    if stored:
        resources.append(
            resource(
                SECRET_VERSION,
                "team-a-key",
                {"secretString": secret("{}")},
                property_dependencies={"secretString": [key.urn]},
            )
        )
    if watcher:
        function = resource(
            FUNCTION,
            "key-expiry",
            {"environment": {"variables": {"INGEST_USERS": '["team-a"]'}}},
            property_dependencies={"environment": [user.urn]},
        )
        resources.append(function)
        if scheduler == "rule":
            rule = resource(RULE, "daily", {"scheduleExpression": "rate(1 day)"})
            target = resource(TARGET, "daily", {}, property_dependencies={"arn": [function.urn], "rule": [rule.urn]})
            resources += [rule, target]
        elif scheduler == "scheduler":
            resources.append(
                resource(
                    SCHEDULE,
                    "daily",
                    {"scheduleExpression": "rate(1 day)"},
                    property_dependencies={"target": [function.urn]},
                )
            )
    return resources


@pytest.mark.parametrize("scheduler", ["rule", "scheduler"])
def test_a_stored_and_scheduled_credential_passes(scheduler: str) -> None:
    assert violations_of("bearer-credentials-are-stored-and-watched", watched_stack(scheduler=scheduler)) == []


@pytest.mark.parametrize(
    ("stack", "reason"),
    [
        ({"stored": False}, "no Secrets Manager secret version holds it"),
        ({"watcher": False}, "no scheduled function warns before it expires"),
        ({"scheduler": None}, "function key-expiry watches it but nothing schedules it"),
    ],
    ids=["no-secret", "no-watcher", "no-schedule"],
)
def test_a_credential_missing_a_piece_fails(stack: dict[str, Any], reason: str) -> None:
    (violation,) = violations_of("bearer-credentials-are-stored-and-watched", watched_stack(**stack))
    assert violation.urn == urn(CREDENTIAL, "team-a-key") and violation.enforcement_level == "advisory"
    assert reason in violation.message


def test_the_structural_rule_is_advisory_by_default_and_mandatory_under_this_projects_config() -> None:
    """A program may keep and watch its keys in ways the rule cannot see, so the pack only advises; this project's
    stack configurations (policies/config/*.json) make it mandatory."""
    rule = next(policy for policy in POLICIES if policy.name == "bearer-credentials-are-stored-and-watched")
    assert rule.enforcement_level == EnforcementLevel.ADVISORY
    unwatched = watched_stack(watcher=False)
    for stack in ("dev", "prod"):
        config = load_policy_config(PROJECT_ROOT / "policies" / "config" / f"{stack}.json", POLICIES)
        (violation,) = violations_of("bearer-credentials-are-stored-and-watched", unwatched, config)
        assert violation.enforcement_level == "mandatory", stack


def test_a_watcher_may_name_the_user_instead_of_depending_on_it() -> None:
    resources = watched_stack()
    function = next(r for r in resources if r.type == FUNCTION)
    named = resource(FUNCTION, function.name, function.inputs())  # no dependency, the user's name in its environment
    resources = [named if r is function else r for r in resources]
    assert violations_of("bearer-credentials-are-stored-and-watched", resources) == []


def test_stacks_without_credentials_are_not_concerned() -> None:
    assert violations_of("bearer-credentials-are-stored-and-watched", [resource(USER, "u", {})]) == []
