"""HTTPS endpoints: nothing of the stack accepts or sends telemetry over plain HTTP, except to redirect it."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
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

from policies.common import Setting, UnknownValues, config_schema, report_each, settings
from policies.documents import OTLP_ENDPOINT_VARIABLES, claude_code_settings, collector_configs

LISTENER_TYPES = ("aws:lb/listener:Listener", "aws:alb/listener:Listener")
LISTENER_RULE_TYPES = ("aws:lb/listenerRule:ListenerRule", "aws:alb/listenerRule:ListenerRule")
AWSX_APPLICATION_LOAD_BALANCER = "awsx:lb:ApplicationLoadBalancer"
AWSX_NETWORK_LOAD_BALANCER = "awsx:lb:NetworkLoadBalancer"
ENCRYPTED_PROTOCOLS = ("HTTPS", "TLS")
API_DEFAULT_SSL_POLICY = "ELBSecurityPolicy-2016-08"

ALLOWED_SSL_POLICIES = Setting(
    "allowedSslPolicies",
    {
        "type": "array",
        "items": {"type": "string"},
        "minItems": 1,
        "description": "Security policies an HTTPS "
        "or TLS listener may use; all of the default ones refuse anything older than TLS 1.2.",
    },
    [
        "ELBSecurityPolicy-TLS13-1-2-2021-06",
        "ELBSecurityPolicy-TLS13-1-2-Res-2021-06",
        "ELBSecurityPolicy-TLS13-1-2-Ext1-2021-06",
        "ELBSecurityPolicy-TLS13-1-2-Ext2-2021-06",
        "ELBSecurityPolicy-TLS13-1-3-2021-06",
        "ELBSecurityPolicy-TLS13-1-2-Res-PQ-2025-09",
        "ELBSecurityPolicy-TLS13-1-2-FIPS-PQ-2025-09",
        "ELBSecurityPolicy-TLS13-1-2-FIPS-2023-04",
        "ELBSecurityPolicy-TLS13-1-2-Res-FIPS-2023-04",
        "ELBSecurityPolicy-TLS13-1-3-FIPS-2023-04",
        "ELBSecurityPolicy-FS-1-2-2019-08",
        "ELBSecurityPolicy-FS-1-2-Res-2019-08",
        "ELBSecurityPolicy-FS-1-2-Res-2020-10",
        "ELBSecurityPolicy-TLS-1-2-2017-01",
        "ELBSecurityPolicy-TLS-1-2-Ext-2018-06",
    ],
)


def listener_problem(
    props: Mapping[str, Any], allowed_ssl_policies: Sequence[str] = ALLOWED_SSL_POLICIES.default
) -> str | None:
    """Why a listener's inputs are not HTTPS-only, or None when they are.

    A listener is fine when it terminates TLS (HTTPS or TLS) with an allowed security policy, or when it is
    HTTP and its only default action redirects to HTTPS. Without a protocol, AWS uses HTTP for an
    Application Load Balancer; without a security policy, the API uses ELBSecurityPolicy-2016-08 (TLS 1.0).
    """
    protocol = str(props.get("protocol") or "HTTP").upper()
    port = props.get("port")
    where = f"{protocol} listener" + (f" on port {int(port)}" if isinstance(port, (int, float)) else "")
    if protocol in ENCRYPTED_PROTOCOLS:
        policy = props.get("sslPolicy")
        if not policy:
            return f"{where} sets no sslPolicy, so AWS applies {API_DEFAULT_SSL_POLICY}, which accepts TLS 1.0"
        if policy not in allowed_ssl_policies:
            return f"{where} uses security policy {policy!r}, which is not in the allowed list (TLS 1.2 or newer)"
        return None
    if protocol != "HTTP":
        return f"{where} carries traffic unencrypted"
    actions: Sequence[Mapping[str, Any]] = props.get("defaultActions") or []
    if len(actions) != 1:
        kinds = ", ".join(str(a.get("type")) for a in actions) or "none"
        return f"{where} has default actions [{kinds}]; it may only have one action, a redirect to HTTPS"
    action = actions[0]
    if action.get("type") != "redirect":
        return f"{where} forwards with a {action.get('type')!r} action instead of redirecting to HTTPS"
    redirect = action.get("redirect") or {}
    target = str(redirect.get("protocol") or "#{protocol}")
    if target.upper() != "HTTPS":
        return f"{where} redirects to protocol {target!r}, not HTTPS"
    return None


def awsx_listeners(resource_type: str, name: str, props: Mapping[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """(child name, effective listener inputs) for the listeners an awsx load balancer creates.

    Mirrors awsx 3: without listener arguments an Application Load Balancer gets HTTP on port 80 and a
    Network Load Balancer TCP on port 80, each forwarding to the default target group; an application
    listener with only a port is HTTPS on 443 and HTTP elsewhere.
    """
    given = props.get("listeners") or ([props["listener"]] if props.get("listener") else [{}])
    effective = []
    for index, listener in enumerate(given):
        arguments = dict(listener)
        if resource_type == AWSX_APPLICATION_LOAD_BALANCER:
            port, protocol = arguments.get("port"), arguments.get("protocol")
            if protocol is None:
                protocol = "HTTPS" if port == 443 else "HTTP"
            if port is None:
                port = 443 if str(protocol).upper() == "HTTPS" else 80
            defaults: dict[str, Any] = {"protocol": protocol, "port": port}
        else:
            defaults = {"protocol": "TCP", "port": 80}
        effective.append((f"{name}-{index}", {"defaultActions": [{"type": "forward"}], **defaults, **arguments}))
    return effective


def _validate_listener(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
    allowed = settings(args.get_config(), ALLOWED_SSL_POLICIES)[ALLOWED_SSL_POLICIES.name]
    if args.resource_type in LISTENER_TYPES:
        problem = listener_problem(args.props, allowed)
        if problem:
            report_violation(f"{args.name}: {problem}.", None)
    elif args.resource_type in (AWSX_APPLICATION_LOAD_BALANCER, AWSX_NETWORK_LOAD_BALANCER):
        for child, listener in awsx_listeners(args.resource_type, args.name, args.props):
            problem = listener_problem(listener, allowed)
            if problem:
                report_violation(f"{args.name}: listener {child}: {problem} (awsx listener arguments).", None)


load_balancer_listeners_use_https = ResourceValidationPolicy(
    name="load-balancer-listeners-use-https",
    description=(
        "Load balancer listeners (aws.lb, aws.alb and the listener arguments of awsx load balancers) must use "
        "HTTPS or TLS with an allowed TLS 1.2+ security policy. An HTTP listener is allowed only when its single "
        "default action is a redirect to HTTPS. Fix: set protocol 'HTTPS', a certificate and "
        "sslPolicy 'ELBSecurityPolicy-TLS13-1-2-2021-06', or make the HTTP listener redirect-only "
        "(type 'redirect', redirect.protocol 'HTTPS', port '443'); give awsx load balancers explicit listeners."
    ),
    enforcement_level=EnforcementLevel.MANDATORY,
    validate=_validate_listener,
    config_schema=config_schema(ALLOWED_SSL_POLICIES),
)


def insecure_settings_endpoints(resource_type: str, props: Mapping[str, Any]) -> list[str]:
    """`where: VARIABLE=value` for each OTLP endpoint of stored Claude Code settings that is not https://."""
    problems = []
    for stored in claude_code_settings(resource_type, props):
        env = stored.document["env"]
        for variable in OTLP_ENDPOINT_VARIABLES:
            value = env.get(variable)
            if value is not None and not str(value).strip().lower().startswith("https://"):
                problems.append(f"{stored.where}: env.{variable} is {str(value)!r}")
    return problems


