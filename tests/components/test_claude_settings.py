"""Managed settings for Claude Code: the env block for the collector path (with the token helper's settings) and
for direct ingest (with the key helper's secret and AWS profile)."""

from __future__ import annotations

import json
import re
from dataclasses import replace
from typing import Any

import pytest
import yaml

from components.bearer_token_ingest import BearerTokenIngestArgs, IngestTeam, team_settings
from components.claude_settings import (
    INGEST_PROFILE_VARIABLE,
    INGEST_SECRET_VARIABLE,
    TokenHelperSettings,
    collector_managed_settings,
    direct_ingest_managed_settings,
    resource_attributes_value,
)
from components.collector import IdentityArgs
from components.collector_config import IdentityClaimNames
from infra.config import IdentityConfig
from offline.preview import PROJECT_ROOT


def test_collector_settings_send_metrics_and_events_over_https() -> None:
    settings = collector_managed_settings(
        "https://otel.example.com", {"team.id": "platform", "department": "eng"}, "/usr/local/bin/token"
    )
    assert settings == {
        "env": {
            "CLAUDE_CODE_ENABLE_TELEMETRY": "1",
            "OTEL_METRICS_EXPORTER": "otlp",
            "OTEL_LOGS_EXPORTER": "otlp",
            "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
            "OTEL_EXPORTER_OTLP_ENDPOINT": "https://otel.example.com",
            "OTEL_METRIC_EXPORT_INTERVAL": "60000",
            "OTEL_LOGS_EXPORT_INTERVAL": "5000",
            "OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE": "delta",
            "OTEL_RESOURCE_ATTRIBUTES": "department=eng,team.id=platform",
        },
        "otelHeadersHelper": "/usr/local/bin/token",
    }


def test_plain_http_endpoint_is_refused() -> None:
    with pytest.raises(ValueError, match="must be https://"):
        collector_managed_settings("http://otel.example.com", {}, None)


@pytest.mark.parametrize("value", ["My Company", "a,b", 'say"hi"', "semi;colon"])
def test_resource_attribute_values_must_be_valid_baggage(value: str) -> None:
    with pytest.raises(ValueError, match="W3C baggage"):
        resource_attributes_value({"organization": value})


def test_no_headers_helper_and_no_attributes_leave_the_keys_out() -> None:
    settings = collector_managed_settings("https://otel.example.com", {}, None)
    assert "otelHeadersHelper" not in settings
    assert "OTEL_RESOURCE_ATTRIBUTES" not in settings["env"]


def test_direct_ingest_settings_pin_metrics_only_and_delta_and_keep_the_key_out() -> None:
    settings = direct_ingest_managed_settings(
        "eu-west-1", {"team.id": "platform"}, "/usr/local/bin/claude-cloudwatch-key", "arn:aws:secretsmanager:x"
    )
    env = settings["env"]
    assert env["OTEL_METRICS_EXPORTER"] == "otlp" and env["OTEL_LOGS_EXPORTER"] == "none"
    assert env["OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE"] == "delta"
    assert env["OTEL_METRICS_INCLUDE_SESSION_ID"] == env["OTEL_METRICS_INCLUDE_ACCOUNT_UUID"] == "false"
    assert env["OTEL_EXPORTER_OTLP_ENDPOINT"] == "https://monitoring.eu-west-1.amazonaws.com"
    assert not any("Bearer" in value for value in env.values())


def test_direct_ingest_refuses_person_attributes() -> None:
    with pytest.raises(ValueError, match="must not name a person"):
        direct_ingest_managed_settings("eu-west-1", {"user.email": "a@b.c"}, "/helper", "arn")


# The token helper's settings (Path A) ------------------------------------------------------------------------------

OKTA = TokenHelperSettings(
    issuer="https://example.okta.com/oauth2/aus1",
    client_id="0oa1abcd2EFGH3ijk4l5",
    audience="claude-code-telemetry",
    required_claims=("email", "uid", "department", "team", "cost_center"),
)


