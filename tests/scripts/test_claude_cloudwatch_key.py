"""`scripts/claude-cloudwatch-key`, the Path B `otelHeadersHelper`, against Secrets Manager on a moto server.

The script runs as Claude Code runs it: an executable file with a throwaway home, AWS configuration and temporary
directory, and only the environment a developer's machine plus the managed settings give it. The AWS CLI (a dev
dependency) is pointed at moto on 127.0.0.1 with AWS_ENDPOINT_URL. Each failure must exit non-zero with one line
on stderr that says what is missing and what to do, print nothing on stdout, and never show the key.

Access denied and refused credentials come from moto's IAM simulation (`enable_iam_authentication`); messages
moto cannot produce (expired session credentials, CLI v2's SSO wording, KMS) come from a stand-in `aws` that
prints what AWS prints. One test runs the real Claude Code client (`make client`) with the script as its helper.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto.core.authorization import enable_iam_authentication

from components.claude_settings import INGEST_PROFILE_VARIABLE, INGEST_SECRET_VARIABLE
from offline.preview import PROJECT_ROOT
from tests.harness import claude_client as cc
from tests.harness.fake_anthropic import Text, Tools, ToolUse
from tests.lambda_src import conftest as lambda_fixtures

moto_endpoint = lambda_fixtures.moto_endpoint

SCRIPT = PROJECT_ROOT / "scripts" / "claude-cloudwatch-key"
PROGRAM = "claude-cloudwatch-key: "
REGION = "eu-west-1"
ACCOUNT = "123456789012"  # moto's account
KEY = "ACWKtest+Key/For=Loopback0123456789=="
THROWAWAY = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}  # moto's
EXIT_FAILURE, EXIT_CONFIG, EXIT_LOGIN = 1, 2, 3


def _aws_dir() -> str:
    found = shutil.which("aws", path=os.environ.get("PATH"))
    if found is None:
        pytest.fail("the AWS CLI is not on PATH: it is a dev dependency (`awscli` in pyproject.toml); run `make setup`")
    return str(Path(found).parent)


@dataclass
class Secrets:
    """Secrets Manager and IAM on the moto server, with the throwaway credentials moto accepts."""

    endpoint: str

    def client(self, service: str) -> Any:
        return boto3.client(service, region_name=REGION, endpoint_url=self.endpoint, **THROWAWAY)

    def create(self, value: str | bytes = KEY) -> str:
        """A team secret holding `value`; its full ARN (moto adds the random suffix AWS adds)."""
        name = f"ccm-test-ingest-{uuid.uuid4().hex[:12]}"
        content = {"SecretBinary": value} if isinstance(value, bytes) else {"SecretString": value}
        return str(self.client("secretsmanager").create_secret(Name=name, **content)["ARN"])


@pytest.fixture
def secrets(moto_endpoint: str) -> Secrets:
    return Secrets(moto_endpoint)


class Laptop:
    """A developer machine: its own home, AWS configuration and temporary directory, no AWS credentials yet."""

    def __init__(self, home: Path, endpoint: str) -> None:
        self.home = home
        self.tmp = home / "tmp"
        self.tmp.mkdir(parents=True)
        self.aws_config = home / ".aws" / "config"
        self.aws_credentials = home / ".aws" / "credentials"
        self.aws_config.parent.mkdir()
        self.aws_config.write_text("")
        self.aws_credentials.write_text("")
        self.env = {
            "PATH": f"{_aws_dir()}{os.pathsep}/usr/bin{os.pathsep}/bin",
            "HOME": str(home),
            "LANG": "C.UTF-8",
            "TMPDIR": str(self.tmp),
            "AWS_CONFIG_FILE": str(self.aws_config),
            "AWS_SHARED_CREDENTIALS_FILE": str(self.aws_credentials),
            "AWS_ENDPOINT_URL": endpoint,
            "AWS_EC2_METADATA_DISABLED": "true",
        }

    def add_profile(self, name: str, config: str = "", credentials: str = "") -> None:
        """A profile in ~/.aws/config (`config` lines) and, with `credentials` lines, in ~/.aws/credentials."""
        with self.aws_config.open("a") as file:
            file.write(f"[profile {name}]\nregion = {REGION}\n{config}")
        if credentials:
            with self.aws_credentials.open("a") as file:
                file.write(f"[{name}]\n{credentials}")

    def add_sso_profile(self, name: str) -> None:
        """An IAM Identity Center profile the developer has not signed in to (no token in ~/.aws/sso/cache)."""
        self.add_profile(
            name,
            f"sso_session = corp\nsso_account_id = {ACCOUNT}\nsso_role_name = ClaudeCodeIngest\n"
            f"[sso-session corp]\nsso_start_url = https://example.awsapps.com/start\nsso_region = {REGION}\n",
        )

    def run(self, env: dict[str, str | None], command: list[str] | None = None) -> subprocess.CompletedProcess[str]:
        """The script with the machine's environment plus `env` (a None value removes the variable)."""
        merged = {**self.env, **env}
        return subprocess.run(
            command or [str(SCRIPT)],
            env={key: value for key, value in merged.items() if value is not None},
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )


