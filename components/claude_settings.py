"""Claude Code managed settings: the `env` block administrators distribute to developer machines.

Pure functions; components store the result where device management fetches it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

METRICS_EXPORT_INTERVAL_MS = 60_000
LOGS_EXPORT_INTERVAL_MS = 5_000
# Managed settings win only for the keys they set; the developer's environment supplies the rest. So both
# paths pin everything the pipeline depends on: the exporters, the protocol, and delta temporality (the
# rollups sum deltas; a cumulative client behind several collector tasks would be counted once per task).
DELTA_TEMPORALITY = {"OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE": "delta"}

# W3C baggage: a key is a token, a value is baggage-octets (printable ASCII without space, `"`, `,`, `;`, `\`).
BAGGAGE_KEY_PATTERN = r"^[A-Za-z0-9!#$%&'*+.^_`|~-]{1,128}$"
BAGGAGE_VALUE_PATTERN = r"^[\x21\x23-\x2B\x2D-\x3A\x3C-\x5B\x5D-\x7E]{1,256}$"


def resource_attributes_value(attributes: Mapping[str, str]) -> str:
    """`OTEL_RESOURCE_ATTRIBUTES` text: `key=value` pairs joined by commas, keys sorted."""
    for key, value in attributes.items():
        if not re.fullmatch(BAGGAGE_KEY_PATTERN, key) or not re.fullmatch(BAGGAGE_VALUE_PATTERN, value):
            raise ValueError(
                f"resource attribute {key!r}={value!r} is not valid W3C baggage (no spaces, commas, semicolons, "
                "quotes or backslashes)"
            )
    return ",".join(f"{key}={attributes[key]}" for key in sorted(attributes))


# RFC 6749 section 3.3: a scope token is printable ASCII without space, `"` and `\`.
OAUTH_SCOPE_PATTERN = r"^[\x21\x23-\x5B\x5D-\x7E]{1,256}$"
# scripts/claude-otel-token's browser flow listens on this machine's loopback interface, on an explicit port.
LOOPBACK_REDIRECT_PATTERN = r"^http://(localhost|127\.0\.0\.1|\[::1\]):[0-9]{1,5}(/[\x21-\x7E]*)?$"
DEFAULT_TOKEN_HELPER_SCOPES = ("openid", "offline_access")


@dataclass(frozen=True)
class TokenHelperSettings:
    """What `scripts/claude-otel-token` (the Path A headers helper) needs: its `CLAUDE_OTEL_*` variables, written
    into the managed settings' `env` block, which Claude Code passes to the helper (and `login` reads from the
    managed settings file). Everything comes from the collector's identity configuration, so the token the helper
    fetches is the one the load balancer accepts and carries the claims the collector reads."""

    issuer: str
    """`iss` of the tokens; the helper's discovery is `<issuer>/.well-known/openid-configuration`."""
    client_id: str
    """The public client (no secret) registered with the identity provider for the helper."""
    audience: str
    """The `aud` the load balancer checks; the helper refuses a token without it."""
    required_claims: Sequence[str]
    """Claim names the collector reads (user, department, team, cost center): the helper refuses tokens without."""
    scopes: Sequence[str] = DEFAULT_TOKEN_HELPER_SCOPES
    token_use: Literal["access", "id"] = "access"  # noqa: S105 (a kind of token, not one)
    """Which token to send: the access token, or the ID token (Amazon Cognito: its access tokens have no `aud`)."""
    flow: Literal["auto", "device", "browser"] = "auto"
    """Sign-in flow of `claude-otel-token login`: device grant, authorization code with PKCE, or auto."""
    redirect_uri: str | None = None
    """Loopback redirect of the browser flow; None keeps the helper's default, http://localhost:8976/callback."""
    audience_parameter: Literal["audience", "resource"] | None = None
    """Also send the audience as this request parameter (Auth0: audience; RFC 8707: resource)."""

    def env(self) -> dict[str, str]:
        """The helper's variables, named and spelt as `scripts/claude-otel-token` reads them."""
        if not self.issuer.startswith("https://"):
            raise ValueError(f"the token helper's issuer must be https://, got {self.issuer!r}")
        for name, value in (("client id", self.client_id), ("audience", self.audience)):
            if not value or value != value.strip() or "\n" in value:
                raise ValueError(f"the token helper's {name} must be a non-empty single line, got {value!r}")
        if not self.scopes or not all(re.fullmatch(OAUTH_SCOPE_PATTERN, scope) for scope in self.scopes):
            raise ValueError(f"the token helper's scopes must be OAuth scope tokens, got {list(self.scopes)!r}")
        if self.token_use == "id" and "openid" not in self.scopes:  # noqa: S105 (a kind of token)
            raise ValueError("the token helper sends the ID token only with the openid scope among its scopes")
        if any(not claim or "," in claim for claim in self.required_claims):
            raise ValueError(
                f"the token helper's claim names must be non-empty, without commas: {self.required_claims}"
            )
        if self.redirect_uri is not None and not re.fullmatch(LOOPBACK_REDIRECT_PATTERN, self.redirect_uri):
            raise ValueError(
                f"the token helper's redirect URI must be http://localhost:<port>/..., got {self.redirect_uri!r}"
            )
        env = {
            "CLAUDE_OTEL_ISSUER": self.issuer,
            "CLAUDE_OTEL_CLIENT_ID": self.client_id,
            "CLAUDE_OTEL_SCOPES": " ".join(self.scopes),
            "CLAUDE_OTEL_AUDIENCE": self.audience,
            "CLAUDE_OTEL_TOKEN": f"{self.token_use}_token",
            "CLAUDE_OTEL_REQUIRED_CLAIMS": ",".join(dict.fromkeys(self.required_claims)),
            "CLAUDE_OTEL_FLOW": self.flow,
        }
        if self.redirect_uri is not None:
            env["CLAUDE_OTEL_REDIRECT_URI"] = self.redirect_uri
        if self.audience_parameter is not None:
            env["CLAUDE_OTEL_AUDIENCE_PARAMETER"] = self.audience_parameter
        return env


