"""The policy pack's contents, importable without starting the analyzer server."""

from __future__ import annotations

from pulumi_policy import EnforcementLevel, Policy

from policies import https_endpoints, metric_dimensions, token_expiry

PACK_NAME = "claude-code-monitoring-policies"
DEFAULT_ENFORCEMENT_LEVEL = EnforcementLevel.ADVISORY

POLICIES: list[Policy] = [
    *https_endpoints.POLICIES,
    *metric_dimensions.POLICIES,
    *token_expiry.POLICIES,
]