@pytest.fixture
def laptop(tmp_path: Path, moto_endpoint: str) -> Laptop:
    return Laptop(tmp_path / "home", moto_endpoint)


def with_credentials(arn: str, **more: str | None) -> dict[str, str | None]:
    """The managed settings' secret, and throwaway AWS credentials in the developer's environment."""
    return {
        INGEST_SECRET_VARIABLE: arn,
        "AWS_ACCESS_KEY_ID": THROWAWAY["aws_access_key_id"],
        "AWS_SECRET_ACCESS_KEY": THROWAWAY["aws_secret_access_key"],
        **more,
    }


def assert_header(result: subprocess.CompletedProcess[str], key: str = KEY) -> None:
    """Exactly one JSON object on stdout, the Authorization header with the key, and nothing on stderr."""
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    assert result.stdout == f'{{"Authorization": "Bearer {key}"}}\n'
    assert json.loads(result.stdout) == {"Authorization": f"Bearer {key}"}


def assert_failed(result: subprocess.CompletedProcess[str], status: int, *fragments: str) -> str:
    """Non-zero with `status`, nothing on stdout, one line on stderr naming the program and every fragment."""
    assert result.returncode == status, (result.returncode, result.stderr)
    assert result.stdout == ""
    assert result.stderr.startswith(PROGRAM) and result.stderr.endswith("\n"), result.stderr
    assert result.stderr.count("\n") == 1, result.stderr
    for fragment in fragments:
        assert fragment in result.stderr, (fragment, result.stderr)
    assert KEY not in result.stderr and "Bearer" not in result.stderr
    return result.stderr


def no_leftovers(laptop: Laptop) -> None:
    assert list(laptop.tmp.iterdir()) == [], "the script left its temporary file behind"


# --------------------------------------------------------------------------------------------------------- success


def test_prints_the_header_with_the_credentials_of_the_developers_environment(laptop: Laptop, secrets: Secrets) -> None:
    assert_header(laptop.run(with_credentials(secrets.create())))
    no_leftovers(laptop)


@pytest.mark.parametrize("shell", ["dash", "bash"])
def test_runs_under_the_posix_shells_of_linux_and_macos(laptop: Laptop, secrets: Secrets, shell: str) -> None:
    """/bin/sh is dash on Debian and Ubuntu, bash in POSIX mode on macOS."""
    found = shutil.which(shell)
    if found is None:
        pytest.fail(f"{shell} is not installed")
    command = [found, "--posix", str(SCRIPT)] if shell == "bash" else [found, str(SCRIPT)]
    assert_header(laptop.run(with_credentials(secrets.create()), command))
    assert_failed(laptop.run({}, command), EXIT_CONFIG, f"{INGEST_SECRET_VARIABLE} is not set")


