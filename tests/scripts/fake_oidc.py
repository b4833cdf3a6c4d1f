"""A fake OpenID provider on 127.0.0.1 for the `scripts/claude-otel-token` tests.

It serves what the helper uses of a real provider, by the standards the real ones follow:

- discovery (`/.well-known/openid-configuration`, OpenID Connect Discovery 1.0) and JWKS (`/jwks`);
- the device authorization endpoint (RFC 8628; `device_endpoint=False` leaves it out, as Amazon Cognito does);
- the authorization endpoint of the authorization code grant with PKCE (RFC 7636, `S256` only): it stands in
  for the user's browser session and approves (or declines, `authorize_outcome="deny"`) at once, redirecting to
  the client's loopback `redirect_uri`;
- the token endpoint with the `device_code`, `authorization_code` and `refresh_token` grants. Refresh tokens
  rotate: each refresh answers a new one and retires the old.

Tokens are RS256 JWTs signed with a test key whose public half is the JWKS: the access token's `aud` is the
configured audience (the collector's `identity.audience`), the ID token's the client id; both carry `iss`,
`sub`, `iat`, `exp` and the user's claims (email, department, team, cost_center). Time is the `clock` given to
the constructor (the test's `clock` fixture): `iat` is its reading, `exp` that plus `token_lifetime`. The
provider never reads the wall clock.

Scripted device behaviours (`DeviceScript`): a number of `slow_down` answers, then `authorization_pending`
until the test calls `approve(user_code)` (or, with `auto_approve_after`, until that many pending polls have
been answered), or the outcome `deny` (`access_denied`) or `expire` (`expired_token`).
`revoke_refresh_tokens()` revokes every refresh token issued so far (`invalid_grant` afterwards);
`refresh_refuses_scope` makes refresh requests that name scopes fail with `invalid_scope`; `refresh_delay`
holds each refresh request that long before it is answered, so that concurrent refreshes overlap.

`device_poll_times` are the `time.monotonic()` readings at which the device-code polls arrived: elapsed time
between polls, which the client paces with real sleeps, not a reading of the wall clock.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any, Literal
from urllib.parse import parse_qsl, urlencode, urlsplit

import jwt
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm

from tests.loopback import LoopbackServer

KEY_ID = "fake-oidc-test-key"
_PRIVATE_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)

ALICE: dict[str, Any] = {
    "sub": "00u1alice",
    "email": "alice@example.com",
    "department": "research",
    "team": "platform",
    "cost_center": "CC-2040",
}


@dataclass
class DeviceScript:
    """How the provider answers the polls of one device sign-in."""

    slow_down: int = 0
    """`slow_down` answers before any other."""
    auto_approve_after: int | None = None
    """Approve by itself after this many `authorization_pending` answers (None: wait for `approve`)."""
    outcome: Literal["approve", "deny", "expire"] = "approve"


@dataclass
class _DeviceGrant:
    device_code: str
    user_code: str
    client_id: str
    scope: str
    script: DeviceScript
    pending: int = 0
    slowed: int = 0
    approved: bool = False
    redeemed: bool = False


@dataclass
class _CodeGrant:
    client_id: str
    redirect_uri: str
    challenge: str
    scope: str


@dataclass
class _State:
    lock: threading.Condition = field(default_factory=threading.Condition)
    devices: dict[str, _DeviceGrant] = field(default_factory=dict)
    codes: dict[str, _CodeGrant] = field(default_factory=dict)
    refresh_tokens: dict[str, str] = field(default_factory=dict)  # refresh token -> scope
    counts: Counter[str] = field(default_factory=Counter)
    issued: list[str] = field(default_factory=list)
    device_polls: list[float] = field(default_factory=list)  # time.monotonic() of each device-code poll


class FakeOidcProvider(LoopbackServer["FakeOidcProvider"]):
    """Start with `with FakeOidcProvider(...) as provider:`; `provider.issuer` is its base URL."""

    def __init__(
        self,
        clock: Callable[[], float],
        *,
        client_id: str,
        audience: str,
        user: dict[str, Any] | None = None,
        token_lifetime: int = 3600,
        interval: float = 0.05,
        device_endpoint: bool = True,
    ) -> None:
        self.clock = clock
        self.client_id = client_id
        self.audience = audience
        self.user = dict(ALICE if user is None else user)
        self.token_lifetime = token_lifetime
        self.interval = interval
        self.device_endpoint = device_endpoint
        self.device_script = DeviceScript()
        self.authorize_outcome: Literal["approve", "deny"] = "approve"
        # Answer `invalid_scope` to a refresh request that names scopes, as some providers do.
        self.refresh_refuses_scope = False
        # Seconds each refresh request waits before it is answered (requests are served concurrently).
        self.refresh_delay = 0.0
        self._store = _State()
        super().__init__(_Handler, self, "fake-oidc")

    @property
    def issuer(self) -> str:
        return self.url

    # ---------------------------------------------------------------------------------------------- test hooks

    def approve(self, user_code: str) -> None:
        with self._store.lock:
            grants = [grant for grant in self._store.devices.values() if grant.user_code == user_code]
            assert grants, f"no device sign-in with the user code {user_code!r}"
            grants[0].approved = True
            self._store.lock.notify_all()

    def wait_for_pending_polls(self, user_code: str, count: int, timeout: float = 10.0) -> None:
        """Block until the client has been told `authorization_pending` `count` times for this code."""

        def reached() -> bool:
            return any(g.user_code == user_code and g.pending >= count for g in self._store.devices.values())

        with self._store.lock:
            assert self._store.lock.wait_for(reached, timeout), f"fewer than {count} polls for {user_code}"

    def revoke_refresh_tokens(self) -> None:
        with self._store.lock:
            self._store.refresh_tokens.clear()

    def count(self, event: str) -> int:
        """Requests answered, by `discovery`, `jwks`, `device_authorization`, `authorize`, `token:<grant>`."""
        with self._store.lock:
            return self._store.counts[event]

    @property
    def device_poll_times(self) -> list[float]:
        """When each device-code poll arrived, by `time.monotonic()`, in order."""
        with self._store.lock:
            return list(self._store.device_polls)

    @property
    def issued_tokens(self) -> list[str]:
        """Every access, ID and refresh token handed out."""
        with self._store.lock:
            return list(self._store.issued)

    def jwks(self) -> dict[str, Any]:
        public = RSAAlgorithm.to_jwk(_PRIVATE_KEY.public_key(), as_dict=True)
        return {"keys": [{**public, "kid": KEY_ID, "alg": "RS256", "use": "sig"}]}

    # ---------------------------------------------------------------------------------------------- endpoints

    def discovery(self) -> dict[str, Any]:
        grant_types = ["authorization_code", "refresh_token"]
        if self.device_endpoint:
            grant_types.append("urn:ietf:params:oauth:grant-type:device_code")
        document: dict[str, Any] = {
            "issuer": self.issuer,
            "authorization_endpoint": f"{self.issuer}/authorize",
            "token_endpoint": f"{self.issuer}/token",
            "jwks_uri": f"{self.issuer}/jwks",
            "response_types_supported": ["code"],
            "grant_types_supported": grant_types,
            "code_challenge_methods_supported": ["S256"],
            "id_token_signing_alg_values_supported": ["RS256"],
        }
        if self.device_endpoint:
            document["device_authorization_endpoint"] = f"{self.issuer}/device/authorize"
        return document

    def device_authorization(self, form: dict[str, str]) -> tuple[int, dict[str, Any]]:
        if not self.device_endpoint:
            return 404, {"error": "not_found"}
        if form.get("client_id") != self.client_id:
            return 401, {"error": "invalid_client"}
        grant = _DeviceGrant(
            device_code=secrets.token_urlsafe(32),
            user_code=f"{secrets.token_hex(2).upper()}-{secrets.token_hex(2).upper()}",
            client_id=self.client_id,
            scope=form.get("scope", ""),
            script=self.device_script,
        )
        with self._store.lock:
            self._store.devices[grant.device_code] = grant
        return 200, {
            "device_code": grant.device_code,
            "user_code": grant.user_code,
            "verification_uri": f"{self.issuer}/activate",
            "verification_uri_complete": f"{self.issuer}/activate?user_code={grant.user_code}",
            "expires_in": 600,
            "interval": self.interval,
        }

    def authorize(self, query: dict[str, str]) -> tuple[int, str]:
        """The browser's visit: answers with the redirect to the client (status, Location)."""
        redirect_uri = query.get("redirect_uri", "")
        target = urlsplit(redirect_uri)
        if query.get("client_id") != self.client_id or target.scheme != "http" or target.hostname != "127.0.0.1":
            return 400, ""
        if query.get("response_type") != "code" or query.get("code_challenge_method") != "S256":
            return 400, ""
        if self.authorize_outcome == "deny":
            answer = {"error": "access_denied", "error_description": "The user declined.", "state": query["state"]}
        else:
            code = secrets.token_urlsafe(24)
            with self._store.lock:
                self._store.codes[code] = _CodeGrant(
                    self.client_id, redirect_uri, query["code_challenge"], query.get("scope", "")
                )
            answer = {"code": code, "state": query["state"]}
        return 302, f"{redirect_uri}?{urlencode(answer)}"

    def token(self, form: dict[str, str]) -> tuple[int, dict[str, Any]]:
        if form.get("client_id") != self.client_id:
            return 401, {"error": "invalid_client"}
        grant_type = form.get("grant_type", "")
        if grant_type == "refresh_token" and self.refresh_delay:
            time.sleep(self.refresh_delay)  # outside the lock: concurrent refreshes wait side by side
        with self._store.lock:
            if grant_type == "urn:ietf:params:oauth:grant-type:device_code":
                return self._device_token(form.get("device_code", ""))
            if grant_type == "authorization_code":
                return self._code_token(form)
            if grant_type == "refresh_token":
                if self.refresh_refuses_scope and "scope" in form:
                    return 400, {"error": "invalid_scope", "error_description": "No scope on refresh."}
                scope = self._store.refresh_tokens.pop(form.get("refresh_token", ""), None)
                if scope is None:
                    return 400, {"error": "invalid_grant", "error_description": "The refresh token is revoked."}
                return 200, self._tokens(scope)
        return 400, {"error": "unsupported_grant_type"}

    def _device_token(self, device_code: str) -> tuple[int, dict[str, Any]]:
        self._store.device_polls.append(time.monotonic())
        grant = self._store.devices.get(device_code)
        if grant is None or grant.redeemed:
            return 400, {"error": "invalid_grant"}
        script = grant.script
        if grant.slowed < script.slow_down:
            grant.slowed += 1
            return 400, {"error": "slow_down"}
        if script.outcome == "deny":
            return 400, {"error": "access_denied", "error_description": "The user denied the request."}
        if script.outcome == "expire":
            return 400, {"error": "expired_token", "error_description": "The device code expired."}
        if script.auto_approve_after is not None and grant.pending >= script.auto_approve_after:
            grant.approved = True
        if not grant.approved:
            grant.pending += 1
            self._store.lock.notify_all()
            return 400, {"error": "authorization_pending"}
        grant.redeemed = True
        return 200, self._tokens(grant.scope)

    def _code_token(self, form: dict[str, str]) -> tuple[int, dict[str, Any]]:
        grant = self._store.codes.pop(form.get("code", ""), None)
        if grant is None or grant.redirect_uri != form.get("redirect_uri"):
            return 400, {"error": "invalid_grant"}
        verifier = form.get("code_verifier", "")
        challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
        if challenge != grant.challenge:
            return 400, {"error": "invalid_grant", "error_description": "PKCE verification failed."}
        return 200, self._tokens(grant.scope, refresh=True)

    def _tokens(self, scope: str, refresh: bool = False) -> dict[str, Any]:
        issued_at = int(self.clock())
        common = {"iss": self.issuer, "iat": issued_at, "exp": issued_at + self.token_lifetime, **self.user}
        access = self._sign({**common, "aud": self.audience, "cid": self.client_id, "scp": scope.split()})
        answer: dict[str, Any] = {
            "token_type": "Bearer",
            "expires_in": self.token_lifetime,
            "access_token": access,
            "scope": scope,
        }
        issued = [access]
        if "openid" in scope.split():
            answer["id_token"] = self._sign({**common, "aud": self.client_id})
            issued.append(answer["id_token"])
        if refresh or "offline_access" in scope.split():
            answer["refresh_token"] = secrets.token_urlsafe(32)
            self._store.refresh_tokens[answer["refresh_token"]] = scope
            issued.append(answer["refresh_token"])
        self._store.issued.extend(issued)
        return answer

    def _sign(self, claims: dict[str, Any]) -> str:
        return jwt.encode(claims, _PRIVATE_KEY, algorithm="RS256", headers={"kid": KEY_ID})

    def count_request(self, event: str) -> None:
        with self._store.lock:
            self._store.counts[event] += 1


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        return

    @property
    def provider(self) -> FakeOidcProvider:
        return self.server.state  # type: ignore[attr-defined, no-any-return]

    def _json(self, status: int, document: dict[str, Any]) -> None:
        body = json.dumps(document).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        parts = urlsplit(self.path)
        provider = self.provider
        if parts.path == "/.well-known/openid-configuration":
            provider.count_request("discovery")
            self._json(200, provider.discovery())
        elif parts.path == "/jwks":
            provider.count_request("jwks")
            self._json(200, provider.jwks())
        elif parts.path == "/authorize":
            provider.count_request("authorize")
            status, location = provider.authorize(dict(parse_qsl(parts.query)))
            self.send_response(status)
            if location:
                self.send_header("Location", location)
            self.send_header("Content-Length", "0")
            self.end_headers()
        else:
            self._json(404, {"error": "not_found"})

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        form = dict(parse_qsl(self.rfile.read(length).decode()))
        provider = self.provider
        path = urlsplit(self.path).path
        if path == "/device/authorize":
            provider.count_request("device_authorization")
            self._json(*provider.device_authorization(form))
        elif path == "/token":
            provider.count_request(f"token:{form.get('grant_type', '')}")
            self._json(*provider.token(form))
        else:
            self._json(404, {"error": "not_found"})
