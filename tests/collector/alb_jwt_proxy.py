"""A loopback stand-in for the load balancer's HTTPS listener with a `jwt-validation` action, for the Path A
end-to-end tests (tests/collector/test_path_a_end_to_end.py).

What the Application Load Balancer does, as its documentation describes the action ("Verify JWTs using an
Application Load Balancer"; API `JwtValidationActionConfig`, `JwtValidationActionAdditionalClaim`):

- the token comes as `Authorization: Bearer <JWT>`; only RS256 is supported; the signature is checked
  against the keys the JWKS endpoint publishes;
- `iss` and `exp` are mandatory: `iss` must equal the configured issuer, and a token is refused from `exp` on;
  `nbf` and `iat` are checked when present (refused before `nbf`, and when issued in the future);
- each additional claim (up to 10; `aud` here) must be present and match one of the configured values, in the
  configured format: `single-string` (a string equal to a value), `string-array` (an array holding a value),
  `space-separated-values` (a string of space-separated words, one of them a value). The documentation does
  not say whether an array must hold one or all of the configured values; one is modelled;
- a valid request is forwarded to the target with the token as is; any other is refused (401) and never
  reaches a target. The load balancer adds `X-Forwarded-For`, `X-Forwarded-Proto` and `X-Forwarded-Port`.

The configuration is the listener action our stack renders (`JwtValidation.from_listener_action` reads the
camelCase inputs of `aws:lb/listener:Listener`), the JWKS document is the test's (the real endpoint is an
identity provider out of reach), and time is the `clock` given to the constructor: the proxy never reads the
wall clock. With several upstreams it stands in for one target group of several tasks: each signal's requests
(`/v1/metrics`, `/v1/logs`) go to the tasks in turn (round robin per path, so a signal reaches every task
whatever the interleaving of the client's metric and log exports). Nothing listens beyond 127.0.0.1.
"""

from __future__ import annotations

import http.client
import itertools
import json
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import urlsplit

import jwt
from jwt.exceptions import InvalidTokenError

from policies.https_endpoints import LISTENER_TYPES
from tests.loopback import LoopbackServer, StateServer

ALGORITHM = "RS256"
HTTPS_PORT = 443
CLAIM_FORMATS = ("single-string", "string-array", "space-separated-values")
HOP_BY_HOP = {"connection", "keep-alive", "proxy-connection", "transfer-encoding", "te", "trailer", "upgrade"}
FORWARDED_PROTO = "https"
FORWARDED_PORT = "443"


@dataclass(frozen=True)
class AdditionalClaim:
    name: str
    format: str
    values: tuple[str, ...]

    def matches(self, value: Any) -> bool:
        if self.format == "single-string":
            return isinstance(value, str) and value in self.values
        if self.format == "string-array":
            return (
                isinstance(value, list)
                and all(isinstance(item, str) for item in value)
                and any(item in self.values for item in value)
            )
        if self.format == "space-separated-values":
            return isinstance(value, str) and any(word in self.values for word in value.split(" "))
        raise ValueError(f"unknown claim format {self.format!r} (the ALB knows {', '.join(CLAIM_FORMATS)})")


@dataclass(frozen=True)
class JwtValidation:
    """The `jwt-validation` action's configuration."""

    issuer: str
    jwks_endpoint: str
    additional_claims: tuple[AdditionalClaim, ...] = ()

    @classmethod
    def from_listener_action(cls, action: Mapping[str, Any]) -> JwtValidation:
        """From a listener's default action as the stack declares it (`{"type": "jwt-validation", ...}`)."""
        assert action["type"] == "jwt-validation", action
        config = action["jwtValidation"]
        claims = tuple(
            AdditionalClaim(str(claim["name"]), str(claim["format"]), tuple(str(v) for v in claim["values"]))
            for claim in config.get("additionalClaims") or []
        )
        for claim in claims:
            assert claim.format in CLAIM_FORMATS, claim
            assert claim.name not in ("exp", "iss", "nbf", "iat"), f"the ALB validates {claim.name} itself"
        return cls(str(config["issuer"]), str(config["jwksEndpoint"]), claims)

    @classmethod
    def of_plan(cls, plan: Mapping[str, Any]) -> JwtValidation:
        """The `jwt-validation` action of the stack's HTTPS listener, from a preview's plan."""
        (https,) = [
            resource
            for resource in plan["resources"]
            if resource["type"] in LISTENER_TYPES and resource["inputs"].get("port") == HTTPS_PORT
        ]
        (action,) = [action for action in https["inputs"]["defaultActions"] if action["type"] == "jwt-validation"]
        return cls.from_listener_action(action)


