"""HTTPS endpoints: nothing of the stack accepts plain HTTP except to redirect it to HTTPS."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from pulumi_policy import EnforcementLevel, ReportViolation, ResourceValidationArgs, ResourceValidationPolicy

LISTENER_TYPES = ("aws:lb/listener:Listener", "aws:alb/listener:Listener")
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

POLICIES = [load_balancer_listeners_use_https]
