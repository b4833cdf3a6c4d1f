"""An HTTP server on a free 127.0.0.1 port, in a daemon thread, started and stopped by the test that uses it: the
base of the test's stand-ins (the fake Anthropic API, the OTLP receiver, the load balancer's JWT check, the
fake OpenID provider)."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Generic, TypeVar

State = TypeVar("State")
POLL_SECONDS = 0.02
"""How often a server thread looks for the test's shutdown (the standard library's 0.5 s makes every stop slow)."""


class StateServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, handler: type[BaseHTTPRequestHandler], state: Any) -> None:
        super().__init__(("127.0.0.1", 0), handler)
        self.state = state
        """What the handler reads as `self.server.state`."""


class LoopbackServer(Generic[State]):
    """Use as a context manager: `with Subclass(...) as server`, then `server.url`."""

    def __init__(self, handler: type[BaseHTTPRequestHandler], state: State, name: str) -> None:
        self._handler, self._state, self._name = handler, state, name
        self._server: StateServer | None = None
        self._thread: threading.Thread | None = None

    def start(self: Any) -> Any:
        self._server = StateServer(self._handler, self._state)
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": POLL_SECONDS}, name=self._name, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._server = None
        self._thread = None

    def __enter__(self: Any) -> Any:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        """http://127.0.0.1:<port>"""
        if self._server is None:
            raise RuntimeError(f"the {self._name} server is not started")
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"
