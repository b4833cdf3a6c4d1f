"""A fake Anthropic Messages API on 127.0.0.1 that answers from a script and bills every answer.

`POST /v1/messages` answers streaming requests (`"stream": true`) with the real server-sent event sequence
(message_start, ping, content_block_start, content_block_delta..., content_block_stop, message_delta,
message_stop) and other requests with one JSON message; the answer echoes the requested `model` and carries
a realistic `usage` (input_tokens, output_tokens, cache_read_input_tokens, cache_creation_input_tokens).
Every billed answer is appended to `ledger` (model and the four counts), so a test can compare the client's
telemetry with what it was billed, exactly. `POST /v1/messages/count_tokens` answers an estimate (not billed).
Anything else is logged in `requests` and answered 200 (HEAD, GET /) or 404 with an Anthropic error body.

Which requests follow the script: the client's main loop sends its tools (Read, Bash, ...) with every
request; its side requests (a title, a summary, ...) send none. A script is a list of turns, consumed one
per main-loop request: `Text` ends the turn, `Tools` asks the client to run tool calls (the next main-loop
request carries their results), `ApiError` answers one request with an HTTP error (the client's retry then
gets the next turn). Once the script is spent, main-loop requests get a short closing `Text`; side requests
always get a short text.
"""

from __future__ import annotations

import itertools
import json
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any, Literal
from urllib.parse import urlsplit

from tests.loopback import LoopbackServer, StateServer

CLOSING_TEXT = "Done."
SIDE_TEXT = "OK"


@dataclass(frozen=True)
class Text:
    """An assistant turn that only says something and ends the turn (`stop_reason: end_turn`)."""

    text: str


@dataclass(frozen=True)
class ToolUse:
    """One tool call: the client's tool name (Read, Write, Edit, Bash, ...) and its input."""

    name: str
    input: Mapping[str, Any]


@dataclass(frozen=True)
class Tools:
    """An assistant turn that calls tools (`stop_reason: tool_use`), after an optional text block."""

    calls: tuple[ToolUse, ...]
    text: str = ""


@dataclass(frozen=True)
class ApiError:
    """One request answered with an HTTP error, as the real API shapes it.

    `retry_after_ms` is sent as `retry-after-ms` (the client's retry waits that long instead of backing off).
    """

    status: int
    error_type: str
    message: str
    retry_after_ms: int | None = 100


Turn = Text | Tools | ApiError


@dataclass(frozen=True)
class Usage:
    input_tokens: int
    output_tokens: int
    cache_read_input_tokens: int
    cache_creation_input_tokens: int

    def as_dict(self) -> dict[str, int]:
        return {
            "input_tokens": self.input_tokens,
            "output_tokens": self.output_tokens,
            "cache_read_input_tokens": self.cache_read_input_tokens,
            "cache_creation_input_tokens": self.cache_creation_input_tokens,
        }


def default_usage(seq: int) -> Usage:
    """Distinct, deterministic counts per billed answer, shaped like real traffic (cache reads dominate)."""
    return Usage(
        input_tokens=3 + 7 * seq,
        output_tokens=20 + 13 * seq,
        cache_read_input_tokens=15_000 + 1_234 * seq,
        cache_creation_input_tokens=1_000 + 211 * seq,
    )


@dataclass(frozen=True)
class Billed:
    """One answer the fake billed: which request (its `request-id` header), which model, the four token counts."""

    seq: int
    request_id: str
    role: Literal["main", "side"]
    model: str
    stream: bool
    usage: Usage
    stop_reason: str

    def as_dict(self) -> dict[str, Any]:
        return {
            "seq": self.seq,
            "request_id": self.request_id,
            "role": self.role,
            "model": self.model,
            "stream": self.stream,
            "stop_reason": self.stop_reason,
            **self.usage.as_dict(),
        }


@dataclass(frozen=True)
class Received:
    """One request the fake received, and the status it answered."""

    method: str
    path: str
    headers: tuple[tuple[str, str], ...]
    body: Any
    status: int
    role: Literal["main", "side", "other"]


@dataclass
class _State:
    script: list[Turn]
    usage: Callable[[int], Usage]
    variables: dict[str, str] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)
    requests: list[Received] = field(default_factory=list)
    ledger: list[Billed] = field(default_factory=list)
    errors: list[ApiError] = field(default_factory=list)
    request_ids: Iterator[int] = field(default_factory=lambda: itertools.count(1))
    message_ids: Iterator[int] = field(default_factory=lambda: itertools.count(1))


def _sse(event: str, data: Mapping[str, Any]) -> bytes:
    return f"event: {event}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n".encode()


