"""Lambda functions from lambda_src/: the deployment package (the function's folder, the shared code, and the
compiled libraries the code imports beyond the runtime) and the function itself with its role and log group.

The libraries come from the wheels uv.lock pins for the functions' platform (CPython 3.12 on arm64, Amazon
Linux 2023): the lock already records every platform's wheel and its hash. uv installs that wheel, checked
against the hash, into build/lambda-dependencies/ the first time a preview needs it (from the package index,
or uv's cache); after that the package is built offline, and every machine builds the same one.
"""

from __future__ import annotations

import functools
import json
import os
import shutil
import subprocess
import tempfile
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pulumi
import pulumi_aws as aws

from components.iam import service_trust_policy

PROJECT_ROOT = Path(__file__).resolve().parent.parent
LAMBDA_SRC = PROJECT_ROOT / "lambda_src"
SHARED_PACKAGES = ("common",)
LAMBDA_RUNTIME = "python3.12"
LAMBDA_ARCHITECTURE = "arm64"
LAMBDA_PYTHON = LAMBDA_RUNTIME.removeprefix("python")
LAMBDA_PYTHON_TAG = "cp" + LAMBDA_PYTHON.replace(".", "")
LAMBDA_GLIBC = (2, 34)
"""The C library of the runtime (Amazon Linux 2023): a manylinux wheel up to this glibc runs there."""
LAMBDA_PLATFORM = f"aarch64-manylinux_{LAMBDA_GLIBC[0]}_{LAMBDA_GLIBC[1]}"
"""uv's name for the functions' platform."""
LAMBDA_DEPENDENCIES = ("orjson",)
"""What lambda_src imports beyond the standard library and the runtime's own boto3 and botocore."""
RUNTIME_PROVIDED = ("boto3", "botocore")
LOCK_FILE = PROJECT_ROOT / "uv.lock"
DEPENDENCY_CACHE = PROJECT_ROOT / "build" / "lambda-dependencies"


@dataclass(frozen=True)
class LockedWheel:
    """A wheel of a locked package, as uv.lock records it."""

    name: str
    version: str
    filename: str
    sha256: str

    @property
    def tags(self) -> tuple[str, str, tuple[str, ...]]:
        """(python tag, ABI tag, platform tags) from the file name."""
        python, abi, platform = self.filename.removesuffix(".whl").split("-")[-3:]
        return python, abi, tuple(platform.split("."))


def runs_on_lambda(wheel: LockedWheel) -> bool:
    """Whether the wheel runs on the functions' runtime: CPython 3.12 (or the stable ABI, or pure Python) on
    a manylinux aarch64 no newer than the runtime's glibc."""
    python, abi, platforms = wheel.tags
    if python not in (LAMBDA_PYTHON_TAG, "py3") and not (abi == "abi3" and python.startswith("cp3")):
        return False
    if platforms == ("any",):
        return True
    for platform in platforms:
        if platform == "manylinux2014_aarch64":
            return True
        if platform.startswith("manylinux_") and platform.endswith("_aarch64"):
            major, minor = (int(part) for part in platform.split("_")[1:3])
            if (major, minor) <= LAMBDA_GLIBC:
                return True
    return False


@functools.cache
def locked_wheel(name: str, lock_file: Path = LOCK_FILE) -> LockedWheel:
    """The wheel of `name` that uv.lock pins for the functions' platform."""
    lock = tomllib.loads(lock_file.read_text())
    packages = [package for package in lock.get("package", []) if package.get("name") == name]
    if len(packages) != 1:
        raise ValueError(f"uv.lock pins {len(packages)} versions of {name}, not one")
    (package,) = packages
    wheels = [
        LockedWheel(name, package["version"], wheel["url"].rsplit("/", 1)[-1], wheel["hash"].removeprefix("sha256:"))
        for wheel in package.get("wheels", [])
    ]
    fitting = [wheel for wheel in wheels if runs_on_lambda(wheel)]
    if len(fitting) != 1:
        raise ValueError(f"uv.lock has {len(fitting)} wheels of {name} {package['version']} for {LAMBDA_PLATFORM}")
    return fitting[0]