def _validate_settings_endpoints(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
    problems = insecure_settings_endpoints(args.resource_type, args.props)
    if problems:
        report_violation(
            f"{args.name}: Claude Code would send telemetry over plain HTTP ({'; '.join(problems)}).", None
        )


claude_code_settings_use_https = ResourceValidationPolicy(
    name="claude-code-settings-use-https",
    description=(
        "Claude Code managed settings stored by the stack (SSM parameters, bucket objects, secrets, container "
        "environment) must send telemetry to https:// OTLP endpoints only: the request carries a bearer token "
        "and usage data. Fix: set OTEL_EXPORTER_OTLP_ENDPOINT (and any per-signal *_ENDPOINT) to an https:// "
        "URL, such as the collector's HTTPS listener or https://monitoring.<region>.amazonaws.com."
    ),
    enforcement_level=EnforcementLevel.MANDATORY,
    validate=_validate_settings_endpoints,
)

SNS_SUBSCRIPTION_TYPE = "aws:sns/topicSubscription:TopicSubscription"


def _validate_sns_subscription(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
    if args.resource_type != SNS_SUBSCRIPTION_TYPE:
        return
    if str(args.props.get("protocol") or "").lower() == "http":
        report_violation(f"{args.name}: delivers to {args.props.get('endpoint')!r} with protocol 'http'.", None)


sns_subscriptions_use_https = ResourceValidationPolicy(
    name="sns-subscriptions-use-https",
    description=(
        "SNS subscriptions must not use the 'http' protocol: alerts name users and their usage. "
        "Fix: subscribe with protocol 'https' and an https:// endpoint, or use email, SQS or Lambda."
    ),
    enforcement_level=EnforcementLevel.MANDATORY,
    validate=_validate_sns_subscription,
)

FIREHOSE_TYPE = "aws:kinesis/firehoseDeliveryStream:FirehoseDeliveryStream"


def _validate_firehose_endpoint(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
    if args.resource_type != FIREHOSE_TYPE:
        return
    url = (args.props.get("httpEndpointConfiguration") or {}).get("url")
    if url is not None and not str(url).strip().lower().startswith("https://"):
        report_violation(f"{args.name}: httpEndpointConfiguration.url is {str(url)!r}.", None)


firehose_http_endpoints_use_https = ResourceValidationPolicy(
    name="firehose-http-endpoints-use-https",
    description=(
        "Firehose HTTP endpoint destinations must be https:// URLs. "
        "Fix: set httpEndpointConfiguration.url to the endpoint's https:// address."
    ),
    enforcement_level=EnforcementLevel.MANDATORY,
    validate=_validate_firehose_endpoint,
)

BUCKET_TYPES = ("aws:s3/bucket:Bucket", "aws:s3/bucketV2:BucketV2")
BUCKET_POLICY_TYPE = "aws:s3/bucketPolicy:BucketPolicy"


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return [value] if isinstance(value, (str, bool, Mapping)) else list(value)


def denies_insecure_transport(policy: Any) -> bool:
    """The bucket policy (JSON text or mapping) has a Deny of every S3 action to everyone without TLS."""
    try:
        document = json.loads(policy) if isinstance(policy, str) else policy
    except json.JSONDecodeError:
        return False
    if not isinstance(document, Mapping):
        return False
    for statement in _as_list(document.get("Statement")):
        if not isinstance(statement, Mapping) or statement.get("Effect") != "Deny":
            continue
        principal = statement.get("Principal")
        everyone = principal == "*" or (isinstance(principal, Mapping) and "*" in _as_list(principal.get("AWS")))
        all_actions = any(action in ("*", "s3:*") for action in _as_list(statement.get("Action")))
        condition = statement.get("Condition") or {}
        insecure = any(
            str(value).lower() == "false"
            for operator in ("Bool", "BoolIfExists")
            for value in _as_list((condition.get(operator) or {}).get("aws:SecureTransport"))
        )
        if everyone and all_actions and insecure:
            return True
    return False


def bucket_policies_of(bucket: PolicyResource, resources: Sequence[PolicyResource]) -> list[Any]:
    """Policy documents that apply to the bucket: its bucket policies (linked by dependency or by name)
    and an inline `policy`."""
    name = bucket.props.get("bucket")
    documents = [bucket.props["policy"]] if bucket.props.get("policy") else []
    for resource in resources:
        if resource.resource_type != BUCKET_POLICY_TYPE:
            continue
        linked = {dependency.urn for dependency in resource.property_dependencies.get("bucket", [])}
        if bucket.urn in linked or (name and resource.props.get("bucket") == name):
            documents.append(resource.props.get("policy"))
    return documents


def bucket_tls_problem(bucket: PolicyResource, resources: Sequence[PolicyResource]) -> str | None:
    if any(denies_insecure_transport(policy) for policy in bucket_policies_of(bucket, resources)):
        return None
    return f"bucket {bucket.name} has no bucket policy that denies requests without TLS."


def _validate_buckets_deny_insecure_transport(args: StackValidationArgs, report_violation: ReportViolation) -> None:
    report_each(args.resources, BUCKET_TYPES, bucket_tls_problem, report_violation)


buckets_deny_insecure_transport = StackValidationPolicy(
    name="buckets-deny-insecure-transport",
    description=(
        "Every bucket of the stack must have a bucket policy that denies requests made without TLS. "
        "Fix: add an aws.s3.BucketPolicy with a statement Effect 'Deny', Principal '*', Action 's3:*', "
        "Resource the bucket and its objects, Condition {'Bool': {'aws:SecureTransport': 'false'}}."
    ),
    enforcement_level=EnforcementLevel.MANDATORY,
    validate=_validate_buckets_deny_insecure_transport,
)

TOKEN_ACTIONS = ("jwt-validation", "authenticate-oidc", "authenticate-cognito")


def collector_authenticates(config: Mapping[str, Any]) -> bool:
    """Every OTLP protocol of the collector has a server authenticator (`auth.authenticator`)."""
    protocols = [
        protocol
        for name, receiver in (config.get("receivers") or {}).items()
        if str(name).split("/")[0] == "otlp" and isinstance(receiver, Mapping)
        for protocol in (receiver.get("protocols") or {}).values()
    ]
    return bool(protocols) and all(
        isinstance(protocol, Mapping) and (protocol.get("auth") or {}).get("authenticator") for protocol in protocols
    )


def listener_validates_tokens(props: Mapping[str, Any]) -> bool:
    """Every forwarding action path of the listener starts with a token check."""
    actions: Sequence[Mapping[str, Any]] = props.get("defaultActions") or props.get("actions") or []
    ordered = sorted(actions, key=lambda action: float(action.get("order") or 0))
    kinds = [str(action.get("type")) for action in ordered]
    if "forward" not in kinds:
        return True
    return any(kind in TOKEN_ACTIONS for kind in kinds[: kinds.index("forward")])


def unauthenticated_collector_problem(resources: Iterable[tuple[str, str, Mapping[str, Any]]]) -> str | None:
    """Why the stack's collector accepts telemetry without a token check, or None.

    `resources` are (type, name, props). A collector is covered when it authenticates clients itself, or
    when every HTTPS listener and listener rule of the stack that forwards checks a token first.
    """
    items = list(resources)
    collectors = [(name, stored.document) for token, name, props in items for stored in collector_configs(token, props)]
    unguarded = [name for name, config in collectors if not collector_authenticates(config)]
    if not unguarded:
        return None
    forwarding = [
        (name, props)
        for token, name, props in items
        if token in (*LISTENER_TYPES, *LISTENER_RULE_TYPES)
        and (token in LISTENER_RULE_TYPES or str(props.get("protocol") or "").upper() == "HTTPS")
    ]
    open_listeners = [name for name, props in forwarding if not listener_validates_tokens(props)]
    if forwarding and not open_listeners:
        return None
    where = f" (listeners forwarding without a token check: {', '.join(open_listeners)})" if open_listeners else ""
    return (
        f"collector {', '.join(unguarded)} accepts telemetry without validating a token{where}; anyone who can "
        "reach it can send usage in any user's name"
    )


def _validate_collector_tokens(args: StackValidationArgs, report_violation: ReportViolation) -> None:
    unknowns = UnknownValues()
    known = [
        (resource.resource_type, resource.name, resource.props)
        for resource in args.resources
        if unknowns.attempt(resource.name, False, _readable, resource.resource_type, resource.props)
    ]
    problem = unauthenticated_collector_problem(known)
    if problem:
        report_violation(f"{problem}.", None)
    unknowns.raise_if_any()


def _readable(resource_type: str, props: Mapping[str, Any]) -> bool:
    """Touch what the collector rule reads, so a resource with unknown values is set aside, not fatal."""
    collector_configs(resource_type, props)
    if resource_type in (*LISTENER_TYPES, *LISTENER_RULE_TYPES):
        listener_validates_tokens(props)
        str(props.get("protocol") or "")
    return True


collector_validates_client_tokens = StackValidationPolicy(
    name="collector-validates-client-tokens",
    description=(
        "A telemetry collector must accept only requests with a valid token from the organisation's identity "
        "provider. Fix: set collector.identity.mode to jwt (the HTTPS listener runs a jwt-validation action "
        "before forwarding), or give every OTLP receiver protocol an auth.authenticator. Mode none is meant "
        "for dev only; this rule is advisory unless the stack's policy config makes it mandatory."
    ),
    enforcement_level=EnforcementLevel.ADVISORY,
    validate=_validate_collector_tokens,
)

POLICIES = [
    load_balancer_listeners_use_https,
    claude_code_settings_use_https,
    sns_subscriptions_use_https,
    firehose_http_endpoints_use_https,
    buckets_deny_insecure_transport,
    collector_validates_client_tokens,
]
