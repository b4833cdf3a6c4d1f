"""`scripts/claude-otel-token`, the Path A `otelHeadersHelper`, end to end against a fake OpenID provider.

The script runs as Claude Code runs it: a subprocess of this Python, with a throwaway home and cache directory
and only the environment the managed settings give it. The token it prints is then checked the way the load
balancer's `jwt-validation` action checks it (RS256 signature against the provider's JWKS, `iss`, `exp`, `aud`)
and read with the collector's own identity rules, rendered from `components/collector_config.py` with the claim
names of `Pulumi.prod.yaml`. Time: the provider stamps tokens with the `clock` fixture; the script measures a
token's life as `exp - iat` from when it received it, so expiry is steered by the token lifetime and the
script's refresh skew, never by the wall clock.

One test runs the real Claude Code client (`make client`) with the script as its helper; another checks that
the guides in docs/identity-providers.md give configuration the stack and the script accept.
"""

from __future__ import annotations

import ast
import json
import os
import py_compile
import re
import runpy
import socket
import stat
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import timedelta
from pathlib import Path
from typing import IO, Any

import pytest
import yaml

from components.collector_config import IDENTITY_ATTRIBUTES, IdentityClaimNames
from infra.config import IdentityConfig
from offline.preview import PROJECT_ROOT, PreviewResult
from tests.clock import Clock
from tests.collector.alb_jwt_proxy import JwtValidation, verify
from tests.collector.running import exported, metrics_request, post, running_collector
from tests.harness import claude_client as cc
from tests.harness.fake_anthropic import Text
from tests.harness.live_pipeline import collector_config, plan_of
from tests.scripts.fake_oidc import ALICE, DeviceScript, FakeOidcProvider

SCRIPT = PROJECT_ROOT / "scripts" / "claude-otel-token"
CLIENT_ID = "0oa-claude-code-telemetry"
PROD_COLLECTOR: dict[str, Any] = yaml.safe_load((PROJECT_ROOT / "Pulumi.prod.yaml").read_text())["config"][
    "claude-code-monitoring:collector"
]
PROD_IDENTITY: dict[str, Any] = PROD_COLLECTOR["identity"]
PROD_HELPER = str(PROD_COLLECTOR["otelHeadersHelper"])
AUDIENCE = str(PROD_IDENTITY["audience"])
PROD_CLAIMS = IdentityClaimNames(
    email=PROD_IDENTITY["claims"]["email"],
    user_id=PROD_IDENTITY["claims"]["userId"],
    department=PROD_IDENTITY["claims"]["department"],
    team=PROD_IDENTITY["claims"]["team"],
    cost_center=PROD_IDENTITY["claims"]["costCenter"],
)
CODE_LINE = re.compile(r"enter the code (\S+)")
URL_LINE = re.compile(r"^(http://127\.0\.0\.1:\d+/authorize\?\S+)$", re.MULTILINE)
LOGIN_HINT = "claude-otel-token login"
SLOW_DOWN_SECONDS = 5.0  # RFC 8628 section 3.5: after `slow_down` the client polls 5 s less often


