"""A fake OpenAI-compatible upstream that records every request it receives.

Wire format per the OpenAI API reference (see fixtures/README.md): chat completions as a
`chat.completion` object or, with `"stream": true`, `chat.completion.chunk` server-sent events
ending in `data: [DONE]`; embeddings as a `list` of `embedding` objects.
"""

from __future__ import annotations

import json
import ssl
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Received:
    method: str
    path: str
    headers: dict[str, str]
    body: dict[str, Any]


@dataclass
class FakeOpenAI:
    """Serves on 127.0.0.1:`port` in a thread. `status` forces an error status."""

    name: str = "fake"
    received: list[Received] = field(default_factory=list)
    status: int = 200
    tls: tuple[str, str] | None = None  # (certificate, key) files: serve HTTPS
    _server: ThreadingHTTPServer | None = None

    @property
    def port(self) -> int:
        assert self._server is not None
        return int(self._server.server_address[1])

    @property
    def base_url(self) -> str:
        if self.tls:
            return f"https://localhost:{self.port}/v1"
        return f"http://127.0.0.1:{self.port}/v1"

    def start(self) -> FakeOpenAI:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                length = int(self.headers.get("content-length", "0"))
                raw = self.rfile.read(length)
                body = json.loads(raw) if raw else {}
                fake.received.append(Received("POST", self.path,
                                              {k.lower(): v for k, v in self.headers.items()},
                                              body))
                fake.respond(self, body)

            def log_message(self, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        if self.tls:
            context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            context.load_cert_chain(*self.tls)
            self._server.socket = context.wrap_socket(self._server.socket, server_side=True)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    def respond(self, handler: BaseHTTPRequestHandler, body: dict[str, Any]) -> None:
        if self.status != 200:
            self._send(handler, self.status, "application/json", json.dumps({"error": {
                "message": f"{self.name} failed on purpose", "type": "server_error",
                "param": None, "code": None}}).encode())
        elif handler.path.endswith("/embeddings"):
            self._send(handler, 200, "application/json", json.dumps(embeddings(body)).encode())
        elif body.get("stream"):
            self._send(handler, 200, "text/event-stream", b"".join(
                b"data: " + json.dumps(c).encode() + b"\n\n" for c in chat_chunks(
                    body, self.name)) + b"data: [DONE]\n\n")
        else:
            self._send(handler, 200, "application/json",
                       json.dumps(chat_completion(body, self.name)).encode())

    @staticmethod
    def _send(handler: BaseHTTPRequestHandler, status: int, content_type: str,
              payload: bytes) -> None:
        handler.send_response(status)
        handler.send_header("content-type", content_type)
        handler.send_header("content-length", str(len(payload)))
        handler.end_headers()
        handler.wfile.write(payload)


def reply_text(body: dict[str, Any], name: str) -> str:
    return f"{name} answers {body.get('model')}"


def usage() -> dict[str, int]:
    return {"prompt_tokens": 11, "completion_tokens": 7, "total_tokens": 18}


def chat_completion(body: dict[str, Any], name: str,
                    reported: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "id": "chatcmpl-fake-1", "object": "chat.completion", "created": 1_700_000_000,
        "model": body.get("model"), "system_fingerprint": None,
        "choices": [{"index": 0, "finish_reason": "stop", "logprobs": None,
                     "message": {"role": "assistant", "content": reply_text(body, name),
                                 "refusal": None}}],
        "usage": reported or usage(),
    }


def chat_chunks(body: dict[str, Any], name: str,
                reported: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    def chunk(delta: dict[str, Any], finish: str | None) -> dict[str, Any]:
        return {"id": "chatcmpl-fake-1", "object": "chat.completion.chunk",
                "created": 1_700_000_000, "model": body.get("model"),
                "system_fingerprint": None,
                "choices": [{"index": 0, "delta": delta, "logprobs": None,
                             "finish_reason": finish}]}

    words = reply_text(body, name).split(" ")
    chunks = [chunk({"role": "assistant", "content": ""}, None)]
    chunks += [chunk({"content": w if i == 0 else " " + w}, None) for i, w in enumerate(words)]
    chunks.append(chunk({}, "stop"))
    if (body.get("stream_options") or {}).get("include_usage"):
        chunks.append({**chunk({}, None), "choices": [], "usage": reported or usage()})
    return chunks


def embeddings(body: dict[str, Any]) -> dict[str, Any]:
    inputs = body["input"] if isinstance(body["input"], list) else [body["input"]]
    return {"object": "list", "model": body.get("model"),
            "data": [{"object": "embedding", "index": i, "embedding": [0.1, 0.2, 0.3]}
                     for i, _ in enumerate(inputs)],
            "usage": {"prompt_tokens": 3, "total_tokens": 3}}