def test_the_profile_named_by_the_managed_settings_is_used(laptop: Laptop, secrets: Secrets) -> None:
    laptop.add_profile("claude-ingest", credentials="aws_access_key_id = testing\naws_secret_access_key = testing\n")
    arn = secrets.create()
    assert_header(laptop.run({INGEST_SECRET_VARIABLE: arn, INGEST_PROFILE_VARIABLE: "claude-ingest"}))
    # It wins over AWS_PROFILE, which here names a profile this machine does not have.
    assert_header(
        laptop.run({INGEST_SECRET_VARIABLE: arn, INGEST_PROFILE_VARIABLE: "claude-ingest", "AWS_PROFILE": "other"})
    )


def test_aws_profile_is_the_fallback_and_an_empty_setting_counts_as_unset(laptop: Laptop, secrets: Secrets) -> None:
    laptop.add_profile("team", credentials="aws_access_key_id = testing\naws_secret_access_key = testing\n")
    arn = secrets.create()
    assert_header(laptop.run({INGEST_SECRET_VARIABLE: arn, "AWS_PROFILE": "team"}))
    assert_header(laptop.run({INGEST_SECRET_VARIABLE: arn, INGEST_PROFILE_VARIABLE: "", "AWS_PROFILE": "team"}))


def test_a_key_with_json_special_characters_is_refused_not_mangled(laptop: Laptop, secrets: Secrets) -> None:
    """What is printed is always one valid JSON object: a value that is not a Bearer token is refused."""
    for value in (f'{KEY}"', f"{KEY}\\", f"{KEY}\n", f"two {KEY}", f"{KEY}\t", f"{KEY}é", f"{KEY}\x7f"):
        result = laptop.run(with_credentials(secrets.create(value)))
        stderr = assert_failed(result, EXIT_FAILURE, "does not hold a bare API key", "store the key alone")
        assert value not in stderr


# ------------------------------------------------------------------------------------------------ the secret's ARN


def test_an_unset_secret_arn_says_it_is_not_set_and_where_it_comes_from(laptop: Laptop) -> None:
    assert_failed(
        laptop.run({}),
        EXIT_CONFIG,
        f"{INGEST_SECRET_VARIABLE} is not set: it comes from your team's Claude Code managed settings",
        "ask your Claude Code administrator",
        "ingestSecretArns",
    )


def test_an_empty_secret_arn_says_it_is_empty(laptop: Laptop) -> None:
    assert_failed(laptop.run({INGEST_SECRET_VARIABLE: ""}), EXIT_CONFIG, f"{INGEST_SECRET_VARIABLE} is set but empty")


@pytest.mark.parametrize(
    "value",
    [
        "ccm-prod-ingest-platform",
        f"arn:aws:ssm:{REGION}:{ACCOUNT}:parameter/claude-code",
        f"arn:aws:secretsmanager:{REGION}:1234:secret:team",
        f"arn:aws:secretsmanager:{REGION}:{ACCOUNT}:secret:",
        f"arn:aws:secretsmanager::{ACCOUNT}:secret:team",
        f"arn:aws:secretsmanager:{REGION}:{ACCOUNT}:secret:team ",
        f"arn:aws:secretsmanager:{REGION}:{ACCOUNT}:secret:team:extra",
        f"arn:other:secretsmanager:{REGION}:{ACCOUNT}:secret:team",
        f"arn:aws:secretsmanager:EU-WEST-1:{ACCOUNT}:secret:team",
        f"arn:aws:secretsmanager:{REGION}:{ACCOUNT}:secret:*",
    ],
)
def test_a_value_that_is_not_a_secret_arn_is_named(laptop: Laptop, value: str) -> None:
    assert_failed(
        laptop.run({INGEST_SECRET_VARIABLE: value}),
        EXIT_CONFIG,
        f"{PROGRAM}{INGEST_SECRET_VARIABLE} is '{value}', not a Secrets Manager secret ARN "
        "(arn:aws:secretsmanager:<region>:<account>:secret:<name>): it comes from your team's Claude Code managed "
        "settings",
    )