def _chunks(text: str, size: int) -> list[str]:
    return [text[i : i + size] for i in range(0, len(text), size)] or [""]


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: StateServer

    def log_message(self, format: str, *args: Any) -> None:
        return

    # --- plumbing -------------------------------------------------------------------------------------

    def _read_body(self) -> Any:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        if not raw:
            return None
        try:
            return json.loads(raw)
        except ValueError:
            return {"_raw": raw.decode(errors="replace")}

    def _received(self, body: Any, status: int, role: Literal["main", "side", "other"]) -> Received:
        return Received(
            method=self.command,
            path=self.path,
            headers=tuple((k.lower(), v) for k, v in self.headers.items()),
            body=body,
            status=status,
            role=role,
        )

    def _record(self, body: Any, status: int, role: Literal["main", "side", "other"]) -> None:
        with self.server.state.lock:
            self.server.state.requests.append(self._received(body, status, role))

    def _send(self, status: int, body: bytes, content_type: str, extra: Mapping[str, str] | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        extra = dict(extra or {})
        if "request-id" not in extra:
            with self.server.state.lock:
                extra["request-id"] = f"req_fake_{next(self.server.state.request_ids):06d}"
        for key, value in extra.items():
            self.send_header(key, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _send_json(self, status: int, payload: Any, extra: Mapping[str, str] | None = None) -> None:
        self._send(status, json.dumps(payload).encode(), "application/json", extra)

    def _send_error(self, status: int, error_type: str, message: str, extra: Mapping[str, str] | None = None) -> None:
        self._send_json(status, {"type": "error", "error": {"type": error_type, "message": message}}, extra)

    # --- verbs ----------------------------------------------------------------------------------------

    def do_HEAD(self) -> None:
        self._record(None, 200, "other")
        self._send(200, b"", "text/plain")

    def do_GET(self) -> None:
        path = urlsplit(self.path).path
        if path in ("/", ""):
            self._record(None, 200, "other")
            self._send(200, b"ok", "text/plain")
            return
        self._record(None, 404, "other")
        self._send_error(404, "not_found_error", f"no such endpoint: {path}")

    def do_POST(self) -> None:
        path = urlsplit(self.path).path
        body = self._read_body()
        if path == "/v1/messages" and isinstance(body, dict):
            self._messages(body)
        elif path == "/v1/messages/count_tokens" and isinstance(body, dict):
            self._record(body, 200, "other")
            self._send_json(200, {"input_tokens": 10 + len(json.dumps(body.get("messages", []))) // 4})
        else:
            self._record(body, 404, "other")
            self._send_error(404, "not_found_error", f"no such endpoint: {path}")

    # --- the Messages API -----------------------------------------------------------------------------

    def _messages(self, body: dict[str, Any]) -> None:
        state = self.server.state
        model = str(body.get("model", ""))
        stream = bool(body.get("stream", False))
        role: Literal["main", "side"] = "main" if body.get("tools") else "side"
        with state.lock:
            turn: Turn = (
                (state.script.pop(0) if state.script else Text(CLOSING_TEXT)) if role == "main" else Text(SIDE_TEXT)
            )
            request_id = f"req_fake_{next(state.request_ids):06d}"
            message_id = f"msg_fake_{next(state.message_ids):06d}"
            variables = dict(state.variables)
            if isinstance(turn, ApiError):
                state.errors.append(turn)
                state.requests.append(self._received(body, turn.status, role))
            else:
                seq = len(state.ledger) + 1
                usage = state.usage(seq)
                stop_reason = "tool_use" if isinstance(turn, Tools) else "end_turn"
                state.ledger.append(Billed(seq, request_id, role, model, stream, usage, stop_reason))
                state.requests.append(self._received(body, 200, role))
        if isinstance(turn, ApiError):
            extra = {"request-id": request_id, "x-should-retry": "true" if turn.status >= 500 else "false"}
            if turn.retry_after_ms is not None:
                extra["retry-after-ms"] = str(turn.retry_after_ms)
            self._send_error(turn.status, turn.error_type, turn.message, extra)
            return
        blocks = _content_blocks(turn, message_id, variables)
        if stream:
            stream_body = _stream_body(message_id, model, blocks, usage, stop_reason)
            self._send(200, stream_body, "text/event-stream", {"request-id": request_id})
        else:
            message = _message(message_id, model, blocks, stop_reason)
            message["usage"] = {**_usage_start(usage), "output_tokens": usage.output_tokens}
            self._send_json(200, message, {"request-id": request_id})


def _fill(value: Any, variables: Mapping[str, str]) -> Any:
    """`{name}` in the strings of a tool input replaced by the variable's value (plain replacement, no format)."""
    if isinstance(value, str):
        for name, replacement in variables.items():
            value = value.replace("{" + name + "}", replacement)
        return value
    if isinstance(value, Mapping):
        return {key: _fill(item, variables) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_fill(item, variables) for item in value]
    return value


def _content_blocks(turn: Text | Tools, message_id: str, variables: Mapping[str, str]) -> list[dict[str, Any]]:
    if isinstance(turn, Text):
        return [{"type": "text", "text": turn.text}]
    blocks: list[dict[str, Any]] = [{"type": "text", "text": turn.text}] if turn.text else []
    for index, call in enumerate(turn.calls):
        tool_id = f"toolu_{message_id.removeprefix('msg_')}_{index}"
        blocks.append({"type": "tool_use", "id": tool_id, "name": call.name, "input": _fill(call.input, variables)})
    return blocks


def _message(message_id: str, model: str, content: list[dict[str, Any]], stop_reason: str | None) -> dict[str, Any]:
    return {
        "id": message_id,
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": content,
        "stop_reason": stop_reason,
        "stop_sequence": None,
    }


def _usage_start(usage: Usage) -> dict[str, Any]:
    return {
        "input_tokens": usage.input_tokens,
        "cache_creation_input_tokens": usage.cache_creation_input_tokens,
        "cache_read_input_tokens": usage.cache_read_input_tokens,
        "cache_creation": {
            "ephemeral_5m_input_tokens": usage.cache_creation_input_tokens,
            "ephemeral_1h_input_tokens": 0,
        },
        "service_tier": "standard",
    }


def _stream_body(message_id: str, model: str, blocks: list[dict[str, Any]], usage: Usage, stop_reason: str) -> bytes:
    """The event sequence of the real API: usage in message_start (output_tokens 1), final counts in message_delta."""
    start = _message(message_id, model, [], None)
    start["usage"] = {**_usage_start(usage), "output_tokens": 1}
    events = [_sse("message_start", {"type": "message_start", "message": start}), _sse("ping", {"type": "ping"})]
    for index, block in enumerate(blocks):
        first: dict[str, Any]
        if block["type"] == "text":
            first = {"type": "text", "text": ""}
            deltas = [{"type": "text_delta", "text": part} for part in _chunks(block["text"], 12)]
        else:
            first = {"type": "tool_use", "id": block["id"], "name": block["name"], "input": {}}
            arguments = json.dumps(block["input"])
            deltas = [{"type": "input_json_delta", "partial_json": part} for part in _chunks(arguments, 40)]
        events.append(
            _sse("content_block_start", {"type": "content_block_start", "index": index, "content_block": first})
        )
        events.extend(
            _sse("content_block_delta", {"type": "content_block_delta", "index": index, "delta": delta})
            for delta in deltas
        )
        events.append(_sse("content_block_stop", {"type": "content_block_stop", "index": index}))
    final_usage = {
        "input_tokens": usage.input_tokens,
        "cache_creation_input_tokens": usage.cache_creation_input_tokens,
        "cache_read_input_tokens": usage.cache_read_input_tokens,
        "output_tokens": usage.output_tokens,
    }
    delta = {"stop_reason": stop_reason, "stop_sequence": None}
    events.append(_sse("message_delta", {"type": "message_delta", "delta": delta, "usage": final_usage}))
    events.append(_sse("message_stop", {"type": "message_stop"}))
    return b"".join(events)


class FakeAnthropic(LoopbackServer[_State]):
    """The fake API, started on a free loopback port; use as a context manager (`with FakeAnthropic(script)`)."""

    def __init__(self, script: Sequence[Turn] = (), usage: Callable[[int], Usage] = default_usage) -> None:
        super().__init__(_Handler, _State(script=list(script), usage=usage), "fake Anthropic API")

    @property
    def base_url(self) -> str:
        return self.url

    def set_variables(self, variables: Mapping[str, str]) -> None:
        """Values for `{name}` placeholders in scripted tool inputs (such as the session's repository path)."""
        with self._state.lock:
            self._state.variables = dict(variables)

    @property
    def ledger(self) -> list[Billed]:
        with self._state.lock:
            return list(self._state.ledger)

    @property
    def requests(self) -> list[Received]:
        with self._state.lock:
            return list(self._state.requests)

    @property
    def errors(self) -> list[ApiError]:
        """The scripted errors that were answered, in order."""
        with self._state.lock:
            return list(self._state.errors)

    @property
    def unused_turns(self) -> list[Turn]:
        with self._state.lock:
            return list(self._state.script)