class Laptop:
    """A developer machine: its own home and cache, and the environment Claude Code's managed settings give."""

    def __init__(self, home: Path, provider: FakeOidcProvider) -> None:
        self.home = home
        self.env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": str(home),
            "XDG_CACHE_HOME": str(home / ".cache"),
            "LANG": "C.UTF-8",
            "CLAUDE_OTEL_MANAGED_SETTINGS": str(home / "no-managed-settings.json"),
            "CLAUDE_OTEL_ISSUER": provider.issuer,
            "CLAUDE_OTEL_CLIENT_ID": CLIENT_ID,
            "CLAUDE_OTEL_SCOPES": "openid offline_access",
            "CLAUDE_OTEL_AUDIENCE": AUDIENCE,
            "CLAUDE_OTEL_REQUIRED_CLAIMS": ",".join(PROD_CLAIMS.by_attribute().values()),
            "CLAUDE_OTEL_NO_BROWSER": "1",
        }
        # Under `make pytest-shifted-clock` the script runs under the same shifted clock as the tests.
        self.env.update({k: v for k, v in os.environ.items() if k.startswith("FAKETIME") or k == "LD_PRELOAD"})

    @property
    def cache_file(self) -> Path:
        return self.home / ".cache" / "claude-otel-token" / "tokens.json"

    def run(self, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, str(SCRIPT), *args],
            env={**self.env, **env},
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )

    def start(self, *args: str, **env: str) -> Running:
        process = subprocess.Popen(
            [sys.executable, str(SCRIPT), *args],
            env={**self.env, **env},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        return Running(process)


class Running:
    """A script still running: its stderr is read as it comes, so a test can act on the sign-in prompt."""

    def __init__(self, process: subprocess.Popen[str]) -> None:
        self.process = process
        self.lines: list[str] = []
        self.changed = threading.Condition()
        assert process.stderr is not None
        self.reader = threading.Thread(target=self._read, args=(process.stderr,), daemon=True)
        self.reader.start()

    def _read(self, stream: IO[str]) -> None:
        for line in stream:
            with self.changed:
                self.lines.append(line)
                self.changed.notify_all()
        with self.changed:
            self.lines.append("")  # end of stream
            self.changed.notify_all()

    def wait_for(self, pattern: re.Pattern[str], timeout: float = 15.0) -> re.Match[str]:
        found: list[re.Match[str]] = []

        def seen() -> bool:
            match = pattern.search("".join(self.lines))
            if match:
                found.append(match)
            return bool(match) or (bool(self.lines) and self.lines[-1] == "")

        with self.changed:
            self.changed.wait_for(seen, timeout)
        assert found, f"the script never printed {pattern.pattern!r}; stderr:\n{''.join(self.lines)}"
        return found[0]

    def finish(self, timeout: float = 20.0) -> subprocess.CompletedProcess[str]:
        assert self.process.stdout is not None
        stdout = self.process.stdout.read()
        returncode = self.process.wait(timeout=timeout)
        self.reader.join(timeout=5)
        return subprocess.CompletedProcess(self.process.args, returncode, stdout, "".join(self.lines))


@pytest.fixture
def provider(clock: Clock) -> Iterator[FakeOidcProvider]:
    with FakeOidcProvider(clock, client_id=CLIENT_ID, audience=AUDIENCE) as fake:
        yield fake


@pytest.fixture(scope="module")
def prod_ingest(prod_preview: PreviewResult, collector_binary: Path) -> ProdIngest:
    """Path A's ingest as the prod stack declares it: its HTTPS listener's token check and its collector."""
    plan = plan_of(prod_preview)
    return ProdIngest(JwtValidation.of_plan(plan), collector_binary, collector_config(prod_preview))


@pytest.fixture
def laptop(tmp_path: Path, provider: FakeOidcProvider) -> Laptop:
    return Laptop(tmp_path / "home", provider)


def device_login(laptop: Laptop, provider: FakeOidcProvider, **env: str) -> subprocess.CompletedProcess[str]:
    """`claude-otel-token login`: the developer reads the code on stderr and approves it in the browser."""
    running = laptop.start("login", **env)
    user_code = running.wait_for(CODE_LINE).group(1)
    provider.approve(user_code)
    return running.finish()


def header_token(result: subprocess.CompletedProcess[str]) -> str:
    """The token of the helper's stdout, which must be exactly one JSON object with one Authorization header."""
    assert result.returncode == 0, result.stderr
    assert result.stdout.endswith("\n") and result.stdout.count("\n") == 1, result.stdout
    document = json.loads(result.stdout)
    assert isinstance(document, dict) and list(document) == ["Authorization"]
    scheme, _, token = document["Authorization"].partition(" ")
    assert scheme == "Bearer" and token
    return token


@dataclass(frozen=True)
class ProdIngest:
    """The prod stack's token check (`alb_jwt_proxy.verify`, the model of the ALB's `jwt-validation` action used
    end to end on Path A) and the real collector on the configuration the stack deploys."""

    load_balancer: JwtValidation
    collector: Path
    config: dict[str, Any]

    def verify(self, token: str, provider: FakeOidcProvider, audience: str, now: float) -> dict[str, Any]:
        """The token's claims as the listener checks it, with the fake provider as issuer and JWKS, and
        `audience` as the `aud` value the stack would be configured with."""
        discovery = f"{provider.issuer}/.well-known/openid-configuration"
        with urllib.request.urlopen(discovery, timeout=5) as response:  # noqa: S310 - loopback
            jwks_uri = json.load(response)["jwks_uri"]
        with urllib.request.urlopen(jwks_uri, timeout=5) as response:  # noqa: S310 - loopback
            jwks = json.load(response)
        stack = self.load_balancer
        claims = tuple(replace(c, values=(audience,)) if c.name == "aud" else c for c in stack.additional_claims)
        assert [claim.name for claim in claims] == ["aud"], "the stack checks the audience, and only that"
        validation = replace(stack, issuer=provider.issuer, jwks_endpoint=jwks_uri, additional_claims=claims)
        return verify(f"Bearer {token}", validation, jwks, now)

    def identity(self, authorization: str, out: Path) -> dict[str, str]:
        """Identity attributes as the collector takes them from the header: a metrics export sent with it,
        whose resource claims to be someone else (`FORGED`)."""
        with running_collector(self.collector, self.config, out) as running:
            post(f"{running.otlp_http}/v1/metrics", metrics_request(), {"Authorization": authorization})
        resource, _ = exported(running.metrics_file, "metrics")
        return {attribute: resource[attribute] for attribute in IDENTITY_ATTRIBUTES}


def assert_no_secret_on_stderr(provider: FakeOidcProvider, *results: subprocess.CompletedProcess[str]) -> None:
    for result in results:
        for token in provider.issued_tokens:
            assert token not in result.stderr, "a token reached stderr"


def assert_failed(result: subprocess.CompletedProcess[str], status: int, *phrases: str) -> None:
    """A failure Claude Code can show: non-zero exit, nothing on stdout, the reason and the fix on stderr."""
    assert result.returncode == status, (result.returncode, result.stderr)
    assert result.stdout == ""
    assert "\nclaude-otel-token: " in "\n" + result.stderr, result.stderr
    for phrase in phrases:
        assert phrase in result.stderr, result.stderr


# ----------------------------------------------------------------------------------------------- the happy path


def test_device_login_then_the_helper_prints_a_token_the_load_balancer_and_collector_accept(
    laptop: Laptop,
    provider: FakeOidcProvider,
    clock: Clock,
    prod_ingest: ProdIngest,
    tmp_path: Path,
) -> None:
    provider.device_script = DeviceScript()
    running = laptop.start("login")
    user_code = running.wait_for(CODE_LINE).group(1)
    assert f"{provider.issuer}/activate" in "".join(running.lines)
    provider.wait_for_pending_polls(user_code, 2)  # the script polls while the developer is in the browser
    provider.approve(user_code)
    login = running.finish()
    assert login.returncode == 0, login.stderr
    assert login.stdout == ""
    assert "Signed in as alice@example.com" in login.stderr

    helper = laptop.run()
    token = header_token(helper)
    claims = prod_ingest.verify(token, provider, AUDIENCE, clock())
    assert claims["sub"] == ALICE["sub"]
    assert prod_ingest.identity(f"Bearer {token}", tmp_path) == {
        "user.email": "alice@example.com",
        "user.id": ALICE["sub"],
        "department": "research",
        "team.id": "platform",
        "cost_center": "CC-2040",
    }
    assert stat.S_IMODE(laptop.cache_file.stat().st_mode) == 0o600
    assert stat.S_IMODE(laptop.cache_file.parent.stat().st_mode) & 0o077 == 0
    assert_no_secret_on_stderr(provider, login, helper)


def test_a_second_run_uses_the_cache_without_contacting_the_provider(
    laptop: Laptop, provider: FakeOidcProvider
) -> None:
    provider.device_script = DeviceScript(auto_approve_after=1)
    assert device_login(laptop, provider).returncode == 0
    first = header_token(laptop.run())
    before = {event: provider.count(event) for event in ("discovery", "device_authorization", "token:refresh_token")}

    second = laptop.run()

    assert header_token(second) == first
    assert {event: provider.count(event) for event in before} == before
    assert provider.count("device_authorization") == 1


def test_an_expiring_token_is_refreshed_without_asking_the_user(
    laptop: Laptop, provider: FakeOidcProvider, clock: Clock, prod_ingest: ProdIngest
) -> None:
    provider.token_lifetime = 120  # less than the default refresh skew of 300 s: every run finds it due
    provider.device_script = DeviceScript(auto_approve_after=0)
    assert device_login(laptop, provider).returncode == 0
    old = json.loads(laptop.cache_file.read_text())["tokens"]["access_token"]["value"]
    clock.advance(timedelta(seconds=60))

    renewed = laptop.run()

    token = header_token(renewed)
    assert token != old
    assert provider.count("token:refresh_token") == 1
    assert provider.count("device_authorization") == 1  # the user was not asked again
    prod_ingest.verify(token, provider, AUDIENCE, clock())
    cached = json.loads(laptop.cache_file.read_text())
    assert cached["refresh_token"] == provider.issued_tokens[-1]  # the rotated refresh token replaced the old
    assert stat.S_IMODE(laptop.cache_file.stat().st_mode) == 0o600
    assert_no_secret_on_stderr(provider, renewed)


def test_a_lock_is_stale_by_its_holders_clock_not_the_files_mtime(
    tmp_path: Path, clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The file's mtime comes from another clock where the home directory is on a file server (or the wall clock
    is faked): a live holder's lock must not look stale for that, and a dead holder's must, by its own clock."""
    script = runpy.run_path(str(SCRIPT))
    cache_lock, stale_after = script["CacheLock"], script["LOCK_STALE_SECONDS"]
    monkeypatch.setattr(time, "time", clock)
    cache = tmp_path / "tokens.json"
    with cache_lock(cache) as held:
        os.utime(held.path, (0, 0))  # the file server's clock says 1970
        assert not cache_lock(cache).stale()
        clock.advance(timedelta(seconds=stale_after + 1))  # the holder took it that long ago and died
        assert cache_lock(cache).stale()
    assert not held.path.exists()
    held.path.write_text("")  # a holder that died before it wrote its time: the mtime is all there is
    os.utime(held.path, (0, 0))
    assert cache_lock(cache).stale()


def test_concurrent_sessions_refresh_once_and_share_the_token(laptop: Laptop, provider: FakeOidcProvider) -> None:
    """Several Claude Code sessions run the helper at once when the token is due: the cache lock lets one
    refresh while the others wait and read its result. Unlocked, all would send the same refresh token, and
    as the provider rotates refresh tokens, all but the first would be refused and sign the user out."""
    provider.token_lifetime = 120  # less than the default refresh skew of 300 s: the runs find it due
    provider.device_script = DeviceScript(auto_approve_after=0)
    assert device_login(laptop, provider).returncode == 0
    old = json.loads(laptop.cache_file.read_text())["tokens"]["access_token"]["value"]
    provider.token_lifetime = 3600  # the renewed token is fresh: a run that finds it needs no refresh of its own
    provider.refresh_delay = 0.5  # the refresh is still in flight when the other runs get to it

    runs = [laptop.start() for _ in range(3)]
    results = [run.finish() for run in runs]

    tokens = {header_token(result) for result in results}
    assert len(tokens) == 1 and old not in tokens, tokens
    assert provider.count("token:refresh_token") == 1
    assert json.loads(laptop.cache_file.read_text())["refresh_token"] == provider.issued_tokens[-1]
    assert_no_secret_on_stderr(provider, *results)


def test_a_provider_refusing_scopes_on_refresh_gets_the_request_without(
    laptop: Laptop, provider: FakeOidcProvider
) -> None:
    provider.token_lifetime = 120
    provider.refresh_refuses_scope = True
    provider.device_script = DeviceScript(auto_approve_after=0)
    assert device_login(laptop, provider).returncode == 0

    header_token(laptop.run())

    assert provider.count("token:refresh_token") == 2  # with the scopes (refused), then without


def test_a_fresh_token_is_not_refreshed(laptop: Laptop, provider: FakeOidcProvider) -> None:
    provider.token_lifetime = 3600
    provider.device_script = DeviceScript(auto_approve_after=0)
    assert device_login(laptop, provider).returncode == 0

    header_token(laptop.run(CLAUDE_OTEL_REFRESH_SKEW_SECONDS="300"))

    assert provider.count("token:refresh_token") == 0


def test_a_revoked_refresh_token_fails_with_the_login_hint(laptop: Laptop, provider: FakeOidcProvider) -> None:
    provider.token_lifetime = 60
    provider.device_script = DeviceScript(auto_approve_after=0)
    assert device_login(laptop, provider).returncode == 0
    provider.revoke_refresh_tokens()

    result = laptop.run()

    assert_failed(result, 3, "expired or was revoked", "invalid_grant", LOGIN_HINT)
    assert "refresh_token" not in json.loads(laptop.cache_file.read_text())
    again = laptop.run()  # and stays signed out, without asking the provider again
    assert_failed(again, 3, LOGIN_HINT)
    assert provider.count("token:refresh_token") == 1
    assert_no_secret_on_stderr(provider, result, again)


def test_the_real_claude_code_client_sends_the_header_and_reports_the_helpers_failure(
    laptop: Laptop,
    provider: FakeOidcProvider,
    clock: Clock,
    prod_ingest: ProdIngest,
    tmp_path: Path,
) -> None:
    """Claude Code 2.1.328 (`make client`) with the script as its otelHeadersHelper and the CLAUDE_OTEL_* keys in
    its settings' `env` block, as the managed settings give them: every export carries the header; signed out,
    the client exports nothing and prints the helper's stderr after "otelHeadersHelper failed"."""
    try:
        cc.require_client()
    except cc.ClientMissingError as missing:
        pytest.fail(f"{missing}. This test runs the real client: `make client` installs it.")
    provider.device_script = DeviceScript(auto_approve_after=0)
    assert device_login(laptop, provider).returncode == 0
    settings_env = {key: value for key, value in laptop.env.items() if key.startswith("CLAUDE_OTEL_")}
    settings_env["CLAUDE_OTEL_TOKEN_CACHE"] = str(laptop.cache_file)  # the client runs with its own HOME
    spec = cc.SessionSpec(
        prompt="Say hello.", script=(Text("Hello!"),), env=settings_env, headers_helper=SCRIPT.read_text()
    )

    session = cc.run_session(spec)

    assert {request.signal for request in session.exports} == {"metrics", "logs"}
    authorizations = {request.header("authorization") for request in session.exports}
    assert len(authorizations) == 1
    authorization = authorizations.pop()
    assert authorization is not None and authorization.startswith("Bearer ")
    prod_ingest.verify(authorization.removeprefix("Bearer "), provider, AUDIENCE, clock())
    identity = prod_ingest.identity(authorization, tmp_path)
    assert identity["user.email"] == "alice@example.com"

    assert laptop.run("logout").returncode == 0
    signed_out = cc.run_session(replace(spec, expect_exports=False))

    assert signed_out.returncode == 0 and signed_out.exports == []
    assert (
        "otelHeadersHelper failed (OpenTelemetry export headers unavailable): exited 3: "
        "claude-otel-token: not signed in: run `claude-otel-token login` in a terminal"
    ) in signed_out.stderr


# -------------------------------------------------------------------------------------------------- the browser flow


def test_browser_login_with_pkce_and_the_id_token_for_providers_without_device_flow(
    tmp_path: Path, clock: Clock, prod_ingest: ProdIngest
) -> None:
    """Amazon Cognito's shape: no device endpoint, authorization code + PKCE, the ID token (aud = client id)."""
    with FakeOidcProvider(clock, client_id=CLIENT_ID, audience=AUDIENCE, device_endpoint=False) as provider:
        laptop = Laptop(tmp_path / "home", provider)
        env = {
            "CLAUDE_OTEL_TOKEN": "id_token",
            "CLAUDE_OTEL_AUDIENCE": CLIENT_ID,
            "CLAUDE_OTEL_SCOPES": "openid email",
            "CLAUDE_OTEL_REDIRECT_URI": "http://127.0.0.1:0/callback",
        }
        running = laptop.start("login", **env)
        url = running.wait_for(URL_LINE).group(1)
        assert "code_challenge_method=S256" in url
        # The browser: the provider approves and redirects to the script's loopback listener.
        with urllib.request.urlopen(url, timeout=10) as browser:  # noqa: S310 - loopback
            assert b"Signed in" in browser.read()
        login = running.finish()
        assert login.returncode == 0, login.stderr
        assert provider.count("token:authorization_code") == 1

        helper = laptop.run(**env)

        token = header_token(helper)
        claims = prod_ingest.verify(token, provider, CLIENT_ID, clock())
        assert claims["email"] == "alice@example.com"
        assert_no_secret_on_stderr(provider, login, helper)


def test_browser_login_declined(tmp_path: Path, clock: Clock) -> None:
    with FakeOidcProvider(clock, client_id=CLIENT_ID, audience=AUDIENCE, device_endpoint=False) as provider:
        provider.authorize_outcome = "deny"
        laptop = Laptop(tmp_path / "home", provider)
        running = laptop.start("login", CLAUDE_OTEL_REDIRECT_URI="http://127.0.0.1:0/callback")
        url = running.wait_for(URL_LINE).group(1)
        with urllib.request.urlopen(url, timeout=10) as browser:  # noqa: S310 - loopback
            assert b"failed" in browser.read()
        assert_failed(running.finish(), 1, "declined", "access_denied", LOGIN_HINT)
        assert not laptop.cache_file.exists()


# --------------------------------------------------------------------------------------------- device flow failures


def test_slow_down_is_honoured_and_the_sign_in_completes(laptop: Laptop, provider: FakeOidcProvider) -> None:
    provider.device_script = DeviceScript(slow_down=1)

    result = device_login(laptop, provider)

    assert result.returncode == 0, result.stderr
    # slow_down, then (after RFC 8628's extra 5 s) the tokens: the client kept polling, no faster than asked
    assert provider.count("token:urn:ietf:params:oauth:grant-type:device_code") == 2
    first, second = provider.device_poll_times
    assert second - first >= SLOW_DOWN_SECONDS, f"polled again {second - first:.2f} s after slow_down"


def test_declined_sign_in(laptop: Laptop, provider: FakeOidcProvider) -> None:
    provider.device_script = DeviceScript(outcome="deny")

    result = laptop.run("login")

    assert_failed(result, 1, "declined", "access_denied", "claude-otel-token login` again", CLIENT_ID)
    assert not laptop.cache_file.exists()


def test_expired_sign_in_code(laptop: Laptop, provider: FakeOidcProvider) -> None:
    provider.device_script = DeviceScript(outcome="expire")

    result = laptop.run("login")

    assert_failed(result, 1, "expired before the sign-in was finished", "claude-otel-token login` again")


# -------------------------------------------------------------------------------------------- other failures


def test_the_helper_without_a_sign_in_asks_for_login_and_never_prompts(
    laptop: Laptop, provider: FakeOidcProvider
) -> None:
    result = laptop.run()

    assert_failed(result, 3, "not signed in", provider.issuer, LOGIN_HINT)
    assert provider.count("device_authorization") == 0 and provider.count("discovery") == 0


@pytest.mark.parametrize("variable", ["CLAUDE_OTEL_ISSUER", "CLAUDE_OTEL_CLIENT_ID"])
def test_missing_configuration_names_the_variable(laptop: Laptop, variable: str) -> None:
    del laptop.env[variable]

    for args in ((), ("login",)):
        assert_failed(laptop.run(*args), 2, f"{variable} is not set", "managed settings")


def test_configuration_from_the_managed_settings_file(laptop: Laptop, provider: FakeOidcProvider) -> None:
    """`login` runs in a plain terminal: it reads the same `env` block Claude Code gives the helper."""
    settings = laptop.home / "managed-settings.json"
    settings.parent.mkdir(parents=True, exist_ok=True)
    moved = {k: laptop.env.pop(k) for k in list(laptop.env) if k.startswith("CLAUDE_OTEL_") and "MANAGED" not in k}
    settings.write_text(json.dumps({"otelHeadersHelper": str(SCRIPT), "env": {**moved, "OTHER": "x"}}))
    laptop.env["CLAUDE_OTEL_MANAGED_SETTINGS"] = str(settings)
    provider.device_script = DeviceScript(auto_approve_after=0)

    assert device_login(laptop, provider).returncode == 0
    header_token(laptop.run())


def test_an_unreachable_provider_is_named(laptop: Laptop) -> None:
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    issuer = f"http://127.0.0.1:{port}"

    result = laptop.run("login", CLAUDE_OTEL_ISSUER=issuer)

    assert_failed(result, 1, f"cannot reach the identity provider at {issuer}/.well-known/openid-configuration")


def test_an_unreachable_provider_at_refresh_keeps_a_still_valid_token(
    laptop: Laptop, provider: FakeOidcProvider
) -> None:
    provider.token_lifetime = 120
    provider.device_script = DeviceScript(auto_approve_after=0)
    assert device_login(laptop, provider).returncode == 0
    cached = json.loads(laptop.cache_file.read_text())
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        cached["token_endpoint"] = f"http://127.0.0.1:{closed.getsockname()[1]}/token"
    laptop.cache_file.write_text(json.dumps(cached))

    result = laptop.run()  # 120 s left, less than the 300 s skew: a refresh is due but fails

    assert header_token(result) == cached["tokens"]["access_token"]["value"]
    assert "warning: cannot reach the identity provider" in result.stderr


def test_a_token_without_the_required_claims_names_them(tmp_path: Path, clock: Clock) -> None:
    user = {k: v for k, v in ALICE.items() if k not in ("team", "cost_center")}
    with FakeOidcProvider(clock, client_id=CLIENT_ID, audience=AUDIENCE, user=user) as provider:
        provider.device_script = DeviceScript(auto_approve_after=0)
        laptop = Laptop(tmp_path / "home", provider)

        result = device_login(laptop, provider)

        assert_failed(result, 1, "lacks the claims team, cost_center", "docs/identity-providers.md")
        assert not laptop.cache_file.exists()
        assert_no_secret_on_stderr(provider, result)


def test_a_token_for_another_audience_is_refused(laptop: Laptop, provider: FakeOidcProvider) -> None:
    provider.device_script = DeviceScript(auto_approve_after=0)

    result = device_login(laptop, provider, CLAUDE_OTEL_AUDIENCE="api://something-else")

    assert_failed(result, 1, f"audience is '{AUDIENCE}', not 'api://something-else'", "load balancer would refuse")


def test_status_and_logout_never_show_the_token(laptop: Laptop, provider: FakeOidcProvider) -> None:
    provider.device_script = DeviceScript(auto_approve_after=0)
    assert device_login(laptop, provider).returncode == 0

    status = laptop.run("status")
    assert status.returncode == 0, status.stderr
    assert "alice@example.com" in status.stdout and "expires in" in status.stdout
    assert not any(token in status.stdout + status.stderr for token in provider.issued_tokens)

    assert laptop.run("logout").returncode == 0
    assert not laptop.cache_file.exists()
    assert_failed(laptop.run(), 3, LOGIN_HINT)


# ------------------------------------------------------------------------------------------------ the file itself


def test_the_script_is_a_single_executable_standard_library_file(tmp_path: Path) -> None:
    source = SCRIPT.read_text()
    assert source.startswith("#!/usr/bin/env python3\n")
    assert os.access(SCRIPT, os.X_OK)
    tree = ast.parse(source, feature_version=(3, 9))  # runs on developer laptops with Python 3.9 or later
    imported = {
        alias.name.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names
    }
    imported |= {
        node.module.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.module
    }
    assert imported - {"__future__"} <= sys.stdlib_module_names, imported - sys.stdlib_module_names
    py_compile.compile(str(SCRIPT), cfile=str(tmp_path / "claude-otel-token.pyc"), doraise=True)


def test_the_script_is_ruff_clean() -> None:
    """`make lint` runs ruff on `*.py` files only; the script has no suffix, so it is checked here."""
    for command in (["check"], ["format", "--check"]):
        done = subprocess.run(
            [sys.executable, "-m", "ruff", *command, str(SCRIPT)],
            cwd=PROJECT_ROOT,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert done.returncode == 0, done.stdout + done.stderr


def test_the_identity_provider_guides_give_valid_configuration_for_the_stack_and_the_helper() -> None:
    """Each guide's `collector.identity` block passes the stack's validation, and its helper settings are
    settings the script knows, asking for exactly the claims that block maps."""
    guide = (PROJECT_ROOT / "docs" / "identity-providers.md").read_text()
    known = set(re.findall(r'^    "(CLAUDE_OTEL_[A-Z_]+)": ', SCRIPT.read_text(), re.MULTILINE))
    blocks = re.findall(r"```(yaml|json)\n(.*?)```", guide, re.DOTALL)
    pairs = [
        (yaml.safe_load(text), next(json_text for kind, json_text in blocks[index + 1 :] if kind == "json"))
        for index, (kind, text) in enumerate(blocks)
        if kind == "yaml" and "identity:" in text
    ]
    assert len(pairs) == 3  # Okta, Entra ID, Cognito
    for collector, settings_text in pairs:
        section = collector["claude-code-monitoring:collector"]
        placeholders = json.loads(re.sub(r"<([a-z-]+)>", r"\1", json.dumps(section)))
        identity = IdentityConfig.model_validate(placeholders["identity"])
        assert section["otelHeadersHelper"] == PROD_HELPER
        settings = json.loads("{" + settings_text + "}")
        assert set(settings) <= known, set(settings) - known
        assert settings["CLAUDE_OTEL_ISSUER"] == section["identity"]["issuer"]
        assert settings["CLAUDE_OTEL_AUDIENCE"] == section["identity"]["audience"]
        required = settings["CLAUDE_OTEL_REQUIRED_CLAIMS"].split(",")
        assert sorted(required) == sorted(identity.claims.model_dump().values())
