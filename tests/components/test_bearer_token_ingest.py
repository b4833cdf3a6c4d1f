"""BearerTokenIngest under mocks: users, attachments, keys, secrets, rotation, guardrail, settings, watcher."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from components.bearer_token_ingest import (
    BearerTokenIngestArgs,
    IngestTeam,
    credential_slots,
    guardrail_policy,
    watcher_statements,
)
from components.claude_settings import direct_ingest_managed_settings
from components.lambda_code import handler_name, package_files
from offline.engine import Registration
from offline.preview import PROJECT_ROOT, PreviewResult, Target, preview

PROJECT = "claude-code-monitoring"
TEAM = "pilot-data-science"
USER = "ccm-prod-ingest-pilot-data-science"


def ingest(result: PreviewResult, token: str) -> list[Registration]:
    return [r for r in result.run.registrations if r.type == token and "index:BearerTokenIngest$" in r.urn]


def preview_prod_with(tmp_path: Path, **ingest_settings: Any) -> PreviewResult:
    document = yaml.safe_load((PROJECT_ROOT / "Pulumi.prod.yaml").read_text())
    document["config"][f"{PROJECT}:bearerTokenIngest"].update(ingest_settings)
    stack_file = tmp_path / "Pulumi.prod.yaml"
    stack_file.write_text(yaml.safe_dump(document))
    return preview(Target(PROJECT_ROOT, stack_file, tmp_path / "out", PROJECT_ROOT / "policies/config/prod.json"))


def test_each_team_gets_a_user_with_only_the_api_key_policy(prod_preview: PreviewResult) -> None:
    (user,) = ingest(prod_preview, "aws:iam/user:User")
    assert user.inputs()["name"] == USER and user.inputs()["path"] == "/claude-code-ingest/"
    (attachment,) = ingest(prod_preview, "aws:iam/userPolicyAttachment:UserPolicyAttachment")
    assert attachment.inputs()["policyArn"] == "arn:aws:iam::aws:policy/CloudWatchAPIKeyAccess"
    assert not ingest(prod_preview, "aws:iam/userPolicy:UserPolicy")


def test_the_key_expires_and_its_secret_is_a_pulumi_secret(prod_preview: PreviewResult) -> None:
    (key,) = ingest(prod_preview, "aws:iam/serviceSpecificCredential:ServiceSpecificCredential")
    assert key.inputs()["serviceName"] == "cloudwatch.amazonaws.com"
    assert key.inputs()["credentialAgeDays"] == 60 and key.inputs()["status"] == "Active"
    assert {"servicePassword", "serviceCredentialSecret"} <= set(key.additional_secret_outputs)
    (version,) = ingest(prod_preview, "aws:secretsmanager/secretVersion:SecretVersion")
    assert key.urn in version.property_dependencies["secretString"]
    secret_string = version.properties.fields["secretString"]
    assert secret_string.struct_value.fields["value"].string_value.startswith("offline-")  # sent marked secret
    assert "offline-" not in json.dumps(prod_preview.run.outputs)  # and never in an output


def test_settings_for_direct_ingest(prod_preview: PreviewResult, tmp_path: Path) -> None:
    settings = prod_preview.run.outputs["ingestManagedSettings"][TEAM]
    env = settings["env"]
    assert env["OTEL_EXPORTER_OTLP_ENDPOINT"] == "https://monitoring.eu-west-1.amazonaws.com"
    assert env["OTEL_EXPORTER_OTLP_PROTOCOL"] == "http/protobuf" and env["OTEL_METRICS_EXPORTER"] == "otlp"
    assert env["OTEL_RESOURCE_ATTRIBUTES"] == f"cost_center=CC-2040,department=research,team.id={TEAM}"
    assert env["OTEL_METRICS_INCLUDE_SESSION_ID"] == env["OTEL_METRICS_INCLUDE_ACCOUNT_UUID"] == "false"
    assert env["OTEL_METRIC_EXPORT_INTERVAL"] == "60000"
    assert env["CLAUDE_CODE_INGEST_SECRET_ARN"] == prod_preview.run.outputs["ingestSecretArns"][TEAM]
    assert settings["otelHeadersHelper"] == "/usr/local/bin/claude-cloudwatch-key"
    (parameter,) = ingest(prod_preview, "aws:ssm/parameter:Parameter")
    assert parameter.inputs()["name"] == f"/ccm-prod-ingest/claude-code/managed-settings/{TEAM}"
    assert json.loads(parameter.inputs()["insecureValue"]) == settings
    written = tmp_path / "prod"
    preview(
        Target(PROJECT_ROOT, PROJECT_ROOT / "Pulumi.prod.yaml", written, PROJECT_ROOT / "policies/config/prod.json")
    )
    (artifact,) = written.glob(f"ssm--ccm-prod-ingest-*{TEAM}.json")
    assert json.loads(artifact.read_text()) == settings


def test_settings_refuse_person_attributes() -> None:
    with pytest.raises(ValueError, match="must not name a person"):
        direct_ingest_managed_settings("eu-west-1", {"user.email": "a@example.com"}, "/h", "arn")


def test_watcher_runs_daily_with_least_privilege(prod_preview: PreviewResult) -> None:
    (function,) = ingest(prod_preview, "aws:lambda/function:Function")
    inputs = function.inputs()
    assert inputs["runtime"] == "python3.12" and inputs["handler"] == handler_name("credential_expiry")
    variables = inputs["environment"]["variables"]
    assert json.loads(variables["INGEST_USERS"]) == {USER: TEAM}
    assert variables["WARNING_DAYS"] == "14" and variables["METRIC_NAMESPACE"] == "ClaudeCode/prod/Ingest"
    (rule,) = ingest(prod_preview, "aws:cloudwatch/eventRule:EventRule")
    assert rule.inputs()["scheduleExpression"] == "cron(0 7 * * ? *)"
    (target,) = ingest(prod_preview, "aws:cloudwatch/eventTarget:EventTarget")
    assert function.urn in target.property_dependencies["arn"]
    (policy,) = ingest(prod_preview, "aws:iam/rolePolicy:RolePolicy")
    statements = {s["Sid"]: s for s in json.loads(policy.inputs()["policy"])["Statement"]}
    assert statements["ListIngestKeys"]["Resource"] == [f"arn:aws:iam::123456789012:user/claude-code-ingest/{USER}"]
    assert statements["PublishDaysToExpiry"]["Condition"] == {
        "StringEquals": {"cloudwatch:namespace": "ClaudeCode/prod/Ingest"}
    }
    assert statements["WarnOperations"]["Resource"] == prod_preview.run.outputs["operationsTopicArn"]
    assert statements["EncryptForTopic"]["Action"] == ["kms:GenerateDataKey*", "kms:Decrypt"]
    assert all("*" not in json.dumps(s["Action"]) or s["Sid"] == "EncryptForTopic" for s in statements.values())
    (alarm,) = ingest(prod_preview, "aws:cloudwatch/metricAlarm:MetricAlarm")
    assert alarm.inputs()["metricName"] == "Errors" and alarm.inputs()["alarmActions"] == [
        prod_preview.run.outputs["operationsTopicArn"]
    ]


def test_guardrail_denies_keys_without_or_beyond_the_age(prod_preview: PreviewResult) -> None:
    (policy,) = ingest(prod_preview, "aws:iam/policy:Policy")
    document = json.loads(policy.inputs()["policy"])
    assert document == guardrail_policy(60, "123456789012", "aws")
    conditions = [statement["Condition"] for statement in document["Statement"]]
    assert {"iam:ServiceSpecificCredentialAgeDays": "true"} in [c.get("Null") for c in conditions]
    assert {"iam:ServiceSpecificCredentialAgeDays": "60"} in [c.get("NumericGreaterThan") for c in conditions]
    assert all(
        c["StringEquals"] == {"iam:ServiceSpecificCredentialServiceName": "cloudwatch.amazonaws.com"}
        for c in conditions
    )


def test_no_guardrail_unless_asked(tmp_path: Path) -> None:
    result = preview_prod_with(tmp_path, accountGuardrail=False)
    assert ingest(result, "aws:iam/policy:Policy") == [] and result.run.outputs["ingestGuardrailPolicyArn"] is None


@pytest.mark.parametrize(
    ("rotation", "keys"),
    [
        ({"activeCredential": "a", "previousCredential": "deleted"}, {"a": "Active"}),
        ({"activeCredential": "b", "previousCredential": "active"}, {"a": "Active", "b": "Active"}),
        ({"activeCredential": "b", "previousCredential": "inactive"}, {"a": "Inactive", "b": "Active"}),
        ({"activeCredential": "b", "previousCredential": "deleted"}, {"b": "Active"}),
    ],
    ids=["start", "rotate", "deactivate-old", "delete-old"],
)
def test_rotation_sequence(tmp_path: Path, rotation: dict[str, str], keys: dict[str, str]) -> None:
    result = preview_prod_with(tmp_path, rotation=rotation)
    assert result.mandatory == []
    credentials = ingest(result, "aws:iam/serviceSpecificCredential:ServiceSpecificCredential")
    assert {r.name.rsplit("-", 1)[1]: r.inputs()["status"] for r in credentials} == keys
    versions = ingest(result, "aws:secretsmanager/secretVersion:SecretVersion")
    (current,) = [v for v in versions if "versionStages" not in v.inputs()]
    (in_secret,) = [r for r in credentials if r.urn in current.property_dependencies["secretString"]]
    assert in_secret.name.endswith(f"-key-{rotation['activeCredential']}")
    kept = [v for v in versions if v is not current]
    assert [v.inputs()["versionStages"] for v in kept] == [["PREVIOUS_KEY"]] * (len(keys) - 1)


def test_never_more_than_two_keys_per_user() -> None:
    for active in ("a", "b"):
        for previous in ("active", "inactive", "deleted"):
            slots = credential_slots(active, previous)  # type: ignore[arg-type]
            assert len(slots) <= 2 and [s.slot for s in slots if s.in_secret] == [active]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"credential_age_days": 91}, "credential_age_days must be from 1 to 90, got 91"),
        ({"expiry_warning_days": 30, "credential_age_days": 30}, "expiry_warning_days must be from 1 to below"),
        ({"teams": []}, "teams must name at least one team"),
        ({"teams": [IngestTeam("data"), IngestTeam("Data")]}, "team 'Data' appears twice"),
        ({"teams": [IngestTeam("x" * 49)]}, "longer than 64 characters"),
    ],
)
def test_component_arguments_are_checked(change: dict[str, Any], message: str) -> None:
    base: dict[str, Any] = {
        "teams": [IngestTeam("data")],
        "credential_age_days": 30,
        "region": "eu-west-1",
        "alarm_topic_arn": "arn:aws:sns:eu-west-1:1:t",
    }
    problems = BearerTokenIngestArgs(**{**base, **change}).problems("ccm-prod-ingest")
    assert any(message in problem for problem in problems), problems


def test_watcher_policy_without_a_topic_key_grants_no_kms() -> None:
    statements = watcher_statements(["arn:aws:iam::1:user/u"], "N", "arn:aws:sns:eu-west-1:1:t", None)
    assert "EncryptForTopic" not in {s["Sid"] for s in statements}


def test_the_package_holds_the_function_and_the_shared_code_only() -> None:
    files = package_files("credential_expiry")
    shared = {f"lambda_src/common/{path.name}" for path in (PROJECT_ROOT / "lambda_src/common").glob("*.py")}
    assert {"lambda_src/common/logs.py", "lambda_src/common/pricing.py"} <= shared
    assert set(files) == {
        "lambda_src/__init__.py",
        "lambda_src/credential_expiry/__init__.py",
        "lambda_src/credential_expiry/handler.py",
        *shared,
    }
    with pytest.raises(ValueError, match=r"lambda_src/nothing/handler\.py does not exist"):
        package_files("nothing")
