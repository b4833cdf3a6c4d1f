"""Run the real Claude Code client (`client/`, `make client`) for one `claude -p` session, on loopback only.

`run_session(spec)` starts the fake Anthropic API and the OTLP receiver, makes a temporary HOME and a
temporary git repository as the working directory, writes the session's settings, runs
`client/node_modules/.bin/claude -p <prompt>` with a bounded timeout (the whole process group is killed
on timeout or error), waits for its exports, and returns what the receiver captured and what the fake
billed.

How settings reach the client (found by running 2.1.328 with one value set in several places at once):

- `--settings <file>` (the "flag" source) is honoured for the `env` block and for `otelHeadersHelper`;
  it is what `settings_source="flag"` (the default) uses, and it writes nothing outside temporary folders.
- For `env` keys the order is: managed settings (`/etc/claude-code/managed-settings.json`) > `--settings`
  > project `.claude/settings.json` > user `~/.claude/settings.json` > the process environment. Each key is
  decided on its own: a managed file that sets only `OTEL_RESOURCE_ATTRIBUTES` leaves the exporter keys
  of the other sources in force.
- Project settings cannot switch telemetry on: `CLAUDE_CODE_ENABLE_TELEMETRY`, `OTEL_*_EXPORTER`,
  `OTEL_EXPORTER_OTLP_*` in `.claude/settings.json` are ignored (the debug log says so); user settings can.
- The managed file's folder is fixed in this build (`CLAUDE_CODE_MANAGED_SETTINGS_PATH` is not honoured),
  and `--managed-settings <json>` keeps only restrictive keys (an `env` block is dropped with a warning).
  `settings_source="managed"` therefore runs the client in a private mount namespace (`unshare -m`, root
  only) with an overlay on /etc whose upper layer holds `claude-code/managed-settings.json` in the
  session's temporary folder: the real /etc is never written.
- `otelHeadersHelper` is taken from the highest source that sets it; it runs before the first export and
  its JSON object becomes the export requests' headers. If it fails the client prints
  "otelHeadersHelper failed (OpenTelemetry export headers unavailable)" on stderr and exports nothing.

The environment is built from scratch (nothing is inherited but PATH): the API key is fake, the proxies
point at a closed loopback port with `NO_PROXY` for loopback, and the updater, error reporting and all
non-essential traffic are off, so the client's only connections are to the fake and the receiver.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import stat
import subprocess
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from tests.harness.fake_anthropic import Billed, FakeAnthropic, Received, Text, Tools, ToolUse, Turn
from tests.harness.otlp_receiver import CapturedRequest, OtlpReceiver

PROJECT_ROOT = Path(__file__).resolve().parents[2]
CLIENT_DIR = PROJECT_ROOT / "client"
CLAUDE_BIN = CLIENT_DIR / "node_modules" / ".bin" / "claude"
PACKAGE = "@anthropic-ai/claude-code"
# The pinned version (client/package.json): the fixtures live under tests/fixtures/claude-code/<version>/.
CLIENT_VERSION: str = json.loads((CLIENT_DIR / "package.json").read_text())["dependencies"][PACKAGE]

FAKE_API_KEY = "sk-ant-api03-fake-key-for-loopback-tests-only"
# Nothing listens on the discard port on loopback: anything that ignored NO_PROXY would fail, not leak.
CLOSED_PROXY = "http://127.0.0.1:9"
RECEIVER_PLACEHOLDER = "<otlp-receiver>"

RESOURCE_ATTRIBUTES = "department=engineering,team.id=platform,cost_center=cc-100"

# The managed-settings `env` block of a Path A rollout, pointed at the receiver (`{endpoint}`).
TELEMETRY_ENV: Mapping[str, str] = {
    "CLAUDE_CODE_ENABLE_TELEMETRY": "1",
    "OTEL_METRICS_EXPORTER": "otlp",
    "OTEL_LOGS_EXPORTER": "otlp",
    "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
    "OTEL_EXPORTER_OTLP_ENDPOINT": "{endpoint}",
    "OTEL_METRIC_EXPORT_INTERVAL": "1000",
    "OTEL_LOGS_EXPORT_INTERVAL": "500",
    "OTEL_RESOURCE_ATTRIBUTES": RESOURCE_ATTRIBUTES,
}

# What keeps the client quiet and local, besides the fake endpoints.
QUIET_ENV: Mapping[str, str] = {
    "DISABLE_AUTOUPDATER": "1",
    "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
    "DISABLE_ERROR_REPORTING": "1",
    "DISABLE_BUG_COMMAND": "1",
    "ENABLE_CLAUDEAI_MCP_SERVERS": "false",
    "CLAUDE_CODE_IDE_SKIP_AUTO_INSTALL": "1",
    "CLAUDE_CODE_DISABLE_TERMINAL_TITLE": "1",
}

DEFAULT_TOOLS = ("Read", "Write", "Edit", "Bash")

HEADERS_HELPER_OK = "#!/bin/sh\nprintf '%s\\n' '{\"Authorization\": \"Bearer test-token\"}'\n"
HEADERS_HELPER_FAILING = "#!/bin/sh\necho 'identity provider unreachable' >&2\nexit 3\n"

# A `gh` on PATH that "creates" a pull request: prints its URL, as the real one does, and logs its arguments.
GH_STUB = """#!/bin/sh
echo "$*" >> "${GH_STUB_LOG:-/dev/null}"
case "$1 $2" in
  "pr create") echo "https://github.com/example-org/example-repo/pull/42" ;;
  "auth status") echo "Logged in to github.com as example" ;;
  *) echo "gh stub: not implemented: $*" >&2; exit 1 ;;
