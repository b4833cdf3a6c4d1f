"""Lambda functions from lambda_src/: the deployment package (the function's folder and the shared code,
nothing else) and the function itself with its role and log group."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pulumi
import pulumi_aws as aws

from components.iam import service_trust_policy

LAMBDA_SRC = Path(__file__).resolve().parent.parent / "lambda_src"
SHARED_PACKAGES = ("common",)
LAMBDA_RUNTIME = "python3.12"


def package_files(function: str) -> dict[str, Path]:
    """Archive path -> file, so the handler imports as `lambda_src.<function>.handler`."""
    folders = [LAMBDA_SRC / function, *(LAMBDA_SRC / shared for shared in SHARED_PACKAGES)]
    if not (LAMBDA_SRC / function / "handler.py").is_file():
        raise ValueError(f"lambda_src/{function}/handler.py does not exist")
    files = {"lambda_src/__init__.py": LAMBDA_SRC / "__init__.py"}
    for folder in folders:
        for path in sorted(folder.glob("*.py")):
            files[f"lambda_src/{folder.name}/{path.name}"] = path
    return files


def function_code(function: str) -> pulumi.AssetArchive:
    return pulumi.AssetArchive({name: pulumi.FileAsset(str(path)) for name, path in package_files(function).items()})


def handler_name(function: str) -> str:
    return f"lambda_src.{function}.handler.handler"


def own_logs_statement(log_group_arn: str) -> dict[str, Any]:
    return {
        "Sid": "WriteOwnLogs",
        "Effect": "Allow",
        "Action": ["logs:CreateLogStream", "logs:PutLogEvents"],
        "Resource": f"{log_group_arn}:*",
    }


@dataclass(frozen=True)
class PythonFunction:
    """A function from lambda_src/ with its own role and log group; `allow` grants the role what it needs."""

    name: str
    function: aws.lambda_.Function
    role: aws.iam.Role
    log_group: aws.cloudwatch.LogGroup
    parent: pulumi.Resource

    def allow(self, statements: pulumi.Input[Sequence[Mapping[str, Any]]]) -> aws.iam.RolePolicy:
        """The role's policy: these statements, and writing the function's own log group."""
        return aws.iam.RolePolicy(
            self.name,
            role=self.role.id,
            policy=pulumi.Output.all(statements, self.log_group.arn).apply(
                lambda values: json.dumps(
                    {"Version": "2012-10-17", "Statement": [*values[0], own_logs_statement(values[1])]}
                )
            ),
            opts=pulumi.ResourceOptions(parent=self.parent),
        )

    def run_on_schedule(
        self, schedule_expression: str, description: str, tags: Mapping[str, str]
    ) -> aws.cloudwatch.EventRule:
        """An EventBridge rule that invokes the function on this schedule (`rate(...)` or `cron(...)`), and the
        permission for exactly that rule to invoke it."""
        child = pulumi.ResourceOptions(parent=self.parent)
        rule = aws.cloudwatch.EventRule(
            self.name, description=description, schedule_expression=schedule_expression, tags=dict(tags), opts=child
        )
        aws.lambda_.Permission(
            self.name,
            action="lambda:InvokeFunction",
            function=self.function.name,
            principal="events.amazonaws.com",
            source_arn=rule.arn,
            opts=child,
        )
        aws.cloudwatch.EventTarget(self.name, rule=rule.name, arn=self.function.arn, opts=child)
        return rule


def python_function(
    resource_name: str,
    *,
    folder: str,
    description: str,
    environment: Mapping[str, pulumi.Input[str]],
    account_id: pulumi.Input[str],
    parent: pulumi.Resource,
    timeout: int = 60,
    memory_size: int = 256,
    log_retention_days: int = 90,
    tags: Mapping[str, str] | None = None,
) -> PythonFunction:
    """Declare `lambda_src/<folder>` as a function named `resource_name` (arm64, LAMBDA_RUNTIME), writing to its
    own log group with a retention, under a role that only Lambda in this account may assume."""
    child = pulumi.ResourceOptions(parent=parent)
    log_group = aws.cloudwatch.LogGroup(
        resource_name,
        name=f"/aws/lambda/{resource_name}",
        retention_in_days=log_retention_days,
        tags=dict(tags or {}),
        opts=child,
    )
    role = aws.iam.Role(
        resource_name,
        assume_role_policy=pulumi.Output.from_input(account_id).apply(
            lambda account: json.dumps(service_trust_policy("lambda.amazonaws.com", account))
        ),
        tags=dict(tags or {}),
        opts=child,
    )
    function = aws.lambda_.Function(
        resource_name,
        name=resource_name,
        description=description,
        runtime=LAMBDA_RUNTIME,
        architectures=["arm64"],
        handler=handler_name(folder),
        code=function_code(folder),
        role=role.arn,
        timeout=timeout,
        memory_size=memory_size,
        environment={"variables": dict(environment)},
        logging_config={"log_format": "Text", "log_group": log_group.name},
        tags=dict(tags or {}),
        opts=pulumi.ResourceOptions(parent=parent, depends_on=[log_group]),
    )
    return PythonFunction(resource_name, function, role, log_group, parent)
