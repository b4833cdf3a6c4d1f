"""The offline preview: plan.json, the policy verdict and exit status, artifacts, secrets, apply guard."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import jsonschema
import pytest

from offline.engine import OfflineError, Program, StackConfigFile, run_program
from offline.policy import load_policy_config
from offline.preview import (
    EXIT_INVALID_CONFIG,
    EXIT_MANDATORY,
    EXIT_OK,
    EXIT_UNKNOWN_TARGET,
    PROJECT_ROOT,
    PreviewResult,
    main,
)
from policies.pack import POLICIES
from tests.conftest import PROGRAMS, make_preview, preview_program

PLAN_SCHEMA = {
    "type": "object",
    "required": ["stack", "resources", "unmodelled", "violations"],
    "properties": {
        "stack": {"type": "string", "minLength": 1},
        "resources": {
            "type": "array",
            "minItems": 1,
            "items": {
                "type": "object",
                "required": ["urn", "type", "name", "parent", "custom", "modelled", "inputs"],
                "properties": {
                    "urn": {"type": "string", "pattern": "^urn:pulumi:"},
                    "type": {"type": "string"},
                    "name": {"type": "string"},
                    "parent": {"type": ["string", "null"]},
                    "custom": {"type": "boolean"},
                    "modelled": {"type": ["string", "null"]},
                    "inputs": {"type": "object"},
                },
            },
        },
        "unmodelled": {"type": "array", "items": {"type": "string", "pattern": "^urn:pulumi:"}},
        "violations": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["policy", "enforcementLevel", "urn", "message"],
                "properties": {
                    "policy": {"type": "string"},
                    "enforcementLevel": {"enum": ["mandatory", "advisory"]},
                    "urn": {"type": ["string", "null"]},
                    "message": {"type": "string"},
                },
            },
        },
    },
}


@pytest.mark.parametrize("fixture", ["dev_preview", "prod_preview"])
def test_plan_json_matches_the_schema(fixture: str, request: pytest.FixtureRequest) -> None:
    result: PreviewResult = request.getfixturevalue(fixture)
    plan = json.loads(result.artifacts[0].read_text())
    jsonschema.validate(plan, PLAN_SCHEMA)
    assert plan["stack"] == result.run.stack
    urns = {resource["urn"] for resource in plan["resources"]}
    assert all(resource["parent"] in urns for resource in plan["resources"] if resource["parent"])


def test_http_forwarding_listener_is_a_mandatory_violation(tmp_path: Path) -> None:
    result = preview_program("http_forwarding_listener", tmp_path)
    (violation,) = result.mandatory
    assert violation.urn == "urn:pulumi:test::http-forwarding-listener::aws:lb/listener:Listener::http-forward"
    plan = json.loads((tmp_path / "plan.json").read_text())
    jsonschema.validate(plan, PLAN_SCHEMA)
    assert plan["violations"] == [violation.as_json()]


def test_make_preview_program_exits_non_zero_on_the_forwarding_listener(tmp_path: Path) -> None:
    completed = make_preview("http_forwarding_listener", tmp_path)
    assert completed.returncode != 0, completed.stdout
    assert "[mandatory] load-balancer-listeners-use-https" in completed.stdout
    assert "aws:lb/listener:Listener::http-forward" in completed.stdout
    assert json.loads((tmp_path / "plan.json").read_text())["violations"][0]["enforcementLevel"] == "mandatory"


@pytest.mark.parametrize(
    ("name", "status"),
    [
        ("http_forwarding_listener", EXIT_MANDATORY),
        ("alb_token_listener", EXIT_MANDATORY),
        ("redirect_only_listener", EXIT_OK),
    ],
)
def test_exit_status(name: str, status: int, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    program = PROGRAMS / name
    assert (
        main(["--program", str(program), "--config", str(program / "Pulumi.test.yaml"), "--out", str(tmp_path)])
        == status
    )
    assert "Policy verdict:" in capsys.readouterr().out


def test_default_out_is_build_program_dir_name(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import offline.preview as preview_module

    monkeypatch.setattr(preview_module, "PROJECT_ROOT", tmp_path)
    program = PROGRAMS / "redirect_only_listener"
    assert main(["--program", str(program), "--config", str(program / "Pulumi.test.yaml")]) == EXIT_OK
    assert (tmp_path / "build" / "redirect_only_listener" / "plan.json").is_file()


def test_redirect_only_program_passes_and_writes_artifacts(tmp_path: Path) -> None:
    result = preview_program("redirect_only_listener", tmp_path)
    assert result.violations == []
    dashboard = json.loads((tmp_path / "dashboard-usage.json").read_text())
    assert dashboard["widgets"][0]["type"] == "text"
    assert (tmp_path / "sql" / "top-users.sql").read_text() == "SELECT 1\n"


def test_secure_values_are_placeholders_and_never_written(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    program = PROGRAMS / "redirect_only_listener"
    main(["--program", str(program), "--config", str(program / "Pulumi.test.yaml"), "--out", str(tmp_path)])
    out = capsys.readouterr().out
    assert "secure values replaced by placeholders" in out and "redirect-only-listener:webhookToken" in out
    plan = (tmp_path / "plan.json").read_text()
    assert "offline-placeholder-secret" not in plan
    parameter = next(r for r in json.loads(plan)["resources"] if r["type"] == "aws:ssm/parameter:Parameter")
    assert parameter["inputs"]["value"] == "[secret]"


def test_policies_see_secret_values_unwrapped(tmp_path: Path) -> None:
    from pulumi_policy import EnforcementLevel, ResourceValidationPolicy

    from offline.policy import evaluate

    seen: list[object] = []
    spy = ResourceValidationPolicy(
        name="spy",
        description="records SSM values",
        validate=lambda args, report: (
            seen.append(args.props.get("value")) if args.resource_type == "aws:ssm/parameter:Parameter" else None
        ),
    )
    program = Program.load(PROGRAMS / "redirect_only_listener")
    run = run_program(program, StackConfigFile.load(PROGRAMS / "redirect_only_listener" / "Pulumi.test.yaml", program))
    evaluate(run.registrations, "spy-pack", [spy], EnforcementLevel.ADVISORY, {})
    assert seen == ["offline-placeholder-secret"]


def test_preview_mode_skipping_applies_is_detected() -> None:
    """In the mock runtime's preview mode an apply on an output the mock leaves out never runs: refuse, not pass."""
    program = Program.load(PROGRAMS / "apply_guard")
    config = StackConfigFile.load(PROGRAMS / "apply_guard" / "Pulumi.test.yaml", program)
    with pytest.raises(OfflineError, match=r"skipped apply callbacks"):
        run_program(program, config, preview=True)
    applied = run_program(program, config)
    (topic,) = [r for r in applied.registrations if r.type == "aws:sns/topic:Topic"]
    assert topic.inputs()["displayName"] == "rendered in an apply: None"


