"""Token-expiry limits: every bearer credential of the stack expires, is kept in Secrets Manager and watched."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from pulumi_policy import (
    EnforcementLevel,
    PolicyResource,
    ReportViolation,
    ResourceValidationArgs,
    ResourceValidationPolicy,
    StackValidationArgs,
    StackValidationPolicy,
)

from policies.common import Setting, config_schema, report_each, settings
from policies.documents import SECRET_VERSION_TYPE

SERVICE_CREDENTIAL_TYPE = "aws:iam/serviceSpecificCredential:ServiceSpecificCredential"
ACCESS_KEY_TYPE = "aws:iam/accessKey:AccessKey"
FUNCTION_TYPE = "aws:lambda/function:Function"
EVENT_RULE_TYPE = "aws:cloudwatch/eventRule:EventRule"
EVENT_TARGET_TYPE = "aws:cloudwatch/eventTarget:EventTarget"
SCHEDULE_TYPE = "aws:scheduler/schedule:Schedule"

MAXIMUM_CREDENTIAL_AGE_DAYS = Setting(
    "maximumCredentialAgeDays",
    {
        "type": "integer",
        "minimum": 1,
        "maximum": 36600,
        "description": "The longest credentialAgeDays a service-specific credential may have.",
    },
    90,
)


def credential_age_problem(props: Mapping[str, Any], maximum_days: int) -> str | None:
    """Why the credential's lifetime is not acceptable, or None."""
    age = props.get("credentialAgeDays")
    if age is None:
        return "sets no credentialAgeDays, so the key never expires"
    if not isinstance(age, (int, float)) or age < 1:
        return f"credentialAgeDays is {age!r}; it must be a whole number of days from 1"
    if age > maximum_days:
        return f"credentialAgeDays is {int(age)}, more than the allowed {maximum_days} days"
    return None


def _validate_credential_age(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
    if args.resource_type != SERVICE_CREDENTIAL_TYPE:
        return
    maximum = settings(args.get_config(), MAXIMUM_CREDENTIAL_AGE_DAYS)[MAXIMUM_CREDENTIAL_AGE_DAYS.name]
    problem = credential_age_problem(args.props, int(maximum))
    if problem:
        service = args.props.get("serviceName")
        report_violation(f"{args.name} ({service}): {problem}.", None)


service_credentials_expire = ResourceValidationPolicy(
    name="service-credentials-expire",
    description=(
        "Service-specific credentials (CloudWatch and Bedrock API keys) are bearer tokens: whoever holds one can "
        "use it. They must expire: credentialAgeDays set, at most the configured maximum (90 days by default). "
        "Fix: set credentialAgeDays (bearerTokenIngest.credentialAgeDays) within the limit and rotate before expiry."
    ),
    enforcement_level=EnforcementLevel.MANDATORY,
    validate=_validate_credential_age,
    config_schema=config_schema(MAXIMUM_CREDENTIAL_AGE_DAYS),
)


def _validate_no_access_keys(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
    if args.resource_type == ACCESS_KEY_TYPE:
        report_violation(f"{args.name}: an IAM access key for user {args.props.get('user')!r} never expires.", None)


no_iam_access_keys = ResourceValidationPolicy(
    name="no-iam-access-keys",
    description=(
        "The stack must not create IAM access keys (aws.iam.AccessKey): they never expire and grant the user's "
        "whole policy. Fix: for direct ingest use a CloudWatch API key (aws.iam.ServiceSpecificCredential with "
        "credentialAgeDays, through the BearerTokenIngest component); for workloads use roles."
    ),
    enforcement_level=EnforcementLevel.MANDATORY,
    validate=_validate_no_access_keys,
)


def _depends_on(resource: PolicyResource, urns: set[str]) -> bool:
    linked = {dependency.urn for dependency in resource.dependencies}
    linked.update(d.urn for values in resource.property_dependencies.values() for d in values)
    return bool(linked & urns)


def _names_user(function: PolicyResource, user_name: Any) -> bool:
    """The function's environment mentions the user name as a whole word (e.g. in a JSON list of users)."""
    if not isinstance(user_name, str) or not user_name:
        return False
    variables = (function.props.get("environment") or {}).get("variables") or {}
    word = re.compile(rf"(?<![\w+=,.@-]){re.escape(user_name)}(?![\w+=,.@-])")
    return any(isinstance(value, str) and word.search(value) for value in variables.values())


def _scheduled(function: PolicyResource, resources: Sequence[PolicyResource]) -> bool:
    """A schedule invokes the function: an EventBridge Scheduler schedule, or a rule with a schedule."""
    scheduled_rules = {
        r.urn for r in resources if r.resource_type == EVENT_RULE_TYPE and r.props.get("scheduleExpression")
    }
    for resource in resources:
        if resource.resource_type == SCHEDULE_TYPE and _depends_on(resource, {function.urn}):
            return True
        if (
            resource.resource_type == EVENT_TARGET_TYPE
            and _depends_on(resource, {function.urn})
            and _depends_on(resource, scheduled_rules)
        ):
            return True
    return False


def credential_gaps(credential: PolicyResource, resources: Sequence[PolicyResource]) -> list[str]:
    """What the credential lacks: its secret in Secrets Manager, a scheduled function that watches its expiry.

    The secret version must be built from the credential (it depends on it). The watcher is a Lambda function
    that depends on the credential or its IAM user, or names the user in its environment, and runs on a schedule.
    """
    gaps = []
    if not any(r.resource_type == SECRET_VERSION_TYPE and _depends_on(r, {credential.urn}) for r in resources):
        gaps.append("no Secrets Manager secret version holds it")
    owners = {credential.urn} | {d.urn for d in credential.property_dependencies.get("userName", [])}
    user_name = credential.props.get("userName")
    watchers = [
        r
        for r in resources
        if r.resource_type == FUNCTION_TYPE and (_depends_on(r, owners) or _names_user(r, user_name))
    ]
    if not any(_scheduled(watcher, resources) for watcher in watchers):
        gaps.append(
            "no scheduled function warns before it expires"
            if not watchers
            else f"function {', '.join(w.name for w in watchers)} watches it but nothing schedules it"
        )
    return gaps


def credential_problem(credential: PolicyResource, resources: Sequence[PolicyResource]) -> str | None:
    gaps = credential_gaps(credential, resources)
    return f"credential {credential.name}: {'; '.join(gaps)}." if gaps else None


def _validate_credentials_stored_and_watched(args: StackValidationArgs, report_violation: ReportViolation) -> None:
    report_each(args.resources, [SERVICE_CREDENTIAL_TYPE], credential_problem, report_violation)


bearer_credentials_are_stored_and_watched = StackValidationPolicy(
    name="bearer-credentials-are-stored-and-watched",
    description=(
        "Every service-specific credential of the stack must have its secret stored in Secrets Manager (a secret "
        "version built from the credential, so it is never a plaintext output) and an expiry warning (a Lambda "
        "function that depends on the credential or its IAM user, or names the user in its environment, invoked "
        "by an EventBridge schedule). Fix: create credentials through the BearerTokenIngest component, which "
        "does both. This rule judges by structure (what depends on what), so a program that keeps and watches "
        "its keys elsewhere fails it: it is advisory unless the stack's policy config makes it mandatory."
    ),
    enforcement_level=EnforcementLevel.ADVISORY,
    validate=_validate_credentials_stored_and_watched,
)

POLICIES = [service_credentials_expire, no_iam_access_keys, bearer_credentials_are_stored_and_watched]
