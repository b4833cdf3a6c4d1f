"""An OTLP/HTTP receiver on 127.0.0.1: `/v1/metrics`, `/v1/logs`, `/v1/traces`, protobuf or JSON, gzip or not.

Each request is kept with its headers and its decoded body (the `opentelemetry-proto` message) and answered
200 with an empty Export*ServiceResponse in the request's encoding. `status` can be set to answer every
export with another status instead (to see what the client does then).
"""

from __future__ import annotations

import gzip
import threading
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any, Literal

from google.protobuf import json_format
from google.protobuf.message import DecodeError, Message
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2
from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2

from tests.loopback import LoopbackServer, StateServer

Signal = Literal["metrics", "logs", "traces"]

_SERVICES: dict[str, tuple[Signal, type[Message], type[Message]]] = {
    "/v1/metrics": (
        "metrics",
        metrics_service_pb2.ExportMetricsServiceRequest,
        metrics_service_pb2.ExportMetricsServiceResponse,
    ),
    "/v1/logs": ("logs", logs_service_pb2.ExportLogsServiceRequest, logs_service_pb2.ExportLogsServiceResponse),
    "/v1/traces": (
        "traces",
        trace_service_pb2.ExportTraceServiceRequest,
        trace_service_pb2.ExportTraceServiceResponse,
    ),
}


@dataclass(frozen=True)
class CapturedRequest:
    """One export as received: signal, path, headers in order (names lower-cased), content type, decoded body."""

    signal: Signal
    path: str
    headers: tuple[tuple[str, str], ...]
    content_type: str
    content_encoding: str
    body: Any  # ExportMetricsServiceRequest | ExportLogsServiceRequest | ExportTraceServiceRequest

    def header(self, name: str) -> str | None:
        values = [value for key, value in self.headers if key == name.lower()]
        return values[-1] if values else None

    def body_dict(self) -> dict[str, Any]:
        """The body as OTLP JSON (protobuf's JSON mapping: camelCase names, 64-bit ints as strings)."""
        return json_format.MessageToDict(self.body)


@dataclass
class _State:
    lock: threading.Lock = field(default_factory=threading.Lock)
    condition: threading.Condition = field(init=False)
    captured: list[CapturedRequest] = field(default_factory=list)
    rejected: list[tuple[str, str]] = field(default_factory=list)
    status: int = 200

    def __post_init__(self) -> None:
        self.condition = threading.Condition(self.lock)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: StateServer

    def log_message(self, format: str, *args: Any) -> None:
        return

    def _answer(self, status: int, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self) -> None:
        state = self.server.state
        path = self.path.split("?", 1)[0]
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        service = _SERVICES.get(path)
        if service is None:
            with state.lock:
                state.rejected.append((path, "unknown path"))
            self._answer(404, b"", "text/plain")
            return
        signal, request_type, response_type = service
        encoding = (self.headers.get("Content-Encoding") or "").lower()
        content_type = (self.headers.get("Content-Type") or "").split(";", 1)[0].strip().lower()
        try:
            if encoding == "gzip":
                raw = gzip.decompress(raw)
            elif encoding == "deflate":
                raw = zlib.decompress(raw)
            message = request_type()
            if content_type == "application/json":
                json_format.Parse(raw.decode(), message, ignore_unknown_fields=False)
            else:
                message.ParseFromString(raw)
        except (DecodeError, json_format.ParseError, OSError, ValueError, zlib.error) as error:
            with state.lock:
                state.rejected.append((path, f"{type(error).__name__}: {error}"))
            self._answer(400, b"", "text/plain")
            return
        captured = CapturedRequest(
            signal=signal,
            path=path,
            headers=tuple((k.lower(), v) for k, v in self.headers.items()),
            content_type=content_type,
            content_encoding=encoding,
            body=message,
        )
        with state.condition:
            state.captured.append(captured)
            status = state.status
            state.condition.notify_all()
        if status != 200:
            self._answer(status, b"", "text/plain")
        elif content_type == "application/json":
            self._answer(200, json_format.MessageToJson(response_type()).encode(), "application/json")
        else:
            self._answer(200, response_type().SerializeToString(), "application/x-protobuf")


class OtlpReceiver(LoopbackServer[_State]):
    """The receiver, started on a free loopback port; use as a context manager (`with OtlpReceiver() as r`)."""

    def __init__(self) -> None:
        super().__init__(_Handler, _State(), "OTLP receiver")

    @property
    def endpoint(self) -> str:
        """The base URL for `OTEL_EXPORTER_OTLP_ENDPOINT` (the client appends /v1/metrics, /v1/logs)."""
        return self.url

    def set_status(self, status: int) -> None:
        with self._state.lock:
            self._state.status = status

    @property
    def captured(self) -> list[CapturedRequest]:
        with self._state.lock:
            return list(self._state.captured)

    @property
    def rejected(self) -> list[tuple[str, str]]:
        """Requests that could not be decoded or went to an unknown path: (path, reason)."""
        with self._state.lock:
            return list(self._state.rejected)

    def wait_for(self, predicate: Callable[[list[CapturedRequest]], bool], timeout: float) -> bool:
        """Wait until `predicate(captured)` holds, at most `timeout` seconds; whether it held."""
        deadline = time.monotonic() + timeout
        with self._state.condition:
            while not predicate(list(self._state.captured)):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._state.condition.wait(remaining)
            return True