def test_a_broken_config_exits_2_with_the_message(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    stack_file = tmp_path / "Pulumi.dev.yaml"
    stack_file.write_text((PROJECT_ROOT / "Pulumi.dev.yaml").read_text().replace("desiredCount: 1", "desiredCount: 0"))
    assert main(["--program", str(PROJECT_ROOT), "--config", str(stack_file), "--out", str(tmp_path)]) == 2
    assert "collector.desiredCount must be an integer from 1 to 20 (Pulumi.dev.yaml), got 0" in capsys.readouterr().err


def test_unknown_stack_is_named(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--stack", "qa"]) == EXIT_UNKNOWN_TARGET == 3
    assert "no stack 'qa': Pulumi.qa.yaml does not exist; stacks: dev, prod" in capsys.readouterr().err


def test_an_unknown_program_or_config_file_is_named(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--program", str(tmp_path), "--config", str(tmp_path / "Pulumi.x.yaml")]) == EXIT_UNKNOWN_TARGET
    assert f"no Pulumi program in {tmp_path}" in capsys.readouterr().err
    assert main(["--program", str(PROJECT_ROOT), "--config", str(tmp_path / "Pulumi.x.yaml")]) == EXIT_UNKNOWN_TARGET
    assert "no configuration file" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("arguments", "code"),
    [
        (["--stack", "qa"], EXIT_UNKNOWN_TARGET),
        (["--program", "tests/programs/http_forwarding_listener", "--config",
          "tests/programs/http_forwarding_listener/Pulumi.test.yaml"], EXIT_MANDATORY),
        (["--program", ".", "--config", "BROKEN"], EXIT_INVALID_CONFIG),
    ],
)  # fmt: skip
def test_scripts_preview_keeps_the_code_and_make_reports_it(tmp_path: Path, arguments: list[str], code: int) -> None:
    if "BROKEN" in arguments:
        broken = tmp_path / "Pulumi.dev.yaml"
        broken.write_text((PROJECT_ROOT / "Pulumi.dev.yaml").read_text().replace("desiredCount: 1", "desiredCount: 0"))
        arguments = [str(broken) if a == "BROKEN" else a for a in arguments]
    arguments = [*arguments, "--out", str(tmp_path / "out")] if "--stack" not in arguments else arguments
    script = subprocess.run(
        ["scripts/preview", *arguments], cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=180, check=False
    )
    assert script.returncode == code, script.stderr
    variables = {"--stack": "STACK", "--program": "PROGRAM", "--config": "CONFIG", "--out": "OUT"}
    make_arguments = [f"{variables[a]}={b}" for a, b in zip(arguments[::2], arguments[1::2], strict=True)]
    made = subprocess.run(
        ["make", "--no-print-directory", "preview", *make_arguments],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert made.returncode == 2 and f"Error {code}" in made.stderr  # make's own status, the code in its message


@pytest.mark.parametrize(
    ("document", "message"),
    [
        ('{"no-such-policy": "mandatory"}', "'no-such-policy' is not a policy of this pack"),
        ('{"load-balancer-listeners-use-https": "blocking"}', "enforcementLevel must be one of"),
        ('{"no-iam-access-keys": {"maxAge": 3}}', "takes no configuration"),
        ('{"load-balancer-listeners-use-https": {"maxAge": 3}}', "'maxAge' was unexpected"),
        ('{"service-credentials-expire": {"maximumCredentialAgeDays": 0}}', "0 is less than the minimum of 1"),
        ("{not json", "not a readable JSON policy configuration"),
    ],
)
def test_bad_policy_config_is_rejected(tmp_path: Path, document: str, message: str) -> None:
    path = tmp_path / "policy.json"
    path.write_text(document)
    with pytest.raises(OfflineError, match=message):
        load_policy_config(path, POLICIES)


def test_program_without_main_is_explained(tmp_path: Path) -> None:
    with pytest.raises(OfflineError, match=r"no __main__\.py"):
        Program.load(tmp_path)