@pytest.mark.parametrize("value", [f"arn:aws:secretsmanager:{REGION}:{ACCOUNT}:secret:team\n", "a\rb", "\x1b[2J"])
def test_a_value_with_control_characters_is_refused_on_one_line(laptop: Laptop, value: str) -> None:
    assert_failed(
        laptop.run({INGEST_SECRET_VARIABLE: value}),
        EXIT_CONFIG,
        f"{PROGRAM}{INGEST_SECRET_VARIABLE} holds a line break or another control character, so it is not a "
        "Secrets Manager secret ARN",
    )
    assert_failed(
        laptop.run(
            {INGEST_SECRET_VARIABLE: f"arn:aws:secretsmanager:{REGION}:{ACCOUNT}:secret:x", "AWS_PROFILE": value}
        ),
        EXIT_CONFIG,
        f"{PROGRAM}AWS_PROFILE holds a line break or another control character: set it to the name of an AWS profile",
    )


@pytest.mark.parametrize("partition", ["aws", "aws-cn", "aws-us-gov"])
def test_every_partitions_arn_is_accepted(laptop: Laptop, partition: str) -> None:
    """The ARN check lets a well-formed ARN through to AWS (here a stand-in CLI that reports its arguments)."""
    stand_in = laptop.home / "stand-in"
    stand_in.mkdir()
    arguments = laptop.home / "arguments"
    (stand_in / "aws").write_text(f'#!/bin/sh\nprintf "%s\\n" "$@" > {arguments}\nprintf \'"{KEY}"\\n\'\n')
    (stand_in / "aws").chmod(0o755)
    arn = f"arn:{partition}:secretsmanager:cn-north-1:{ACCOUNT}:secret:team/a_b+c=d.e@f-AbC123"
    assert_header(laptop.run({INGEST_SECRET_VARIABLE: arn, "PATH": f"{stand_in}{os.pathsep}/usr/bin:/bin"}))
    assert arguments.read_text().splitlines()[:8] == [
        "secretsmanager",
        "get-secret-value",
        "--region",
        "cn-north-1",
        "--secret-id",
        arn,
        "--query",
        "SecretString",
    ]


# ------------------------------------------------------------------------------------------ the AWS CLI and profile


def test_a_missing_aws_cli_is_named_with_how_to_install_it(laptop: Laptop, secrets: Secrets) -> None:
    empty = laptop.home / "bin"
    empty.mkdir()
    assert_failed(
        laptop.run(with_credentials(secrets.create(), PATH=str(empty))),
        EXIT_CONFIG,
        f"the AWS CLI (aws) is not installed or not on PATH ({empty}): install AWS CLI v2",
    )


def test_a_profile_the_machine_does_not_have_is_named_with_where_it_came_from(laptop: Laptop, secrets: Secrets) -> None:
    arn = secrets.create()
    assert_failed(
        laptop.run({INGEST_SECRET_VARIABLE: arn, INGEST_PROFILE_VARIABLE: "claude-ingest"}),
        EXIT_CONFIG,
        f"the AWS profile 'claude-ingest' ({INGEST_PROFILE_VARIABLE}) is not in your AWS configuration "
        f"({laptop.aws_config}): create it (aws configure sso --profile claude-ingest)",
    )
    assert_failed(
        laptop.run({INGEST_SECRET_VARIABLE: arn, "AWS_PROFILE": "claude-ingest"}),
        EXIT_CONFIG,
        "the AWS profile 'claude-ingest' (AWS_PROFILE) is not in your AWS configuration",
    )


# ------------------------------------------------------------------------------------------------- AWS credentials


def test_no_credentials_and_no_profile_says_to_sign_in_and_choose_a_profile(laptop: Laptop, secrets: Secrets) -> None:
    assert_failed(
        laptop.run({INGEST_SECRET_VARIABLE: secrets.create()}),
        EXIT_LOGIN,
        f"no AWS credentials (no profile chosen: {INGEST_PROFILE_VARIABLE} and AWS_PROFILE are unset): sign in with "
        f"`aws sso login --profile <profile>, then set {INGEST_PROFILE_VARIABLE} (or AWS_PROFILE) to that profile`",
    )


