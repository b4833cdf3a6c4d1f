"""Offline preview: run a Pulumi program under mocks, evaluate the policy pack, write plan.json.

    python -m offline.preview                       # every stack of this project
    python -m offline.preview --stack prod          # one stack
    python -m offline.preview --program DIR --config FILE [--out DIR] [--policy-config FILE]

Exit status: 0 clean (advisories allowed), 1 a mandatory violation, 2 an invalid stack configuration, 3 no such
stack, program or configuration file, 4 any other failure.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pulumi
import yaml

from components.collector_config import (
    EXAMPLE_ORGANISATION,
    EXAMPLE_ORGANISATION_VALUES,
    series_count,
)
from infra.program import InvalidStackConfig
from offline.awsx import SOURCE as AWSX_MODEL_SOURCE
from offline.engine import (
    OfflineError,
    Program,
    ProgramRun,
    Registration,
    StackConfigFile,
    StackFileError,
    run_program,
)
from offline.policy import Violation, evaluate, load_policy_config
from offline.prices import usd
from policies.documents import TASK_DEFINITION_TYPE, collector_configs
from policies.pack import DEFAULT_ENFORCEMENT_LEVEL, PACK_NAME, POLICIES

PROJECT_ROOT = Path(__file__).resolve().parent.parent
# The exit status says what went wrong: 1 a mandatory policy violation, 2 an invalid stack configuration,
# 3 no such stack, program or configuration file, 4 the program failed otherwise. (GNU make exits 2 on any
# failed recipe and prints `Error N` with this code: `scripts/preview` keeps the code itself.)
EXIT_OK, EXIT_MANDATORY, EXIT_INVALID_CONFIG, EXIT_UNKNOWN_TARGET, EXIT_FAILED = 0, 1, 2, 3, 4


class UnknownTargetError(Exception):
    """No such stack, program or configuration file; the message lists what exists."""


@dataclass(frozen=True)
class Target:
    program: Path
    config: Path
    out: Path
    policy_config: Path | None


@dataclass
class PreviewResult:
    config: StackConfigFile
    run: ProgramRun
    violations: list[Violation]
    seconds: float
    artifacts: list[Path]

    @property
    def mandatory(self) -> list[Violation]:
        return [v for v in self.violations if v.enforcement_level == "mandatory"]


def preview(target: Target) -> PreviewResult:
    started = time.perf_counter()
    program = Program.load(target.program)
    config = StackConfigFile.load(target.config, program)
    run = run_program(program, config)
    policy_config = load_policy_config(target.policy_config, POLICIES)
    # The engine analyzes every resource, a remote component's children too: the modelled ones are evaluated as well.
    violations = evaluate(run.resources(), PACK_NAME, POLICIES, DEFAULT_ENFORCEMENT_LEVEL, policy_config)
    artifacts = write_outputs(target.out, run, violations)
    return PreviewResult(config, run, violations, time.perf_counter() - started, artifacts)


@dataclass(frozen=True)
class Counts:
    """What the preview creates, as its summary line and the README say it."""

    resources: int
    cloud: int
    components: int
    modelled: int

    @staticmethod
    def of(resources: Sequence[Registration]) -> Counts:
        cloud = sum(1 for r in resources if r.custom)
        modelled = sum(1 for r in resources if r.modelled_by)
        return Counts(len(resources), cloud, len(resources) - cloud, modelled)

    @staticmethod
    def of_plan(plan: dict[str, Any]) -> Counts:
        resources = plan["resources"]
        cloud = sum(1 for r in resources if r["custom"])
        modelled = sum(1 for r in resources if r["modelled"])
        return Counts(len(resources), cloud, len(resources) - cloud, modelled)

    def summary(self) -> str:
        modelled = f", {self.modelled} of them modelled children of awsx components" if self.modelled else ""
        return (
            f"{self.resources} to create ({self.cloud} cloud resources{modelled}; "
            f"{self.components} components incl. the stack)"
        )


def plan_document(run: ProgramRun, violations: Sequence[Violation]) -> dict[str, Any]:
    return {
        "stack": run.stack,
        "project": run.project,
        "resources": [
            {
                "urn": r.urn,
                "type": r.type,
                "name": r.name,
                "parent": r.parent,
                "custom": r.custom,
                "modelled": r.modelled_by,
                "inputs": r.inputs(),
            }
            for r in run.resources()
        ],
        "unmodelled": run.unmodelled,
        "outputs": run.outputs,
        "violations": [v.as_json() for v in violations],
    }


def write_outputs(out: Path, run: ProgramRun, violations: Sequence[Violation]) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    plan = out / "plan.json"
    plan.write_text(json.dumps(plan_document(run, violations), indent=2, sort_keys=False, default=str) + "\n")
    return [plan, *write_artifacts(out, run.registrations)]


def _file_name(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-") or "unnamed"


def _pretty(text: str) -> tuple[str, str]:
    """Return (content, extension) for a rendered document: JSON re-indented; JSON lines, YAML or text as is."""
    try:
        return json.dumps(json.loads(text), indent=2) + "\n", "json"
    except (json.JSONDecodeError, TypeError):
        pass
    lines = text.splitlines()
    try:
        if len(lines) > 1 and all(isinstance(json.loads(line), dict) for line in lines):
            return text, "jsonl"
    except json.JSONDecodeError:
        pass
    try:
        if isinstance(yaml.safe_load(text), dict):
            return text, "yaml"
    except yaml.YAMLError:
        pass
    return text, "txt"


def write_artifacts(out: Path, registrations: Sequence[Registration]) -> list[Path]:
    """Write what a reviewer reads (dashboards, SSM documents, SQL, bucket objects) beside plan.json."""
    written: list[Path] = []
    for registration in registrations:
        inputs = registration.inputs()
        document: Any = None
        stem = registration.name
        if registration.type == "aws:cloudwatch/dashboard:Dashboard":
            document, stem = inputs.get("dashboardBody"), f"dashboard-{registration.name}"
        elif registration.type == "aws:ssm/parameter:Parameter":
            document = inputs.get("insecureValue") or inputs.get("value")
            stem = f"ssm-{inputs.get('name', registration.name)}"
        elif registration.type == "aws:ecs/taskDefinition:TaskDefinition":
            written.extend(_write_container_configs(out, registration.name, inputs))
            continue
        elif registration.type == "aws:athena/namedQuery:NamedQuery":
            query = inputs.get("query")
            if isinstance(query, str):
                path = out / "sql" / f"{_file_name(inputs.get('name', registration.name))}.sql"
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text(query.rstrip() + "\n")
                written.append(path)
            continue
        elif registration.type in ("aws:s3/bucketObjectv2:BucketObjectv2", "aws:s3/bucketObject:BucketObject"):
            document, stem = inputs.get("content"), f"s3-{str(inputs.get('key', registration.name)).rsplit('.', 1)[0]}"
        if not isinstance(document, str) or document == "[secret]":
            continue
        content, extension = _pretty(document)
        path = out / f"{_file_name(stem)}.{extension}"
        path.write_text(content)
        written.append(path)
    return written


def _write_container_configs(out: Path, task_name: str, task_inputs: dict[str, Any]) -> list[Path]:
    """Collector configurations a task definition passes to its containers, as YAML files.

    Found the way the policy pack finds them, so the file shows what the rules checked.
    """
    written = []
    for index, stored in enumerate(collector_configs(TASK_DEFINITION_TYPE, task_inputs)):
        suffix = f"-{index + 1}" if index else ""
        path = out / f"collector-{_file_name(task_name)}{suffix}.yaml"
        path.write_text(yaml.safe_dump(dict(stored.document), sort_keys=False, width=1000))
        written.append(path)
    return written


# Printing ------------------------------------------------------------------------------------------


MODELLED_MARK = "(awsx, modelled)"


def render_tree(run: ProgramRun) -> list[str]:
    """The resource tree as `pulumi preview` draws it: type, name, nesting. Children of awsx components, which
    the mock runtime never sees, are drawn where the engine would put them and marked as modelled."""
    resources = run.resources()
    children: dict[str | None, list[Registration]] = {}
    for registration in resources:
        children.setdefault(registration.parent, []).append(registration)
    depth_of: dict[str, int] = {}
    for registration in resources:
        depth_of[registration.urn] = depth_of.get(str(registration.parent), -1) + 1
    width = max(len(r.type) + 3 * depth_of[r.urn] for r in resources) + 4
    lines = [f"     {'Type':<{width}}Name"]

    def walk(parent: str | None, prefix: str, depth: int) -> None:
        items = children.get(parent, [])
        for index, registration in enumerate(items):
            last = index == len(items) - 1
            branch = ("└─ " if last else "├─ ") if depth else ""
            label = f"{prefix}{branch}{registration.type}"
            mark = f"  {MODELLED_MARK}" if registration.modelled_by else ""
            lines.append(f" +   {label:<{width}}{registration.name}{mark}")
            walk(registration.urn, prefix + (("   " if last else "│  ") if depth else ""), depth + 1)

    walk(None, "", 0)
    return lines


def metric_series_lines(registrations: Sequence[Registration]) -> list[str]:
    """The CloudWatch metric series each collector configuration declares, estimated for the example organisation
    (the model the series benchmark checks), and what they cost a month."""
    lines: list[str] = []
    for registration in registrations:
        if registration.type != TASK_DEFINITION_TYPE:
            continue
        for stored in collector_configs(TASK_DEFINITION_TYPE, registration.inputs()):
            for name, exporter in (stored.document.get("exporters") or {}).items():
                if not str(name).startswith("awsemf"):
                    continue
                declared = {
                    selector.replace("$$", "$").strip("^$").replace("\\.", "."): declaration["dimensions"]
                    for declaration in exporter.get("metric_declarations") or []
                    for selector in declaration["metric_name_selectors"]
                }
                series = series_count(declared, EXAMPLE_ORGANISATION_VALUES)
                lines += [
                    "",
                    f"CloudWatch metric series ({registration.name}): {series:,}, about "
                    f"${series * usd('metric_month'):,.2f} a month, the same at any head count "
                    f"(estimated for {EXAMPLE_ORGANISATION}; collector.groupMetrics opts metrics in per team, "
                    "cost center or organisation)",
                ]
    return lines


def report(result: PreviewResult, out: Path) -> str:
    run = result.run
    lines = [f"Previewing stack '{run.stack}' of '{run.project}' offline (mocks; no cloud, no Pulumi CLI)", ""]
    if result.config.secret_keys:
        lines += [
            f"note: secure values replaced by placeholders (no passphrase or KMS key offline): "
            f"{', '.join(result.config.secret_keys)}",
            "",
        ]
    lines += render_tree(run)
    for warning in run.warnings:
        lines += ["", f"warning: {warning}"]
    for urn in run.unmodelled:
        lines += ["", f"warning: {urn} is a remote component whose children this preview neither sees nor models"]
    lines += ["", "Resources:", f"    + {Counts.of(run.resources()).summary()}"]
    if run.modelled:
        lines.append(f"      modelled from {AWSX_MODEL_SOURCE}: the mock runtime does not run awsx's own provider")
    if run.outputs:
        lines += ["", "Outputs:"]
        lines += [f"    {name:<24}: {json.dumps(value, default=str)}" for name, value in run.outputs.items()]
    lines += metric_series_lines(run.registrations)
    lines += ["", f"Policies ({PACK_NAME}):"]
    if not result.violations:
        lines.append("    no violations")
    for violation in result.violations:
        lines.append(f"    [{violation.enforcement_level}] {violation.policy}  ({violation.urn or 'stack'})")
        lines += [f"        {line}" for line in violation.message.splitlines()]
    verdict = "FAILED: mandatory violations" if result.mandatory else "passed"
    lines += [
        "",
        f"Policy verdict: {verdict} ({len(result.mandatory)} mandatory, "
        f"{len(result.violations) - len(result.mandatory)} advisory)",
        f"Wrote {out / 'plan.json'} and {len(result.artifacts) - 1} artifacts; {result.seconds:.2f} s",
    ]
    return "\n".join(lines)


# Command line --------------------------------------------------------------------------------------


def project_stacks(root: Path) -> list[str]:
    return sorted(p.name.removeprefix("Pulumi.").removesuffix(".yaml") for p in root.glob("Pulumi.*.yaml"))


def targets(args: argparse.Namespace) -> list[Target]:
    if args.program:
        program = Path(args.program)
        if not args.config:
            raise UnknownTargetError("--program needs --config FILE (a Pulumi.<stack>.yaml for that program)")
        if not (program / "Pulumi.yaml").is_file():
            raise UnknownTargetError(f"no Pulumi program in {program}: it has no Pulumi.yaml")
        if not Path(args.config).is_file():
            raise UnknownTargetError(f"no configuration file {args.config}")
        out = Path(args.out) if args.out else PROJECT_ROOT / "build" / program.resolve().name
        return [Target(program, Path(args.config), out, Path(args.policy_config) if args.policy_config else None)]
    stacks = [args.stack] if args.stack else project_stacks(PROJECT_ROOT)
    found: list[Target] = []
    for stack in stacks:
        config = PROJECT_ROOT / f"Pulumi.{stack}.yaml"
        if not config.is_file():
            raise UnknownTargetError(
                f"no stack '{stack}': {config.name} does not exist; stacks: " + ", ".join(project_stacks(PROJECT_ROOT))
            )
        policy_config = PROJECT_ROOT / "policies" / "config" / f"{stack}.json"
        if args.policy_config:
            policy_config = Path(args.policy_config)
        out = Path(args.out) if args.out and args.stack else PROJECT_ROOT / "build" / stack
        found.append(Target(PROJECT_ROOT, config, out, policy_config if policy_config.is_file() else None))
    return found


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--stack", help="one stack of this project (default: every Pulumi.<stack>.yaml)")
    parser.add_argument("--program", help="any Pulumi Python program directory")
    parser.add_argument("--config", help="the stack configuration file for --program")
    parser.add_argument("--out", help="output directory (default build/<stack> or build/<program dir name>)")
    parser.add_argument("--policy-config", help="policy pack configuration JSON (default policies/config/<stack>.json)")
    parser.add_argument("--quiet", action="store_true", help="print one summary line per stack instead of the report")
    args = parser.parse_args(argv)

    try:
        chosen = targets(args)
    except UnknownTargetError as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_UNKNOWN_TARGET
    statuses = [EXIT_OK]
    for target in chosen:
        try:
            result = preview(target)
        except Exception as error:  # noqa: BLE001 every failure is reported per stack, with its reason
            # A program's own RunError (such as invalid stack configuration) is a message for the user as is.
            expected = isinstance(error, (OfflineError, pulumi.RunError))
            message = str(error) if expected else f"{type(error).__name__}: {error}"
            print(f"error: preview of {target.config} failed:\n{message}", file=sys.stderr)
            invalid = isinstance(error, (InvalidStackConfig, StackFileError))
            statuses.append(EXIT_INVALID_CONFIG if invalid else EXIT_FAILED)
            continue
        if args.quiet:
            verdict = "FAILED: mandatory violations" if result.mandatory else "policies passed"
            print(f"{result.run.stack}: {Counts.of(result.run.resources()).summary()}; {verdict}; wrote {target.out}")
        else:
            print(report(result, target.out))
            print()
        if result.mandatory:
            statuses.append(EXIT_MANDATORY)
    return max(statuses)  # the worst: a program failure over bad configuration over a policy violation


if __name__ == "__main__":
    sys.exit(main())