def uv_command() -> str:
    """The uv that runs this program (`uv run` says which), else the Makefile's, else one on PATH."""
    for candidate in (os.environ.get("UV"), str(PROJECT_ROOT / ".tools" / "bin" / "uv"), shutil.which("uv")):
        if candidate and Path(candidate).is_file():
            return candidate
    raise RuntimeError("uv is needed to build the Lambda packages' dependencies: run `make setup`")


def dependency_folder(wheel: LockedWheel, cache: Path = DEPENDENCY_CACHE) -> Path:
    """The wheel installed for the functions' platform, once per version and hash: from uv's cache when it
    has it, else from the package index (a fresh machine's first preview)."""
    folder = cache / f"{wheel.name}-{wheel.version}-{LAMBDA_PYTHON_TAG}-{LAMBDA_PLATFORM}-{wheel.sha256[:12]}"
    if (folder / ".complete").is_file():
        return folder
    cache.mkdir(parents=True, exist_ok=True)
    environment = {name: value for name, value in os.environ.items() if name != "UV_COMPILE_BYTECODE"}
    with tempfile.TemporaryDirectory(dir=cache) as scratch:
        requirements = Path(scratch) / "requirements.txt"
        requirements.write_text(f"{wheel.name}=={wheel.version} --hash=sha256:{wheel.sha256}\n")
        target = Path(scratch) / "target"
        command = [
            uv_command(),
            "pip",
            "install",
            "--quiet",
            "--no-config",
            "--target",
            str(target),
            "--python-platform",
            LAMBDA_PLATFORM,
            "--python-version",
            LAMBDA_PYTHON,
            "--only-binary",
            ":all:",
            "--no-deps",
            "--require-hashes",
            "--requirement",
            str(requirements),
        ]
        for attempt in ([*command, "--offline"], command):  # uv's cache first, then the package index
            shutil.rmtree(target, ignore_errors=True)
            installed = subprocess.run(attempt, env=environment, capture_output=True, text=True, check=False)  # noqa: S603
            if installed.returncode == 0:
                break
        else:
            raise RuntimeError(f"could not install {wheel.filename} for the Lambda package: {installed.stderr}")
        (target / ".complete").write_text(wheel.filename + "\n")
        try:
            target.rename(folder)
        except OSError:
            if not (folder / ".complete").is_file():  # not another preview's install of the same wheel
                raise
    return folder


def dependency_files(names: Sequence[str] = LAMBDA_DEPENDENCIES) -> dict[str, Path]:
    """Archive path -> file of the locked dependencies, installed for the functions' platform."""
    files: dict[str, Path] = {}
    for name in names:
        folder = dependency_folder(locked_wheel(name))
        for path in sorted(folder.rglob("*")):
            relative = path.relative_to(folder)
            if path.is_file() and not any(part.startswith(".") or part == "__pycache__" for part in relative.parts):
                files[relative.as_posix()] = path
    return files


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


def main() -> None:
    """`python -m components.lambda_code`: install the functions' dependencies now (`make setup` does), so that
    previews and tests read them from build/lambda-dependencies/ and never need the package index."""
    files = dependency_files()
    print(
        f"Lambda dependencies for {LAMBDA_PLATFORM}: {len(files)} files in {DEPENDENCY_CACHE.relative_to(PROJECT_ROOT)}"
    )


def archive_files(function: str) -> dict[str, Path]:
    """Everything the function's package holds: its code and the dependencies the code imports."""
    return {**package_files(function), **dependency_files()}


def function_code(function: str) -> pulumi.AssetArchive:
    return pulumi.AssetArchive({name: pulumi.FileAsset(str(path)) for name, path in archive_files(function).items()})


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
        architectures=[LAMBDA_ARCHITECTURE],
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


if __name__ == "__main__":
    main()