def test_no_credentials_for_the_profile_says_to_sign_in_with_it(laptop: Laptop, secrets: Secrets) -> None:
    laptop.add_profile("claude-ingest")
    assert_failed(
        laptop.run({INGEST_SECRET_VARIABLE: secrets.create(), INGEST_PROFILE_VARIABLE: "claude-ingest"}),
        EXIT_LOGIN,
        f"no AWS credentials for the AWS profile claude-ingest ({INGEST_PROFILE_VARIABLE}): sign in with "
        "`aws sso login --profile claude-ingest` in a terminal",
    )


def test_an_sso_profile_without_a_session_says_to_run_aws_sso_login(laptop: Laptop, secrets: Secrets) -> None:
    laptop.add_sso_profile("claude-ingest")
    assert_failed(
        laptop.run({INGEST_SECRET_VARIABLE: secrets.create(), INGEST_PROFILE_VARIABLE: "claude-ingest"}),
        EXIT_LOGIN,
        f"{PROGRAM}your AWS SSO session has expired or you are not signed in: run "
        "`aws sso login --profile claude-ingest` in a terminal",
    )


@pytest.fixture
def iam_user(secrets: Secrets) -> dict[str, str]:
    """An IAM user of moto's account with no permission at all, and its access key."""
    iam = secrets.client("iam")
    name = f"developer-{uuid.uuid4().hex[:8]}"
    iam.create_user(UserName=name)
    key = iam.create_access_key(UserName=name)["AccessKey"]
    return {"name": name, "AWS_ACCESS_KEY_ID": key["AccessKeyId"], "AWS_SECRET_ACCESS_KEY": key["SecretAccessKey"]}


def test_access_denied_names_who_the_permission_and_the_secret(
    laptop: Laptop, secrets: Secrets, iam_user: dict[str, str]
) -> None:
    arn = secrets.create()
    keys = {name: value for name, value in iam_user.items() if name.startswith("AWS_")}
    with enable_iam_authentication():
        result = laptop.run({INGEST_SECRET_VARIABLE: arn, **keys})
    assert_failed(
        result,
        EXIT_FAILURE,
        f"access denied: arn:aws:iam::{ACCOUNT}:user/{iam_user['name']} may not call "
        f"secretsmanager:GetSecretValue on {arn}; ask your AWS administrator to allow it",
    )


def test_a_chosen_profile_wins_over_credentials_in_the_environment(
    laptop: Laptop, secrets: Secrets, iam_user: dict[str, str]
) -> None:
    """The profile is passed as --profile: stale keys in the developer's shell do not replace it."""
    iam = secrets.client("iam")
    iam.put_user_policy(
        UserName=iam_user["name"],
        PolicyName="read-team-secret",
        PolicyDocument=json.dumps(
            {
                "Version": "2012-10-17",
                "Statement": [{"Effect": "Allow", "Action": "secretsmanager:GetSecretValue", "Resource": "*"}],
            }
        ),
    )
    laptop.add_profile(
        "claude-ingest",
        credentials=f"aws_access_key_id = {iam_user['AWS_ACCESS_KEY_ID']}\n"
        f"aws_secret_access_key = {iam_user['AWS_SECRET_ACCESS_KEY']}\n",
    )
    stale = {"AWS_ACCESS_KEY_ID": "AKIAUNKNOWN000000000", "AWS_SECRET_ACCESS_KEY": "stale"}
    arn = secrets.create()
    with enable_iam_authentication():
        chosen = laptop.run({INGEST_SECRET_VARIABLE: arn, INGEST_PROFILE_VARIABLE: "claude-ingest", **stale})
        from_aws_profile = laptop.run({INGEST_SECRET_VARIABLE: arn, "AWS_PROFILE": "claude-ingest", **stale})
    assert_header(chosen)
    assert_header(from_aws_profile)


