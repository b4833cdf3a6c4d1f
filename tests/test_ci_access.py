"""The CI access program (ci_access/): previewed offline with the policy pack, its roles trust only this
repository's pull requests (preview) and deploy environments (deploy), and its outputs are the repository
variables the workflows read."""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from offline.preview import PROJECT_ROOT, Target, preview

PROGRAM = PROJECT_ROOT / "ci_access"
OIDC = "token.actions.githubusercontent.com"


def workflow_variables() -> set[str]:
    names: set[str] = set()
    for path in (PROJECT_ROOT / ".github" / "workflows").glob("*.yml"):
        text = path.read_text()
        names |= {part.split("}}")[0].strip() for part in text.split("${{ vars.")[1:]}
    return names


def test_the_roles_trust_only_this_repository_and_the_outputs_are_the_workflow_variables(tmp_path: Path) -> None:
    result = preview(Target(PROGRAM, PROGRAM / "Pulumi.test.yaml", tmp_path, None))
    assert not result.mandatory
    roles = {r.name: r.inputs() for r in result.run.registrations if r.type == "aws:iam/role:Role"}
    preview_trust = json.loads(roles["preview"]["assumeRolePolicy"])["Statement"][0]
    deploy_trust = json.loads(roles["deploy"]["assumeRolePolicy"])["Statement"][0]
    for trust in (preview_trust, deploy_trust):
        assert trust["Action"] == "sts:AssumeRoleWithWebIdentity"
        assert trust["Condition"]["StringEquals"] == {f"{OIDC}:aud": "sts.amazonaws.com"}
    assert preview_trust["Condition"]["ForAnyValue:StringEquals"][f"{OIDC}:sub"] == [
        "repo:example-org/claude-code-monitoring:pull_request"
    ]
    assert deploy_trust["Condition"]["ForAnyValue:StringEquals"][f"{OIDC}:sub"] == [
        "repo:example-org/claude-code-monitoring:environment:dev",
        "repo:example-org/claude-code-monitoring:environment:production",
    ]
    policies = {
        r.name: json.loads(r.inputs()["policy"])
        for r in result.run.registrations
        if r.type.endswith("rolePolicy:RolePolicy")
    }
    iam = next(s for s in policies["deploy-iam"]["Statement"] if s["Sid"] == "StackIdentities")
    assert all(
        ":role/ccm-*" in r or ":policy/ccm-*" in r or ":user/claude-code-ingest/ccm-*" in r for r in iam["Resource"]
    )
    preview_writes = next(s for s in policies["preview-state"]["Statement"] if s["Sid"] == "WriteState")
    assert preview_writes["Resource"].endswith("/.pulumi/locks/*")  # a preview only locks
    outputs = set(result.run.outputs) - {"secretsProvider"}
    assert outputs == {"PULUMI_BACKEND_URL", "AWS_PREVIEW_ROLE_ARN", "AWS_DEPLOY_ROLE_ARN"}
    assert outputs <= workflow_variables()  # each output is a repository variable the workflows read


def test_the_project_names_no_backend_and_the_workflows_set_one() -> None:
    project = yaml.safe_load((PROJECT_ROOT / "Pulumi.yaml").read_text())
    assert "backend" not in project  # a backend.url here would beat `pulumi login` and PULUMI_BACKEND_URL
    for path in (PROJECT_ROOT / ".github" / "workflows").glob("*.yml"):
        text = path.read_text()
        if "pulumi/actions" in text:
            assert "PULUMI_BACKEND_URL: ${{ vars.PULUMI_BACKEND_URL }}" in text and "cloud-url" not in text, path