class RefusedError(Exception):
    """Why the load balancer refuses a request (401)."""


def verify(authorization: str | None, validation: JwtValidation, jwks: Mapping[str, Any], now: float) -> dict[str, Any]:
    """The token's claims, or RefusedError: the checks of the jwt-validation action, in order."""
    if not authorization:
        raise RefusedError("no Authorization header")
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise RefusedError("not a bearer token")
    token = token.strip()
    try:
        header = jwt.get_unverified_header(token)
    except InvalidTokenError as error:
        raise RefusedError(f"not a JWT: {error}") from error
    if header.get("alg") != ALGORITHM:
        raise RefusedError(f"algorithm {header.get('alg')!r} (only {ALGORITHM} is supported)")
    candidates = [
        key
        for key in jwks.get("keys", [])
        if key.get("kty") == "RSA" and ("kid" not in header or key.get("kid") == header["kid"])
    ]
    if not candidates:
        raise RefusedError(f"no key {header.get('kid')!r} in the JWKS of {validation.jwks_endpoint}")
    payload: bytes | None = None
    for key in candidates:
        try:
            # Signature only (PyJWS): the claims are checked below against the proxy's clock.
            payload = jwt.PyJWS().decode(token, jwt.PyJWK(dict(key), ALGORITHM).key, algorithms=[ALGORITHM])
            break
        except InvalidTokenError:
            continue
    if payload is None:
        raise RefusedError("signature does not verify with the JWKS keys")
    try:
        claims = json.loads(payload)
    except ValueError as error:
        raise RefusedError("payload is not JSON") from error
    if not isinstance(claims, dict):
        raise RefusedError("payload is not a JSON object")
    if claims.get("iss") != validation.issuer:
        raise RefusedError(f"issuer {claims.get('iss')!r} is not {validation.issuer!r}")
    expires = claims.get("exp")
    if not isinstance(expires, int | float) or isinstance(expires, bool):
        raise RefusedError("no exp claim")
    if now >= expires:
        raise RefusedError("expired")
    not_before = claims.get("nbf")
    if not_before is not None and (not isinstance(not_before, int | float) or now < not_before):
        raise RefusedError("not yet valid (nbf)")
    issued = claims.get("iat")
    if issued is not None and (not isinstance(issued, int | float) or issued > now):
        raise RefusedError("issued in the future (iat)")
    for claim in validation.additional_claims:
        if claim.name not in claims:
            raise RefusedError(f"no {claim.name} claim")
        if not claim.matches(claims[claim.name]):
            raise RefusedError(
                f"{claim.name} {claims[claim.name]!r} does not match {list(claim.values)} ({claim.format})"
            )
    return claims


@dataclass(frozen=True)
class Handled:
    """One request the proxy answered: its path, the status it returned, why, which upstream got it (None:
    refused), the verified token's email (else subject), and the body and content type as the client sent them."""

    path: str
    status: int
    reason: str
    upstream: int | None
    subject: str | None = None
    content_type: str = ""
    body: bytes = field(default=b"", repr=False)