def test_collector_settings_carry_the_token_helpers_variables() -> None:
    settings = collector_managed_settings("https://otel.example.com", {}, "/usr/local/bin/claude-otel-token", OKTA)
    helper = {key: value for key, value in settings["env"].items() if key.startswith("CLAUDE_OTEL_")}
    assert helper == {
        "CLAUDE_OTEL_ISSUER": "https://example.okta.com/oauth2/aus1",
        "CLAUDE_OTEL_CLIENT_ID": "0oa1abcd2EFGH3ijk4l5",
        "CLAUDE_OTEL_SCOPES": "openid offline_access",
        "CLAUDE_OTEL_AUDIENCE": "claude-code-telemetry",
        "CLAUDE_OTEL_TOKEN": "access_token",
        "CLAUDE_OTEL_REQUIRED_CLAIMS": "email,uid,department,team,cost_center",
        "CLAUDE_OTEL_FLOW": "auto",
    }
    assert settings["otelHeadersHelper"] == "/usr/local/bin/claude-otel-token"
    # The pipeline's own keys are untouched.
    assert settings["env"]["OTEL_EXPORTER_OTLP_ENDPOINT"] == "https://otel.example.com"


def test_the_helpers_optional_variables_are_written_only_when_set() -> None:
    cognito = replace(
        OKTA,
        scopes=("openid", "email", "profile"),
        token_use="id",
        flow="browser",
        redirect_uri="http://localhost:8976/callback",
        audience_parameter="resource",
    )
    env = cognito.env()
    assert env["CLAUDE_OTEL_SCOPES"] == "openid email profile"
    assert env["CLAUDE_OTEL_TOKEN"] == "id_token"
    assert env["CLAUDE_OTEL_FLOW"] == "browser"
    assert env["CLAUDE_OTEL_REDIRECT_URI"] == "http://localhost:8976/callback"
    assert env["CLAUDE_OTEL_AUDIENCE_PARAMETER"] == "resource"
    assert "CLAUDE_OTEL_REDIRECT_URI" not in OKTA.env() and "CLAUDE_OTEL_AUDIENCE_PARAMETER" not in OKTA.env()


def test_without_token_validation_no_helper_variable_is_written() -> None:
    settings = collector_managed_settings("https://otel.example.com", {}, None)
    assert not [key for key in settings["env"] if key.startswith("CLAUDE_OTEL_")]