esac
"""


class ClientMissingError(RuntimeError):
    pass


class SessionError(RuntimeError):
    pass


def require_client() -> Path:
    """The client binary at the pinned version, or an error that says to run `make client`."""
    if not CLAUDE_BIN.exists():
        raise ClientMissingError(
            f"the Claude Code client is not installed ({CLAUDE_BIN} is missing): run `make client` (npm ci in client/)"
        )
    installed = json.loads((CLIENT_DIR / "node_modules" / PACKAGE / "package.json").read_text())["version"]
    if installed != CLIENT_VERSION:
        raise ClientMissingError(
            f"client/node_modules holds Claude Code {installed}, client/package.json pins {CLIENT_VERSION}: "
            "run `make client`"
        )
    return CLAUDE_BIN


@dataclass(frozen=True)
class SessionSpec:
    """One `claude -p` session.

    `env` is laid over TELEMETRY_ENV in the settings' `env` block (`{endpoint}` is the receiver's base URL);
    `user_env` goes into the client's process environment (what a developer could set in their shell);
    `headers_helper` is the text of an `otelHeadersHelper` script (written to a temporary file);
    `repo_files` are committed in the working repository before the session.
    """

    prompt: str
    script: tuple[Turn, ...] = ()
    model: str | None = None
    env: Mapping[str, str] = field(default_factory=dict)
    user_env: Mapping[str, str] = field(default_factory=dict)
    headers_helper: str | None = None
    settings_source: Literal["flag", "managed"] = "flag"
    allowed_tools: tuple[str, ...] = DEFAULT_TOOLS
    repo_files: Mapping[str, str] = field(default_factory=dict)
    timeout: float = 60.0
    expect_exports: bool = True

    def settings(self, endpoint: str, helper_path: str | None) -> dict[str, Any]:
        """The managed-settings-like dict handed to the client."""
        env = {**TELEMETRY_ENV, **self.env}
        settings: dict[str, Any] = {"env": {key: value.replace("{endpoint}", endpoint) for key, value in env.items()}}
        if helper_path is not None:
            settings["otelHeadersHelper"] = helper_path
        return settings


@dataclass(frozen=True)
class SessionResult:
    spec: SessionSpec
    settings: dict[str, Any]  # as handed to the client, with the receiver's URL as RECEIVER_PLACEHOLDER
    returncode: int
    stdout: str
    stderr: str
    exports: list[CapturedRequest]
    rejected_exports: list[tuple[str, str]]
    ledger: list[Billed]
    api_requests: list[Received]
    gh_calls: list[str]
    git_log: list[str]
    duration_s: float

    def of(self, signal: str) -> list[CapturedRequest]:
        return [request for request in self.exports if request.signal == signal]


def _write_executable(path: Path, text: str) -> None:
    path.write_text(text)
    path.chmod(path.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)


def _git(repo: Path, env: Mapping[str, str], *args: str) -> str:
    done = subprocess.run(
        ["git", *args], cwd=repo, env=dict(env), capture_output=True, text=True, timeout=30, check=True
    )
    return done.stdout


def _client_env(root: Path, fake: FakeAnthropic, bin_dir: Path) -> dict[str, str]:
    home = root / "home"
    tmp = root / "tmp"
    for folder in (home / ".claude", home / ".config", tmp):
        folder.mkdir(parents=True, exist_ok=True)
    gitconfig = home / ".gitconfig"
    gitconfig.write_text(
        "[user]\n\tname = Test Developer\n\temail = dev@example.com\n[init]\n\tdefaultBranch = main\n"
        "[commit]\n\tgpgsign = false\n"
    )
    return {
        "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '/usr/bin:/bin')}",
        "HOME": str(home),
        "USER": "developer",
        "LANG": "C.UTF-8",
        "TERM": "dumb",
        "TMPDIR": str(tmp),
        "XDG_CONFIG_HOME": str(home / ".config"),
        "CLAUDE_CONFIG_DIR": str(home / ".claude"),
        "GIT_CONFIG_GLOBAL": str(gitconfig),
        "GIT_CONFIG_NOSYSTEM": "1",
        "GH_STUB_LOG": str(root / "gh-calls.log"),
        "ANTHROPIC_BASE_URL": fake.base_url,
        "ANTHROPIC_API_KEY": FAKE_API_KEY,
        "HTTP_PROXY": CLOSED_PROXY,
        "HTTPS_PROXY": CLOSED_PROXY,
        "http_proxy": CLOSED_PROXY,
        "https_proxy": CLOSED_PROXY,
        "NO_PROXY": "127.0.0.1,localhost",
        "no_proxy": "127.0.0.1,localhost",
        **QUIET_ENV,
    }


def _command(spec: SessionSpec, root: Path, settings: Mapping[str, Any]) -> list[str]:
    args = [str(require_client()), "-p", spec.prompt, "--output-format", "text"]
    if spec.model is not None:
        args += ["--model", spec.model]
    if spec.allowed_tools:
        args += ["--allowedTools", ",".join(spec.allowed_tools)]
    if spec.settings_source == "flag":
        settings_file = root / "settings.json"
        settings_file.write_text(json.dumps(settings, indent=2))
        return [*args, "--settings", str(settings_file)]
    # Managed settings: /etc/claude-code/managed-settings.json seen through an overlay in a private mount
    # namespace; the overlay's upper layer is in `root`, so the machine's /etc is never written.
    if shutil.which("unshare") is None or os.geteuid() != 0:
        raise SessionError('settings_source="managed" needs root and unshare(1) (a private mount namespace)')
    upper, work = root / "etc-upper", root / "etc-work"
    (upper / "claude-code").mkdir(parents=True)
    work.mkdir()
    (upper / "claude-code" / "managed-settings.json").write_text(json.dumps(settings, indent=2))
    mount = f'mount -t overlay overlay -o lowerdir=/etc,upperdir={upper},workdir={work} /etc && exec "$@"'
    return ["unshare", "--mount", "--propagation", "private", "sh", "-c", mount, "sh", *args]


def _quiet_for(receiver: OtlpReceiver, quiet: float, limit: float) -> None:
    """Wait until no export arrived for `quiet` seconds (at most `limit` seconds)."""
    deadline = time.monotonic() + limit
    seen = len(receiver.captured)
    last_change = time.monotonic()
    while time.monotonic() < deadline:
        time.sleep(0.05)
        now = len(receiver.captured)
        if now != seen:
            seen, last_change = now, time.monotonic()
        elif time.monotonic() - last_change >= quiet:
            return


def run_session(spec: SessionSpec) -> SessionResult:
    """Run one session against a fresh fake API and receiver; raise SessionError if it does not finish in time."""
    require_client()
    with (
        tempfile.TemporaryDirectory(prefix="claude-session-") as tmp,
        FakeAnthropic(spec.script) as fake,
        OtlpReceiver() as receiver,
    ):
        root = Path(tmp)
        bin_dir = root / "bin"
        bin_dir.mkdir()
        _write_executable(bin_dir / "gh", GH_STUB)
        env = {**_client_env(root, fake, bin_dir), **spec.user_env}
        repo = root / "repo"
        repo.mkdir()
        _git(repo, env, "init", "-q")
        fake.set_variables({"repo": str(repo)})
        for name, text in {"README.md": "# Example\n\nA repository for a test session.\n", **spec.repo_files}.items():
            (repo / name).parent.mkdir(parents=True, exist_ok=True)
            (repo / name).write_text(text)
        _git(repo, env, "add", "-A")
        _git(repo, env, "commit", "-q", "-m", "Initial commit")
        helper_path: str | None = None
        if spec.headers_helper is not None:
            helper = root / "otel-headers-helper.sh"
            _write_executable(helper, spec.headers_helper)
            helper_path = str(helper)
        settings = spec.settings(receiver.endpoint, helper_path)
        command = _command(spec, root, settings)
        started = time.monotonic()
        process = subprocess.Popen(
            command,
            cwd=repo,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
        try:
            stdout, stderr = process.communicate(timeout=spec.timeout)
        except subprocess.TimeoutExpired as timeout:
            os.killpg(process.pid, signal.SIGKILL)
            stdout, stderr = process.communicate(timeout=10)
            raise SessionError(
                f"claude did not finish within {spec.timeout:.0f} s; stdout: {stdout[-2000:]!r}; "
                f"stderr: {stderr[-2000:]!r}"
            ) from timeout
        except BaseException:
            os.killpg(process.pid, signal.SIGKILL)
            process.communicate(timeout=10)
            raise
        finally:
            # Whatever the client left running (a tool's child, a helper) goes with its process group.
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
        duration = time.monotonic() - started
        if spec.script and not fake.requests:
            raise SessionError(
                f"claude exited {process.returncode} without calling the API; stdout: {stdout[-2000:]!r}; "
                f"stderr: {stderr[-2000:]!r}"
            )
        if spec.expect_exports:
            receiver.wait_for(
                lambda captured: {"metrics", "logs"} <= {request.signal for request in captured}, timeout=10
            )
        _quiet_for(receiver, quiet=0.3, limit=5)
        gh_log = root / "gh-calls.log"
        public_settings = json.loads(json.dumps(settings).replace(receiver.endpoint, RECEIVER_PLACEHOLDER))
        if helper_path is not None:
            public_settings["otelHeadersHelper"] = "<otel-headers-helper.sh>"
        return SessionResult(
            spec=spec,
            settings=public_settings,
            returncode=process.returncode,
            stdout=stdout,
            stderr=stderr,
            exports=receiver.captured,
            rejected_exports=receiver.rejected,
            ledger=fake.ledger,
            api_requests=fake.requests,
            gh_calls=gh_log.read_text().splitlines() if gh_log.exists() else [],
            git_log=_git(repo, env, "log", "--format=%s").splitlines(),
            duration_s=duration,
        )


# The tool session: Read, Write, Edit, a Bash `git commit` and a Bash `gh pr create`, then a closing text.
# `{repo}` is the session's working repository (the fake fills it in).
TOOL_SCRIPT: tuple[Turn, ...] = (
    Tools((ToolUse("Read", {"file_path": "{repo}/README.md"}),), text="Let me look at the repository."),
    Tools(
        (
            ToolUse(
                "Write",
                {"file_path": "{repo}/hello.py", "content": 'def hello():\n    return "hello"\n\n\nprint(hello())\n'},
            ),
        )
    ),
    Tools(
        (
            ToolUse(
                "Edit",
                {
                    "file_path": "{repo}/hello.py",
                    "old_string": '    return "hello"\n',
                    "new_string": '    name = "world"\n    return f"hello {name}"\n',
                },
            ),
        )
    ),
    Tools((ToolUse("Bash", {"command": "git add hello.py && git commit -q -m 'Add hello'", "description": "Commit"}),)),
    Tools(
        (
            ToolUse(
                "Bash",
                {"command": "gh pr create --title 'Add hello' --body 'Adds hello.py'", "description": "Open a PR"},
            ),
        )
    ),
    Text("Committed hello.py and opened a pull request."),
)