@dataclass
class _State:
    validation: JwtValidation
    jwks: Mapping[str, Any]
    upstreams: tuple[str, ...]
    clock: Callable[[], float]
    lock: threading.Lock = field(default_factory=threading.Lock)
    handled: list[Handled] = field(default_factory=list)
    turns: dict[str, Iterator[int]] = field(default_factory=dict)

    def next_upstream(self, path: str) -> int:
        with self.lock:
            turn = self.turns.setdefault(path, itertools.cycle(range(len(self.upstreams))))
            return next(turn)

    def record(self, handled: Handled) -> None:
        with self.lock:
            self.handled.append(handled)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: StateServer

    def log_message(self, format: str, *args: Any) -> None:
        return

    def _body(self) -> bytes:
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            chunks: list[bytes] = []
            while True:
                size = int(self.rfile.readline().split(b";", 1)[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _answer(self, status: int, body: bytes, headers: Sequence[tuple[str, str]] = ()) -> None:
        self.send_response(status)
        sent = {name.lower() for name, _ in headers}
        for name, value in headers:
            self.send_header(name, value)
        if "content-length" not in sent:
            self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _handle(self) -> None:
        state = self.server.state
        body = self._body()
        path = urlsplit(self.path).path
        content_type = self.headers.get("Content-Type") or ""
        try:
            claims = verify(self.headers.get("Authorization"), state.validation, state.jwks, state.clock())
        except RefusedError as refused:
            state.record(Handled(path, 401, str(refused), None, None, content_type, body))
            self._answer(401, b"401 Authorization Required", [("Content-Type", "text/plain")])
            return
        index = state.next_upstream(path)
        status, headers, answer = self._forward(state.upstreams[index], body)
        subject = claims.get("email") or claims.get("sub")
        state.record(Handled(path, status, "forwarded", index, str(subject) if subject else None, content_type, body))
        self._answer(status, answer, headers)

    def _forward(self, upstream: str, body: bytes) -> tuple[int, list[tuple[str, str]], bytes]:
        """The request as received (method, path, headers with Authorization, body), plus X-Forwarded-*."""
        target = urlsplit(upstream)
        headers = [(name, value) for name, value in self.headers.items() if name.lower() not in HOP_BY_HOP]
        headers = [(name, value) for name, value in headers if name.lower() != "content-length"]
        headers += [
            ("Content-Length", str(len(body))),
            ("X-Forwarded-For", self.client_address[0]),
            ("X-Forwarded-Proto", FORWARDED_PROTO),
            ("X-Forwarded-Port", FORWARDED_PORT),
        ]
        connection = http.client.HTTPConnection(target.hostname or "127.0.0.1", target.port, timeout=30)
        try:
            connection.putrequest(self.command, self.path, skip_host=True, skip_accept_encoding=True)
            for name, value in headers:
                connection.putheader(name, value)
            connection.endheaders(body)
            response = connection.getresponse()
            answer = response.read()
            kept = [
                (name, value)
                for name, value in response.getheaders()
                if name.lower() not in HOP_BY_HOP and name.lower() != "content-length"
            ]
            return response.status, kept, answer
        finally:
            connection.close()

    def do_POST(self) -> None:
        self._handle()

    def do_GET(self) -> None:
        self._handle()


class AlbJwtProxy(LoopbackServer[_State]):
    """The listener on a free loopback port; use as a context manager (`with AlbJwtProxy(...) as alb`)."""

    def __init__(
        self,
        validation: JwtValidation,
        jwks: Mapping[str, Any],
        upstreams: Sequence[str],
        clock: Callable[[], float],
    ) -> None:
        assert upstreams, "a target group needs at least one target"
        for upstream in upstreams:
            assert urlsplit(upstream).hostname == "127.0.0.1", f"loopback only: {upstream}"
        super().__init__(_Handler, _State(validation, jwks, tuple(upstreams), clock), "ALB JWT proxy")

    @property
    def endpoint(self) -> str:
        """The base URL for `OTEL_EXPORTER_OTLP_ENDPOINT` (plain http: the loopback has no TLS)."""
        return self.url

    @property
    def handled(self) -> list[Handled]:
        with self._state.lock:
            return list(self._state.handled)