def test_credentials_aws_does_not_know_say_to_sign_in_again(
    laptop: Laptop, secrets: Secrets, iam_user: dict[str, str]
) -> None:
    arn = secrets.create()
    unknown = {"AWS_ACCESS_KEY_ID": "AKIAUNKNOWN000000000", "AWS_SECRET_ACCESS_KEY": "wrong"}
    wrong_secret = {"AWS_ACCESS_KEY_ID": iam_user["AWS_ACCESS_KEY_ID"], "AWS_SECRET_ACCESS_KEY": "wrong"}
    with enable_iam_authentication():
        results = [laptop.run({INGEST_SECRET_VARIABLE: arn, **keys}) for keys in (unknown, wrong_secret)]
    for result in results:
        assert_failed(result, EXIT_LOGIN, "AWS refused your AWS credentials (the default ones: no profile chosen)")


# ----------------------------------------------------------------------------------------------------- the secret


def test_a_secret_that_does_not_exist_is_named_with_its_region_and_account(laptop: Laptop) -> None:
    arn = f"arn:aws:secretsmanager:{REGION}:{ACCOUNT}:secret:ccm-prod-ingest-gone-AbCdEf"
    assert_failed(
        laptop.run(with_credentials(arn)),
        EXIT_FAILURE,
        f"the secret {arn} does not exist in region {REGION} (account {ACCOUNT}): your managed settings may be "
        "out of date",
    )


def test_a_secret_scheduled_for_deletion_says_so(laptop: Laptop, secrets: Secrets) -> None:
    arn = secrets.create()
    secrets.client("secretsmanager").delete_secret(SecretId=arn, RecoveryWindowInDays=7)
    assert_failed(laptop.run(with_credentials(arn)), EXIT_FAILURE, f"the secret {arn} is scheduled for deletion")


def test_an_empty_secret_says_it_holds_no_key(laptop: Laptop, secrets: Secrets) -> None:
    """Secrets Manager refuses an empty value: a secret is empty when it has no current version at all."""
    name = f"ccm-test-ingest-{uuid.uuid4().hex[:12]}"
    arn = str(secrets.client("secretsmanager").create_secret(Name=name)["ARN"])
    assert_failed(
        laptop.run(with_credentials(arn)),
        EXIT_FAILURE,
        f"the secret {arn} is empty: it has no current value (AWSCURRENT), so no CloudWatch API key; ask your "
        "Claude Code administrator to run `pulumi up`",
    )


def test_a_binary_secret_says_it_has_no_text(laptop: Laptop, secrets: Secrets) -> None:
    arn = secrets.create(KEY.encode())
    assert_failed(laptop.run(with_credentials(arn)), EXIT_FAILURE, f"the secret {arn} has no text value")


