"""HTTPS endpoints: nothing of the stack accepts plain HTTP except to redirect it to HTTPS."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import yaml
from pulumi_policy import (
    EnforcementLevel,
    ReportViolation,
    ResourceValidationArgs,
    ResourceValidationPolicy,
    StackValidationArgs,
    StackValidationPolicy,
)

LISTENER_TYPES = ("aws:lb/listener:Listener", "aws:alb/listener:Listener")
LISTENER_RULE_TYPES = ("aws:lb/listenerRule:ListenerRule", "aws:alb/listenerRule:ListenerRule")
ENCRYPTED_PROTOCOLS = ("HTTPS", "TLS")


def listener_problem(props: Mapping[str, Any]) -> str | None:
    """Why a listener's inputs are not HTTPS-only, or None when they are.

    A listener is fine when it terminates TLS (HTTPS or TLS), or when it is HTTP and its only default
    action redirects to HTTPS. Without a protocol, AWS uses HTTP for an Application Load Balancer.
    """
    protocol = str(props.get("protocol") or "HTTP").upper()
    if protocol in ENCRYPTED_PROTOCOLS:
        return None
    port = props.get("port")
    where = f"{protocol} listener" + (f" on port {int(port)}" if isinstance(port, (int, float)) else "")
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


def _validate_listener(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
    if args.resource_type not in LISTENER_TYPES:
        return
    problem = listener_problem(args.props)
    if problem:
        report_violation(f"{args.name}: {problem}.", None)


load_balancer_listeners_use_https = ResourceValidationPolicy(
    name="load-balancer-listeners-use-https",
    description=(
        "Load balancer listeners must use HTTPS or TLS. An HTTP listener is allowed only when its single "
        "default action is a redirect to HTTPS (type 'redirect', redirect.protocol 'HTTPS', port '443'). "
        "Fix: set protocol 'HTTPS' with a certificate and an ELBSecurityPolicy-TLS13-1-2 policy, or make the "
        "HTTP listener redirect-only."
    ),
    enforcement_level=EnforcementLevel.MANDATORY,
    validate=_validate_listener,
)

TASK_DEFINITION_TYPE = "aws:ecs/taskDefinition:TaskDefinition"
TOKEN_ACTIONS = ("jwt-validation", "authenticate-oidc", "authenticate-cognito")


def collector_configs(task_definition_props: Mapping[str, Any]) -> list[dict[str, Any]]:
    """OpenTelemetry collector configurations passed to the task's containers in environment variables."""
    definitions = task_definition_props.get("containerDefinitions")
    try:
        containers = json.loads(definitions) if isinstance(definitions, str) else []
    except json.JSONDecodeError:
        return []
    found: list[dict[str, Any]] = []
    for container in containers if isinstance(containers, list) else []:
        for variable in container.get("environment") or []:
            value = variable.get("value")
            try:
                document = yaml.safe_load(value) if isinstance(value, str) else None
            except yaml.YAMLError:
                continue
            if not isinstance(document, dict):
                continue
            receivers = document.get("receivers")
            if isinstance(receivers, dict) and any(str(name).split("/")[0] == "otlp" for name in receivers):
                found.append(document)
    return found


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
    collectors = [
        (name, config)
        for token, name, props in items
        if token == TASK_DEFINITION_TYPE
        for config in collector_configs(props)
    ]
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
    problem = unauthenticated_collector_problem((r.resource_type, r.name, r.props) for r in args.resources)
    if problem:
        report_violation(f"{problem}.", None)


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

POLICIES = [load_balancer_listeners_use_https, collector_validates_client_tokens]