def test_a_claim_name_given_twice_is_required_once() -> None:
    same = replace(OKTA, required_claims=("email", "email", "department", "team", "cost_center"))
    assert same.env()["CLAUDE_OTEL_REQUIRED_CLAIMS"] == "email,department,team,cost_center"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"issuer": "http://idp.example.com"}, "issuer must be https://"),
        ({"client_id": ""}, "client id must be a non-empty single line"),
        ({"audience": "aud\n"}, "audience must be a non-empty single line"),
        ({"scopes": ()}, "scopes must be OAuth scope tokens"),
        ({"scopes": ("openid offline_access",)}, "scopes must be OAuth scope tokens"),
        ({"token_use": "id", "scopes": ("offline_access",)}, "ID token only with the openid scope"),
        ({"required_claims": ("email", "a,b")}, "claim names must be non-empty, without commas"),
        ({"redirect_uri": "https://localhost:8976/callback"}, "redirect URI must be http://localhost:<port>"),
        ({"redirect_uri": "http://localhost/callback"}, "redirect URI must be http://localhost:<port>"),
        ({"redirect_uri": "http://example.com:8976/callback"}, "redirect URI must be http://localhost:<port>"),
    ],
)
def test_settings_the_helper_would_refuse_are_refused_here(change: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        replace(OKTA, **change).env()


GUIDE = PROJECT_ROOT / "docs" / "identity-providers.md"


def _guide_pairs() -> list[tuple[str, str]]:
    """Each IdP's `collector.identity` block in the guide, and the settings block that follows it."""
    blocks = re.findall(r"```(yaml|json)\n(.*?)```", GUIDE.read_text(), re.DOTALL)
    return [
        (text, next(json_text for kind, json_text in blocks[index + 1 :] if kind == "json"))
        for index, (kind, text) in enumerate(blocks)
        if kind == "yaml" and "identity:" in text
    ]


def _without_placeholders(text: str) -> str:
    return re.sub(r"<([a-z-]+)>", r"\1", text)


@pytest.mark.parametrize("index", range(3), ids=["okta", "entra-id", "cognito"])
def test_each_guides_settings_are_what_the_stack_writes_from_its_identity_block(index: int) -> None:
    """The guide shows, after each IdP's identity block, the helper settings the stack writes from it: the same
    keys, values and order as the stack renders, by the path `pulumi up` takes (config, then component)."""
    pairs = _guide_pairs()
    assert len(pairs) == 3
    yaml_text, json_text = pairs[index]
    section = yaml.safe_load(_without_placeholders(yaml_text))["claude-code-monitoring:collector"]
    identity = IdentityConfig.model_validate(section["identity"])
    args = IdentityArgs(
        **identity.model_dump(exclude={"claims"}), claims=IdentityClaimNames(**identity.claims.model_dump())
    )
    helper = args.token_helper()
    assert helper is not None
    shown = json.loads("{" + _without_placeholders(json_text) + "}")
    assert list(shown.items()) == list(helper.env().items())


def test_the_guides_rollout_example_is_the_okta_block_rendered() -> None:
    text = GUIDE.read_text()
    (rollout,) = re.findall(r"   ```json\n(   \{\n.*?)   ```", text, re.DOTALL)
    document = json.loads(rollout)
    okta_yaml, okta_json = _guide_pairs()[0]
    shown = {key: value for key, value in document["env"].items() if key.startswith("CLAUDE_OTEL_")}
    assert shown == json.loads("{" + okta_json + "}")
    section = yaml.safe_load(okta_yaml)["claude-code-monitoring:collector"]
    assert document["otelHeadersHelper"] == section["otelHeadersHelper"]


# Path B: the AWS profile of the headers helper -------------------------------------------------------------------


def test_direct_ingest_settings_name_the_aws_profile_only_when_one_is_chosen() -> None:
    chosen = direct_ingest_managed_settings("eu-west-1", {"team.id": "a"}, "/h", "arn", aws_profile="claude-ingest")
    assert chosen["env"][INGEST_PROFILE_VARIABLE] == "claude-ingest"
    assert (
        INGEST_PROFILE_VARIABLE not in direct_ingest_managed_settings("eu-west-1", {"team.id": "a"}, "/h", "arn")["env"]
    )


@pytest.mark.parametrize("profile", ["", "two words", "-flag", "a" * 129])
def test_direct_ingest_refuses_what_is_not_a_profile_name(profile: str) -> None:
    with pytest.raises(ValueError, match="must be a profile name"):
        direct_ingest_managed_settings("eu-west-1", {"team.id": "a"}, "/h", "arn", aws_profile=profile)


def test_the_components_team_settings_pass_the_profile_on() -> None:
    args = BearerTokenIngestArgs(
        teams=[IngestTeam(name="platform")],
        credential_age_days=30,
        region="eu-west-1",
        alarm_topic_arn="arn:aws:sns:eu-west-1:123456789012:ops",
        aws_profile="claude-ingest",
    )
    settings = team_settings(args, {"team.id": "platform"}, "arn:aws:secretsmanager:eu-west-1:1:secret:x")
    assert settings["env"][INGEST_PROFILE_VARIABLE] == "claude-ingest"
    assert settings["env"][INGEST_SECRET_VARIABLE] == "arn:aws:secretsmanager:eu-west-1:1:secret:x"