@pytest.fixture
def closed_port() -> int:
    """A loopback port nothing listens on."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_an_unreachable_secrets_manager_is_named(laptop: Laptop, closed_port: int) -> None:
    arn = f"arn:aws:secretsmanager:{REGION}:{ACCOUNT}:secret:team-AbCdEf"
    unreachable = f"http://127.0.0.1:{closed_port}"
    assert_failed(
        laptop.run(with_credentials(arn, AWS_ENDPOINT_URL=unreachable, AWS_MAX_ATTEMPTS="1")),
        EXIT_FAILURE,
        f"cannot reach AWS Secrets Manager in {REGION} (Could not connect to the endpoint URL: ",
        "check your network, VPN or proxy (HTTPS_PROXY)",
    )


# --------------------------------------------------------------- what AWS says that moto cannot, through a stand-in CLI

ARN = f"arn:aws:secretsmanager:{REGION}:{ACCOUNT}:secret:ccm-prod-ingest-platform-AbCdEf"
AWS_SAYS: list[tuple[str, str, int, str]] = [
    (
        "expired session credentials",
        "An error occurred (ExpiredTokenException) when calling the GetSecretValue operation: The security token "
        "included in the request is expired",
        EXIT_LOGIN,
        "your AWS credentials (profile claude-ingest) have expired: run `aws sso login --profile claude-ingest`",
    ),
    (
        "CLI v2, expired SSO token",
        "Error when retrieving token from sso: Token has expired and refresh failed",
        EXIT_LOGIN,
        "your AWS SSO session has expired or you are not signed in: run `aws sso login --profile claude-ingest`",
    ),
    (
        "CLI v2, expired SSO session",
        "The SSO session associated with this profile has expired or is otherwise invalid. To refresh this SSO "
        "session run aws sso login with the corresponding profile.",
        EXIT_LOGIN,
        "your AWS SSO session has expired or you are not signed in: run `aws sso login --profile claude-ingest`",
    ),
    (
        "access denied as AWS words it",
        "An error occurred (AccessDeniedException) when calling the GetSecretValue operation: User: "
        f"arn:aws:sts::{ACCOUNT}:assumed-role/AWSReservedSSO_Developer_0123/alice@example.com is not authorized to "
        f"perform: secretsmanager:GetSecretValue on resource: {ARN} because no identity-based policy allows the "
        "secretsmanager:GetSecretValue action",
        EXIT_FAILURE,
        f"access denied: arn:aws:sts::{ACCOUNT}:assumed-role/AWSReservedSSO_Developer_0123/alice@example.com may "
        f"not call secretsmanager:GetSecretValue on {ARN}",
    ),
    (
        "no permission on the secret's KMS key",
        "An error occurred (AccessDeniedException) when calling the GetSecretValue operation: Access to KMS is not "
        "allowed",
        EXIT_FAILURE,
        f"access denied to the KMS key of {ARN}: your AWS credentials (profile claude-ingest) may read the secret "
        "but not decrypt it; ask your AWS administrator for kms:Decrypt on that key",
    ),
    (
        "anything else",
        "An error occurred (ThrottlingException) when calling the GetSecretValue operation: Rate exceeded",
        EXIT_FAILURE,
        f"reading the secret {ARN} with your AWS credentials (profile claude-ingest) failed (AWS CLI exit 254): An "
        "error occurred (ThrottlingException) when calling the GetSecretValue operation: Rate exceeded",
    ),
]


@pytest.fixture
def stand_in_aws(laptop: Laptop) -> Callable[[str, int, str], dict[str, str | None]]:
    """An `aws` that writes `stdout` and `stderr` and exits with `status`; the environment that puts it first."""
    folder = laptop.home / "stand-in"
    folder.mkdir()
    (folder / "aws").write_text(
        '#!/bin/sh\nprintf "%s" "$STAND_IN_STDOUT"\nprintf "\\n%s\\n" "$STAND_IN_STDERR" >&2\nexit "$STAND_IN_STATUS"\n'
    )
    (folder / "aws").chmod(0o755)

    def environment(stderr: str, status: int = 254, stdout: str = "") -> dict[str, str | None]:
        return {
            INGEST_SECRET_VARIABLE: ARN,
            INGEST_PROFILE_VARIABLE: "claude-ingest",
            "PATH": f"{folder}{os.pathsep}/usr/bin{os.pathsep}/bin",
            "STAND_IN_STDOUT": stdout,
            "STAND_IN_STDERR": stderr,
            "STAND_IN_STATUS": str(status),
        }

    return environment


@pytest.mark.parametrize(
    ("aws_says", "status", "message"), [case[1:] for case in AWS_SAYS], ids=[case[0] for case in AWS_SAYS]
)
def test_what_aws_says_becomes_what_to_do(
    laptop: Laptop,
    stand_in_aws: Callable[[str, int, str], dict[str, str | None]],
    aws_says: str,
    status: int,
    message: str,
) -> None:
    assert_failed(laptop.run(stand_in_aws(aws_says, 254, "")), status, message)
    no_leftovers(laptop)


def test_a_blank_value_says_the_secret_is_empty(
    laptop: Laptop, stand_in_aws: Callable[[str, int, str], dict[str, str | None]]
) -> None:
    assert_failed(
        laptop.run(stand_in_aws("", 0, '""\n')), EXIT_FAILURE, f"the secret {ARN} is empty: its value is blank"
    )


def test_an_answer_that_is_not_the_secrets_text_is_not_printed(
    laptop: Laptop, stand_in_aws: Callable[[str, int, str], dict[str, str | None]]
) -> None:
    stderr = assert_failed(
        laptop.run(stand_in_aws("", 0, f'{{"SecretString": "{KEY}"}}\n')),
        EXIT_FAILURE,
        f"the AWS CLI answered something other than the secret's text for {ARN}",
    )
    assert "SecretString" not in stderr


# ------------------------------------------------------------------------------------- with the real Claude Code client


def test_the_real_client_sends_the_key_and_shows_what_to_do_when_signed_out(
    tmp_path: Path, secrets: Secrets, moto_endpoint: str
) -> None:
    """Claude Code 2.1.328 with the script as its otelHeadersHelper and the secret and profile in its settings'
    `env` block, as the managed settings give them: every export carries the key; with an SSO profile the
    developer has not signed in to, the client exports nothing and prints the script's message."""
    try:
        cc.require_client()
    except cc.ClientMissingError as missing:
        pytest.fail(f"{missing}. This test runs the real client: `make client` installs it.")
    machine = Laptop(tmp_path / "aws-home", moto_endpoint)
    machine.add_profile("claude-ingest", credentials="aws_access_key_id = testing\naws_secret_access_key = testing\n")
    machine.add_sso_profile("claude-ingest-sso")
    user_env = {
        name: machine.env[name]
        for name in ("AWS_CONFIG_FILE", "AWS_SHARED_CREDENTIALS_FILE", "AWS_ENDPOINT_URL", "AWS_EC2_METADATA_DISABLED")
    }
    arn = secrets.create()
    # The AWS CLI takes a second or two to start; a session of a few seconds lets the first export wait for it.
    spec = cc.SessionSpec(
        prompt="Wait a little, then say hello.",
        script=(Tools((ToolUse("Bash", {"command": "sleep 4"}),)), Text("Hello!")),
        env={INGEST_SECRET_VARIABLE: arn, INGEST_PROFILE_VARIABLE: "claude-ingest"},
        user_env=user_env,
        headers_helper=SCRIPT.read_text(),
    )

    session = cc.run_session(spec)

    assert session.exports
    assert {request.header("authorization") for request in session.exports} == {f"Bearer {KEY}"}

    signed_out = cc.run_session(
        cc.SessionSpec(
            prompt=spec.prompt,
            script=spec.script,
            env={INGEST_SECRET_VARIABLE: arn, INGEST_PROFILE_VARIABLE: "claude-ingest-sso"},
            user_env=user_env,
            headers_helper=spec.headers_helper,
            expect_exports=False,
        )
    )

    assert signed_out.returncode == 0 and signed_out.exports == []
    assert (
        "otelHeadersHelper failed (OpenTelemetry export headers unavailable): exited 3: claude-cloudwatch-key: "
        "your AWS SSO session has expired or you are not signed in: run `aws sso login --profile claude-ingest-sso`"
    ) in signed_out.stderr
    assert KEY not in signed_out.stderr + signed_out.stdout


# ------------------------------------------------------------------------------------------------------ the file


def test_the_script_is_an_executable_posix_shell_script() -> None:
    assert SCRIPT.read_text().startswith("#!/bin/sh\n")
    assert os.access(SCRIPT, os.X_OK)
    for shell in ("dash", "bash"):
        found = shutil.which(shell)
        assert found is not None, shell
        flags = ["--posix", "-n"] if shell == "bash" else ["-n"]
        done = subprocess.run([found, *flags, str(SCRIPT)], capture_output=True, text=True, timeout=30, check=False)
        assert done.returncode == 0, done.stderr