def collector_managed_settings(
    endpoint: str,
    resource_attributes: Mapping[str, str],
    headers_helper: str | None,
    token_helper: TokenHelperSettings | None = None,
) -> dict[str, Any]:
    """Managed settings for Path A: metrics and events over OTLP http/protobuf to the collector.

    With `token_helper` (identity mode jwt), the env block also carries the settings of `scripts/claude-otel-token`,
    the headers helper that fetches the identity provider's token.
    """
    if not endpoint.startswith("https://"):
        raise ValueError(f"the collector endpoint must be https://, got {endpoint!r}")
    env = {
        "CLAUDE_CODE_ENABLE_TELEMETRY": "1",
        "OTEL_METRICS_EXPORTER": "otlp",
        "OTEL_LOGS_EXPORTER": "otlp",
        "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
        "OTEL_EXPORTER_OTLP_ENDPOINT": endpoint,
        "OTEL_METRIC_EXPORT_INTERVAL": str(METRICS_EXPORT_INTERVAL_MS),
        "OTEL_LOGS_EXPORT_INTERVAL": str(LOGS_EXPORT_INTERVAL_MS),
        **DELTA_TEMPORALITY,
    }
    if resource_attributes:
        env["OTEL_RESOURCE_ATTRIBUTES"] = resource_attributes_value(resource_attributes)
    if token_helper is not None:
        env.update(token_helper.env())
    settings: dict[str, Any] = {"env": env}
    if headers_helper:
        settings["otelHeadersHelper"] = headers_helper
    return settings


INGEST_SECRET_VARIABLE = "CLAUDE_CODE_INGEST_SECRET_ARN"  # noqa: S105 (a variable name)
# The AWS CLI profile scripts/claude-cloudwatch-key reads the secret with (else AWS_PROFILE, else the defaults).
INGEST_PROFILE_VARIABLE = "CLAUDE_CODE_INGEST_AWS_PROFILE"
AWS_PROFILE_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.@+-]{0,127}$"


def direct_ingest_managed_settings(
    region: str,
    resource_attributes: Mapping[str, str],
    headers_helper: str,
    secret_arn: str,
    aws_profile: str | None = None,
) -> dict[str, Any]:
    """Managed settings for Path B: metrics over OTLP http/protobuf straight to CloudWatch with an API key.

    The key never appears here: the headers helper reads it from Secrets Manager (the secret's ARN is in
    the environment) and prints the Authorization header. Events (logs) are off: CloudWatch's OTLP endpoint
    here takes metrics only.

    What these settings can and cannot keep out of the CloudWatch series: the resource attributes carry
    team, department and cost center only, and session id and account uuid are off. But Claude Code puts
    `user.id` (an installation hash) on every data point and it cannot be turned off, and with a
    Claude-account login also `user.email` and `organization.id`: every series on this path is per
    installation. Organisations that forbid per-person labels use Path A, where the collector drops them.

    `aws_profile` names the AWS CLI profile the helper reads the secret with, for organisations that give every
    developer machine the same profile name; without it the helper uses AWS_PROFILE or the default credentials.
    """
    if any(key.startswith("user.") for key in resource_attributes):
        raise ValueError(f"direct-ingest resource attributes must not name a person, got {sorted(resource_attributes)}")
    if aws_profile is not None and not re.fullmatch(AWS_PROFILE_PATTERN, aws_profile):
        raise ValueError(f"the AWS profile must be a profile name (letters, digits, _.@+-), got {aws_profile!r}")
    profile = {INGEST_PROFILE_VARIABLE: aws_profile} if aws_profile is not None else {}
    return {
        "env": {
            "CLAUDE_CODE_ENABLE_TELEMETRY": "1",
            "OTEL_METRICS_EXPORTER": "otlp",
            "OTEL_LOGS_EXPORTER": "none",
            "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
            "OTEL_EXPORTER_OTLP_ENDPOINT": f"https://monitoring.{region}.amazonaws.com",
            "OTEL_METRIC_EXPORT_INTERVAL": str(METRICS_EXPORT_INTERVAL_MS),
            "OTEL_RESOURCE_ATTRIBUTES": resource_attributes_value(resource_attributes),
            "OTEL_METRICS_INCLUDE_SESSION_ID": "false",
            "OTEL_METRICS_INCLUDE_ACCOUNT_UUID": "false",
            **DELTA_TEMPORALITY,
            INGEST_SECRET_VARIABLE: secret_arn,
            **profile,
        },
        "otelHeadersHelper": headers_helper,
    }
