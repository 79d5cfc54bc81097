"""A scripted stand-in for the Kubernetes API server on 127.0.0.1.

Tests queue responses per ``(method, path, watch?)``; the real ``kubernetes`` client talks to
it over HTTP, so URLs, query parameters, request bodies and the chunked watch stream are all
exercised. Every request is recorded. A watch request with nothing queued is held open until the
server stops, like an idle watch on a real API server.
"""

from __future__ import annotations

import json
import threading
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

FIXTURES = Path(__file__).parent / "fixtures"


def fixture(name: str) -> Any:
    """A recorded API response body from ``fixtures/``."""
    return json.loads((FIXTURES / name).read_text())


@dataclass(frozen=True)
class Reply:
    status: int
    body: Any


@dataclass(frozen=True)
class Echo:
    """Answer a create/replace the way the API server does: the stored object, new version."""

    status: int
    resource_version: str


@dataclass(frozen=True)
class Stream:
    """A watch response: these events, then close (or hold the connection open)."""

    events: list[Any]
    hold: bool = False
    broken: bool = False  # drop the connection without ending the chunked body


@dataclass(frozen=True)
class Recorded:
    method: str
    path: str
    query: dict[str, str]
    body: Any


@dataclass
class FakeApiServer:
    requests: list[Recorded] = field(default_factory=list)
    _script: dict[tuple[str, str, bool], deque[Reply | Echo | Stream]] = field(default_factory=dict)
    _changed: threading.Condition = field(default_factory=threading.Condition)
    _closing: threading.Event = field(default_factory=threading.Event)
    _server: ThreadingHTTPServer | None = None

    def queue(
        self, method: str, path: str, *responses: Reply | Echo | Stream, watch: bool = False
    ) -> None:
        with self._changed:
            self._script.setdefault((method, path, watch), deque()).extend(responses)

    def wait_for_requests(self, count: int, timeout: float = 5.0) -> list[Recorded]:
        """Block until ``count`` requests have arrived (raises on timeout)."""
        with self._changed:
            if not self._changed.wait_for(lambda: len(self.requests) >= count, timeout):
                raise TimeoutError(f"expected {count} requests, got {self.requests}")
            return list(self.requests)

    @property
    def url(self) -> str:
        assert self._server is not None
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> None:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                return

            def do_GET(self) -> None:
                fake._handle(self)

            do_POST = do_GET
            do_PUT = do_GET

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True).start()

    def stop(self) -> None:
        self._closing.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    def _next(self, key: tuple[str, str, bool]) -> Reply | Echo | Stream | None:
        with self._changed:
            pending = self._script.get(key)
            return pending.popleft() if pending else None

    def _handle(self, handler: BaseHTTPRequestHandler) -> None:
        url = urlsplit(handler.path)
        query = {k: v[-1] for k, v in parse_qs(url.query).items()}
        length = int(handler.headers.get("Content-Length") or 0)
        body = json.loads(handler.rfile.read(length)) if length else None
        watch = query.get("watch") == "true"
        response = self._next((handler.command, url.path, watch))
        with self._changed:
            self.requests.append(Recorded(handler.command, url.path, query, body))
            self._changed.notify_all()
        if response is None and watch:
            response = Stream(events=[], hold=True)
        if response is None:
            response = Reply(500, {"kind": "Status", "code": 500, "message": "unscripted"})
        if isinstance(response, Echo):
            stored = dict(
                body, metadata={**body["metadata"], "resourceVersion": response.resource_version}
            )
            response = Reply(response.status, stored)
        if isinstance(response, Reply):
            payload = json.dumps(response.body).encode()
            handler.send_response(response.status)
            handler.send_header("Content-Type", "application/json")
            handler.send_header("Content-Length", str(len(payload)))
            handler.end_headers()
            handler.wfile.write(payload)
            return
        self._stream(handler, response)

    def _stream(self, handler: BaseHTTPRequestHandler, stream: Stream) -> None:
        handler.send_response(200)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Transfer-Encoding", "chunked")
        handler.end_headers()
        for event in stream.events:
            line = json.dumps(event).encode() + b"\n"
            handler.wfile.write(f"{len(line):x}\r\n".encode() + line + b"\r\n")
            handler.wfile.flush()
        if stream.broken:
            handler.wfile.write(b'ff\r\n{"type":')
            handler.wfile.flush()
            handler.close_connection = True
            return
        if stream.hold:
            self._closing.wait()
            return
        handler.wfile.write(b"0\r\n\r\n")
        handler.wfile.flush()
